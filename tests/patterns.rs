//! Pattern matching through the public API: the spec's verified table,
//! differential proptests against the reference matcher, and pathological
//! shapes that must stay correct (their speed is shown by
//! `benches/pattern_index.rs`, not asserted here).

#[allow(
    unreachable_pub,
    reason = "the shared table file is also the library tests' module"
)]
mod glob_table {
    include!("support/glob_table.rs");
}
#[path = "../src/pattern/testgen.rs"]
mod testgen;

use proptest::prelude::*;
use tannoy::{Pattern, glob_match};

/// `Pattern` and `glob_match` both give Redis's answer on every one of the
/// 114 verified rows.
#[test]
fn every_spec_row_matches_redis() {
    let mut wrong = Vec::new();
    for row in glob_table::redis_glob_table() {
        let compiled = Pattern::new(&row.pattern).matches(&row.channel);
        let reference = glob_match(&row.pattern, &row.channel);
        if compiled != row.matches || reference != row.matches {
            wrong.push((row.row, compiled, reference));
        }
    }
    assert!(
        wrong.is_empty(),
        "rows (row, compiled, reference) disagreeing with Redis: {wrong:?}"
    );
}

/// A compiled pattern can be reused for many channels, cloned and shared
/// across threads, and keeps its source bytes.
#[test]
fn compiled_pattern_is_reusable_and_shareable() {
    let pattern = Pattern::new("tenant42:*:events");
    let clone = pattern.clone();
    let handle = std::thread::spawn(move || clone.matches("tenant42:billing:events"));
    assert!(handle.join().unwrap());
    assert!(!pattern.matches("tenant42:billing:event"));
    assert_eq!(pattern.as_bytes(), b"tenant42:*:events");
}

/// `Display`, `FromStr`, `Eq` and `Hash` see a pattern as its bytes: text
/// shows as given and parses back to an equal pattern with the same hash;
/// other bytes show as U+FFFD; patterns matching the same channels but
/// written differently are different.
#[test]
fn pattern_is_its_bytes() {
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};
    let hash = |p: &Pattern| {
        let mut hasher = DefaultHasher::new();
        p.hash(&mut hasher);
        hasher.finish()
    };
    let pattern = Pattern::new("caf\u{e9}:[a-c]*?");
    let parsed: Pattern = pattern.to_string().parse().unwrap();
    assert_eq!(parsed, pattern);
    assert_eq!(hash(&parsed), hash(&pattern));
    assert_eq!(parsed.as_bytes(), pattern.as_bytes());
    assert_eq!(Pattern::new(b"\xff*").to_string(), "\u{fffd}*");
    assert_ne!(Pattern::new("a**"), Pattern::new("a*"));
    assert_ne!(Pattern::new(b"\xff"), Pattern::new("\u{fffd}"));
}

/// Asserts `Pattern` and `glob_match` agree on `pattern` vs `channel`, and
/// that the answer is `want`.
fn check(pattern: &[u8], channel: &[u8], want: bool) {
    assert_eq!(
        glob_match(pattern, channel),
        want,
        "reference, pattern of {} bytes",
        pattern.len()
    );
    assert_eq!(
        Pattern::new(pattern).matches(channel),
        want,
        "compiled, pattern of {} bytes",
        pattern.len()
    );
}

/// `*` then a 1,000-byte literal, against a 20,000-byte channel: found only
/// at the very end, or nowhere.
#[test]
fn star_then_long_literal() {
    let literal: Vec<u8> = (0..1000).map(|i| b"ab"[i % 2]).collect();
    let pattern = [b"*".as_slice(), &literal].concat();
    let middle = [b"*".as_slice(), &literal, b"*"].concat();
    // Runs of 999 `a`s and `b`s: the alternating literal never occurs there.
    let filler: Vec<u8> = (0..19_000).map(|i| b"ab"[(i / 999) % 2]).collect();
    let hit = [filler.as_slice(), &literal].concat();
    check(&pattern, &hit, true);
    check(&middle, &hit, true);
    let mut miss = hit.clone();
    *miss.last_mut().unwrap() = b'c';
    check(&pattern, &miss, false);
    check(&middle, &miss, false);
    let inside = [hit.as_slice(), b"x"].concat();
    check(&pattern, &inside, false);
    check(&middle, &inside, true);
}

/// `*a*a*…*b` (1,000 stars) against 20,000 `a`s, with and without the
/// final `b`: no exponential blow-up, right answer.
#[test]
fn many_single_byte_segments() {
    let pattern = [b"*a".repeat(999), b"*b".to_vec()].concat();
    let mut channel = vec![b'a'; 20_000];
    check(&pattern, &channel, false);
    channel.push(b'b');
    check(&pattern, &channel, true);
}

/// `*?` repeated around the 1,000-run limit (R8) against long channels.
#[test]
fn star_question_runs_near_the_limit() {
    let channel = vec![b'x'; 20_000];
    check(&b"*?".repeat(1000), &channel, true);
    check(&b"*?".repeat(1001), &channel, false);
    check(
        &[b"*?".repeat(1000), b"*".to_vec()].concat(),
        &channel,
        true,
    );
    check(&b"*?".repeat(1000), &channel[..999], false);
}

/// A long middle core mixing literals and `?` (the multi-word shift-and
/// path), against a 20,000-byte channel.
#[test]
fn long_core_with_wildcards() {
    let core: Vec<u8> = (0..1000)
        .map(|i| if i % 10 == 9 { b'?' } else { b'a' })
        .collect();
    let pattern = [b"*".as_slice(), &core, b"*z"].concat();
    let mut channel = b"aaaaaaaaab".repeat(2000); // every tenth byte breaks a run
    channel.push(b'z');
    check(&pattern, &channel, true); // the `?`s line up with the `b`s
    let shifted = [b"a".as_slice(), &channel].concat();
    check(&pattern, &shifted, true);
    // Runs of eight `a`s: the core needs nine in a row somewhere.
    let broken = b"aaaaaaaab".repeat(2200);
    check(&pattern, &[broken.as_slice(), b"z"].concat(), false);
}

/// Classes everywhere, including signed ranges, in a long pattern.
#[test]
fn long_class_patterns() {
    let pattern = [b"*".as_slice(), &b"[a-c][^x]".repeat(300), b"*[\x80-\xff]"].concat();
    let channel = [b"xx".repeat(5000), b"bq".repeat(300), b"\x90".to_vec()].concat();
    check(&pattern, &channel, true);
    let channel = [b"xx".repeat(5000), b"bq".repeat(299), b"x\x90".to_vec()].concat();
    check(&pattern, &channel, false);
}

/// A huge pattern (1 MB) compiles and matches without trouble.
#[test]
fn huge_pattern() {
    let pattern = [b"a".repeat(500_000), b"*".to_vec(), b"b".repeat(500_000)].concat();
    let channel = [b"a".repeat(500_000), b"c".to_vec(), b"b".repeat(500_000)].concat();
    check(&pattern, &channel, true);
    check(&pattern, &channel[1..], false);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// `Pattern::matches` agrees with `glob_match` on patterns and channels
    /// biased to the grammar's corners.
    #[test]
    fn prop_pattern_agrees_with_glob_match(
        pattern in testgen::pattern(),
        channel in testgen::channel(),
    ) {
        prop_assert_eq!(Pattern::new(&pattern).matches(&channel), glob_match(&pattern, &channel));
    }

    /// The same for subscription-shaped patterns and channels.
    #[test]
    fn prop_shaped_pattern_agrees_with_glob_match(
        pattern in testgen::shaped_pattern(),
        channel in testgen::shaped_channel(),
    ) {
        prop_assert_eq!(Pattern::new(&pattern).matches(&channel), glob_match(&pattern, &channel));
    }

    /// The same near the 1,000-star-run limit.
    #[test]
    fn prop_agrees_near_star_run_limit((pattern, channel) in testgen::near_limit()) {
        prop_assert_eq!(Pattern::new(&pattern).matches(&channel), glob_match(&pattern, &channel));
    }

    /// The same for long pathological patterns: many star runs, long and
    /// malformed classes, escapes, long cores with `?`s, and channels built
    /// to match them or miss by one byte.
    #[test]
    fn prop_pathological_agrees_with_glob_match((pattern, channel) in testgen::pathological()) {
        prop_assert_eq!(Pattern::new(&pattern).matches(&channel), glob_match(&pattern, &channel));
    }

    /// Any text pattern shows as itself and parses back to an equal one.
    #[test]
    fn prop_display_round_trips(text in "\\PC{0,24}") {
        let pattern: Pattern = text.parse().unwrap();
        prop_assert_eq!(pattern.to_string(), text.clone());
        prop_assert_eq!(pattern, Pattern::new(text));
    }

    /// Arbitrary bytes: never a panic, always agreement.
    #[test]
    fn prop_arbitrary_bytes_agree(
        pattern in prop::collection::vec(any::<u8>(), 0..24),
        channel in prop::collection::vec(any::<u8>(), 0..24),
    ) {
        prop_assert_eq!(Pattern::new(&pattern).matches(&channel), glob_match(&pattern, &channel));
    }
}
