//! The server: its builder, the accept loop with the `maxclients` limit,
//! the state every connection shares, and the fault-injection API.
//!
//! # Listeners
//!
//! A server has one or two listeners, each an accept loop on a TCP address:
//!
//! | builder | listeners |
//! |---|---|
//! | `bind(a)` | plaintext on `a` |
//! | `bind(a).tls(c)` | TLS on `a` (instead of plaintext) |
//! | `bind(a).tls(c).tls_bind(b)` | plaintext on `a` and TLS on `b` |
//!
//! Accepting is separate from serving: [`admit`] registers an accepted
//! stream of any `AsyncRead + AsyncWrite` type and spawns its connection
//! task. A TLS listener runs each handshake in a task of its own (see
//! `tls.rs`) and hands the finished TLS stream to [`admit`], so the
//! connection code serves both kinds alike. Handshakes in progress belong
//! to their accept loop: stopping the loop cancels them, so no connection
//! can be admitted after [`Server::stop`] has stopped the listeners.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tannoy::{Broker, OverflowPolicy};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::clients::{ClientHandle, ClientInfo, Registry};
use crate::config::{Config, DEFAULT_MAXCLIENTS, OutputBufferLimit, Overflow, lock};
use crate::connection;
use crate::shutdown::Stop;
use crate::tls::{Handshaker, TlsConfig};

/// Counters `INFO stats` reports.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Connections accepted (including those refused by `maxclients`).
    pub(crate) connections: AtomicU64,
    /// Connections refused by `maxclients`.
    pub(crate) rejected: AtomicU64,
    /// Requests run.
    pub(crate) commands: AtomicU64,
    /// Bytes read from clients.
    pub(crate) net_input: AtomicU64,
    /// Bytes written to clients.
    pub(crate) net_output: AtomicU64,
    /// Clients disconnected for passing the output-buffer limit.
    pub(crate) limit_disconnections: AtomicU64,
    /// Messages dropped for clients that have since gone.
    pub(crate) dropped: AtomicU64,
}

impl Stats {
    /// Counts one request.
    pub(crate) fn count_command(&self) {
        self.commands.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts bytes read.
    pub(crate) fn count_input(&self, n: usize) {
        self.net_input.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts bytes written.
    pub(crate) fn count_output(&self, n: usize) {
        self.net_output.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts a client dropped for its output-buffer limit.
    pub(crate) fn count_limit_disconnection(&self) {
        self.limit_disconnections.fetch_add(1, Ordering::Relaxed);
    }

    /// `CONFIG RESETSTAT`.
    pub(crate) fn reset(&self) {
        for counter in [
            &self.connections,
            &self.rejected,
            &self.commands,
            &self.net_input,
            &self.net_output,
            &self.limit_disconnections,
            &self.dropped,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

/// What every connection of a server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The engine.
    pub(crate) broker: Broker,
    /// Settings.
    pub(crate) config: Config,
    /// Connected clients.
    pub(crate) clients: Registry,
    /// Counters.
    pub(crate) stats: Stats,
    /// When the server started.
    pub(crate) started: Instant,
    /// A random 40-hex-digit id, as Redis's `run_id`.
    pub(crate) run_id: String,
    /// How long a half-received request may make no progress.
    pub(crate) request_timeout: Option<Duration>,
}

/// A random-looking run id: 40 hex digits from the standard library's
/// randomly seeded hasher (no cryptographic strength is needed).
fn run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut id = String::new();
    for i in 0..3u64 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(i);
        id.push_str(&format!("{:016x}", hasher.finish()));
    }
    id.truncate(40);
    id
}

/// Messages an engine queue may hold per byte of the output limit: a
/// message frame takes at least 29 bytes, so a queue of `limit / 29`
/// messages holds no less than the limit allows. (Rounded to 32.)
const MIN_MESSAGE_FRAME: u64 = 32;

/// Bounds of a connection's engine queue, in messages. The connection
/// drains its queue as fast as it runs, so the queue only fills when the
/// connection's task falls behind the publishers; see [`queue_capacity`].
const QUEUE_CAPACITY_RANGE: (u64, u64) = (1024, 1 << 22);

/// The engine queue capacity of a new connection: enough messages to fill
/// the output-buffer limit, so the limit (in bytes, as Redis's) decides
/// before the queue does. Allocated only as used.
fn queue_capacity(limit: OutputBufferLimit) -> usize {
    let bytes = match (limit.hard_bytes(), limit.soft_bytes()) {
        (0, 0) => u64::MAX,
        (0, soft) => soft,
        (hard, _) => hard,
    };
    let messages =
        (bytes / MIN_MESSAGE_FRAME).clamp(QUEUE_CAPACITY_RANGE.0, QUEUE_CAPACITY_RANGE.1);
    usize::try_from(messages).unwrap_or(usize::MAX)
}

/// Registers an accepted connection and spawns its task, or refuses it
/// with Redis's error when `maxclients` are connected.
pub(crate) fn admit<S>(
    shared: &Arc<Shared>,
    mut stream: S,
    addr: SocketAddr,
    local_addr: SocketAddr,
    fd: i64,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
    if shared.clients.len() >= shared.config.maxclients() {
        shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            // Best effort, as Redis's own write of this error is.
            let write = stream.write_all(b"-ERR max number of clients reached\r\n");
            let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
        });
        return;
    }
    let policy = match shared.config.overflow() {
        Overflow::Disconnect => OverflowPolicy::Disconnect,
        Overflow::DropOldest => OverflowPolicy::DropOldest,
    };
    let subscriber = shared
        .broker
        .subscriber_builder()
        .queue_capacity(queue_capacity(shared.config.pubsub_limit()))
        .overflow_policy(policy)
        .build();
    let id = shared.clients.next_id();
    let handle = Arc::new(ClientHandle::new(id, addr, local_addr, fd, subscriber));
    shared.clients.insert(Arc::clone(&handle));
    tokio::spawn(connection::serve(stream, handle, Arc::clone(shared)));
}

/// The socket's file descriptor, for `CLIENT LIST`'s `fd=`.
fn fd_of(stream: &TcpStream) -> i64 {
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        i64::from(stream.as_raw_fd())
    }
    #[cfg(not(unix))]
    {
        let _ = stream;
        -1
    }
}

/// Accepts connections until `stop` fires; with `tls`, each goes through
/// a TLS handshake (in a task of its own, at most `maxclients` at once)
/// before it is admitted.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: Stop,
    tls: Option<Arc<Handshaker>>,
) {
    let local = listener.local_addr().ok();
    let mut handshakes = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = stop.wait() => break,
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, addr)) => {
                // Redis disables Nagle's algorithm on every client socket.
                let _ = stream.set_nodelay(true);
                let local_addr = stream.local_addr().ok().or(local).unwrap_or(addr);
                let fd = fd_of(&stream);
                let Some(tls) = &tls else {
                    admit(&shared, stream, addr, local_addr, fd);
                    continue;
                };
                // Handshakes that finished (their connection admitted or
                // refused) but that the loop has not reaped yet must not
                // count as running: with `maxclients 1`, a second client
                // would otherwise be dropped mid-handshake instead of
                // getting Redis's "max number of clients reached".
                while handshakes.try_join_next().is_some() {}
                if handshakes.len() >= shared.config.maxclients() {
                    // As many handshakes running as clients allowed: close
                    // this one at once (dropping it) rather than queue it.
                    continue;
                }
                let (tls, shared) = (Arc::clone(tls), Arc::clone(&shared));
                handshakes.spawn(async move {
                    if let Some(stream) = tls.handshake(stream).await {
                        admit(&shared, stream, addr, local_addr, fd);
                    }
                });
            }
            Err(_) => {
                // Out of file descriptors, or a connection reset before it
                // was accepted: pause briefly rather than spin, as Redis
                // logs and carries on.
                tokio::select! {
                    () = stop.wait() => break,
                    () = tokio::time::sleep(Duration::from_millis(10)) => {}
                }
            }
        }
    }
    // Cancel handshakes in progress (and wait until they are gone), so
    // none admits a client once the loop is stopped.
    handshakes.shutdown().await;
}

/// Percent-encodes `bytes` for the user-info part of a URL.
fn url_encode(bytes: &[u8]) -> String {
    let mut encoded = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    encoded
}

/// Configures and starts a [`Server`].
///
/// Every setting has Redis's default: no password, 10 000 clients, a
/// pub/sub output-buffer limit of `32mb 8mb 60` with disconnection, and a
/// fresh broker. The address defaults to `127.0.0.1:0` (a free port on the
/// loopback interface), which suits tests; the binary uses Redis's 6379.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tannoy_server::{OutputBufferLimit, Overflow, Server};
///
/// let broker = tannoy::Broker::new();
/// let server = Server::builder()
///     .broker(broker.clone())
///     .bind("127.0.0.1:0")
///     .requirepass("secret")
///     .maxclients(100)
///     .client_output_buffer_limit_pubsub(OutputBufferLimit::new(1 << 20, 0, 0))
///     .overflow(Overflow::DropOldest)
///     .start()
///     .await?;
/// assert!(server.url().starts_with("redis://:secret@127.0.0.1:"));
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[must_use = "a builder does nothing until `start` is awaited"]
pub struct ServerBuilder {
    /// See [`ServerBuilder::broker`].
    broker: Option<Broker>,
    /// See [`ServerBuilder::bind`].
    bind: String,
    /// See [`ServerBuilder::requirepass`].
    requirepass: Option<Bytes>,
    /// See [`ServerBuilder::maxclients`].
    maxclients: usize,
    /// See [`ServerBuilder::client_output_buffer_limit_pubsub`].
    pubsub_limit: OutputBufferLimit,
    /// See [`ServerBuilder::overflow`].
    overflow: Overflow,
    /// See [`ServerBuilder::request_timeout`].
    request_timeout: Option<Duration>,
    /// See [`ServerBuilder::tls`].
    tls: Option<TlsConfig>,
    /// See [`ServerBuilder::tls_bind`].
    tls_bind: Option<String>,
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("bind", &self.bind)
            .field("requirepass", &self.requirepass.as_ref().map(|_| "<set>"))
            .field("maxclients", &self.maxclients)
            .field("pubsub_limit", &self.pubsub_limit)
            .field("overflow", &self.overflow)
            .field("request_timeout", &self.request_timeout)
            .field("tls", &self.tls)
            .field("tls_bind", &self.tls_bind)
            .finish_non_exhaustive()
    }
}

/// Default [`ServerBuilder::request_timeout`]: a request that has started
/// arriving and makes no progress for this long closes its connection.
/// Redis has no such limit; a minute is far beyond any live client's pause
/// inside one request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

impl ServerBuilder {
    /// A builder with every default (see [`ServerBuilder`]).
    fn new() -> Self {
        Self {
            broker: None,
            bind: "127.0.0.1:0".to_owned(),
            requirepass: None,
            maxclients: DEFAULT_MAXCLIENTS,
            pubsub_limit: OutputBufferLimit::default(),
            overflow: Overflow::Disconnect,
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            tls: None,
            tls_bind: None,
        }
    }

    /// Serves this broker, so in-process subscribers and publishers share
    /// it with network clients. Default: a new broker.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let broker = tannoy::Broker::new();
    /// let server = tannoy_server::Server::builder().broker(broker.clone()).start().await?;
    /// let local = &mut broker.subscriber();
    /// local.subscribe(["events"]);
    /// assert_eq!(server.broker().numsub(["events"])[0].1, 1);
    /// # server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn broker(mut self, broker: Broker) -> Self {
        self.broker = Some(broker);
        self
    }

    /// The address to listen on, `host:port`; port 0 picks a free port.
    /// Default: `127.0.0.1:0`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = tannoy_server::Server::builder().bind("127.0.0.1:0").start().await?;
    /// assert_ne!(server.local_addr().port(), 0);
    /// # server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.bind = addr.into();
        self
    }

    /// Requires this password (Redis's `requirepass`): until a client
    /// authenticates with `AUTH` or `HELLO ... AUTH`, its commands are
    /// refused with `NOAUTH`. An empty password means none. Default: none.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = tannoy_server::Server::builder().requirepass("s3cret!").start().await?;
    /// assert!(server.url().starts_with("redis://:s3cret%21@"));
    /// # server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn requirepass(mut self, password: impl AsRef<[u8]>) -> Self {
        self.requirepass =
            Some(Bytes::copy_from_slice(password.as_ref())).filter(|p| !p.is_empty());
        self
    }

    /// Most clients connected at once; more are refused with Redis's
    /// `ERR max number of clients reached`. Default: 10 000.
    ///
    /// # Panics
    ///
    /// If `maxclients` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let _builder = tannoy_server::Server::builder().maxclients(2);
    /// ```
    #[track_caller]
    pub fn maxclients(mut self, maxclients: usize) -> Self {
        assert!(maxclients > 0, "maxclients must be at least 1");
        self.maxclients = maxclients;
        self
    }

    /// The output-buffer limit of clients in subscribed mode (Redis's
    /// `client-output-buffer-limit pubsub`). Default: `32mb 8mb 60`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tannoy_server::OutputBufferLimit;
    ///
    /// let _builder = tannoy_server::Server::builder()
    ///     .client_output_buffer_limit_pubsub(OutputBufferLimit::new(4 << 20, 0, 0));
    /// ```
    pub fn client_output_buffer_limit_pubsub(mut self, limit: OutputBufferLimit) -> Self {
        self.pubsub_limit = limit;
        self
    }

    /// What happens to a subscribed client over its output-buffer limit.
    /// Default: [`Overflow::Disconnect`], as Redis.
    ///
    /// # Examples
    ///
    /// ```
    /// let _builder = tannoy_server::Server::builder().overflow(tannoy_server::Overflow::DropOldest);
    /// ```
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// How long a request that has started arriving may make no progress
    /// before its connection is closed; `None` waits forever, as Redis
    /// does. Default: [`DEFAULT_REQUEST_TIMEOUT`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let _builder = tannoy_server::Server::builder().request_timeout(Some(Duration::from_secs(5)));
    /// ```
    pub fn request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Serves TLS with these settings (Redis's `tls-cert-file`,
    /// `tls-key-file`, `tls-ca-cert-file`, `tls-auth-clients`): on the
    /// [`bind`](Self::bind) address instead of plaintext, or, with
    /// [`tls_bind`](Self::tls_bind), on a second address beside it. The
    /// [`url`](Server::url) of a TLS listener is `rediss://...`.
    /// `requirepass`, `AUTH` and `HELLO` work exactly as over plaintext.
    /// Default: no TLS.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tannoy_server::{Server, TlsConfig};
    ///
    /// let tls = TlsConfig::from_pem_files("tests/data/tls/server.crt", "tests/data/tls/server.key")?;
    /// let server = Server::builder().tls(tls).requirepass("key").start().await?;
    /// assert_eq!(server.url(), format!("rediss://:key@{}", server.local_addr()));
    /// # server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn tls(mut self, config: TlsConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// Serves TLS on this address (`host:port`, port 0 for a free one),
    /// and plaintext on the [`bind`](Self::bind) address, as redis-server
    /// with both `port` and `tls-port`. Needs [`tls`](Self::tls).
    /// Default: none (TLS, when configured, replaces plaintext on the
    /// `bind` address).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tannoy_server::{Server, TlsConfig};
    ///
    /// let tls = TlsConfig::from_pem_files("tests/data/tls/server.crt", "tests/data/tls/server.key")?;
    /// let server = Server::builder()
    ///     .bind("127.0.0.1:0")
    ///     .tls(tls)
    ///     .tls_bind("127.0.0.1:0")
    ///     .start()
    ///     .await?;
    /// assert!(server.url().starts_with("redis://"));
    /// let tls_addr = server.tls_local_addr().expect("a TLS listener");
    /// assert_eq!(server.tls_url(), Some(format!("rediss://{tls_addr}")));
    /// # server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn tls_bind(mut self, addr: impl Into<String>) -> Self {
        self.tls_bind = Some(addr.into());
        self
    }

    /// Binds the address (or addresses) and starts accepting connections
    /// on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// When an address cannot be resolved or bound; with kind
    /// `InvalidInput`, when the TLS settings cannot be used (see
    /// [`TlsError`](crate::TlsError)) or [`tls_bind`](Self::tls_bind) was
    /// given without [`tls`](Self::tls).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = tannoy_server::Server::builder().start().await?;
    /// # server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start(self) -> io::Result<Server> {
        let tls = match &self.tls {
            Some(config) => Some(Arc::new(Handshaker::new(config)?)),
            None => None,
        };
        let mut binds = Vec::new();
        match (&tls, &self.tls_bind) {
            (None, None) => binds.push((self.bind.as_str(), None)),
            (Some(tls), None) => binds.push((self.bind.as_str(), Some(Arc::clone(tls)))),
            (Some(tls), Some(tls_bind)) => {
                binds.push((self.bind.as_str(), None));
                binds.push((tls_bind.as_str(), Some(Arc::clone(tls))));
            }
            (None, Some(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a TLS address (tls_bind) needs TLS settings (tls)",
                ));
            }
        }
        let mut endpoints = Vec::new();
        let mut listeners = Vec::new();
        for (bind, tls) in binds {
            let listener = TcpListener::bind(bind).await?;
            endpoints.push(Endpoint {
                addr: listener.local_addr()?,
                tls,
            });
            listeners.push(listener);
        }
        let config = Config::new(
            self.requirepass,
            self.maxclients,
            self.pubsub_limit,
            self.overflow,
        );
        for endpoint in &endpoints {
            if endpoint.tls.is_some() {
                config.set_tls_port(endpoint.addr.port());
            } else {
                config.set_port(endpoint.addr.port());
            }
        }
        let shared = Arc::new(Shared {
            broker: self.broker.unwrap_or_default(),
            config,
            clients: Registry::new(),
            stats: Stats::default(),
            started: Instant::now(),
            run_id: run_id(),
            request_timeout: self.request_timeout,
        });
        let inner = Arc::new(Inner {
            shared,
            endpoints,
            listening: Mutex::new(None),
        });
        inner.listen(listeners);
        Ok(Server { inner })
    }
}

/// One address a server listens on.
#[derive(Debug)]
struct Endpoint {
    /// The address (with the real port when 0 was asked).
    addr: SocketAddr,
    /// The TLS handshake, for a TLS listener.
    tls: Option<Arc<Handshaker>>,
}

/// The accept loops of a listening server.
#[derive(Debug)]
struct Listening {
    /// Stops every loop.
    stop: crate::shutdown::StopHandle,
    /// The loops' tasks, one per endpoint.
    tasks: Vec<JoinHandle<()>>,
}

/// A server's state, shared with [`TestServer`](crate::TestServer).
#[derive(Debug)]
pub(crate) struct Inner {
    /// What connections share.
    shared: Arc<Shared>,
    /// The addresses listened on, the one [`Server::url`] names first.
    endpoints: Vec<Endpoint>,
    /// The accept loops, while listening.
    listening: Mutex<Option<Listening>>,
}

impl Inner {
    /// Starts the accept loops, on `listeners` (one per endpoint, in order).
    fn listen(&self, listeners: Vec<TcpListener>) {
        let (handle, stop) = crate::shutdown::channel();
        let tasks = listeners
            .into_iter()
            .zip(&self.endpoints)
            .map(|(listener, endpoint)| {
                tokio::spawn(accept_loop(
                    listener,
                    Arc::clone(&self.shared),
                    stop.clone(),
                    endpoint.tls.clone(),
                ))
            })
            .collect();
        *lock(&self.listening) = Some(Listening {
            stop: handle,
            tasks,
        });
    }

    /// Stops accepting and closes every client connection.
    pub(crate) async fn stop(&self) {
        let listening = lock(&self.listening).take();
        if let Some(listening) = listening {
            listening.stop.stop();
            for task in listening.tasks {
                let _ = task.await;
            }
        }
        let clients = self.shared.clients.all();
        for client in &clients {
            client.kill();
        }
        for client in &clients {
            client.finished().await;
        }
    }

    /// Listens again on the same address after [`stop`](Self::stop).
    pub(crate) async fn resume(&self) -> io::Result<()> {
        if lock(&self.listening).is_some() {
            return Ok(());
        }
        let mut listeners = Vec::new();
        for endpoint in &self.endpoints {
            // On failure, the listeners bound so far close as they drop.
            listeners.push(TcpListener::bind(endpoint.addr).await?);
        }
        self.listen(listeners);
        Ok(())
    }

    /// Kills the clients `filter` selects and waits until their
    /// connections are closed.
    pub(crate) async fn kill_clients(&self, filter: impl Fn(&ClientInfo) -> bool) -> usize {
        let victims: Vec<_> = self
            .shared
            .clients
            .all()
            .into_iter()
            .filter(|c| filter(&c.info()))
            .collect();
        for victim in &victims {
            victim.kill();
        }
        for victim in &victims {
            victim.finished().await;
        }
        victims.len()
    }

    /// Holds back writes to the clients `filter` selects for `duration`.
    pub(crate) fn stall_clients(
        &self,
        filter: impl Fn(&ClientInfo) -> bool,
        duration: Duration,
    ) -> usize {
        let until = Instant::now() + duration;
        let mut stalled = 0;
        for client in self.shared.clients.all() {
            if filter(&client.info()) {
                client.stall(until);
                stalled += 1;
            }
        }
        stalled
    }

    /// The URL clients connect to `endpoint` with.
    fn endpoint_url(&self, endpoint: &Endpoint) -> String {
        let scheme = if endpoint.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        match self.shared.config.requirepass() {
            Some(password) => format!("{scheme}://:{}@{}", url_encode(&password), endpoint.addr),
            None => format!("{scheme}://{}", endpoint.addr),
        }
    }

    /// The first endpoint (there is always one).
    fn first(&self) -> &Endpoint {
        self.endpoints
            .first()
            .unwrap_or_else(|| unreachable!("`start` makes one endpoint or more"))
    }

    /// The TLS endpoint, if any.
    fn tls_endpoint(&self) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.tls.is_some())
    }

    /// The URL clients connect with (the first listener).
    pub(crate) fn url(&self) -> String {
        self.endpoint_url(self.first())
    }

    /// The address listened on (the first listener).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.first().addr
    }

    /// The TLS listener's URL.
    pub(crate) fn tls_url(&self) -> Option<String> {
        self.tls_endpoint().map(|e| self.endpoint_url(e))
    }

    /// The TLS listener's address.
    pub(crate) fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls_endpoint().map(|e| e.addr)
    }

    /// Every connected client.
    pub(crate) fn clients(&self) -> Vec<ClientInfo> {
        self.shared.clients.all().iter().map(|c| c.info()).collect()
    }

    /// The broker served.
    pub(crate) fn broker(&self) -> &Broker {
        &self.shared.broker
    }
}

impl Drop for Inner {
    /// Stops accepting and kills every client, without waiting: the tasks
    /// end on their own as soon as they run.
    fn drop(&mut self) {
        if let Some(listening) = lock(&self.listening).take() {
            listening.stop.stop();
        }
        for client in self.shared.clients.all() {
            client.kill();
        }
    }
}

/// A running Redis-protocol server over a tannoy [`Broker`].
///
/// Start one with [`Server::builder`] on a tokio runtime (or use
/// [`TestServer`](crate::TestServer), which brings its own). Unmodified
/// Redis clients connect to [`url`](Self::url) and publish, subscribe and
/// introspect as with redis-server; code in the same process shares the
/// [`broker`](Self::broker).
///
/// Dropping the server stops it without waiting; [`shutdown`](Self::shutdown)
/// waits until every connection is closed.
///
/// # Faults on demand
///
/// Tests of code that must survive its Redis going away can make it go away
/// deterministically: [`kill_clients`](Self::kill_clients) closes chosen
/// connections (as `CLIENT KILL`), [`restart`](Self::restart) drops every
/// connection and subscription and listens again on the same port (as
/// miniredis's `Restart`), [`stop`](Self::stop) / [`resume`](Self::resume)
/// keep it down for as long as the test wants, and
/// [`stall_clients`](Self::stall_clients) holds back a connection's output
/// as a slow network would.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let broker = tannoy::Broker::new();
/// let server = tannoy_server::Server::builder().broker(broker.clone()).start().await?;
///
/// let mut conn = tokio::net::TcpStream::connect(server.local_addr()).await?;
/// conn.write_all(b"SUBSCRIBE news\r\n").await?;
/// let mut confirmation = [0; 33];
/// conn.read_exact(&mut confirmation).await?;
/// assert_eq!(&confirmation, b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
///
/// assert_eq!(broker.publish("news", "hello"), 1); // an in-process publish
/// let mut message = [0; 38];
/// conn.read_exact(&mut message).await?;
/// assert_eq!(&message, b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n");
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    /// The server's state.
    inner: Arc<Inner>,
}

impl Server {
    /// A builder with Redis's defaults; see [`ServerBuilder`].
    ///
    /// # Examples
    ///
    /// See [`ServerBuilder`].
    pub fn builder() -> ServerBuilder {
        ServerBuilder::new()
    }

    /// The shared state, for [`TestServer`](crate::TestServer).
    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// The address the server listens on, with the port it got if port 0
    /// was asked for: the [`bind`](ServerBuilder::bind) address, which is
    /// the TLS one when the server serves TLS only.
    ///
    /// # Examples
    ///
    /// See [`Server`].
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    /// The address of the TLS listener, if the server has one (the same
    /// as [`local_addr`](Self::local_addr) when it serves TLS only).
    ///
    /// # Examples
    ///
    /// See [`ServerBuilder::tls_bind`].
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.inner.tls_local_addr()
    }

    /// The URL of the TLS listener, `rediss://...`, if the server has one.
    ///
    /// # Examples
    ///
    /// See [`ServerBuilder::tls_bind`].
    pub fn tls_url(&self) -> Option<String> {
        self.inner.tls_url()
    }

    /// The URL to give a Redis client, for the address of
    /// [`local_addr`](Self::local_addr): `redis://127.0.0.1:PORT` (or
    /// `rediss://` when that address serves TLS), with the password if
    /// one is set, percent-encoded: `redis://:PASSWORD@127.0.0.1:PORT`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = tannoy_server::Server::builder().start().await?;
    /// assert_eq!(server.url(), format!("redis://{}", server.local_addr()));
    /// # server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn url(&self) -> String {
        self.inner.url()
    }

    /// The broker the server serves.
    ///
    /// # Examples
    ///
    /// See [`ServerBuilder::broker`].
    pub fn broker(&self) -> &Broker {
        self.inner.broker()
    }

    /// A snapshot of every connected client, oldest first.
    ///
    /// # Examples
    ///
    /// See [`ClientInfo`].
    pub fn clients(&self) -> Vec<ClientInfo> {
        self.inner.clients()
    }

    /// Closes every connection `filter` selects, as `CLIENT KILL` does,
    /// and returns how many. Their subscriptions are gone when this
    /// returns (a publish right after does not count them), and so are
    /// their sockets; anything not yet sent to them is discarded.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// let server = tannoy_server::Server::builder().start().await?;
    /// let mut conn = tokio::net::TcpStream::connect(server.local_addr()).await?;
    /// conn.write_all(b"SUBSCRIBE jobs\r\n").await?;
    /// let mut confirmation = [0; 33];
    /// conn.read_exact(&mut confirmation).await?;
    ///
    /// let killed = server.kill_clients(|c| c.is_subscribed()).await;
    /// assert_eq!(killed, 1);
    /// assert_eq!(server.broker().publish("jobs", "j-1"), 0);
    /// assert_eq!(conn.read(&mut [0; 8]).await?, 0); // closed
    /// # server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn kill_clients(&self, filter: impl Fn(&ClientInfo) -> bool) -> usize {
        self.inner.kill_clients(filter).await
    }

    /// Holds back all output to the clients `filter` selects for
    /// `duration`, as if the network to them stalled, and returns how many.
    /// Their output keeps queuing meanwhile, under the usual output-buffer
    /// limit: a stall long enough to pass it disconnects the client (or
    /// drops its oldest messages), as a slow client would be treated.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    ///
    /// let server = tannoy_server::Server::builder().start().await?;
    /// let conn = tokio::net::TcpStream::connect(server.local_addr()).await?;
    /// # while server.clients().is_empty() { tokio::task::yield_now().await; }
    /// assert_eq!(server.stall_clients(|_| true, Duration::from_millis(100)), 1);
    /// # drop(conn);
    /// # server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn stall_clients(&self, filter: impl Fn(&ClientInfo) -> bool, duration: Duration) -> usize {
        self.inner.stall_clients(filter, duration)
    }

    /// Stops accepting connections and closes every client connection,
    /// with all of their subscriptions; connecting is refused until
    /// [`resume`](Self::resume). In-process subscribers of the broker are
    /// not affected.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = tannoy_server::Server::builder().start().await?;
    /// server.stop().await;
    /// assert!(tokio::net::TcpStream::connect(server.local_addr()).await.is_err());
    /// server.resume().await?;
    /// assert!(tokio::net::TcpStream::connect(server.local_addr()).await.is_ok());
    /// # server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn stop(&self) {
        self.inner.stop().await;
    }

    /// Listens again on the same address after [`stop`](Self::stop); does
    /// nothing if the server is listening.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound again (another process took the
    /// port meanwhile).
    ///
    /// # Examples
    ///
    /// See [`stop`](Self::stop).
    pub async fn resume(&self) -> io::Result<()> {
        self.inner.resume().await
    }

    /// Drops every connection and subscription and listens again on the
    /// same port, as a restarted redis-server would be found by clients
    /// that reconnect.
    ///
    /// # Errors
    ///
    /// As [`resume`](Self::resume).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = tannoy_server::Server::builder().start().await?;
    /// let port = server.local_addr().port();
    /// server.restart().await?;
    /// assert_eq!(server.local_addr().port(), port);
    /// # server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn restart(&self) -> io::Result<()> {
        self.inner.stop().await;
        self.inner.resume().await
    }

    /// Stops the server gracefully: stops accepting, closes every client
    /// connection, and returns once all are closed.
    ///
    /// # Examples
    ///
    /// See [`Server`].
    pub async fn shutdown(self) {
        self.inner.stop().await;
    }
}
