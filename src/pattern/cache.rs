//! A small cache of "channel → matching pattern ids" for hot channels.
//!
//! Lookups run under the broker's read lock, from many threads at once, so
//! the cache has its own locks: [`SHARDS`] mutexes, each over a
//! direct-mapped table of [`SLOTS`] entries. Publishers only ever
//! `try_lock`: if a shard is busy the lookup simply goes uncached, so no
//! publisher waits on another. The matching ids are copied out (an `Arc`
//! clone) before the caller's callback runs, so no lock is held while
//! messages are delivered.
//!
//! Entries carry the index generation they were computed at; every insert
//! or remove bumps the generation, which invalidates all entries at once
//! without touching them.
//!
//! A doorkeeper keeps one-off channels out: a channel is cached only when
//! its hash was seen by the previous miss on the same doorkeeper slot. A
//! stream of distinct channels (say `orders:{id}:status`) therefore costs
//! one hash and one `try_lock` per lookup and no allocation, while a
//! channel published twice in a row is cached from its second publish on.
//!
//! Size is bounded: at most `SHARDS × SLOTS` entries, channels longer than
//! [`MAX_CHANNEL_LEN`] and results longer than [`MAX_IDS`] are not cached.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::DefaultHashBuilder;
use parking_lot::Mutex;

/// Lock stripes. A power of two. A hot channel always maps to one stripe,
/// so striping only separates *different* hot channels; 16 does that for
/// a handful of hot channels per publisher thread while the whole cache
/// stays about 60 KB. Not tuned by measurement: the 2-core machine the
/// benches ran on cannot show contention between many publishers.
const SHARDS: usize = 16;

/// Entries per shard, direct-mapped by hash. A power of two; 64 × 16 =
/// 1,024 channels, more than the hot set of a typical bus. Collisions only
/// evict, they never give wrong answers.
const SLOTS: usize = 64;

/// Longest channel cached: longer names are rare, and caching them would
/// let a few huge names pin a lot of memory.
const MAX_CHANNEL_LEN: usize = 256;

/// Most matching ids cached for one channel, to bound an entry's size.
const MAX_IDS: usize = 1024;

/// What a lookup found.
#[derive(Debug)]
pub(crate) enum Cached {
    /// The ids matching the channel at the current generation.
    Hit(Arc<[u32]>),
    /// Not cached; compute the result and [`MatchCache::put`] it.
    Admit(u64),
    /// Not cached and not worth caching now; compute without storing.
    Skip,
}

/// The shared cache: see the module docs.
pub(crate) struct MatchCache {
    /// Hasher for channel names (hashbrown's default, seeded per cache).
    hasher: DefaultHashBuilder,
    /// The lock stripes.
    shards: Box<[Padded<Mutex<Shard>>]>,
}

impl std::fmt::Debug for MatchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatchCache")
            .field("shards", &SHARDS)
            .field("slots", &SLOTS)
            .finish_non_exhaustive()
    }
}

/// Keeps each shard's lock on its own cache line(s), so publishers on
/// different shards do not contend through false sharing. 128 bytes covers
/// the adjacent-line prefetch of x86-64 and the 128-byte lines of some
/// ARM cores.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// One lock stripe.
#[derive(Debug)]
struct Shard {
    /// Direct-mapped entries, indexed by the low bits of the hash.
    slots: Box<[Option<Entry>]>,
    /// Hash of the last uncached miss per slot (the doorkeeper).
    seen: Box<[u64]>,
}

/// One cached result.
#[derive(Debug)]
struct Entry {
    /// Full hash of `channel`, compared before the bytes.
    hash: u64,
    /// Index generation the result was computed at.
    generation: u64,
    /// The channel name.
    channel: Box<[u8]>,
    /// Ids of the patterns matching it.
    ids: Arc<[u32]>,
}

impl MatchCache {
    /// An empty cache.
    pub(crate) fn new() -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Padded(Mutex::new(Shard {
                    slots: (0..SLOTS).map(|_| None).collect(),
                    seen: vec![0; SLOTS].into(),
                }))
            })
            .collect();
        Self {
            hasher: DefaultHashBuilder::default(),
            shards,
        }
    }

    /// The shard and slot for `hash`: low bits pick the slot, high bits
    /// the shard, so the two choices are independent.
    fn locate(hash: u64) -> (usize, usize) {
        ((hash >> 58) as usize % SHARDS, hash as usize % SLOTS)
    }

    /// Looks `channel` up at `generation`.
    pub(crate) fn get(&self, channel: &[u8], generation: u64) -> Cached {
        if channel.len() > MAX_CHANNEL_LEN {
            return Cached::Skip;
        }
        let hash = self.hasher.hash_one(channel);
        let (shard, slot) = Self::locate(hash);
        let Some(mut shard) = self.shards[shard].0.try_lock() else {
            return Cached::Skip;
        };
        if let Some(entry) = &shard.slots[slot] {
            if entry.hash == hash && entry.generation == generation && *entry.channel == *channel {
                return Cached::Hit(Arc::clone(&entry.ids));
            }
        }
        let seen = &mut shard.seen[slot];
        if *seen == hash {
            Cached::Admit(hash)
        } else {
            *seen = hash;
            Cached::Skip
        }
    }

    /// Stores `ids` as the result for `channel` at `generation`; `hash` is
    /// the one [`Self::get`] returned in [`Cached::Admit`].
    pub(crate) fn put(&self, hash: u64, channel: &[u8], generation: u64, ids: Vec<u32>) {
        if ids.len() > MAX_IDS {
            return;
        }
        let (shard, slot) = Self::locate(hash);
        if let Some(mut shard) = self.shards[shard].0.try_lock() {
            shard.slots[slot] = Some(Entry {
                hash,
                generation,
                channel: channel.into(),
                ids: ids.into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Cached, MatchCache};

    /// A channel is cached from its second miss on, and only at the
    /// generation it was computed at.
    #[test]
    fn admits_on_second_miss_and_invalidates_by_generation() {
        let cache = MatchCache::new();
        assert!(matches!(cache.get(b"ch", 1), Cached::Skip));
        let Cached::Admit(hash) = cache.get(b"ch", 1) else {
            panic!("second miss should admit");
        };
        cache.put(hash, b"ch", 1, vec![3, 5]);
        match cache.get(b"ch", 1) {
            Cached::Hit(ids) => assert_eq!(&*ids, [3, 5]),
            other => panic!("expected a hit, got {other:?}"),
        }
        assert!(!matches!(cache.get(b"ch", 2), Cached::Hit(_)));
        assert!(matches!(cache.get(b"other", 1), Cached::Skip));
    }

    /// Oversized channels and results are never cached.
    #[test]
    fn bounds() {
        let cache = MatchCache::new();
        let long = vec![b'x'; super::MAX_CHANNEL_LEN + 1];
        for _ in 0..3 {
            assert!(matches!(cache.get(&long, 0), Cached::Skip));
        }
        cache.get(b"ch", 0);
        let Cached::Admit(hash) = cache.get(b"ch", 0) else {
            panic!("second miss should admit");
        };
        cache.put(hash, b"ch", 0, vec![0; super::MAX_IDS + 1]);
        assert!(!matches!(cache.get(b"ch", 0), Cached::Hit(_)));
    }
}
