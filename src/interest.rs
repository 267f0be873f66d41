//! Subscription interest: which channels, patterns and shard channels have
//! at least one subscriber, and when that changes.
//!
//! A bridge to another broker (say, a real Redis) needs exactly this: it
//! holds one upstream subscription per name that somebody here holds, and
//! drops it when the last local subscriber leaves. A test can use it to
//! wait until the code under test has subscribed.
//!
//! Each watcher keeps, per name, only the latest state not yet read, and
//! reports a name only when that state differs from what it last reported,
//! so a watcher that falls behind holds at most one entry per name and never
//! sees a change undone before it looked.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_core::{FusedStream, Stream};
use hashbrown::{HashMap, HashSet};

use crate::signal::Signal;
use crate::sync::Mutex;

/// What a name in an [`InterestChange`] is.
///
/// # Examples
///
/// ```
/// use tannoy::InterestKind;
///
/// assert_ne!(InterestKind::Channel, InterestKind::Pattern);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum InterestKind {
    /// An exact channel (`SUBSCRIBE`).
    Channel,
    /// A glob pattern (`PSUBSCRIBE`).
    Pattern,
    /// A shard channel (`SSUBSCRIBE`).
    ShardChannel,
}

/// A name gaining its first subscriber, or losing its last one.
///
/// # Examples
///
/// ```
/// use tannoy::{Broker, InterestKind};
///
/// let broker = Broker::new();
/// let watch = broker.watch_interest();
/// let sub = broker.subscriber();
/// sub.psubscribe(["ai:*"]);
/// let change = watch.try_next().unwrap();
/// assert_eq!((change.kind(), change.name().as_ref(), change.is_active()),
///            (InterestKind::Pattern, &b"ai:*"[..], true));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InterestChange {
    /// What the name is.
    kind: InterestKind,
    /// The channel, pattern or shard channel.
    name: Bytes,
    /// Whether somebody holds it now.
    active: bool,
}

impl InterestChange {
    /// What the name is.
    ///
    /// # Examples
    ///
    /// ```
    /// # let broker = tannoy::Broker::new();
    /// # let watch = broker.watch_interest();
    /// # let sub = broker.subscriber();
    /// sub.ssubscribe(["orders:{1}"]);
    /// assert_eq!(watch.try_next().unwrap().kind(), tannoy::InterestKind::ShardChannel);
    /// ```
    pub fn kind(&self) -> InterestKind {
        self.kind
    }

    /// The channel, pattern or shard channel, as subscribed.
    ///
    /// # Examples
    ///
    /// ```
    /// # let broker = tannoy::Broker::new();
    /// # let watch = broker.watch_interest();
    /// # let sub = broker.subscriber();
    /// sub.subscribe(["news"]);
    /// assert_eq!(watch.try_next().unwrap().name(), "news");
    /// ```
    pub fn name(&self) -> &Bytes {
        &self.name
    }

    /// `true` when the name gained its first subscriber, `false` when it
    /// lost its last one.
    ///
    /// # Examples
    ///
    /// ```
    /// # let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.subscribe(["news"]);
    /// let watch = broker.watch_interest();
    /// assert!(watch.try_next().unwrap().is_active()); // held already
    /// drop(sub);
    /// assert!(!watch.try_next().unwrap().is_active());
    /// ```
    pub fn is_active(&self) -> bool {
        self.active
    }
}

/// What an [`InterestWatch`] does when dropped: unregister its watcher.
pub(crate) type Unwatch = Box<dyn FnOnce(&Arc<Watcher>) + Send + Sync>;

/// A name as a watcher tracks it.
type Key = (InterestKind, Bytes);

/// What one watcher's lock protects.
#[derive(Debug, Default)]
struct WatchState {
    /// Names whose state changed since the watcher last looked, oldest
    /// change first, each once.
    order: VecDeque<Key>,
    /// The latest state of each name in `order`.
    latest: HashMap<Key, bool>,
    /// Names the watcher last reported as active.
    reported: HashSet<Key>,
    /// Set when the broker closed: nothing more will change.
    closed: bool,
}

/// The shared side of one [`InterestWatch`].
#[derive(Debug, Default)]
pub(crate) struct Watcher {
    /// Pending changes.
    state: Mutex<WatchState>,
    /// Rung by each change.
    signal: Arc<Signal>,
}

impl Watcher {
    /// Records that `name` is now `active`; returns the waker to wake once
    /// no broker lock is held.
    #[must_use = "the returned waker must be woken"]
    pub(crate) fn note(&self, kind: InterestKind, name: &Bytes, active: bool) -> Option<Waker> {
        let mut state = self.state.lock();
        let key = (kind, name.clone());
        if state.latest.insert(key.clone(), active).is_none() {
            state.order.push_back(key);
        }
        drop(state);
        self.signal.ring()
    }

    /// Marks the end: the broker closed.
    #[must_use = "the returned waker must be woken"]
    pub(crate) fn close(&self) -> Option<Waker> {
        self.state.lock().closed = true;
        self.signal.ring()
    }

    /// The next change, if one is pending; `Err(())` once the broker closed
    /// and nothing is pending.
    fn take(&self) -> Result<Option<InterestChange>, ()> {
        let mut state = self.state.lock();
        while let Some(key) = state.order.pop_front() {
            let Some(active) = state.latest.remove(&key) else {
                continue;
            };
            let was_active = state.reported.contains(&key);
            if active == was_active {
                // Changed and changed back before anyone looked.
                continue;
            }
            if active {
                state.reported.insert(key.clone());
            } else {
                state.reported.remove(&key);
            }
            let (kind, name) = key;
            return Ok(Some(InterestChange { kind, name, active }));
        }
        if state.closed { Err(()) } else { Ok(None) }
    }
}

/// Watches subscription interest; made by
/// [`Broker::watch_interest`](crate::Broker::watch_interest).
///
/// It first reports every name held when it was made (as active), then each
/// change: a channel, pattern or shard channel gaining its first subscriber
/// or losing its last. Receive with [`try_next`](Self::try_next),
/// [`next_timeout`](Self::next_timeout), or as a [`Stream`], which ends when
/// the broker closes. Dropping it stops the watching.
///
/// # Examples
///
/// A test that waits until the code under test has subscribed:
///
/// ```
/// use std::time::Duration;
///
/// let broker = tannoy::Broker::new();
/// let watch = broker.watch_interest();
/// let worker = broker.clone();
/// let handle = std::thread::spawn(move || {
///     let sub = worker.subscriber();
///     sub.subscribe(["jobs"]);
///     sub.recv().map(|m| m.into_payload())
/// });
/// let change = watch.next_timeout(Duration::from_secs(10)).expect("the worker subscribes");
/// assert_eq!(change.name(), "jobs");
/// assert_eq!(broker.publish("jobs", "j-1"), 1); // no sleep, no race
/// assert_eq!(handle.join().unwrap()?, "j-1");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "an InterestWatch reports nothing unless read"]
pub struct InterestWatch {
    /// The shared side, registered with the broker.
    watcher: Arc<Watcher>,
    /// Unregisters the watcher when dropped.
    on_drop: Option<Unwatch>,
    /// Set once the stream has ended, so it stays ended (see
    /// [`FusedStream`]).
    terminated: bool,
}

impl InterestWatch {
    /// Wraps a registered watcher; `on_drop` unregisters it.
    pub(crate) fn new(watcher: Arc<Watcher>, on_drop: Unwatch) -> Self {
        Self {
            watcher,
            on_drop: Some(on_drop),
            terminated: false,
        }
    }

    /// The next change, if one is pending, without waiting. `None` when
    /// nothing is pending (or the broker closed).
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let watch = broker.watch_interest();
    /// assert!(watch.try_next().is_none());
    /// ```
    pub fn try_next(&self) -> Option<InterestChange> {
        self.watcher.take().ok().flatten()
    }

    /// The next change, waiting at most `timeout` for one. `None` on
    /// timeout, or once the broker is closed and nothing is pending.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let broker = tannoy::Broker::new();
    /// let watch = broker.watch_interest();
    /// assert!(watch.next_timeout(Duration::from_millis(1)).is_none());
    /// ```
    pub fn next_timeout(&self, timeout: Duration) -> Option<InterestChange> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            self.watcher.signal.arm();
            match self.watcher.take() {
                Ok(Some(change)) => return Some(change),
                Err(()) => return None,
                Ok(None) => {}
            }
            if !self.watcher.signal.wait(deadline) {
                return self.watcher.take().ok().flatten();
            }
        }
    }
}

impl Stream for InterestWatch {
    type Item = InterestChange;

    /// Yields changes as they happen; ends once the broker is closed and
    /// every change before the close has been yielded, and from then on
    /// always returns `None`.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<InterestChange>> {
        let this = self.get_mut();
        if this.terminated {
            return Poll::Ready(None);
        }
        this.watcher.signal.set_waker(cx.waker());
        match this.watcher.take() {
            Ok(Some(change)) => Poll::Ready(Some(change)),
            Err(()) => {
                this.terminated = true;
                Poll::Ready(None)
            }
            Ok(None) => Poll::Pending,
        }
    }
}

impl FusedStream for InterestWatch {
    /// Whether the stream has ended. Its end is sticky: a closed broker
    /// still lets subscribers come and go, and
    /// [`try_next`](InterestWatch::try_next) still reports those changes,
    /// but the stream, once ended, stays ended.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_core::{FusedStream, Stream};
    ///
    /// let broker = tannoy::Broker::new();
    /// let mut watch = broker.watch_interest();
    /// broker.close();
    /// let waker = std::task::Waker::noop();
    /// let mut cx = std::task::Context::from_waker(&waker);
    /// assert!(!watch.is_terminated());
    /// assert!(std::pin::Pin::new(&mut watch).poll_next(&mut cx).is_ready());
    /// assert!(watch.is_terminated());
    /// ```
    fn is_terminated(&self) -> bool {
        self.terminated
    }
}

impl Drop for InterestWatch {
    fn drop(&mut self) {
        if let Some(on_drop) = self.on_drop.take() {
            on_drop(&self.watcher);
        }
    }
}

impl fmt::Debug for InterestWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.watcher.state.lock();
        f.debug_struct("InterestWatch")
            .field("pending", &state.order.len())
            .field("active", &state.reported.len())
            .field("closed", &state.closed)
            .finish()
    }
}
