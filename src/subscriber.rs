//! The subscriber handle: one Redis "connection" in subscribed mode.

use std::fmt;
use std::future::Future;
use std::iter::FusedIterator;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_core::{FusedStream, Stream};

use crate::closed::Closed;
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
/// [`recv_many`](Self::recv_many), [`recv_async`](Self::recv_async) or as a
/// [`Stream`].
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
    /// Set once the async side (the `Stream`, `recv_async`,
    /// `recv_many_async`) has seen the end; see [`FusedStream`].
    terminated: bool,
}

impl<P: Clone + Send + Sync + 'static> Subscriber<P> {
    /// Wraps a registered subscriber.
    pub(crate) fn new(endpoint: Arc<Endpoint<P>>, broker: Arc<Registry<P>>) -> Self {
        Self {
            endpoint,
            broker,
            terminated: false,
        }
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
    // Small enough to inline into the caller's loop (the queue's pop is
    // out of line), so a receive makes one call, not two.
    #[inline]
    pub fn try_recv(&self) -> Result<Message<P>, TryRecvError> {
        match &self.endpoint.inbox {
            Inbox::Feeds(reader) => reader.try_take(self.broker.receive_context()),
            Inbox::Queue(queue) => queue.try_pop(),
        }
        .map(|(seq, envelope)| Message::new(seq, envelope))
    }

    /// Receives, waiting until `deadline` at most (forever for `None`).
    fn receive_until(&self, deadline: Option<Instant>) -> Result<Message<P>, RecvTimeoutError> {
        match &self.endpoint.inbox {
            Inbox::Feeds(reader) => reader.take_until(self.broker.receive_context(), deadline),
            Inbox::Queue(queue) => queue.pop_until(deadline),
        }
        .map(|(seq, envelope)| Message::new(seq, envelope))
    }

    /// Polls for a message, leaving `cx`'s waker to be woken when one comes.
    fn poll_receive(&self, cx: &mut Context<'_>) -> Poll<Result<Message<P>, RecvError>> {
        match &self.endpoint.inbox {
            Inbox::Feeds(reader) => reader.poll_take(cx, self.broker.receive_context()),
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

    /// Receives up to `limit` messages into `buf`, waiting for the first
    /// one if none is queued, then taking only what is queued already.
    /// Returns how many it appended; what `buf` held before stays in front.
    ///
    /// A consumer that handles messages in batches pays for one wake-up per
    /// batch rather than per message, and reuses one buffer. With `limit`
    /// 0 it returns `Ok(0)` at once. The messages are those `recv` would
    /// have returned, in the same order.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), once the queue is drained: messages queued
    /// before the broker closed are all received first.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.subscribe(["metrics"]);
    /// for i in 0..5 {
    ///     broker.publish("metrics", i.to_string());
    /// }
    /// let mut batch = Vec::with_capacity(4);
    /// assert_eq!(sub.recv_many(&mut batch, 4)?, 4);
    /// batch.clear();
    /// assert_eq!(sub.recv_many(&mut batch, 4)?, 1);
    /// assert_eq!(batch[0].payload(), "4");
    ///
    /// broker.close();
    /// assert_eq!(sub.recv_many(&mut batch, 4), Err(tannoy::RecvError::Closed));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_many(&self, buf: &mut Vec<Message<P>>, limit: usize) -> Result<usize, RecvError> {
        if limit == 0 {
            return Ok(0);
        }
        buf.push(self.recv()?);
        Ok(1 + self.take_queued(buf, limit - 1))
    }

    /// Receives up to `limit` of the messages queued now into `buf`,
    /// without waiting. Returns how many it appended (at least one).
    ///
    /// With `limit` 0 it returns `Ok(0)` at once.
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
    /// let mut buf = Vec::new();
    /// assert_eq!(sub.try_recv_many(&mut buf, 10), Err(TryRecvError::Empty));
    /// broker.publish("c", "1");
    /// broker.publish("c", "2");
    /// assert_eq!(sub.try_recv_many(&mut buf, 10)?, 2);
    /// assert_eq!(buf.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv_many(
        &self,
        buf: &mut Vec<Message<P>>,
        limit: usize,
    ) -> Result<usize, TryRecvError> {
        if limit == 0 {
            return Ok(0);
        }
        buf.push(self.try_recv()?);
        Ok(1 + self.take_queued(buf, limit - 1))
    }

    /// Appends at most `max` of the messages queued now to `buf`; returns
    /// how many.
    fn take_queued(&self, buf: &mut Vec<Message<P>>, max: usize) -> usize {
        let mut taken = 0;
        while taken < max {
            match self.try_recv() {
                Ok(message) => buf.push(message),
                Err(_) => break,
            }
            taken += 1;
        }
        taken
    }

    /// Receives up to `limit` messages into `buf` asynchronously: waits for
    /// the first, then takes what is queued already, as
    /// [`recv_many`](Self::recv_many) does (and as tokio's `recv_many`).
    /// Returns how many it appended; with `limit` 0, `Ok(0)` at once.
    ///
    /// Cancellation-safe: messages are taken only in the poll that
    /// completes the future, so dropping it loses none.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tannoy::RecvError> {
    /// let broker = tannoy::Broker::new();
    /// let mut sub = broker.subscriber();
    /// sub.subscribe(["c"]);
    /// let publisher = broker.clone();
    /// tokio::spawn(async move {
    ///     for i in 0..3 {
    ///         publisher.publish("c", i.to_string());
    ///     }
    /// });
    /// let mut buf = Vec::new();
    /// while buf.len() < 3 {
    ///     sub.recv_many_async(&mut buf, 16).await?;
    /// }
    /// let payloads: Vec<_> = buf.iter().map(|m| m.payload().clone()).collect();
    /// assert_eq!(payloads, ["0", "1", "2"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_many_async<'a>(
        &'a mut self,
        buf: &'a mut Vec<Message<P>>,
        limit: usize,
    ) -> RecvMany<'a, P> {
        RecvMany {
            subscriber: self,
            buf,
            limit,
        }
    }

    /// A future that completes once the broker is closed (by
    /// [`Broker::close`](crate::Broker::close) or when its last handle
    /// drops); see [`Closed`]. Messages queued before then are still
    /// receivable.
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
    /// let sub = broker.subscriber();
    /// sub.subscribe(["c"]);
    /// broker.publish("c", "last words");
    /// drop(broker);
    /// block_on(sub.closed());
    /// assert_eq!(sub.recv()?.payload(), "last words");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn closed(&self) -> Closed {
        Closed::new(Arc::clone(&self.broker.close_signal))
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
        Iter {
            subscriber: self,
            done: false,
        }
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

    /// The exact channels this subscriber holds, in no particular order.
    ///
    /// Not to be confused with [`Broker::channels`](crate::Broker::channels),
    /// the channels anybody holds (Redis `PUBSUB CHANNELS`).
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.subscribe(["a"]);
    /// assert_eq!(sub.subscribed_channels(), ["a"]);
    /// ```
    pub fn subscribed_channels(&self) -> Vec<Bytes> {
        let subscriptions = self.endpoint.subscriptions.lock();
        subscriptions.channels.iter().cloned().collect()
    }

    /// The patterns this subscriber holds, in no particular order.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.psubscribe(["a*"]);
    /// assert_eq!(sub.subscribed_patterns(), ["a*"]);
    /// ```
    pub fn subscribed_patterns(&self) -> Vec<Bytes> {
        let subscriptions = self.endpoint.subscriptions.lock();
        subscriptions.patterns.iter().cloned().collect()
    }

    /// The shard channels this subscriber holds, in no particular order.
    ///
    /// Not to be confused with
    /// [`Broker::shard_channels`](crate::Broker::shard_channels), the shard
    /// channels anybody holds (Redis `PUBSUB SHARDCHANNELS`).
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.ssubscribe(["s"]);
    /// assert_eq!(sub.subscribed_shard_channels(), ["s"]);
    /// ```
    pub fn subscribed_shard_channels(&self) -> Vec<Bytes> {
        let subscriptions = self.endpoint.subscriptions.lock();
        subscriptions.shard_channels.iter().cloned().collect()
    }

    /// The exact channels held; renamed
    /// [`subscribed_channels`](Self::subscribed_channels), so it is not
    /// mistaken for [`Broker::channels`](crate::Broker::channels).
    ///
    /// # Examples
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.subscribe(["a"]);
    /// assert_eq!(sub.channels(), sub.subscribed_channels());
    /// ```
    #[deprecated(since = "0.2.0", note = "renamed `subscribed_channels`")]
    pub fn channels(&self) -> Vec<Bytes> {
        self.subscribed_channels()
    }

    /// The patterns held; renamed
    /// [`subscribed_patterns`](Self::subscribed_patterns).
    ///
    /// # Examples
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.psubscribe(["a*"]);
    /// assert_eq!(sub.patterns(), sub.subscribed_patterns());
    /// ```
    #[deprecated(since = "0.2.0", note = "renamed `subscribed_patterns`")]
    pub fn patterns(&self) -> Vec<Bytes> {
        self.subscribed_patterns()
    }

    /// The shard channels held; renamed
    /// [`subscribed_shard_channels`](Self::subscribed_shard_channels), so it
    /// is not mistaken for
    /// [`Broker::shard_channels`](crate::Broker::shard_channels).
    ///
    /// # Examples
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// let broker = tannoy::Broker::new();
    /// let sub = broker.subscriber();
    /// sub.ssubscribe(["s"]);
    /// assert_eq!(sub.shard_channels(), sub.subscribed_shard_channels());
    /// ```
    #[deprecated(since = "0.2.0", note = "renamed `subscribed_shard_channels`")]
    pub fn shard_channels(&self) -> Vec<Bytes> {
        self.subscribed_shard_channels()
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
    /// is closed or the subscriber disconnected and the queue is drained,
    /// and from then on always returns `None`.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.terminated {
            return Poll::Ready(None);
        }
        match this.poll_receive(cx) {
            Poll::Ready(Ok(message)) => Poll::Ready(Some(message)),
            Poll::Ready(Err(_)) => {
                this.terminated = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<P> FusedStream for Subscriber<P> {
    /// Whether the stream has ended: once the broker is closed or the
    /// subscriber disconnected and the queue drained, nothing more ever
    /// arrives, so an ended stream stays ended.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_core::FusedStream;
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let waker = std::task::Waker::noop();
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #     }
    /// # }
    ///
    /// let broker = tannoy::Broker::new();
    /// let mut sub = broker.subscriber();
    /// broker.close();
    /// assert!(!sub.is_terminated());
    /// assert!(block_on(sub.recv_async()).is_err());
    /// assert!(sub.is_terminated());
    /// ```
    fn is_terminated(&self) -> bool {
        self.terminated
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

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let subscriber = &mut *self.subscriber;
        let poll = subscriber.poll_receive(cx);
        if let Poll::Ready(Err(_)) = poll {
            subscriber.terminated = true;
        }
        poll
    }
}

/// Future returned by [`Subscriber::recv_many_async`].
///
/// Cancellation-safe: messages are taken only in the poll that completes
/// it, so dropping it loses nothing.
#[must_use = "futures do nothing unless polled"]
pub struct RecvMany<'a, P> {
    /// The subscriber receiving.
    subscriber: &'a mut Subscriber<P>,
    /// Where the messages go.
    buf: &'a mut Vec<Message<P>>,
    /// The most messages to take.
    limit: usize,
}

impl<P> Future for RecvMany<'_, P> {
    type Output = Result<usize, RecvError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.limit == 0 {
            return Poll::Ready(Ok(0));
        }
        match this.subscriber.poll_receive(cx) {
            Poll::Ready(Ok(first)) => {
                this.buf.push(first);
                let more = this.subscriber.take_queued(this.buf, this.limit - 1);
                Poll::Ready(Ok(1 + more))
            }
            Poll::Ready(Err(err)) => {
                this.subscriber.terminated = true;
                Poll::Ready(Err(err))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<P> fmt::Debug for RecvMany<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvMany")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<P> fmt::Debug for Recv<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv").finish_non_exhaustive()
    }
}

/// Blocking iterator returned by [`Subscriber::iter`].
///
/// It ends once the broker is closed (or the subscriber disconnected) and
/// the queue is drained. Nothing can arrive after that, so once it has
/// returned `None` it always does: it is a [`FusedIterator`].
pub struct Iter<'a, P> {
    /// The subscriber receiving.
    subscriber: &'a Subscriber<P>,
    /// Set once it has returned `None`.
    done: bool,
}

impl<P> Iterator for Iter<'_, P> {
    type Item = Message<P>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.subscriber.recv().ok();
        self.done = next.is_none();
        next
    }
}

impl<P> FusedIterator for Iter<'_, P> {}

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
