//! The bounded queue each subscriber owns.
//!
//! It knows nothing of brokers: it is a bounded FIFO of `T` with an overflow
//! policy, a per-queue sequence number, blocking, timed and async pops, and
//! a close switch. Publishers push under a short lock and never wait for
//! space; the single consumer pops.
//!
//! # Design
//!
//! A `parking_lot::Mutex<VecDeque>` rather than a lock-free ring: overflow
//! handling must remove the oldest element, count it and stamp the new one's
//! sequence number as one atomic step, or the exact accounting
//! (addressed = received + dropped + queued) and the gap-revealing sequence
//! numbers could not be promised. An uncontended lock is two atomic
//! operations, the same as a lock-free ring's head/tail CAS.
//!
//! Receivers that find the queue empty first spin briefly (watching an
//! atomic length, so they do not bounce the lock's cache line), then park on
//! a condition variable. Publishers only signal when someone is parked, so a
//! busy consumer costs publishers nothing extra. Async receivers leave a
//! `Waker` instead; both kinds are woken by push and by close.
//!
//! # States
//!
//! | status         | push                              | pop when empty |
//! |----------------|-----------------------------------|----------------|
//! | `Open`         | queued (or the overflow rule)     | wait / `Empty` |
//! | `Closed`       | refused: not addressed            | `Closed`       |
//! | `Disconnected` | discarded: addressed and dropped  | `Disconnected` |
//!
//! `Open` becomes `Closed` through [`Queue::close`] and `Disconnected` when
//! an overflow happens under [`OverflowPolicy::Disconnect`]; neither ever
//! changes again. Elements already queued stay poppable in every state.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::error::{RecvError, RecvTimeoutError, TryRecvError};
use crate::sync::{Condvar, Mutex};

/// What a subscriber's full queue does with a new message.
///
/// Chosen per subscriber when it is created (see
/// [`BrokerBuilder::overflow_policy`](crate::BrokerBuilder::overflow_policy)
/// and [`Broker::subscriber_with`](crate::Broker::subscriber_with)). Whatever
/// the policy, [`Broker::publish`](crate::Broker::publish) never blocks, and
/// every lost message is counted in
/// [`Subscriber::dropped`](crate::Subscriber::dropped) and shows as a jump in
/// [`Message::seq`](crate::Message::seq).
///
/// # Examples
///
/// ```
/// use tannoy::{Broker, OverflowPolicy};
///
/// let broker = Broker::builder().queue_capacity(2).build();
/// let sub = broker.subscriber_with(OverflowPolicy::DropNewest);
/// sub.subscribe(["c"]);
/// for p in ["a", "b", "c"] {
///     broker.publish("c", p);
/// }
/// assert_eq!(sub.try_recv()?.payload(), "a"); // "c" was refused
/// assert_eq!(sub.dropped(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Discard the oldest queued message to make room (the default). The
    /// subscriber always sees the most recent messages.
    #[default]
    DropOldest,
    /// Discard the new message; the queue keeps the oldest ones.
    DropNewest,
    /// Redis's behaviour: the overflowing subscriber is unsubscribed from
    /// everything at once, as Redis disconnects a pub/sub client over its
    /// `client-output-buffer-limit`. Messages already queued can still be
    /// received; after them, receiving reports
    /// [`RecvError::Disconnected`].
    Disconnect,
}

/// What became of one pushed element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued (possibly evicting the oldest element, which was counted).
    Queued,
    /// Addressed to the queue but discarded (by `DropNewest`, or because
    /// the queue is disconnected); counted.
    Discarded,
    /// Addressed to the queue, which overflowed under `Disconnect` and is now
    /// disconnected; the element was discarded and counted. The caller must
    /// unsubscribe the owner.
    Disconnected,
    /// The queue was closed: not addressed at all.
    Refused,
}

impl Pushed {
    /// Whether the element counts as addressed to the queue (Redis counts
    /// such a delivery in `PUBLISH`'s reply).
    pub(crate) fn addressed(self) -> bool {
        self != Self::Refused
    }
}

/// The result of [`Queue::push`]: what became of the element, what the
/// queue gave back, and whom to wake.
#[derive(Debug)]
#[must_use = "the waker must be woken and the unqueued element dropped outside locks"]
pub(crate) struct Push<T> {
    /// What became of the element.
    pub(crate) outcome: Pushed,
    /// The evicted element, or the pushed one if the queue did not keep it.
    pub(crate) unqueued: Option<T>,
    /// The async receiver to wake.
    pub(crate) waker: Option<Waker>,
}

impl<T> Push<T> {
    /// A push that left the queue as it was and hands `value` back.
    fn untouched(outcome: Pushed, value: T) -> Self {
        Self {
            outcome,
            unqueued: Some(value),
            waker: None,
        }
    }
}

/// Lifecycle of a queue; see the module docs' state table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Accepting pushes.
    Open,
    /// Closed by its owner; drains, then reports `Closed`.
    Closed,
    /// Overflowed under `Disconnect`; drains, then reports `Disconnected`.
    Disconnected,
}

/// Everything behind the queue's lock.
#[derive(Debug)]
struct State<T> {
    /// Queued elements with their sequence numbers, oldest first.
    items: VecDeque<(u64, T)>,
    /// Sequence number the next addressed element takes.
    next_seq: u64,
    /// Elements addressed to the queue and discarded by the policy.
    dropped: u64,
    /// Lifecycle.
    status: Status,
    /// The async receiver waiting for an element, if any.
    waker: Option<Waker>,
    /// Threads parked in a blocking pop.
    sleepers: usize,
}

/// A bounded FIFO with an overflow policy; see the module docs.
#[derive(Debug)]
pub(crate) struct Queue<T> {
    /// Most elements held at once.
    capacity: usize,
    /// What a push to a full queue does.
    policy: OverflowPolicy,
    /// The queue proper.
    state: Mutex<State<T>>,
    /// Parked blocking receivers wait here.
    available: Condvar,
    /// `state.items.len()`, mirrored so spinning receivers and `len` can look
    /// without taking the lock.
    len: AtomicUsize,
    /// Whether `state.status` is no longer `Open`, mirrored for the same
    /// reason.
    stopped: AtomicBool,
}

/// Spin rounds a blocking receiver makes before parking. Each round doubles
/// the spin (then yields), so the whole phase lasts a few microseconds:
/// long enough to catch a publisher that is mid-burst on another core (a
/// park/unpark pair costs several microseconds of syscalls), short enough
/// not to burn a core when nothing is coming. Same shape as crossbeam's
/// `Backoff::snooze`; the counts were not tuned here beyond checking that the
/// cross-thread benchmark stays within 2x of crossbeam-channel.
const SPIN_ROUNDS: u32 = 10;
/// Rounds that busy-spin; the rest call `yield_now`.
const SPIN_ROUNDS_BUSY: u32 = 6;

impl<T> Queue<T> {
    /// A queue holding at most `capacity` elements (at least 1).
    pub(crate) fn new(capacity: usize, policy: OverflowPolicy) -> Self {
        debug_assert!(capacity > 0);
        Self {
            capacity,
            policy,
            state: Mutex::new(State {
                items: VecDeque::new(),
                next_seq: 0,
                dropped: 0,
                status: Status::Open,
                waker: None,
                sleepers: 0,
            }),
            available: Condvar::new(),
            len: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    /// Adds `value`, applying the overflow policy if the queue is full.
    /// Never blocks beyond the queue's own short critical section.
    ///
    /// Whatever the queue does not keep (an evicted element, or `value`
    /// itself when discarded or refused) is handed back rather than dropped
    /// here, and so is the async receiver's waker rather than woken, so the
    /// caller can drop and wake after releasing its own locks: a payload's
    /// `Drop` and a waker's `wake` are user code that may call back into
    /// the broker.
    pub(crate) fn push(&self, value: T) -> Push<T> {
        let mut state = self.state.lock();
        if state.status == Status::Closed {
            return Push::untouched(Pushed::Refused, value);
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        if state.status == Status::Disconnected {
            // Overflowed earlier in this publish (or a concurrent one) and
            // about to be unsubscribed: still addressed, as Redis counts a
            // client it is closing, but discarded.
            state.dropped += 1;
            return Push::untouched(Pushed::Discarded, value);
        }
        let (outcome, unqueued) = if state.items.len() < self.capacity {
            state.items.push_back((seq, value));
            (Pushed::Queued, None)
        } else {
            state.dropped += 1;
            match self.policy {
                OverflowPolicy::DropOldest => {
                    let evicted = state.items.pop_front().map(|(_, v)| v);
                    state.items.push_back((seq, value));
                    (Pushed::Queued, evicted)
                }
                OverflowPolicy::DropNewest => {
                    return Push::untouched(Pushed::Discarded, value);
                }
                OverflowPolicy::Disconnect => {
                    state.status = Status::Disconnected;
                    self.stopped.store(true, Ordering::Release);
                    (Pushed::Disconnected, Some(value))
                }
            }
        };
        self.len.store(state.items.len(), Ordering::Release);
        let waker = state.waker.take();
        let sleepers = state.sleepers;
        drop(state);
        self.unpark(sleepers, outcome == Pushed::Disconnected);
        Push {
            outcome,
            unqueued,
            waker,
        }
    }

    /// Unparks blocked receivers: one for a new element, all of them when
    /// the queue stops.
    fn unpark(&self, sleepers: usize, all: bool) {
        if sleepers > 0 {
            if all {
                self.available.notify_all();
            } else {
                self.available.notify_one();
            }
        }
    }

    /// Stops the queue: later pushes are refused; receivers drain what is
    /// queued and then see `Closed`. Idempotent; a disconnected queue stays
    /// disconnected. Returns the async receiver's waker for the caller to
    /// wake once it holds no lock.
    #[must_use = "the returned waker must be woken"]
    pub(crate) fn close(&self) -> Option<Waker> {
        let mut state = self.state.lock();
        if state.status == Status::Open {
            state.status = Status::Closed;
        }
        self.stopped.store(true, Ordering::Release);
        let waker = state.waker.take();
        let sleepers = state.sleepers;
        drop(state);
        self.unpark(sleepers, true);
        waker
    }

    /// Takes the oldest element without waiting.
    ///
    /// Out of line, so that `Subscriber::try_recv`, which calls it for a
    /// subscriber with its own queue, stays small enough to inline into its
    /// caller: a receive then makes one call, whichever the inbox.
    #[inline(never)]
    pub(crate) fn try_pop(&self) -> Result<(u64, T), TryRecvError> {
        // An empty open queue answers without its lock, so a consumer
        // sweeping many idle subscribers never pulls the lock's cache line
        // away from publishers.
        if self.len.load(Ordering::Acquire) == 0 && !self.stopped.load(Ordering::Acquire) {
            return Err(TryRecvError::Empty);
        }
        let mut state = self.state.lock();
        self.pop_locked(&mut state)
            .map_err(|stopped| match stopped {
                Some(err) => err.into(),
                None => TryRecvError::Empty,
            })
    }

    /// Takes the oldest element, waiting for one as long as the queue is
    /// open.
    #[cfg(test)]
    pub(crate) fn pop(&self) -> Result<(u64, T), RecvError> {
        self.pop_until(None).map_err(|err| match err {
            RecvTimeoutError::Closed => RecvError::Closed,
            RecvTimeoutError::Disconnected => RecvError::Disconnected,
            // No deadline was given, so the wait cannot time out.
            RecvTimeoutError::Timeout => unreachable!("pop without a deadline timed out"),
        })
    }

    /// Takes the oldest element, waiting until `deadline` at most (forever
    /// for `None`).
    pub(crate) fn pop_until(
        &self,
        deadline: Option<Instant>,
    ) -> Result<(u64, T), RecvTimeoutError> {
        self.spin_for_item();
        let mut state = self.state.lock();
        loop {
            match self.pop_locked(&mut state) {
                Ok(item) => return Ok(item),
                Err(Some(stopped)) => return Err(stopped.into()),
                Err(None) => {}
            }
            state.sleepers += 1;
            let timed_out = match deadline {
                Some(deadline) => self.available.wait_until(&mut state, deadline).timed_out(),
                None => {
                    self.available.wait(&mut state);
                    false
                }
            };
            state.sleepers -= 1;
            if timed_out {
                // One last look: an element may have arrived with the timeout.
                return self
                    .pop_locked(&mut state)
                    .map_err(|stopped| match stopped {
                        Some(err) => err.into(),
                        None => RecvTimeoutError::Timeout,
                    });
            }
        }
    }

    /// Polls for the oldest element, leaving `cx`'s waker to be woken by the
    /// next push or by close. Nothing is taken unless `Ready(Ok)` is
    /// returned, so dropping the caller's future loses nothing.
    pub(crate) fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<Result<(u64, T), RecvError>> {
        let mut state = self.state.lock();
        match self.pop_locked(&mut state) {
            Ok(item) => Poll::Ready(Ok(item)),
            Err(Some(stopped)) => Poll::Ready(Err(stopped)),
            Err(None) => {
                let stale = match &state.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => None,
                    _ => state.waker.replace(cx.waker().clone()),
                };
                drop(state);
                // A waker's `Drop` is user code that may publish to this
                // very queue: drop the replaced one with the lock released.
                drop(stale);
                Poll::Pending
            }
        }
    }

    /// Pops under the lock: the element, or why there is none (`Some` when
    /// the queue has stopped for good, `None` when it is merely empty).
    fn pop_locked(&self, state: &mut State<T>) -> Result<(u64, T), Option<RecvError>> {
        if let Some(item) = state.items.pop_front() {
            self.len.store(state.items.len(), Ordering::Release);
            return Ok(item);
        }
        match state.status {
            Status::Open => Err(None),
            Status::Closed => Err(Some(RecvError::Closed)),
            Status::Disconnected => Err(Some(RecvError::Disconnected)),
        }
    }

    /// Waits a few microseconds for an element to appear, without touching
    /// the lock. Returns early as soon as one is visible.
    fn spin_for_item(&self) {
        for round in 0..SPIN_ROUNDS {
            if self.len.load(Ordering::Acquire) > 0 {
                return;
            }
            if round < SPIN_ROUNDS_BUSY {
                for _ in 0..1u32 << round {
                    std::hint::spin_loop();
                }
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Whether an overflow under `Disconnect` has stopped the queue.
    pub(crate) fn is_disconnected(&self) -> bool {
        self.state.lock().status == Status::Disconnected
    }

    /// Elements queued now.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Elements addressed to the queue and discarded by its policy, in total.
    pub(crate) fn dropped(&self) -> u64 {
        self.state.lock().dropped
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::{Duration, Instant};

    use proptest::prelude::*;

    use super::{OverflowPolicy, Pushed, Queue};
    use crate::error::{RecvError, RecvTimeoutError, TryRecvError};

    /// Pushes as a publisher does, waking the async receiver at once.
    fn push<T>(q: &Queue<T>, value: T) -> (Pushed, Option<T>) {
        let push = q.push(value);
        if let Some(waker) = push.waker {
            waker.wake();
        }
        (push.outcome, push.unqueued)
    }

    /// Closes as the broker does, waking the async receiver at once.
    fn close<T>(q: &Queue<T>) {
        if let Some(waker) = q.close() {
            waker.wake();
        }
    }

    /// Drains a queue without blocking, returning (seq, value) pairs.
    fn drain<T>(queue: &Queue<T>) -> Vec<(u64, T)> {
        std::iter::from_fn(|| queue.try_pop().ok()).collect()
    }

    /// Counts wake-ups.
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Elements come out in the order they went in, numbered from 0.
    #[test]
    fn fifo_with_sequence_numbers() {
        let q = Queue::new(4, OverflowPolicy::DropOldest);
        for i in 0..3 {
            assert_eq!(push(&q, i), (Pushed::Queued, None));
        }
        assert_eq!(q.len(), 3);
        assert_eq!(drain(&q), [(0, 0), (1, 1), (2, 2)]);
        assert_eq!(q.try_pop(), Err(TryRecvError::Empty));
    }

    /// A full drop-oldest queue evicts its oldest element, counts it and
    /// leaves a gap in the sequence numbers exactly there.
    #[test]
    fn drop_oldest_evicts_and_counts() {
        let q = Queue::new(2, OverflowPolicy::DropOldest);
        assert_eq!(push(&q, 0), (Pushed::Queued, None));
        assert_eq!(push(&q, 1), (Pushed::Queued, None));
        for i in 2..5 {
            // The evicted element is handed back, not dropped under the lock.
            assert_eq!(push(&q, i), (Pushed::Queued, Some(i - 2)));
        }
        assert_eq!(q.len(), 2);
        assert_eq!(q.dropped(), 3);
        assert_eq!(drain(&q), [(3, 3), (4, 4)]);
    }

    /// A full drop-newest queue refuses the new element but counts it and
    /// still spends its sequence number.
    #[test]
    fn drop_newest_discards_and_counts() {
        let q = Queue::new(2, OverflowPolicy::DropNewest);
        assert_eq!(push(&q, 'a'), (Pushed::Queued, None));
        assert_eq!(push(&q, 'b'), (Pushed::Queued, None));
        assert_eq!(push(&q, 'c'), (Pushed::Discarded, Some('c')));
        assert_eq!(q.dropped(), 1);
        assert_eq!(drain(&q), [(0, 'a'), (1, 'b')]);
        assert_eq!(push(&q, 'd'), (Pushed::Queued, None));
        assert_eq!(drain(&q), [(3, 'd')]);
    }

    /// Overflow under `Disconnect` keeps what was queued, discards (and
    /// counts) everything afterwards and reports `Disconnected` once drained.
    #[test]
    fn disconnect_drains_then_reports() {
        let q = Queue::new(1, OverflowPolicy::Disconnect);
        assert_eq!(push(&q, 1), (Pushed::Queued, None));
        assert_eq!(push(&q, 2), (Pushed::Disconnected, Some(2)));
        assert!(q.is_disconnected());
        assert_eq!(push(&q, 3), (Pushed::Discarded, Some(3)));
        assert_eq!(q.dropped(), 2);
        assert_eq!(q.pop(), Ok((0, 1)));
        assert_eq!(q.pop(), Err(RecvError::Disconnected));
        close(&q);
        assert_eq!(q.try_pop(), Err(TryRecvError::Disconnected));
    }

    /// Close refuses new elements, keeps queued ones, and then reports
    /// `Closed` on every kind of pop.
    #[test]
    fn close_drains_then_reports() {
        let q = Queue::new(4, OverflowPolicy::DropOldest);
        push(&q, 1);
        close(&q);
        assert_eq!(push(&q, 2), (Pushed::Refused, Some(2)));
        assert!(!Pushed::Refused.addressed());
        assert_eq!(q.pop(), Ok((0, 1)));
        assert_eq!(q.pop(), Err(RecvError::Closed));
        assert_eq!(q.try_pop(), Err(TryRecvError::Closed));
        assert_eq!(
            q.pop_until(Some(Instant::now())),
            Err(RecvTimeoutError::Closed)
        );
    }

    /// A timed pop on an empty open queue times out.
    #[test]
    fn pop_until_times_out() {
        let q: Queue<u8> = Queue::new(1, OverflowPolicy::DropOldest);
        let deadline = Instant::now() + Duration::from_millis(10);
        assert_eq!(q.pop_until(Some(deadline)), Err(RecvTimeoutError::Timeout));
        assert!(Instant::now() >= deadline);
    }

    /// A thread parked in `pop` is woken by a push alone (the queue stays
    /// open until it has returned), and then by close.
    #[test]
    fn parked_receiver_is_woken() {
        for policy in [
            OverflowPolicy::DropOldest,
            OverflowPolicy::DropNewest,
            OverflowPolicy::Disconnect,
        ] {
            let q = Arc::new(Queue::new(1, policy));
            let (popped, first) = std::sync::mpsc::channel();
            let receiver = {
                let q = Arc::clone(&q);
                std::thread::spawn(move || {
                    popped.send(q.pop()).unwrap();
                    q.pop()
                })
            };
            // Long enough for the receiver to stop spinning and park.
            std::thread::sleep(Duration::from_millis(50));
            push(&q, 7);
            assert_eq!(
                first.recv_timeout(Duration::from_secs(60)),
                Ok(Ok((0, 7))),
                "{policy:?}: the push alone woke the parked receiver"
            );
            std::thread::sleep(Duration::from_millis(50));
            close(&q);
            assert_eq!(receiver.join().unwrap(), Err(RecvError::Closed));
        }
    }

    /// Several parked receivers: each push wakes one of them, so two
    /// pushes return two pops while the queue stays open.
    #[test]
    fn each_push_wakes_a_parked_receiver() {
        let q = Arc::new(Queue::new(4, OverflowPolicy::DropOldest));
        let (popped, pops) = std::sync::mpsc::channel();
        let receivers: Vec<_> = (0..2)
            .map(|_| {
                let (q, popped) = (Arc::clone(&q), popped.clone());
                std::thread::spawn(move || popped.send(q.pop()).unwrap())
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        push(&q, 'a');
        push(&q, 'b');
        let mut got = [0, 1].map(|_| {
            pops.recv_timeout(Duration::from_secs(60))
                .expect("a parked receiver was not woken")
                .unwrap()
        });
        got.sort();
        assert_eq!(got, [(0, 'a'), (1, 'b')]);
        for receiver in receivers {
            receiver.join().unwrap();
        }
    }

    /// A pending poll re-polled with a different waker keeps the new one
    /// only: the next push wakes it and not the stale one; re-polling with
    /// the same waker keeps a single registration.
    #[test]
    fn repoll_with_a_new_waker_replaces_the_stale_one() {
        let q = Queue::new(2, OverflowPolicy::DropNewest);
        let stale = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let fresh = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let (stale_waker, fresh_waker) = (
            Waker::from(Arc::clone(&stale)),
            Waker::from(Arc::clone(&fresh)),
        );
        assert!(
            q.poll_pop(&mut Context::from_waker(&stale_waker))
                .is_pending()
        );
        assert!(
            q.poll_pop(&mut Context::from_waker(&fresh_waker))
                .is_pending()
        );
        assert!(
            q.poll_pop(&mut Context::from_waker(&fresh_waker))
                .is_pending()
        );
        push(&q, 'x');
        assert_eq!(
            stale.0.load(Ordering::SeqCst),
            0,
            "the stale waker was kept"
        );
        assert_eq!(fresh.0.load(Ordering::SeqCst), 1);
        push(&q, 'y');
        assert_eq!(fresh.0.load(Ordering::SeqCst), 1, "a waker is woken once");
    }

    /// An async poll on an empty queue registers its waker, which the next
    /// push wakes; the element is taken only by a ready poll.
    #[test]
    fn poll_registers_waker_and_push_wakes_it() {
        let q = Queue::new(2, OverflowPolicy::DropOldest);
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        assert!(q.poll_pop(&mut cx).is_pending());
        assert!(q.poll_pop(&mut cx).is_pending()); // polled again: still pending
        push(&q, 'x');
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(q.poll_pop(&mut cx), Poll::Ready(Ok((0, 'x'))));
        assert!(q.poll_pop(&mut cx).is_pending());
        close(&q);
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
        assert_eq!(q.poll_pop(&mut cx), Poll::Ready(Err(RecvError::Closed)));
    }

    /// Every pushed element is dropped exactly once, whether evicted (by
    /// the caller, who gets it back) or left in the queue when it is dropped.
    #[test]
    fn every_element_dropped_exactly_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let q = Queue::new(3, OverflowPolicy::DropOldest);
        let mut evicted = Vec::new();
        for _ in 0..10 {
            evicted.extend(push(&q, Counted(Arc::clone(&drops))).1);
        }
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "nothing dropped under the lock"
        );
        drop(evicted);
        assert_eq!(drops.load(Ordering::SeqCst), 7);
        drop(q.try_pop());
        assert_eq!(drops.load(Ordering::SeqCst), 8);
        drop(q);
        assert_eq!(drops.load(Ordering::SeqCst), 10);
    }

    /// With a publisher racing the consumer on a tiny drop-oldest queue,
    /// the consumer sees strictly increasing sequence numbers, and every
    /// pushed element is received, dropped or still queued: exactly once.
    #[test]
    fn concurrent_evictions_keep_exact_accounting() {
        const PUSHES: u64 = 200_000;
        let q = Arc::new(Queue::new(4, OverflowPolicy::DropOldest));
        let producer = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                for i in 0..PUSHES {
                    push(&q, i);
                }
            })
        };
        let mut received = 0u64;
        let mut last: Option<u64> = None;
        let mut gaps = 0u64;
        let mut check = |(seq, value): (u64, u64)| {
            assert_eq!(seq, value, "sequence numbers follow push order");
            let expected = last.map_or(0, |l| l + 1);
            assert!(seq >= expected, "seq went backwards: {seq} after {last:?}");
            gaps += seq - expected;
            last = Some(seq);
            received += 1;
        };
        while !producer.is_finished() {
            if let Ok(item) = q.try_pop() {
                check(item);
            }
        }
        producer.join().unwrap();
        assert!(q.len() <= 4);
        while let Ok(item) = q.try_pop() {
            check(item);
        }
        assert_eq!(received + q.dropped(), PUSHES);
        assert_eq!(last, Some(PUSHES - 1), "drop-oldest never drops the newest");
        assert_eq!(gaps, q.dropped(), "the seq jumps are exactly the drops");
    }

    /// One step of the model test.
    #[derive(Clone, Debug)]
    enum Op {
        Push(u8),
        Pop,
        Close,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => any::<u8>().prop_map(Op::Push),
            3 => Just(Op::Pop),
            1 => Just(Op::Close),
        ]
    }

    fn policy() -> impl Strategy<Value = OverflowPolicy> {
        prop_oneof![
            Just(OverflowPolicy::DropOldest),
            Just(OverflowPolicy::DropNewest),
            Just(OverflowPolicy::Disconnect),
        ]
    }

    proptest! {
        /// The queue behaves exactly like a `VecDeque` with the policy
        /// applied by hand, and its accounting always balances.
        #[test]
        fn prop_queue_matches_vecdeque_model(
            capacity in 1usize..5,
            policy in policy(),
            ops in proptest::collection::vec(op(), 0..64),
        ) {
            let q = Queue::new(capacity, policy);
            let mut model: VecDeque<(u64, u8)> = VecDeque::new();
            let (mut next_seq, mut dropped, mut popped) = (0u64, 0u64, 0u64);
            let mut stopped: Option<TryRecvError> = None;
            for op in ops {
                match op {
                    Op::Push(v) => {
                        let expected = if stopped == Some(TryRecvError::Closed) {
                            Pushed::Refused
                        } else if stopped == Some(TryRecvError::Disconnected) {
                            next_seq += 1;
                            dropped += 1;
                            Pushed::Discarded
                        } else {
                            let seq = next_seq;
                            next_seq += 1;
                            if model.len() < capacity {
                                model.push_back((seq, v));
                                Pushed::Queued
                            } else {
                                dropped += 1;
                                match policy {
                                    OverflowPolicy::DropOldest => {
                                        model.pop_front();
                                        model.push_back((seq, v));
                                        Pushed::Queued
                                    }
                                    OverflowPolicy::DropNewest => Pushed::Discarded,
                                    OverflowPolicy::Disconnect => {
                                        stopped = Some(TryRecvError::Disconnected);
                                        Pushed::Disconnected
                                    }
                                }
                            }
                        };
                        prop_assert_eq!(push(&q, v).0, expected);
                    }
                    Op::Pop => {
                        let expected = model
                            .pop_front()
                            .ok_or(stopped.unwrap_or(TryRecvError::Empty));
                        popped += u64::from(expected.is_ok());
                        prop_assert_eq!(q.try_pop(), expected);
                    }
                    Op::Close => {
                        close(&q);
                        stopped.get_or_insert(TryRecvError::Closed);
                    }
                }
                prop_assert!(q.len() <= capacity);
                prop_assert_eq!(q.len(), model.len());
                prop_assert_eq!(q.dropped(), dropped);
                prop_assert_eq!(next_seq, popped + dropped + model.len() as u64);
            }
        }
    }
}
