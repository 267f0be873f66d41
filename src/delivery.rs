//! One publish's tally: the deliveries it counted, and what must wait until
//! it holds no lock.

use std::sync::Arc;

use crate::broker::Inner;
use crate::message::{Envelope, Retired};
use crate::queue::Pushed;
use crate::subscriber::SubscriberShared;

/// The tally of one publish, and what it must do once it holds no lock.
///
/// Nothing that may hold the last reference to a payload is dropped while
/// the broker holds a lock, since a payload's `Drop` may itself publish or
/// subscribe; such values wait here until the `Delivery` is dropped, which
/// happens after the lock guards are released, on success and on unwinding
/// alike.
pub(crate) struct Delivery<'a, P> {
    /// The broker, to unsubscribe disconnected subscribers.
    broker: &'a Inner<P>,
    /// Deliveries counted so far (Redis's `PUBLISH` reply).
    count: usize,
    /// Subscribers whose queue overflowed under `Disconnect` during this
    /// publish.
    disconnected: Vec<Arc<SubscriberShared<P>>>,
    /// What the channel's reused envelope displaced.
    pub(crate) retired: Retired<P>,
    /// The first envelope a queue gave back (evicted or discarded); most
    /// publishes give back at most one, and this one needs no allocation.
    unqueued: Option<Arc<Envelope<P>>>,
    /// Any further envelopes given back.
    more_unqueued: Vec<Arc<Envelope<P>>>,
}

impl<'a, P> Delivery<'a, P> {
    /// An empty tally for a publish on `broker`.
    pub(crate) fn new(broker: &'a Inner<P>) -> Self {
        Self {
            broker,
            count: 0,
            disconnected: Vec::new(),
            retired: Retired::Nothing,
            unqueued: None,
            more_unqueued: Vec::new(),
        }
    }

    /// Queues `envelope` for each of `subscribers` (the last one gets the
    /// reference itself, saving a clone) and counts the addressed ones.
    #[inline]
    pub(crate) fn fan_out(
        &mut self,
        subscribers: &[Arc<SubscriberShared<P>>],
        envelope: Arc<Envelope<P>>,
    ) {
        if let Some((last, rest)) = subscribers.split_last() {
            for subscriber in rest {
                self.push(subscriber, Arc::clone(&envelope));
            }
            self.push(last, envelope);
        }
    }

    /// Queues `envelope` for `subscriber` and counts it if it was addressed.
    #[inline]
    fn push(&mut self, subscriber: &Arc<SubscriberShared<P>>, envelope: Arc<Envelope<P>>) {
        match subscriber.queue.push(envelope) {
            (Pushed::Queued, None) => self.count += 1,
            (pushed, unqueued) => self.settle(subscriber, pushed, unqueued),
        }
    }

    /// The uncommon outcomes of a push: something was given back (evicted
    /// or not queued), or the subscriber overflowed under `Disconnect`.
    /// Kept out of line so the common path stays small enough to inline.
    #[cold]
    #[inline(never)]
    fn settle(
        &mut self,
        subscriber: &Arc<SubscriberShared<P>>,
        pushed: Pushed,
        unqueued: Option<Arc<Envelope<P>>>,
    ) {
        self.count += usize::from(pushed.addressed());
        if pushed == Pushed::Disconnected {
            self.disconnected.push(Arc::clone(subscriber));
        }
        if let Some(envelope) = unqueued {
            match self.unqueued {
                None => self.unqueued = Some(envelope),
                Some(_) => self.more_unqueued.push(envelope),
            }
        }
    }

    /// Ends the publish (see `Drop`) and returns the count.
    pub(crate) fn finish(self) -> usize {
        self.count
    }
}

impl<P> Drop for Delivery<'_, P> {
    /// Unsubscribes the subscribers this publish disconnected; the values
    /// given back by the queues are dropped right after, with no lock held.
    fn drop(&mut self) {
        for subscriber in &self.disconnected {
            self.broker.unsubscribe_all(subscriber);
        }
    }
}
