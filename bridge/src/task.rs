//! The bridge's task: follows local interest, keeps the upstream
//! subscriptions equal to it, and reconnects with backoff.
//!
//! | phase | waits for | on success | on failure |
//! |---|---|---|---|
//! | session | interest changes, sync requests, health-check ticks, loss, shutdown | stays | loss: gap notice, `Connecting`, backoff |
//! | backoff | a timer (doubling, `min`..`max`, with jitter), shutdown | connect | |
//! | connect | the server | resubscribe everything wanted, `Connected`, session | backoff |
//!
//! While the server is away the task holds only the set of names wanted
//! (bounded by what local subscribers hold; the interest watch coalesces
//! per name) and queues nothing: publishes fail at once with
//! [`ErrorKind::Disconnected`], and upstream messages published meanwhile
//! are lost, which the gap notice announces.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tannoy::{Broker, InterestWatch};
use tokio::sync::{mpsc, oneshot, watch};

use crate::GAP_CHANNEL;
use crate::error::{Error, ErrorKind};
use crate::names::Names;
use crate::status::{State, Status};
use crate::upstream::{Conns, Dial, Link};

/// A request to answer once upstream subscriptions match local interest.
pub(crate) type SyncRequest = oneshot::Sender<Result<(), Error>>;

/// Reconnection and health-check timing.
#[derive(Debug, Clone)]
pub(crate) struct Timing {
    /// First delay after a loss.
    pub(crate) backoff_min: Duration,
    /// Longest delay between attempts.
    pub(crate) backoff_max: Duration,
    /// How often an idle connection is checked with `PING`.
    pub(crate) health_check: Duration,
}

/// What the task shares with the [`Bridge`](crate::Bridge) handle.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The local broker.
    pub(crate) broker: Broker,
    /// The current connections, for publishing; `None` between
    /// connections.
    pub(crate) conn: Mutex<Option<Conns>>,
    /// The connection state, for the owner.
    pub(crate) status: watch::Sender<Status>,
}

impl Shared {
    /// The current connections, if any.
    pub(crate) fn conn(&self) -> Option<Conns> {
        self.conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the current connections.
    fn set_conn(&self, conn: Option<Conns>) {
        *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = conn;
    }

    /// Sets the state.
    fn set_state(&self, state: State) {
        self.status.send_modify(|s| s.state = state);
    }
}

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The connection failed or a command on it did.
    Lost,
    /// Shutdown was asked for, or the bridge handle was dropped.
    Shutdown,
    /// The broker closed: nothing will ever be subscribed again.
    BrokerClosed,
}

/// The task's inputs.
#[derive(Debug)]
pub(crate) struct Task {
    /// Shared with the handle.
    pub(crate) shared: Arc<Shared>,
    /// How to connect.
    pub(crate) dial: Dial,
    /// Backoff and health checks.
    pub(crate) timing: Timing,
    /// Local interest.
    pub(crate) watch: InterestWatch,
    /// Sync requests from the handle.
    pub(crate) syncs: mpsc::Receiver<SyncRequest>,
    /// Becomes `true` (or its sender is dropped) on shutdown.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Names wanted upstream: local interest, as read so far.
    pub(crate) wanted: Names,
    /// Connection attempts so far: picks the next node to try.
    pub(crate) attempts: usize,
}

impl Task {
    /// Runs until shutdown or the broker closes, starting on `link`, which
    /// holds `have` upstream.
    pub(crate) async fn run(mut self, link: Link, have: Names) {
        let mut link = Some((link, have));
        let mut backoff = self.timing.backoff_min;
        loop {
            let current = match link.take() {
                Some(current) => current,
                None => {
                    let delay = jitter(backoff);
                    backoff = (backoff * 2).min(self.timing.backoff_max);
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shut(&mut self.shutdown) => break,
                    }
                    if self.shared.broker.is_closed() {
                        break;
                    }
                    self.attempts = self.attempts.wrapping_add(1);
                    let attempt = tokio::select! {
                        attempt = Link::connect(&self.dial, &self.shared.broker, self.attempts) => attempt,
                        () = shut(&mut self.shutdown) => break,
                    };
                    match attempt {
                        Ok(current) => {
                            backoff = self.timing.backoff_min;
                            (current, Names::default())
                        }
                        Err(_) => continue,
                    }
                }
            };
            let (link, have) = current;
            let relays = link.relays.clone();
            let end = self.session(link, have).await;
            self.shared.set_conn(None);
            for relay in relays {
                relay.retire();
            }
            match end {
                End::Lost => {
                    let outage = {
                        let mut outages = 0;
                        self.shared.status.send_modify(|s| {
                            s.state = State::Connecting;
                            s.outages += 1;
                            outages = s.outages;
                        });
                        outages
                    };
                    self.shared
                        .broker
                        .publish(GAP_CHANNEL, outage.to_string().into_bytes());
                }
                End::Shutdown | End::BrokerClosed => break,
            }
        }
        self.shared.set_conn(None);
        self.shared.set_state(State::Closed);
        // Sync requests still waiting learn that they never will be.
        self.syncs.close();
        while let Ok(request) = self.syncs.try_recv() {
            let _ = request.send(Err(Error::from_kind(ErrorKind::Closed)));
        }
    }

    /// Reads every pending interest change; `false` once the broker closed.
    fn drain(&mut self) -> bool {
        while let Some(change) = self.watch.try_next() {
            self.wanted.apply(change);
        }
        !self.shared.broker.is_closed()
    }

    /// One connection's life: resubscribe, then follow interest until the
    /// connection is lost or the bridge stops.
    async fn session(&mut self, mut link: Link, mut have: Names) -> End {
        let lost = Arc::clone(&link.lost);
        if !self.drain() {
            return End::BrokerClosed;
        }
        if link.reconcile(&self.wanted, &mut have).await.is_err() {
            return End::Lost;
        }
        self.shared.set_conn(Some(link.conns.clone()));
        self.shared.set_state(State::Connected);
        let mut health = tokio::time::interval(self.timing.health_check);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        health.tick().await;
        loop {
            tokio::select! {
                biased;
                () = shut(&mut self.shutdown) => return End::Shutdown,
                () = lost.notified() => return End::Lost,
                change = self.watch.next() => {
                    let Some(change) = change else { return End::BrokerClosed };
                    self.wanted.apply(change);
                    if !self.drain() {
                        return End::BrokerClosed;
                    }
                    if link.reconcile(&self.wanted, &mut have).await.is_err() {
                        return End::Lost;
                    }
                }
                request = self.syncs.recv() => {
                    let Some(request) = request else { return End::Shutdown };
                    if !self.drain() {
                        let _ = request.send(Err(Error::from_kind(ErrorKind::Closed)));
                        return End::BrokerClosed;
                    }
                    match link.reconcile(&self.wanted, &mut have).await {
                        Ok(()) => {
                            let _ = request.send(Ok(()));
                        }
                        Err(e) => {
                            let _ = request.send(Err(Error::with_source(ErrorKind::Disconnected, e)));
                            return End::Lost;
                        }
                    }
                }
                _ = health.tick() => {
                    if link.ping().await.is_err() {
                        return End::Lost;
                    }
                }
            }
        }
    }
}

/// Resolves when shutdown is asked for or the handle is gone.
async fn shut(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender (the handle) was dropped: shut down too.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// `delay` plus up to a quarter more, so that many processes losing the
/// same server do not all come back in the same millisecond.
fn jitter(delay: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let quarter = delay / 4;
    let extra = quarter.mul_f64(f64::from(nanos % 1000) / 1000.0);
    delay + extra
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_quarter() {
        for ms in [0, 1, 100, 30_000] {
            let d = Duration::from_millis(ms);
            let j = jitter(d);
            assert!(j >= d && j <= d + d / 4, "{d:?} -> {j:?}");
        }
    }
}
