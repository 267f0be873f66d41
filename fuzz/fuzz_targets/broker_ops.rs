//! Arbitrary sequences of broker operations (subscribe and unsubscribe of
//! every kind, publish, receive, subscriber churn, close, introspection)
//! give the same observable results on tannoy as on a simple model, and
//! never panic. The input format, the model and the checks are in
//! `tests/support/fuzz_checks.rs`, shared with `tests/fuzz_corpus.rs`.

#![no_main]

#[allow(
    dead_code,
    reason = "the pattern_match half of the shared checks is unused here"
)]
#[path = "../../tests/support/fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_checks::check_broker_ops(data);
});
