//! Joins a local [`tannoy::Broker`] to a Redis-protocol server (Redis 6 or
//! later, Valkey, Redis Cluster): each process holds one upstream subscription per name
//! its local subscribers hold, and fans messages out locally.
//!
//! ```
//! # // A private redis-server on a free loopback port, killed at the end;
//! # // skipped when there is none, unless TANNOY_REQUIRE_REDIS is set.
//! # struct Server(std::process::Child);
//! # impl Drop for Server {
//! #     fn drop(&mut self) {
//! #         let _ = self.0.kill();
//! #         let _ = self.0.wait();
//! #     }
//! # }
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
//! # let binary = std::env::var("TANNOY_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
//! # let spawned = std::process::Command::new(binary)
//! #     .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
//! #     .args(["--save", "", "--appendonly", "no"])
//! #     .stdout(std::process::Stdio::null())
//! #     .spawn();
//! # let _server = match spawned {
//! #     Ok(child) => Server(child),
//! #     Err(_) if std::env::var_os("TANNOY_REQUIRE_REDIS").is_none() => return Ok(()),
//! #     Err(e) => return Err(e.into()),
//! # };
//! # for _ in 0..500 {
//! #     if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
//! #         break;
//! #     }
//! #     std::thread::sleep(std::time::Duration::from_millis(10));
//! # }
//! # let redis_url = format!("redis://127.0.0.1:{port}");
//! use tannoy_redis::Bridge;
//!
//! let broker = tannoy::Broker::new();
//! let bridge = Bridge::builder()
//!     .url(redis_url) // "redis://127.0.0.1:6379"
//!     .broker(broker.clone())
//!     .start()
//!     .await?;
//!
//! // Local subscribers subscribe to the broker, as ever: here two
//! // WebSocket connections and an audit log.
//! let mut alice = broker.subscriber();
//! alice.subscribe(["ai:predictions:ready"]);
//! let mut bob = broker.subscriber();
//! bob.subscribe(["ai:predictions:ready"]);
//! let mut audit = broker.subscriber();
//! audit.psubscribe(["ai:*"]);
//! bridge.sync().await?; // one SUBSCRIBE and one PSUBSCRIBE, confirmed upstream
//!
//! // Publishing through the bridge reaches every bridged process, this one
//! // too. Redis counts upstream subscriptions: this process's channel and
//! // its pattern, whatever the number of local subscribers.
//! let receivers = bridge.publish("ai:predictions:ready", "p-1").await?;
//! assert_eq!(receivers, 2);
//! assert_eq!(alice.recv_async().await?.payload(), "p-1");
//! assert_eq!(bob.recv_async().await?.payload(), "p-1");
//! assert_eq!(audit.recv_async().await?.pattern().unwrap(), "ai:*");
//! bridge.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # How it works
//!
//! The bridge follows [`Broker::watch_interest`](tannoy::Broker::watch_interest):
//! when a channel, pattern or shard channel gains its first local
//! subscriber the bridge sends `SUBSCRIBE`, `PSUBSCRIBE` or `SSUBSCRIBE`;
//! when it loses its last, the matching unsubscribe. However many local
//! subscribers share a name, the server sees one connection holding it
//! once, so its cost does not grow with the local subscriber count.
//!
//! Every upstream message is published into the local broker, so every
//! local guarantee holds unchanged: bounded queues, drop-oldest (or the
//! subscriber's policy), [`Message::seq`](tannoy::Message::seq),
//! `recv_async`, `Stream`. The bridge reads the socket on its own task and
//! a local publish never waits, so a stalled local subscriber loses its
//! own oldest messages (counted by its `dropped()`) and slows nobody.
//!
//! # Exactly once, patterns included
//!
//! A local subscriber receives exactly what a direct Redis connection
//! holding the same names would receive. When one process holds `news.eu`
//! and `news.*` upstream, one upstream `PUBLISH news.eu` arrives as a
//! `message` and a `pmessage`; the bridge publishes it into the broker
//! once, and the broker's own matching gives the subscriber of `news.eu`
//! the message and the subscriber of `news.*` the pattern message. To know
//! where one upstream publish ends, the bridge replays the server's
//! subscription confirmations, which RESP3 delivers in order with the
//! messages, and counts the patterns that match (see `relay.rs`). That is
//! why the bridge always speaks RESP3.
//!
//! # Publishing
//!
//! [`Bridge::publish`] and [`Bridge::spublish`] send `PUBLISH`/`SPUBLISH`
//! to the server and return its reply. The count is what Redis counts:
//! upstream **connections** (a bridged process counts once per upstream
//! subscription or matching pattern it holds, not per local subscriber).
//! The message reaches this process's subscribers through the server, like
//! every other process's, once and in the server's order. A plain
//! [`Broker::publish`](tannoy::Broker::publish) stays in this process.
//!
//! # Outages and gaps
//!
//! When the connection is lost the bridge reconnects with backoff
//! ([`BridgeBuilder::reconnect_backoff`]) and resubscribes to whatever is
//! held locally by then. Meanwhile nothing grows: publishes fail at once
//! with [`ErrorKind::Disconnected`], interest changes coalesce per name, and
//! upstream messages published during the outage are lost, as they are for
//! any Redis subscriber.
//!
//! The loss is announced to local subscribers, not only to the bridge's
//! owner: the moment the bridge notices it, it publishes one notice into
//! the local broker on [`GAP_CHANNEL`], whose payload is the outage number
//! (decimal). A subscriber that also holds `GAP_CHANNEL` finds the notice
//! in its own queue between the last message received before the outage
//! and the first one after it, so it can tell exactly where messages may
//! be missing (and, say, reload state). The bridge never subscribes to
//! `GAP_CHANNEL` upstream and never relays an upstream message on it.
//! A pattern that matches it (`*`) receives the notices too. The owner can
//! also watch [`Bridge::status_watch`].
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let broker = tannoy::Broker::new();
//! let mut sub = broker.subscriber();
//! sub.subscribe(["prices", tannoy_redis::GAP_CHANNEL]);
//! while let Ok(msg) = sub.recv_async().await {
//!     if msg.channel() == tannoy_redis::GAP_CHANNEL {
//!         // Messages may be missing here: reload the prices.
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Differences from the in-process broker
//!
//! - `publish` is asynchronous, can fail, and counts upstream connections.
//! - A local subscription takes effect upstream a round trip later; until
//!   the server confirms it, messages published elsewhere do not reach
//!   it. [`Bridge::sync`] waits for that.
//! - Ordering is the server's: every process sees one channel's messages
//!   in the same order. Messages published with `Broker::publish` in this
//!   process are not ordered with upstream ones.
//! - Messages published upstream while the bridge is disconnected are
//!   lost; see above.
//!
//! # Configuration
//!
//! URL with database, user and password ([`BridgeBuilder::url`],
//! [`BridgeBuilder::username`], [`BridgeBuilder::password`]), or a Redis
//! Cluster's seed nodes ([`BridgeBuilder::cluster_nodes`]); timeouts,
//! backoff and health checks. RESP3 always (Redis 6 or later). TLS with a
//! `rediss://` URL (rustls, verified against the system's roots or a
//! private CA given to [`BridgeBuilder::tls_ca_certificate`]; a client
//! certificate for mutual TLS with [`BridgeBuilder::tls_client_certificate`]).
//!
//! Upstream connections per process: one to a standalone server; in a
//! cluster, one to one node for channels and patterns plus one to each
//! master for shard channels. A lost connection, any of them, is one
//! outage: the bridge drops them all, announces the gap, reconnects
//! (trying the seed nodes in turn) and resubscribes.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod bridge;
mod error;
mod names;
mod relay;
mod status;
mod task;
mod upstream;

pub use bridge::{Bridge, BridgeBuilder};
pub use error::{Error, ErrorKind};
pub use status::{State, Status};

/// The local channel on which the bridge announces each lost connection:
/// one message per outage, payload the outage number in decimal
/// ([`Status::outages`]). Local only: never subscribed to or relayed from
/// upstream.
///
/// # Examples
///
/// ```
/// let broker = tannoy::Broker::new();
/// let sub = broker.subscriber();
/// sub.subscribe(["prices", tannoy_redis::GAP_CHANNEL]);
/// assert_eq!(tannoy_redis::GAP_CHANNEL, "tannoy-redis:gap");
/// ```
pub const GAP_CHANNEL: &str = "tannoy-redis:gap";
