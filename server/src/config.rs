//! Settings: the ones fixed at start ([`Overflow`]), and the ones `CONFIG
//! SET` changes while the server runs (password, `maxclients`, the pub/sub
//! output-buffer limit, `proto-max-bulk-len`), plus Redis-shaped values for
//! parameters this server has no use for.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

/// Locks `mutex`, ignoring poisoning: every value behind the server's
/// locks is valid after any partial update (each is a plain assignment).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Redis's `client-output-buffer-limit` for the `pubsub` class: how much
/// unsent output a client in subscribed mode may have.
///
/// The default is Redis's: a 32 MiB hard limit, and an 8 MiB soft limit
/// that may be exceeded for at most 60 seconds. A limit of 0 is off.
///
/// # Examples
///
/// ```
/// use tannoy_server::OutputBufferLimit;
///
/// let limit: OutputBufferLimit = "32mb 8mb 60".parse()?;
/// assert_eq!(limit, OutputBufferLimit::default());
/// assert_eq!(limit.hard_bytes(), 32 * 1024 * 1024);
/// assert_eq!(limit.to_string(), "33554432 8388608 60");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OutputBufferLimit {
    /// Disconnect as soon as this many bytes are pending (0: no limit).
    hard: u64,
    /// Disconnect when at least this many bytes stay pending ...
    soft: u64,
    /// ... for longer than this many seconds.
    soft_seconds: u64,
}

impl OutputBufferLimit {
    /// A limit of `hard` bytes, and of `soft` bytes for at most
    /// `soft_seconds` seconds; 0 turns a byte limit off.
    ///
    /// # Examples
    ///
    /// ```
    /// use tannoy_server::OutputBufferLimit;
    ///
    /// let limit = OutputBufferLimit::new(1 << 20, 0, 0);
    /// assert_eq!(limit.to_string(), "1048576 0 0");
    /// ```
    pub fn new(hard: u64, soft: u64, soft_seconds: u64) -> Self {
        Self {
            hard,
            soft,
            soft_seconds,
        }
    }

    /// No limit at all.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tannoy_server::OutputBufferLimit::unlimited().hard_bytes(), 0);
    /// ```
    pub fn unlimited() -> Self {
        Self::new(0, 0, 0)
    }

    /// The hard limit in bytes (0: none).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tannoy_server::OutputBufferLimit::new(5, 4, 3).hard_bytes(), 5);
    /// ```
    pub fn hard_bytes(&self) -> u64 {
        self.hard
    }

    /// The soft limit in bytes (0: none).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tannoy_server::OutputBufferLimit::new(5, 4, 3).soft_bytes(), 4);
    /// ```
    pub fn soft_bytes(&self) -> u64 {
        self.soft
    }

    /// How long, in seconds, output may stay at or above the soft limit.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tannoy_server::OutputBufferLimit::new(5, 4, 3).soft_seconds(), 3);
    /// ```
    pub fn soft_seconds(&self) -> u64 {
        self.soft_seconds
    }
}

impl Default for OutputBufferLimit {
    /// Redis's default for the `pubsub` class: `32mb 8mb 60`.
    fn default() -> Self {
        Self::new(32 * 1024 * 1024, 8 * 1024 * 1024, 60)
    }
}

impl fmt::Display for OutputBufferLimit {
    /// `HARD SOFT SECONDS` in bytes, as `CONFIG GET` shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.hard, self.soft, self.soft_seconds)
    }
}

/// A setting value that could not be parsed.
///
/// # Examples
///
/// ```
/// let err = "lots 8mb 60".parse::<tannoy_server::OutputBufferLimit>().unwrap_err();
/// assert_eq!(err.to_string(), "invalid memory amount 'lots'");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseSettingError {
    /// What was wrong, as a lowercase fragment.
    message: String,
}

impl ParseSettingError {
    /// An error saying `message` (a lowercase fragment).
    pub(crate) fn new(message: String) -> Self {
        Self { message }
    }
}

impl fmt::Display for ParseSettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseSettingError {}

/// Parses a Redis memory amount: a plain number of bytes, or one with a
/// unit (`k` = 1000, `kb` = 1024, `m`, `mb`, `g`, `gb`; any case).
///
/// # Errors
///
/// [`ParseSettingError`] when `text` is not such an amount.
pub(crate) fn parse_memory(text: &str) -> Result<u64, ParseSettingError> {
    let lower = text.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(split);
    let multiplier: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => u64::MAX,
    };
    number
        .parse::<u64>()
        .ok()
        .filter(|_| multiplier != u64::MAX)
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| ParseSettingError {
            message: format!("invalid memory amount '{text}'"),
        })
}

impl FromStr for OutputBufferLimit {
    type Err = ParseSettingError;

    /// Parses `HARD SOFT SECONDS`, with memory units as Redis accepts them
    /// (`32mb 8mb 60`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [hard, soft, seconds] = parts[..] else {
            return Err(ParseSettingError {
                message: format!("expected 'HARD SOFT SECONDS', got '{text}'"),
            });
        };
        let soft_seconds = seconds.parse::<u64>().map_err(|_| ParseSettingError {
            message: format!("invalid number of seconds '{seconds}'"),
        })?;
        Ok(Self::new(
            parse_memory(hard)?,
            parse_memory(soft)?,
            soft_seconds,
        ))
    }
}

/// What happens to a subscribed client whose unsent output passes its
/// [`OutputBufferLimit`].
///
/// # Examples
///
/// ```
/// use tannoy_server::Overflow;
///
/// assert_eq!("drop-oldest".parse::<Overflow>()?, Overflow::DropOldest);
/// assert_eq!(Overflow::default(), Overflow::Disconnect);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Overflow {
    /// Redis's behaviour (the default): the client is disconnected,
    /// losing its subscriptions and everything not yet sent to it.
    #[default]
    Disconnect,
    /// The client stays connected and its oldest unsent messages are
    /// dropped to stay within the hard limit (the soft limit when there is
    /// no hard one). Drops are counted: `CLIENT LIST` shows them as
    /// `dropped=N` and `INFO stats` as `pubsub_dropped_messages`.
    DropOldest,
}

impl FromStr for Overflow {
    type Err = ParseSettingError;

    /// `disconnect` or `drop-oldest`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "disconnect" => Ok(Self::Disconnect),
            "drop-oldest" => Ok(Self::DropOldest),
            _ => Err(ParseSettingError {
                message: format!("expected 'disconnect' or 'drop-oldest', got '{text}'"),
            }),
        }
    }
}

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Disconnect => "disconnect",
            Self::DropOldest => "drop-oldest",
        })
    }
}

/// Redis's default `maxclients`.
pub(crate) const DEFAULT_MAXCLIENTS: usize = 10_000;

/// Redis's default `proto-max-bulk-len` (512 MiB).
pub(crate) const DEFAULT_MAX_BULK_LEN: u64 = 512 * 1024 * 1024;

/// Redis's default `client-query-buffer-limit` (1 GiB): a client whose
/// request in progress grows past it is disconnected.
pub(crate) const DEFAULT_QUERY_BUFFER_LIMIT: u64 = 1024 * 1024 * 1024;

/// Smallest `proto-max-bulk-len` Redis accepts (1 MiB).
const MIN_MAX_BULK_LEN: u64 = 1024 * 1024;

/// The `normal` and `replica` classes of `client-output-buffer-limit`, shown
/// by `CONFIG GET` with Redis's defaults; only `pubsub` has an effect here.
const OTHER_BUFFER_CLASSES: &str = "normal 0 0 0 slave 268435456 67108864 60";

/// Parameters with no effect here, answered with Redis 7.0's defaults so
/// that clients and fixtures reading them find what they expect. `CONFIG
/// SET` stores a new value for the mutable ones, with no effect.
/// `(name, default, mutable)`.
const INERT_PARAMETERS: &[(&str, &str, bool)] = &[
    ("appendonly", "no", true),
    ("bind", "127.0.0.1", false),
    ("busy-reply-threshold", "5000", true),
    ("client-query-buffer-limit", "1073741824", true),
    ("cluster-enabled", "no", false),
    ("daemonize", "no", false),
    ("databases", "16", false),
    ("dbfilename", "dump.rdb", true),
    ("hz", "10", true),
    ("io-threads", "1", false),
    ("latency-tracking", "yes", true),
    ("loglevel", "notice", true),
    ("lua-time-limit", "5000", true),
    ("maxmemory", "0", true),
    ("maxmemory-clients", "0", true),
    ("maxmemory-policy", "noeviction", true),
    ("notify-keyspace-events", "", true),
    ("protected-mode", "yes", true),
    ("save", "", true),
    ("slowlog-log-slower-than", "10000", true),
    ("slowlog-max-len", "128", true),
    ("tcp-keepalive", "300", true),
    ("timeout", "0", true),
];

/// Why `CONFIG SET` refused a value; rendered by the command as Redis does.
#[derive(Debug)]
pub(crate) enum SetError {
    /// No such parameter.
    Unknown,
    /// The parameter cannot change while the server runs.
    Immutable,
    /// The value is invalid; the reason follows Redis's wording.
    Invalid(String),
}

/// The settings `CONFIG` reads and writes while the server runs.
#[derive(Debug)]
pub(crate) struct Config {
    /// The password of the `default` user; `None` for no password.
    requirepass: Mutex<Option<Bytes>>,
    /// Most clients connected at once.
    maxclients: AtomicUsize,
    /// The pub/sub output-buffer limit.
    pubsub_limit: Mutex<OutputBufferLimit>,
    /// Longest bulk argument a request may carry.
    max_bulk_len: AtomicU64,
    /// Largest request in progress a client may hold.
    query_buffer_limit: AtomicU64,
    /// What a client over its limit suffers; fixed at start.
    overflow: Overflow,
    /// The port the server reports (`CONFIG GET port`, `INFO`); 0 when
    /// it listens for TLS only, as Redis reports it.
    port: AtomicU64,
    /// The TLS port (`CONFIG GET tls-port`); 0 for none.
    tls_port: AtomicU64,
    /// Current values of the inert parameters.
    inert: Mutex<BTreeMap<&'static str, String>>,
}

impl Config {
    /// Settings as given to the builder.
    pub(crate) fn new(
        requirepass: Option<Bytes>,
        maxclients: usize,
        pubsub_limit: OutputBufferLimit,
        overflow: Overflow,
    ) -> Self {
        Self {
            requirepass: Mutex::new(requirepass.filter(|p| !p.is_empty())),
            maxclients: AtomicUsize::new(maxclients),
            pubsub_limit: Mutex::new(pubsub_limit),
            max_bulk_len: AtomicU64::new(DEFAULT_MAX_BULK_LEN),
            query_buffer_limit: AtomicU64::new(DEFAULT_QUERY_BUFFER_LIMIT),
            overflow,
            port: AtomicU64::new(0),
            tls_port: AtomicU64::new(0),
            inert: Mutex::new(
                INERT_PARAMETERS
                    .iter()
                    .map(|&(name, value, _)| (name, value.to_owned()))
                    .collect(),
            ),
        }
    }

    /// The required password, if any.
    pub(crate) fn requirepass(&self) -> Option<Bytes> {
        lock(&self.requirepass).clone()
    }

    /// Whether a password is required.
    pub(crate) fn has_password(&self) -> bool {
        lock(&self.requirepass).is_some()
    }

    /// Whether `password` is the required one (always false without one).
    pub(crate) fn password_matches(&self, password: &[u8]) -> bool {
        lock(&self.requirepass)
            .as_deref()
            .is_some_and(|p| constant_time_eq(p, password))
    }

    /// Most clients at once.
    pub(crate) fn maxclients(&self) -> usize {
        self.maxclients.load(Ordering::Relaxed)
    }

    /// The pub/sub output-buffer limit.
    pub(crate) fn pubsub_limit(&self) -> OutputBufferLimit {
        *lock(&self.pubsub_limit)
    }

    /// The overflow policy.
    pub(crate) fn overflow(&self) -> Overflow {
        self.overflow
    }

    /// Longest bulk argument.
    pub(crate) fn max_bulk_len(&self) -> u64 {
        self.max_bulk_len.load(Ordering::Relaxed)
    }

    /// Largest request in progress.
    pub(crate) fn query_buffer_limit(&self) -> u64 {
        self.query_buffer_limit.load(Ordering::Relaxed)
    }

    /// Records the port the server listens on.
    pub(crate) fn set_port(&self, port: u16) {
        self.port.store(u64::from(port), Ordering::Relaxed);
    }

    /// The port the server listens on.
    pub(crate) fn port(&self) -> u16 {
        u16::try_from(self.port.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Records the TLS port.
    pub(crate) fn set_tls_port(&self, port: u16) {
        self.tls_port.store(u64::from(port), Ordering::Relaxed);
    }

    /// The TLS port (0: none).
    pub(crate) fn tls_port(&self) -> u16 {
        u16::try_from(self.tls_port.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Every parameter with its current value, for `CONFIG GET`.
    pub(crate) fn all(&self) -> Vec<(String, String)> {
        let limit = self.pubsub_limit();
        let mut all = vec![
            (
                "requirepass".to_owned(),
                self.requirepass()
                    .map(|p| String::from_utf8_lossy(&p).into_owned())
                    .unwrap_or_default(),
            ),
            ("maxclients".to_owned(), self.maxclients().to_string()),
            (
                "client-output-buffer-limit".to_owned(),
                format!("{OTHER_BUFFER_CLASSES} pubsub {limit}"),
            ),
            (
                "proto-max-bulk-len".to_owned(),
                self.max_bulk_len().to_string(),
            ),
            ("port".to_owned(), self.port().to_string()),
            ("tls-port".to_owned(), self.tls_port().to_string()),
        ];
        let inert = lock(&self.inert);
        all.extend(
            inert
                .iter()
                .filter(|(name, _)| **name != "client-query-buffer-limit")
                .map(|(name, value)| ((*name).to_owned(), value.clone())),
        );
        all.push((
            "client-query-buffer-limit".to_owned(),
            self.query_buffer_limit().to_string(),
        ));
        all
    }

    /// Sets one parameter (`name` already lowercase), as `CONFIG SET` does.
    pub(crate) fn set(&self, name: &str, value: &[u8]) -> Result<(), SetError> {
        let text = String::from_utf8_lossy(value);
        match name {
            "requirepass" => {
                *lock(&self.requirepass) =
                    Some(Bytes::copy_from_slice(value)).filter(|p| !p.is_empty());
            }
            "maxclients" => {
                let n = parse_integer(&text)?;
                if !(1..=u32::MAX as i128).contains(&n) {
                    return Err(SetError::Invalid(
                        "argument must be between 1 and 4294967295 inclusive".to_owned(),
                    ));
                }
                self.maxclients
                    .store(usize::try_from(n).unwrap_or(usize::MAX), Ordering::Relaxed);
            }
            "proto-max-bulk-len" => {
                let n = parse_memory_setting(&text)?;
                if n < MIN_MAX_BULK_LEN || n > i64::MAX as u64 {
                    return Err(SetError::Invalid(
                        "argument must be between 1048576 and 9223372036854775807 inclusive"
                            .to_owned(),
                    ));
                }
                self.max_bulk_len.store(n, Ordering::Relaxed);
            }
            "client-query-buffer-limit" => {
                let n = parse_memory_setting(&text)?;
                if n < MIN_MAX_BULK_LEN {
                    return Err(SetError::Invalid(
                        "argument must be between 1048576 and 9223372036854775807 inclusive"
                            .to_owned(),
                    ));
                }
                self.query_buffer_limit.store(n, Ordering::Relaxed);
            }
            "client-output-buffer-limit" => self.set_buffer_limits(&text)?,
            "port" | "tls-port" => return Err(SetError::Immutable),
            _ => {
                let mut inert = lock(&self.inert);
                let Some(&(static_name, _, mutable)) =
                    INERT_PARAMETERS.iter().find(|(n, _, _)| *n == name)
                else {
                    return Err(SetError::Unknown);
                };
                if !mutable {
                    return Err(SetError::Immutable);
                }
                inert.insert(static_name, text.into_owned());
            }
        }
        Ok(())
    }

    /// `CONFIG SET client-output-buffer-limit "<class> <hard> <soft> <secs> ..."`.
    fn set_buffer_limits(&self, text: &str) -> Result<(), SetError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.len() % 4 != 0 {
            return Err(SetError::Invalid(
                "Wrong number of arguments in buffer limit configuration.".to_owned(),
            ));
        }
        let mut pubsub = None;
        for group in words.chunks(4) {
            let class = group[0].to_ascii_lowercase();
            if !["normal", "slave", "replica", "pubsub"].contains(&class.as_str()) {
                return Err(SetError::Invalid(
                    "Invalid client class specified in buffer limit configuration.".to_owned(),
                ));
            }
            let limit: OutputBufferLimit = group[1..].join(" ").parse().map_err(|_| {
                SetError::Invalid(
                    "Error in hard, soft or soft_seconds setting in buffer limit configuration."
                        .to_owned(),
                )
            })?;
            if class == "pubsub" {
                pubsub = Some(limit);
            }
        }
        if let Some(limit) = pubsub {
            *lock(&self.pubsub_limit) = limit;
        }
        Ok(())
    }
}

/// An integer setting, as Redis words its failure.
fn parse_integer(text: &str) -> Result<i128, SetError> {
    text.parse::<i128>()
        .map_err(|_| SetError::Invalid("argument couldn't be parsed into an integer".to_owned()))
}

/// A memory setting, as Redis words its failure.
fn parse_memory_setting(text: &str) -> Result<u64, SetError> {
    parse_memory(text).map_err(|_| SetError::Invalid("argument must be a memory value".to_owned()))
}

/// Compares two byte strings in time that depends only on their lengths,
/// so a password check reveals nothing through timing but the length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory amounts use Redis's units.
    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("100").ok(), Some(100));
        assert_eq!(parse_memory("1k").ok(), Some(1000));
        assert_eq!(parse_memory("1KB").ok(), Some(1024));
        assert_eq!(parse_memory("2mb").ok(), Some(2 << 20));
        assert_eq!(parse_memory("1gb").ok(), Some(1 << 30));
        assert!(parse_memory("1tb").is_err());
        assert!(parse_memory("mb").is_err());
        assert!(parse_memory("-1").is_err());
    }

    /// CONFIG SET changes the live settings, and refuses what Redis refuses.
    #[test]
    fn set_live_settings() {
        let config = Config::new(None, 10, OutputBufferLimit::default(), Overflow::Disconnect);
        config
            .set("maxclients", b"5")
            .map_err(|e| format!("{e:?}"))
            .unwrap();
        assert_eq!(config.maxclients(), 5);
        assert!(matches!(
            config.set("maxclients", b"0"),
            Err(SetError::Invalid(_))
        ));
        config
            .set(
                "client-output-buffer-limit",
                b"normal 0 0 0 pubsub 1mb 512kb 10",
            )
            .map_err(|e| format!("{e:?}"))
            .unwrap();
        assert_eq!(
            config.pubsub_limit(),
            OutputBufferLimit::new(1 << 20, 512 << 10, 10)
        );
        assert!(matches!(
            config.set("client-output-buffer-limit", b"pubsub 1mb"),
            Err(SetError::Invalid(_))
        ));
        config
            .set("requirepass", b"pw")
            .map_err(|e| format!("{e:?}"))
            .unwrap();
        assert!(config.password_matches(b"pw") && !config.password_matches(b"px"));
        config
            .set("requirepass", b"")
            .map_err(|e| format!("{e:?}"))
            .unwrap();
        assert!(!config.has_password());
        assert!(matches!(config.set("nope", b"1"), Err(SetError::Unknown)));
        assert!(matches!(
            config.set("databases", b"1"),
            Err(SetError::Immutable)
        ));
    }
}
