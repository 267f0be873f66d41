//! The compiled glob matcher (`tannoy::Pattern`) agrees with the reference
//! matcher (`tannoy::glob_match`) on arbitrary (pattern, channel) byte
//! strings, and neither panics. The input format and the checks are in
//! `tests/support/fuzz_checks.rs`, shared with `tests/fuzz_corpus.rs`.

#![no_main]

#[allow(
    dead_code,
    reason = "the broker_ops half of the shared checks is unused here"
)]
#[path = "../../tests/support/fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_checks::check_pattern_match(data);
});
