//! What a subscriber receives.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

/// Which kind of subscription delivered a [`Message`], as Redis labels its
/// push frames.
///
/// Non-exhaustive: Redis may add kinds of push frame (as 7.0 added
/// `smessage`), and tannoy may follow, so a `match` outside this crate needs
/// a wildcard arm; [`as_str`](Self::as_str) names any kind.
///
/// # Examples
///
/// ```
/// use tannoy::{Broker, MessageKind};
///
/// let broker = Broker::new();
/// let sub = broker.subscriber();
/// sub.subscribe(["orders"]);
/// sub.psubscribe(["ord*"]);
/// broker.publish("orders", "o-1");
/// assert_eq!(sub.try_recv()?.kind(), MessageKind::Message);
/// assert_eq!(sub.try_recv()?.kind(), MessageKind::PMessage);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageKind {
    /// Delivered through an exact channel subscription (Redis `message`).
    Message,
    /// Delivered through a pattern subscription (Redis `pmessage`);
    /// [`Message::pattern`] names the pattern.
    PMessage,
    /// Delivered through a shard channel subscription (Redis `smessage`),
    /// published with [`Broker::spublish`](crate::Broker::spublish).
    SMessage,
}

impl MessageKind {
    /// The name Redis gives this kind of push frame: `"message"`,
    /// `"pmessage"` or `"smessage"`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tannoy::MessageKind::PMessage.as_str(), "pmessage");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::PMessage => "pmessage",
            Self::SMessage => "smessage",
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One published message as one subscriber received it.
///
/// Channel and pattern names are [`Bytes`]: cheap to clone, binary-safe, and
/// comparable with `&str` and `&[u8]`. The payload is the publisher's value,
/// shared by every subscriber the same delivery reached: a publish clones
/// `P` at most once per kind of delivery (the channel, and each matching
/// pattern), never per subscriber, and never copies a `Bytes` payload's data.
///
/// # Examples
///
/// ```
/// use tannoy::Broker;
///
/// let broker = Broker::new();
/// let sub = broker.subscriber();
/// sub.psubscribe(["ai:*"]);
/// broker.publish("ai:models:updated", "gpt-5:v2");
///
/// let msg = sub.recv()?;
/// assert_eq!(msg.channel(), "ai:models:updated");
/// assert_eq!(msg.pattern().unwrap(), "ai:*");
/// assert_eq!(msg.payload(), "gpt-5:v2");
/// assert_eq!(msg.seq(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(PartialEq, Eq, Hash)]
pub struct Message<P = Bytes> {
    /// Position in this subscriber's stream; set when it is dequeued.
    seq: u64,
    /// What every receiver of this delivery shares.
    envelope: Arc<Envelope<P>>,
}

/// One publish as seen through one subscription kind (the channel, or one
/// matching pattern), shared by every subscriber it reaches: fan-out costs
/// one reference-count increment per subscriber, whatever `P` is, and the
/// queue moves a 16-byte element rather than the whole message.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Envelope<P> {
    /// Which subscription delivered it.
    kind: MessageKind,
    /// The channel it was published to.
    channel: Bytes,
    /// The matching pattern, for `PMessage` only.
    pattern: Option<Bytes>,
    /// The publisher's value.
    payload: P,
}

/// A message as a receive hands it over: its `seq` and its envelope.
pub(crate) type Received<P> = (u64, Arc<Envelope<P>>);

impl<P> Envelope<P> {
    /// Wraps one delivery's contents for sharing.
    pub(crate) fn new(
        kind: MessageKind,
        channel: Bytes,
        pattern: Option<Bytes>,
        payload: P,
    ) -> Arc<Self> {
        Arc::new(Self {
            kind,
            channel,
            pattern,
            payload,
        })
    }
}

impl<P> Message<P> {
    /// The message as dequeued at position `seq`.
    pub(crate) fn new(seq: u64, envelope: Arc<Envelope<P>>) -> Self {
        Self { seq, envelope }
    }

    /// Which kind of subscription delivered this message.
    ///
    /// # Examples
    ///
    /// ```
    /// # let broker = tannoy::Broker::new();
    /// # let sub = broker.subscriber();
    /// sub.ssubscribe(["orders:{7}"]);
    /// broker.spublish("orders:{7}", "o-1");
    /// assert_eq!(sub.try_recv()?.kind(), tannoy::MessageKind::SMessage);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kind(&self) -> MessageKind {
        self.envelope.kind
    }

    /// The channel the message was published to (for a pattern message,
    /// the concrete channel, not the pattern).
    ///
    /// # Examples
    ///
    /// ```
    /// # let broker = tannoy::Broker::new();
    /// # let sub = broker.subscriber();
    /// sub.psubscribe(["news.*"]);
    /// broker.publish("news.sport", "goal");
    /// assert_eq!(sub.try_recv()?.channel(), "news.sport");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn channel(&self) -> &Bytes {
        &self.envelope.channel
    }

    /// The pattern that matched, exactly as subscribed; `None` unless
    /// [`kind`](Self::kind) is [`MessageKind::PMessage`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let broker = tannoy::Broker::new();
    /// # let sub = broker.subscriber();
    /// sub.subscribe(["news.sport"]);
    /// broker.publish("news.sport", "goal");
    /// assert_eq!(sub.try_recv()?.pattern(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pattern(&self) -> Option<&Bytes> {
        self.envelope.pattern.as_ref()
    }

    /// The published value.
    ///
    /// # Examples
    ///
    /// ```
    /// # let broker = tannoy::Broker::new();
    /// # let sub = broker.subscriber();
    /// sub.subscribe(["c"]);
    /// broker.publish("c", vec![0u8, 159, 146, 150]);
    /// assert_eq!(&sub.try_recv()?.payload()[..], &[0u8, 159, 146, 150]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn payload(&self) -> &P {
        &self.envelope.payload
    }

    /// This message's position in its subscriber's stream: the number of
    /// messages addressed to the subscriber before this one.
    ///
    /// Every message addressed to a subscriber takes the next number, and
    /// messages lost to the overflow policy keep theirs, so a jump in `seq`
    /// between two received messages shows exactly where and how many were
    /// dropped: `next.seq() - prev.seq() - 1` messages were lost between
    /// them (and `first.seq()` before the first one).
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::builder().queue_capacity(2).build();
    /// let sub = broker.subscriber();
    /// sub.subscribe(["c"]);
    /// for i in 0..5 {
    ///     broker.publish("c", format!("m{i}"));
    /// }
    /// // Drop-oldest kept the last two; 0, 1 and 2 were dropped.
    /// assert_eq!(sub.try_recv()?.seq(), 3);
    /// assert_eq!(sub.try_recv()?.seq(), 4);
    /// assert_eq!(sub.dropped(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

impl<P> Clone for Message<P> {
    /// Another reference to the same message: the payload is shared, never
    /// cloned, so `P` need not be `Clone`.
    fn clone(&self) -> Self {
        Self {
            seq: self.seq,
            envelope: Arc::clone(&self.envelope),
        }
    }
}

impl<P: fmt::Debug> fmt::Debug for Message<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Message");
        d.field("kind", &self.envelope.kind)
            .field("seq", &self.seq)
            .field("channel", &self.envelope.channel);
        if let Some(pattern) = &self.envelope.pattern {
            d.field("pattern", pattern);
        }
        d.field("payload", &self.envelope.payload).finish()
    }
}

impl<P: Clone> Message<P> {
    /// Takes the published value out of the message, cloning it unless
    /// this message holds the only reference to it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tannoy::BrokerBuilder;
    ///
    /// let broker = BrokerBuilder::<Arc<u32>>::new().build();
    /// let sub = broker.subscriber();
    /// sub.subscribe(["scores"]);
    /// broker.publish("scores", Arc::new(42));
    /// assert_eq!(*sub.try_recv()?.into_payload(), 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_payload(self) -> P {
        match Arc::try_unwrap(self.envelope) {
            Ok(envelope) => envelope.payload,
            Err(shared) => shared.payload.clone(),
        }
    }
}
