//! A Redis-protocol endpoint over the [tannoy] engine: unmodified Redis
//! clients (redis-rs, redis-py, `redis-cli`, ...) use tannoy as their Redis.
//!
//! It speaks RESP2 and RESP3, answers the pub/sub commands and the
//! connection, client and server commands clients send around them byte
//! for byte as redis-server 7.0 does, and runs on a multi-threaded tokio
//! runtime. Start it inside a test, on a free port, with no Docker and no
//! redis-server install:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let broker = tannoy::Broker::new();
//! let server = tannoy_server::Server::builder()
//!     .broker(broker.clone())        // share a broker with in-process code
//!     .bind("127.0.0.1:0")           // a free port
//!     .start()
//!     .await?;
//! let url = server.url();            // "redis://127.0.0.1:PORT", for any Redis client
//! # assert!(url.starts_with("redis://127.0.0.1:"));
//!
//! let mut local = broker.subscriber(); // an in-process subscriber ...
//! local.subscribe(["orders"]);
//! let mut conn = tokio::net::TcpStream::connect(server.local_addr()).await?;
//! conn.write_all(b"PUBLISH orders o-1\r\n").await?; // ... sees network publishes
//! let mut reply = [0; 4];
//! conn.read_exact(&mut reply).await?;
//! assert_eq!(&reply, b":1\r\n");
//! assert_eq!(local.recv_async().await?.payload(), "o-1");
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! For tests that are not async, [`TestServer`] runs a server on its own
//! runtime and stops it when dropped.
//!
//! # Commands
//!
//! `SUBSCRIBE`, `UNSUBSCRIBE`, `PSUBSCRIBE`, `PUNSUBSCRIBE`, `SSUBSCRIBE`,
//! `SUNSUBSCRIBE`, `PUBLISH`, `SPUBLISH`, `PUBSUB`, `PING`, `ECHO`, `HELLO`,
//! `AUTH`, `SELECT`, `QUIT`, `RESET`, `CLIENT`, `INFO`, `CONFIG`, `COMMAND`,
//! `MULTI`/`EXEC`/`DISCARD`/`WATCH`/`UNWATCH`, and `FLUSHALL`, `FLUSHDB`,
//! `FUNCTION FLUSH`/`LIST` and `DBSIZE` answered as a server with no keys.
//! Anything else gets Redis's unknown-command error. The subscribed-mode
//! rules of RESP2, push frames of RESP3, inline commands, pipelining and
//! `CLIENT REPLY OFF|SKIP` behave as in Redis 7.0.
//!
//! # Backpressure
//!
//! Each connection owns one engine subscriber, and a message published to
//! many connections is stored once and written to each around its shared
//! payload. A client that stops reading never slows a publisher or another
//! client: as in Redis, once its unsent output passes the pub/sub
//! output-buffer limit (`32mb 8mb 60` by default) it is disconnected, or,
//! with [`Overflow::DropOldest`], it keeps its connection and loses its
//! oldest messages, counted in `CLIENT LIST` and `INFO`.
//!
//! # Faults on demand
//!
//! [`Server::kill_clients`], [`Server::restart`], [`Server::stop`] /
//! [`Server::resume`] and [`Server::stall_clients`] make Redis go away, or
//! slow down, exactly when a test wants, to show that the code under test
//! reconnects and resubscribes.
//!
//! # Differences from Redis 7.0
//!
//! * Commands on keys, scripting, streams, ACL users other than `default`,
//!   replication and cluster are not provided.
//! * `CLIENT SETINFO` (from Redis 7.2) is accepted, since clients send it.
//! * Messages published concurrently by different clients to different
//!   channels may reach two subscribers in different orders (one channel's
//!   messages reach everyone in one order); see the engine's docs.
//! * A request that stops arriving half-way is dropped after
//!   [`DEFAULT_REQUEST_TIMEOUT`] (configurable), where Redis waits forever.
//! * `CONFIG SET` with several parameters is not atomic: the ones before an
//!   invalid one stay set.
//!
//! # Module map
//!
//! `frame` (one request out of the input) → `parse` (arguments as Redis
//! reads them) → `connection` (one socket's loop) → `session` (one
//! client's state) → `cmd/*` (one file per command family) → `output`
//! (replies and messages) → `server` (accept loop, `maxclients`, faults)
//! → `shutdown`.
//!
//! [tannoy]: tannoy

#![forbid(unsafe_code)] // Lifting this would need a benchmark showing the win.
#![doc(test(attr(deny(warnings))))]

mod clients;
mod cmd;
mod config;
mod connection;
mod frame;
mod output;
mod parse;
mod server;
mod session;
mod shutdown;
#[cfg(feature = "test-tls")]
mod test_ca;
mod test_server;
mod tls;

pub use clients::ClientInfo;
pub use config::{OutputBufferLimit, Overflow, ParseSettingError};
pub use server::{DEFAULT_REQUEST_TIMEOUT, Server, ServerBuilder};
pub use test_server::TestServer;
pub use tls::{AuthClients, DEFAULT_HANDSHAKE_TIMEOUT, TlsConfig, TlsError, TlsErrorKind};

/// Decodes one request off the front of `input`, as the server does, for
/// the request decoder's fuzz target and its corpus replay.
///
/// Returns the requests decoded (each a list of arguments) and, if the
/// input ends in a protocol error, the error reply the server would send.
/// Never panics, whatever the input.
///
/// # Examples
///
/// ```
/// let (requests, error) = tannoy_server::decode_requests(b"PING\r\n*1\r\n$4\r\nECHO\r\n*x\r\n");
/// assert_eq!(requests, [vec![b"PING".to_vec()], vec![b"ECHO".to_vec()]]);
/// assert_eq!(error.as_deref(), Some(&b"ERR Protocol error: invalid multibulk length"[..]));
/// ```
#[doc(hidden)]
pub fn decode_requests(input: &[u8]) -> (Vec<Vec<Vec<u8>>>, Option<Vec<u8>>) {
    frame::decode_all(input)
}

/// The request decoder's fuzz check: panics if `data` shows a bug (a panic
/// inside the decoder, or a decoding that changes with how the input is
/// split into reads). Shared by the fuzz target and the corpus replay.
///
/// # Panics
///
/// On an input that shows a decoder bug.
///
/// # Examples
///
/// ```
/// tannoy_server::check_decoder(b"\x03\x01*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n");
/// ```
#[doc(hidden)]
pub fn check_decoder(data: &[u8]) {
    frame::check_decoder(data);
}
