//! The receive side of a subscriber that reads feeds: one cursor per
//! subscription, merged into one stream.
//!
//! A subscriber with the default `DropOldest` policy owns no queue of its
//! own. Each channel, shard channel or pattern it holds is a cursor into
//! that subscription's [`Feed`], and receiving merges the cursors by entry
//! stamp (see `registry.rs`, *Stamps*), so each publishing thread's messages
//! come out in publish order and a publish's exact message comes before its
//! pattern messages.
//!
//! # Capacity without a queue
//!
//! The subscriber still behaves as if it had one bounded queue: what it has
//! not received yet (its *pending* messages, over every cursor) beyond its
//! capacity is dropped, oldest first, when it next receives, and counted
//! exactly as a drop-oldest queue would have counted it. `len` and
//! `dropped` compute the same numbers on demand, so accounting is exact at
//! every moment: addressed = received + dropped + pending-within-capacity.
//!
//! # Merging
//!
//! An entry's stamp is larger than the stamp of every entry its publishing
//! thread appended before it. So once the reader holds an entry, every
//! entry published before it by the same thread is visible, and looking
//! again at the cursors that had nothing (after taking the candidate) finds
//! them; the loop in [`ReaderState::pick`] does exactly that, at most once
//! per cursor.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use smallvec::SmallVec;

use crate::error::{RecvError, RecvTimeoutError, TryRecvError};
use crate::feed::{Feed, Ready, Stamped};
use crate::message::{Envelope, Received};
use crate::signal::Signal;
use crate::sync::{Mutex, MutexGuard};

/// Cursors kept inside the reader itself, not behind a second pointer: a
/// receive sweeping many subscribers (as a consumer thread serving
/// thousands does) then misses the cache once less per subscriber. Two
/// cover most subscribers (a channel, or a channel and a pattern); a
/// reader with more spills them to the heap, as a `Vec` would hold them.
const INLINE_CURSORS: usize = 2;

/// Cursors beyond which a reader stops looking at every feed on every
/// receive and has its feeds tell it which ones got entries instead (see
/// [`Ready`]). Below it, one pass over a few cursors costs less than being
/// told; far above it, the pass is what a receive costs.
const MANY_CURSORS: usize = 16;

/// Entries a cursor takes from its feed per lock: enough to drain a burst
/// in a few lock round-trips, few enough that each cursor's buffer stays
/// small (a reader holds one per subscription, and a buffer keeps its
/// capacity). 8 took four feed locks per 32 messages a subscriber drains;
/// 32 grew the seed benchmark's heap after a run by a quarter.
const READ_BATCH: usize = 16;

/// Spin rounds before a blocking receiver parks; each doubles the busy
/// spin, the last ones yield. A few microseconds in all: long enough to
/// catch a publisher mid-burst on another core (a park/unpark pair costs
/// several microseconds of system calls), short enough not to burn a core.
const SPIN_ROUNDS: u32 = 10;
/// Rounds that busy-spin; the rest yield.
const SPIN_ROUNDS_BUSY: u32 = 6;

/// End of an open cursor: no end yet.
const OPEN: u64 = u64::MAX;

/// One subscription's position in its feed.
///
/// `repr(C)`: what every receive reads (feed, positions, buffer) comes
/// first, in one cache line; what only waiting and merging read, after.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Cursor<P> {
    /// The feed read.
    feed: Arc<Feed<P>>,
    /// Position of the next entry to read.
    next: u64,
    /// Position where the subscription ended (`OPEN` while it lasts):
    /// entries before it were addressed to this subscriber.
    end: u64,
    /// Entries taken from the feed, not yet received, with their stamps.
    buf: VecDeque<Stamped<P>>,
    /// The feed's watch epoch when this reader's signal was left there.
    watched: Option<u64>,
    /// Whether the feed is a pattern's (a copy of `Feed::is_pattern`, kept
    /// beside the buffer so ordering touches no other memory).
    pattern: bool,
    /// For a reader of many feeds: whether this cursor is in
    /// [`Many::active`].
    active: bool,
    /// For a reader of many feeds: the slot its feed names it by while the
    /// subscription is open (see [`Many::slots`]); [`NO_SLOT`] otherwise.
    slot: u32,
}

/// `Cursor::slot` of a cursor that has none.
const NO_SLOT: u32 = u32::MAX;

impl<P> Cursor<P> {
    /// Positions addressed to this subscriber not taken from the feed yet
    /// (including any it lost to eviction).
    fn unread(&self) -> u64 {
        self.end.min(self.feed.tail()).saturating_sub(self.next)
    }

    /// Messages not received yet through this cursor.
    fn pending(&self) -> u64 {
        self.buf.len() as u64 + self.unread()
    }

    /// Takes the cursor's next entry, with the messages pending through
    /// this cursor counting it: the buffer's first or, once the buffer is
    /// empty, the first of a batch read from the feed. `None` when nothing
    /// is left to read. Also returns what a read found evicted.
    #[inline(always)]
    fn take_next(&mut self) -> (Option<(u64, Stamped<P>)>, u64) {
        if let Some(entry) = self.buf.pop_front() {
            return (Some((self.pending() + 1, entry)), 0);
        }
        if self.unread() == 0 {
            return (None, 0);
        }
        let (read, first) = self
            .feed
            .read(&mut self.next, self.end, READ_BATCH, &mut self.buf);
        let pending = self.buf.len() as u64 + read.left + 1;
        (first.map(|entry| (pending, entry)), read.lost)
    }

    /// Whether the subscription ended and everything it was owed is taken.
    fn exhausted(&self) -> bool {
        self.end != OPEN && self.buf.is_empty() && self.next >= self.end
    }

    /// Order of the first buffered entry among all cursors' entries: its
    /// stamp, then exact before pattern messages of the same stamp.
    fn head_key(&self) -> Option<u64> {
        self.buf
            .front()
            .map(|&(stamp, _)| order_key(stamp, self.pattern))
    }

    /// How many buffered entries at the front are older than order key
    /// `until` (all of them for `u64::MAX`).
    fn older_than(&self, until: u64) -> usize {
        if until == u64::MAX {
            return self.buf.len();
        }
        let older = |entry: &&Stamped<P>| order_key(entry.0, self.pattern) < until;
        self.buf.iter().take_while(older).count()
    }
}

/// What the reader's lock protects.
///
/// Laid out in this order (hence `repr(C)`) so that an empty receive, which
/// looks at the first cursor, the cursor count and the flags, touches as few
/// cache lines as it can: a consumer sweeping thousands of subscribers
/// misses the cache on each.
#[derive(Debug, Default)]
#[repr(C)]
struct ReaderState<P> {
    /// One per subscription held, plus ended ones still owed messages.
    cursors: SmallVec<[Cursor<P>; INLINE_CURSORS]>,
    /// Set once the reader holds more than [`MANY_CURSORS`] cursors.
    many: Option<Box<Many>>,
    /// Cursors whose subscription ended (they go once drained), so a take
    /// looks for drained ones only while there are any.
    ended: usize,
    /// `seq` of the next message: messages received or dropped so far.
    seq: u64,
    /// The run a merged receive is in, if any (see [`Run`]).
    run: Option<Run>,
    /// Messages dropped so far.
    dropped: u64,
}

/// The bookkeeping of a reader of many feeds: which cursors may hold
/// something, so a receive looks at those only.
#[derive(Debug)]
struct Many {
    /// Where this reader's feeds name themselves when they get entries.
    ready: Arc<Ready>,
    /// Slot to the index of the open cursor whose feed names itself by
    /// that slot, or [`NO_SLOT`] for a slot free for reuse. Four bytes a
    /// subscription: a reader of many feeds is the one that holds
    /// thousands.
    slots: Vec<u32>,
    /// Slots free for reuse.
    free: Vec<u32>,
    /// Indices of the cursors that may hold something: every cursor not
    /// in it has nothing pending, or has been named in `ready` since.
    active: Vec<u32>,
    /// Names taken from `ready`, kept to reuse the allocation.
    names: Vec<u32>,
}

impl Many {
    /// A slot for the open cursor at index `i`.
    fn assign(&mut self, i: usize) -> u32 {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(NO_SLOT);
            (self.slots.len() - 1) as u32
        });
        self.slots[slot as usize] = i as u32;
        slot
    }

    /// Frees `slot` (its subscription ended). A name of it still in
    /// `ready` may later mark whichever cursor takes the slot next as
    /// active: harmless, a look finds nothing there.
    fn release(&mut self, slot: u32) {
        if let Some(entry) = self.slots.get_mut(slot as usize) {
            *entry = NO_SLOT;
            self.free.push(slot);
        }
    }
}

/// A stretch of receives a reader of several feeds makes from its buffers
/// without looking at its feeds.
///
/// A full pass over the cursors (in [`ReaderState::take_pass`]) finds the
/// oldest buffered head and, with the head of every other buffered cursor,
/// the order key the picked cursor's entries must stay below. Until one
/// of them does not, the next message comes from that same cursor, and the
/// rest of the pass can be skipped. When one does not, and the cursor
/// still holds buffered entries, the run goes on from whichever buffered
/// head is now the oldest (a look at the buffers only, no feed's tail);
/// once the run's cursor runs dry, its feed may hold older entries than
/// the other heads, and a full pass follows:
///
/// - *Order.* Only the run's cursor's buffer changes meanwhile, and while
///   it holds entries, every cursor the pass found buffered still is: each
///   such cursor's unread entries are newer than its head. An entry
///   appended since to a cursor the pass found empty may go after the run:
///   had its publish happened before that of a buffered entry, the pass
///   (which came after the buffered entry was read) would have seen it.
/// - *Capacity.* What the pass counted pending can have grown only by
///   appends to this reader's feeds, which all take stamps from the
///   broker's clock: by at most the clock's advance since the pass, plus
///   one append per feed that had taken its stamp but not yet moved its
///   tail when the pass looked (appends to one feed take turns under its
///   lock, and the stamp is taken with `Release`). While that bound stays
///   within capacity, nothing can be due for dropping; once it does not,
///   a full pass counts exactly.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// The cursor the run takes from.
    cursor: usize,
    /// Entries at the front of its buffer older than every other cursor's
    /// head, not yet taken.
    remaining: usize,
    /// The clock value up to which nothing can be due for dropping: the
    /// clock's value before the pass, plus the capacity left over what it
    /// counted pending and one in-flight append per cursor. Each message
    /// taken since raises it by one.
    clock_limit: u64,
}

impl Run {
    /// The next message of the reader's current run (`current`), if it
    /// goes on; ends the run otherwise. Takes the cursors as a slice so a
    /// receive looks once at where they live.
    #[inline]
    fn take<P>(
        current: &mut Option<Run>,
        cursors: &mut [Cursor<P>],
        seq: &mut u64,
        clock: &AtomicU64,
    ) -> Option<Received<P>> {
        let run = current.as_mut()?;
        if clock.load(Ordering::Acquire) > run.clock_limit {
            *current = None;
            return None;
        }
        if run.remaining == 0 {
            if cursors[run.cursor].buf.is_empty() {
                *current = None;
                return None;
            }
            run.repick(cursors);
        }
        let (_, envelope) = cursors[run.cursor].buf.pop_front()?;
        run.remaining -= 1;
        run.clock_limit = run.clock_limit.saturating_add(1);
        let taken = *seq;
        *seq += 1;
        Some((taken, envelope))
    }

    /// Moves the run (whose cursor still holds buffered entries) to the
    /// cursor with the oldest buffered head; see [`Run`], *Order*.
    #[inline(never)]
    fn repick<P>(&mut self, cursors: &[Cursor<P>]) {
        let mut pass = Pass::default();
        for (i, cursor) in cursors.iter().enumerate() {
            pass.add(i, 0, cursor.head_key());
        }
        if let (Some(picked), _) = pass.result() {
            self.cursor = picked;
            self.remaining = cursors[picked].older_than(pass.until);
        }
    }
}

/// A buffered entry's place in the merge as one number: its stamp, then
/// exact (0) before pattern (1) messages. Stamps count appends, so they
/// stay far below 2^63.
#[inline]
fn order_key(stamp: u64, pattern: bool) -> u64 {
    stamp << 1 | u64::from(pattern)
}

/// What one pass over a reader's cursors found: the cursor holding the
/// oldest buffered entry, the oldest head among the others, and the
/// messages pending over the cursors seen.
///
/// Plain fields with `MAX` for "none", updated in a loop:
/// `filter_map(..).min()` over option tuples compiled to partial stack
/// stores that stalled on store forwarding.
#[derive(Clone, Copy)]
struct Pass {
    /// Messages pending so far.
    pending: u64,
    /// The oldest head's order key (see [`order_key`]).
    best: u64,
    /// Its cursor.
    picked: usize,
    /// The oldest head's key among the other cursors: where a [`Run`] from
    /// the picked cursor must stop.
    until: u64,
}

impl Default for Pass {
    fn default() -> Self {
        Self {
            pending: 0,
            best: u64::MAX,
            picked: usize::MAX,
            until: u64::MAX,
        }
    }
}

impl Pass {
    /// Counts cursor `i`, which has `owed` messages pending and `head` (its
    /// first buffered entry's order key) if any.
    #[inline(always)]
    fn add(&mut self, i: usize, owed: u64, head: Option<u64>) {
        self.pending += owed;
        if let Some(key) = head {
            if key < self.best {
                (self.until, self.best, self.picked) = (self.best, key, i);
            } else {
                self.until = self.until.min(key);
            }
        }
    }

    /// The cursor to take from, and the messages pending.
    #[inline]
    fn result(self) -> (Option<usize>, u64) {
        (
            (self.picked != usize::MAX).then_some(self.picked),
            self.pending,
        )
    }
}

impl<P> ReaderState<P> {
    /// Messages not received yet, over every cursor.
    fn pending(&self) -> u64 {
        self.cursors.iter().map(Cursor::pending).sum()
    }

    /// Fills cursor `i`'s buffer from its feed if it is empty, counting
    /// lost entries as dropped. Returns whether it read the feed (it had
    /// something unread) and, when the buffer was empty, the cursor's
    /// pending messages as just seen, so the caller need not look at the
    /// feed's tail again (another thread may be writing its cache line).
    fn refill(&mut self, i: usize) -> (bool, Option<u64>) {
        #[cfg(test)]
        crate::interleave::reach(crate::interleave::Point::Refill(i));
        let cursor = &mut self.cursors[i];
        if !cursor.buf.is_empty() {
            return (false, None);
        }
        if cursor.unread() == 0 {
            return (false, Some(0));
        }
        let (read, first) =
            cursor
                .feed
                .read(&mut cursor.next, cursor.end, READ_BATCH, &mut cursor.buf);
        if let Some(first) = first {
            cursor.buf.push_front(first);
        }
        let pending = cursor.buf.len() as u64 + read.left;
        self.seq += read.lost;
        self.dropped += read.lost;
        (true, Some(pending))
    }

    /// One pass over the cursors: refills the empty ones if `refilled` is
    /// given (setting it if any cursor looked at its feed), and returns the
    /// cursor holding the oldest buffered entry (by stamp, exact before
    /// pattern) with the messages pending over all cursors.
    fn scan(&mut self, mut refilled: Option<&mut bool>) -> (Option<usize>, u64) {
        let mut pass = Pass::default();
        for i in 0..self.cursors.len() {
            let (owed, head) = self.look(i, refilled.as_deref_mut());
            pass.add(i, owed, head);
        }
        pass.result()
    }

    /// Cursor `i`'s pending messages and its head's order key, refilling
    /// it first if `refilled` is given (and setting it if the cursor looked
    /// at its feed).
    #[inline(always)]
    fn look(&mut self, i: usize, refilled: Option<&mut bool>) -> (u64, Option<u64>) {
        let mut known = None;
        if let Some(refilled) = refilled {
            let (looked, seen) = self.refill(i);
            *refilled |= looked;
            known = seen;
        }
        let cursor = &self.cursors[i];
        (known.unwrap_or_else(|| cursor.pending()), cursor.head_key())
    }

    /// The cursor holding the oldest message, refilling as needed, and the
    /// messages pending over all cursors; see the module docs, *Merging*.
    fn pick(&mut self) -> (Option<usize>, u64) {
        let mut refilled = false;
        let picked = self.scan(Some(&mut refilled));
        if !refilled {
            // Every candidate was buffered by an earlier take, before this
            // pass looked at the empty cursors: that look already saw
            // whatever was published before the candidates.
            return picked;
        }
        // Look again at the cursors that had nothing: what was published
        // before the new candidates is visible by now.
        loop {
            let mut looked = false;
            for i in 0..self.cursors.len() {
                looked |= self.refill(i).0;
            }
            if !looked {
                break;
            }
        }
        // No refill now: a candidate found here would not have been
        // checked against the cursors looked at before it.
        self.scan(None)
    }

    /// [`take`](Self::take) in the common case: nothing is beyond
    /// `capacity` and no subscription has ended. A reader of one feed takes
    /// from its buffer or, when it keeps up, the one entry it is owed; its
    /// batch read goes to `take`, so this path makes no call (callgrind:
    /// 4 instructions a delivery fewer than with the batch read's call
    /// here; the receive saves the same registers either way). A reader of
    /// several
    /// takes the next message of its [`Run`], or passes over its cursors:
    /// if every one either holds buffered entries or has nothing unread,
    /// the oldest head goes out (starting a run), or the reader is found
    /// empty. If some buffer is empty with entries to read, every such
    /// buffer is refilled and the pass made again, which then looks at the
    /// idle cursors after every read, as [`pick`](Self::pick)'s second look
    /// does. Anything else (a cursor that got entries between the two
    /// passes, something due for dropping) is [`Quick::Slow`], for `take`.
    ///
    /// A reader draining a burst takes most of its messages here, from the
    /// batches its refills buffered, and a consumer sweeping idle
    /// subscribers finds each one empty here.
    #[inline]
    fn take_quick(&mut self, capacity: u64, clock: &AtomicU64) -> Quick<P> {
        if self.many.is_some() || self.ended > 0 {
            return Quick::Slow;
        }
        // One look at where the cursors live, for the whole receive.
        let cursors = &mut self.cursors[..];
        if let [cursor] = cursors {
            // The common reader of one feed: no merge. Its buffer's next
            // entry, or the one entry it is owed when it keeps up; a batch
            // read is `Slow`, so this path makes no call.
            let (pending, (stamp, envelope)) = if let Some(entry) = cursor.buf.pop_front() {
                (cursor.pending() + 1, entry)
            } else {
                match cursor.unread() {
                    0 => return Quick::Empty,
                    1 => {}
                    _ => return Quick::Slow,
                }
                match cursor.feed.read_kept_up(&mut cursor.next, cursor.end) {
                    Some(Some(entry)) => (1, entry),
                    Some(None) => return Quick::Empty,
                    None => return Quick::Slow,
                }
            };
            if pending > capacity {
                // The oldest is due for dropping: `take` does that.
                cursor.buf.push_front((stamp, envelope));
                return Quick::Slow;
            }
            let seq = self.seq;
            self.seq += 1;
            return Quick::Taken((seq, envelope));
        }
        if let Some(taken) = Run::take(&mut self.run, cursors, &mut self.seq, clock) {
            return Quick::Taken(taken);
        }
        self.take_pass(capacity, clock)
    }

    /// [`take_quick`](Self::take_quick)'s pass over the cursors, for a
    /// reader of several feeds outside a run. Kept out of line so that a
    /// receive taking the next message of a run (most of them, when a
    /// reader drains a burst) sets up and tears down a small frame.
    #[inline(never)]
    fn take_pass(&mut self, capacity: u64, clock: &AtomicU64) -> Quick<P> {
        // A full pass: the clock is read before any tail (see `Run`).
        let clock = clock.load(Ordering::Acquire);
        let mut refilled = false;
        let pass = loop {
            let mut pass = Pass::default();
            let mut starved = false;
            for (i, cursor) in self.cursors.iter().enumerate() {
                let unread = cursor.unread();
                match cursor.head_key() {
                    Some(key) => pass.add(i, cursor.buf.len() as u64 + unread, Some(key)),
                    None if unread > 0 => {
                        starved = true;
                        break;
                    }
                    None => {}
                }
            }
            if !starved {
                break pass;
            }
            if refilled {
                // Something arrived for a cursor the refills found idle.
                return Quick::Slow;
            }
            // Refill every empty buffer that has something to read, then
            // pass again. Every cursor that pass finds idle is looked at
            // after the last read, so whatever a publisher appended to it
            // before one of the entries just read is seen (as in `pick`).
            for i in 0..self.cursors.len() {
                self.refill(i);
            }
            refilled = true;
        };
        let (Some(picked), pending) = pass.result() else {
            return Quick::Empty;
        };
        if pending > capacity {
            return Quick::Slow;
        }
        let cursor = &mut self.cursors[picked];
        let Some((_, envelope)) = cursor.buf.pop_front() else {
            unreachable!("a cursor is picked for its buffered entry");
        };
        let slack = capacity.checked_sub(pending - 1 + self.cursors.len() as u64);
        self.run = slack.map(|slack| Run {
            cursor: picked,
            remaining: self.cursors[picked].older_than(pass.until),
            clock_limit: clock.saturating_add(slack),
        });
        let seq = self.seq;
        self.seq += 1;
        Quick::Taken((seq, envelope))
    }

    /// Takes the next message, first dropping the oldest ones beyond
    /// `capacity`. Dropped envelopes and finished cursors go to `garbage`.
    fn take(&mut self, capacity: u64, garbage: &mut Garbage<P>) -> Option<Received<P>> {
        // This may read feeds and drop entries: a run would not know.
        self.run = None;
        let taken = if self.many.is_some() {
            self.take_many(capacity, garbage)
        } else if self.cursors.len() == 1 {
            self.take_one(capacity, garbage)
        } else {
            self.take_merged(capacity, garbage)
        };
        if self.ended > 0 && self.cursors.iter().any(Cursor::exhausted) {
            self.sweep(garbage);
        }
        taken
    }

    /// [`take`](Self::take) for the common reader of a single feed: no
    /// merge needed.
    #[inline]
    fn take_one(&mut self, capacity: u64, garbage: &mut Garbage<P>) -> Option<Received<P>> {
        loop {
            let (next, lost) = self.cursors[0].take_next();
            self.seq += lost;
            self.dropped += lost;
            let (pending, (_, envelope)) = next?;
            if let Some(received) = self.admit(envelope, pending, capacity, garbage) {
                return Some(received);
            }
        }
    }

    /// Numbers the entry just taken: delivers it, or drops it (into
    /// `garbage`) if `pending`, the messages pending including it, exceeds
    /// `capacity`: it is then the oldest beyond what the queue would hold.
    #[inline]
    fn admit(
        &mut self,
        envelope: Arc<Envelope<P>>,
        pending: u64,
        capacity: u64,
        garbage: &mut Garbage<P>,
    ) -> Option<Received<P>> {
        let seq = self.seq;
        self.seq += 1;
        if pending > capacity {
            self.dropped += 1;
            garbage.envelopes.push(envelope);
            return None;
        }
        Some((seq, envelope))
    }

    /// [`take`](Self::take) for a reader of several feeds.
    fn take_merged(&mut self, capacity: u64, garbage: &mut Garbage<P>) -> Option<Received<P>> {
        self.take_picked(capacity, garbage, Self::pick)
    }

    /// Takes the entry at the head of the cursor `pick` chooses, first
    /// dropping those beyond `capacity`. `pick` returns the cursor and the
    /// messages pending, counted after its refills (which may have found
    /// entries lost, and counted them as dropped) and including the entry
    /// about to go.
    #[inline]
    fn take_picked(
        &mut self,
        capacity: u64,
        garbage: &mut Garbage<P>,
        pick: impl Fn(&mut Self) -> (Option<usize>, u64),
    ) -> Option<Received<P>> {
        loop {
            let (picked, pending) = pick(self);
            let i = picked?;
            let Some((_, envelope)) = self.cursors[i].buf.pop_front() else {
                unreachable!("a cursor is picked for its buffered entry");
            };
            if let Some(received) = self.admit(envelope, pending, capacity, garbage) {
                return Some(received);
            }
        }
    }

    /// Marks the cursors whose feeds were named since the last look as
    /// active; returns whether any was not active already.
    fn activate_named(&mut self) -> bool {
        let Some(many) = self.many.as_deref_mut() else {
            return false;
        };
        many.ready.take(&mut many.names);
        let mut activated = false;
        for slot in many.names.drain(..) {
            // A name may be stale (the subscription ended since): skip it.
            let i = many.slots.get(slot as usize).copied().unwrap_or(NO_SLOT);
            if let Some(cursor) = self.cursors.get_mut(i as usize) {
                let i = i as usize;
                if !cursor.active {
                    cursor.active = true;
                    many.active.push(i as u32);
                    activated = true;
                }
            }
        }
        activated
    }

    /// [`scan`](Self::scan) over the active cursors only, dropping from
    /// the active set those with nothing pending.
    fn scan_active(&mut self, mut refilled: Option<&mut bool>) -> (Option<usize>, u64) {
        let Some(many) = self.many.as_deref_mut() else {
            unreachable!("scan_active is for readers of many feeds");
        };
        let mut active = std::mem::take(&mut many.active);
        let mut pass = Pass::default();
        let mut kept = 0;
        for at in 0..active.len() {
            let i = active[at] as usize;
            let (owed, head) = self.look(i, refilled.as_deref_mut());
            if owed == 0 {
                // An append from now on names the feed again.
                self.cursors[i].active = false;
                continue;
            }
            pass.add(i, owed, head);
            active[kept] = i as u32;
            kept += 1;
        }
        active.truncate(kept);
        if let Some(many) = self.many.as_deref_mut() {
            many.active = active;
        }
        pass.result()
    }

    /// [`pick`](Self::pick) for a reader of many feeds: the same rule,
    /// applied to the active cursors, with the feeds named meanwhile
    /// joining them.
    fn pick_many(&mut self) -> (Option<usize>, u64) {
        self.activate_named();
        let mut refilled = false;
        let picked = self.scan_active(Some(&mut refilled));
        if !refilled {
            return picked;
        }
        loop {
            let mut looked = self.activate_named();
            let active = self
                .many
                .as_deref_mut()
                .map(|many| std::mem::take(&mut many.active))
                .unwrap_or_default();
            for i in active.iter().map(|&i| i as usize) {
                looked |= self.refill(i).0;
            }
            if let Some(many) = self.many.as_deref_mut() {
                many.active = active;
            }
            if !looked {
                break;
            }
        }
        self.scan_active(None)
    }

    /// [`take`](Self::take) for a reader of many feeds.
    fn take_many(&mut self, capacity: u64, garbage: &mut Garbage<P>) -> Option<Received<P>> {
        self.take_picked(capacity, garbage, Self::pick_many)
    }

    /// Whether a reader of many feeds may have something: a feed named, or
    /// an active cursor with something pending.
    fn many_pending(&self) -> bool {
        let Some(many) = self.many.as_deref() else {
            return false;
        };
        many.ready.any()
            || many
                .active
                .iter()
                .any(|&i| self.cursors[i as usize].pending() > 0)
    }

    /// Turns this reader into a reader of many feeds: each open cursor's
    /// feed names itself on every append from now on, and every cursor
    /// starts active (what was appended before is found by looking).
    fn become_many(&mut self, signal: &Arc<Signal>) {
        let mut many = Box::new(Many {
            ready: Ready::new(Arc::clone(signal)),
            slots: Vec::with_capacity(self.cursors.len()),
            free: Vec::new(),
            active: Vec::with_capacity(self.cursors.len()),
            names: Vec::new(),
        });
        for (i, cursor) in self.cursors.iter_mut().enumerate() {
            if cursor.end == OPEN {
                cursor.slot = many.assign(i);
                cursor.feed.join_ready(&many.ready, cursor.slot);
            }
            cursor.active = true;
            many.active.push(i as u32);
        }
        self.many = Some(many);
    }

    /// Removes ended cursors that have nothing more to give.
    #[cold]
    fn sweep(&mut self, garbage: &mut Garbage<P>) {
        let before = garbage.cursors.len();
        let mut i = 0;
        while i < self.cursors.len() {
            if self.cursors[i].exhausted() {
                // `remove`, not `swap_remove`: the rest keep their order.
                garbage.cursors.push(self.cursors.remove(i));
            } else {
                i += 1;
            }
        }
        self.ended -= garbage.cursors.len() - before;
        if let Some(many) = &mut self.many {
            // Indices moved: rebuild what refers to them.
            many.active.clear();
            for (i, cursor) in self.cursors.iter().enumerate() {
                if let Some(entry) = many.slots.get_mut(cursor.slot as usize) {
                    *entry = i as u32;
                }
                if cursor.active {
                    many.active.push(i as u32);
                }
            }
        }
    }
}

/// Values a reader stopped holding, dropped by the caller once it holds
/// no lock (a payload's `Drop` may use the broker).
#[derive(Debug)]
pub(crate) struct Garbage<P> {
    /// Envelopes dropped by the capacity rule or released.
    pub(crate) envelopes: Vec<Arc<Envelope<P>>>,
    /// Cursors of ended subscriptions (they hold their feed).
    pub(crate) cursors: Vec<Cursor<P>>,
}

impl<P> Garbage<P> {
    /// Drops what was collected; the common empty case skips the drop glue
    /// (two empty vectors own no memory, so forgetting them frees nothing).
    #[inline]
    pub(crate) fn dispose(self) {
        if self.envelopes.is_empty() && self.cursors.is_empty() {
            std::mem::forget(self);
        } else {
            drop(self);
        }
    }
}

impl<P> Default for Garbage<P> {
    fn default() -> Self {
        Self {
            envelopes: Vec::new(),
            cursors: Vec::new(),
        }
    }
}

/// What a receive reads of its broker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReceiveContext<'a> {
    /// The broker's flag, set once no publish can append any more.
    pub(crate) closed: &'a AtomicBool,
    /// The clock feeds take their stamps from (see [`Run`]).
    pub(crate) clock: &'a AtomicU64,
}

/// What [`ReaderState::take_quick`] found.
enum Quick<P> {
    /// The next message.
    Taken(Received<P>),
    /// Nothing to receive.
    Empty,
    /// A case the full [`ReaderState::take`] handles.
    Slow,
}

/// The receive side of a feed-reading subscriber; see the module docs.
///
/// `repr(C)`: the lock and the state it guards come first, so the first
/// cursor shares the lock's cache line.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Reader<P> {
    /// Cursors and counters.
    state: Mutex<ReaderState<P>>,
    /// Rung by publishers (and by subscribe and close) while it waits.
    signal: Arc<Signal>,
    /// The subscriber's capacity.
    capacity: u64,
    /// Set once the reader has had two cursors: from then on it merges, so
    /// every feed it reads must stamp its entries.
    stamped: AtomicBool,
}

impl<P> Reader<P> {
    /// A reader holding nothing, receiving at most `capacity` pending
    /// messages.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(ReaderState {
                cursors: SmallVec::new(),
                seq: 0,
                run: None,
                dropped: 0,
                ended: 0,
                many: None,
            }),
            signal: Arc::new(Signal::default()),
            capacity: capacity as u64,
            stamped: AtomicBool::new(false),
        }
    }

    /// Called before the reader joins another feed: if that will give it a
    /// second cursor, the feeds it already reads start stamping their
    /// entries (what they appended before is older than anything the new
    /// feed will hold). Returns whether the new feed must stamp for it.
    ///
    /// Callers hold the subscriber's `subscriptions` lock, so joins of one
    /// reader never race.
    pub(crate) fn prepare_join(&self) -> bool {
        if self.stamped.load(Ordering::Relaxed) {
            return true;
        }
        let state = self.state.lock();
        if state.cursors.is_empty() {
            return false;
        }
        for cursor in state.cursors.iter().filter(|c| c.end == OPEN) {
            cursor.feed.stamp_reader();
        }
        self.stamped.store(true, Ordering::Relaxed);
        true
    }

    /// Whether the feeds this reader reads stamp their entries for it.
    pub(crate) fn is_stamped(&self) -> bool {
        self.stamped.load(Ordering::Relaxed)
    }

    /// Its signal, for feeds to ring.
    pub(crate) fn signal(&self) -> &Arc<Signal> {
        &self.signal
    }

    /// Starts reading `feed` at `start`; returns the waker of a receiver
    /// waiting right now (to be woken once no lock is held), so it looks at
    /// the new cursor too.
    #[must_use = "the returned waker must be woken"]
    pub(crate) fn add(&self, feed: Arc<Feed<P>>, start: u64) -> Option<Waker> {
        let pattern = feed.is_pattern();
        let mut state = self.state.lock();
        // A run does not know of the new cursor.
        state.run = None;
        let i = state.cursors.len();
        let mut slot = NO_SLOT;
        if let Some(many) = state.many.as_deref_mut() {
            slot = many.assign(i);
            feed.join_ready(&many.ready, slot);
            many.active.push(i as u32);
        }
        let active = state.many.is_some();
        state.cursors.push(Cursor {
            feed,
            next: start,
            end: OPEN,
            buf: VecDeque::new(),
            watched: None,
            pattern,
            active,
            slot,
        });
        if state.many.is_none() && state.cursors.len() > MANY_CURSORS {
            state.become_many(&self.signal);
        }
        drop(state);
        self.signal.ring()
    }

    /// Leaves `feed`: the feed stops counting this reader, and its cursor
    /// ends at the feed's tail with everything it is still owed taken out
    /// of the feed in the same step (see [`Feed::leave_reader`]). What was
    /// appended before stays receivable; an ended cursor with nothing left
    /// goes to `garbage`.
    pub(crate) fn leave(&self, feed: &Feed<P>, garbage: &mut Garbage<P>) {
        let stamped = self.is_stamped();
        let mut guard = self.state.lock();
        let state = &mut *guard;
        state.run = None;
        let Some(i) = state
            .cursors
            .iter()
            .position(|c| c.end == OPEN && std::ptr::eq(Arc::as_ptr(&c.feed), feed))
        else {
            // Joins and leaves of one subscriber pair up under its
            // subscriptions lock, so a member always has its cursor; if one
            // ever had none, the feed must still stop counting it.
            let mut past_everything = u64::MAX;
            feed.leave_reader(
                &self.signal,
                stamped,
                &mut past_everything,
                &mut VecDeque::new(),
            );
            return;
        };
        let cursor = &mut state.cursors[i];
        let mut rest = VecDeque::new();
        let (end, read, first) =
            cursor
                .feed
                .leave_reader(&self.signal, stamped, &mut cursor.next, &mut rest);
        cursor.end = end;
        cursor.buf.extend(first);
        cursor.buf.append(&mut rest);
        state.seq += read.lost;
        state.dropped += read.lost;
        state.ended += 1;
        if let Some(many) = state.many.as_deref_mut() {
            // The feed no longer names this cursor: keep it active until
            // what it is still owed has been taken.
            let cursor = &mut state.cursors[i];
            many.release(std::mem::replace(&mut cursor.slot, NO_SLOT));
            if !cursor.active {
                cursor.active = true;
                many.active.push(i as u32);
            }
        }
        if state.cursors.iter().any(Cursor::exhausted) {
            state.sweep(garbage);
        }
    }

    /// Hands every cursor, with the messages it still buffers, to
    /// `garbage` (the subscriber is gone). Called once every subscription
    /// has been left, so each cursor has already taken what it was owed out
    /// of its feed (see [`Reader::leave`]) and owes its feed nothing back.
    pub(crate) fn release_all(&self, garbage: &mut Garbage<P>) {
        let mut state = self.state.lock();
        state.run = None;
        state.ended = 0;
        state.many = None;
        for mut cursor in state.cursors.drain(..) {
            debug_assert!(
                cursor.end != OPEN && cursor.next >= cursor.end,
                "a cursor released before its subscription was left"
            );
            garbage
                .envelopes
                .extend(cursor.buf.drain(..).map(|(_, envelope)| envelope));
            garbage.cursors.push(cursor);
        }
    }

    /// Messages dropped so far, counting those beyond capacity now.
    pub(crate) fn dropped(&self) -> u64 {
        let state = self.state.lock();
        state.dropped + state.pending().saturating_sub(self.capacity)
    }

    /// Messages receivable now.
    pub(crate) fn len(&self) -> usize {
        let pending = self.state.lock().pending();
        pending.min(self.capacity) as usize
    }

    /// Takes the next message without waiting.
    pub(crate) fn try_take(&self, broker: ReceiveContext<'_>) -> Result<Received<P>, TryRecvError> {
        // Read before looking: if it was set, nothing can arrive after the
        // look, so "empty" is final.
        let was_closed = broker.closed.load(Ordering::Acquire);
        let mut state = self.state.lock();
        let taken = match state.take_quick(self.capacity, broker.clock) {
            Quick::Taken(message) => return Ok(message),
            Quick::Empty => None,
            Quick::Slow => self.try_take_slow(state),
        };
        match taken {
            Some(message) => Ok(message),
            None if was_closed => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// [`try_take`](Self::try_take) when the quick pass could not decide:
    /// the full take, with what it collects dropped once the lock is
    /// released. Kept out of line so that the quick path saves and restores
    /// only the registers it needs.
    #[inline(never)]
    fn try_take_slow(&self, mut state: MutexGuard<'_, ReaderState<P>>) -> Option<Received<P>> {
        let mut garbage = Garbage::default();
        let taken = state.take(self.capacity, &mut garbage);
        drop(state);
        garbage.dispose();
        taken
    }

    /// Whether anything is pending, looking at the feeds' tails only.
    fn anything_pending(&self) -> bool {
        let state = self.state.lock();
        if state.many.is_some() {
            return state.many_pending();
        }
        state
            .cursors
            .iter()
            .any(|c| !c.buf.is_empty() || c.unread() > 0)
    }

    /// Leaves the signal with every feed that has nothing for this reader;
    /// returns `true` (leaving it nowhere new) if one has something.
    fn watch_all(&self) -> bool {
        let mut state = self.state.lock();
        if state.many.is_some() {
            // Its feeds already name themselves on every append, and the
            // first name rings the signal: nothing to leave with them.
            return state.many_pending();
        }
        for cursor in &mut state.cursors {
            if !cursor.buf.is_empty()
                || cursor
                    .feed
                    .watch(&self.signal, cursor.next, cursor.end, &mut cursor.watched)
            {
                return true;
            }
        }
        false
    }

    /// Spins a few microseconds for a message; returns whether one came.
    fn spin(&self) -> bool {
        for round in 0..SPIN_ROUNDS {
            if self.anything_pending() {
                return true;
            }
            if round < SPIN_ROUNDS_BUSY {
                for _ in 0..1u32 << round {
                    std::hint::spin_loop();
                }
            } else {
                std::thread::yield_now();
            }
        }
        false
    }

    /// Takes the next message, waiting until `deadline` (forever for
    /// `None`) while the broker is open.
    pub(crate) fn take_until(
        &self,
        broker: ReceiveContext<'_>,
        deadline: Option<Instant>,
    ) -> Result<Received<P>, RecvTimeoutError> {
        let mut spun = false;
        loop {
            match self.try_take(broker) {
                Ok(message) => return Ok(message),
                Err(TryRecvError::Empty) => {}
                Err(_) => return Err(RecvTimeoutError::Closed),
            }
            if !spun {
                spun = true;
                if self.spin() {
                    continue;
                }
            }
            #[cfg(test)]
            crate::interleave::reach(crate::interleave::Point::BeforeArm);
            self.signal.arm();
            if self.watch_all() || broker.closed.load(Ordering::Acquire) {
                continue;
            }
            if !self.signal.wait(deadline) {
                // One last look: a message may have come with the timeout.
                return self.try_take(broker).map_err(|err| match err {
                    TryRecvError::Empty => RecvTimeoutError::Timeout,
                    _ => RecvTimeoutError::Closed,
                });
            }
        }
    }

    /// Polls for the next message, leaving `cx`'s waker to be woken by the
    /// next append to any of its feeds (or by subscribe, or close). Nothing
    /// is taken unless `Ready(Ok)` is returned.
    pub(crate) fn poll_take(
        &self,
        cx: &mut Context<'_>,
        broker: ReceiveContext<'_>,
    ) -> Poll<Result<Received<P>, RecvError>> {
        loop {
            match self.try_take(broker) {
                Ok(message) => return Poll::Ready(Ok(message)),
                Err(TryRecvError::Empty) => {}
                Err(_) => return Poll::Ready(Err(RecvError::Closed)),
            }
            self.signal.set_waker(cx.waker());
            if !self.watch_all() && !broker.closed.load(Ordering::Acquire) {
                return Poll::Pending;
            }
        }
    }
}

#[cfg(test)]
mod races;
