//! The engine below the handles: the channel registry, the pattern index,
//! publishing, and subscription bookkeeping. [`Broker`](crate::Broker) and
//! [`Subscriber`](crate::Subscriber) are thin handles onto a `Registry`; it
//! depends on neither.
//!
//! # How a message travels
//!
//! Every active channel, shard channel and pattern has a [`Feed`]. A publish
//! appends the message once to the channel's feed and once to the feed of
//! each matching pattern, whatever the number of subscribers, then returns.
//! Subscribers with the default `DropOldest` policy read the feeds through
//! cursors (`reader.rs`); subscribers whose policy must act at publish time
//! (`DropNewest`, `Disconnect`) get the message pushed into their own queue
//! by the publish, as Redis fills each client's output buffer.
//!
//! # Lock order
//!
//! Locks are taken in this order, at most one of each kind at a time, and
//! nothing waits on a lock while holding a later one:
//!
//! 1. the live-subscriber list (`endpoints`; held alone, never nested);
//! 2. one subscriber's `subscriptions`;
//! 3. one channel shard;
//! 4. the pattern index;
//! 5. one feed;
//! 6. one subscriber's queue, or one signal.
//!
//! A feed reader's own state lock comes after 4 and before 5: receiving
//! takes it and then each feed in turn, and unsubscribing takes it under
//! the shard (3) or the index (4), then the feed, so that the cursor ends
//! in the same step as the feed stops counting its reader. `publish` matches patterns under
//! the index's read lock alone and releases it, clones the payload for the
//! matches with no lock held, then holds the channel's shard (3) while it
//! appends to each feed (5), pushing to queue-owning subscribers (6) from
//! there. No user code (a payload's `Clone` or `Drop`, a waker's `wake`)
//! ever runs under any of these locks.
//!
//! # Stamps
//!
//! A subscriber reading several feeds must see each publishing thread's
//! messages in publish order, any two publishes of which one happened
//! before the other (by any synchronisation) in that order, and one
//! channel's messages in the same order as every other subscriber of it.
//! So every feed entry carries a stamp taken from one broker-wide counter
//! while the feed's lock is held, and readers merge their cursors by stamp.
//! A publish appends to its channel's feed and then its patterns' feeds
//! while holding the channel's shard, so its exact entry is stamped before
//! its pattern entries, and every entry of a later publish to the channel
//! after every entry of an earlier one. The counter is only incremented
//! for feeds that have readers.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::Waker;

use bytes::Bytes;
use hashbrown::{DefaultHashBuilder, HashMap};
use smallvec::SmallVec;

use crate::closed::CloseSignal;
use crate::delivery::Delivery;
use crate::endpoint::{Endpoint, Inbox, Subscriptions};
use crate::feed::Feed;
use crate::interest::{InterestKind, Watcher};
use crate::message::{Envelope, MessageKind};
use crate::pattern::Pattern;
use crate::pattern::index::{PatternIndex, Prepared, Retired};
use crate::queue::OverflowPolicy;
use crate::reader::{Garbage, ReceiveContext};
pub(crate) use crate::shard::Namespace;
use crate::shard::{MAX_SHARDS, Shard};
use crate::sync::{Mutex, RwLock};

impl Namespace {
    /// How interest watchers name this namespace.
    fn interest(self) -> InterestKind {
        match self {
            Self::Channel => InterestKind::Channel,
            Self::Shard => InterestKind::ShardChannel,
        }
    }
}

/// Bits of the channel hash below the shard index (see [`MAX_SHARDS`]):
/// hashbrown uses the low bits for the bucket and the top 7 for its tags.
const SHARD_SHIFT: u32 = 40;

/// A value padded to its own cache line pair, so neighbouring shards'
/// locks never share a line (128 bytes covers adjacent-line prefetching).
#[derive(Debug, Default)]
#[repr(align(128))]
struct CachePadded<T>(T);

/// Pattern matches a publish keeps without allocating (see [`PatternMatches`]).
const INLINE_MATCHES: usize = 2;

/// The patterns a publish matches: each one's feed and name, with the copy
/// of the payload its message will carry (taken when it is appended).
/// A few inline: most publishes that match a pattern match one or two,
/// and then the list costs no allocation.
type PatternMatches<P> = SmallVec<[PatternMatch<P>; INLINE_MATCHES]>;

/// One of [`PatternMatches`]: the pattern's feed, its name, and the payload
/// copy.
type PatternMatch<P> = (Arc<Feed<P>>, Bytes, Option<P>);

/// A subscribed pattern.
#[derive(Debug)]
pub(crate) struct PatternEntry<P> {
    /// Its pattern messages and subscribers.
    feed: Arc<Feed<P>>,
    /// Subscribers holding it (never 0: the entry goes with the last one).
    members: usize,
}

/// What an operation must drop or wake once it holds no lock; declared
/// before the lock guards, so it is dropped after them, on unwinding too.
struct Leftovers<P> {
    /// Envelopes and cursors a reader gave up.
    garbage: Garbage<P>,
    /// Feeds of channels or patterns that lost a member.
    feeds: Vec<Arc<Feed<P>>>,
    /// Queue-owning subscribers taken out of a feed, or out of the list.
    endpoints: Vec<Arc<Endpoint<P>>>,
    /// Async receivers to wake.
    wakers: Vec<Waker>,
}

impl<P> Leftovers<P> {
    /// Nothing yet.
    fn new() -> Self {
        Self {
            garbage: Garbage::default(),
            feeds: Vec::new(),
            endpoints: Vec::new(),
            wakers: Vec::new(),
        }
    }
}

impl<P> Drop for Leftovers<P> {
    fn drop(&mut self) {
        for waker in self.wakers.drain(..) {
            waker.wake();
        }
    }
}

/// The broker's shared state; see the module docs.
pub(crate) struct Registry<P> {
    /// Exact and shard channels, spread by channel hash.
    shards: Box<[CachePadded<Mutex<Shard<P>>>]>,
    /// `shards.len() - 1`; the length is a power of two.
    shard_mask: usize,
    /// One hasher for every channel table, so a name is hashed once per
    /// publish for both shard selection and lookup.
    hasher: DefaultHashBuilder,
    /// Every subscribed pattern.
    patterns: RwLock<PatternIndex<PatternEntry<P>>>,
    /// `patterns.len()`, readable without the lock, so publishes skip the
    /// index entirely while nobody holds a pattern.
    pattern_count: AtomicUsize,
    /// Live subscribers by id, so `close` can reach every one.
    endpoints: Mutex<HashMap<u64, Arc<Endpoint<P>>>>,
    /// Id for the next subscriber.
    next_id: AtomicU64,
    /// Set first by `close`: publishes that see it deliver nothing.
    closing: AtomicBool,
    /// Set by `close` once no publish can deliver any more: a reader that
    /// then finds nothing pending is done for good.
    pub(crate) closed: AtomicBool,
    /// Live `Broker` handles; the last one to drop closes the broker.
    pub(crate) handles: AtomicUsize,
    /// Where feed entries take their stamps (see *Stamps*), on a line of
    /// its own.
    stamps: CachePadded<AtomicU64>,
    /// Queue capacity for new subscribers.
    pub(crate) queue_capacity: usize,
    /// Overflow policy for subscribers created with `subscriber()`.
    pub(crate) overflow_policy: OverflowPolicy,
    /// Interest watchers (see `interest.rs`). Lock order: taken under a
    /// shard or the pattern index, never the other way round.
    watchers: Mutex<Vec<Arc<Watcher>>>,
    /// `watchers.len()`, so subscribing skips the list while nobody watches.
    watching: AtomicUsize,
    /// Wakes the [`Closed`](crate::Closed) futures once `close` is done.
    pub(crate) close_signal: Arc<CloseSignal>,
}

impl<P> Registry<P> {
    /// What a subscriber's receive reads of the broker.
    pub(crate) fn receive_context(&self) -> ReceiveContext<'_> {
        ReceiveContext {
            closed: &self.closed,
            clock: &self.stamps.0,
        }
    }

    /// A registry with `shards` shards (a power of two, at most
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
            endpoints: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            handles: AtomicUsize::new(1),
            stamps: CachePadded(AtomicU64::new(0)),
            queue_capacity,
            overflow_policy,
            watchers: Mutex::new(Vec::new()),
            watching: AtomicUsize::new(0),
            close_signal: Arc::default(),
        }
    }

    /// Tells the interest watchers that `name` became active or inactive.
    /// Called under the lock that guards `name` (its shard, or the pattern
    /// index), so each watcher sees a name's changes in order.
    fn note_interest(
        &self,
        kind: InterestKind,
        name: &Bytes,
        active: bool,
        wakers: &mut Vec<Waker>,
    ) {
        if self.watching.load(Ordering::Acquire) == 0 {
            return;
        }
        for watcher in self.watchers.lock().iter() {
            wakers.extend(watcher.note(kind, name, active));
        }
    }

    /// Registers an interest watcher and tells it every name held now.
    pub(crate) fn watch(&self) -> Arc<Watcher> {
        let watcher = Arc::new(Watcher::default());
        {
            let mut watchers = self.watchers.lock();
            watchers.push(Arc::clone(&watcher));
            self.watching.store(watchers.len(), Ordering::Release);
        }
        if self.closed.load(Ordering::Acquire) {
            drop(watcher.close());
        }
        // What is held now, each name read under the lock its changes are
        // noted under, so the snapshot and the changes agree.
        for shard in self.shards.iter() {
            let shard = shard.0.lock();
            for (ns, kind) in [
                (Namespace::Channel, InterestKind::Channel),
                (Namespace::Shard, InterestKind::ShardChannel),
            ] {
                for entry in shard.entries(ns) {
                    drop(watcher.note(kind, &entry.name, true));
                }
            }
        }
        let index = self.patterns.read();
        for (pattern, _) in index.iter() {
            drop(watcher.note(InterestKind::Pattern, pattern, true));
        }
        drop(index);
        watcher
    }

    /// Unregisters an interest watcher.
    pub(crate) fn unwatch(&self, watcher: &Arc<Watcher>) {
        let mut watchers = self.watchers.lock();
        watchers.retain(|w| !Arc::ptr_eq(w, watcher));
        self.watching.store(watchers.len(), Ordering::Release);
    }

    /// The number of interest watchers registered.
    pub(crate) fn watcher_count(&self) -> usize {
        self.watching.load(Ordering::Acquire)
    }

    /// The number of shards.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The number of live subscribers.
    pub(crate) fn subscriber_count(&self) -> usize {
        self.endpoints.lock().len()
    }

    /// The hash of a channel name: picks its shard and finds it there.
    #[inline]
    fn hash(&self, name: &[u8]) -> u64 {
        self.hasher.hash_one(name)
    }

    /// The shard holding the channel whose hash is `hash`.
    #[inline]
    fn shard(&self, hash: u64) -> &Mutex<Shard<P>> {
        &self.shards[(hash >> SHARD_SHIFT) as usize & self.shard_mask].0
    }

    /// Whether the broker is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// `PUBSUB NUMPAT`.
    pub(crate) fn numpat(&self) -> usize {
        self.patterns.read().len()
    }

    /// `PUBSUB CHANNELS` / `SHARDCHANNELS`.
    pub(crate) fn channels(&self, ns: Namespace, pattern: Option<&[u8]>) -> Vec<Bytes> {
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
    pub(crate) fn numsub<I>(&self, ns: Namespace, channels: I) -> Vec<(Bytes, usize)>
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
                    .map_or(0, |e| e.members);
                (Bytes::copy_from_slice(name), count)
            })
            .collect()
    }

    /// Registers a new subscriber with these queue settings.
    pub(crate) fn register(&self, capacity: usize, policy: OverflowPolicy) -> Arc<Endpoint<P>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let endpoint = Arc::new(Endpoint::new(id, capacity, policy));
        let mut endpoints = self.endpoints.lock();
        endpoints.insert(id, Arc::clone(&endpoint));
        // Checked under the list's lock: either `close` already set the flag
        // (seen here) or it will find this subscriber in the list.
        if self.closing.load(Ordering::Acquire) {
            if let Inbox::Queue(queue) = &endpoint.inbox {
                // Nobody can be waiting on a queue that nobody has seen.
                drop(queue.close());
            }
        }
        drop(endpoints);
        endpoint
    }

    /// Stops the broker; see [`Broker::close`](crate::Broker::close).
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        // A barrier: every publish that found the broker open holds its
        // channel's shard until it has appended, so once each shard has
        // been taken once, nothing more can arrive anywhere.
        for shard in self.shards.iter() {
            drop(shard.0.lock());
        }
        self.closed.store(true, Ordering::Release);
        let watchers: Vec<_> = self.watchers.lock().clone();
        for watcher in &watchers {
            if let Some(waker) = watcher.close() {
                waker.wake();
            }
        }
        let endpoints: Vec<_> = self.endpoints.lock().values().cloned().collect();
        for endpoint in &endpoints {
            let waker = match &endpoint.inbox {
                Inbox::Queue(queue) => queue.close(),
                Inbox::Feeds(reader) => reader.signal().ring(),
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
        // Last, with no lock held: whoever waits for the close sees it done.
        self.close_signal.close();
    }

    /// Makes `endpoint` a member of `feed`: a reader starting now, or a
    /// queue-owning subscriber. Returns a reader's start position.
    fn join_feed(&self, feed: &Feed<P>, endpoint: &Arc<Endpoint<P>>) -> Option<u64> {
        match &endpoint.inbox {
            Inbox::Queue(_) => {
                feed.join_strict(Arc::clone(endpoint));
                None
            }
            Inbox::Feeds(reader) => {
                let stamped = reader.prepare_join();
                Some(feed.join_reader(endpoint.capacity(), stamped))
            }
        }
    }

    /// Takes `endpoint` out of `feed`'s members. A reader's cursor ends
    /// here too, in the same step as the feed stops counting it (see
    /// `Feed::leave_reader`); what it is still owed stays receivable.
    fn leave_feed(&self, feed: &Feed<P>, endpoint: &Endpoint<P>, leftovers: &mut Leftovers<P>) {
        match &endpoint.inbox {
            Inbox::Queue(_) => {
                leftovers.endpoints.extend(feed.leave_strict(endpoint.id()));
            }
            Inbox::Feeds(reader) => reader.leave(feed, &mut leftovers.garbage),
        }
    }

    /// Gives `endpoint`'s reader its cursor on a feed it joined at `start`
    /// (`None` for a queue-owning subscriber, which has no cursors).
    fn start_cursor(
        &self,
        endpoint: &Endpoint<P>,
        feed: Arc<Feed<P>>,
        start: Option<u64>,
        leftovers: &mut Leftovers<P>,
    ) {
        match (&endpoint.inbox, start) {
            (Inbox::Feeds(reader), Some(start)) => {
                leftovers.wakers.extend(reader.add(feed, start));
            }
            _ => leftovers.feeds.push(feed),
        }
    }

    /// Takes `endpoint` out of channel `name` in `ns`.
    fn leave_channel(
        &self,
        ns: Namespace,
        name: &[u8],
        endpoint: &Endpoint<P>,
        leftovers: &mut Leftovers<P>,
    ) {
        let hash = self.hash(name);
        let mut shard = self.shard(hash).lock();
        let Some((feed, last)) = shard.leave(ns, hash, name) else {
            return;
        };
        self.leave_feed(&feed, endpoint, leftovers);
        if last {
            self.note_interest(
                ns.interest(),
                &Bytes::copy_from_slice(name),
                false,
                &mut leftovers.wakers,
            );
        }
        drop(shard);
        leftovers.feeds.push(feed);
    }

    /// Takes `endpoint` out of each of `patterns`, under the index's write
    /// lock.
    fn leave_patterns(
        &self,
        patterns: &[Bytes],
        endpoint: &Endpoint<P>,
        leftovers: &mut Leftovers<P>,
    ) {
        if patterns.is_empty() {
            return;
        }
        // Dropped after the guard: a long pattern's matcher is freed with
        // no lock held.
        let mut retired: Vec<Retired> = Vec::new();
        let mut index = self.patterns.write();
        for pattern in patterns {
            let Some(entry) = index.get_mut(pattern) else {
                continue;
            };
            entry.members -= 1;
            let feed = Arc::clone(&entry.feed);
            let last = entry.members == 0;
            self.leave_feed(&feed, endpoint, leftovers);
            if last {
                if let Some((entry, rest)) = index.take(pattern) {
                    leftovers.feeds.push(entry.feed);
                    retired.push(rest);
                }
                self.note_interest(InterestKind::Pattern, pattern, false, &mut leftovers.wakers);
            }
            leftovers.feeds.push(feed);
        }
        self.pattern_count.store(index.len(), Ordering::Release);
        drop(index);
        drop(retired);
    }

    /// Removes every subscription of `endpoint` and marks it gone, so it
    /// ignores later subscribe calls. Messages it was owed stay receivable.
    pub(crate) fn unsubscribe_all(&self, endpoint: &Endpoint<P>) {
        let mut leftovers = Leftovers::new();
        let mut subscriptions = endpoint.subscriptions.lock();
        let Subscriptions {
            channels,
            patterns,
            shard_channels,
            ..
        } = std::mem::take(&mut *subscriptions);
        subscriptions.gone = true;
        for name in &channels {
            self.leave_channel(Namespace::Channel, name, endpoint, &mut leftovers);
        }
        for name in &shard_channels {
            self.leave_channel(Namespace::Shard, name, endpoint, &mut leftovers);
        }
        let patterns: Vec<Bytes> = patterns.into_iter().collect();
        self.leave_patterns(&patterns, endpoint, &mut leftovers);
        drop(subscriptions);
    }

    /// Unsubscribes `endpoint` from everything and forgets it; called when
    /// its handle drops. What it had not received is given up.
    pub(crate) fn remove(&self, endpoint: &Endpoint<P>) {
        let mut leftovers = Leftovers::new();
        leftovers
            .endpoints
            .extend(self.endpoints.lock().remove(&endpoint.id()));
        self.unsubscribe_all(endpoint);
        if let Inbox::Feeds(reader) = &endpoint.inbox {
            reader.release_all(&mut leftovers.garbage);
        }
    }

    /// `SUBSCRIBE` / `SSUBSCRIBE`; returns the count Redis reports.
    pub(crate) fn subscribe<I>(&self, endpoint: &Arc<Endpoint<P>>, ns: Namespace, names: I) -> usize
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut leftovers = Leftovers::new();
        let mut subscriptions = endpoint.subscriptions.lock();
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
                let mut shard = self.shard(hash).lock();
                let (feed, created) = shard.join(ns, hash, &name, |n| self.hash(n), Feed::new);
                if created {
                    self.note_interest(ns.interest(), &name, true, &mut leftovers.wakers);
                }
                let start = self.join_feed(&feed, endpoint);
                drop(shard);
                // At once, so the next join sees this cursor (see
                // `Reader::prepare_join`).
                self.start_cursor(endpoint, feed, start, &mut leftovers);
            }
        }
        subscriptions.count_for(ns)
    }

    /// `UNSUBSCRIBE` / `SUNSUBSCRIBE` (all when `names` is empty); returns
    /// the count Redis reports.
    pub(crate) fn unsubscribe<I>(&self, endpoint: &Endpoint<P>, ns: Namespace, names: I) -> usize
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut leftovers = Leftovers::new();
        let mut subscriptions = endpoint.subscriptions.lock();
        let held = subscriptions.names_mut(ns);
        let mut names = names.into_iter().peekable();
        let removed: Vec<Bytes> = if names.peek().is_none() {
            held.drain().collect()
        } else {
            names.filter_map(|name| held.take(name.as_ref())).collect()
        };
        for name in &removed {
            self.leave_channel(ns, name, endpoint, &mut leftovers);
        }
        subscriptions.count_for(ns)
    }

    /// `PSUBSCRIBE`; returns the count Redis reports.
    ///
    /// Every new pattern is parsed and compiled before the index's write
    /// lock is taken, so publishers wait only for the inserts themselves
    /// (see [`Prepared::new`]).
    pub(crate) fn psubscribe<I>(&self, endpoint: &Arc<Endpoint<P>>, patterns: I) -> usize
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut leftovers = Leftovers::new();
        // Declared before the lock guards, so dropped after them: patterns
        // someone else already held keep their compiled form, and this one,
        // possibly large, is freed with no lock held.
        let mut unused: Vec<Prepared> = Vec::new();
        let mut subscriptions = endpoint.subscriptions.lock();
        if subscriptions.gone {
            return 0;
        }
        let mut fresh: Vec<Prepared> = Vec::new();
        for pattern in patterns {
            let pattern = pattern.as_ref();
            if subscriptions.patterns.contains(pattern) {
                continue;
            }
            // Held from here on, so a repeat in `patterns` is skipped.
            let pattern = Bytes::copy_from_slice(pattern);
            subscriptions.patterns.insert(pattern.clone());
            fresh.push(Prepared::new(pattern));
        }
        if fresh.is_empty() {
            // Re-subscribing to held patterns never blocks publishers.
            return subscriptions.count();
        }
        let mut index = self.patterns.write();
        for prepared in fresh {
            let pattern = prepared.pattern().clone();
            let feed = match index.get_mut(&pattern) {
                Some(entry) => {
                    entry.members += 1;
                    unused.push(prepared);
                    Arc::clone(&entry.feed)
                }
                None => {
                    let feed = Feed::new_pattern();
                    let entry = PatternEntry {
                        feed: Arc::clone(&feed),
                        members: 1,
                    };
                    unused.extend(index.insert_prepared(prepared, entry));
                    self.note_interest(
                        InterestKind::Pattern,
                        &pattern,
                        true,
                        &mut leftovers.wakers,
                    );
                    feed
                }
            };
            let start = self.join_feed(&feed, endpoint);
            self.start_cursor(endpoint, feed, start, &mut leftovers);
        }
        self.pattern_count.store(index.len(), Ordering::Release);
        drop(index);
        subscriptions.count()
    }

    /// `PUNSUBSCRIBE` (all when `patterns` is empty); returns the count
    /// Redis reports.
    pub(crate) fn punsubscribe<I>(&self, endpoint: &Endpoint<P>, patterns: I) -> usize
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut leftovers = Leftovers::new();
        let mut subscriptions = endpoint.subscriptions.lock();
        let mut patterns = patterns.into_iter().peekable();
        let removed: Vec<Bytes> = if patterns.peek().is_none() {
            subscriptions.patterns.drain().collect()
        } else {
            patterns
                .filter_map(|p| subscriptions.patterns.take(p.as_ref()))
                .collect()
        };
        self.leave_patterns(&removed, endpoint, &mut leftovers);
        subscriptions.count()
    }
}

impl<P: Clone> Registry<P> {
    /// `PUBLISH` / `SPUBLISH`: appends the message to the channel's feed and
    /// to each matching pattern's, and returns the number of deliveries.
    pub(crate) fn publish(&self, ns: Namespace, channel: &[u8], payload: P) -> usize {
        if self.closing.load(Ordering::Acquire) {
            return 0;
        }
        // Declared before any lock guard, so that it is dropped after them:
        // it wakes receivers and drops what the feeds gave back.
        let mut delivery = Delivery::new(self);
        let hash = self.hash(channel);
        // Patterns are matched, and the payload cloned for each match,
        // before any channel lock is taken: a payload's `Clone` may publish.
        // The feeds stay here until after the shard is released: a pattern
        // unsubscribed meanwhile may leave this publish holding the last
        // reference to its feed.
        // `None` without patterns: an empty list would still cost this
        // publish its setting up and dropping.
        let mut matches = (ns == Namespace::Channel
            && self.pattern_count.load(Ordering::Acquire) > 0)
            .then(|| self.pattern_matches(channel, &payload));
        let kind = match ns {
            Namespace::Channel => MessageKind::Message,
            Namespace::Shard => MessageKind::SMessage,
        };
        // Held while appending to every feed, so one channel's publishes
        // reach every feed, and so every subscriber, in one order.
        let shard = self.shard(hash).lock();
        if self.closing.load(Ordering::Acquire) {
            delivery.unused = Some(payload);
            drop(shard);
            return 0;
        }
        let clock = &self.stamps.0;
        let entry = shard.find(ns, hash, channel);
        match entry {
            Some(entry) => {
                let envelope = Envelope::new(kind, entry.name.clone(), None, payload);
                entry.feed.append(envelope, clock, &mut delivery);
            }
            None => delivery.unused = Some(payload),
        }
        if let Some((last, others)) = matches.as_mut().and_then(|m| m.split_last_mut()) {
            // The active channel's name is shared; otherwise one copy.
            let name = entry.map_or_else(|| Bytes::copy_from_slice(channel), |e| e.name.clone());
            let mut append = |(feed, pattern, copy): &mut PatternMatch<P>, name: Bytes| {
                if let Some(copy) = copy.take() {
                    let envelope =
                        Envelope::new(MessageKind::PMessage, name, Some(pattern.clone()), copy);
                    feed.append(envelope, clock, &mut delivery);
                }
            };
            for matched in others {
                append(matched, name.clone());
            }
            // The last takes the name itself: a copied name that only one
            // message carries is never cloned, and so never turned into a
            // shared one (an allocation of its own).
            append(last, name);
        }
        drop(shard);
        delivery.finish()
    }

    /// The patterns matching `channel`, each with its feed, its name and a
    /// copy of the payload. Matched under the index's read lock; the
    /// payload is cloned after it is released.
    fn pattern_matches(&self, channel: &[u8], payload: &P) -> PatternMatches<P> {
        let mut matches = PatternMatches::new();
        self.patterns
            .read()
            .for_each_match(channel, |pattern, entry| {
                matches.push((Arc::clone(&entry.feed), pattern.clone(), None));
            });
        for (_, _, copy) in &mut matches {
            *copy = Some(payload.clone());
        }
        matches
    }
}
