//! Seeded workloads shared by the benchmarks, so every suite measures the
//! same realistic pattern mix and channels.

#![allow(
    dead_code,
    reason = "each benchmark uses a different part of the workload"
)]

use std::collections::HashSet;

/// A tiny xorshift64 generator: seeded, so every run sees the same data.
pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    /// The next pseudo-random number.
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One of `items`.
    pub(crate) fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// First segment of channel names.
pub(crate) const NAMESPACES: &[&str] = &[
    "ai",
    "ml",
    "billing",
    "auth",
    "search",
    "chat",
    "infra",
    "analytics",
];
/// Second segment of channel names.
pub(crate) const COLLECTIONS: &[&str] = &[
    "conversations",
    "models",
    "jobs",
    "users",
    "orders",
    "sessions",
    "invoices",
    "alerts",
];
/// Last segment of channel names.
pub(crate) const FIELDS: &[&str] = &["status", "events", "updated", "created", "log", "metrics"];

/// `n` distinct patterns in the four shapes of a real deployment, with
/// varying names and numbers: `ai:conversations:*` (and per-id
/// `ai:conversations:42:*`), `ml:models:*:status`, `tenant42:*:events`,
/// `[a-c]*:log?`. The first `k` patterns of a larger set are the same as
/// a set of `k`, so sizes are comparable.
pub(crate) fn realistic_patterns(n: usize) -> Vec<Vec<u8>> {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut seen = HashSet::new();
    let mut patterns = Vec::with_capacity(n);
    let mut i = 0usize;
    while patterns.len() < n {
        let (ns, coll, field) = (
            rng.pick(NAMESPACES),
            rng.pick(COLLECTIONS),
            rng.pick(FIELDS),
        );
        let k = rng.below(100_000);
        let pattern = match i % 4 {
            0 if rng.below(8) == 0 => format!("{ns}:{coll}:*"),
            0 => format!("{ns}:{coll}:{k}:*"),
            1 if rng.below(8) == 0 => format!("{ns}:{coll}:*:{field}"),
            1 => format!("{ns}:{coll}{k}:*:{field}"),
            2 => format!("tenant{k}:*:{field}"),
            _ => {
                let first = b'a' + rng.below(20) as u8;
                let (first, last) = (first as char, (first + 2) as char);
                format!("[{first}-{last}]*:{field}{}?", k % 1000)
            }
        };
        i += 1;
        if seen.insert(pattern.clone()) {
            patterns.push(pattern.into_bytes());
        }
    }
    patterns
}

/// Pattern counts swept by the pattern benchmarks.
pub(crate) const PATTERN_COUNTS: [usize; 4] = [10, 100, 1_000, 10_000];

/// The channel published again and again.
pub(crate) const HOT_CHANNEL: &[u8] = b"ai:conversations:42:status";

/// The one pattern of [`hot_channel_patterns`] that matches [`HOT_CHANNEL`].
pub(crate) const HOT_PATTERN: &[u8] = b"ai:conversations:*";

/// `n` patterns of the realistic mix of which exactly one,
/// [`HOT_PATTERN`], matches [`HOT_CHANNEL`], whatever `n` is. A publish to
/// the hot channel then does the same delivery work at every size, so the
/// sizes differ only in what the index costs.
pub(crate) fn hot_channel_patterns(n: usize) -> Vec<Vec<u8>> {
    let mut patterns: Vec<Vec<u8>> = realistic_patterns(n + 64)
        .into_iter()
        .filter(|p| p.as_slice() != HOT_PATTERN && !tannoy::glob_match(p, HOT_CHANNEL))
        .take(n - 1)
        .collect();
    assert_eq!(patterns.len(), n - 1, "the generator ran short");
    patterns.push(HOT_PATTERN.to_vec());
    patterns
}

/// Distinct channels `ai:conversations:{i}:status`, cycled through: many
/// more than any cache holds, so each publish is effectively to a new
/// channel.
pub(crate) fn fresh_channels() -> Vec<Vec<u8>> {
    (0..65_536)
        .map(|i| format!("ai:conversations:{i}:status").into_bytes())
        .collect()
}
