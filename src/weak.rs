//! A broker handle that does not keep the broker open: [`WeakBroker`].

use std::fmt;
use std::sync::Weak;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::broker::Broker;
use crate::registry::Registry;

/// A handle to a broker that does not keep it open; made by
/// [`Broker::downgrade`].
///
/// Only [`Broker`] handles keep a broker open: when the last one drops, the
/// broker closes, whatever `WeakBroker`s remain. [`upgrade`](Self::upgrade)
/// turns a `WeakBroker` back into a `Broker` while the broker is open, and
/// returns `None` once it has closed. Use one where a component must publish
/// while the application runs but must not be what keeps it running: a
/// callback stored inside a payload or a subscriber's task, a registry of
/// background jobs, a cache of handles.
///
/// Upgrading races safely with the last handle's drop: either the upgrade
/// wins and the broker stays open for the new handle, or the drop wins and
/// the upgrade returns `None`; never a handle to a broker that is closing.
///
/// # Examples
///
/// ```
/// let broker = tannoy::Broker::new();
/// let weak = broker.downgrade();
///
/// let again = weak.upgrade().expect("the broker is open");
/// assert_eq!(again.publish("c", "x"), 0);
/// drop(again);
///
/// drop(broker); // the last strong handle: the broker closes
/// assert!(weak.upgrade().is_none());
/// ```
pub struct WeakBroker<P = Bytes> {
    /// The shared broker, if anything still holds it.
    inner: Weak<Registry<P>>,
}

impl<P> WeakBroker<P> {
    /// A weak handle to `inner`.
    pub(crate) fn new(inner: Weak<Registry<P>>) -> Self {
        Self { inner }
    }

    /// A [`Broker`] handle to the same broker, if it is still open; `None`
    /// once it has been [closed](Broker::close) or its last `Broker` handle
    /// dropped.
    ///
    /// The handle returned keeps the broker open, as any `Broker` does.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let weak = broker.downgrade();
    /// assert!(weak.upgrade().is_some());
    /// broker.close();
    /// assert!(weak.upgrade().is_none());
    /// ```
    pub fn upgrade(&self) -> Option<Broker<P>> {
        let inner = self.inner.upgrade()?;
        // Count the new handle only while another one is alive: once the
        // count has reached zero the broker is closing, and a handle must
        // not bring it back.
        let mut handles = inner.handles.load(Ordering::Relaxed);
        loop {
            if handles == 0 {
                return None;
            }
            match inner.handles.compare_exchange_weak(
                handles,
                handles + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => handles = now,
            }
        }
        // Counted above; from here its drop gives the count back (and, if
        // it was the last, closes the broker again, which is harmless).
        let broker = Broker::from_counted(inner);
        if broker.is_closed() {
            return None;
        }
        Some(broker)
    }
}

impl<P> Clone for WeakBroker<P> {
    fn clone(&self) -> Self {
        Self {
            inner: Weak::clone(&self.inner),
        }
    }
}

impl<P> fmt::Debug for WeakBroker<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakBroker").finish_non_exhaustive()
    }
}
