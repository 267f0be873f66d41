//! A feed: the messages of one active channel, shard channel or pattern,
//! stored once for all of its readers.
//!
//! A publish appends one entry to the feed (O(1), whatever the number of
//! subscribers) and every reader walks the feed with its own cursor, as
//! tokio's broadcast channel does. An entry remembers how many readers have
//! yet to read it; the last one takes the envelope out instead of cloning
//! it, so a consumed message is held by its receivers only (a sole receiver
//! owns it outright), and the feed frees entries as soon as every reader has
//! passed them.
//!
//! The feed keeps at most `retention` entries: the largest queue capacity of
//! any reader it has had. When a reader lags further than that, the writer
//! evicts the oldest entry and the lagging reader later finds a gap before
//! `front`, which it counts as dropped: it would have dropped those messages
//! anyway, being more than its capacity behind.
//!
//! Subscribers whose overflow policy must be decided at publish time
//! (`DropNewest`, `Disconnect`) are not readers: they sit in `strict` and
//! each gets the envelope pushed into its own queue, as Redis copies a
//! message into each client's output buffer.
//!
//! # Positions
//!
//! ```text
//!   front                                 tail
//!     |  entries (oldest first)             |
//!     v                                     v
//!     [e0][e1][e2] ... [en-1]               next entry goes here
//! ```
//!
//! Positions only grow. A reader's cursor `next` may be below `front` (it
//! lost entries) but never above `tail`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use smallvec::SmallVec;

use crate::delivery::Delivery;
use crate::endpoint::Endpoint;
use crate::message::Envelope;
use crate::signal::Signal;
use crate::sync::Mutex;

/// One message in a feed.
#[derive(Debug)]
struct Slot<P> {
    /// Orders it against entries of the subscriber's other feeds (see
    /// `registry.rs`, *Stamps*).
    stamp: u64,
    /// Readers that have yet to read it.
    unread: usize,
    /// The message, until the last reader takes it.
    envelope: Option<Arc<Envelope<P>>>,
}

/// Everything behind the feed's lock.
#[derive(Debug)]
struct FeedState<P> {
    /// Entries from `front` on, oldest first.
    entries: VecDeque<Slot<P>>,
    /// Position of `entries[0]`.
    front: u64,
    /// Position the next entry takes.
    tail: u64,
    /// Readers subscribed now; each new entry waits for this many.
    readers: usize,
    /// Those of them that merge several feeds and so need entries stamped
    /// (see `registry.rs`, *Stamps*); while there are none, entries skip the
    /// shared stamp counter.
    stamped: usize,
    /// Most entries kept: the largest capacity of any reader so far.
    retention: usize,
    /// Subscribers with their own queue, in subscription order.
    strict: Vec<Arc<Endpoint<P>>>,
    /// Signals of readers waiting for the next entry.
    watchers: Vec<Arc<Signal>>,
    /// Bumped whenever `watchers` is emptied, so a reader knows whether its
    /// signal is still in the list without searching it.
    watch_epoch: u64,
    /// Readers of many feeds, told of every append (see [`Ready`]), each
    /// with the slot this feed has in its list. One inline: a channel held
    /// by one such reader (a client holding a thousand rooms of its own)
    /// costs no allocation here.
    ready: SmallVec<[(Arc<Ready>, u32); 1]>,
}

/// The feeds with news for one reader of many feeds.
///
/// A reader holding a handful of subscriptions finds what is new by looking
/// at each feed's tail. One holding hundreds (a client subscribed to every
/// room, a monitor holding thousands of patterns) would look at every
/// feed on every receive; instead it registers a `Ready` with each of its
/// feeds, and every append names its feed here. The reader then looks only
/// at the feeds named since it last looked, and at those it knows still
/// hold something. Each feed is named at most once until the reader takes
/// the names, so the list stays as short as the reader's subscriptions,
/// however much is published while it does not read.
///
/// A feed names itself by a slot number the reader gave it when it joined:
/// the reader maps slots to its cursors with one small array, and the list
/// de-duplicates with one bit a slot, so a subscription costs the reader a
/// few bytes here rather than a hash-table entry.
#[derive(Debug)]
pub(crate) struct Ready {
    /// Feeds named since the reader last took the names.
    named: Mutex<ReadyState>,
    /// The reader's signal, rung when the first name arrives.
    pub(crate) signal: Arc<Signal>,
}

/// What a [`Ready`]'s lock protects.
#[derive(Debug, Default)]
struct ReadyState {
    /// Slots of the feeds named, in the order they were named.
    list: Vec<u32>,
    /// One bit a slot: set while the slot is in `list`.
    listed: Vec<u64>,
}

/// Where `slot`'s bit lives in [`ReadyState::listed`]: its word and mask.
#[inline]
fn listed_bit(slot: u32) -> (usize, u64) {
    ((slot / 64) as usize, 1u64 << (slot % 64))
}

impl Ready {
    /// A list for the reader whose signal is `signal`.
    pub(crate) fn new(signal: Arc<Signal>) -> Arc<Self> {
        Arc::new(Self {
            named: Mutex::new(ReadyState::default()),
            signal,
        })
    }

    /// Names the feed in `slot`; returns whether the list was empty (the
    /// reader then needs ringing).
    fn name(&self, slot: u32) -> bool {
        let mut named = self.named.lock();
        let named = &mut *named;
        let was_empty = named.list.is_empty();
        let (word, bit) = listed_bit(slot);
        if word >= named.listed.len() {
            named.listed.resize(word + 1, 0);
        }
        if named.listed[word] & bit == 0 {
            named.listed[word] |= bit;
            named.list.push(slot);
        }
        was_empty
    }

    /// Takes the names, oldest first, into `out`.
    pub(crate) fn take(&self, out: &mut Vec<u32>) {
        let mut named = self.named.lock();
        let named = &mut *named;
        for &slot in &named.list {
            let (word, bit) = listed_bit(slot);
            named.listed[word] &= !bit;
        }
        out.append(&mut named.list);
    }

    /// Whether any feed was named since the names were last taken.
    pub(crate) fn any(&self) -> bool {
        !self.named.lock().list.is_empty()
    }
}

/// A feed; see the module docs.
#[derive(Debug)]
pub(crate) struct Feed<P> {
    /// The entries and the feed's members.
    state: Mutex<FeedState<P>>,
    /// `state.tail`, readable without the lock: a reader with nothing to
    /// read learns it from one atomic load.
    tail: AtomicU64,
    /// Whether this is a pattern's feed (its entries are `PMessage`s), so
    /// readers order its entries without looking into them.
    pattern: bool,
}

/// An entry as a reader holds it: its stamp and its envelope.
pub(crate) type Stamped<P> = (u64, Arc<Envelope<P>>);

/// What a reader took from a feed in one [`Feed::read`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Read {
    /// Entries addressed to the reader still in the feed after this read
    /// (as the read saw it), so a reader can count what it has pending
    /// without looking at the feed's tail again.
    pub(crate) left: u64,
    /// Entries the reader lost: evicted before it read them.
    pub(crate) lost: u64,
}

impl<P> Feed<P> {
    /// An empty feed of a channel or shard channel.
    pub(crate) fn new() -> Arc<Self> {
        Self::with_kind(false)
    }

    /// An empty feed of a pattern.
    pub(crate) fn new_pattern() -> Arc<Self> {
        Self::with_kind(true)
    }

    /// Whether this is a pattern's feed.
    #[inline]
    pub(crate) fn is_pattern(&self) -> bool {
        self.pattern
    }

    /// Registers a reader of many feeds: every append from now on names
    /// this feed in `ready`, as `slot`.
    pub(crate) fn join_ready(&self, ready: &Arc<Ready>, slot: u32) {
        self.state.lock().ready.push((Arc::clone(ready), slot));
    }

    /// An empty feed; `pattern` for a pattern's.
    fn with_kind(pattern: bool) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(FeedState {
                entries: VecDeque::new(),
                front: 0,
                tail: 0,
                readers: 0,
                stamped: 0,
                retention: 0,
                strict: Vec::new(),
                watchers: Vec::new(),
                watch_epoch: 0,
                ready: SmallVec::new(),
            }),
            tail: AtomicU64::new(0),
            pattern,
        })
    }

    /// Position the next entry takes.
    #[inline]
    pub(crate) fn tail(&self) -> u64 {
        self.tail.load(Ordering::Acquire)
    }

    /// Adds a reader whose queue holds `capacity` messages (and which
    /// needs stamps if `stamped`); returns its cursor's start, so it reads
    /// only what is appended from now on.
    pub(crate) fn join_reader(&self, capacity: usize, stamped: bool) -> u64 {
        let mut state = self.state.lock();
        state.readers += 1;
        state.stamped += usize::from(stamped);
        state.retention = state.retention.max(capacity);
        state.tail
    }

    /// Notes that one of the readers now needs stamps.
    pub(crate) fn stamp_reader(&self) {
        self.state.lock().stamped += 1;
    }

    /// Removes a reader (and its signal, if it waits here) whose cursor is
    /// at `*next`, and takes everything it is still owed into `buf` under
    /// the same lock. Returns the end of its cursor (it was owed what was
    /// appended before now), what it read, and the first entry read.
    ///
    /// One lock for both: the feed evicts by its own length, so if the
    /// reader left first and read later, the appends in between (not
    /// addressed to it) could push out entries it is owed although its own
    /// queue never held more than its capacity.
    pub(crate) fn leave_reader(
        &self,
        signal: &Arc<Signal>,
        stamped: bool,
        next: &mut u64,
        buf: &mut VecDeque<Stamped<P>>,
    ) -> (u64, Read, Option<Stamped<P>>) {
        let mut state = self.state.lock();
        let state = &mut *state;
        state.readers -= 1;
        state.stamped -= usize::from(stamped);
        state.watchers.retain(|s| !Arc::ptr_eq(s, signal));
        if !state.ready.is_empty() {
            state.ready.retain(|(r, _)| !Arc::ptr_eq(&r.signal, signal));
        }
        let end = state.tail;
        let (read, first) = Self::read_locked(state, next, end, usize::MAX, buf);
        (end, read, first)
    }

    /// Adds a subscriber with its own queue.
    pub(crate) fn join_strict(&self, endpoint: Arc<Endpoint<P>>) {
        self.state.lock().strict.push(endpoint);
    }

    /// Removes the subscriber with its own queue whose id is `id`, handing
    /// it back for the caller to drop with no lock held.
    pub(crate) fn leave_strict(&self, id: u64) -> Option<Arc<Endpoint<P>>> {
        let mut state = self.state.lock();
        let at = state.strict.iter().position(|e| e.id() == id)?;
        // `remove`, not `swap_remove`: the others keep their order.
        Some(state.strict.remove(at))
    }

    /// Appends `envelope` for every reader, stamped from `clock`, and pushes
    /// it to every strict subscriber, tallying deliveries, wake-ups and
    /// leftovers in `out`.
    ///
    /// Inlined into the publish, always: a call frame of its own cost a
    /// publish to one subscriber 30 of its instructions.
    #[inline(always)]
    pub(crate) fn append(
        &self,
        envelope: Arc<Envelope<P>>,
        clock: &AtomicU64,
        out: &mut Delivery<'_, P>,
    ) {
        let mut state = self.state.lock();
        let state = &mut *state;
        let mut envelope = Some(envelope);
        for endpoint in &state.strict {
            if let Some(envelope) = &envelope {
                out.push(endpoint, Arc::clone(envelope));
            }
        }
        if state.readers > 0 {
            if state.entries.len() >= state.retention {
                // The slowest reader is `retention` entries behind, at least
                // its own capacity: it would drop this entry anyway.
                if let Some(evicted) = state.entries.pop_front() {
                    state.front += 1;
                    out.discard(evicted.envelope);
                }
            }
            // Taken under the feed's lock, so a feed's stamps grow with its
            // positions. Unstamped entries (0) sort before every stamped one,
            // which is right: they were appended while every reader of this
            // feed read nothing else.
            let stamp = if state.stamped > 0 {
                // `Release`: see `Run` in `reader.rs`.
                clock.fetch_add(1, Ordering::Release) + 1
            } else {
                0
            };
            state.entries.push_back(Slot {
                stamp,
                unread: state.readers,
                envelope: envelope.take(),
            });
            state.tail += 1;
            self.tail.store(state.tail, Ordering::Release);
            out.count(state.readers);
            if !state.watchers.is_empty() {
                out.ring(state.watchers.drain(..));
                state.watch_epoch += 1;
            }
            if !state.ready.is_empty() {
                for (ready, slot) in &state.ready {
                    if ready.name(*slot) {
                        out.ring(std::iter::once(Arc::clone(&ready.signal)));
                    }
                }
            }
        }
        out.discard(envelope);
    }

    /// Takes up to `max` entries from `*next` (and before `end`),
    /// advancing `*next`: the first is returned, the rest go to `buf`, each
    /// with its stamp. The last reader of an entry takes it, the others
    /// clone a reference. A cursor below `front` first jumps to it (or to
    /// `end`), and the jump is reported as lost.
    ///
    /// Inlined into its callers, always: a refill of a reader keeping up
    /// is the one-entry read ([`take_kept_up`](Self::take_kept_up)), and a
    /// call frame of its own (saved registers, arguments through memory)
    /// cost that read about a sixth of its instructions when it was
    /// measured, on the one-channel receive (which now reads through
    /// [`read_kept_up`](Self::read_kept_up)). The batch read stays out of
    /// line.
    #[inline(always)]
    pub(crate) fn read(
        &self,
        next: &mut u64,
        end: u64,
        max: usize,
        buf: &mut VecDeque<Stamped<P>>,
    ) -> (Read, Option<Stamped<P>>) {
        let mut state = self.state.lock();
        if let Some(first) = Self::take_kept_up(&mut state, next, end) {
            return (Read::default(), first);
        }
        Self::read_locked(&mut state, next, end, max, buf)
    }

    /// The one entry at `*next` for a reader keeping up (see
    /// [`read`](Self::read)), advancing `*next`; `None`, having changed
    /// nothing, in every other case, for the caller to make the full read.
    /// A receive that only needs this makes no call.
    #[inline(always)]
    pub(crate) fn read_kept_up(&self, next: &mut u64, end: u64) -> Option<Option<Stamped<P>>> {
        Self::take_kept_up(&mut self.state.lock(), next, end)
    }

    /// [`read_kept_up`](Self::read_kept_up), under the lock the caller
    /// holds: the one entry appended since the reader's last read, nothing
    /// lost, nothing left. The general read costs this case twice the
    /// instructions (its batch loop keeps more values than registers).
    #[inline(always)]
    fn take_kept_up(
        state: &mut FeedState<P>,
        next: &mut u64,
        end: u64,
    ) -> Option<Option<Stamped<P>>> {
        if *next < state.front || end.min(state.tail) != *next + 1 {
            return None;
        }
        let skip = (*next - state.front) as usize;
        let slot = &mut state.entries[skip];
        let first = Self::take_slot(slot);
        // Only the entry's last reader can free it. The entries after it
        // are not free: this reader has not read them.
        let freed = slot.unread == 0;
        *next += 1;
        if skip == 0 && freed {
            state.entries.pop_front();
            state.front += 1;
        }
        Some(first)
    }

    /// [`read`](Self::read), under the lock the caller holds.
    #[inline(never)]
    fn read_locked(
        state: &mut FeedState<P>,
        next: &mut u64,
        end: u64,
        max: usize,
        buf: &mut VecDeque<Stamped<P>>,
    ) -> (Read, Option<Stamped<P>>) {
        let mut read = Read::default();
        // Entries evicted before the reader got to them (only those it was
        // owed: an ended cursor was owed nothing from `end` on).
        let kept_from = state.front.min(end);
        if *next < kept_from {
            read.lost = kept_from - *next;
            *next = kept_from;
        }
        let upto = end.min(state.tail);
        let mut first = None;
        if *next < upto {
            let count = (upto - *next).min(max as u64);
            // `*next >= front` here: `*next >= kept_from`, and `upto > *next`
            // rules out the case `kept_from == end < front`.
            let skip = (*next - state.front) as usize;
            for slot in state.entries.range_mut(skip..skip + count as usize) {
                if let Some(entry) = Self::take_slot(slot) {
                    if first.is_none() {
                        first = Some(entry);
                    } else {
                        buf.push_back(entry);
                    }
                }
            }
            *next += count;
            read.left = upto - *next;
            if skip == 0 {
                // Only entries this reader just read can have become free,
                // and only if they were at the front.
                Self::pop_read(state);
            }
        }
        (read, first)
    }

    /// One reader's read of `slot`: the last reader takes the envelope,
    /// the others clone a reference.
    #[inline(always)]
    fn take_slot(slot: &mut Slot<P>) -> Option<Stamped<P>> {
        slot.unread -= 1;
        let envelope = if slot.unread == 0 {
            slot.envelope.take()
        } else {
            slot.envelope.clone()
        };
        envelope.map(|envelope| (slot.stamp, envelope))
    }

    /// Frees the entries at the front that every reader has read.
    fn pop_read(state: &mut FeedState<P>) {
        while state.entries.front().is_some_and(|slot| slot.unread == 0) {
            state.entries.pop_front();
            state.front += 1;
        }
    }

    /// Leaves `signal` to be rung by the next append, unless there is
    /// already something at or after `next` (and before `end`): then returns
    /// `true` and leaves nothing. `epoch` remembers the registration, so a
    /// reader registers once per wake-up however often it looks.
    pub(crate) fn watch(
        &self,
        signal: &Arc<Signal>,
        next: u64,
        end: u64,
        epoch: &mut Option<u64>,
    ) -> bool {
        let mut state = self.state.lock();
        if next < end.min(state.tail) {
            return true;
        }
        if *epoch != Some(state.watch_epoch) {
            state.watchers.push(Arc::clone(signal));
            *epoch = Some(state.watch_epoch);
        }
        false
    }
}
