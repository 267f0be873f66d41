//! Matcher- and index-level benchmarks for Redis glob patterns.
//!
//! The pattern index is crate-private, so this bench compiles the crate's
//! `src/pattern` module into itself (`#[path]`) and measures that exact
//! code, rather than widening the public API for benchmarks. Peers sit in
//! the same group: a linear scan with `glob_match` (what Redis does on
//! every `PUBLISH`) and a linear scan of compiled patterns.
//!
//! Run: `cargo bench --bench pattern_index -- --warm-up-time 1 --measurement-time 3`
//!
//! Results of that command (criterion's median; 2-core AMD EPYC VM shared
//! with other builds, load average 4–6, so absolute times are inflated and
//! the ratios are what to read). The repeating channel is
//! `ai:conversations:42:status`; new channels are
//! `ai:conversations:{i}:status`; one pattern of the 10,000 matches them.
//!
//! | patterns | index, repeating | no cache | `glob_match` scan | index, new channel | `glob_match` scan |
//! |---|---|---|---|---|---|
//! | 10 | 38 ns | 99 ns | 149 ns | 144 ns | 161 ns |
//! | 100 | 37 ns | 122 ns | 1.5 µs | 128 ns | 1.3 µs |
//! | 1,000 | 61 ns | 239 ns | 11.7 µs | 229 ns | 20.1 µs |
//! | 10,000 | 30 ns | 262 ns | 230 µs | 373 ns | 139 µs |
//!
//! psubscribe + punsubscribe with 10,000 held: 2.8 µs. Single patterns
//! against 20,000-byte channels, compiled vs `glob_match`: `*` + 1,000-byte
//! literal 27 ns vs 98 µs; `*a` × 999 + `*b` 8.2 µs vs 52 µs; `*?` × 1,000
//! 2.3 µs vs 73 µs; `*` + 1,000-element core of `a`s and `?`s + `*z`
//! 55 µs vs 165 µs.

#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

#[allow(
    unused,
    unreachable_pub,
    reason = "the crate's pattern module, compiled in: its unit tests and much of its API go unused here"
)]
#[path = "../src/pattern/mod.rs"]
mod pattern;

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pattern::index::PatternIndex;
use pattern::{Pattern, glob_match};
use workload::{HOT_CHANNEL, PATTERN_COUNTS as SIZES, fresh_channels, realistic_patterns};

#[path = "support/workload.rs"]
mod workload;

fn index_of(patterns: &[Vec<u8>], cache: bool) -> PatternIndex<u32> {
    let mut index = PatternIndex::new();
    index.set_cache(cache);
    for (i, p) in patterns.iter().enumerate() {
        index.insert(Bytes::copy_from_slice(p), i as u32);
    }
    index
}

/// Looks `channel` up and returns how many patterns matched.
fn count_index(index: &PatternIndex<u32>, channel: &[u8]) -> usize {
    let mut n = 0;
    index.for_each_match(channel, |_, _| n += 1);
    n
}

fn count_linear(patterns: &[Vec<u8>], channel: &[u8]) -> usize {
    patterns.iter().filter(|p| glob_match(p, channel)).count()
}

fn count_compiled(patterns: &[Pattern], channel: &[u8]) -> usize {
    patterns.iter().filter(|p| p.matches(channel)).count()
}

/// Lookups for one channel published repeatedly.
fn lookup_repeating(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup_repeating");
    for n in SIZES {
        let patterns = realistic_patterns(n);
        let compiled: Vec<Pattern> = patterns.iter().map(Pattern::new).collect();
        let cached = index_of(&patterns, true);
        let uncached = index_of(&patterns, false);
        let want = count_linear(&patterns, HOT_CHANNEL);
        assert_eq!(count_index(&cached, HOT_CHANNEL), want);
        assert_eq!(count_index(&uncached, HOT_CHANNEL), want);
        group.bench_with_input(BenchmarkId::new("index", n), &n, |b, _| {
            b.iter(|| count_index(&cached, black_box(HOT_CHANNEL)))
        });
        group.bench_with_input(BenchmarkId::new("index_no_cache", n), &n, |b, _| {
            b.iter(|| count_index(&uncached, black_box(HOT_CHANNEL)))
        });
        group.bench_with_input(BenchmarkId::new("linear_compiled", n), &n, |b, _| {
            b.iter(|| count_compiled(&compiled, black_box(HOT_CHANNEL)))
        });
        group.bench_with_input(BenchmarkId::new("linear_glob_match", n), &n, |b, _| {
            b.iter(|| count_linear(&patterns, black_box(HOT_CHANNEL)))
        });
    }
    group.finish();
}

/// Lookups for a channel never seen before, every time.
fn lookup_new_channel(c: &mut Criterion) {
    let channels = fresh_channels();
    let mut group = c.benchmark_group("lookup_new_channel");
    for n in SIZES {
        let patterns = realistic_patterns(n);
        let compiled: Vec<Pattern> = patterns.iter().map(Pattern::new).collect();
        let index = index_of(&patterns, true);
        for channel in channels.iter().step_by(997) {
            assert_eq!(
                count_index(&index, channel),
                count_linear(&patterns, channel)
            );
        }
        let mut next = 0;
        let mut channel = || {
            next = (next + 1) % channels.len();
            channels[next].as_slice()
        };
        group.bench_with_input(BenchmarkId::new("index", n), &n, |b, _| {
            b.iter(|| count_index(&index, channel()))
        });
        group.bench_with_input(BenchmarkId::new("linear_compiled", n), &n, |b, _| {
            b.iter(|| count_compiled(&compiled, channel()))
        });
        group.bench_with_input(BenchmarkId::new("linear_glob_match", n), &n, |b, _| {
            b.iter(|| count_linear(&patterns, channel()))
        });
    }
    group.finish();
}

/// A psubscribe + punsubscribe pair while 10,000 patterns are held.
fn churn(c: &mut Criterion) {
    let held = realistic_patterns(10_000);
    let pool: Vec<Bytes> = realistic_patterns(12_000)[10_000..]
        .iter()
        .map(|p| Bytes::copy_from_slice(p))
        .collect();
    let mut index = index_of(&held, true);
    let mut next = 0;
    c.bench_function("churn/insert_remove_10000_held", |b| {
        b.iter(|| {
            let pattern = &pool[next % pool.len()];
            next += 1;
            index.insert(pattern.clone(), 0);
            index.remove(pattern)
        })
    });
}

/// Single pathological patterns: compiled matcher beside the reference.
fn pathological(c: &mut Criterion) {
    let literal: Vec<u8> = (0..1000).map(|i| b"ab"[i % 2]).collect();
    let filler: Vec<u8> = (0..19_000).map(|i| b"ab"[(i / 999) % 2]).collect();
    let wildcard_core: Vec<u8> = (0..1000)
        .map(|i| if i % 10 == 9 { b'?' } else { b'a' })
        .collect();
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        (
            "star_literal1000_vs_20k",
            [b"*".as_slice(), &literal].concat(),
            [filler.as_slice(), &literal].concat(),
        ),
        (
            "star_a_x1000_b_vs_20k",
            [b"*a".repeat(999), b"*b".to_vec()].concat(),
            vec![b'a'; 20_000],
        ),
        (
            "star_question_x1000_vs_20k",
            b"*?".repeat(1000),
            vec![b'x'; 20_000],
        ),
        (
            "star_wildcard_core1000_star_z_vs_20k",
            [b"*".as_slice(), &wildcard_core, b"*z"].concat(),
            b"aaaaaaaab".repeat(2223),
        ),
    ];
    let mut group = c.benchmark_group("pathological");
    group.sample_size(10);
    for (name, pattern, channel) in &cases {
        let compiled = Pattern::new(pattern);
        assert_eq!(
            compiled.matches(channel),
            glob_match(pattern, channel),
            "{name}"
        );
        group.bench_function(BenchmarkId::new("compiled", name), |b| {
            b.iter(|| compiled.matches(black_box(channel)))
        });
        group.bench_function(BenchmarkId::new("glob_match", name), |b| {
            b.iter(|| glob_match(black_box(pattern), black_box(channel)))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    lookup_repeating,
    lookup_new_channel,
    churn,
    pathological
);
criterion_main!(benches);
