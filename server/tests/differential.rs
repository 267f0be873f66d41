//! tannoy-server against a real `redis-server` 7.0: the same raw RESP byte
//! streams go to both, on as many connections as a case needs, and the
//! replies and pushes that come back must be the same bytes, in RESP2 and
//! in RESP3. `differential_tls.rs` runs the same cases over TLS.
//!
//! Each step sends a request on one connection followed by a `PING` with a
//! unique token, and reads until the token's reply: everything before it
//! is that step's output, including pushes caused by other connections'
//! earlier steps. Client ids (which differ between servers) are masked.
//! The random sequences compare a canonical form instead (see
//! `support/resp.rs`) where Redis's own order is hash order.
//!
//! Every test skips without redis-server, unless `TANNOY_REQUIRE_REDIS` is
//! set.

#[path = "support/redis.rs"]
mod redis;
#[path = "support/resp.rs"]
mod resp;
#[path = "support/tls.rs"]
mod tls;

/// Both servers are reached over plaintext TCP.
const TLS: bool = false;

include!("support/differential.rs");
