//! The bridge's errors.

use std::error::Error as StdError;
use std::fmt;

/// What went wrong in a bridge operation.
///
/// # Examples
///
/// ```
/// use tannoy_redis::{Error, ErrorKind};
///
/// let err = Error::from_kind(ErrorKind::Disconnected);
/// assert_eq!(err.kind(), ErrorKind::Disconnected);
/// assert_eq!(err.to_string(), "not connected to the Redis server");
/// ```
#[derive(Debug)]
pub struct Error {
    /// The kind of failure.
    kind: ErrorKind,
    /// The Redis client's error, when it has one.
    source: Option<redis::RedisError>,
}

/// The kind of an [`Error`].
///
/// # Examples
///
/// ```
/// use tannoy_redis::ErrorKind;
///
/// assert_ne!(ErrorKind::Disconnected, ErrorKind::Closed);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The builder was given no broker.
    NoBroker,
    /// The builder was given no URL, or an unusable one.
    InvalidConfig,
    /// The bridge could not connect (or authenticate) to the server.
    Connect,
    /// The bridge is between connections: the server went away and it is
    /// reconnecting. Nothing was sent; retry later, or wait for
    /// [`Bridge::status_watch`](crate::Bridge::status_watch) to report
    /// [`State::Connected`](crate::State::Connected).
    Disconnected,
    /// The server answered with an error, or did not answer in time.
    Upstream,
    /// The bridge was shut down, or its broker closed.
    Closed,
}

impl Error {
    /// An error of `kind` with no underlying Redis error.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = tannoy_redis::Error::from_kind(tannoy_redis::ErrorKind::Closed);
    /// assert!(std::error::Error::source(&err).is_none());
    /// ```
    pub fn from_kind(kind: ErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// An error of `kind` caused by `source`.
    pub(crate) fn with_source(kind: ErrorKind, source: redis::RedisError) -> Self {
        Self {
            kind,
            source: Some(source),
        }
    }

    /// The kind of failure.
    ///
    /// # Examples
    ///
    /// ```
    /// use tannoy_redis::{Error, ErrorKind};
    ///
    /// assert_eq!(Error::from_kind(ErrorKind::NoBroker).kind(), ErrorKind::NoBroker);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The Redis client's error behind this one, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use tannoy_redis::{Error, ErrorKind};
    ///
    /// assert!(Error::from_kind(ErrorKind::Disconnected).redis_error().is_none());
    /// ```
    pub fn redis_error(&self) -> Option<&redis::RedisError> {
        self.source.as_ref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::NoBroker => "no broker given to the bridge builder",
            ErrorKind::InvalidConfig => "invalid bridge configuration",
            ErrorKind::Connect => "cannot connect to the Redis server",
            ErrorKind::Disconnected => "not connected to the Redis server",
            ErrorKind::Upstream => "the Redis server failed the command",
            ErrorKind::Closed => "the bridge is closed",
        };
        match &self.source {
            Some(source) => write!(f, "{what}: {source}"),
            None => f.write_str(what),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_ref().map(|e| e as &(dyn StdError + 'static))
    }
}
