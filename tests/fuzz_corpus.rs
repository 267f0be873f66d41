//! The fuzz corpus as ordinary tests: every file under `fuzz/corpus/<target>/`
//! and `fuzz/artifacts/<target>/` goes through the very checks the fuzz
//! target runs (`support/fuzz_checks.rs`), so CI replays what fuzzing found
//! without a nightly toolchain. A saved crash keeps failing here until the
//! bug it shows is fixed.
//!
//! The hand-written seeds (the 114 verified glob rows, and operation
//! sequences covering each corner of the broker's documented behaviour) are
//! tests too; `TANNOY_WRITE_FUZZ_SEEDS=1 cargo test --test fuzz_corpus`
//! also writes them into `fuzz/corpus/` as starting points for the fuzzer.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use tannoy::OverflowPolicy;
use tannoy_test_support::corpus_files;

#[path = "support/fuzz_checks.rs"]
mod fuzz_checks;

/// The verified glob rows, shared with the matcher's tests.
mod glob_table {
    #![allow(
        unreachable_pub,
        reason = "the shared table is written for src/pattern too, so its items are `pub`"
    )]
    include!("support/glob_table.rs");
}

use fuzz_checks::{Case, Ctor, Name, Op, RecvMode};

/// A fuzz target's check: panics on an input that shows a bug.
type Check = fn(&[u8]);

/// Each fuzz target, with the check its inputs go through.
const TARGETS: [(&str, Check); 2] = [
    ("pattern_match", fuzz_checks::check_pattern_match),
    ("broker_ops", fuzz_checks::check_broker_ops),
];

/// `fuzz/` in this checkout.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The message of a caught panic.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        "(non-string panic payload)".to_owned()
    }
}

/// Runs `check` on each file under `dir`; returns how many ran and the
/// failures, by file.
fn replay_dir(dir: &Path, check: Check) -> (usize, Vec<String>) {
    let files = corpus_files(dir);
    let mut failures = Vec::new();
    for file in &files {
        let data = fs::read(file).expect("readable corpus file");
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| check(&data))) {
            failures.push(format!(
                "{}: {}",
                file.display(),
                panic_message(payload.as_ref())
            ));
        }
    }
    (files.len(), failures)
}

/// Fuzz targets of other workspace members, whose own tests replay their
/// corpus (`request_decoder`: `server/tests/fuzz_corpus.rs`).
const REPLAYED_ELSEWHERE: &[&str] = &["request_decoder"];

/// Every corpus input and every saved crash passes its target's checks.
/// Each directory under `fuzz/corpus/` and `fuzz/artifacts/` must belong to
/// a known target, so a new target cannot go unreplayed.
#[test]
fn fuzz_corpus_and_artifacts_pass_their_checks() {
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut replayed = 0;
    for kind in ["corpus", "artifacts"] {
        let root = fuzz_dir().join(kind);
        for dir in fs::read_dir(&root).into_iter().flatten() {
            let dir = dir.expect("readable directory entry").path();
            if !dir.is_dir() {
                continue;
            }
            let name = dir.file_name().unwrap_or_default().to_string_lossy();
            if REPLAYED_ELSEWHERE.contains(&&*name) {
                continue;
            }
            let Some((_, check)) = TARGETS.iter().find(|(target, _)| *target == name) else {
                failures.push(format!("{}: no fuzz target of that name", dir.display()));
                continue;
            };
            let (count, failed) = replay_dir(&dir, *check);
            replayed += count;
            failures.extend(failed);
        }
    }
    eprintln!(
        "replayed {replayed} fuzz inputs in {:.2?}",
        started.elapsed()
    );
    assert!(
        replayed > 0,
        "no corpus found under {}",
        fuzz_dir().display()
    );
    assert!(
        failures.is_empty(),
        "{} fuzz input(s) fail:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Writes `seeds` as `fuzz/corpus/<target>/seed-<name>` when
/// `TANNOY_WRITE_FUZZ_SEEDS` is set.
fn maybe_write_seeds(target: &str, seeds: &[(String, Vec<u8>)]) {
    if std::env::var_os("TANNOY_WRITE_FUZZ_SEEDS").is_none() {
        return;
    }
    let dir = fuzz_dir().join("corpus").join(target);
    fs::create_dir_all(&dir).expect("corpus directory");
    for (name, data) in seeds {
        fs::write(dir.join(format!("seed-{name}")), data).expect("seed written");
    }
}

/// The `pattern_match` seeds: one input per verified glob row.
fn pattern_seeds() -> Vec<(String, Vec<u8>)> {
    glob_table::redis_glob_table()
        .into_iter()
        .map(|row| {
            let data = fuzz_checks::encode_pattern_input(&row.pattern, &row.channel);
            (format!("glob-row-{:03}", row.row), data)
        })
        .collect()
}

/// Every verified glob row, encoded as a `pattern_match` input, decodes back
/// to its pair and passes the target's checks.
#[test]
fn glob_rows_pass_the_pattern_match_checks() {
    let rows = glob_table::redis_glob_table();
    let seeds = pattern_seeds();
    assert_eq!(seeds.len(), rows.len());
    for (row, (_, data)) in rows.iter().zip(&seeds) {
        assert_eq!(
            fuzz_checks::split_pattern_input(data),
            (&row.pattern[..], &row.channel[..]),
            "row {}",
            row.row
        );
        assert_eq!(
            tannoy::glob_match(&row.pattern, &row.channel),
            row.matches,
            "row {}",
            row.row
        );
        fuzz_checks::check_pattern_match(data);
    }
    maybe_write_seeds("pattern_match", &seeds);
}

/// A name from bytes.
fn n(bytes: &[u8]) -> Name {
    Name(bytes.to_vec())
}

/// Names from byte strings.
fn ns(names: &[&[u8]]) -> Vec<Name> {
    names.iter().map(|b| n(b)).collect()
}

/// A case on a broker with these settings.
fn case(shards: usize, capacity: usize, policy: OverflowPolicy, ops: Vec<Op>) -> Case {
    Case {
        shards,
        capacity,
        policy,
        ops,
    }
}

/// The hand-written `broker_ops` seeds, each a documented behaviour.
fn broker_cases() -> Vec<(&'static str, Case)> {
    use OverflowPolicy::{Disconnect, DropNewest, DropOldest};
    vec![
        (
            "exact-then-patterns",
            case(
                64,
                4,
                DropOldest,
                vec![
                    Op::Subscribe(0, ns(&[b"ab", b"ab", b"a"])),
                    Op::PSubscribe(0, ns(&[b"a*", b"*", b"?b", b"[ab]"])),
                    Op::PSubscribe(1, ns(&[b"a*"])),
                    Op::Publish(n(b"ab"), 1),
                    Op::Recv(0, RecvMode::Try, 8),
                    Op::Recv(1, RecvMode::Poll, 2),
                    Op::Numpat,
                    Op::Inspect(0),
                ],
            ),
        ),
        (
            "drop-oldest-seq-gaps",
            case(
                1,
                1,
                DropOldest,
                vec![
                    Op::Subscribe(0, ns(&[b"a"])),
                    Op::PSubscribe(0, ns(&[b"*", b"a*"])),
                    Op::Publish(n(b"a"), 3),
                    Op::Inspect(0),
                    Op::Recv(0, RecvMode::Timeout, 2),
                    Op::Publish(n(b"b"), 2),
                    Op::Recv(0, RecvMode::Deadline, 3),
                ],
            ),
        ),
        (
            "drop-newest",
            case(
                2,
                2,
                DropNewest,
                vec![
                    Op::Subscribe(0, ns(&[b"a"])),
                    Op::Recreate(1, Ctor::Builder(3, DropOldest)),
                    Op::Subscribe(1, ns(&[b"a"])),
                    Op::Publish(n(b"a"), 5),
                    Op::Inspect(0),
                    Op::Inspect(1),
                    Op::Recv(0, RecvMode::TryIter, 8),
                    Op::Recv(1, RecvMode::TryIter, 2),
                ],
            ),
        ),
        (
            "disconnect-counts-whole-publish",
            case(
                4,
                1,
                Disconnect,
                vec![
                    Op::Subscribe(0, ns(&[b"ab"])),
                    Op::PSubscribe(0, ns(&[b"a*", b"*b", b"??"])),
                    Op::SSubscribe(0, ns(&[b"ab"])),
                    Op::Publish(n(b"ab"), 1),
                    Op::Inspect(0),
                    Op::Channels(None),
                    Op::ShardChannels(None),
                    Op::Numpat,
                    Op::Subscribe(0, ns(&[b"b"])),
                    Op::PSubscribe(0, ns(&[b"b*"])),
                    Op::Publish(n(b"ab"), 1),
                    Op::Recv(0, RecvMode::Poll, 3),
                    Op::Recv(0, RecvMode::Try, 1),
                ],
            ),
        ),
        (
            "disconnect-by-spublish",
            case(
                64,
                2,
                DropOldest,
                vec![
                    Op::Recreate(2, Ctor::With(Disconnect)),
                    Op::SSubscribe(2, ns(&[b"s"])),
                    Op::Subscribe(2, ns(&[b"s"])),
                    Op::SPublish(n(b"s")),
                    Op::SPublish(n(b"s")),
                    Op::SPublish(n(b"s")),
                    Op::Inspect(2),
                    Op::ShardNumsub(ns(&[b"s", b"s", b""])),
                    Op::Numsub(ns(&[b"s"])),
                    Op::Recv(2, RecvMode::Timeout, 4),
                ],
            ),
        ),
        (
            "close-then-everything",
            case(
                2,
                3,
                DropOldest,
                vec![
                    Op::Subscribe(0, ns(&[b"c"])),
                    Op::Publish(n(b"c"), 2),
                    Op::Close,
                    Op::Publish(n(b"c"), 1),
                    Op::Subscribe(1, ns(&[b"c", b"d"])),
                    Op::Numsub(ns(&[b"c", b"d"])),
                    Op::Recreate(3, Ctor::Default),
                    Op::Recv(3, RecvMode::Poll, 1),
                    Op::Recv(0, RecvMode::Deadline, 4),
                    Op::Inspect(0),
                    Op::Close,
                ],
            ),
        ),
        (
            "last-handle-closes",
            case(
                1,
                2,
                DropOldest,
                vec![
                    Op::CloneHandle,
                    Op::CloneHandle,
                    Op::Subscribe(0, ns(&[b"x"])),
                    Op::DropHandle(0),
                    Op::Publish(n(b"x"), 1),
                    Op::DropHandle(1),
                    Op::Inspect(0),
                    Op::DropHandle(7),
                    Op::Subscribe(0, ns(&[b"y"])),
                    Op::Unsubscribe(0, vec![]),
                    Op::Recv(0, RecvMode::TryIter, 3),
                    Op::Recv(0, RecvMode::Try, 1),
                ],
            ),
        ),
        (
            "introspection-corners",
            case(
                64,
                4,
                DropOldest,
                vec![
                    Op::Subscribe(0, ns(&[b"", b"*", b"\x80", b"\xff"])),
                    Op::Subscribe(1, ns(&[b"", b"a"])),
                    Op::SSubscribe(2, ns(&[b"", b"*"])),
                    Op::PSubscribe(3, ns(&[b"*", b"a*"])),
                    Op::PSubscribe(2, ns(&[b"*"])),
                    Op::Channels(None),
                    Op::Channels(Some(n(b"*"))),
                    Op::Channels(Some(n(b""))),
                    Op::Channels(Some(n(b"[\x00-\xff]"))),
                    Op::ShardChannels(Some(n(b"\\*"))),
                    Op::Numsub(ns(&[b"", b"", b"a", b"zz"])),
                    Op::ShardNumsub(ns(&[b"*", b""])),
                    Op::Numpat,
                    Op::Publish(n(b""), 1),
                    Op::Publish(n(b"*"), 1),
                    Op::Drop(0),
                    Op::Channels(None),
                ],
            ),
        ),
        (
            "unsubscribe-forms",
            case(
                2,
                4,
                DropOldest,
                vec![
                    Op::Subscribe(0, ns(&[b"a", b"b", b"c"])),
                    Op::PSubscribe(0, ns(&[b"f*", b"fo*", b"a"])),
                    Op::SSubscribe(0, ns(&[b"a", b"s"])),
                    Op::Unsubscribe(0, ns(&[b"a", b"nope"])),
                    Op::PUnsubscribe(0, ns(&[b"f*"])),
                    Op::SUnsubscribe(0, ns(&[b"s"])),
                    Op::Inspect(0),
                    Op::Unsubscribe(0, vec![]),
                    Op::PUnsubscribe(0, vec![]),
                    Op::SUnsubscribe(0, vec![]),
                    Op::Inspect(0),
                    Op::Publish(n(b"fo"), 1),
                    Op::SPublish(n(b"a")),
                    Op::Recv(0, RecvMode::Try, 1),
                ],
            ),
        ),
        (
            "star-run-limit",
            case(
                4,
                4,
                DropOldest,
                vec![
                    Op::PSubscribe(0, vec![n(&b"*?".repeat(1000)), n(&b"*?".repeat(1001))]),
                    Op::PSubscribe(1, vec![n(&b"a*".repeat(1001))]),
                    Op::Publish(n(&b"a".repeat(1000)), 1),
                    Op::Publish(n(&b"a".repeat(1001)), 1),
                    Op::Numpat,
                    Op::Recv(0, RecvMode::Try, 3),
                    Op::Recv(1, RecvMode::Try, 3),
                ],
            ),
        ),
        (
            "index-strategies",
            case(
                64,
                4,
                DropOldest,
                vec![
                    Op::PSubscribe(0, ns(&[b"ab", b"ab*", b"*ab", b"t:*:ev"])),
                    Op::PSubscribe(1, ns(&[b"*ab*", b"?*", b"[]", b"[a-c]*ab"])),
                    Op::PSubscribe(2, ns(&[b"??ab*", b"ab*c?", b"a\\*b", b"[^]"])),
                    Op::PSubscribe(3, ns(&[b"*:ev", b"t:*", b"a*b*c", b"ab"])),
                    Op::Publish(n(b"ab"), 1),
                    Op::Publish(n(b"t:1:ev"), 1),
                    Op::Publish(n(b"xxab"), 1),
                    Op::Publish(n(b"a*b"), 1),
                    Op::Publish(n(b"abxcd"), 1),
                    Op::Recv(0, RecvMode::Try, 8),
                    Op::Recv(1, RecvMode::Try, 8),
                    Op::Recv(2, RecvMode::Try, 8),
                    Op::Recv(3, RecvMode::Try, 8),
                    Op::PUnsubscribe(1, ns(&[b"*ab*"])),
                    Op::Publish(n(b"xxab"), 2),
                    Op::Recv(1, RecvMode::TryIter, 8),
                ],
            ),
        ),
        (
            "raw-names",
            case(
                1,
                2,
                DropNewest,
                vec![
                    Op::Subscribe(0, ns(&[b"\x00\x01\x02", b"caf\xc3\xa9"])),
                    Op::PSubscribe(1, ns(&[b"caf?", b"caf??", b"caf[\xc3\xa9]?"])),
                    Op::Publish(n(b"caf\xc3\xa9"), 1),
                    Op::Publish(n(b"\x00\x01\x02"), 1),
                    Op::Recv(0, RecvMode::Try, 4),
                    Op::Recv(1, RecvMode::Try, 4),
                ],
            ),
        ),
    ]
}

/// Every hand-written operation sequence agrees with the model, and its
/// encoding decodes back to it.
#[test]
fn broker_seed_cases_agree_with_the_model() {
    let mut seeds = Vec::new();
    for (name, case) in broker_cases() {
        if let Err(err) = fuzz_checks::run_broker_ops(&case) {
            panic!("{name}: {err}");
        }
        let data = fuzz_checks::encode_broker_ops(&case);
        assert_eq!(
            fuzz_checks::decode_broker_ops(&data),
            case,
            "{name}: encoding round trip"
        );
        fuzz_checks::check_broker_ops(&data);
        seeds.push((name.to_owned(), data));
    }
    maybe_write_seeds("broker_ops", &seeds);
}

/// Every byte string decodes to some case, and short prefixes of a seed
/// (truncated operations are ignored) still agree with the model.
#[test]
fn truncated_inputs_decode_and_agree() {
    for (name, case) in broker_cases() {
        let data = fuzz_checks::encode_broker_ops(&case);
        for len in 0..data.len().min(40) {
            if let Err(err) =
                fuzz_checks::run_broker_ops(&fuzz_checks::decode_broker_ops(&data[..len]))
            {
                panic!("{name} truncated to {len} bytes: {err}");
            }
        }
    }
    for data in [&b""[..], b"\xff", b"\x13\xff\xff\xff", b"\x00\x08"] {
        fuzz_checks::check_broker_ops(data);
        fuzz_checks::check_pattern_match(data);
    }
}
