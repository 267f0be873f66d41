//! The subscriber handle: one Redis "connection" in subscribed mode.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_core::Stream;

use crate::endpoint::{Endpoint, Inbox};
use crate::error::{RecvError, RecvTimeoutError, TryRecvError};
use crate::message::Message;
use crate::queue::OverflowPolicy;
use crate::registry::{Namespace, Registry};

/// A subscriber: one Redis connection in subscribed mode, with one bounded
/// queue.
///
/// Create one with [`Broker::subscriber`](crate::Broker::subscriber), then
/// [`subscribe`](Self::subscribe) to channels, [`psubscribe`](Self::psubscribe)
/// to patterns or [`ssubscribe`](Self::ssubscribe) to shard channels, and
/// receive with [`recv`](Self::recv), [`try_recv`](Self::try_recv),
/// [`recv_timeout`](Self::recv_timeout), [`iter`](Self::iter),
/// [`recv_async`](Self::recv_async) or as a [`Stream`].
///
/// Every message published to a channel it holds (or matching a pattern it
/// holds) after the subscribe call returned is in its queue by the time
/// `publish` returns. When the queue is full, the overflow policy decides
/// what to lose (by default the oldest message); loss is counted by
/// [`dropped`](Self::dropped) and visible in [`Message::seq`].
///
/// Dropping a `Subscriber` unsubscribes it from everything at once, as a
/// Redis client's disconnect does; introspection reflects it immediately.
///
/// # Examples
///
/// ```
/// use tannoy::Broker;
///
/// let broker = Broker::new();
/// let sub = broker.subscriber();
/// assert_eq!(sub.subscribe(["ai:models:updated", "ai:embeddings:refresh"]), 2);
/// assert_eq!(sub.psubscribe(["ai:*"]), 3);
///
/// assert_eq!(broker.publish("ai:models:updated", "gpt-5:v2"), 2);
/// let exact = sub.recv()?;
/// let by_pattern = sub.recv()?;
/// assert_eq!((exact.pattern(), by_pattern.pattern().unwrap()), (None, &"ai:*".into()));
///
/// drop(sub);
/// assert_eq!(broker.numpat(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping a Subscriber unsubscribes it from everything"]
pub struct Subscriber<P = Bytes> {
    /// The broker's side of this subscriber.
    endpoint: Arc<Endpoint<P>>,
    /// The broker, to (un)subscribe and to unregister on drop. Does not keep
    /// the broker open: only `Broker` handles do.
    broker: Arc<Registry<P>>,
}

impl<P: Clone + Send + Sync + 'static> Subscriber<P> {
    /// Wraps a registered subscriber.
    pub(crate) fn new(endpoint: Arc<Endpoint<P>>, broker: Arc<Registry<P>>) -> Self {
        Self { endpoint, broker }
    }

    /// Subscribes to the exact channels `channels` (Redis `SUBSCRIBE`) and
    /// returns the subscription count after it: channels plus patterns held.
    ///
    /// Subscribing to a channel already held changes nothing (one copy per
    /// publish, as in Redis). Names are binary-safe byte strings; the empty
    /// name is a valid channel. An empty list changes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// assert_eq!(sub.subscribe(["x", "x", "y"]), 2);
    /// assert_eq!(sub.subscribe([b"\xff\x00".as_slice()]), 3);
    /// ```
    pub fn subscribe<I>(&self, channels: I) -> usize
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.broker
            .subscribe(&self.endpoint, Namespace::Channel, channels)
    }

    /// Subscribes to the glob patterns `patterns` (Redis `PSUBSCRIBE`) and
    /// returns the subscription count after it: channels plus patterns held.
    ///
    /// Patterns use Redis's glob grammar exactly (see the crate docs,
    /// *Pattern syntax*); every byte string is a valid pattern. A subscriber
    /// holding a channel and `k` patterns that match a published channel
    /// receives `1 + k` messages, as in Redis.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.subscribe(["news.sport"]);
    /// assert_eq!(sub.psubscribe(["news.*", "*sport"]), 3);
    /// assert_eq!(broker.publish("news.sport", "goal"), 3);
    /// ```
    pub fn psubscribe<I>(&self, patterns: I) -> usize
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.broker.psubscribe(&self.endpoint, patterns)
    }

    /// Subscribes to the shard channels `channels` (Redis 7 `SSUBSCRIBE`)
    /// and returns the number of shard channels held (Redis counts them
    /// apart from channels and patterns).
    ///
    /// Shard channels are a separate namespace: they receive only
    /// [`Broker::spublish`](crate::Broker::spublish), never `publish`, and
    /// patterns never match them.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.subscribe(["orders"]);
    /// assert_eq!(sub.ssubscribe(["orders"]), 1);
    /// assert_eq!(broker.spublish("orders", "o-1"), 1);
    /// ```
    pub fn ssubscribe<I>(&self, channels: I) -> usize
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.broker
            .subscribe(&self.endpoint, Namespace::Shard, channels)
    }

    /// Unsubscribes from the exact channels `channels` (Redis `UNSUBSCRIBE`),
    /// or from every channel when the list is empty, and returns the
    /// subscription count after it: channels plus patterns held.
    ///
    /// Names not held are ignored; names are compared as exact bytes (no
    /// glob). Messages queued before the call stay queued.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.subscribe(["a", "b", "c"]);
    /// sub.psubscribe(["p*"]);
    /// assert_eq!(sub.unsubscribe(["a", "nope"]), 3);
    /// assert_eq!(sub.unsubscribe(None::<&str>), 1); // all channels; the pattern stays
    /// ```
    pub fn unsubscribe<I>(&self, channels: I) -> usize
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.broker
            .unsubscribe(&self.endpoint, Namespace::Channel, channels)
    }

    /// Unsubscribes from the patterns `patterns` (Redis `PUNSUBSCRIBE`), or
    /// from every pattern when the list is empty, and returns the
    /// subscription count after it: channels plus patterns held.
    ///
    /// Patterns are compared as exact bytes: `punsubscribe(["f*"])` removes
    /// the pattern `f*` only, not `fo*`.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.psubscribe(["f*", "fo*"]);
    /// assert_eq!(sub.punsubscribe(["f*"]), 1);
    /// assert_eq!(sub.punsubscribe(Vec::<&str>::new()), 0);
    /// ```
    pub fn punsubscribe<I>(&self, patterns: I) -> usize
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.broker.punsubscribe(&self.endpoint, patterns)
    }

    /// Unsubscribes from the shard channels `channels` (Redis
    /// `SUNSUBSCRIBE`), or from every shard channel when the list is empty,
    /// and returns the number of shard channels still held.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.ssubscribe(["s1", "s2"]);
    /// assert_eq!(sub.sunsubscribe(["s1"]), 1);
    /// ```
    pub fn sunsubscribe<I>(&self, channels: I) -> usize
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.broker
            .unsubscribe(&self.endpoint, Namespace::Shard, channels)
    }
}

impl<P> Subscriber<P> {
    /// Receives the oldest queued message, waiting for one if the queue is
    /// empty.
    ///
    /// # Errors
    ///
    /// Once the queue is drained: [`RecvError::Closed`] if the broker was
    /// closed (or its last handle dropped), [`RecvError::Disconnected`] if
    /// this subscriber was disconnected by
    /// [`OverflowPolicy::Disconnect`].
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.subscribe(["jobs"]);
    /// let publisher = broker.clone();
    /// std::thread::spawn(move || publisher.publish("jobs", "j-1"));
    /// assert_eq!(sub.recv()?.payload(), "j-1");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv(&self) -> Result<Message<P>, RecvError> {
        self.receive_until(None).map_err(|err| match err {
            RecvTimeoutError::Closed => RecvError::Closed,
            RecvTimeoutError::Disconnected => RecvError::Disconnected,
            // No deadline was given, so the wait cannot time out.
            RecvTimeoutError::Timeout => unreachable!("a wait without a deadline timed out"),
        })
    }

    /// Receives the oldest queued message if there is one, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] when nothing is queued; otherwise as
    /// [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use tannoy::TryRecvError;
    ///
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.subscribe(["c"]);
    /// assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
    /// broker.publish("c", "now");
    /// assert_eq!(sub.try_recv()?.payload(), "now"); // publish has queued it
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv(&self) -> Result<Message<P>, TryRecvError> {
        match &self.endpoint.inbox {
            Inbox::Feeds(reader) => reader.try_take(&self.broker.closed),
            Inbox::Queue(queue) => queue.try_pop(),
        }
        .map(|(seq, envelope)| Message::new(seq, envelope))
    }

    /// Receives, waiting until `deadline` at most (forever for `None`).
    fn receive_until(&self, deadline: Option<Instant>) -> Result<Message<P>, RecvTimeoutError> {
        match &self.endpoint.inbox {
            Inbox::Feeds(reader) => reader.take_until(&self.broker.closed, deadline),
            Inbox::Queue(queue) => queue.pop_until(deadline),
        }
        .map(|(seq, envelope)| Message::new(seq, envelope))
    }

    /// Polls for a message, leaving `cx`'s waker to be woken when one comes.
    fn poll_receive(&self, cx: &mut Context<'_>) -> Poll<Result<Message<P>, RecvError>> {
        match &self.endpoint.inbox {
            Inbox::Feeds(reader) => reader.poll_take(cx, &self.broker.closed),
            Inbox::Queue(queue) => queue.poll_pop(cx),
        }
        .map(|res| res.map(|(seq, envelope)| Message::new(seq, envelope)))
    }

    /// Receives the oldest queued message, waiting at most `timeout` for one.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] if nothing arrived in time; otherwise as
    /// [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// assert!(sub.recv_timeout(Duration::from_millis(5)).is_err());
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Message<P>, RecvTimeoutError> {
        // A timeout too large to represent as a deadline means "forever".
        let deadline = Instant::now().checked_add(timeout);
        self.receive_until(deadline)
    }

    /// Receives the oldest queued message, waiting until `deadline` at most.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] if nothing arrived in time; otherwise as
    /// [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// let deadline = Instant::now() + Duration::from_millis(5);
    /// assert!(sub.recv_deadline(deadline).is_err());
    /// ```
    pub fn recv_deadline(&self, deadline: Instant) -> Result<Message<P>, RecvTimeoutError> {
        self.receive_until(Some(deadline))
    }

    /// Receives the oldest queued message asynchronously.
    ///
    /// The future is woken by the publisher that queues a message (or by
    /// close); it needs no particular runtime. It is cancellation-safe:
    /// dropping it before it completes loses no message, so it can sit in a
    /// `select!` beside other futures.
    ///
    /// It borrows the subscriber mutably because a subscriber keeps one
    /// async waiter: a subscriber is one consumer, as a Redis connection
    /// is. To consume in several tasks, give each task its own subscriber.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_executor_free_block_on(async {
    /// let broker = tannoy::Broker::new();
    /// let mut sub = broker.subscriber();
    /// sub.subscribe(["c"]);
    /// broker.publish("c", "hi");
    /// assert_eq!(sub.recv_async().await?.payload(), "hi");
    /// # Ok::<(), tannoy::RecvError>(())
    /// # }).unwrap();
    /// # fn futures_executor_free_block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let waker = std::task::Waker::noop();
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #         std::thread::yield_now();
    /// #     }
    /// # }
    /// ```
    pub fn recv_async(&mut self) -> Recv<'_, P> {
        Recv { subscriber: self }
    }

    /// A blocking iterator over received messages; it ends when the broker
    /// is closed (or the subscriber disconnected) and the queue is drained.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.subscribe(["work"]);
    /// broker.publish("work", "a");
    /// broker.publish("work", "b");
    /// broker.close();
    /// let got: Vec<_> = sub.iter().map(|m| m.into_payload()).collect();
    /// assert_eq!(got, ["a", "b"]);
    /// ```
    pub fn iter(&self) -> Iter<'_, P> {
        Iter { subscriber: self }
    }

    /// A non-blocking iterator over the messages queued right now.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.subscribe(["c"]);
    /// broker.publish("c", "1");
    /// broker.publish("c", "2");
    /// assert_eq!(sub.try_iter().count(), 2);
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, P> {
        TryIter { subscriber: self }
    }

    /// How many messages addressed to this subscriber its overflow policy
    /// discarded, in total.
    ///
    /// For every subscriber, messages addressed to it = messages received +
    /// `dropped()` + messages still queued.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::builder().queue_capacity(1).build();
    /// let sub = broker.subscriber();
    /// sub.subscribe(["c"]);
    /// broker.publish("c", "old");
    /// broker.publish("c", "new");
    /// assert_eq!(sub.dropped(), 1);
    /// assert_eq!(sub.try_recv()?.payload(), "new");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dropped(&self) -> u64 {
        match &self.endpoint.inbox {
            Inbox::Feeds(reader) => reader.dropped(),
            Inbox::Queue(queue) => queue.dropped(),
        }
    }

    /// How many messages are queued now.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.subscribe(["c"]);
    /// broker.publish("c", "x");
    /// assert_eq!(sub.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        match &self.endpoint.inbox {
            Inbox::Feeds(reader) => reader.len(),
            Inbox::Queue(queue) => queue.len(),
        }
    }

    /// Whether no message is queued now.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// assert!(broker.subscriber().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most messages the queue holds before the overflow policy applies.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::builder().queue_capacity(8).build();
    /// assert_eq!(broker.subscriber().capacity(), 8);
    /// ```
    pub fn capacity(&self) -> usize {
        self.endpoint.capacity()
    }

    /// This subscriber's overflow policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use tannoy::OverflowPolicy;
    ///
    /// let broker = tannoy::Broker::new();
    /// assert_eq!(broker.subscriber().overflow_policy(), OverflowPolicy::DropOldest);
    /// ```
    pub fn overflow_policy(&self) -> OverflowPolicy {
        self.endpoint.policy()
    }

    /// Whether the subscriber was disconnected by
    /// [`OverflowPolicy::Disconnect`].
    /// A disconnected subscriber holds no subscriptions and ignores new
    /// ones; create a new subscriber to "reconnect".
    ///
    /// # Examples
    ///
    /// ```
    /// use tannoy::OverflowPolicy;
    ///
    /// let broker = tannoy::Broker::builder().queue_capacity(1).build();
    /// let sub = broker.subscriber_with(OverflowPolicy::Disconnect);
    /// sub.subscribe(["c"]);
    /// broker.publish("c", "1");
    /// broker.publish("c", "2"); // overflows: sub is disconnected
    /// assert!(sub.is_disconnected());
    /// assert_eq!(broker.numsub(["c"])[0].1, 0);
    /// ```
    pub fn is_disconnected(&self) -> bool {
        match &self.endpoint.inbox {
            Inbox::Feeds(_) => false,
            Inbox::Queue(queue) => queue.is_disconnected(),
        }
    }

    /// The subscription count Redis reports for `(P)(UN)SUBSCRIBE`:
    /// channels plus patterns held.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.subscribe(["a"]);
    /// sub.psubscribe(["b*"]);
    /// sub.ssubscribe(["c"]);
    /// assert_eq!(sub.subscription_count(), 2);
    /// assert_eq!(sub.shard_subscription_count(), 1);
    /// ```
    pub fn subscription_count(&self) -> usize {
        self.endpoint.subscriptions.lock().count()
    }

    /// The number of shard channels held (Redis's count for
    /// `S(UN)SUBSCRIBE`).
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.ssubscribe(["a", "b"]);
    /// assert_eq!(sub.shard_subscription_count(), 2);
    /// ```
    pub fn shard_subscription_count(&self) -> usize {
        self.endpoint.subscriptions.lock().shard_count()
    }

    /// The exact channels held, in no particular order.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.subscribe(["a"]);
    /// assert_eq!(sub.channels(), ["a"]);
    /// ```
    pub fn channels(&self) -> Vec<Bytes> {
        let subscriptions = self.endpoint.subscriptions.lock();
        subscriptions.channels.iter().cloned().collect()
    }

    /// The patterns held, in no particular order.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.psubscribe(["a*"]);
    /// assert_eq!(sub.patterns(), ["a*"]);
    /// ```
    pub fn patterns(&self) -> Vec<Bytes> {
        let subscriptions = self.endpoint.subscriptions.lock();
        subscriptions.patterns.iter().cloned().collect()
    }

    /// The shard channels held, in no particular order.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.ssubscribe(["s"]);
    /// assert_eq!(sub.shard_channels(), ["s"]);
    /// ```
    pub fn shard_channels(&self) -> Vec<Bytes> {
        let subscriptions = self.endpoint.subscriptions.lock();
        subscriptions.shard_channels.iter().cloned().collect()
    }
}

impl<P> Drop for Subscriber<P> {
    fn drop(&mut self) {
        self.broker.remove(&self.endpoint);
    }
}

impl<P> fmt::Debug for Subscriber<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (count, shard_count, gone) = {
            let s = self.endpoint.subscriptions.lock();
            (s.count(), s.shard_count(), s.gone)
        };
        f.debug_struct("Subscriber")
            .field("id", &self.endpoint.id())
            .field("subscriptions", &count)
            .field("shard_subscriptions", &shard_count)
            .field("queued", &self.len())
            .field("capacity", &self.capacity())
            .field("dropped", &self.dropped())
            .field("disconnected", &gone)
            .finish()
    }
}

impl<P> Stream for Subscriber<P> {
    type Item = Message<P>;

    /// Yields messages as they arrive; ends (returns `None`) once the broker
    /// is closed or the subscriber disconnected and the queue is drained.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_receive(cx).map(Result::ok)
    }
}

/// Future returned by [`Subscriber::recv_async`].
///
/// Cancellation-safe: a message is taken from the queue only in the poll
/// that returns it, so dropping the future loses nothing.
#[must_use = "futures do nothing unless polled"]
pub struct Recv<'a, P> {
    /// The subscriber receiving.
    subscriber: &'a mut Subscriber<P>,
}

impl<P> Future for Recv<'_, P> {
    type Output = Result<Message<P>, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.subscriber.poll_receive(cx)
    }
}

impl<P> fmt::Debug for Recv<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv").finish_non_exhaustive()
    }
}

/// Blocking iterator returned by [`Subscriber::iter`].
pub struct Iter<'a, P> {
    /// The subscriber receiving.
    subscriber: &'a Subscriber<P>,
}

impl<P> Iterator for Iter<'_, P> {
    type Item = Message<P>;

    fn next(&mut self) -> Option<Self::Item> {
        self.subscriber.recv().ok()
    }
}

impl<P> fmt::Debug for Iter<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}

/// Non-blocking iterator returned by [`Subscriber::try_iter`].
pub struct TryIter<'a, P> {
    /// The subscriber receiving.
    subscriber: &'a Subscriber<P>,
}

impl<P> Iterator for TryIter<'_, P> {
    type Item = Message<P>;

    fn next(&mut self) -> Option<Self::Item> {
        self.subscriber.try_recv().ok()
    }
}

impl<P> fmt::Debug for TryIter<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryIter").finish_non_exhaustive()
    }
}

impl<'a, P> IntoIterator for &'a Subscriber<P> {
    type Item = Message<P>;
    type IntoIter = Iter<'a, P>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
