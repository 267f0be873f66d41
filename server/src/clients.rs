//! The connected clients: what `CLIENT LIST` shows of each, and the
//! switches through which `CLIENT KILL`, shutdown and the fault-injection
//! API act on a connection from outside its task.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tannoy::Subscriber;
use tokio::sync::{Notify, watch};

use crate::config::lock;

/// A snapshot of one connected client, as `CLIENT LIST` describes it.
///
/// The fault-injection methods of [`Server`](crate::Server) take a filter
/// over these, as `CLIENT KILL` takes filters.
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
/// conn.write_all(b"CLIENT SETNAME worker-1\r\n").await?;
/// let mut reply = [0; 5];
/// conn.read_exact(&mut reply).await?;
///
/// let clients = server.clients();
/// assert_eq!(clients.len(), 1);
/// assert_eq!(clients[0].name(), Some(&b"worker-1"[..]));
/// assert!(!clients[0].is_subscribed());
/// # server.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ClientInfo {
    /// The client's id (`CLIENT ID`).
    id: u64,
    /// The client's address.
    addr: SocketAddr,
    /// The server address it connected to.
    local_addr: SocketAddr,
    /// What the connection task last published about itself.
    state: ClientState,
    /// Time since it connected.
    age: Duration,
    /// Time since its last command.
    idle: Duration,
}

impl ClientInfo {
    /// The client's id, as `CLIENT ID` answers and `CLIENT KILL ID` takes.
    ///
    /// # Examples
    ///
    /// See [`ClientInfo`].
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The client's address (`addr=` in `CLIENT LIST`).
    ///
    /// # Examples
    ///
    /// See [`ClientInfo`].
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server address the client connected to (`laddr=`).
    ///
    /// # Examples
    ///
    /// See [`ClientInfo`].
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The name set with `CLIENT SETNAME` or `HELLO ... SETNAME`.
    ///
    /// # Examples
    ///
    /// See [`ClientInfo`].
    pub fn name(&self) -> Option<&[u8]> {
        self.state.name.as_deref()
    }

    /// The library name set with `CLIENT SETINFO LIB-NAME`.
    ///
    /// # Examples
    ///
    /// See [`ClientInfo`].
    pub fn lib_name(&self) -> Option<&[u8]> {
        self.state.lib_name.as_deref()
    }

    /// Whether the client is in subscribed mode (Redis's `pubsub` client
    /// type, `flags=P`).
    ///
    /// # Examples
    ///
    /// See [`ClientInfo`].
    pub fn is_subscribed(&self) -> bool {
        self.state.subscribed
    }

    /// Exact channels, patterns and shard channels held
    /// (`sub=`, `psub=`, `ssub=`).
    ///
    /// # Examples
    ///
    /// See [`ClientInfo`].
    pub fn subscriptions(&self) -> (usize, usize, usize) {
        (
            self.state.channels,
            self.state.patterns,
            self.state.shard_channels,
        )
    }

    /// The protocol version it speaks: 2 or 3.
    ///
    /// # Examples
    ///
    /// See [`ClientInfo`].
    pub fn protocol(&self) -> i64 {
        self.state.protocol
    }

    /// Bytes of output queued for it and not yet sent.
    ///
    /// # Examples
    ///
    /// See [`ClientInfo`].
    pub fn pending_output(&self) -> usize {
        self.state.pending_output
    }

    /// Messages dropped for it by [`Overflow::DropOldest`](crate::Overflow).
    ///
    /// # Examples
    ///
    /// See [`ClientInfo`].
    pub fn dropped(&self) -> u64 {
        self.state.dropped
    }

    /// Time since it connected.
    ///
    /// # Examples
    ///
    /// See [`ClientInfo`].
    pub fn age(&self) -> Duration {
        self.age
    }

    /// Time since its last command.
    ///
    /// # Examples
    ///
    /// See [`ClientInfo`].
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// The full name of its last command (`client|list`), or `NULL`.
    ///
    /// # Examples
    ///
    /// See [`ClientInfo`].
    pub fn last_command(&self) -> &str {
        self.state.last_command
    }

    /// One `CLIENT LIST` line, without the final newline, in Redis 7.0's
    /// field order; with `show_dropped` (the drop-oldest overflow policy),
    /// followed by ` dropped=N`.
    pub(crate) fn list_line(&self, fd: i64, show_dropped: bool) -> Vec<u8> {
        let s = &self.state;
        let mut line = format!(
            "id={} addr={} laddr={} fd={fd} name=",
            self.id, self.addr, self.local_addr
        )
        .into_bytes();
        line.extend_from_slice(s.name.as_deref().unwrap_or_default());
        let mut flags = String::new();
        if s.subscribed {
            flags.push('P');
        }
        if s.multi.is_some() {
            flags.push('x');
        }
        if s.closing {
            flags.push('c');
        }
        if s.no_evict {
            flags.push('e');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        line.extend_from_slice(
            format!(
                " age={} idle={} flags={flags} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem={} multi-mem=0 rbs={} rbp={} obl={} oll={} omem={} tot-mem={} events=r cmd={} user=default redir=-1 resp={}",
                self.age.as_secs(),
                self.idle.as_secs(),
                s.db,
                s.channels,
                s.patterns,
                s.shard_channels,
                s.multi.map_or(-1, |n| n as i64),
                s.query_buffer,
                s.query_buffer_free,
                s.argv_bytes,
                s.read_buffer_size,
                s.read_buffer_size,
                0,
                s.output_chunks,
                s.pending_output,
                s.query_buffer + s.query_buffer_free + s.pending_output,
                s.last_command,
                s.protocol,
            )
            .as_bytes(),
        );
        if show_dropped {
            line.extend_from_slice(format!(" dropped={}", s.dropped).as_bytes());
        }
        line
    }

    /// Redis's client type name: `pubsub` or `normal`.
    pub(crate) fn kind(&self) -> &'static str {
        if self.state.subscribed {
            "pubsub"
        } else {
            "normal"
        }
    }
}

/// What a connection publishes about itself after each command, for
/// `CLIENT LIST` and [`ClientInfo`].
#[derive(Clone, Debug)]
pub(crate) struct ClientState {
    /// `CLIENT SETNAME`.
    pub(crate) name: Option<Bytes>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub(crate) lib_name: Option<Bytes>,
    /// `CLIENT SETINFO LIB-VER`.
    pub(crate) lib_ver: Option<Bytes>,
    /// `SELECT`ed database.
    pub(crate) db: i64,
    /// In subscribed mode.
    pub(crate) subscribed: bool,
    /// Commands queued in `MULTI`, if in one.
    pub(crate) multi: Option<usize>,
    /// Exact channels held.
    pub(crate) channels: usize,
    /// Patterns held.
    pub(crate) patterns: usize,
    /// Shard channels held.
    pub(crate) shard_channels: usize,
    /// Full name of the last command.
    pub(crate) last_command: &'static str,
    /// When the last command ran.
    pub(crate) last_interaction: Instant,
    /// Protocol version.
    pub(crate) protocol: i64,
    /// Unparsed input bytes.
    pub(crate) query_buffer: usize,
    /// Free space in the read buffer.
    pub(crate) query_buffer_free: usize,
    /// Read buffer capacity.
    pub(crate) read_buffer_size: usize,
    /// Bytes of the arguments of a request still arriving.
    pub(crate) argv_bytes: usize,
    /// Output bytes pending.
    pub(crate) pending_output: usize,
    /// Output chunks pending.
    pub(crate) output_chunks: usize,
    /// Messages dropped by drop-oldest.
    pub(crate) dropped: u64,
    /// About to be closed (after `QUIT`, or a protocol error).
    pub(crate) closing: bool,
    /// `CLIENT NO-EVICT ON`.
    pub(crate) no_evict: bool,
}

impl ClientState {
    /// A newly connected client's state.
    fn new(now: Instant) -> Self {
        Self {
            name: None,
            lib_name: None,
            lib_ver: None,
            db: 0,
            subscribed: false,
            multi: None,
            channels: 0,
            patterns: 0,
            shard_channels: 0,
            last_command: "NULL",
            last_interaction: now,
            protocol: 2,
            query_buffer: 0,
            query_buffer_free: 0,
            read_buffer_size: 0,
            argv_bytes: 0,
            pending_output: 0,
            output_chunks: 0,
            dropped: 0,
            closing: false,
            no_evict: false,
        }
    }
}

/// One connection as the rest of the server sees it.
#[derive(Debug)]
pub(crate) struct ClientHandle {
    /// The client's id.
    pub(crate) id: u64,
    /// Peer address.
    pub(crate) addr: SocketAddr,
    /// Local address.
    pub(crate) local_addr: SocketAddr,
    /// The socket's file descriptor, for `fd=` (-1 where there is none).
    pub(crate) fd: i64,
    /// When it connected.
    created: Instant,
    /// What the connection last published about itself.
    state: Mutex<ClientState>,
    /// The connection's engine subscriber. The connection task holds the
    /// lock only briefly (to receive, or to run a (un)subscribe), so a
    /// kill can drop every subscription synchronously.
    subscriber: Mutex<Subscriber>,
    /// Set by a kill; the connection closes at once, discarding output.
    killed: AtomicBool,
    /// Until when writes to the client are held back (fault injection).
    stall_until: Mutex<Option<Instant>>,
    /// Wakes the connection task when `killed` or `stall_until` change.
    pub(crate) wake: Notify,
    /// Set to `true` once the connection task has ended.
    finished: watch::Sender<bool>,
}

impl ClientHandle {
    /// A handle for a new connection.
    pub(crate) fn new(
        id: u64,
        addr: SocketAddr,
        local_addr: SocketAddr,
        fd: i64,
        subscriber: Subscriber,
    ) -> Self {
        let now = Instant::now();
        Self {
            id,
            addr,
            local_addr,
            fd,
            created: now,
            state: Mutex::new(ClientState::new(now)),
            subscriber: Mutex::new(subscriber),
            killed: AtomicBool::new(false),
            stall_until: Mutex::new(None),
            wake: Notify::new(),
            finished: watch::Sender::new(false),
        }
    }

    /// The connection's engine subscriber.
    pub(crate) fn subscriber(&self) -> MutexGuard<'_, Subscriber> {
        lock(&self.subscriber)
    }

    /// The published state, for the connection to update.
    pub(crate) fn state(&self) -> MutexGuard<'_, ClientState> {
        lock(&self.state)
    }

    /// A snapshot for `CLIENT LIST` and the fault API.
    pub(crate) fn info(&self) -> ClientInfo {
        let state = self.state().clone();
        let now = Instant::now();
        ClientInfo {
            id: self.id,
            addr: self.addr,
            local_addr: self.local_addr,
            age: now.duration_since(self.created),
            idle: now.duration_since(state.last_interaction),
            state,
        }
    }

    /// Kills the connection: its subscriptions go at once (so a publish
    /// right after this does not count it), and its task closes the
    /// socket as soon as it runs, discarding unsent output.
    pub(crate) fn kill(&self) {
        {
            let subscriber = &mut *self.subscriber();
            subscriber.unsubscribe(Vec::<Bytes>::new());
            subscriber.punsubscribe(Vec::<Bytes>::new());
            subscriber.sunsubscribe(Vec::<Bytes>::new());
        }
        self.killed.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Whether the connection has been killed.
    pub(crate) fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Holds back writes to the client until `until`.
    pub(crate) fn stall(&self, until: Instant) {
        *lock(&self.stall_until) = Some(until);
        self.wake.notify_one();
    }

    /// Until when writes are held back, if they are.
    pub(crate) fn stalled_until(&self) -> Option<Instant> {
        let mut stall = lock(&self.stall_until);
        if stall.is_some_and(|until| until <= Instant::now()) {
            *stall = None;
        }
        *stall
    }

    /// Records that the connection task has ended.
    pub(crate) fn mark_finished(&self) {
        self.finished.send_replace(true);
    }

    /// Waits until the connection task has ended.
    pub(crate) async fn finished(&self) {
        let mut rx = self.finished.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|&done| done).await;
    }
}

/// Every connected client, by id.
#[derive(Debug)]
pub(crate) struct Registry {
    /// Connected clients. A `BTreeMap` so `CLIENT LIST` lists them by id,
    /// oldest first, as Redis does.
    clients: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
    /// The next client id; ids are never reused, as in Redis.
    next_id: AtomicU64,
}

impl Registry {
    /// An empty registry; the first client gets id 1... after any the
    /// server itself uses (none).
    pub(crate) fn new() -> Self {
        Self {
            clients: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    /// A fresh client id.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds a client.
    pub(crate) fn insert(&self, handle: Arc<ClientHandle>) {
        lock(&self.clients).insert(handle.id, handle);
    }

    /// Removes a client.
    pub(crate) fn remove(&self, id: u64) {
        lock(&self.clients).remove(&id);
    }

    /// Number of connected clients.
    pub(crate) fn len(&self) -> usize {
        lock(&self.clients).len()
    }

    /// A client by id.
    pub(crate) fn get(&self, id: u64) -> Option<Arc<ClientHandle>> {
        lock(&self.clients).get(&id).cloned()
    }

    /// Every client, oldest first.
    pub(crate) fn all(&self) -> Vec<Arc<ClientHandle>> {
        lock(&self.clients).values().cloned().collect()
    }
}
