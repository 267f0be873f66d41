//! The broker handle: publishing, creating subscribers, introspection and
//! shutdown. The engine behind it lives in `registry.rs`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::builder::{BrokerBuilder, SubscriberBuilder};
use crate::closed::Closed;
use crate::filter::ChannelFilter;
use crate::interest::InterestWatch;
use crate::payload::IntoPayload;
use crate::queue::OverflowPolicy;
use crate::registry::{Namespace, Registry};
use crate::subscriber::Subscriber;
use crate::weak::WeakBroker;

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
/// let sub = broker.subscriber();
/// sub.subscribe(["conversations:new"]);
///
/// let receivers = broker.publish("conversations:new", "hello");
/// assert_eq!(receivers, 1);
/// assert_eq!(sub.recv()?.payload(), "hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Broker<P = Bytes> {
    /// The shared broker.
    inner: Arc<Registry<P>>,
}

impl<P> Broker<P> {
    /// The first handle to a new broker.
    pub(crate) fn from_registry(registry: Registry<P>) -> Self {
        Self {
            inner: Arc::new(registry),
        }
    }

    /// A handle the caller has already counted in `inner.handles`.
    pub(crate) fn from_counted(inner: Arc<Registry<P>>) -> Self {
        Self { inner }
    }
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
    /// let sub = broker.subscriber();
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
    /// let sub = broker.subscriber_with(OverflowPolicy::Disconnect);
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
        SubscriberBuilder::new(self, self.inner.queue_capacity, self.inner.overflow_policy)
    }

    /// Registers a new subscriber with these queue settings.
    pub(crate) fn register(&self, capacity: usize, policy: OverflowPolicy) -> Subscriber<P> {
        let endpoint = self.inner.register(capacity, policy);
        Subscriber::new(endpoint, Arc::clone(&self.inner))
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
    /// `payload` is a `P`, moved in without a copy, or anything else
    /// [`IntoPayload<P>`](IntoPayload) converts: for a `Broker<Bytes>`,
    /// borrowed strings and byte slices (copied) as well as `String` and
    /// `Vec<u8>` (moved).
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let a = broker.subscriber();
    /// let b = broker.subscriber();
    /// a.subscribe(["news.sport"]);
    /// a.psubscribe(["news.*", "*"]);
    /// b.psubscribe(["news.*"]);
    /// assert_eq!(broker.publish("news.sport", "goal"), 4);
    ///
    /// let line = String::from("own goal");
    /// assert_eq!(broker.publish("news.sport", line.as_str()), 4); // borrowed: copied
    /// assert_eq!(broker.publish("news.sport", line), 4);          // owned: moved
    /// ```
    pub fn publish(&self, channel: impl AsRef<[u8]>, payload: impl IntoPayload<P>) -> usize {
        self.inner
            .publish(Namespace::Channel, channel.as_ref(), payload.into_payload())
    }

    /// Publishes `payload` on the shard channel `channel` (Redis 7
    /// `SPUBLISH`) and returns the number of shard subscribers reached.
    ///
    /// Only [`ssubscribe`](Subscriber::ssubscribe)rs of that exact name
    /// receive it, as [`MessageKind::SMessage`](crate::MessageKind::SMessage); channel and pattern
    /// subscribers never do.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sharded = broker.subscriber();
    /// let plain = broker.subscriber();
    /// sharded.ssubscribe(["same"]);
    /// plain.subscribe(["same"]);
    /// plain.psubscribe(["*"]);
    /// assert_eq!(broker.spublish("same", "S"), 1);
    /// assert_eq!(broker.publish("same", "P"), 2);
    /// ```
    pub fn spublish(&self, channel: impl AsRef<[u8]>, payload: impl IntoPayload<P>) -> usize {
        self.inner
            .publish(Namespace::Shard, channel.as_ref(), payload.into_payload())
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
    /// let sub = broker.subscriber();
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
    /// let sub = broker.subscriber();
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
    /// let sub = broker.subscriber();
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
    /// let sub = broker.subscriber();
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
    /// let (a, b) = (broker.subscriber(), broker.subscriber());
    /// a.psubscribe(["foo*", "bar*"]);
    /// b.psubscribe(["foo*", "baz*"]);
    /// assert_eq!(broker.numpat(), 3);
    /// ```
    pub fn numpat(&self) -> usize {
        self.inner.numpat()
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
    /// let sub = broker.subscriber();
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

    /// Watches subscription interest: which channels, patterns and shard
    /// channels have at least one subscriber, and when that changes. The
    /// watch first reports every name held now, then each change; see
    /// [`InterestWatch`].
    ///
    /// A bridge to another broker follows it to hold one upstream
    /// subscription per name held here; a test can use it to wait until the
    /// code under test has subscribed.
    ///
    /// # Examples
    ///
    /// ```
    /// use tannoy::InterestKind;
    ///
    /// let broker = tannoy::Broker::new();
    /// let watch = broker.watch_interest();
    /// let (a, b) = (broker.subscriber(), broker.subscriber());
    /// a.subscribe(["news"]);
    /// b.subscribe(["news"]); // not a change: "news" is held already
    /// let first = watch.try_next().unwrap();
    /// assert_eq!((first.kind(), first.is_active()), (InterestKind::Channel, true));
    /// assert!(watch.try_next().is_none());
    /// drop(a);
    /// drop(b); // the last subscriber leaves
    /// assert!(!watch.try_next().unwrap().is_active());
    /// ```
    pub fn watch_interest(&self) -> InterestWatch
    where
        P: Send + Sync + 'static,
    {
        let watcher = self.inner.watch();
        let registry = Arc::clone(&self.inner);
        InterestWatch::new(watcher, Box::new(move |w| registry.unwatch(w)))
    }

    /// A future that completes once the broker is closed: by
    /// [`close`](Self::close), or when its last handle drops.
    ///
    /// The future holds no handle, so it does not keep the broker open; see
    /// [`Closed`]. Use it to run clean-up when the application shuts the
    /// broker down, or to stop a task that serves the broker.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let broker = tannoy::Broker::new();
    /// let closed = broker.closed();
    /// let watcher = tokio::spawn(async move {
    ///     closed.await;
    ///     "cleaned up"
    /// });
    /// broker.publish("c", "working");
    /// drop(broker); // the last handle: the broker closes
    /// assert_eq!(watcher.await.unwrap(), "cleaned up");
    /// # }
    /// ```
    pub fn closed(&self) -> Closed {
        Closed::new(Arc::clone(&self.inner.close_signal))
    }

    /// A [`WeakBroker`]: a handle that does not keep the broker open, and
    /// turns back into a `Broker` with [`WeakBroker::upgrade`] while the
    /// broker is open.
    ///
    /// # Examples
    ///
    /// A payload that holds a handle to its own broker would keep the broker
    /// open for as long as a subscriber keeps the message; a weak one does
    /// not:
    ///
    /// ```
    /// use tannoy::{BrokerBuilder, WeakBroker};
    ///
    /// #[derive(Clone)]
    /// struct Job { reply_to: WeakBroker<Job>, id: u32 }
    ///
    /// let broker = BrokerBuilder::<Job>::new().build();
    /// let worker = broker.subscriber();
    /// worker.subscribe(["jobs"]);
    /// broker.publish("jobs", Job { reply_to: broker.downgrade(), id: 7 });
    ///
    /// let job = worker.recv()?;
    /// assert_eq!(job.payload().id, 7);
    /// let replies = job.payload().reply_to.upgrade().expect("open");
    /// assert_eq!(replies.publish("done", job.payload().clone()), 0);
    /// drop(replies);
    ///
    /// drop(broker); // the last strong handle: the broker closes at once
    /// assert!(job.payload().reply_to.upgrade().is_none());
    /// assert!(worker.recv().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn downgrade(&self) -> WeakBroker<P> {
        WeakBroker::new(Arc::downgrade(&self.inner))
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
        self.inner.is_closed()
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
            .field("shards", &self.inner.shard_count())
            .field("queue_capacity", &self.inner.queue_capacity)
            .field("overflow_policy", &self.inner.overflow_policy)
            .field("subscribers", &self.inner.subscriber_count())
            .field("patterns", &self.numpat())
            .field("interest_watches", &self.inner.watcher_count())
            .field("closed", &self.is_closed())
            .finish()
    }
}
