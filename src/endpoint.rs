//! A subscriber as the broker sees it: its id, what it holds, and where its
//! messages go.

use std::sync::Arc;

use bytes::Bytes;
use hashbrown::HashSet;

use crate::message::Envelope;
use crate::queue::{OverflowPolicy, Queue};
use crate::reader::Reader;
use crate::shard::Namespace;
use crate::sync::Mutex;

/// What a subscriber holds, as Redis keeps it per client: three separate
/// sets of names.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    /// Exact channels (`SUBSCRIBE`).
    pub(crate) channels: HashSet<Bytes>,
    /// Patterns (`PSUBSCRIBE`).
    pub(crate) patterns: HashSet<Bytes>,
    /// Shard channels (`SSUBSCRIBE`).
    pub(crate) shard_channels: HashSet<Bytes>,
    /// Set when the subscriber is gone for good (dropped, or disconnected by
    /// its overflow policy): the sets are empty and stay empty.
    pub(crate) gone: bool,
}

impl Subscriptions {
    /// The count Redis reports after `(P)(UN)SUBSCRIBE`: channels plus
    /// patterns.
    pub(crate) fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// The count Redis reports after `S(UN)SUBSCRIBE`: shard channels only.
    pub(crate) fn shard_count(&self) -> usize {
        self.shard_channels.len()
    }

    /// The exact names held in namespace `ns`.
    pub(crate) fn names_mut(&mut self, ns: Namespace) -> &mut HashSet<Bytes> {
        match ns {
            Namespace::Channel => &mut self.channels,
            Namespace::Shard => &mut self.shard_channels,
        }
    }

    /// The count Redis reports after a (un)subscribe in namespace `ns`.
    pub(crate) fn count_for(&self, ns: Namespace) -> usize {
        match ns {
            Namespace::Channel => self.count(),
            Namespace::Shard => self.shard_count(),
        }
    }
}

/// Where a subscriber's messages wait.
#[derive(Debug)]
pub(crate) enum Inbox<P> {
    /// Its own queue, filled by publishers: for the policies that decide at
    /// publish time (`DropNewest`, `Disconnect`).
    Queue(Queue<Arc<Envelope<P>>>),
    /// Cursors into its subscriptions' feeds: for `DropOldest`, where a
    /// publish stores a message once whatever the number of subscribers.
    Feeds(Reader<P>),
}

/// The broker's side of one subscriber.
///
/// The inbox comes first (hence `repr(C)`): a receive reads nothing else,
/// so its hot fields sit right after the reference counts.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Endpoint<P> {
    /// Where its messages wait.
    pub(crate) inbox: Inbox<P>,
    /// Unique within its broker.
    id: u64,
    /// Its overflow policy.
    policy: OverflowPolicy,
    /// Its queue capacity.
    capacity: usize,
    /// Its subscriptions. Lock order: this before any shard, the pattern
    /// index or a feed (see `registry.rs`).
    pub(crate) subscriptions: Mutex<Subscriptions>,
}

impl<P> Endpoint<P> {
    /// A subscriber with no subscriptions.
    pub(crate) fn new(id: u64, capacity: usize, policy: OverflowPolicy) -> Self {
        let inbox = match policy {
            OverflowPolicy::DropOldest => Inbox::Feeds(Reader::new(capacity)),
            _ => Inbox::Queue(Queue::new(capacity, policy)),
        };
        Self {
            id,
            policy,
            capacity,
            subscriptions: Mutex::new(Subscriptions::default()),
            inbox,
        }
    }

    /// Its id.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Its overflow policy.
    pub(crate) fn policy(&self) -> OverflowPolicy {
        self.policy
    }

    /// Its queue capacity.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}
