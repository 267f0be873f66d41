//! Pattern matching, tannoy against a real `redis-server`, at scale: the
//! spec's 114 verified rows, then thousands of random (pattern, channel)
//! pairs through `PUBSUB CHANNELS`/`SHARDCHANNELS` and through
//! `PSUBSCRIBE` + `PUBLISH`, every answer compared by the driver in
//! `support/differential.rs`.
//!
//! The random tests draw from a fresh seed each run, printed to stderr;
//! set `TANNOY_DIFF_SEED` to replay one. Every test skips without a
//! server, unless `TANNOY_REQUIRE_REDIS` is set.

#[path = "support/redis.rs"]
mod redis_support;

#[path = "support/differential.rs"]
mod differential;

/// The 114 verified glob rows, shared with the matcher's unit tests.
mod glob_table {
    #![allow(
        unreachable_pub,
        reason = "the shared table is written for src/pattern too, so its items are `pub`"
    )]
    include!("support/glob_table.rs");
}

use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use differential::{CHANNEL_POOL, Differential, Kind, refs};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use redis_support::{Push, redis_or_skip};

/// Environment variable that fixes the random tests' seed.
const SEED_ENV: &str = "TANNOY_DIFF_SEED";

/// Writes a line to the real stderr, past the test harness's capture, so
/// seeds and totals show in a normal `cargo test` run.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A value source seeded from [`SEED_ENV`] or the clock; reports the seed
/// under `test`'s name.
fn seeded(test: &str) -> TestRunner {
    let seed = match std::env::var(SEED_ENV) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_ENV}={text:?} is not a u64")),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    };
    report(&format!(
        "{test}: seed {seed} (replay with {SEED_ENV}={seed})"
    ));
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

/// `count` values drawn from `strategy`.
fn draw<S: Strategy>(runner: &mut TestRunner, strategy: S, count: usize) -> Vec<S::Value> {
    (0..count)
        .map(|_| {
            strategy
                .new_tree(runner)
                .expect("generate a value")
                .current()
        })
        .collect()
}

/// Distinct channel names: the whole pool plus `random` generated ones,
/// over the grammar's alphabet and over the shaped patterns' alphabet.
fn channel_set(runner: &mut TestRunner, random: usize) -> Vec<Vec<u8>> {
    let mut set: BTreeSet<Vec<u8>> = CHANNEL_POOL.iter().map(|c| c.to_vec()).collect();
    set.extend(draw(runner, differential::random_channel(), random / 2));
    set.extend(draw(runner, differential::shaped_channel(), random / 2));
    set.into_iter().collect()
}

/// Patterns for the random tests: mostly built from the grammar or shaped
/// like real subscriptions, some from the pattern pool, some near the
/// 1000-star-run limit.
fn patterns() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => differential::grammar_pattern(),
        4 => differential::shaped_pattern(),
        3 => differential::pattern(),
        1 => near_limit().prop_map(|(pattern, _)| pattern),
    ]
}

/// A pattern with close to 1000 star runs, and a channel long enough to
/// expand them all (rule R8 of the spec).
fn near_limit() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (
        995usize..=1005,
        prop::sample::select(vec![&b"*?"[..], b"*a", b"a*", b"?*", b"*[ab]"]),
        prop::sample::select(vec![&b""[..], b"*", b"b", b"*b"]),
        990usize..=1010,
        prop::sample::select(vec![&b""[..], b"b"]),
    )
        .prop_map(|(runs, unit, end, len, channel_end)| {
            let pattern = [unit.repeat(runs), end.to_vec()].concat();
            let channel = [vec![b'a'; len], channel_end.to_vec()].concat();
            (pattern, channel)
        })
}

/// Every verified row of the spec's §2.5 gives Redis's answer on both
/// sides: through `PUBSUB CHANNELS <pattern>` and `SHARDCHANNELS`, and
/// through `PSUBSCRIBE` + `PUBLISH` (receiver count and the `pmessage`).
#[test]
fn glob_table_rows_agree_through_channels_and_psubscribe() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut d = Differential::new(&server, 2);
    let (holder, watcher) = (0, 1);
    let mut wrong = Vec::new();
    let rows = glob_table::redis_glob_table();
    for row in &rows {
        let (pattern, channel) = (row.pattern.as_slice(), row.channel.as_slice());
        d.subscribe(holder, Kind::Channel, &[channel]);
        d.subscribe(holder, Kind::Shard, &[channel]);
        let listed = d.channels(Some(pattern)) == [channel];
        let shard_listed = d.shard_channels(Some(pattern)) == [channel];
        d.subscribe(watcher, Kind::Pattern, &[pattern]);
        let receivers = d.publish(channel, b"p");
        let delivered = d.deliveries()[watcher].clone();
        let by_publish = delivered == [Push::pmessage(pattern, channel, b"p")];
        let published = if row.matches {
            by_publish && receivers == 2
        } else {
            delivered.is_empty() && receivers == 1
        };
        if listed != row.matches || shard_listed != row.matches || !published {
            wrong.push(row.row);
        }
        d.unsubscribe(holder, Kind::Channel, &[]);
        d.unsubscribe(holder, Kind::Shard, &[]);
        d.unsubscribe(watcher, Kind::Pattern, &[]);
    }
    d.finish();
    assert_eq!(rows.len(), 114);
    assert!(
        wrong.is_empty(),
        "rows where both sides agree with each other but not with the table: {wrong:?}"
    );
}

/// Thousands of random patterns, asked through `PUBSUB CHANNELS` and
/// `SHARDCHANNELS` over a few hundred active channels, list the same
/// channels on both sides.
#[test]
fn random_patterns_list_the_same_channels() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    const PATTERNS: usize = 8000;
    let mut runner = seeded("random_patterns_list_the_same_channels");
    let started = Instant::now();
    let channels = channel_set(&mut runner, 300);
    let mut d = Differential::new(&server, 1);
    for chunk in channels.chunks(64) {
        d.subscribe(0, Kind::Channel, &refs(chunk));
        d.subscribe(0, Kind::Shard, &refs(chunk));
    }
    let mut matched_patterns = 0;
    let mut matches = 0;
    let patterns = draw(&mut runner, patterns(), PATTERNS);
    for (i, pattern) in patterns.iter().enumerate() {
        let listed = d.channels(Some(pattern));
        if i % 4 == 0 {
            d.shard_channels(Some(pattern));
        }
        matched_patterns += usize::from(!listed.is_empty());
        matches += listed.len();
    }
    d.finish();
    let pairs = PATTERNS * channels.len() + PATTERNS.div_ceil(4) * channels.len();
    report(&format!(
        "random_patterns_list_the_same_channels: {pairs} (pattern, channel) pairs checked \
         ({PATTERNS} patterns over {} channels, plus SHARDCHANNELS for every 4th); \
         {matched_patterns} patterns matched something, {matches} matches; {:.1?}",
        channels.len(),
        started.elapsed()
    ));
    // A guard on the generator, not on tannoy: the check means little if
    // hardly any pattern matches.
    assert!(
        matched_patterns > PATTERNS / 5,
        "only {matched_patterns} of {PATTERNS} patterns matched anything"
    );
}

/// Random patterns held by subscribers, then publishes on every channel:
/// receiver counts and every `pmessage` agree. Each channel is published
/// twice in a row, then again after some patterns were dropped, so that
/// results tannoy caches for hot channels are both used and invalidated.
#[test]
fn random_patterns_deliver_the_same_pmessages() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    const ROUNDS: usize = 8;
    const PER_WATCHER: usize = 40;
    const WATCHERS: usize = 3;
    let mut runner = seeded("random_patterns_deliver_the_same_pmessages");
    let started = Instant::now();
    let channels = channel_set(&mut runner, 160);
    let mut d = Differential::new(&server, WATCHERS);
    let mut pairs = 0;
    let mut pmessages = 0;
    for _ in 0..ROUNDS {
        let mut held = Vec::new();
        for watcher in 0..WATCHERS {
            let patterns = draw(&mut runner, patterns(), PER_WATCHER);
            d.subscribe(watcher, Kind::Pattern, &refs(&patterns));
            held.push(patterns);
        }
        let distinct = |held: &[Vec<Vec<u8>>]| held.iter().flatten().collect::<BTreeSet<_>>().len();
        assert_eq!(d.numpat(), distinct(&held) as i64);
        for channel in &channels {
            d.publish_unique(channel, b"");
            d.publish_unique(channel, b"");
        }
        pairs += 2 * distinct(&held) * channels.len();
        // Drop every other pattern of the first watcher, by name.
        let dropped: Vec<Vec<u8>> = held[0].iter().step_by(2).cloned().collect();
        d.unsubscribe(0, Kind::Pattern, &refs(&dropped));
        held[0].retain(|p| !dropped.contains(p));
        for channel in &channels {
            d.publish_unique(channel, b"");
        }
        pairs += distinct(&held) * channels.len();
        pmessages += d.deliveries().iter().map(Vec::len).sum::<usize>();
        for watcher in 0..WATCHERS {
            d.unsubscribe(watcher, Kind::Pattern, &[]);
        }
    }
    d.finish();
    report(&format!(
        "random_patterns_deliver_the_same_pmessages: {pairs} (pattern, channel) pairs \
         through PSUBSCRIBE + PUBLISH, {pmessages} pmessages compared; {:.1?}",
        started.elapsed()
    ));
    assert!(pmessages > 0, "no random pattern matched any channel");
}

/// Patterns with close to 1000 star runs, on both sides of Redis's
/// nesting limit, against channels long enough to reach it.
#[test]
fn patterns_near_the_star_run_limit_agree() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut runner = seeded("patterns_near_the_star_run_limit_agree");
    let cases = draw(&mut runner, near_limit(), 40);
    let mut d = Differential::new(&server, 2);
    let mut matched = 0;
    for (pattern, channel) in &cases {
        d.subscribe(0, Kind::Channel, &[channel]);
        let listed = d.channels(Some(pattern));
        d.subscribe(1, Kind::Pattern, &[pattern]);
        d.publish_unique(channel, b"");
        d.deliveries();
        matched += usize::from(!listed.is_empty());
        d.unsubscribe(0, Kind::Channel, &[]);
        d.unsubscribe(1, Kind::Pattern, &[]);
    }
    d.finish();
    report(&format!(
        "patterns_near_the_star_run_limit_agree: {} long patterns, {matched} matched",
        cases.len()
    ));
}

/// Answers do not change at the edges of what tannoy caches for hot
/// channels: around 1024 patterns matching one channel, and channel names
/// around 256 bytes, each published several times in a row, with the
/// pattern set shrinking by one in between.
#[test]
fn hot_channels_agree_at_the_edges_of_the_match_cache() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut d = Differential::new(&server, 2);
    // 1026 distinct patterns, all matching `hot`.
    let many: Vec<Vec<u8>> = (0..1026)
        .map(|i| {
            let stars = "*".repeat(1 + i / 3);
            match i % 3 {
                0 => format!("h{stars}t"),
                1 => format!("{stars}ot"),
                _ => format!("ho{stars}"),
            }
            .into_bytes()
        })
        .collect();
    let distinct: BTreeSet<&Vec<u8>> = many.iter().collect();
    assert_eq!(distinct.len(), many.len());
    d.subscribe(0, Kind::Channel, &[b"hot"]);
    d.subscribe(1, Kind::Pattern, &refs(&many));
    for held in (1022..=1026).rev() {
        for _ in 0..3 {
            assert_eq!(d.publish_unique(b"hot", b""), 1 + held as i64);
        }
        d.deliveries();
        d.unsubscribe(1, Kind::Pattern, &[&many[held - 1]]);
    }
    d.unsubscribe(1, Kind::Pattern, &[]);

    d.subscribe(1, Kind::Pattern, &[b"a*", b"*a", b"a*a", b"?*", b"[a]*"]);
    for len in [254, 255, 256, 257, 258, 300, 1000] {
        let channel = vec![b'a'; len];
        d.subscribe(0, Kind::Channel, &[&channel]);
        for _ in 0..3 {
            assert_eq!(d.publish_unique(&channel, b""), 6);
        }
        d.unsubscribe(1, Kind::Pattern, &[b"a*a"]);
        assert_eq!(d.publish_unique(&channel, b""), 5);
        d.subscribe(1, Kind::Pattern, &[b"a*a"]);
        assert_eq!(d.publish_unique(&channel, b""), 6);
        d.deliveries();
    }
    d.finish();
}
