//! The bridge's connection state, as its owner sees it.

/// Whether the bridge is connected to the server.
///
/// | state | meaning | next |
/// |---|---|---|
/// | `Connecting` | between connections (after a loss; the first connection is made by `start`) | `Connected` once connected and resubscribed, `Closed` |
/// | `Connected` | relaying; every name held locally is subscribed upstream, or about to be | `Connecting` when the connection is lost, `Closed` |
/// | `Closed` | shut down, or the broker closed; final | |
///
/// # Examples
///
/// ```
/// use tannoy_redis::State;
///
/// assert_ne!(State::Connected, State::Connecting);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Reconnecting, with backoff, after the connection was lost.
    Connecting,
    /// Connected and relaying.
    Connected,
    /// Shut down, or the broker closed. Final.
    Closed,
}

/// A snapshot of the bridge's connection: its [`State`] and how many
/// outages it has had.
///
/// # Examples
///
/// ```
/// let status = tannoy_redis::Status::default();
/// assert_eq!(status.state(), tannoy_redis::State::Connecting);
/// assert_eq!(status.outages(), 0);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Status {
    /// Connected or not.
    pub(crate) state: State,
    /// Connections lost so far (each one is one gap notice).
    pub(crate) outages: u64,
}

impl Default for Status {
    /// `Connecting`, no outages: the state before the first connection.
    fn default() -> Self {
        Self {
            state: State::Connecting,
            outages: 0,
        }
    }
}

impl Status {
    /// Connected or not.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tannoy_redis::Status::default().state(), tannoy_redis::State::Connecting);
    /// ```
    pub fn state(&self) -> State {
        self.state
    }

    /// How many times the bridge has lost its connection since it started.
    /// Each loss is announced once on [`GAP_CHANNEL`](crate::GAP_CHANNEL),
    /// carrying this number.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tannoy_redis::Status::default().outages(), 0);
    /// ```
    pub fn outages(&self) -> u64 {
        self.outages
    }
}
