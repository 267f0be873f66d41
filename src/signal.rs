//! A subscriber's doorbell: how a publisher wakes a receiver that waits on
//! several feeds at once.
//!
//! A receiver that finds nothing to take leaves its `Signal` with every feed
//! it reads (see `Feed::watch`), then parks a thread on it or leaves an
//! async waker in it. The first publisher to append to any of those feeds
//! takes the signal out of the feed's list and, once it holds no broker
//! lock, rings it. Publishers pay for this only while someone waits.
//!
//! | state                 | `ring` does                        |
//! |-----------------------|------------------------------------|
//! | nobody waiting        | marks `rung`                       |
//! | a thread parked       | marks `rung`, unparks it           |
//! | an async waker left   | marks `rung`, takes and wakes it   |
//!
//! A receiver clears `rung` with [`Signal::arm`] *before* it looks at its
//! feeds for the last time, so a ring that lands between that look and the
//! wait is never lost.

use std::task::Waker;
use std::time::Instant;

use crate::sync::{Condvar, Mutex};

/// What the signal's lock protects.
#[derive(Debug, Default)]
struct SignalState {
    /// Rung since the receiver last armed it.
    rung: bool,
    /// Threads parked in [`Signal::wait`].
    parked: usize,
    /// The async receiver's waker, if it left one.
    waker: Option<Waker>,
}

/// One subscriber's doorbell; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    /// The state, see [`SignalState`].
    state: Mutex<SignalState>,
    /// Parked receivers wait here.
    bell: Condvar,
}

impl Signal {
    /// Clears `rung`: whatever rings from now on will be seen by the next
    /// [`wait`](Self::wait).
    pub(crate) fn arm(&self) {
        self.state.lock().rung = false;
    }

    /// Leaves `waker` to be woken by the next ring, replacing an older one
    /// unless it would wake the same task.
    pub(crate) fn set_waker(&self, waker: &Waker) {
        let mut state = self.state.lock();
        let stale = match &state.waker {
            Some(old) if old.will_wake(waker) => None,
            _ => state.waker.replace(waker.clone()),
        };
        drop(state);
        // A waker's `Drop` is user code that may publish, and so ring this
        // signal: drop the replaced one with the lock released.
        drop(stale);
    }

    /// Parks the calling thread until the signal rings (since the last
    /// [`arm`](Self::arm)) or `deadline` passes. Returns `false` on timeout.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut state = self.state.lock();
        while !state.rung {
            state.parked += 1;
            let timed_out = match deadline {
                Some(deadline) => self.bell.wait_until(&mut state, deadline).timed_out(),
                None => {
                    self.bell.wait(&mut state);
                    false
                }
            };
            state.parked -= 1;
            if timed_out {
                return state.rung;
            }
        }
        true
    }

    /// Rings: marks the signal, unparks a waiting thread and hands back the
    /// async waker (if any) for the caller to wake. The caller must hold no
    /// broker lock when it wakes the waker: waking runs user code.
    #[must_use = "the returned waker must be woken"]
    pub(crate) fn ring(&self) -> Option<Waker> {
        let mut state = self.state.lock();
        state.rung = true;
        let parked = state.parked > 0;
        let waker = state.waker.take();
        drop(state);
        if parked {
            self.bell.notify_all();
        }
        waker
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::task::{Wake, Waker};
    use std::time::{Duration, Instant};

    use super::Signal;

    /// Counts wake-ups.
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A counting waker and its counter.
    fn counting() -> (Arc<CountingWaker>, Waker) {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        (Arc::clone(&counter), Waker::from(counter))
    }

    /// A ring with nobody waiting is remembered: the next wait returns at
    /// once. Arming forgets it, so a wait then times out.
    #[test]
    fn a_ring_is_remembered_until_armed() {
        let signal = Signal::default();
        assert!(signal.ring().is_none(), "no waker was left");
        assert!(signal.wait(Some(Instant::now())));
        assert!(signal.wait(None), "still rung: nothing armed it");
        signal.arm();
        let deadline = Instant::now() + Duration::from_millis(10);
        assert!(!signal.wait(Some(deadline)));
        assert!(Instant::now() >= deadline);
    }

    /// A thread parked in `wait` with no deadline is woken by one ring.
    #[test]
    fn a_ring_wakes_a_parked_thread() {
        let signal = Arc::new(Signal::default());
        signal.arm();
        let (woke, woken) = mpsc::channel();
        let waiter = {
            let signal = Arc::clone(&signal);
            std::thread::spawn(move || woke.send(signal.wait(None)).unwrap())
        };
        // Long enough for the waiter to park.
        std::thread::sleep(Duration::from_millis(50));
        assert!(signal.ring().is_none());
        assert_eq!(
            woken.recv_timeout(Duration::from_secs(60)),
            Ok(true),
            "the ring alone woke the parked thread"
        );
        waiter.join().unwrap();
    }

    /// Every parked thread is woken by one ring.
    #[test]
    fn a_ring_wakes_every_parked_thread() {
        let signal = Arc::new(Signal::default());
        signal.arm();
        let (woke, woken) = mpsc::channel();
        for _ in 0..2 {
            let (signal, woke) = (Arc::clone(&signal), woke.clone());
            std::thread::spawn(move || woke.send(signal.wait(None)).unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
        drop(signal.ring());
        for _ in 0..2 {
            assert_eq!(woken.recv_timeout(Duration::from_secs(60)), Ok(true));
        }
    }

    /// A ring hands back the async waker left with `set_waker`, once; a
    /// later ring has none to hand back.
    #[test]
    fn a_ring_hands_back_the_waker_once() {
        let signal = Signal::default();
        let (counter, waker) = counting();
        signal.set_waker(&waker);
        signal.ring().expect("the waker left").wake();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert!(signal.ring().is_none());
    }

    /// `set_waker` with a different waker replaces the stale one; with the
    /// same waker again it keeps the one it has.
    #[test]
    fn set_waker_replaces_a_stale_waker() {
        let signal = Signal::default();
        let (stale, stale_waker) = counting();
        let (fresh, fresh_waker) = counting();
        signal.set_waker(&stale_waker);
        signal.set_waker(&fresh_waker);
        signal.set_waker(&fresh_waker);
        signal.ring().expect("a waker left").wake();
        assert_eq!(
            (
                stale.0.load(Ordering::SeqCst),
                fresh.0.load(Ordering::SeqCst)
            ),
            (0, 1)
        );
    }
}
