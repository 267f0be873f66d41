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
        match &mut state.waker {
            Some(old) if old.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
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
