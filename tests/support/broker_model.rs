//! The reference model of a broker that the model test (`tests/model.rs`)
//! and the `broker_ops` fuzz checks (`support/fuzz_checks.rs`, run by the
//! fuzz target and by `tests/fuzz_corpus.rs`) compare tannoy with: one
//! struct, linear pattern scans with [`glob_match`], one `VecDeque` per
//! subscriber, written from the documented semantics and nothing else.
//!
//! Include it with
//!
//! ```ignore
//! #[path = "support/broker_model.rs"]
//! mod broker_model;
//! ```
//!
//! (`#[macro_use]` too, to use [`ensure_eq!`] outside it.) The callers keep
//! their own operations and drive both sides; this module holds what the
//! model says, and the comparisons both make: [`check_message`] for a
//! received message, [`inspect`] for what a subscriber says about itself.
//!
//! # What it models
//!
//! * Three sets of names per subscriber ([`Space`]), with Redis's reply
//!   counts: channels plus patterns, or shard channels alone.
//! * Delivery: per publish, the exact message, then one message per
//!   matching pattern (a [`Group`], which tannoy may queue in any order);
//!   `spublish` reaches shard channels only.
//! * Bounded queues and the three overflow policies: every message
//!   addressed takes a `seq`, and every one discarded counts in `dropped`.
//!   A `Disconnect` overflow discards the rest of that publish's deliveries
//!   to the subscriber (still counted), then unsubscribes it from
//!   everything; a disconnected subscriber ignores subscribe calls.
//! * Close ([`Model::close`]): publishes address nobody and return 0;
//!   queues drain, then report closed.
//! * Empty slots (`None`): a subscriber dropped and not yet replaced.

#![allow(
    dead_code,
    reason = "shared by the model test and the fuzz checks, each using a subset"
)]

use std::collections::{BTreeSet, VecDeque};
use std::fmt;

use tannoy::{Bytes, Message, MessageKind, OverflowPolicy, Subscriber, glob_match};

/// Returns an error describing the difference unless `got == want`.
macro_rules! ensure_eq {
    ($got:expr, $want:expr, $($what:tt)+) => {{
        let (got, want) = (&$got, &$want);
        if got != want {
            return Err(format!(
                "{}: tannoy gave {:?}, the model expects {:?}",
                format_args!($($what)+),
                got,
                want
            ));
        }
    }};
}

/// A channel or pattern name; its `Debug` shows the bytes escaped, and
/// elides the middle of long names.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Name(pub(crate) Vec<u8>);

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = &self.0;
        if bytes.len() <= 40 {
            write!(f, "b\"{}\"", bytes.escape_ascii())
        } else {
            write!(
                f,
                "b\"{}..{}\" ({} bytes)",
                bytes[..16].escape_ascii(),
                bytes[bytes.len() - 16..].escape_ascii(),
                bytes.len()
            )
        }
    }
}

impl AsRef<[u8]> for Name {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The byte strings of `names`, as a sorted set.
pub(crate) fn set<T: AsRef<[u8]>>(names: impl IntoIterator<Item = T>) -> BTreeSet<Vec<u8>> {
    names.into_iter().map(|n| n.as_ref().to_vec()).collect()
}

/// A payload that tells which publish it came from, so a received message
/// can be matched with the publish the model numbered.
pub(crate) trait PublishId {
    /// The publish's number, or `None` if the payload is not one the
    /// callers make.
    fn publish_id(&self) -> Option<u64>;
}

/// The payload `tests/model.rs` publishes: the publish's number, as 8
/// little-endian bytes.
impl PublishId for Bytes {
    fn publish_id(&self) -> Option<u64> {
        Some(u64::from_le_bytes(self[..].try_into().ok()?))
    }
}

/// A queue's lifecycle, as the model sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Receiving.
    Open,
    /// The broker was closed: drains, then reports `Closed`.
    Closed,
    /// Overflowed under `Disconnect`: holds nothing, ignores subscribes,
    /// drains, then reports `Disconnected`.
    Disconnected,
}

/// Which of a subscriber's three sets of names an operation works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Space {
    /// Exact channels (`SUBSCRIBE`).
    Channels,
    /// Patterns (`PSUBSCRIBE`).
    Patterns,
    /// Shard channels (`SSUBSCRIBE`).
    Shards,
}

/// A message the model expects at one position of a subscriber's stream.
#[derive(Clone, Debug)]
pub(crate) struct Expected {
    /// Its `seq`.
    pub(crate) seq: u64,
    /// Which publish (the payload).
    pub(crate) publish: u64,
    /// Its kind.
    pub(crate) kind: MessageKind,
    /// The channel published to.
    pub(crate) channel: Name,
    /// For a pattern message, its group: the pattern messages one publish
    /// addressed to one subscriber, which tannoy may queue in any order.
    pub(crate) group: Option<usize>,
}

/// The pattern messages of one publish to one subscriber.
#[derive(Debug, Default)]
pub(crate) struct Group {
    /// The patterns that matched.
    pub(crate) patterns: BTreeSet<Vec<u8>>,
    /// The patterns received so far.
    pub(crate) received: BTreeSet<Vec<u8>>,
}

/// One subscriber as the model sees it.
#[derive(Debug)]
pub(crate) struct SubModel {
    /// Exact channels held.
    pub(crate) channels: BTreeSet<Vec<u8>>,
    /// Patterns held.
    pub(crate) patterns: BTreeSet<Vec<u8>>,
    /// Shard channels held.
    pub(crate) shards: BTreeSet<Vec<u8>>,
    /// Queued messages, oldest first.
    pub(crate) queue: VecDeque<Expected>,
    /// `seq` of the next message addressed to it.
    pub(crate) next_seq: u64,
    /// Messages its policy discarded.
    pub(crate) dropped: u64,
    /// Queue capacity.
    pub(crate) capacity: usize,
    /// Overflow policy.
    pub(crate) policy: OverflowPolicy,
    /// Lifecycle.
    pub(crate) status: Status,
    /// Overflowed under `Disconnect` during the publish in progress: the
    /// rest of that publish's deliveries to it are counted and discarded.
    pub(crate) disconnecting: bool,
}

impl SubModel {
    /// A fresh subscriber of a broker that is closed or not.
    pub(crate) fn new(capacity: usize, policy: OverflowPolicy, closed: bool) -> Self {
        Self {
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            shards: BTreeSet::new(),
            queue: VecDeque::new(),
            next_seq: 0,
            dropped: 0,
            capacity,
            policy,
            status: if closed { Status::Closed } else { Status::Open },
            disconnecting: false,
        }
    }

    /// Redis's count for `(P)(UN)SUBSCRIBE`.
    pub(crate) fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// The count a (un)subscribe in `space` returns: shard channels alone
    /// for shard channels, else channels plus patterns.
    pub(crate) fn count_for(&self, space: Space) -> usize {
        match space {
            Space::Shards => self.shards.len(),
            Space::Channels | Space::Patterns => self.count(),
        }
    }

    /// The names held in `space`.
    fn held_mut(&mut self, space: Space) -> &mut BTreeSet<Vec<u8>> {
        match space {
            Space::Channels => &mut self.channels,
            Space::Patterns => &mut self.patterns,
            Space::Shards => &mut self.shards,
        }
    }

    /// `subscribe`, `psubscribe` or `ssubscribe`: adds `names` to `space`
    /// unless disconnected, and returns the count the call returns.
    pub(crate) fn subscribe<T: AsRef<[u8]>>(
        &mut self,
        space: Space,
        names: impl IntoIterator<Item = T>,
    ) -> usize {
        if self.status != Status::Disconnected {
            self.held_mut(space).extend(set(names));
        }
        self.count_for(space)
    }

    /// `unsubscribe`, `punsubscribe` or `sunsubscribe`: removes `names`
    /// from `space` (everything in it when `names` is empty), and returns
    /// the count the call returns.
    pub(crate) fn unsubscribe<T: AsRef<[u8]>>(&mut self, space: Space, names: &[T]) -> usize {
        let held = self.held_mut(space);
        if names.is_empty() {
            held.clear();
        }
        for name in names {
            held.remove(name.as_ref());
        }
        self.count_for(space)
    }

    /// Addresses `message` to this subscriber, applying its policy.
    pub(crate) fn push(&mut self, mut message: Expected) {
        message.seq = self.next_seq;
        self.next_seq += 1;
        if self.disconnecting {
            self.dropped += 1;
            return;
        }
        if self.queue.len() == self.capacity {
            self.dropped += 1;
            match self.policy {
                OverflowPolicy::DropNewest => return,
                OverflowPolicy::Disconnect => {
                    self.disconnecting = true;
                    return;
                }
                _ => drop(self.queue.pop_front()),
            }
        }
        self.queue.push_back(message);
    }
}

/// The reference model of a broker and its subscribers.
#[derive(Debug)]
pub(crate) struct Model {
    /// Subscribers by slot; `None` for a slot whose subscriber was dropped.
    pub(crate) subs: Vec<Option<SubModel>>,
    /// Pattern-message groups, by index.
    pub(crate) groups: Vec<Group>,
    /// Publishes so far, whether they reached anyone or not; the next
    /// publish's number.
    pub(crate) publishes: u64,
    /// Closed, explicitly or by dropping every handle.
    pub(crate) closed: bool,
}

impl Model {
    /// An open broker with these subscribers, by slot.
    pub(crate) fn new(subs: impl IntoIterator<Item = SubModel>) -> Self {
        Self {
            subs: subs.into_iter().map(Some).collect(),
            groups: Vec::new(),
            publishes: 0,
            closed: false,
        }
    }

    /// The subscriber in slot `i`.
    ///
    /// # Panics
    ///
    /// If the slot is empty.
    pub(crate) fn sub(&self, i: usize) -> &SubModel {
        self.subs[i].as_ref().expect("an occupied slot")
    }

    /// The subscriber in slot `i`, to change.
    ///
    /// # Panics
    ///
    /// If the slot is empty.
    pub(crate) fn sub_mut(&mut self, i: usize) -> &mut SubModel {
        self.subs[i].as_mut().expect("an occupied slot")
    }

    /// `publish`, or `spublish` when `shard`, numbered [`Self::publishes`]
    /// (which it then advances): queues what each subscriber is addressed
    /// and returns the count.
    pub(crate) fn publish(&mut self, shard: bool, channel: &[u8]) -> usize {
        let publish = self.publishes;
        self.publishes += 1;
        if self.closed {
            return 0;
        }
        let mut count = 0;
        for sub in self.subs.iter_mut().flatten() {
            let message = |kind, group| Expected {
                seq: 0,
                publish,
                kind,
                channel: Name(channel.to_vec()),
                group,
            };
            if shard {
                if sub.shards.contains(channel) {
                    sub.push(message(MessageKind::SMessage, None));
                    count += 1;
                }
            } else {
                if sub.channels.contains(channel) {
                    sub.push(message(MessageKind::Message, None));
                    count += 1;
                }
                let matching: BTreeSet<Vec<u8>> = sub
                    .patterns
                    .iter()
                    .filter(|p| glob_match(p, channel))
                    .cloned()
                    .collect();
                if !matching.is_empty() {
                    let group = self.groups.len();
                    for _ in 0..matching.len() {
                        sub.push(message(MessageKind::PMessage, Some(group)));
                    }
                    count += matching.len();
                    self.groups.push(Group {
                        patterns: matching,
                        received: BTreeSet::new(),
                    });
                }
            }
            // Once the publish is done, an overflowed subscriber loses every
            // subscription, as Redis frees an over-limit client.
            if sub.disconnecting {
                sub.disconnecting = false;
                sub.status = Status::Disconnected;
                sub.channels.clear();
                sub.patterns.clear();
                sub.shards.clear();
            }
        }
        count
    }

    /// Closes the broker: open queues stop accepting messages.
    pub(crate) fn close(&mut self) {
        self.closed = true;
        for sub in self.subs.iter_mut().flatten() {
            if sub.status == Status::Open {
                sub.status = Status::Closed;
            }
        }
    }

    /// Active channels (shard channels when `shard`) matching `filter`.
    pub(crate) fn channels(&self, shard: bool, filter: Option<&[u8]>) -> BTreeSet<Vec<u8>> {
        self.subs
            .iter()
            .flatten()
            .flat_map(|s| if shard { &s.shards } else { &s.channels })
            .filter(|c| filter.is_none_or(|p| glob_match(p, c)))
            .cloned()
            .collect()
    }

    /// Subscribers holding `name` (as a shard channel when `shard`).
    pub(crate) fn numsub(&self, shard: bool, name: &[u8]) -> usize {
        self.subs
            .iter()
            .flatten()
            .filter(|s| if shard { &s.shards } else { &s.channels }.contains(name))
            .count()
    }

    /// Distinct patterns held by anyone.
    pub(crate) fn numpat(&self) -> usize {
        let distinct: BTreeSet<&Vec<u8>> = self
            .subs
            .iter()
            .flatten()
            .flat_map(|s| &s.patterns)
            .collect();
        distinct.len()
    }
}

/// Checks a message tannoy delivered against the one the model expects at
/// that position; a pattern message must name a pattern of its group not
/// received from that group before.
///
/// # Errors
///
/// The first difference.
pub(crate) fn check_message<P: PublishId + fmt::Debug>(
    msg: &Message<P>,
    expected: &Expected,
    groups: &mut [Group],
) -> Result<(), String> {
    ensure_eq!(msg.seq(), expected.seq, "seq of {msg:?}");
    ensure_eq!(msg.kind(), expected.kind, "kind of {msg:?}");
    ensure_eq!(
        Name(msg.channel().to_vec()),
        expected.channel,
        "channel of {msg:?}"
    );
    ensure_eq!(
        msg.payload().publish_id(),
        Some(expected.publish),
        "payload of {msg:?}"
    );
    match expected.group {
        None => ensure_eq!(msg.pattern(), None, "pattern of {msg:?}"),
        Some(group) => {
            let group = &mut groups[group];
            let Some(pattern) = msg.pattern() else {
                return Err(format!("pattern message {msg:?} names no pattern"));
            };
            if !group.patterns.contains(&pattern[..]) {
                return Err(format!(
                    "{msg:?}: the pattern did not match this publish for this subscriber \
                     (matching: {:?})",
                    group
                        .patterns
                        .iter()
                        .map(|p| Name(p.clone()))
                        .collect::<Vec<_>>()
                ));
            }
            if !group.received.insert(pattern.to_vec()) {
                return Err(format!("{msg:?}: delivered twice by one publish"));
            }
        }
    }
    Ok(())
}

/// Compares what a subscriber says about itself (its three sets and their
/// counts, queue length, `dropped`, capacity, policy, disconnection) with
/// the model.
///
/// # Errors
///
/// The first difference.
pub(crate) fn inspect<P>(sub: &Subscriber<P>, m: &SubModel) -> Result<(), String> {
    ensure_eq!(set(sub.subscribed_channels()), m.channels, "channels()");
    ensure_eq!(set(sub.subscribed_patterns()), m.patterns, "patterns()");
    ensure_eq!(
        set(sub.subscribed_shard_channels()),
        m.shards,
        "shard_channels()"
    );
    ensure_eq!(sub.subscription_count(), m.count(), "subscription_count()");
    ensure_eq!(
        sub.shard_subscription_count(),
        m.shards.len(),
        "shard_subscription_count()"
    );
    ensure_eq!(sub.len(), m.queue.len(), "len()");
    ensure_eq!(sub.is_empty(), m.queue.is_empty(), "is_empty()");
    ensure_eq!(sub.dropped(), m.dropped, "dropped()");
    ensure_eq!(sub.capacity(), m.capacity, "capacity()");
    ensure_eq!(sub.overflow_policy(), m.policy, "overflow_policy()");
    ensure_eq!(
        sub.is_disconnected(),
        m.status == Status::Disconnected,
        "is_disconnected()"
    );
    Ok(())
}
