//! Waiting for a broker to close: the [`Closed`] future and the list of
//! its wakers that `Registry::close` empties.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures_core::FusedFuture;
use hashbrown::HashMap;

use crate::sync::Mutex;

/// What the close signal's lock protects.
#[derive(Debug, Default)]
struct CloseState {
    /// Set once the broker has closed; never cleared.
    closed: bool,
    /// Id for the next [`Closed`] future that waits.
    next_id: u64,
    /// The wakers of the futures waiting now, by id.
    wakers: HashMap<u64, Waker>,
}

/// The broker's side of every [`Closed`] future: set once, when the
/// broker has closed, waking every future waiting.
#[derive(Debug, Default)]
pub(crate) struct CloseSignal {
    /// The flag and the waiting wakers.
    state: Mutex<CloseState>,
}

impl CloseSignal {
    /// Marks the broker closed and wakes every waiting future. Wakes with
    /// no lock held: a waker's `wake` is user code. Idempotent.
    pub(crate) fn close(&self) {
        let wakers = {
            let mut state = self.state.lock();
            state.closed = true;
            std::mem::take(&mut state.wakers)
        };
        for (_, waker) in wakers {
            waker.wake();
        }
    }
}

/// A future that completes once its broker is closed; made by
/// [`Broker::closed`](crate::Broker::closed) and
/// [`Subscriber::closed`](crate::Subscriber::closed).
///
/// It completes when [`Broker::close`](crate::Broker::close) has been
/// called or the last `Broker` handle dropped, and the close has taken
/// effect: from then on no publish delivers anything, and every
/// subscriber's receive ends once its queue is drained. If the broker is
/// already closed it completes at the first poll.
///
/// It holds no `Broker` handle, so it does not keep the broker open: a task
/// can wait on it while the rest of the program decides when to shut down.
/// It needs no particular runtime, and dropping it unregisters it.
///
/// # Examples
///
/// ```
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop {
/// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
/// #         std::thread::yield_now();
/// #     }
/// # }
/// let broker = tannoy::Broker::new();
/// let closed = broker.closed();
/// let owner = std::thread::spawn(move || {
///     // ... the program runs, then drops its last handle:
///     drop(broker);
/// });
/// block_on(closed); // returns once the broker has closed
/// owner.join().unwrap();
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Closed {
    /// The broker's close signal.
    signal: Arc<CloseSignal>,
    /// This future's slot in the signal's waker list, once it has waited.
    id: Option<u64>,
    /// Set once it has completed.
    done: bool,
}

impl Closed {
    /// A future waiting on `signal`.
    pub(crate) fn new(signal: Arc<CloseSignal>) -> Self {
        Self {
            signal,
            id: None,
            done: false,
        }
    }
}

impl Future for Closed {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let waker = cx.waker();
        {
            let state = this.signal.state.lock();
            if state.closed {
                this.done = true;
                return Poll::Ready(());
            }
            if let Some(old) = this.id.and_then(|id| state.wakers.get(&id)) {
                if old.will_wake(waker) {
                    return Poll::Pending;
                }
            }
        }
        // Cloned, and the old waker dropped, with no lock held: both run
        // the waker's own code.
        let waker = waker.clone();
        let mut state = this.signal.state.lock();
        if state.closed {
            drop(state);
            this.done = true;
            return Poll::Ready(());
        }
        let id = match this.id {
            Some(id) => id,
            None => {
                let id = state.next_id;
                state.next_id += 1;
                this.id = Some(id);
                id
            }
        };
        let old = state.wakers.insert(id, waker);
        drop(state);
        drop(old);
        Poll::Pending
    }
}

impl FusedFuture for Closed {
    /// Whether the future has completed.
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl Drop for Closed {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let waker = self.signal.state.lock().wakers.remove(&id);
            drop(waker);
        }
    }
}

impl fmt::Debug for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Closed")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
