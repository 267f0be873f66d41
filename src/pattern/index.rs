//! The set of subscribed patterns, and the query `publish` makes of it:
//! which patterns match this channel?
//!
//! Redis tests every pattern against every published channel. Here each
//! pattern is filed, at subscribe time, under the cheapest strategy its
//! shape allows, so that a lookup only looks at patterns that can match:
//!
//! | strategy | pattern shape (Redis syntax) | lookup | verified? |
//! |---|---|---|---|
//! | exact | no star, all literal: `a:b`, `a\*b`, `[x]` | one hash probe | no |
//! | prefix | literal then one trailing star run: `ai:*`, `*` | walk a radix tree along the channel | no |
//! | suffix | one leading star run then literal: `*:events` | walk a radix tree backwards | no |
//! | anchored literal | any other pattern with a literal run of 2+ bytes at a fixed offset 0–3 from the start of its head, or from the end of its tail: `tenant42:*:events`, `[a-c]*:log?`, `sensor:??` | the same tree walks, one tree per offset | by the compiled matcher |
//! | gram | otherwise, a literal run of 2+ bytes anywhere: `*:alerts:*` | probe the channel's 2–4-byte grams | by the compiled matcher |
//! | fallback | no literal run of 2+ bytes: `?*`, `[a-z]*?` | every one is tested | by the compiled matcher |
//! | never | an empty class, or over 1000 expandable star runs | skipped | no |
//!
//! A pattern lives in exactly one place, and every place is visited at most
//! once per lookup (gram hits are deduplicated), so each matching pattern
//! is reported exactly once. The unverified strategies are exact by
//! construction (for a non-empty channel, `P*` matches iff the channel
//! starts with `P`, `*S` iff it ends with `S`); all others are confirmed
//! with [`CompiledPattern`], which agrees with the reference matcher on
//! every input. The empty channel is answered by the exact table alone
//! (R0: only the empty pattern matches it).
//!
//! Among several anchors a pattern could use, the index picks the longest
//! literal, avoiding buckets that already hold [`CROWDED`] patterns
//! when another anchor of 2+ bytes exists, so thousands of patterns
//! sharing one prefix (`ml:models:*:<field>`) spread over their suffixes.
//!
//! # Cost
//!
//! A lookup costs one hash of the channel, a walk of at most
//! `2 × ANCHOR_OFFSETS` radix trees (each O(channel length), visiting only
//! nodes on the channel's path), a gram scan when gram patterns exist
//! (O(channel length), most positions rejected by a byte-pair bitmap), and
//! one compiled match per candidate (see [`CompiledPattern`] for what one
//! costs). It does not grow with the number of patterns except through
//! candidates that really share the channel's anchors, plus the fallback
//! list.
//!
//! Adding a pattern is split in two so that the expensive half needs no
//! lock. [`Prepared::new`] parses it, lists the anchors and grams it could
//! be filed under and compiles it when its home will verify: O(pattern
//! length), and it touches no index, so the broker runs it before taking
//! the index's write lock. [`PatternIndex::insert_prepared`] then ranks at
//! most `2 × ANCHOR_OFFSETS` anchors and [`MAX_GRAM_CANDIDATES`] grams by
//! how crowded their buckets are, hashes the pattern once into the id map,
//! walks one radix-tree path (at most one split) and updates O(1) buckets
//! (each entry remembers its position; removal swaps the last one in).
//! Removal walks the same path (at most one merge) and hands the compiled
//! matcher back to be freed after the lock is released. Both are linear in
//! the pattern's length only through hashing and comparing its bytes.
//!
//! A [`MatchCache`] in front remembers the result for hot channels; see
//! its module for the locking. It is invalidated wholesale by a generation
//! counter that every insert and remove bumps.
//!
//! # Why not one automaton
//!
//! Compiling every pattern into one multi-pattern automaton
//! (`regex-automata` 0.4's `meta::Regex` over byte-level translations of
//! the globs, `which_overlapping_matches`, captures off) was measured on
//! the pattern mix of `benches/pattern_index.rs` (release build, 2-core
//! x86-64, channel `ai:conversations:{i}:status`):
//!
//! | patterns | build | lookup, new channel | lookup, same channel |
//! |---|---|---|---|
//! | 1,000 | 12 ms | 479 ns | 80 ns |
//! | 2,500 globs like `[a-c]*:log?` | 31 ms | 447 ns | 121 ns |
//! | 10,000 | 169 ms | 6.4 ms | 5.0 ms |
//!
//! At 10,000 patterns the lazy DFA gives up and the PikeVM runs (with
//! captures on, its cache asked for 41 GB and aborted the process). So the
//! automaton is slower than a linear scan exactly where an index matters,
//! and a build that costs 169 ms cannot follow subscription churn even when
//! amortised over a delta. The anchored strategies above need no build
//! step: churn is O(pattern length), and lookups stay well under a
//! microsecond at every size measured (see the benches).

use std::ops::ControlFlow;

use bytes::Bytes;
use hashbrown::HashMap;

use super::cache::{Cached, MatchCache};
use super::compiled::CompiledPattern;
use super::parse::{Element, Parsed};
use super::radix::{NodeId, RadixTree};

/// Literal runs can anchor at offsets `0..ANCHOR_OFFSETS` from the start
/// of a pattern's head or the end of its tail. A few leading or trailing
/// `?`s or classes are common (`[a-c]*:log?`, `sensor:??`); far from the
/// ends they are rare, and every offset in use adds one tree walk per
/// lookup, so 4 bounds that cost at 8 walks. Runs further in fall back to
/// the gram strategy, which finds them anywhere.
const ANCHOR_OFFSETS: usize = 4;

/// A bucket holding this many verified patterns is avoided when the
/// pattern has another anchor of 2+ bytes. Each verification costs one
/// compiled match (tens of nanoseconds), so 8 caps what a shared anchor
/// adds to a lookup at a few hundred nanoseconds before patterns start
/// spreading over their other anchors. A reasoned choice, not a tuned one:
/// in the benches' pattern mix few buckets come near it.
const CROWDED: usize = 8;

/// Longest gram indexed: grams are packed in a `u32`. Longer runs are
/// represented by their least crowded 4-byte window.
const MAX_GRAM: usize = 4;

/// Every distinct subscribed pattern, each with a value `V` (the broker keeps
/// the pattern's subscribers there).
pub(crate) struct PatternIndex<V> {
    /// Pattern slots by id; `None` for free ids.
    entries: Vec<Option<Entry<V>>>,
    /// Free ids, reused before `entries` grows.
    free: Vec<u32>,
    /// Pattern bytes to id.
    ids: HashMap<Bytes, u32>,
    /// Literal patterns by the channel they match.
    exact: HashMap<Bytes, Vec<u32>>,
    /// Literal runs anchored at the start, one tree per offset.
    prefixes: [RadixTree<Bucket>; ANCHOR_OFFSETS],
    /// Literal runs anchored at the end (keys reversed), one tree per
    /// offset from the end.
    suffixes: [RadixTree<Bucket>; ANCHOR_OFFSETS],
    /// Patterns found through a gram of a floating literal run.
    grams: Grams,
    /// Patterns with no usable literal: tested on every lookup.
    fallback: Vec<u32>,
    /// Bumped by every insert and remove; cached results carry it.
    generation: u64,
    /// Results for hot channels; created on first insert so an empty index
    /// stays small.
    cache: Option<MatchCache>,
    /// Whether lookups consult `cache` (off only to measure it).
    use_cache: bool,
}

/// One held pattern.
struct Entry<V> {
    /// The pattern as subscribed.
    pattern: Bytes,
    /// The caller's value for it.
    value: V,
    /// The compiled matcher, for patterns whose home needs verification.
    matcher: Option<CompiledPattern>,
    /// Where the id is filed.
    home: Home,
    /// Position of the id in its home's list.
    slot: u32,
}

/// Where a pattern's id is filed.
#[derive(Clone, Debug)]
enum Home {
    /// In `exact`, under this literal.
    Exact(Bytes),
    /// In `prefixes[offset]` at `node`; `verify` picks the bucket's list.
    Prefix {
        /// Which tree.
        offset: usize,
        /// The node for the anchor.
        node: NodeId,
        /// Whether candidates there are confirmed by the matcher.
        verify: bool,
    },
    /// In `suffixes[offset]` at `node`, as for `Prefix`.
    Suffix {
        /// Which tree.
        offset: usize,
        /// The node for the anchor.
        node: NodeId,
        /// Whether candidates there are confirmed by the matcher.
        verify: bool,
    },
    /// In `grams` under this key.
    Gram(u64),
    /// In `fallback`.
    Fallback,
    /// Nowhere: the pattern can never match.
    Never,
}

/// Where a new pattern should go (a [`Home`] before its nodes exist).
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// [`Home::Exact`] with this literal.
    Exact(Vec<u8>),
    /// [`Home::Prefix`] for this key.
    Prefix {
        /// Which tree.
        offset: usize,
        /// The anchor's bytes.
        key: Vec<u8>,
        /// Whether candidates need the matcher.
        verify: bool,
    },
    /// [`Home::Suffix`] for this key (already reversed).
    Suffix {
        /// Which tree.
        offset: usize,
        /// The anchor's bytes, reversed.
        key: Vec<u8>,
        /// Whether candidates need the matcher.
        verify: bool,
    },
    /// [`Home::Gram`].
    Gram(u64),
    /// [`Home::Fallback`].
    Fallback,
    /// [`Home::Never`].
    Never,
}

impl Plan {
    /// Whether patterns filed this way are confirmed by the matcher.
    fn verifies(&self) -> bool {
        match self {
            Plan::Prefix { verify, .. } | Plan::Suffix { verify, .. } => *verify,
            Plan::Gram(_) | Plan::Fallback => true,
            Plan::Exact(_) | Plan::Never => false,
        }
    }
}

/// The ids filed at one radix-tree node.
#[derive(Debug, Default, Clone)]
struct Bucket {
    /// Patterns that match every channel reaching this node.
    accept: Vec<u32>,
    /// Patterns that are only candidates there.
    verify: Vec<u32>,
}

impl Bucket {
    /// Whether nothing is filed here.
    fn is_empty(&self) -> bool {
        self.accept.is_empty() && self.verify.is_empty()
    }

    /// The list for `verify`.
    fn list(&mut self, verify: bool) -> &mut Vec<u32> {
        if verify {
            &mut self.verify
        } else {
            &mut self.accept
        }
    }
}

/// Patterns indexed by one 2–4-byte gram of a literal run they require.
#[derive(Debug, Default)]
struct Grams {
    /// Ids by gram key (see [`gram_key`]).
    buckets: HashMap<u64, Vec<u32>>,
    /// Patterns per gram length (index = length), so lookups probe only
    /// lengths in use.
    per_len: [u32; MAX_GRAM + 1],
    /// Patterns per leading byte pair of their gram.
    pairs: HashMap<u16, u32>,
    /// One bit per byte pair with a non-zero count in `pairs` (empty until
    /// the first gram): most channel positions are rejected with one load.
    pair_bits: Vec<u64>,
}

/// Packs a 2–4-byte gram with its length.
fn gram_key(gram: &[u8]) -> u64 {
    let packed = gram.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
    (gram.len() as u64) << 32 | packed
}

impl Grams {
    /// Files `id` under `key`, returning its slot.
    fn insert(&mut self, key: u64, id: u32) -> usize {
        let len = (key >> 32) as usize;
        let pair = (key >> (8 * (len - 2))) as u16;
        self.per_len[len] += 1;
        let count = self.pairs.entry(pair).or_insert(0);
        *count += 1;
        if *count == 1 {
            if self.pair_bits.is_empty() {
                self.pair_bits = vec![0; 1 << 10];
            }
            self.pair_bits[usize::from(pair >> 6)] |= 1 << (pair & 63);
        }
        let bucket = self.buckets.entry(key).or_default();
        bucket.push(id);
        bucket.len() - 1
    }

    /// Bookkeeping after an id left `key`'s bucket (already removed from
    /// the list by the caller).
    fn forget(&mut self, key: u64) {
        let len = (key >> 32) as usize;
        let pair = (key >> (8 * (len - 2))) as u16;
        self.per_len[len] -= 1;
        if self.buckets.get(&key).is_some_and(Vec::is_empty) {
            self.buckets.remove(&key);
        }
        if let Some(count) = self.pairs.get_mut(&pair) {
            *count -= 1;
            if *count == 0 {
                self.pairs.remove(&pair);
                self.pair_bits[usize::from(pair >> 6)] &= !(1 << (pair & 63));
            }
        }
    }

    /// Number of ids filed under `key`.
    fn bucket_len(&self, key: u64) -> usize {
        self.buckets.get(&key).map_or(0, Vec::len)
    }

    /// Calls `hit` once with each bucket whose gram occurs in `channel`.
    fn search<'a>(&'a self, channel: &[u8], mut hit: impl FnMut(&'a [u32])) {
        if self.buckets.is_empty() || channel.len() < 2 {
            return;
        }
        // A gram may occur several times; collect keys and deduplicate so
        // each bucket is reported once. Allocates only when something hits.
        let mut keys = Vec::new();
        for (i, window) in channel.windows(2).enumerate() {
            let pair = u16::from_be_bytes([window[0], window[1]]);
            if self.pair_bits[usize::from(pair >> 6)] >> (pair & 63) & 1 == 0 {
                continue;
            }
            let longest = MAX_GRAM.min(channel.len() - i);
            for len in 2..=longest {
                if self.per_len[len] > 0 {
                    let key = gram_key(&channel[i..i + len]);
                    if self.buckets.contains_key(&key) {
                        keys.push(key);
                    }
                }
            }
        }
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            if let Some(ids) = self.buckets.get(&key) {
                hit(ids);
            }
        }
    }
}

/// Calls `visit` with each maximal run of literal elements, as its start
/// offset (in elements) and bytes, until it returns `Break`.
fn literal_runs(
    elements: impl Iterator<Item = Element>,
    mut visit: impl FnMut(usize, &[u8]) -> ControlFlow<()>,
) {
    // One buffer for every run: a long pattern may have many.
    let mut run = Vec::new();
    let mut start = 0;
    for (i, element) in elements.enumerate() {
        match element.literal() {
            Some(b) => {
                if run.is_empty() {
                    start = i;
                }
                run.push(b);
            }
            None if !run.is_empty() => {
                if visit(start, &run).is_break() {
                    return;
                }
                run.clear();
            }
            None => {}
        }
    }
    if !run.is_empty() {
        let _ = visit(start, &run);
    }
}

/// A pattern parsed, analysed for filing and compiled: everything an
/// insert needs that does not depend on the index, so that it can be done
/// before the index's lock is taken ([`Prepared::new`]).
pub(crate) struct Prepared {
    /// The pattern.
    pattern: Bytes,
    /// Where it may be filed.
    candidates: Candidates,
    /// The compiled matcher, when every home it may get verifies.
    matcher: Option<CompiledPattern>,
}

impl Prepared {
    /// Parses, analyses and compiles `pattern` for
    /// [`PatternIndex::insert_prepared`]. Touches no index, so it runs
    /// before the index's lock is taken: its cost, linear in the pattern's
    /// length, never holds up a lookup.
    pub(crate) fn new(pattern: Bytes) -> Self {
        let parsed = Parsed::new(&pattern);
        let candidates = candidates(&parsed);
        let matcher = match candidates {
            Candidates::Fixed(_) => None,
            Candidates::Choose { .. } => Some(CompiledPattern::from_parsed(&parsed, &pattern)),
        };
        Self {
            pattern,
            candidates,
            matcher,
        }
    }

    /// The pattern's bytes.
    pub(crate) fn pattern(&self) -> &Bytes {
        &self.pattern
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("pattern", &self.pattern.len())
            .field("candidates", &self.candidates)
            .finish_non_exhaustive()
    }
}

/// The homes a pattern may get, before the index's crowding picks one.
#[derive(Debug)]
enum Candidates {
    /// The pattern's shape decides alone (exact, unverified prefix or
    /// suffix, never).
    Fixed(Plan),
    /// Verified homes to choose from.
    Choose {
        /// Anchored literal runs: (literal length, plan).
        anchored: Vec<(usize, Plan)>,
        /// Gram keys of floating literal runs, at most
        /// [`MAX_GRAM_CANDIDATES`], in pattern order.
        grams: Vec<u64>,
    },
}

/// Gram keys considered for one pattern. Every window of every literal run
/// was once compared; a long pattern has hundreds of thousands, and the
/// comparison runs under the index's write lock, so only the first 64
/// distinct ones are. That is every window of any pattern with fewer than
/// 64 bytes of literal runs, and a poor choice among the rest only costs
/// verifications, never a wrong answer.
const MAX_GRAM_CANDIDATES: usize = 64;

impl<V> PatternIndex<V> {
    /// An empty index.
    pub(crate) fn new() -> Self {
        Self {
            entries: Vec::new(),
            free: Vec::new(),
            ids: HashMap::new(),
            exact: HashMap::new(),
            prefixes: std::array::from_fn(|_| RadixTree::new()),
            suffixes: std::array::from_fn(|_| RadixTree::new()),
            grams: Grams::default(),
            fallback: Vec::new(),
            generation: 0,
            cache: None,
            use_cache: true,
        }
    }

    /// Number of distinct patterns held (Redis's `PUBSUB NUMPAT`).
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The value for `pattern`, if it is held.
    pub(crate) fn get_mut(&mut self, pattern: &[u8]) -> Option<&mut V> {
        let id = *self.ids.get(pattern)?;
        self.entries[id as usize].as_mut().map(|e| &mut e.value)
    }

    /// Every held pattern with its value, in no particular order.
    #[allow(dead_code, reason = "introspection for the broker and tests")]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Bytes, &V)> {
        self.entries
            .iter()
            .flatten()
            .map(|e| (&e.pattern, &e.value))
    }

    /// Adds `pattern`, which must not be held yet, with `value`: prepares
    /// it and inserts it.
    ///
    /// If it is held anyway, its value is replaced (nothing else changes).
    #[allow(
        dead_code,
        reason = "the broker prepares first; tests and benchmarks use this"
    )]
    pub(crate) fn insert(&mut self, pattern: Bytes, value: V) {
        drop(self.insert_prepared(Prepared::new(pattern), value));
    }

    /// Adds a prepared pattern, which must not be held yet, with `value`.
    ///
    /// The work left is choosing among the prepared homes (a few lookups)
    /// and filing the pattern: hashing its bytes and at most one radix-tree
    /// path. If the pattern is held anyway, its value is replaced and the
    /// preparation handed back, for the caller to drop once it holds no
    /// lock.
    pub(crate) fn insert_prepared(&mut self, prepared: Prepared, value: V) -> Option<Prepared> {
        if let Some(held) = self.get_mut(&prepared.pattern) {
            *held = value;
            return Some(prepared);
        }
        let Prepared {
            pattern,
            candidates,
            matcher,
        } = prepared;
        let plan = self.choose(candidates);
        debug_assert_eq!(plan.verifies(), matcher.is_some());
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                // u32 ids: 4 billion patterns would not fit in memory anyway.
                let id = u32::try_from(self.entries.len()).expect("pattern ids exhausted");
                self.entries.push(None);
                id
            }
        };
        let (home, slot) = self.file(plan, &pattern, id);
        self.entries[id as usize] = Some(Entry {
            pattern: pattern.clone(),
            value,
            matcher,
            home,
            slot: u32::try_from(slot).expect("bucket positions fit in u32 like ids"),
        });
        self.ids.insert(pattern, id);
        self.generation += 1;
        self.cache.get_or_insert_with(MatchCache::new);
        None
    }

    /// Removes `pattern`, returning its value if it was held.
    #[allow(
        dead_code,
        reason = "the broker uses `take`; tests and benchmarks use this"
    )]
    pub(crate) fn remove(&mut self, pattern: &[u8]) -> Option<V> {
        self.take(pattern).map(|(value, _)| value)
    }

    /// Removes `pattern`, returning its value and what else it held, for
    /// the caller to drop once it holds no lock (a long pattern's matcher
    /// is many allocations).
    pub(crate) fn take(&mut self, pattern: &[u8]) -> Option<(V, Retired)> {
        let id = self.ids.remove(pattern)?;
        let entry = self.entries[id as usize].take()?;
        self.free.push(id);
        self.generation += 1;
        let slot = entry.slot as usize;
        let entries = &mut self.entries;
        match &entry.home {
            Home::Exact(key) => {
                if let Some(list) = self.exact.get_mut(key) {
                    take_slot(list, slot, entries);
                    if list.is_empty() {
                        self.exact.remove(key);
                    }
                }
            }
            &Home::Prefix {
                offset,
                node,
                verify,
            } => {
                let tree = &mut self.prefixes[offset];
                take_slot(tree.bucket_mut(node).list(verify), slot, entries);
                tree.prune(node, Bucket::is_empty);
            }
            &Home::Suffix {
                offset,
                node,
                verify,
            } => {
                let tree = &mut self.suffixes[offset];
                take_slot(tree.bucket_mut(node).list(verify), slot, entries);
                tree.prune(node, Bucket::is_empty);
            }
            &Home::Gram(key) => {
                if let Some(list) = self.grams.buckets.get_mut(&key) {
                    take_slot(list, slot, entries);
                }
                self.grams.forget(key);
            }
            Home::Fallback => take_slot(&mut self.fallback, slot, entries),
            Home::Never => {}
        }
        let retired = Retired {
            _pattern: entry.pattern,
            _matcher: entry.matcher,
        };
        Some((entry.value, retired))
    }

    /// Calls `f` with every held pattern that matches `channel`, and its
    /// value, each exactly once, in no particular order.
    pub(crate) fn for_each_match(&self, channel: &[u8], mut f: impl FnMut(&Bytes, &V)) {
        let mut report = |id: u32| {
            if let Some(Some(entry)) = self.entries.get(id as usize) {
                f(&entry.pattern, &entry.value);
            }
        };
        if channel.is_empty() {
            // R0: only the empty pattern matches the empty channel.
            for &id in self.exact.get(&b""[..]).into_iter().flatten() {
                report(id);
            }
            return;
        }
        let cache = match &self.cache {
            Some(cache) if self.use_cache => cache,
            _ => return self.search(channel, report),
        };
        match cache.get(channel, self.generation) {
            Cached::Hit(ids) => ids.iter().for_each(|&id| report(id)),
            Cached::Skip => self.search(channel, report),
            Cached::Admit(hash) => {
                let mut ids = Vec::new();
                self.search(channel, |id| ids.push(id));
                ids.iter().for_each(|&id| report(id));
                cache.put(hash, channel, self.generation, ids);
            }
        }
    }

    /// Turns the result cache on or off (it is on by default); off is for
    /// measuring what the cache buys.
    #[allow(dead_code, reason = "used by tests and benchmarks")]
    pub(crate) fn set_cache(&mut self, on: bool) {
        self.use_cache = on;
    }

    /// Calls `emit` with the id of every pattern matching the non-empty
    /// `channel`, each once, bypassing the cache.
    fn search(&self, channel: &[u8], mut emit: impl FnMut(u32)) {
        let verified = |id: u32| {
            self.entries
                .get(id as usize)
                .and_then(Option::as_ref)
                .and_then(|e| e.matcher.as_ref())
                .is_some_and(|m| m.matches(channel))
        };
        if let Some(ids) = self.exact.get(channel) {
            // Literal patterns match their channel only: nothing to verify.
            ids.iter().for_each(|&id| emit(id));
        }
        {
            let mut visit = |bucket: &Bucket| {
                bucket.accept.iter().for_each(|&id| emit(id));
                for &id in &bucket.verify {
                    if verified(id) {
                        emit(id);
                    }
                }
            };
            for (offset, tree) in self.prefixes.iter().enumerate() {
                if let Some(hay) = channel.get(offset..) {
                    if !tree.is_empty(Bucket::is_empty) {
                        tree.walk_prefixes(hay, &mut visit);
                    }
                }
            }
            for (offset, tree) in self.suffixes.iter().enumerate() {
                if let Some(end) = channel.len().checked_sub(offset) {
                    if !tree.is_empty(Bucket::is_empty) {
                        tree.walk_suffixes(&channel[..end], &mut visit);
                    }
                }
            }
        }
        self.grams.search(channel, |ids| {
            for &id in ids {
                if verified(id) {
                    emit(id);
                }
            }
        });
        for &id in &self.fallback {
            if verified(id) {
                emit(id);
            }
        }
    }

    /// Decides where a parsed pattern goes.
    #[cfg(test)]
    fn plan(&self, parsed: &Parsed<'_>) -> Plan {
        self.choose(candidates(parsed))
    }

    /// Picks a home among `candidates` by how crowded each is now.
    fn choose(&self, candidates: Candidates) -> Plan {
        let (anchored, grams) = match candidates {
            Candidates::Fixed(plan) => return plan,
            Candidates::Choose { anchored, grams } => (anchored, grams),
        };
        // Prefer anchors of 2+ bytes, then uncrowded buckets, then longer
        // literals, then emptier buckets.
        let best = anchored
            .into_iter()
            .map(|(len, plan)| (len, self.crowd(&plan), plan))
            .min_by_key(|&(len, crowd, _)| {
                (len < 2, crowd >= CROWDED, std::cmp::Reverse(len), crowd)
            });
        let one_byte = match best {
            Some((len, _, plan)) if len >= 2 => return plan,
            other => other.map(|(_, _, plan)| plan),
        };
        // A floating gram: the least crowded window of a 2+-byte run.
        let gram = grams
            .into_iter()
            .min_by_key(|&key| (self.grams.bucket_len(key), std::cmp::Reverse(key >> 32)));
        match (gram, one_byte) {
            (Some(key), _) => Plan::Gram(key),
            (None, Some(plan)) => plan,
            (None, None) => Plan::Fallback,
        }
    }

    /// Verified patterns already filed where `plan` would file.
    fn crowd(&self, plan: &Plan) -> usize {
        let (tree, key) = match plan {
            Plan::Prefix { offset, key, .. } => (&self.prefixes[*offset], key),
            Plan::Suffix { offset, key, .. } => (&self.suffixes[*offset], key),
            _ => return 0,
        };
        tree.find(key).map_or(0, |n| tree.bucket(n).verify.len())
    }

    /// Files `id` as `plan` says, returning its home and slot.
    fn file(&mut self, plan: Plan, pattern: &Bytes, id: u32) -> (Home, usize) {
        match plan {
            Plan::Exact(literal) => {
                // Share the pattern's bytes when it has no escapes.
                let key = if *literal == **pattern {
                    pattern.clone()
                } else {
                    Bytes::from(literal)
                };
                let list = self.exact.entry(key.clone()).or_default();
                list.push(id);
                (Home::Exact(key), list.len() - 1)
            }
            Plan::Prefix {
                offset,
                key,
                verify,
            } => {
                let tree = &mut self.prefixes[offset];
                let node = tree.insert(&key);
                let list = tree.bucket_mut(node).list(verify);
                list.push(id);
                let home = Home::Prefix {
                    offset,
                    node,
                    verify,
                };
                (home, list.len() - 1)
            }
            Plan::Suffix {
                offset,
                key,
                verify,
            } => {
                let tree = &mut self.suffixes[offset];
                let node = tree.insert(&key);
                let list = tree.bucket_mut(node).list(verify);
                list.push(id);
                let home = Home::Suffix {
                    offset,
                    node,
                    verify,
                };
                (home, list.len() - 1)
            }
            Plan::Gram(key) => (Home::Gram(key), self.grams.insert(key, id)),
            Plan::Fallback => {
                self.fallback.push(id);
                (Home::Fallback, self.fallback.len() - 1)
            }
            Plan::Never => (Home::Never, 0),
        }
    }
}

/// Where a parsed pattern may go, worked out from its shape alone.
fn candidates(parsed: &Parsed<'_>) -> Candidates {
    if parsed.never_matches() {
        return Candidates::Fixed(Plan::Never);
    }
    if let Some(literal) = parsed.as_literal() {
        return Candidates::Fixed(Plan::Exact(literal));
    }
    if let Some(key) = parsed.as_prefix() {
        return Candidates::Fixed(Plan::Prefix {
            offset: 0,
            key,
            verify: false,
        });
    }
    if let Some(mut key) = parsed.as_suffix() {
        key.reverse();
        return Candidates::Fixed(Plan::Suffix {
            offset: 0,
            key,
            verify: false,
        });
    }
    let mut anchored = Vec::new();
    let head = &parsed.segments[0];
    literal_runs(parsed.elements(head), |start, key| {
        if start >= ANCHOR_OFFSETS {
            return ControlFlow::Break(());
        }
        let plan = Plan::Prefix {
            offset: start,
            key: key.to_vec(),
            verify: true,
        };
        anchored.push((key.len(), plan));
        ControlFlow::Continue(())
    });
    if !parsed.trailing_star {
        let tail = parsed.segments.last().unwrap_or(head);
        literal_runs(parsed.elements(tail), |start, key| {
            let from_end = tail.len - start - key.len();
            if from_end < ANCHOR_OFFSETS {
                let plan = Plan::Suffix {
                    offset: from_end,
                    key: key.iter().rev().copied().collect(),
                    verify: true,
                };
                anchored.push((key.len(), plan));
            }
            ControlFlow::Continue(())
        });
    }
    let mut grams: Vec<u64> = Vec::new();
    for segment in &parsed.segments {
        literal_runs(parsed.elements(segment), |_, run| {
            if run.len() < 2 {
                return ControlFlow::Continue(());
            }
            for window in run.windows(run.len().min(MAX_GRAM)) {
                let key = gram_key(window);
                if !grams.contains(&key) {
                    grams.push(key);
                    if grams.len() == MAX_GRAM_CANDIDATES {
                        return ControlFlow::Break(());
                    }
                }
            }
            ControlFlow::Continue(())
        });
        if grams.len() == MAX_GRAM_CANDIDATES {
            break;
        }
    }
    Candidates::Choose { anchored, grams }
}

/// What a removed pattern held besides its value: dropped by the caller
/// once it holds no lock.
pub(crate) struct Retired {
    /// The index's references to the pattern's bytes.
    _pattern: Bytes,
    /// Its matcher, if it had one.
    _matcher: Option<CompiledPattern>,
}

impl std::fmt::Debug for Retired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retired").finish_non_exhaustive()
    }
}

/// Removes the id at `slot` from `list`, moving the last id into its place
/// and updating that entry's slot.
fn take_slot<V>(list: &mut Vec<u32>, slot: usize, entries: &mut [Option<Entry<V>>]) {
    if slot >= list.len() {
        return;
    }
    list.swap_remove(slot);
    if let Some(&moved) = list.get(slot) {
        if let Some(Some(entry)) = entries.get_mut(moved as usize) {
            // `slot` < list length, which fits in u32 as it did on insert.
            entry.slot = slot as u32;
        }
    }
}

impl<V> Default for PatternIndex<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> std::fmt::Debug for PatternIndex<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut homes = [0usize; 6];
        for entry in self.entries.iter().flatten() {
            homes[match entry.home {
                Home::Exact(_) => 0,
                Home::Prefix { .. } => 1,
                Home::Suffix { .. } => 2,
                Home::Gram(_) => 3,
                Home::Fallback => 4,
                Home::Never => 5,
            }] += 1;
        }
        f.debug_struct("PatternIndex")
            .field("patterns", &self.len())
            .field("exact", &homes[0])
            .field("prefix_anchored", &homes[1])
            .field("suffix_anchored", &homes[2])
            .field("gram", &homes[3])
            .field("fallback", &homes[4])
            .field("never", &homes[5])
            .field(
                "tree_nodes",
                &self
                    .prefixes
                    .iter()
                    .chain(&self.suffixes)
                    .map(RadixTree::node_count)
                    .sum::<usize>(),
            )
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;
    use proptest::prelude::*;

    use super::super::{reference, testgen};
    use super::{PatternIndex, Plan};

    /// Compile-time check: the broker shares the index across threads.
    const _: fn() = || {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PatternIndex<Vec<u64>>>();
    };

    /// The patterns `index` reports for `channel`, sorted, with the number
    /// of times each was reported.
    fn reported(index: &PatternIndex<u32>, channel: &[u8]) -> BTreeMap<Vec<u8>, u32> {
        let mut seen = BTreeMap::new();
        index.for_each_match(channel, |pattern, _| {
            *seen.entry(pattern.to_vec()).or_insert(0) += 1;
        });
        seen
    }

    /// What a linear scan with the reference matcher reports.
    fn expected<'a>(
        patterns: impl IntoIterator<Item = &'a Vec<u8>>,
        channel: &[u8],
    ) -> BTreeMap<Vec<u8>, u32> {
        patterns
            .into_iter()
            .filter(|p| reference::matches(p, channel))
            .map(|p| (p.clone(), 1))
            .collect()
    }

    fn index_of(patterns: &[&[u8]]) -> PatternIndex<u32> {
        let mut index = PatternIndex::new();
        for (i, p) in patterns.iter().enumerate() {
            index.insert(Bytes::copy_from_slice(p), i as u32);
        }
        index
    }

    /// Asserts where `pattern` is filed, on an otherwise empty index.
    macro_rules! files_as {
        ($($pattern:expr => $plan:pat),+ $(,)?) => {$(
            let plan = PatternIndex::<()>::new().plan(&super::Parsed::new($pattern));
            assert!(matches!(plan, $plan), "{:?} filed as {plan:?}", $pattern.escape_ascii().to_string());
        )+};
    }

    /// Each shape gets the strategy the module docs promise.
    #[test]
    fn shapes_get_their_strategy() {
        files_as! {
            b"ai:conversations:42" => Plan::Exact(_),
            b"a\\*b" => Plan::Exact(_),
            b"[x]y" => Plan::Exact(_),
            b"" => Plan::Exact(_),
            b"ai:*" => Plan::Prefix { offset: 0, verify: false, .. },
            b"**" => Plan::Prefix { offset: 0, verify: false, .. },
            b"*:events" => Plan::Suffix { offset: 0, verify: false, .. },
            b"tenant42:*:events" => Plan::Prefix { offset: 0, verify: true, .. },
            b"ml:models:*:status" => Plan::Prefix { offset: 0, verify: true, .. },
            b"[a-c]*:log?" => Plan::Suffix { offset: 1, verify: true, .. },
            b"?x:y*" => Plan::Prefix { offset: 1, verify: true, .. },
            b"sensor:??" => Plan::Prefix { offset: 0, verify: true, .. },
            b"*:alerts:*" => Plan::Gram(_),
            b"????????ab*" => Plan::Gram(_),
            b"a*b" => Plan::Prefix { offset: 0, verify: true, .. },
            b"?*" => Plan::Fallback,
            b"*a*" => Plan::Fallback,
            b"a[]*" => Plan::Never,
        }
    }

    /// Many patterns sharing one prefix spread over their suffixes.
    #[test]
    fn crowded_prefix_spreads() {
        let mut index = PatternIndex::new();
        for i in 0..100 {
            index.insert(Bytes::from(format!("ml:models:*:field{i}")), i);
        }
        let plan = index.plan(&super::Parsed::new(b"ml:models:*:field100"));
        assert!(
            matches!(
                plan,
                Plan::Suffix {
                    offset: 0,
                    verify: true,
                    ..
                }
            ),
            "{plan:?}"
        );
        let reported = reported(&index, b"ml:models:x:field42");
        assert_eq!(
            reported.keys().collect::<Vec<_>>(),
            [b"ml:models:*:field42"]
        );
    }

    /// Lookups agree with a linear reference scan on a mixed set, with and
    /// without the cache, across repeated lookups (cache hits).
    #[test]
    fn agrees_with_linear_scan() {
        let patterns: Vec<&[u8]> = vec![
            b"",
            b"*",
            b"**",
            b"a",
            b"a\\*b",
            b"a*b",
            b"ai:*",
            b"ai:*:status",
            b"*:status",
            b"*status",
            b"tenant42:*:events",
            b"[a-c]*:log?",
            b"?x*",
            b"*:alerts:*",
            b"?*",
            b"*a*",
            b"a[]",
            b"[^]",
            b"h?llo",
            b"sensor:??",
            b"*ai*",
            b"ai",
            b"[ab]i:*",
        ];
        let owned: Vec<Vec<u8>> = patterns.iter().map(|p| p.to_vec()).collect();
        let channels: Vec<&[u8]> = vec![
            b"",
            b"a",
            b"a*b",
            b"ab",
            b"ai:",
            b"ai:x:status",
            b"x:status",
            b"status",
            b"tenant42:billing:events",
            b"b:x:log1",
            b"xx",
            b"q:alerts:z",
            b"hello",
            b"sensor:42",
            b"ai",
            b"bi:q",
        ];
        for use_cache in [true, false] {
            let mut index = index_of(&patterns);
            index.set_cache(use_cache);
            for _ in 0..3 {
                for channel in &channels {
                    assert_eq!(
                        reported(&index, channel),
                        expected(&owned, channel),
                        "channel {:?}",
                        channel.escape_ascii().to_string()
                    );
                }
            }
        }
    }

    /// Removing everything leaves no trace in the strategies.
    #[test]
    fn remove_all_leaves_nothing() {
        let patterns: Vec<&[u8]> = vec![
            b"a",
            b"ai:*",
            b"ai:*:x",
            b"ai:b*:x",
            b"*:x",
            b"[a]?:*",
            b"*:alerts:*",
            b"?*",
            b"a[]",
            b"ml:*:y",
            b"ml:*:yy",
        ];
        let mut index = index_of(&patterns);
        assert_eq!(index.len(), patterns.len());
        for (i, p) in patterns.iter().enumerate().rev() {
            assert_eq!(index.remove(p), Some(i as u32));
            assert_eq!(index.remove(p), None);
        }
        assert_eq!(index.len(), 0);
        assert!(index.exact.is_empty() && index.fallback.is_empty());
        assert!(index.grams.buckets.is_empty() && index.grams.pairs.is_empty());
        assert!(index.grams.pair_bits.iter().all(|&w| w == 0));
        for tree in index.prefixes.iter().chain(&index.suffixes) {
            assert_eq!(tree.node_count(), 1);
        }
    }

    /// `get_mut` reaches the stored value; inserting a held pattern
    /// replaces its value only; lookups and `iter` report each pattern
    /// with its current value.
    #[test]
    fn values() {
        let mut index = index_of(&[b"a*", b"b"]);
        *index.get_mut(b"a*").unwrap() += 10;
        index.insert(Bytes::from_static(b"b"), 7);
        assert_eq!(index.len(), 2);
        let matches = |index: &PatternIndex<u32>, channel: &[u8]| {
            let mut seen = Vec::new();
            index.for_each_match(channel, |p, v| seen.push((p.clone(), *v)));
            seen.sort();
            seen
        };
        let (a, b) = (Bytes::from_static(b"a*"), Bytes::from_static(b"b"));
        assert_eq!(matches(&index, b"ab"), [(a.clone(), 10)]);
        assert_eq!(matches(&index, b"b"), [(b.clone(), 7)]);
        assert_eq!(matches(&index, b"a"), [(a.clone(), 10)]);
        assert!(matches(&index, b"c").is_empty());
        let mut all: Vec<(Bytes, u32)> = index.iter().map(|(p, v)| (p.clone(), *v)).collect();
        all.sort();
        assert_eq!(all, [(a, 10), (b, 7)]);
        assert!(index.get_mut(b"c").is_none());
    }

    /// A cached result is not served after the set changes.
    #[test]
    fn cache_invalidated_by_changes() {
        let mut index = index_of(&[b"a*"]);
        for _ in 0..3 {
            assert_eq!(reported(&index, b"ab").len(), 1);
        }
        index.insert(Bytes::from_static(b"*b"), 1);
        assert_eq!(reported(&index, b"ab").len(), 2);
        index.remove(b"a*");
        index.remove(b"*b");
        assert!(reported(&index, b"ab").is_empty());
    }

    /// Removing a pattern filed under a two-byte gram forgets that gram's
    /// own byte pair, and no other: a pattern whose gram starts with the
    /// pair `\0a` is still found after `*ab*` (pair `ab`) leaves. Lookups
    /// skip every channel position whose pair has no live gram, so
    /// forgetting the wrong pair would hide a subscribed pattern.
    #[test]
    fn removing_a_two_byte_gram_keeps_other_grams_found() {
        let patterns: [&[u8]; 2] = [b"*ab*", b"*\x00a*"];
        files_as! {
            patterns[0] => Plan::Gram(_),
            patterns[1] => Plan::Gram(_),
        }
        let mut index = index_of(&patterns);
        index.set_cache(false);
        assert_eq!(index.remove(patterns[0]), Some(0));
        let held = vec![patterns[1].to_vec()];
        for channel in [&b"x\x00ay"[..], b"\x00a", b"xaby"] {
            assert_eq!(
                reported(&index, channel),
                expected(&held, channel),
                "channel {:?}",
                channel.escape_ascii().to_string()
            );
        }
        assert_eq!(reported(&index, b"x\x00ay").len(), 1);
    }

    /// An operation on the index in a proptest run.
    #[derive(Debug, Clone)]
    enum Op {
        Insert(Vec<u8>),
        Remove(usize),
        Lookup(Vec<u8>),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => prop_oneof![testgen::shaped_pattern(), testgen::pattern()].prop_map(Op::Insert),
            1 => any::<usize>().prop_map(Op::Remove),
            3 => prop_oneof![testgen::shaped_channel(), testgen::channel()].prop_map(Op::Lookup),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Random inserts, removes and lookups: every lookup reports
        /// exactly the patterns a linear reference scan finds, each once.
        #[test]
        fn prop_index_agrees_with_linear_scan(ops in prop::collection::vec(op(), 1..80), cache in any::<bool>()) {
            let mut index = PatternIndex::new();
            index.set_cache(cache);
            let mut held: Vec<Vec<u8>> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(p) => {
                        if !held.contains(&p) {
                            index.insert(Bytes::from(p.clone()), 0);
                            held.push(p);
                        }
                    }
                    Op::Remove(i) => {
                        if !held.is_empty() {
                            let p = held.swap_remove(i % held.len());
                            prop_assert_eq!(index.remove(&p), Some(0));
                        }
                    }
                    Op::Lookup(channel) => {
                        for _ in 0..2 {
                            prop_assert_eq!(reported(&index, &channel), expected(&held, &channel));
                        }
                    }
                }
                prop_assert_eq!(index.len(), held.len());
            }
        }
    }
}
