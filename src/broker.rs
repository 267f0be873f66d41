//! The broker: handles, builder, publishing and introspection.
//!
//! # Lock order
//!
//! Locks are always taken in this order, and at most one of each kind at a
//! time; nothing waits on a lock while holding a later one:
//!
//! 1. the live-subscriber registry (`Inner::subscribers`);
//! 2. one subscriber's `subscriptions`;
//! 3. one channel shard;
//! 4. the pattern index;
//! 5. one subscriber's queue.
//!
//! `publish` takes only 3, 4 and 5: the channel's shard for the whole
//! publish (so one channel's messages are delivered in one global order),
//! the index's read lock while patterns are matched, and each receiving
//! queue briefly. Publishers never wait for subscribers beyond a queue's
//! short critical section. A subscriber that overflows
//! under `Disconnect` is unsubscribed by the publishing thread after it has
//! released every lock, starting again from 2.

use std::fmt;
use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use hashbrown::{DefaultHashBuilder, HashMap};

use crate::message::{Envelope, MessageKind, Retired};
use crate::pattern::Pattern;
use crate::pattern::index::PatternIndex;
use crate::queue::{OverflowPolicy, Pushed};
use crate::shard::{Namespace, Shard, Subscribers};
use crate::subscriber::{Subscriber, SubscriberShared, Subscriptions};
use crate::sync::{Mutex, RwLock};

/// Default [`BrokerBuilder::queue_capacity`]: enough to ride out bursts of a
/// thousand messages per subscriber while bounding a stalled subscriber's
/// memory to about a thousand small messages.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;

/// Default [`BrokerBuilder::shards`]. Shards cost about 128 bytes each, and
/// with 64 the chance that two publishers on distinct channels share a lock
/// is 1 in 64; 16 made that collision show up in a few percent of
/// two-publisher benchmark runs.
pub const DEFAULT_SHARDS: usize = 64;

/// Upper bound on [`BrokerBuilder::shards`]; the shard index is taken from
/// 16 bits of the channel hash that the hash tables themselves do not use.
pub const MAX_SHARDS: usize = 1 << 16;

/// Bits of the channel hash below the shard index (see [`MAX_SHARDS`]):
/// hashbrown uses the low bits for the bucket and the top 7 for its tags.
const SHARD_SHIFT: u32 = 40;

/// A value padded to its own cache line pair, so neighbouring shards'
/// locks never share a line (128 bytes covers adjacent-line prefetching).
#[derive(Debug, Default)]
#[repr(align(128))]
struct CachePadded<T>(T);

/// The broker's shared state; `Broker` and `Subscriber` handles point here.
pub(crate) struct Inner<P> {
    /// Exact and shard channels, spread by channel hash.
    shards: Box<[CachePadded<Mutex<Shard<P>>>]>,
    /// `shards.len() - 1`; the length is a power of two.
    shard_mask: usize,
    /// One hasher for every channel table, so a name is hashed once per
    /// publish for both shard selection and lookup.
    hasher: DefaultHashBuilder,
    /// Every subscribed pattern with its subscribers.
    patterns: RwLock<PatternIndex<Subscribers<P>>>,
    /// `patterns.len()`, readable without the lock, so publishes skip the
    /// index entirely while nobody holds a pattern.
    pattern_count: AtomicUsize,
    /// Live subscribers by id, so `close` can reach every queue.
    subscribers: Mutex<HashMap<u64, Arc<SubscriberShared<P>>>>,
    /// Id for the next subscriber.
    next_subscriber_id: AtomicU64,
    /// Set once by `close`; publishes then return 0.
    closed: AtomicBool,
    /// Live `Broker` handles; the last one to drop closes the broker.
    handles: AtomicUsize,
    /// Queue capacity for new subscribers.
    queue_capacity: usize,
    /// Overflow policy for subscribers created with `subscriber()`.
    overflow_policy: OverflowPolicy,
}

/// An in-process publish/subscribe broker with Redis pub/sub semantics.
///
/// `Broker` is a cheap handle (`Clone` shares the same broker) and is
/// `Send + Sync`; publish from any thread. `P` is the payload type: [`Bytes`]
/// by default, or any `Clone + Send + Sync + 'static` value such as
/// `Arc<MyEvent>` to publish typed events without serialising them.
///
/// Dropping the last `Broker` handle [closes](Self::close) the broker;
/// [`Subscriber`]s do not keep it open.
///
/// # Examples
///
/// ```
/// use tannoy::Broker;
///
/// let broker = Broker::new();
/// let mut sub = broker.subscriber();
/// sub.subscribe(["conversations:new"]);
///
/// let receivers = broker.publish("conversations:new", "hello");
/// assert_eq!(receivers, 1);
/// assert_eq!(sub.recv()?.payload(), "hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Broker<P = Bytes> {
    /// The shared broker.
    inner: Arc<Inner<P>>,
}

impl Broker<Bytes> {
    /// A broker for [`Bytes`] payloads with the default settings (see
    /// [`BrokerBuilder`]).
    ///
    /// For another payload type use `Broker::<P>::default()` or
    /// [`BrokerBuilder::<P>::new()`](BrokerBuilder::new).
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// assert_eq!(broker.publish("nobody-listens", "x"), 0);
    /// ```
    pub fn new() -> Self {
        BrokerBuilder::new().build()
    }

    /// A builder for a [`Bytes`] broker with non-default settings.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::builder().queue_capacity(1024).shards(16).build();
    /// # let _ = broker;
    /// ```
    pub fn builder() -> BrokerBuilder<Bytes> {
        BrokerBuilder::new()
    }
}

impl<P: Clone + Send + Sync + 'static> Default for Broker<P> {
    /// A broker with the default settings (see [`BrokerBuilder`]).
    fn default() -> Self {
        BrokerBuilder::new().build()
    }
}

impl<P: Clone + Send + Sync + 'static> Broker<P> {
    /// A new subscriber with the broker's default queue capacity and
    /// overflow policy. It holds no subscriptions yet.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let mut sub = broker.subscriber();
    /// assert_eq!(sub.subscribe(["a"]), 1);
    /// ```
    #[must_use = "dropping a Subscriber unsubscribes it from everything"]
    pub fn subscriber(&self) -> Subscriber<P> {
        self.subscriber_with(self.inner.overflow_policy)
    }

    /// A new subscriber with the given overflow policy (and the broker's
    /// default queue capacity).
    ///
    /// # Examples
    ///
    /// ```
    /// use tannoy::{OverflowPolicy, RecvError};
    ///
    /// let broker = tannoy::Broker::builder().queue_capacity(1).build();
    /// let mut sub = broker.subscriber_with(OverflowPolicy::Disconnect);
    /// sub.subscribe(["c"]);
    /// assert_eq!(broker.publish("c", "1"), 1);
    /// assert_eq!(broker.publish("c", "2"), 1); // overflows, still counted
    /// assert_eq!(broker.publish("c", "3"), 0); // sub is gone
    /// assert_eq!(sub.recv()?.payload(), "1");
    /// assert_eq!(sub.recv(), Err(RecvError::Disconnected));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "dropping a Subscriber unsubscribes it from everything"]
    pub fn subscriber_with(&self, policy: OverflowPolicy) -> Subscriber<P> {
        self.subscriber_builder().overflow_policy(policy).build()
    }

    /// A builder for a subscriber with its own queue capacity or overflow
    /// policy; unset options take the broker's defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use tannoy::OverflowPolicy;
    ///
    /// let broker = tannoy::Broker::new();
    /// let dashboard = broker
    ///     .subscriber_builder()
    ///     .queue_capacity(16)
    ///     .overflow_policy(OverflowPolicy::DropOldest)
    ///     .build();
    /// assert_eq!(dashboard.capacity(), 16);
    /// ```
    pub fn subscriber_builder(&self) -> SubscriberBuilder<'_, P> {
        SubscriberBuilder {
            broker: self,
            queue_capacity: self.inner.queue_capacity,
            overflow_policy: self.inner.overflow_policy,
        }
    }

    /// Registers a new subscriber with these queue settings.
    fn register(&self, capacity: usize, policy: OverflowPolicy) -> Subscriber<P> {
        let inner = &self.inner;
        let id = inner.next_subscriber_id.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(SubscriberShared::new(id, capacity, policy));
        {
            let mut registry = inner.subscribers.lock();
            registry.insert(id, Arc::clone(&shared));
            // Checked under the registry lock: either `close` already set the
            // flag (seen here) or it will find this subscriber in the
            // registry.
            if inner.closed.load(Ordering::Acquire) {
                shared.queue.close();
            }
        }
        Subscriber::new(shared, Arc::clone(inner))
    }

    /// Publishes `payload` on `channel` (Redis `PUBLISH`) and returns the
    /// number of deliveries: each subscriber counts once if it holds the
    /// channel, plus once per pattern it holds that matches.
    ///
    /// When this returns, the message is in every receiving subscriber's
    /// queue. It never blocks on a slow subscriber: a full queue applies its
    /// [`OverflowPolicy`] (a delivery the policy then discards still counts,
    /// as Redis counts a client it is about to disconnect). Returns 0 after
    /// [`close`](Self::close).
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let mut a = broker.subscriber();
    /// let mut b = broker.subscriber();
    /// a.subscribe(["news.sport"]);
    /// a.psubscribe(["news.*", "*"]);
    /// b.psubscribe(["news.*"]);
    /// assert_eq!(broker.publish("news.sport", "goal"), 4);
    /// ```
    pub fn publish(&self, channel: impl AsRef<[u8]>, payload: impl Into<P>) -> usize {
        self.inner
            .publish(Namespace::Channel, channel.as_ref(), payload.into())
    }

    /// Publishes `payload` on the shard channel `channel` (Redis 7
    /// `SPUBLISH`) and returns the number of shard subscribers reached.
    ///
    /// Only [`ssubscribe`](Subscriber::ssubscribe)rs of that exact name
    /// receive it, as [`MessageKind::SMessage`]; channel and pattern
    /// subscribers never do.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let mut sharded = broker.subscriber();
    /// let mut plain = broker.subscriber();
    /// sharded.ssubscribe(["same"]);
    /// plain.subscribe(["same"]);
    /// plain.psubscribe(["*"]);
    /// assert_eq!(broker.spublish("same", "S"), 1);
    /// assert_eq!(broker.publish("same", "P"), 2);
    /// ```
    pub fn spublish(&self, channel: impl AsRef<[u8]>, payload: impl Into<P>) -> usize {
        self.inner
            .publish(Namespace::Shard, channel.as_ref(), payload.into())
    }
}

impl<P> Broker<P> {
    /// Active channels (those with at least one exact subscriber), all of
    /// them or those matching a glob pattern (Redis `PUBSUB CHANNELS`).
    ///
    /// Pass `None` for all, `Some("ai:*")` or a byte string such as
    /// `b"\x80*"` for a pattern. As in Redis, `None` lists the empty-named
    /// channel but the pattern `*` does not, and patterns and shard channels
    /// are never listed. The order is unspecified.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let mut sub = broker.subscriber();
    /// sub.subscribe(["ai:models", "web:hits"]);
    /// sub.psubscribe(["ai:*"]);
    /// assert_eq!(broker.channels(Some("ai:*")), ["ai:models"]);
    /// assert_eq!(broker.channels(None).len(), 2);
    /// ```
    pub fn channels(&self, pattern: impl ChannelFilter) -> Vec<Bytes> {
        self.inner.channels(Namespace::Channel, pattern.pattern())
    }

    /// Active shard channels, all or those matching a glob pattern (Redis
    /// `PUBSUB SHARDCHANNELS`). See [`channels`](Self::channels).
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let mut sub = broker.subscriber();
    /// sub.ssubscribe(["orders:{1}"]);
    /// assert_eq!(broker.shard_channels(None), ["orders:{1}"]);
    /// assert!(broker.channels(None).is_empty());
    /// ```
    pub fn shard_channels(&self, pattern: impl ChannelFilter) -> Vec<Bytes> {
        self.inner.channels(Namespace::Shard, pattern.pattern())
    }

    /// The number of exact subscribers of each channel, in argument order,
    /// duplicates repeated (Redis `PUBSUB NUMSUB`). Pattern subscribers are
    /// not counted.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let mut sub = broker.subscriber();
    /// sub.subscribe(["a"]);
    /// sub.psubscribe(["a*"]);
    /// assert_eq!(broker.numsub(["a", "b"]), [("a".into(), 1), ("b".into(), 0)]);
    /// ```
    pub fn numsub<I>(&self, channels: I) -> Vec<(Bytes, usize)>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.inner.numsub(Namespace::Channel, channels)
    }

    /// The number of shard subscribers of each shard channel, in argument
    /// order (Redis `PUBSUB SHARDNUMSUB`).
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let mut sub = broker.subscriber();
    /// sub.ssubscribe(["same"]);
    /// assert_eq!(broker.shard_numsub(["same", "unknown"]), [("same".into(), 1), ("unknown".into(), 0)]);
    /// ```
    pub fn shard_numsub<I>(&self, channels: I) -> Vec<(Bytes, usize)>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.inner.numsub(Namespace::Shard, channels)
    }

    /// The number of distinct patterns subscribed by anyone (Redis
    /// `PUBSUB NUMPAT`): two subscribers holding `foo*` count once.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let (mut a, mut b) = (broker.subscriber(), broker.subscriber());
    /// a.psubscribe(["foo*", "bar*"]);
    /// b.psubscribe(["foo*", "baz*"]);
    /// assert_eq!(broker.numpat(), 3);
    /// ```
    pub fn numpat(&self) -> usize {
        self.inner.patterns.read().len()
    }

    /// Closes the broker: every subscriber's blocking `recv` (and `iter`,
    /// async `recv_async`, `Stream`) returns an error, or ends, once its
    /// queue is drained, and `publish` returns 0 from now on. Messages
    /// already queued are still delivered. Idempotent.
    ///
    /// # Examples
    ///
    /// ```
    /// use tannoy::RecvError;
    ///
    /// let broker = tannoy::Broker::new();
    /// let mut sub = broker.subscriber();
    /// sub.subscribe(["c"]);
    /// broker.publish("c", "last");
    /// broker.close();
    /// assert_eq!(broker.publish("c", "too late"), 0);
    /// assert_eq!(sub.recv()?.payload(), "last");
    /// assert_eq!(sub.recv(), Err(RecvError::Closed));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether [`close`](Self::close) has been called (or every handle
    /// dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// broker.close();
    /// assert!(broker.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }
}

impl<P> Clone for Broker<P> {
    fn clone(&self) -> Self {
        self.inner.handles.fetch_add(1, Ordering::Relaxed);
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<P> Drop for Broker<P> {
    fn drop(&mut self) {
        if self.inner.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.close();
        }
    }
}

impl<P> fmt::Debug for Broker<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("shards", &self.inner.shards.len())
            .field("queue_capacity", &self.inner.queue_capacity)
            .field("overflow_policy", &self.inner.overflow_policy)
            .field("subscribers", &self.inner.subscribers.lock().len())
            .field("patterns", &self.numpat())
            .field("closed", &self.is_closed())
            .finish()
    }
}

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
/// let mut sub = broker.subscriber();
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
        let shards = (0..self.shards)
            .map(|_| CachePadded(Mutex::new(Shard::default())))
            .collect();
        Broker {
            inner: Arc::new(Inner {
                shards,
                shard_mask: self.shards - 1,
                hasher: DefaultHashBuilder::default(),
                patterns: RwLock::new(PatternIndex::new()),
                pattern_count: AtomicUsize::new(0),
                subscribers: Mutex::new(HashMap::new()),
                next_subscriber_id: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                handles: AtomicUsize::new(1),
                queue_capacity: self.queue_capacity,
                overflow_policy: self.overflow_policy,
            }),
        }
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
/// let mut slow = broker.subscriber_builder().queue_capacity(2).build();
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
    /// let mut sub = broker.subscriber_builder().build();
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

/// The optional glob accepted by [`Broker::channels`] and
/// [`Broker::shard_channels`].
///
/// Implemented for `Option<&str>` (so both `None` and `Some("ai:*")` work)
/// and for plain names: `&str`, `String`, `&[u8]`, `&[u8; N]`, `Vec<u8>` and
/// [`Bytes`], which filter by that pattern. Use a plain byte string for a
/// binary pattern: `broker.channels(b"\x80*")`.
///
/// # Examples
///
/// ```
/// let broker = tannoy::Broker::new();
/// let mut sub = broker.subscriber();
/// sub.subscribe([b"\x80raw".as_slice(), b"text"]);
/// assert_eq!(broker.channels(None).len(), 2);
/// assert_eq!(broker.channels(Some("t*")), ["text"]);
/// assert_eq!(broker.channels(b"\x80*"), [b"\x80raw".as_slice()]);
/// ```
pub trait ChannelFilter: sealed::Sealed {
    /// The pattern's bytes, or `None` for no filter.
    fn pattern(&self) -> Option<&[u8]>;
}

/// Keeps [`ChannelFilter`] closed to new implementations, so more can be
/// added without breaking anyone.
mod sealed {
    pub trait Sealed {}
}

/// Implements [`ChannelFilter`] for owned and borrowed byte-string types.
macro_rules! channel_filter_for {
    ($($ty:ty),*) => {$(
        impl sealed::Sealed for $ty {}
        impl ChannelFilter for $ty {
            fn pattern(&self) -> Option<&[u8]> {
                Some(AsRef::<[u8]>::as_ref(self))
            }
        }
    )*};
}

channel_filter_for!(
    &str,
    String,
    &String,
    &[u8],
    Vec<u8>,
    &Vec<u8>,
    Bytes,
    &Bytes
);

impl<const N: usize> sealed::Sealed for &[u8; N] {}
impl<const N: usize> ChannelFilter for &[u8; N] {
    fn pattern(&self) -> Option<&[u8]> {
        Some(self.as_slice())
    }
}

impl sealed::Sealed for Option<&str> {}
impl ChannelFilter for Option<&str> {
    fn pattern(&self) -> Option<&[u8]> {
        self.map(str::as_bytes)
    }
}

impl<P> Inner<P> {
    /// The hash of a channel name: picks its shard and finds it there.
    fn hash(&self, name: &[u8]) -> u64 {
        self.hasher.hash_one(name)
    }

    /// The shard holding the channel whose hash is `hash`.
    fn shard(&self, hash: u64) -> &Mutex<Shard<P>> {
        &self.shards[(hash >> SHARD_SHIFT) as usize & self.shard_mask].0
    }

    /// `PUBSUB CHANNELS` / `SHARDCHANNELS`.
    fn channels(&self, ns: Namespace, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let pattern = pattern.map(Pattern::new);
        let mut names = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.0.lock();
            names.extend(
                shard
                    .entries(ns)
                    .filter(|e| pattern.as_ref().is_none_or(|p| p.matches(&e.name)))
                    .map(|e| e.name.clone()),
            );
        }
        names
    }

    /// `PUBSUB NUMSUB` / `SHARDNUMSUB`.
    fn numsub<I>(&self, ns: Namespace, channels: I) -> Vec<(Bytes, usize)>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        channels
            .into_iter()
            .map(|name| {
                let name = name.as_ref();
                let hash = self.hash(name);
                let count = self
                    .shard(hash)
                    .lock()
                    .find(ns, hash, name)
                    .map_or(0, |e| e.subscribers.len());
                (Bytes::copy_from_slice(name), count)
            })
            .collect()
    }

    /// Stops the broker; see [`Broker::close`].
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let registry = self.subscribers.lock();
        for subscriber in registry.values() {
            subscriber.queue.close();
        }
    }

    /// Unsubscribes `subscriber` from everything and forgets it; called when
    /// its handle drops.
    pub(crate) fn remove_subscriber(&self, subscriber: &Arc<SubscriberShared<P>>) {
        self.subscribers.lock().remove(&subscriber.id());
        self.unsubscribe_all(subscriber);
    }

    /// Removes every subscription of `subscriber` and marks it gone, so it
    /// ignores later subscribe calls.
    fn unsubscribe_all(&self, subscriber: &SubscriberShared<P>) {
        let mut subscriptions = subscriber.subscriptions.lock();
        let Subscriptions {
            channels,
            patterns,
            shard_channels,
            ..
        } = std::mem::take(&mut *subscriptions);
        subscriptions.gone = true;
        for name in channels {
            self.remove_channel(Namespace::Channel, &name, subscriber.id());
        }
        for name in shard_channels {
            self.remove_channel(Namespace::Shard, &name, subscriber.id());
        }
        if !patterns.is_empty() {
            let mut index = self.patterns.write();
            for pattern in patterns {
                Self::remove_pattern(&mut index, &pattern, subscriber.id());
            }
            self.pattern_count.store(index.len(), Ordering::Release);
        }
    }

    /// Takes `subscriber` out of channel `name`'s entry.
    fn remove_channel(&self, ns: Namespace, name: &[u8], id: u64) {
        let hash = self.hash(name);
        let last_envelope = self.shard(hash).lock().remove(ns, hash, name, id);
        // Dropped here, with the shard unlocked.
        drop(last_envelope);
    }

    /// Takes subscriber `id` out of `pattern`'s entry, dropping the pattern
    /// with its last subscriber.
    fn remove_pattern(index: &mut PatternIndex<Subscribers<P>>, pattern: &[u8], id: u64) {
        if let Some(subscribers) = index.get_mut(pattern) {
            if let Some(at) = subscribers.iter().position(|s| s.id() == id) {
                subscribers.remove(at);
            }
            if subscribers.is_empty() {
                index.remove(pattern);
            }
        }
    }
}

impl<P: Clone + Send + Sync + 'static> Inner<P> {
    /// `SUBSCRIBE` / `SSUBSCRIBE`; returns the count Redis reports.
    pub(crate) fn subscribe<I>(
        &self,
        subscriber: &Arc<SubscriberShared<P>>,
        ns: Namespace,
        names: I,
    ) -> usize
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut subscriptions = subscriber.subscriptions.lock();
        if !subscriptions.gone {
            for name in names {
                let name = name.as_ref();
                let held = match ns {
                    Namespace::Channel => &mut subscriptions.channels,
                    Namespace::Shard => &mut subscriptions.shard_channels,
                };
                if held.contains(name) {
                    continue;
                }
                let name = Bytes::copy_from_slice(name);
                held.insert(name.clone());
                let hash = self.hash(&name);
                self.shard(hash)
                    .lock()
                    .add(ns, hash, name, Arc::clone(subscriber), |n| self.hash(n));
            }
        }
        match ns {
            Namespace::Channel => subscriptions.count(),
            Namespace::Shard => subscriptions.shard_count(),
        }
    }

    /// `UNSUBSCRIBE` / `SUNSUBSCRIBE` (all when `names` is empty); returns
    /// the count Redis reports.
    pub(crate) fn unsubscribe<I>(
        &self,
        subscriber: &SubscriberShared<P>,
        ns: Namespace,
        names: I,
    ) -> usize
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut subscriptions = subscriber.subscriptions.lock();
        let held = match ns {
            Namespace::Channel => &mut subscriptions.channels,
            Namespace::Shard => &mut subscriptions.shard_channels,
        };
        let mut names = names.into_iter().peekable();
        if names.peek().is_none() {
            for name in std::mem::take(held) {
                self.remove_channel(ns, &name, subscriber.id());
            }
        } else {
            for name in names {
                if held.remove(name.as_ref()) {
                    self.remove_channel(ns, name.as_ref(), subscriber.id());
                }
            }
        }
        match ns {
            Namespace::Channel => subscriptions.count(),
            Namespace::Shard => subscriptions.shard_count(),
        }
    }

    /// `PSUBSCRIBE`; returns the count Redis reports.
    pub(crate) fn psubscribe<I>(&self, subscriber: &Arc<SubscriberShared<P>>, patterns: I) -> usize
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut subscriptions = subscriber.subscriptions.lock();
        if subscriptions.gone {
            return 0;
        }
        // Taken at the first new pattern only, so re-subscribing to held
        // patterns never blocks publishers.
        let mut index = None;
        for pattern in patterns {
            let pattern = pattern.as_ref();
            if subscriptions.patterns.contains(pattern) {
                continue;
            }
            let pattern = Bytes::copy_from_slice(pattern);
            let index = index.get_or_insert_with(|| self.patterns.write());
            match index.get_mut(&pattern) {
                Some(subscribers) => subscribers.push(Arc::clone(subscriber)),
                None => index.insert(pattern.clone(), vec![Arc::clone(subscriber)]),
            }
            subscriptions.patterns.insert(pattern);
        }
        if let Some(index) = index {
            self.pattern_count.store(index.len(), Ordering::Release);
        }
        subscriptions.count()
    }

    /// `PUNSUBSCRIBE` (all when `patterns` is empty); returns the count
    /// Redis reports.
    pub(crate) fn punsubscribe<I>(&self, subscriber: &SubscriberShared<P>, patterns: I) -> usize
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut subscriptions = subscriber.subscriptions.lock();
        let mut patterns = patterns.into_iter().peekable();
        let removed: Vec<Bytes> = if patterns.peek().is_none() {
            subscriptions.patterns.drain().collect()
        } else {
            patterns
                .filter_map(|p| subscriptions.patterns.take(p.as_ref()))
                .collect()
        };
        if !removed.is_empty() {
            let mut index = self.patterns.write();
            for pattern in &removed {
                Self::remove_pattern(&mut index, pattern, subscriber.id());
            }
            self.pattern_count.store(index.len(), Ordering::Release);
        }
        subscriptions.count()
    }

    /// `PUBLISH` / `SPUBLISH`.
    fn publish(&self, ns: Namespace, channel: &[u8], payload: P) -> usize {
        if self.closed.load(Ordering::Acquire) {
            return 0;
        }
        let with_patterns =
            ns == Namespace::Channel && self.pattern_count.load(Ordering::Acquire) > 0;
        let kind = match ns {
            Namespace::Channel => MessageKind::Message,
            Namespace::Shard => MessageKind::SMessage,
        };
        // Declared before the lock guards, so that even when a payload's
        // `Clone` panics it is dropped after them: its `Drop` unsubscribes
        // disconnected subscribers and frees what the queues gave back.
        let mut delivery = Delivery::new(self);
        let hash = self.hash(channel);
        // Held for the whole delivery, patterns included, so concurrent
        // publishes to one channel reach every subscriber in the same order,
        // as Redis's single command loop guarantees.
        let mut shard = self.shard(hash).lock();
        let entry = shard.find_mut(ns, hash, channel);
        if !with_patterns {
            if let Some(entry) = entry {
                // The common case: the payload moves into the envelope, with
                // no clone at all.
                let (envelope, retired) =
                    Envelope::reuse_or_new(&mut entry.last_envelope, kind, &entry.name, payload);
                delivery.retired = retired;
                delivery.fan_out(&entry.subscribers, envelope);
            }
            drop(shard);
            return delivery.finish();
        }
        // The channel's name as shared `Bytes` for pattern messages: the
        // active channel's own, or else copied once, when a pattern matches.
        let mut name = entry.map(|entry| {
            let (envelope, retired) = Envelope::reuse_or_new(
                &mut entry.last_envelope,
                kind,
                &entry.name,
                payload.clone(),
            );
            delivery.retired = retired;
            delivery.fan_out(&entry.subscribers, envelope);
            entry.name.clone()
        });
        let index = self.patterns.read();
        index.for_each_match(channel, |pattern, subscribers| {
            let name = name.get_or_insert_with(|| Bytes::copy_from_slice(channel));
            let envelope = Envelope::new(
                MessageKind::PMessage,
                name.clone(),
                Some(pattern.clone()),
                payload.clone(),
            );
            delivery.fan_out(subscribers, envelope);
        });
        drop(index);
        drop(shard);
        delivery.finish()
    }
}

/// The tally of one publish, and what it must do once it holds no lock.
///
/// Nothing that may hold the last reference to a payload is dropped while
/// the broker holds a lock, since a payload's `Drop` may itself publish or
/// subscribe; such values wait here until the `Delivery` is dropped, which
/// happens after the lock guards are released, on success and on unwinding
/// alike.
struct Delivery<'a, P> {
    /// The broker, to unsubscribe disconnected subscribers.
    broker: &'a Inner<P>,
    /// Deliveries counted so far (Redis's `PUBLISH` reply).
    count: usize,
    /// Subscribers whose queue overflowed under `Disconnect` during this
    /// publish.
    disconnected: Vec<Arc<SubscriberShared<P>>>,
    /// What the channel's reused envelope displaced.
    retired: Retired<P>,
    /// The first envelope a queue gave back (evicted or discarded); most
    /// publishes give back at most one, and this one needs no allocation.
    unqueued: Option<Arc<Envelope<P>>>,
    /// Any further envelopes given back.
    more_unqueued: Vec<Arc<Envelope<P>>>,
}

impl<'a, P> Delivery<'a, P> {
    /// An empty tally for a publish on `broker`.
    fn new(broker: &'a Inner<P>) -> Self {
        Self {
            broker,
            count: 0,
            disconnected: Vec::new(),
            retired: Retired::Nothing,
            unqueued: None,
            more_unqueued: Vec::new(),
        }
    }

    /// Queues `envelope` for each of `subscribers` (the last one gets the
    /// reference itself, saving a clone) and counts the addressed ones.
    fn fan_out(&mut self, subscribers: &[Arc<SubscriberShared<P>>], envelope: Arc<Envelope<P>>) {
        if let Some((last, rest)) = subscribers.split_last() {
            for subscriber in rest {
                self.push(subscriber, Arc::clone(&envelope));
            }
            self.push(last, envelope);
        }
    }

    /// Queues `envelope` for `subscriber` and counts it if it was addressed.
    fn push(&mut self, subscriber: &Arc<SubscriberShared<P>>, envelope: Arc<Envelope<P>>) {
        let (pushed, unqueued) = subscriber.queue.push(envelope);
        self.count += usize::from(pushed.addressed());
        if pushed == Pushed::Disconnected {
            self.disconnected.push(Arc::clone(subscriber));
        }
        if let Some(envelope) = unqueued {
            match self.unqueued {
                None => self.unqueued = Some(envelope),
                Some(_) => self.more_unqueued.push(envelope),
            }
        }
    }

    /// Ends the publish (see `Drop`) and returns the count.
    fn finish(self) -> usize {
        self.count
    }
}

impl<P> Drop for Delivery<'_, P> {
    /// Unsubscribes the subscribers this publish disconnected; the values
    /// given back by the queues are dropped right after, with no lock held.
    fn drop(&mut self) {
        for subscriber in &self.disconnected {
            self.broker.unsubscribe_all(subscriber);
        }
    }
}
