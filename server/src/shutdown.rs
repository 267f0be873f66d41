//! Stopping: the signal that ends an accept loop.
//!
//! Stopping a server happens in three steps, in [`Server::stop`] and
//! [`Server::shutdown`](crate::Server::shutdown): the accept loop is told
//! to stop (through this signal) and awaited, so no connection can be
//! admitted afterwards; then every registered connection is killed, which
//! drops its subscriptions at once; then each connection task is awaited
//! until its socket is closed. Connections need no signal of their own:
//! a kill wakes them.
//!
//! [`Server::stop`]: crate::Server::stop

use tokio::sync::watch;

/// Tells an accept loop to stop.
#[derive(Debug)]
pub(crate) struct StopHandle {
    /// Set to `true` to stop.
    sender: watch::Sender<bool>,
}

impl StopHandle {
    /// Signals the stop; idempotent.
    pub(crate) fn stop(&self) {
        self.sender.send_replace(true);
    }
}

/// The accept loops' side of the signal (one clone per loop).
#[derive(Clone, Debug)]
pub(crate) struct Stop {
    /// Sees the `true` sent by [`StopHandle::stop`].
    receiver: watch::Receiver<bool>,
}

impl Stop {
    /// Completes once the stop is signalled (or the handle is dropped,
    /// which also means nobody can want the loop any more).
    pub(crate) async fn wait(&mut self) {
        let _ = self.receiver.wait_for(|&stopped| stopped).await;
    }
}

/// A connected stop handle and signal.
pub(crate) fn channel() -> (StopHandle, Stop) {
    let (sender, receiver) = watch::channel(false);
    (StopHandle { sender }, Stop { receiver })
}
