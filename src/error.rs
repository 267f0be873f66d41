//! Errors returned by the receive family of [`Subscriber`](crate::Subscriber).
//!
//! One small enum per operation, variants named for the state that stopped
//! the call. Receiving never hands a message back: a failed receive simply
//! took nothing.

use std::error::Error;
use std::fmt;

/// Why a blocking [`recv`](crate::Subscriber::recv) returned no message.
///
/// Both variants are final: every later receive returns the same error.
/// Messages queued before the subscriber stopped are always delivered first.
///
/// # Examples
///
/// ```
/// use tannoy::{Broker, RecvError};
///
/// let broker = Broker::new();
/// let sub = broker.subscriber();
/// broker.close();
/// assert_eq!(sub.recv(), Err(RecvError::Closed));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecvError {
    /// The broker was closed (or its last [`Broker`](crate::Broker) handle
    /// dropped) and the queue is drained.
    Closed,
    /// The subscriber's queue overflowed under
    /// [`OverflowPolicy::Disconnect`](crate::OverflowPolicy::Disconnect): the
    /// broker unsubscribed it from everything, as Redis disconnects a client
    /// over its output-buffer limit, and the queue is drained.
    Disconnected,
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Closed => "receiving on a closed broker",
            Self::Disconnected => "subscriber disconnected after its queue overflowed",
        })
    }
}

impl Error for RecvError {}

/// Why [`try_recv`](crate::Subscriber::try_recv) returned no message.
///
/// # Examples
///
/// ```
/// use tannoy::{Broker, TryRecvError};
///
/// let broker = Broker::new();
/// let sub = broker.subscriber();
/// assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TryRecvError {
    /// Nothing is queued right now; a later call may succeed.
    Empty,
    /// The broker was closed and the queue is drained.
    Closed,
    /// The subscriber was disconnected for overflowing its queue, and the
    /// queue is drained. See [`RecvError::Disconnected`].
    Disconnected,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("receiving on an empty queue"),
            Self::Closed => RecvError::Closed.fmt(f),
            Self::Disconnected => RecvError::Disconnected.fmt(f),
        }
    }
}

impl Error for TryRecvError {}

impl From<RecvError> for TryRecvError {
    fn from(err: RecvError) -> Self {
        match err {
            RecvError::Closed => Self::Closed,
            RecvError::Disconnected => Self::Disconnected,
        }
    }
}

/// Why [`recv_timeout`](crate::Subscriber::recv_timeout) returned no message.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tannoy::{Broker, RecvTimeoutError};
///
/// let broker = Broker::new();
/// let sub = broker.subscriber();
/// assert_eq!(
///     sub.recv_timeout(Duration::from_millis(1)),
///     Err(RecvTimeoutError::Timeout)
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecvTimeoutError {
    /// Nothing arrived before the timeout; a later call may succeed.
    Timeout,
    /// The broker was closed and the queue is drained.
    Closed,
    /// The subscriber was disconnected for overflowing its queue, and the
    /// queue is drained. See [`RecvError::Disconnected`].
    Disconnected,
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("timed out waiting on an empty queue"),
            Self::Closed => RecvError::Closed.fmt(f),
            Self::Disconnected => RecvError::Disconnected.fmt(f),
        }
    }
}

impl Error for RecvTimeoutError {}

impl From<RecvError> for RecvTimeoutError {
    fn from(err: RecvError) -> Self {
        match err {
            RecvError::Closed => Self::Closed,
            RecvError::Disconnected => Self::Disconnected,
        }
    }
}
