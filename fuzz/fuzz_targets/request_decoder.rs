//! tannoy-server's request decoder never panics, and decodes the same
//! requests (or fails with the same protocol error) however the input is
//! split into reads. The check lives in the server crate
//! (`tannoy_server::check_decoder`), shared with the corpus replay in
//! `server/tests/fuzz_corpus.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tannoy_server::check_decoder(data);
});
