//! Configuration: [`BrokerBuilder`] for a broker, [`SubscriberBuilder`] for
//! one subscriber's queue, and the defaults they start from.

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;

use crate::broker::Broker;
use crate::queue::OverflowPolicy;
use crate::registry::Registry;
use crate::subscriber::Subscriber;

/// Default [`BrokerBuilder::queue_capacity`]: enough to ride out bursts of a
/// thousand messages per subscriber while bounding a stalled subscriber's
/// memory to about a thousand small messages.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;

/// Default [`BrokerBuilder::shards`]. Shards cost about 128 bytes each (8 KiB
/// for 64), and with 64 the chance that two publishers on distinct channels
/// share a lock is 1 in 64, against 1 in 16 with 16 shards. (Chosen by that
/// arithmetic; other counts were not benchmarked.)
pub const DEFAULT_SHARDS: usize = 64;

// Defined with the shards it bounds: the registry below this handle uses
// it too, and the engine never imports from the handles.
pub use crate::shard::MAX_SHARDS;

/// Builds a [`Broker`] with non-default settings.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use tannoy::{BrokerBuilder, OverflowPolicy};
///
/// #[derive(Debug)]
/// struct Prediction { score: f32 }
///
/// let broker = BrokerBuilder::<Arc<Prediction>>::new()
///     .queue_capacity(256)
///     .overflow_policy(OverflowPolicy::DropOldest)
///     .build();
/// let sub = broker.subscriber();
/// sub.subscribe(["ai:predictions:ready"]);
/// broker.publish("ai:predictions:ready", Arc::new(Prediction { score: 0.9 }));
/// assert_eq!(sub.recv()?.payload().score, 0.9);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BrokerBuilder<P = Bytes> {
    /// See [`BrokerBuilder::queue_capacity`].
    queue_capacity: usize,
    /// See [`BrokerBuilder::shards`].
    shards: usize,
    /// See [`BrokerBuilder::overflow_policy`].
    overflow_policy: OverflowPolicy,
    /// The payload type the built broker carries.
    payload: PhantomData<fn() -> P>,
}

impl<P> BrokerBuilder<P> {
    /// A builder with the default settings.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::BrokerBuilder::<String>::new().build();
    /// # let _ = broker;
    /// ```
    pub fn new() -> Self {
        Self {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            shards: DEFAULT_SHARDS,
            overflow_policy: OverflowPolicy::default(),
            payload: PhantomData,
        }
    }

    /// How many messages each subscriber's queue holds before its overflow
    /// policy applies. Default: [`DEFAULT_QUEUE_CAPACITY`] (1024).
    ///
    /// Memory grows with use, up to this many messages per subscriber.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::builder().queue_capacity(4).build();
    /// assert_eq!(broker.subscriber().capacity(), 4);
    /// ```
    #[track_caller]
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        assert!(capacity > 0, "queue capacity must be at least 1");
        self.queue_capacity = capacity;
        self
    }

    /// How many lock shards hold the channel registry; rounded up to a power
    /// of two, at most [`MAX_SHARDS`]. Default: [`DEFAULT_SHARDS`] (64).
    ///
    /// More shards let more threads publish to different channels without
    /// sharing a lock; each costs about 128 bytes.
    ///
    /// # Panics
    ///
    /// If `shards` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::builder().shards(4).build();
    /// # let _ = broker;
    /// ```
    #[track_caller]
    pub fn shards(mut self, shards: usize) -> Self {
        assert!(shards > 0, "a broker needs at least one shard");
        self.shards = shards.min(MAX_SHARDS).next_power_of_two();
        self
    }

    /// The overflow policy of subscribers made with
    /// [`Broker::subscriber`]. Default: [`OverflowPolicy::DropOldest`].
    ///
    /// # Examples
    ///
    /// ```
    /// use tannoy::OverflowPolicy;
    ///
    /// let broker = tannoy::Broker::builder()
    ///     .overflow_policy(OverflowPolicy::Disconnect)
    ///     .build();
    /// assert_eq!(broker.subscriber().overflow_policy(), OverflowPolicy::Disconnect);
    /// ```
    pub fn overflow_policy(mut self, policy: OverflowPolicy) -> Self {
        self.overflow_policy = policy;
        self
    }
}

impl<P: Clone + Send + Sync + 'static> BrokerBuilder<P> {
    /// Builds the broker.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::builder().build();
    /// assert!(!broker.is_closed());
    /// ```
    pub fn build(self) -> Broker<P> {
        Broker::from_registry(Registry::new(
            self.shards,
            self.queue_capacity,
            self.overflow_policy,
        ))
    }
}

impl<P> Default for BrokerBuilder<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P> fmt::Debug for BrokerBuilder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerBuilder")
            .field("queue_capacity", &self.queue_capacity)
            .field("shards", &self.shards)
            .field("overflow_policy", &self.overflow_policy)
            .finish()
    }
}

/// Builds a [`Subscriber`] with its own queue settings; made by
/// [`Broker::subscriber_builder`].
///
/// # Examples
///
/// ```
/// let broker = tannoy::Broker::new();
/// let slow = broker.subscriber_builder().queue_capacity(2).build();
/// slow.subscribe(["ticks"]);
/// for i in 0..5 {
///     broker.publish("ticks", i.to_string());
/// }
/// assert_eq!(slow.dropped(), 3);
/// ```
#[must_use = "a SubscriberBuilder does nothing until `build` is called"]
pub struct SubscriberBuilder<'a, P> {
    /// The broker the subscriber will belong to.
    broker: &'a Broker<P>,
    /// See [`SubscriberBuilder::queue_capacity`].
    queue_capacity: usize,
    /// See [`SubscriberBuilder::overflow_policy`].
    overflow_policy: OverflowPolicy,
}

impl<'a, P> SubscriberBuilder<'a, P> {
    /// A builder for a subscriber of `broker`, starting from its defaults.
    pub(crate) fn new(
        broker: &'a Broker<P>,
        queue_capacity: usize,
        overflow_policy: OverflowPolicy,
    ) -> Self {
        Self {
            broker,
            queue_capacity,
            overflow_policy,
        }
    }
}

impl<P: Clone + Send + Sync + 'static> SubscriberBuilder<'_, P> {
    /// How many messages this subscriber's queue holds before its overflow
    /// policy applies. Default: the broker's
    /// [`queue_capacity`](BrokerBuilder::queue_capacity).
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// assert_eq!(broker.subscriber_builder().queue_capacity(3).build().capacity(), 3);
    /// ```
    #[track_caller]
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        assert!(capacity > 0, "queue capacity must be at least 1");
        self.queue_capacity = capacity;
        self
    }

    /// What this subscriber's full queue does with a new message. Default:
    /// the broker's [`overflow_policy`](BrokerBuilder::overflow_policy).
    ///
    /// # Examples
    ///
    /// ```
    /// use tannoy::OverflowPolicy;
    ///
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber_builder().overflow_policy(OverflowPolicy::DropNewest).build();
    /// assert_eq!(sub.overflow_policy(), OverflowPolicy::DropNewest);
    /// ```
    pub fn overflow_policy(mut self, policy: OverflowPolicy) -> Self {
        self.overflow_policy = policy;
        self
    }

    /// Creates the subscriber. It holds no subscriptions yet.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber_builder().build();
    /// assert_eq!(sub.subscribe(["a"]), 1);
    /// ```
    #[must_use = "dropping a Subscriber unsubscribes it from everything"]
    pub fn build(self) -> Subscriber<P> {
        self.broker
            .register(self.queue_capacity, self.overflow_policy)
    }
}

impl<P> fmt::Debug for SubscriberBuilder<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriberBuilder")
            .field("queue_capacity", &self.queue_capacity)
            .field("overflow_policy", &self.overflow_policy)
            .finish()
    }
}
