//! One lock shard of the channel registry.
//!
//! Exact channels and shard channels are spread over the broker's shards by
//! the hash of their name, so publishers to different channels rarely touch
//! the same lock. Each shard holds both namespaces in separate tables:
//! `SUBSCRIBE same` and `SSUBSCRIBE same` are unrelated, as in Redis.

use std::sync::Arc;

use bytes::Bytes;
use hashbrown::HashTable;

use crate::feed::Feed;

/// Upper bound on [`BrokerBuilder::shards`](crate::BrokerBuilder::shards);
/// the shard index is taken from 16 bits of the channel hash that the hash
/// tables themselves do not use.
pub const MAX_SHARDS: usize = 1 << 16;

/// The two exact-name namespaces. (Patterns live in the pattern index, not
/// in shards.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Namespace {
    /// Channels of `SUBSCRIBE` / `PUBLISH`.
    Channel,
    /// Shard channels of `SSUBSCRIBE` / `SPUBLISH`.
    Shard,
}

/// An active channel: one with at least one subscriber.
#[derive(Debug)]
pub(crate) struct ChannelEntry<P> {
    /// The channel's name, shared with every message delivered on it.
    pub(crate) name: Bytes,
    /// Its messages and subscribers.
    pub(crate) feed: Arc<Feed<P>>,
    /// Subscribers holding it (never 0: the entry goes with the last one).
    pub(crate) members: usize,
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
    #[inline]
    pub(crate) fn find(&self, ns: Namespace, hash: u64, name: &[u8]) -> Option<&ChannelEntry<P>> {
        self.table(ns).find(hash, |e| e.name == name)
    }

    /// Counts one more member of channel `name`, creating the channel (with
    /// a feed made by `new_feed`) if it was not active. `rehash` recomputes
    /// an entry's hash when the table grows. Returns the channel's feed, and
    /// whether this made the channel active.
    pub(crate) fn join(
        &mut self,
        ns: Namespace,
        hash: u64,
        name: &Bytes,
        rehash: impl Fn(&[u8]) -> u64,
        new_feed: impl FnOnce() -> Arc<Feed<P>>,
    ) -> (Arc<Feed<P>>, bool) {
        let table = self.table_mut(ns);
        match table.find_mut(hash, |e| e.name == name) {
            Some(entry) => {
                entry.members += 1;
                (Arc::clone(&entry.feed), false)
            }
            None => {
                let feed = new_feed();
                table.insert_unique(
                    hash,
                    ChannelEntry {
                        name: name.clone(),
                        feed: Arc::clone(&feed),
                        members: 1,
                    },
                    |e| rehash(&e.name),
                );
                (feed, true)
            }
        }
    }

    /// Counts one member less of channel `name`. Returns the channel's
    /// feed, and whether that was its last member (the channel is then no
    /// longer active).
    pub(crate) fn leave(
        &mut self,
        ns: Namespace,
        hash: u64,
        name: &[u8],
    ) -> Option<(Arc<Feed<P>>, bool)> {
        let mut entry = self
            .table_mut(ns)
            .find_entry(hash, |e| e.name == name)
            .ok()?;
        entry.get_mut().members -= 1;
        if entry.get().members == 0 {
            Some((entry.remove().0.feed, true))
        } else {
            Some((Arc::clone(&entry.get().feed), false))
        }
    }

    /// Every active channel of `ns` in this shard.
    pub(crate) fn entries(&self, ns: Namespace) -> impl Iterator<Item = &ChannelEntry<P>> {
        self.table(ns).iter()
    }
}
