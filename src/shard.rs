//! One lock shard of the channel registry.
//!
//! Exact channels and shard channels are spread over the broker's shards by
//! the hash of their name, so publishers to different channels rarely touch
//! the same lock. Each shard holds both namespaces in separate tables:
//! `SUBSCRIBE same` and `SSUBSCRIBE same` are unrelated, as in Redis.

use std::sync::Arc;

use bytes::Bytes;
use hashbrown::HashTable;

use crate::message::Envelope;
use crate::subscriber::SubscriberShared;

/// The two exact-name namespaces. (Patterns live in the broker's pattern
/// index, not in shards.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Namespace {
    /// Channels of `SUBSCRIBE` / `PUBLISH`.
    Channel,
    /// Shard channels of `SSUBSCRIBE` / `SPUBLISH`.
    Shard,
}

/// Subscribers of one channel or pattern, in subscription order (the order
/// Redis 7.0 serves them in).
pub(crate) type Subscribers<P> = Vec<Arc<SubscriberShared<P>>>;

/// An active channel: one with at least one subscriber.
#[derive(Debug)]
pub(crate) struct ChannelEntry<P> {
    /// The channel's name, shared with every message delivered on it.
    pub(crate) name: Bytes,
    /// Never empty: the entry is removed with its last subscriber.
    pub(crate) subscribers: Subscribers<P>,
    /// The envelope of the latest publish, reused by the next one if every
    /// receiver has dropped it by then (see `Envelope::reuse_or_new`).
    pub(crate) last_envelope: Option<Arc<Envelope<P>>>,
}

/// One shard's channels, in both namespaces.
#[derive(Debug)]
pub(crate) struct Shard<P> {
    /// Active channels (`SUBSCRIBE`).
    channels: HashTable<ChannelEntry<P>>,
    /// Active shard channels (`SSUBSCRIBE`).
    shard_channels: HashTable<ChannelEntry<P>>,
}

impl<P> Default for Shard<P> {
    fn default() -> Self {
        Self {
            channels: HashTable::new(),
            shard_channels: HashTable::new(),
        }
    }
}

impl<P> Shard<P> {
    /// The table for `ns`.
    fn table(&self, ns: Namespace) -> &HashTable<ChannelEntry<P>> {
        match ns {
            Namespace::Channel => &self.channels,
            Namespace::Shard => &self.shard_channels,
        }
    }

    /// The table for `ns`, mutably.
    fn table_mut(&mut self, ns: Namespace) -> &mut HashTable<ChannelEntry<P>> {
        match ns {
            Namespace::Channel => &mut self.channels,
            Namespace::Shard => &mut self.shard_channels,
        }
    }

    /// The active channel `name` (whose hash is `hash`), if any.
    pub(crate) fn find(&self, ns: Namespace, hash: u64, name: &[u8]) -> Option<&ChannelEntry<P>> {
        self.table(ns).find(hash, |e| e.name == name)
    }

    /// The active channel `name` (whose hash is `hash`), if any, mutably.
    pub(crate) fn find_mut(
        &mut self,
        ns: Namespace,
        hash: u64,
        name: &[u8],
    ) -> Option<&mut ChannelEntry<P>> {
        self.table_mut(ns).find_mut(hash, |e| e.name == name)
    }

    /// Adds `subscriber` to channel `name`. The caller guarantees it is not
    /// subscribed already (the subscriber's own set is the source of truth).
    /// `rehash` recomputes an entry's hash when the table grows.
    pub(crate) fn add(
        &mut self,
        ns: Namespace,
        hash: u64,
        name: Bytes,
        subscriber: Arc<SubscriberShared<P>>,
        rehash: impl Fn(&[u8]) -> u64,
    ) {
        let table = self.table_mut(ns);
        match table.find_mut(hash, |e| e.name == name) {
            Some(entry) => entry.subscribers.push(subscriber),
            None => {
                table.insert_unique(
                    hash,
                    ChannelEntry {
                        name,
                        subscribers: vec![subscriber],
                        last_envelope: None,
                    },
                    |e| rehash(&e.name),
                );
            }
        }
    }

    /// Removes the subscriber with `id` from channel `name`, deleting the
    /// channel when it was the last one. Returns the deleted channel's last
    /// envelope, for the caller to drop after releasing the shard's lock (it
    /// may hold the last reference to a payload whose `Drop` uses the
    /// broker).
    pub(crate) fn remove(
        &mut self,
        ns: Namespace,
        hash: u64,
        name: &[u8],
        id: u64,
    ) -> Option<Arc<Envelope<P>>> {
        let mut entry = self
            .table_mut(ns)
            .find_entry(hash, |e| e.name == name)
            .ok()?;
        let subscribers = &mut entry.get_mut().subscribers;
        if let Some(at) = subscribers.iter().position(|s| s.id() == id) {
            // `remove`, not `swap_remove`: the others keep their order.
            subscribers.remove(at);
        }
        if subscribers.is_empty() {
            entry.remove().0.last_envelope
        } else {
            None
        }
    }

    /// Every active channel of `ns` in this shard.
    pub(crate) fn entries(&self, ns: Namespace) -> impl Iterator<Item = &ChannelEntry<P>> {
        self.table(ns).iter()
    }
}
