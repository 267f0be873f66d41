//! The differential cases of `differential.rs`, every one, over TLS:
//! redis-server 7.0 started with `--tls-port` and tannoy-server serving
//! TLS, both with the same certificate from a CA made for the pair, and
//! every connection a TLS client that verifies it. The bytes inside the
//! TLS streams are compared exactly as over plaintext: replies, pushes,
//! errors, and which requests close the connection.
//!
//! Every test skips without redis-server, unless `TANNOY_REQUIRE_REDIS` is
//! set (Debian's redis-server is built with TLS; one built without it
//! fails to start with `--tls-port`, and so fails these tests).

#[path = "support/redis.rs"]
mod redis;
#[path = "support/resp.rs"]
mod resp;
#[path = "support/tls.rs"]
mod tls;

/// Both servers are reached over TLS.
const TLS: bool = true;

include!("support/differential.rs");
