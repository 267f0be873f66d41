//! The upstream connection's read side: every RESP3 push, in wire order,
//! turned into local publishes, each upstream publish exactly once.
//!
//! # Why counting is exact
//!
//! One upstream `PUBLISH c` reaches the bridge's connection as a burst:
//! a `message` if the connection holds `c`, then one `pmessage` per pattern
//! it holds that matches `c`. Publishing every one of them into the local
//! broker would hand a local subscriber of `c` and a matching pattern `p`
//! the message several times, because the local broker matches `c` against
//! local patterns itself. So the relay publishes each burst once, as
//! `publish(c, payload)`, and the local broker gives every local subscriber
//! exactly what Redis would give a direct connection holding the same
//! names: the exact message first, then one pattern message per pattern.
//!
//! To find a burst's end the relay counts. Redis runs commands one at a
//! time, so a burst is never split by another command, and the confirmations
//! of the connection's own `SUBSCRIBE`/`PSUBSCRIBE`/... arrive in the same
//! stream, in order with the messages: replaying them gives the server's
//! exact subscription state at each message. With `k` held patterns
//! matching `c` (Redis's own glob rules, which [`tannoy::Pattern`] follows
//! byte for byte), a burst is `message` + `k` `pmessage`s, or `k`
//! `pmessage`s when `c` is not held: the relay publishes at the burst's
//! first push and skips the rest.
//!
//! Shard messages (`smessage`) come once per publish and go to
//! [`Broker::spublish`].
//!
//! The callback runs on the connection's read task and never waits: a
//! local publish only queues (a full subscriber queue loses its oldest
//! message, counted there), so a stalled local subscriber never slows the
//! reading of the socket.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use redis::{PushInfo, PushKind, Value};
use tannoy::{Broker, Pattern};
use tokio::sync::Notify;

use crate::GAP_CHANNEL;

/// The upstream subscription state and the burst being relayed, for one
/// connection.
#[derive(Debug, Default)]
struct RelayState {
    /// Channels the server confirmed this connection holds.
    channels: HashSet<Bytes>,
    /// Patterns the server confirmed this connection holds, compiled.
    patterns: HashMap<Bytes, Pattern>,
    /// Shard channels the server confirmed this connection holds.
    shard_channels: HashSet<Bytes>,
    /// The channel of the burst being relayed and how many of its
    /// `pmessage`s are still to come (and to skip).
    burst: Option<(Bytes, usize)>,
    /// Set when the bridge gave up on the connection: anything it still
    /// delivers is dropped, so nothing is relayed after the gap notice.
    retired: bool,
}

impl RelayState {
    /// How many held patterns match `channel`.
    fn matching_patterns(&self, channel: &[u8]) -> usize {
        self.patterns
            .values()
            .filter(|p| p.matches(channel))
            .count()
    }
}

/// Relays one connection's pushes into the local broker.
#[derive(Debug)]
pub(crate) struct Relay {
    /// Where upstream messages go.
    broker: Broker,
    /// The connection's subscriptions and the current burst.
    state: Mutex<RelayState>,
    /// Notified once when the connection is lost.
    lost: Arc<Notify>,
}

impl Relay {
    /// A relay for one new connection, publishing into `broker` and
    /// notifying `lost` when the connection is lost.
    pub(crate) fn new(broker: Broker, lost: Arc<Notify>) -> Self {
        Self {
            broker,
            state: Mutex::new(RelayState::default()),
            lost,
        }
    }

    /// Stops relaying: pushes still in flight on an abandoned connection
    /// are dropped from now on. Publishes happen under the same lock, so
    /// once this returns none is in progress.
    pub(crate) fn retire(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retired = true;
    }

    /// Whether the server has confirmed `name` as held, by kind: for
    /// tests and introspection.
    #[cfg(test)]
    fn holds(&self, kind: tannoy::InterestKind, name: &[u8]) -> bool {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match kind {
            tannoy::InterestKind::Channel => state.channels.contains(name),
            tannoy::InterestKind::Pattern => state.patterns.contains_key(name),
            _ => state.shard_channels.contains(name),
        }
    }

    /// Handles one push, in the order the connection received it.
    pub(crate) fn handle(&self, push: PushInfo) {
        // A panic elsewhere while holding the lock leaves plain sets
        // behind, still consistent enough to go on relaying.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.retired {
            return;
        }
        let mut data = push.data.into_iter().map(into_bytes);
        match push.kind {
            PushKind::Message => {
                let (Some(Some(channel)), Some(Some(payload))) = (data.next(), data.next()) else {
                    return;
                };
                let rest = state.matching_patterns(&channel);
                state.burst = (rest > 0).then(|| (channel.clone(), rest));
                self.publish(channel, payload);
            }
            PushKind::PMessage => {
                let (Some(Some(_pattern)), Some(Some(channel)), Some(Some(payload))) =
                    (data.next(), data.next(), data.next())
                else {
                    return;
                };
                if let Some((burst_channel, rest)) = &mut state.burst
                    && *burst_channel == channel
                {
                    *rest -= 1;
                    if *rest == 0 {
                        state.burst = None;
                    }
                    return;
                }
                let rest = state.matching_patterns(&channel).saturating_sub(1);
                state.burst = (rest > 0).then(|| (channel.clone(), rest));
                self.publish(channel, payload);
            }
            PushKind::SMessage => {
                let (Some(Some(channel)), Some(Some(payload))) = (data.next(), data.next()) else {
                    return;
                };
                self.broker.spublish(channel, payload);
            }
            PushKind::Subscribe => {
                if let Some(Some(name)) = data.next() {
                    state.channels.insert(name);
                }
            }
            PushKind::Unsubscribe => {
                if let Some(Some(name)) = data.next() {
                    state.channels.remove(&name);
                }
            }
            PushKind::PSubscribe => {
                if let Some(Some(name)) = data.next() {
                    let pattern = Pattern::new(&name);
                    state.patterns.insert(name, pattern);
                }
            }
            PushKind::PUnsubscribe => {
                if let Some(Some(name)) = data.next() {
                    state.patterns.remove(&name);
                }
            }
            PushKind::SSubscribe => {
                if let Some(Some(name)) = data.next() {
                    state.shard_channels.insert(name);
                }
            }
            PushKind::SUnsubscribe => {
                if let Some(Some(name)) = data.next() {
                    state.shard_channels.remove(&name);
                }
            }
            PushKind::Disconnection => {
                *state = RelayState {
                    retired: true,
                    ..RelayState::default()
                };
                self.lost.notify_one();
            }
            // Client-side caching invalidations and future kinds are none
            // of the bridge's business.
            _ => {}
        }
    }

    /// Publishes one upstream message locally, unless it claims the
    /// bridge's reserved notice channel. Called with the state locked (see
    /// [`retire`](Self::retire)); a local publish never waits.
    fn publish(&self, channel: Bytes, payload: Bytes) {
        if channel == GAP_CHANNEL.as_bytes() {
            return;
        }
        self.broker.publish(channel, payload);
    }
}

/// A bulk string's bytes; `None` for anything else (a nil name, a count).
fn into_bytes(value: Value) -> Option<Bytes> {
    match value {
        Value::BulkString(bytes) => Some(Bytes::from(bytes)),
        Value::SimpleString(s) => Some(Bytes::from(s)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tannoy::{InterestKind, MessageKind};

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn push(kind: PushKind, data: &[&str]) -> PushInfo {
        let mut data: Vec<Value> = data.iter().map(|s| bulk(s)).collect();
        if matches!(
            kind,
            PushKind::Subscribe
                | PushKind::PSubscribe
                | PushKind::SSubscribe
                | PushKind::Unsubscribe
                | PushKind::PUnsubscribe
                | PushKind::SUnsubscribe
        ) {
            data.push(Value::Int(1));
        }
        PushInfo { kind, data }
    }

    /// What one local subscriber received: (kind, pattern, channel, payload).
    fn drain(sub: &tannoy::Subscriber) -> Vec<(&'static str, String, String, String)> {
        sub.try_iter()
            .map(|m| {
                let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
                (
                    m.kind().as_str(),
                    m.pattern().map(text).unwrap_or_default(),
                    text(m.channel()),
                    text(m.payload()),
                )
            })
            .collect()
    }

    /// A channel held both exactly and by two patterns upstream arrives as
    /// one burst of three pushes; each local subscriber gets what Redis
    /// gives a direct connection holding its names, once.
    #[test]
    fn a_burst_is_relayed_once() {
        let broker = Broker::new();
        let exact = broker.subscriber();
        exact.subscribe(["news.eu"]);
        let both = broker.subscriber();
        both.subscribe(["news.eu"]);
        both.psubscribe(["news.*"]);
        let wide = broker.subscriber();
        wide.psubscribe(["n*", "news.*"]);

        let relay = Relay::new(broker.clone(), Arc::new(Notify::new()));
        relay.handle(push(PushKind::Subscribe, &["news.eu"]));
        relay.handle(push(PushKind::PSubscribe, &["news.*"]));
        relay.handle(push(PushKind::PSubscribe, &["n*"]));
        assert!(relay.holds(InterestKind::Channel, b"news.eu"));
        assert!(relay.holds(InterestKind::Pattern, b"n*"));

        // PUBLISH news.eu a, then PUBLISH news.us b (patterns only).
        relay.handle(push(PushKind::Message, &["news.eu", "a"]));
        relay.handle(push(PushKind::PMessage, &["n*", "news.eu", "a"]));
        relay.handle(push(PushKind::PMessage, &["news.*", "news.eu", "a"]));
        relay.handle(push(PushKind::PMessage, &["news.*", "news.us", "b"]));
        relay.handle(push(PushKind::PMessage, &["n*", "news.us", "b"]));
        // PUBLISH news.us c: a second burst on the same channel.
        relay.handle(push(PushKind::PMessage, &["n*", "news.us", "c"]));
        relay.handle(push(PushKind::PMessage, &["news.*", "news.us", "c"]));

        let m = |k: MessageKind, p: &str, c: &str, x: &str| {
            (k.as_str(), p.to_owned(), c.to_owned(), x.to_owned())
        };
        use MessageKind::{Message as M, PMessage as P};
        assert_eq!(drain(&exact), [m(M, "", "news.eu", "a")]);
        assert_eq!(
            drain(&both),
            [
                m(M, "", "news.eu", "a"),
                m(P, "news.*", "news.eu", "a"),
                m(P, "news.*", "news.us", "b"),
                m(P, "news.*", "news.us", "c"),
            ]
        );
        let mut got = drain(&wide);
        got.sort();
        let mut want = vec![
            m(P, "n*", "news.eu", "a"),
            m(P, "news.*", "news.eu", "a"),
            m(P, "n*", "news.us", "b"),
            m(P, "news.*", "news.us", "b"),
            m(P, "n*", "news.us", "c"),
            m(P, "news.*", "news.us", "c"),
        ];
        want.sort();
        assert_eq!(got, want);
    }

    /// Counting follows the confirmations: after PUNSUBSCRIBE a burst is
    /// one push shorter, after UNSUBSCRIBE it has no `message`.
    #[test]
    fn bursts_follow_confirmed_state() {
        let broker = Broker::new();
        let sub = broker.subscriber();
        sub.psubscribe(["a*"]);
        let relay = Relay::new(broker.clone(), Arc::new(Notify::new()));
        relay.handle(push(PushKind::Subscribe, &["ab"]));
        relay.handle(push(PushKind::PSubscribe, &["a*"]));
        relay.handle(push(PushKind::PSubscribe, &["?b"]));
        relay.handle(push(PushKind::Message, &["ab", "1"]));
        relay.handle(push(PushKind::PMessage, &["a*", "ab", "1"]));
        relay.handle(push(PushKind::PMessage, &["?b", "ab", "1"]));
        relay.handle(push(PushKind::Unsubscribe, &["ab"]));
        relay.handle(push(PushKind::PUnsubscribe, &["?b"]));
        relay.handle(push(PushKind::PMessage, &["a*", "ab", "2"]));
        relay.handle(push(PushKind::PMessage, &["a*", "ab", "3"]));
        let payloads: Vec<String> = drain(&sub).into_iter().map(|m| m.3).collect();
        assert_eq!(payloads, ["1", "2", "3"]);
    }

    /// Shard messages go to shard subscribers; the reserved notice channel
    /// is never relayed; a lost connection forgets its state and notifies.
    #[test]
    fn shard_messages_notices_and_loss() {
        let broker = Broker::new();
        let shard = broker.subscriber();
        shard.ssubscribe(["s"]);
        let notices = broker.subscriber();
        notices.subscribe([GAP_CHANNEL]);
        let lost = Arc::new(Notify::new());
        let relay = Relay::new(broker.clone(), Arc::clone(&lost));
        relay.handle(push(PushKind::SSubscribe, &["s"]));
        relay.handle(push(PushKind::SMessage, &["s", "x"]));
        relay.handle(push(PushKind::Subscribe, &[GAP_CHANNEL]));
        relay.handle(push(PushKind::Message, &[GAP_CHANNEL, "forged"]));
        assert_eq!(drain(&shard).len(), 1);
        assert!(drain(&notices).is_empty());

        relay.handle(PushInfo {
            kind: PushKind::Disconnection,
            data: vec![],
        });
        assert!(!relay.holds(InterestKind::ShardChannel, b"s"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), lost.notified())
                .await
                .expect("the loss is notified");
        });
    }

    /// Malformed pushes (missing fields, non-string names) are ignored,
    /// never a panic.
    #[test]
    fn malformed_pushes_are_ignored() {
        let broker = Broker::new();
        let sub = broker.subscriber();
        sub.psubscribe(["*"]);
        let relay = Relay::new(broker.clone(), Arc::new(Notify::new()));
        for kind in [PushKind::Message, PushKind::PMessage, PushKind::SMessage] {
            relay.handle(PushInfo {
                kind: kind.clone(),
                data: vec![],
            });
            relay.handle(PushInfo {
                kind,
                data: vec![Value::Int(3), Value::Nil, Value::Nil],
            });
        }
        relay.handle(PushInfo {
            kind: PushKind::Unsubscribe,
            data: vec![Value::Nil, Value::Int(0)],
        });
        assert!(drain(&sub).is_empty());
    }
}
