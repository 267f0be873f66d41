//! What Rust users write instead of a pub/sub engine, in the shape of
//! tokio's mini-redis: one lock around a `HashMap` from channel name to a
//! tokio broadcast channel, created on first subscribe, and pattern
//! subscriptions as a list of (pattern, broadcast channel) scanned with the
//! Redis glob matcher on every publish.
//!
//! Built to be fair: publish allocates nothing (the map is keyed by `Bytes`
//! and looked up with the published `&[u8]` through `Borrow`), one
//! broadcast channel per distinct pattern (not per subscriber and pattern,
//! as Redis scans), and the lock is a parameter so the faster of `Mutex`
//! and `RwLock` can be used.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, RwLock};

use bytes::Bytes;
use tokio::sync::broadcast;

/// The lock around the peer's state: `std::sync::Mutex` or `RwLock`.
pub(crate) trait PeerLock<T>: Sync {
    /// Wraps `value`.
    fn new(value: T) -> Self;
    /// Shared access, as a publish needs.
    fn read(&self) -> impl Deref<Target = T>;
    /// Exclusive access, as a subscribe needs.
    fn write(&self) -> impl DerefMut<Target = T>;
}

impl<T: Send> PeerLock<T> for Mutex<T> {
    fn new(value: T) -> Self {
        Mutex::new(value)
    }
    fn read(&self) -> impl Deref<Target = T> {
        self.lock().unwrap()
    }
    fn write(&self) -> impl DerefMut<Target = T> {
        self.lock().unwrap()
    }
}

impl<T: Send + Sync> PeerLock<T> for RwLock<T> {
    fn new(value: T) -> Self {
        RwLock::new(value)
    }
    fn read(&self) -> impl Deref<Target = T> {
        RwLock::read(self).unwrap()
    }
    fn write(&self) -> impl DerefMut<Target = T> {
        RwLock::write(self).unwrap()
    }
}

/// Everything behind the peer's one lock.
#[derive(Default)]
pub(crate) struct PeerState {
    /// A broadcast channel per subscribed channel name.
    channels: HashMap<Bytes, broadcast::Sender<Bytes>>,
    /// A broadcast channel per subscribed pattern, scanned on publish.
    patterns: Vec<(Bytes, broadcast::Sender<Bytes>)>,
}

/// The hand-written broker.
pub(crate) struct Peer<L> {
    /// The state, behind `L`.
    state: L,
    /// Capacity of every broadcast channel.
    capacity: usize,
}

/// A peer subscriber: one broadcast receiver per channel it holds, then one
/// per pattern.
pub(crate) struct PeerSubscriber {
    /// The receivers, channels first.
    pub(crate) receivers: Vec<broadcast::Receiver<Bytes>>,
}

impl<L: PeerLock<PeerState>> Peer<L> {
    /// An empty peer whose broadcast channels hold `capacity` messages.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: L::new(PeerState::default()),
            capacity,
        }
    }

    /// A subscriber holding `channels` and `patterns`.
    pub(crate) fn subscribe<'a>(
        &self,
        channels: impl IntoIterator<Item = &'a [u8]>,
        patterns: impl IntoIterator<Item = &'a [u8]>,
    ) -> PeerSubscriber {
        let mut state = self.state.write();
        let mut receivers = Vec::new();
        for name in channels {
            if !state.channels.contains_key(name) {
                let sender = broadcast::channel(self.capacity).0;
                state.channels.insert(Bytes::copy_from_slice(name), sender);
            }
            receivers.push(state.channels[name].subscribe());
        }
        for pattern in patterns {
            let at = match state.patterns.iter().position(|(p, _)| p == pattern) {
                Some(at) => at,
                None => {
                    let sender = broadcast::channel(self.capacity).0;
                    state
                        .patterns
                        .push((Bytes::copy_from_slice(pattern), sender));
                    state.patterns.len() - 1
                }
            };
            receivers.push(state.patterns[at].1.subscribe());
        }
        PeerSubscriber { receivers }
    }

    /// Sends `payload` to `channel`'s receivers and to those of every
    /// pattern matching it; returns how many receivers it reached.
    pub(crate) fn publish(&self, channel: &[u8], payload: Bytes) -> usize {
        let state = self.state.read();
        let mut reached = match state.channels.get(channel) {
            Some(sender) => sender.send(payload.clone()).unwrap_or(0),
            None => 0,
        };
        for (pattern, sender) in &state.patterns {
            if tannoy::glob_match(pattern, channel) {
                reached += sender.send(payload.clone()).unwrap_or(0);
            }
        }
        reached
    }
}
