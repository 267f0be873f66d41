//! The seed's workload: 10,000 realistically named channels ranked by a
//! Zipf(1.1) popularity, ~200 patterns, and a seeded plan of which
//! subscriber holds what and which channel each publish goes to. Both
//! contenders of `benches/seed.rs` are built from the same plan.

use std::collections::HashSet;

use bytes::Bytes;

use crate::workload::{COLLECTIONS, XorShift};

/// How many channels the workload names.
pub(crate) const CHANNELS: usize = 10_000;

/// How many distinct patterns subscribers choose from.
pub(crate) const PATTERNS: usize = 200;

/// The Zipf exponent of channel popularity, for subscriptions and publishes
/// alike: a few hot channels, a long tail of cold ones.
pub(crate) const ZIPF_EXPONENT: f64 = 1.1;

/// One subscriber in five also holds a pattern.
pub(crate) const PATTERN_SUBSCRIBER_ONE_IN: usize = 5;

/// Size of a published payload, as a small JSON event.
pub(crate) const PAYLOAD_BYTES: usize = 64;

/// Channels every part of an application publishes to: the hottest ranks.
const GLOBAL_CHANNELS: &[&str] = &[
    "conversations:new",
    "ai:predictions:ready",
    "ai:embeddings:refresh",
    "ai:models:updated",
    "ml:training:completed",
    "billing:invoices:created",
    "auth:sessions:revoked",
    "system:alerts",
];

/// Model families; with a version suffix they name 40 models.
const MODEL_FAMILIES: &[&str] = &[
    "llama", "mistral", "bert", "whisper", "clip", "resnet", "xgboost", "t5",
];

/// Versions per model family.
const MODEL_VERSIONS: usize = 5;

/// Tenants with event channels (`tenant{t}:{collection}:events`).
const TENANTS: usize = 200;

/// Chat rooms with a channel each.
const CHAT_ROOMS: usize = 1_000;

/// Orders with a status channel each.
const ORDERS: usize = 1_000;

/// The 40 model names, `llama-1` to `t5-5`.
fn model_names() -> Vec<String> {
    MODEL_FAMILIES
        .iter()
        .flat_map(|family| (1..=MODEL_VERSIONS).map(move |v| format!("{family}-{v}")))
        .collect()
}

/// Draws ranks `0..n` with probability proportional to `1 / (rank + 1)^s`,
/// by binary search in the cumulative distribution.
pub(crate) struct Zipf {
    /// `cdf[k]`: the probability of drawing a rank at most `k`.
    cdf: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n` ranks with exponent `s`.
    pub(crate) fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                total += (k as f64).powf(-s);
                total
            })
            .collect();
        for c in &mut cdf {
            *c /= total;
        }
        Self { cdf }
    }

    /// One rank.
    pub(crate) fn sample(&self, rng: &mut XorShift) -> usize {
        let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1)
    }
}

/// The 10,000 channel names in popularity order (index 0 is the hottest):
/// the global channels first, then the rest in a seeded shuffle of
/// `ai:conversations:{id}`, `ai:models:{model}:status`,
/// `ml:models:{model}:status`, `ml:models:{model}:metrics`,
/// `ai:{model}:predictions`, `tenant{t}:{collection}:events`,
/// `chat:rooms:{id}` and `billing:orders:{id}:status`.
pub(crate) fn seed_channels() -> Vec<Bytes> {
    let mut rng = XorShift(0x5EED_C4A7_0000_0001);
    let models = model_names();
    let mut rest: Vec<String> = Vec::with_capacity(CHANNELS);
    for m in &models {
        rest.push(format!("ai:models:{m}:status"));
        rest.push(format!("ml:models:{m}:status"));
        rest.push(format!("ml:models:{m}:metrics"));
        rest.push(format!("ai:{m}:predictions"));
    }
    for t in 0..TENANTS {
        for c in COLLECTIONS {
            rest.push(format!("tenant{t}:{c}:events"));
        }
    }
    rest.extend((0..CHAT_ROOMS).map(|r| format!("chat:rooms:{}", 10_000 + r * 7)));
    rest.extend((0..ORDERS).map(|o| format!("billing:orders:{}:status", 500_000 + o * 13)));
    let mut ids = HashSet::new();
    while rest.len() < CHANNELS - GLOBAL_CHANNELS.len() {
        let id = 100_000 + rng.below(900_000);
        if ids.insert(id) {
            rest.push(format!("ai:conversations:{id}"));
        }
    }
    for i in (1..rest.len()).rev() {
        rest.swap(i, rng.below(i + 1));
    }
    let names: Vec<Bytes> = GLOBAL_CHANNELS
        .iter()
        .map(|s| s.to_string())
        .chain(rest)
        .map(Bytes::from)
        .collect();
    assert_eq!(names.len(), CHANNELS);
    names
}

/// The ~200 patterns: a dozen broad ones (`ai:conversations:*`,
/// `ml:models:*:status`, `ai:*:predictions`, ...), one per model
/// (`ml:models:{model}:*`, `ai:models:{model}:*`), per tenant
/// (`tenant{t}:*`, half of them tenants with no channel, as idle tenants
/// are), and conversation-id ranges (`ai:conversations:12*`).
pub(crate) fn seed_patterns() -> Vec<Bytes> {
    let mut rng = XorShift(0x5EED_9A77_0000_0002);
    let mut patterns: Vec<String> = [
        "ai:conversations:*",
        "ml:models:*:status",
        "ai:models:*:status",
        "ai:*:predictions",
        "conversations:*",
        "chat:rooms:*",
        "billing:orders:*:status",
        "billing:*",
        "*:alerts",
        "ai:predictions:*",
        "tenant1?:*:events",
        "ml:models:*:metrics",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for m in model_names() {
        patterns.push(format!("ml:models:{m}:*"));
        patterns.push(format!("ai:models:{m}:*"));
    }
    let mut seen: HashSet<String> = patterns.iter().cloned().collect();
    while patterns.len() < PATTERNS - 30 {
        let p = format!("tenant{}:*", rng.below(2 * TENANTS));
        if seen.insert(p.clone()) {
            patterns.push(p);
        }
    }
    while patterns.len() < PATTERNS {
        let p = format!("ai:conversations:{}*", 10 + rng.below(90));
        if seen.insert(p.clone()) {
            patterns.push(p);
        }
    }
    patterns.into_iter().map(Bytes::from).collect()
}

/// What one subscriber holds: indices into the plan's channels and
/// patterns.
pub(crate) struct SubscriberPlan {
    /// One to three distinct channels.
    pub(crate) channels: Vec<u32>,
    /// At most one pattern.
    pub(crate) pattern: Option<u32>,
}

/// Everything both contenders are built from.
pub(crate) struct Plan {
    /// Channel names, hottest first.
    pub(crate) channels: Vec<Bytes>,
    /// Pattern strings.
    pub(crate) patterns: Vec<Bytes>,
    /// Each subscriber's subscriptions.
    pub(crate) subscribers: Vec<SubscriberPlan>,
    /// For each publisher, the channel of each publish in a burst.
    pub(crate) publishes: Vec<Vec<u32>>,
    /// Per publish of `publishes`, how many deliveries it makes: the
    /// subscribers holding its channel plus those holding a matching
    /// pattern. Both contenders' `publish` must return exactly this.
    pub(crate) receivers: Vec<Vec<u64>>,
    /// How many channels match at least one held pattern.
    pub(crate) channels_matched: usize,
}

impl Plan {
    /// A plan for `subscribers` subscribers and `publishers` publishers of
    /// `burst` publishes each, all drawn from seeded generators.
    pub(crate) fn new(subscribers: usize, publishers: usize, burst: usize) -> Self {
        let channels = seed_channels();
        let patterns = seed_patterns();
        let zipf = Zipf::new(CHANNELS, ZIPF_EXPONENT);
        let mut rng = XorShift(0x5EED_5B5C_0000_0003 ^ subscribers as u64);
        let subscribers: Vec<SubscriberPlan> = (0..subscribers)
            .map(|_| {
                let want = 1 + rng.below(3);
                let mut held: Vec<u32> = Vec::with_capacity(want);
                while held.len() < want {
                    let c = zipf.sample(&mut rng) as u32;
                    if !held.contains(&c) {
                        held.push(c);
                    }
                }
                let pattern = (rng.below(PATTERN_SUBSCRIBER_ONE_IN) == 0)
                    .then(|| rng.below(patterns.len()) as u32);
                SubscriberPlan {
                    channels: held,
                    pattern,
                }
            })
            .collect();

        let mut exact = vec![0u64; CHANNELS];
        let mut by_pattern = vec![0u64; patterns.len()];
        for s in &subscribers {
            for &c in &s.channels {
                exact[c as usize] += 1;
            }
            if let Some(p) = s.pattern {
                by_pattern[p as usize] += 1;
            }
        }
        let mut channels_matched = 0;
        let per_channel: Vec<u64> = channels
            .iter()
            .zip(&exact)
            .map(|(name, &n)| {
                let matched: u64 = patterns
                    .iter()
                    .zip(&by_pattern)
                    .filter(|(p, held)| **held > 0 && tannoy::glob_match(p, name))
                    .map(|(_, held)| *held)
                    .sum();
                channels_matched += usize::from(matched > 0);
                n + matched
            })
            .collect();

        let publishes: Vec<Vec<u32>> = (0..publishers)
            .map(|p| {
                let mut rng = XorShift(0x5EED_0B5B_0000_0004 + p as u64);
                (0..burst).map(|_| zipf.sample(&mut rng) as u32).collect()
            })
            .collect();
        let receivers = publishes
            .iter()
            .map(|seq| seq.iter().map(|&c| per_channel[c as usize]).collect())
            .collect();
        Self {
            channels,
            patterns,
            subscribers,
            publishes,
            receivers,
            channels_matched,
        }
    }

    /// Deliveries one burst makes, summed over publishers.
    pub(crate) fn deliveries_per_burst(&self) -> u64 {
        self.receivers.iter().flatten().sum()
    }

    /// Publishes in one burst, summed over publishers.
    pub(crate) fn publishes_per_burst(&self) -> u64 {
        self.publishes.iter().map(|p| p.len() as u64).sum()
    }

    /// How many subscribers hold a pattern.
    pub(crate) fn pattern_subscribers(&self) -> usize {
        self.subscribers
            .iter()
            .filter(|s| s.pattern.is_some())
            .count()
    }
}

/// Publisher `publisher`'s payloads for a burst of `burst` publishes, made
/// beforehand so publishing only clones one (a reference-count increment,
/// no allocation). Each is its own allocation, as a real message is, so
/// receivers of different messages do not contend on one reference count.
/// Byte 0 is the publisher, bytes 1..9 the publish's index (little
/// endian), the rest filler.
pub(crate) fn payloads(publisher: u8, burst: usize) -> Vec<Bytes> {
    (0..burst as u64)
        .map(|i| {
            let mut buf = Vec::with_capacity(PAYLOAD_BYTES);
            buf.push(publisher);
            buf.extend_from_slice(&i.to_le_bytes());
            buf.resize(PAYLOAD_BYTES, b'.');
            let payload = Bytes::from(buf);
            // The first clone turns a vector-backed `Bytes` into a shared
            // one (one allocation); do it now so no publish does.
            drop(payload.clone());
            payload
        })
        .collect()
}

/// Publisher and index carried by a payload of [`payloads`].
pub(crate) fn decode(payload: &[u8]) -> (usize, u64) {
    let mut index = [0u8; 8];
    index.copy_from_slice(&payload[1..9]);
    (usize::from(payload[0]), u64::from_le_bytes(index))
}
