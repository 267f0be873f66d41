//! One client's protocol state: what commands read and change (protocol
//! version, authentication, subscriptions, transaction, reply mode) and
//! the output they write to.
//!
//! The socket side of a connection lives in [`connection`](crate::connection);
//! commands see only a [`Session`], so they never depend on the transport
//! (plain TCP today, TLS later).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tannoy::TryRecvError;

use crate::clients::ClientHandle;
use crate::config::Overflow;
use crate::output::{Output, Protocol};
use crate::server::Shared;

/// Patterns held, in the order they were subscribed: Redis 7.0 confirms a
/// no-argument `PUNSUBSCRIBE` in that order, and the engine keeps no order.
#[derive(Debug, Default)]
pub(crate) struct PatternOrder {
    /// Pattern to its position.
    positions: HashMap<Bytes, u64>,
    /// Position to pattern, in order.
    order: BTreeMap<u64, Bytes>,
    /// The next position.
    next: u64,
}

impl PatternOrder {
    /// Records `pattern` as held (a pattern already held keeps its place).
    pub(crate) fn insert(&mut self, pattern: &Bytes) {
        if !self.positions.contains_key(pattern) {
            self.positions.insert(pattern.clone(), self.next);
            self.order.insert(self.next, pattern.clone());
            self.next += 1;
        }
    }

    /// Records `pattern` as no longer held.
    pub(crate) fn remove(&mut self, pattern: &[u8]) {
        if let Some(position) = self.positions.remove(pattern) {
            self.order.remove(&position);
        }
    }

    /// Every pattern held, oldest first.
    pub(crate) fn all(&self) -> Vec<Bytes> {
        self.order.values().cloned().collect()
    }

    /// How many patterns are held.
    pub(crate) fn len(&self) -> usize {
        self.positions.len()
    }

    /// Forgets every pattern.
    pub(crate) fn clear(&mut self) {
        self.positions.clear();
        self.order.clear();
    }
}

/// `CLIENT REPLY` state, as Redis's `REPLY_OFF` / `REPLY_SKIP` flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ReplyMode {
    /// Replies are sent.
    #[default]
    On,
    /// No replies until `CLIENT REPLY ON`.
    Off,
    /// The next command's reply is skipped (set by `CLIENT REPLY SKIP`).
    SkipNext,
    /// This command's reply is skipped.
    Skip,
}

/// A `MULTI` transaction being queued.
#[derive(Debug, Default)]
pub(crate) struct Transaction {
    /// The commands queued, to run at `EXEC`.
    pub(crate) queued: Vec<Vec<Bytes>>,
    /// A command was refused while queuing: `EXEC` will abort.
    pub(crate) failed: bool,
}

/// Whether a connection is to close, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closing {
    /// Open.
    No,
    /// Close once the output queued so far is written (`QUIT`, a protocol
    /// error, `CLIENT KILL` of oneself); nothing more is queued.
    AfterReply,
    /// Close at once, discarding output (over the output-buffer limit,
    /// the request size limit, a `HOST:` probe).
    Now,
}

/// Messages moved from the engine queue into the output per batch, so a
/// flood cannot keep a connection from reading or writing for long.
const FORWARD_BATCH: usize = 4096;

/// One client's protocol state; see the module docs.
#[derive(Debug)]
pub(crate) struct Session {
    /// Server-wide state.
    pub(crate) shared: Arc<Shared>,
    /// This client as the registry sees it (and its engine subscriber).
    pub(crate) handle: Arc<ClientHandle>,
    /// Output not yet written.
    pub(crate) out: Output,
    /// Whether the client has authenticated (or needs not).
    pub(crate) authenticated: bool,
    /// `CLIENT SETNAME`.
    pub(crate) name: Option<Bytes>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub(crate) lib_name: Option<Bytes>,
    /// `CLIENT SETINFO LIB-VER`.
    pub(crate) lib_ver: Option<Bytes>,
    /// The database `SELECT`ed (pub/sub ignores it, as in Redis).
    pub(crate) db: i64,
    /// `CLIENT REPLY` state.
    pub(crate) reply: ReplyMode,
    /// `CLIENT NO-EVICT`.
    pub(crate) no_evict: bool,
    /// The transaction being queued, after `MULTI`.
    pub(crate) multi: Option<Transaction>,
    /// Running the commands of an `EXEC`.
    pub(crate) in_exec: bool,
    /// Patterns held, in subscription order.
    pub(crate) patterns: PatternOrder,
    /// Subscribed mode (Redis's `CLIENT_PUBSUB` flag).
    pub(crate) subscribed: bool,
    /// Whether and how the connection closes.
    pub(crate) closing: Closing,
    /// The full name of the last command looked up (`NULL` if unknown).
    pub(crate) last_command: &'static str,
    /// When the last command ran.
    pub(crate) last_interaction: Instant,
    /// The engine queue has ended (the broker was closed): stop receiving.
    pub(crate) subscriber_ended: bool,
    /// When output first reached the soft limit, while it stays there.
    soft_limit_since: Option<Instant>,
    /// Input bytes not yet parsed, for `CLIENT LIST` (`qbuf`).
    pub(crate) query_buffer: usize,
    /// Read buffer capacity, for `CLIENT LIST`.
    pub(crate) read_buffer_size: usize,
    /// Arguments of a request still arriving, for `CLIENT LIST`.
    pub(crate) argv_bytes: usize,
}

impl Session {
    /// The state of a newly connected client.
    pub(crate) fn new(shared: Arc<Shared>, handle: Arc<ClientHandle>) -> Self {
        let authenticated = !shared.config.has_password();
        Self {
            shared,
            handle,
            out: Output::new(),
            authenticated,
            name: None,
            lib_name: None,
            lib_ver: None,
            db: 0,
            reply: ReplyMode::On,
            no_evict: false,
            multi: None,
            in_exec: false,
            patterns: PatternOrder::default(),
            subscribed: false,
            closing: Closing::No,
            last_command: "NULL",
            last_interaction: Instant::now(),
            subscriber_ended: false,
            soft_limit_since: None,
            query_buffer: 0,
            read_buffer_size: 0,
            argv_bytes: 0,
        }
    }

    /// Whether commands other than `AUTH`, `HELLO`, `QUIT` and `RESET` are
    /// refused with `NOAUTH` (Redis's `authRequired`).
    pub(crate) fn auth_required(&self) -> bool {
        !self.authenticated && self.shared.config.has_password()
    }

    /// The protocol the client speaks.
    pub(crate) fn protocol(&self) -> Protocol {
        self.out.protocol()
    }

    /// Checks a user name and password as Redis's `default` user would:
    /// with no password set, any password is accepted for `default`; any
    /// other user does not exist. On success the client is authenticated.
    pub(crate) fn authenticate(&mut self, user: &[u8], password: &[u8]) -> bool {
        let config = &self.shared.config;
        let ok =
            user == b"default" && (!config.has_password() || config.password_matches(password));
        if ok {
            self.authenticated = true;
        }
        ok
    }

    /// Moves every message waiting in the engine queue into the output,
    /// so that what comes next in the output is ordered after them.
    pub(crate) fn forward_all(&mut self) {
        while self.forward_messages() == FORWARD_BATCH {}
    }

    /// Moves up to one batch of waiting messages into the output; returns
    /// how many it moved.
    pub(crate) fn forward_messages(&mut self) -> usize {
        if self.subscriber_ended || self.closing != Closing::No {
            return 0;
        }
        let subscriber = self.handle.subscriber();
        if subscriber.is_empty() {
            // An ended queue is noticed by the connection's wait instead.
            return 0;
        }
        let mut moved = 0;
        while moved < FORWARD_BATCH {
            match subscriber.try_recv() {
                Ok(message) => {
                    self.out.message(message);
                    moved += 1;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    // The engine queue overflowed under `Disconnect`: the
                    // connection fell that far behind, and goes as Redis
                    // drops a client over its output limit.
                    self.closing = Closing::Now;
                    break;
                }
                Err(_) => {
                    // The broker was closed: nothing more will arrive.
                    self.subscriber_ended = true;
                    break;
                }
            }
        }
        moved
    }

    /// Applies the pub/sub output-buffer limit (Redis's
    /// `checkClientOutputBufferLimits` for the `pubsub` class), as of
    /// `now`. Under [`Overflow::Disconnect`] a client over the limit is
    /// marked to close at once; under [`Overflow::DropOldest`] its oldest
    /// messages are dropped instead. Returns when to check again, if the
    /// soft limit's clock is running.
    pub(crate) fn enforce_output_limit(&mut self, now: Instant) -> Option<Instant> {
        if !self.subscribed || self.closing == Closing::Now {
            self.soft_limit_since = None;
            return None;
        }
        let limit = self.shared.config.pubsub_limit();
        let (hard, soft) = (limit.hard_bytes(), limit.soft_bytes());
        let used = self.out.pending() as u64;
        match self.shared.config.overflow() {
            Overflow::DropOldest => {
                let bound = if hard > 0 { hard } else { soft };
                if bound > 0 {
                    while self.out.pending() as u64 > bound && self.out.drop_oldest_message() {}
                }
                None
            }
            Overflow::Disconnect => {
                if hard > 0 && used >= hard {
                    self.disconnect_over_limit();
                    return None;
                }
                if soft == 0 || used < soft {
                    self.soft_limit_since = None;
                    return None;
                }
                let since = *self.soft_limit_since.get_or_insert(now);
                let allowed = Duration::from_secs(limit.soft_seconds());
                if now.duration_since(since) > allowed {
                    self.disconnect_over_limit();
                    None
                } else {
                    Some(since + allowed + Duration::from_millis(1))
                }
            }
        }
    }

    /// Closes the client for overcoming its output-buffer limit.
    fn disconnect_over_limit(&mut self) {
        self.closing = Closing::Now;
        self.shared.stats.count_limit_disconnection();
    }

    /// Publishes this client's state for `CLIENT LIST` and the fault API.
    pub(crate) fn publish_state(&self) {
        let (channels, shard_channels) = {
            let subscriber = self.handle.subscriber();
            (
                subscriber.subscription_count(),
                subscriber.shard_subscription_count(),
            )
        };
        let mut state = self.handle.state();
        state.name.clone_from(&self.name);
        state.lib_name.clone_from(&self.lib_name);
        state.lib_ver.clone_from(&self.lib_ver);
        state.db = self.db;
        state.subscribed = self.subscribed;
        state.multi = self.multi.as_ref().map(|t| t.queued.len());
        state.patterns = self.patterns.len();
        state.channels = channels.saturating_sub(self.patterns.len());
        state.shard_channels = shard_channels;
        state.last_command = self.last_command;
        state.last_interaction = self.last_interaction;
        state.protocol = self.protocol().version();
        state.query_buffer = self.query_buffer;
        state.read_buffer_size = self.read_buffer_size;
        state.query_buffer_free = self.read_buffer_size.saturating_sub(self.query_buffer);
        state.argv_bytes = self.argv_bytes;
        state.pending_output = self.out.pending();
        state.output_chunks = self.out.chunk_count();
        state.dropped = self.dropped();
        state.closing = self.closing != Closing::No;
        state.no_evict = self.no_evict;
    }

    /// Messages dropped for this client: by the engine's queue and by the
    /// output's drop-oldest.
    pub(crate) fn dropped(&self) -> u64 {
        self.out.dropped() + self.handle.subscriber().dropped()
    }

    /// Updates subscribed mode after an unsubscribe-type command: it ends
    /// when nothing of any kind is held.
    pub(crate) fn refresh_subscribed(&mut self) {
        let subscriber = self.handle.subscriber();
        if subscriber.subscription_count() + subscriber.shard_subscription_count() == 0 {
            self.subscribed = false;
        }
    }
}
