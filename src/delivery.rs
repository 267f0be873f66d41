//! One publish's tally: the deliveries it counted, and what must wait until
//! it holds no lock.

use std::sync::Arc;
use std::task::Waker;

use crate::endpoint::{Endpoint, Inbox};
use crate::message::Envelope;
use crate::queue::Pushed;
use crate::registry::Registry;
use crate::signal::Signal;

/// The tally of one publish, and what it must do once it holds no lock.
///
/// User code never runs under a broker lock: a payload's `Drop` may publish
/// or subscribe, and so may a waker's `wake` (an executor may poll the woken
/// task inline). So nothing that may hold the last reference to a payload
/// is dropped, and nobody is woken, while the publish holds a lock; such
/// work waits here until the `Delivery` is dropped, which happens after the
/// lock guards are released, on success and on unwinding alike.
///
/// The common publish (subscribers keeping up, nobody parked) only counts;
/// everything else lives in [`Chores`], allocated the first time it is
/// needed, so the common publish neither allocates nor walks empty lists.
pub(crate) struct Delivery<'a, P> {
    /// The broker, to unsubscribe disconnected subscribers.
    registry: &'a Registry<P>,
    /// Deliveries counted so far (Redis's `PUBLISH` reply).
    count: usize,
    /// The first envelope given back (evicted or discarded): a full feed
    /// gives back one per publish, and this one needs no allocation.
    unqueued: Option<Arc<Envelope<P>>>,
    /// The payload, when no channel subscriber took it.
    pub(crate) unused: Option<P>,
    /// The first waiting reader to wake: a hand-off to one parked
    /// receiver needs no allocation.
    signal: Option<Arc<Signal>>,
    /// The uncommon work, if any.
    chores: Option<Box<Chores<P>>>,
}

/// The uncommon part of a publish's work.
struct Chores<P> {
    /// Subscribers whose queue overflowed under `Disconnect` during this
    /// publish.
    disconnected: Vec<Arc<Endpoint<P>>>,
    /// Signals of feed readers waiting for a message.
    signals: Vec<Arc<Signal>>,
    /// Async receivers of subscribers with their own queue.
    wakers: Vec<Waker>,
    /// Envelopes given back beyond the first.
    unqueued: Vec<Arc<Envelope<P>>>,
}

impl<'a, P> Delivery<'a, P> {
    /// An empty tally for a publish on `registry`.
    #[inline]
    pub(crate) fn new(registry: &'a Registry<P>) -> Self {
        Self {
            registry,
            count: 0,
            unqueued: None,
            unused: None,
            signal: None,
            chores: None,
        }
    }

    /// The uncommon work, created on first use.
    #[cold]
    fn chores(&mut self) -> &mut Chores<P> {
        self.chores.get_or_insert_with(|| {
            Box::new(Chores {
                disconnected: Vec::new(),
                signals: Vec::new(),
                wakers: Vec::new(),
                unqueued: Vec::new(),
            })
        })
    }

    /// Counts `n` deliveries to feed readers.
    #[inline]
    pub(crate) fn count(&mut self, n: usize) {
        self.count += n;
    }

    /// Keeps the signals of readers to wake.
    pub(crate) fn ring(&mut self, signals: impl Iterator<Item = Arc<Signal>>) {
        for signal in signals {
            match self.signal {
                None => self.signal = Some(signal),
                Some(_) => self.chores().signals.push(signal),
            }
        }
    }

    /// Keeps a value the publish no longer needs, to drop it later.
    #[inline]
    pub(crate) fn discard(&mut self, envelope: Option<Arc<Envelope<P>>>) {
        if let Some(envelope) = envelope {
            match self.unqueued {
                None => self.unqueued = Some(envelope),
                Some(_) => self.chores().unqueued.push(envelope),
            }
        }
    }

    /// Queues `envelope` for a subscriber with its own queue and counts it
    /// if it was addressed.
    pub(crate) fn push(&mut self, endpoint: &Arc<Endpoint<P>>, envelope: Arc<Envelope<P>>) {
        let Inbox::Queue(queue) = &endpoint.inbox else {
            // Feeds list only queue-owning subscribers as strict members.
            unreachable!("a feed reader is never pushed to");
        };
        let push = queue.push(envelope);
        self.count += usize::from(push.outcome.addressed());
        if push.outcome == Pushed::Disconnected {
            self.chores().disconnected.push(Arc::clone(endpoint));
        }
        self.discard(push.unqueued);
        if let Some(waker) = push.waker {
            self.chores().wakers.push(waker);
        }
    }

    /// Ends the publish (see `Drop`) and returns the count.
    #[inline]
    pub(crate) fn finish(self) -> usize {
        let count = self.count;
        if self.unqueued.is_none()
            && self.unused.is_none()
            && self.signal.is_none()
            && self.chores.is_none()
        {
            // The common publish: nothing to drop, nobody to wake. Its
            // fields own nothing, so forgetting it skips the drop glue and
            // leaks nothing.
            std::mem::forget(self);
        }
        count
    }
}

impl<P> Drop for Delivery<'_, P> {
    /// Unsubscribes the subscribers this publish disconnected and wakes
    /// waiting receivers; the values given back are dropped right after,
    /// with no lock held.
    fn drop(&mut self) {
        // Bookkeeping first: a waker that panics must not leave a
        // disconnected subscriber half-removed.
        if let Some(chores) = &self.chores {
            for endpoint in &chores.disconnected {
                self.registry.unsubscribe_all(endpoint);
            }
        }
        if let Some(waker) = self.signal.as_ref().and_then(|signal| signal.ring()) {
            waker.wake();
        }
        if let Some(chores) = &mut self.chores {
            for signal in chores.signals.drain(..) {
                if let Some(waker) = signal.ring() {
                    waker.wake();
                }
            }
            for waker in chores.wakers.drain(..) {
                waker.wake();
            }
        }
    }
}
