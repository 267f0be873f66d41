//! The broker: its handle, publishing, subscription bookkeeping and
//! introspection.
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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use hashbrown::{DefaultHashBuilder, HashMap};

use crate::builder::{BrokerBuilder, MAX_SHARDS, SubscriberBuilder};
use crate::delivery::Delivery;
use crate::filter::ChannelFilter;
use crate::message::{Envelope, MessageKind};
use crate::pattern::Pattern;
use crate::pattern::index::PatternIndex;
use crate::queue::OverflowPolicy;
use crate::shard::{Namespace, Shard, Subscribers};
use crate::subscriber::{Subscriber, SubscriberShared, Subscriptions};
use crate::sync::{Mutex, RwLock};

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

impl<P> Broker<P> {
    /// The first handle to a new broker.
    pub(crate) fn from_inner(inner: Inner<P>) -> Self {
        Self {
            inner: Arc::new(inner),
        }
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
        SubscriberBuilder::new(self, self.inner.queue_capacity, self.inner.overflow_policy)
    }

    /// Registers a new subscriber with these queue settings.
    pub(crate) fn register(&self, capacity: usize, policy: OverflowPolicy) -> Subscriber<P> {
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

impl<P> Inner<P> {
    /// A broker's state with `shards` shards (a power of two, at most
    /// [`MAX_SHARDS`]) and these defaults for new subscribers.
    pub(crate) fn new(
        shards: usize,
        queue_capacity: usize,
        overflow_policy: OverflowPolicy,
    ) -> Self {
        debug_assert!(shards.is_power_of_two() && shards <= MAX_SHARDS);
        Self {
            shards: (0..shards)
                .map(|_| CachePadded(Mutex::new(Shard::default())))
                .collect(),
            shard_mask: shards - 1,
            hasher: DefaultHashBuilder::default(),
            patterns: RwLock::new(PatternIndex::new()),
            pattern_count: AtomicUsize::new(0),
            subscribers: Mutex::new(HashMap::new()),
            next_subscriber_id: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            handles: AtomicUsize::new(1),
            queue_capacity,
            overflow_policy,
        }
    }

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
    pub(crate) fn unsubscribe_all(&self, subscriber: &SubscriberShared<P>) {
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
                let held = subscriptions.names_mut(ns);
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
        subscriptions.count_for(ns)
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
        let held = subscriptions.names_mut(ns);
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
        subscriptions.count_for(ns)
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
