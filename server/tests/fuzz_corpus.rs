//! The request decoder's fuzz corpus as ordinary tests: every file under
//! `fuzz/corpus/request_decoder/` and `fuzz/artifacts/request_decoder/`
//! goes through the check the fuzz target runs
//! (`tannoy_server::check_decoder`: no panic, and the same decoding however
//! the input is split into reads), so CI replays what fuzzing found without
//! a nightly toolchain. A saved crash keeps failing here until it is fixed.

use std::path::{Path, PathBuf};

use tannoy_test_support::corpus_files;

/// `fuzz/<kind>/request_decoder/` in this checkout.
fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(kind)
        .join("request_decoder")
}

/// Every corpus file and saved artifact passes the decoder check.
#[test]
fn corpus_replays() {
    let corpus = corpus_files(&dir("corpus"));
    assert!(
        corpus.len() >= 10,
        "the seed corpus is missing: {:?}",
        dir("corpus")
    );
    for path in corpus.iter().chain(&corpus_files(&dir("artifacts"))) {
        let data = std::fs::read(path).expect("readable corpus file");
        let outcome = std::panic::catch_unwind(|| tannoy_server::check_decoder(&data));
        assert!(
            outcome.is_ok(),
            "{} fails the decoder check",
            path.display()
        );
    }
}

/// The seeds decode to what they were written to show.
#[test]
fn seeds_decode_as_intended() {
    let read = |name: &str| std::fs::read(dir("corpus").join(name)).expect("seed file");
    // The first four bytes of each seed choose the read sizes.
    let decode = |name: &str| tannoy_server::decode_requests(&read(name)[4..]);
    let (requests, error) = decode("multibulk_pipeline");
    assert_eq!(
        requests,
        [
            vec![b"PUBLISH".to_vec(), b"ch".to_vec(), b"hello".to_vec()],
            vec![b"PING".to_vec()]
        ]
    );
    assert_eq!(error, None);
    let (_, error) = decode("bad_count");
    assert_eq!(
        error.as_deref(),
        Some(&b"ERR Protocol error: invalid multibulk length"[..])
    );
    let (_, error) = decode("expected_dollar");
    assert_eq!(
        error.as_deref(),
        Some(&b"ERR Protocol error: expected '$', got '\xff'"[..])
    );
    let (requests, error) = decode("nul_before_line_end");
    assert!(
        requests.is_empty() && error.is_none(),
        "a NUL hides the line end"
    );
    let (_, error) = decode("unbalanced");
    assert_eq!(
        error.as_deref(),
        Some(&b"ERR Protocol error: unbalanced quotes in request"[..])
    );
}
