//! The differential driver: one sequence of operations applied to tannoy
//! and to a real `redis-server`, with every observable result compared.
//!
//! Include it after the Redis harness, which it uses as `redis_support`:
//!
//! ```ignore
//! #[path = "support/redis.rs"]
//! mod redis_support;
//! #[path = "support/differential.rs"]
//! mod differential;
//! ```
//!
//! # The two sides
//!
//! | role | tannoy | Redis |
//! |---|---|---|
//! | subscriber "client" `i` | a [`tannoy::Subscriber`] | a subscribed RESP2 connection |
//! | publisher and introspection | the [`Broker`] | one plain connection |
//! | disconnect + reconnect | drop the subscriber, make a new one | `QUIT`, then a new connection |
//!
//! Every method of [`Differential`] performs the operation on both sides,
//! panics (with the recent history) when they disagree, and otherwise
//! returns the agreed answer, so hand-written tests can also assert what
//! that answer is.
//!
//! # What is compared, and what is tolerated
//!
//! * **Subscription counts.** tannoy returns one count per call; Redis one
//!   confirmation per argument. tannoy's count must equal Redis's last one.
//!   For the per-argument counts, every client also has a *replay*
//!   subscriber on a second broker, which receives the same subscription
//!   operations one name per call; its answers must equal Redis's
//!   confirmations one for one. After every such operation the replay's
//!   held sets must equal the subscriber's, so one call with many names
//!   and many calls with one name are also held to the same result.
//!   Confirmations must echo the arguments in order.
//! * **No-argument unsubscribes.** Redis confirms each dropped name in
//!   hash order: the names must be, as a set, what the tannoy subscriber
//!   held just before, with counts falling by one from its count before;
//!   when nothing of that kind was held, Redis sends one confirmation with
//!   a null name and only its count is compared.
//! * **Receiver counts** of `PUBLISH` and `SPUBLISH`, exactly.
//! * **Deliveries**, per client, exactly, except for what Redis leaves
//!   unordered: the `pmessage`s of one publish among themselves (their
//!   order is the server's hash order). Messages of one publish are
//!   recognised as a run of consecutive messages with the same channel and
//!   payload, so callers give consecutive publishes distinct payloads
//!   ([`Differential::publish_unique`] does). Within a run, the exact
//!   `message` must still come first, and runs must keep their order.
//! * **Introspection.** `CHANNELS`/`SHARDCHANNELS` as sets; `NUMSUB`/
//!   `SHARDNUMSUB` exactly (argument order, duplicates); `NUMPAT` exactly.
//! * **Per-client state.** `CLIENT LIST` reports `sub`, `psub` and `ssub`
//!   for each connection; they must equal the sizes of the tannoy
//!   subscriber's channel, pattern and shard-channel sets.
//!
//! tannoy's queues hold 65 536 messages, far more than any test publishes
//! between two comparisons, so nothing is dropped; every comparison also
//! checks `dropped() == 0`.
//!
//! # Reusing one server
//!
//! [`Differential::new`] first kills every subscribed connection left on
//! the server (a sequence that failed mid-way drops its connections, and
//! the server notices that only later), then checks that the server holds
//! no channel, pattern or shard channel. [`Differential::finish`]
//! disconnects every client and checks both sides are empty again. So one
//! server can serve many sequences, one after another.

#![allow(
    dead_code,
    reason = "shared by several test files, each using a subset"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use proptest::prelude::*;
use tannoy::{Broker, Bytes, Message, MessageKind};

use crate::redis_support::{self, Frame, Push, RedisServer, show};

/// Queue capacity of every tannoy subscriber: far above what any sequence
/// publishes between two comparisons, so drop-oldest never fires.
pub(crate) const QUEUE_CAPACITY: usize = 1 << 16;

/// How many operations the history in failure messages shows.
const HISTORY_SHOWN: usize = 16;

/// One of a client's three namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Exact channels: `SUBSCRIBE`, `UNSUBSCRIBE`.
    Channel,
    /// Patterns: `PSUBSCRIBE`, `PUNSUBSCRIBE`.
    Pattern,
    /// Shard channels: `SSUBSCRIBE`, `SUNSUBSCRIBE`.
    Shard,
}

/// One operation of a generated sequence (see [`Differential::apply`]).
///
/// Names are [`Bytes`], whose `Debug` prints escaped byte-string literals,
/// so a failing sequence reads well in proptest's report.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// `SUBSCRIBE` / `PSUBSCRIBE` / `SSUBSCRIBE` on client `client`; never
    /// empty.
    Subscribe {
        /// Index of the client.
        client: usize,
        /// Which namespace.
        kind: Kind,
        /// The names, duplicates allowed.
        names: Vec<Bytes>,
    },
    /// `UNSUBSCRIBE` / `PUNSUBSCRIBE` / `SUNSUBSCRIBE`; empty `names` is the
    /// no-argument "all" form.
    Unsubscribe {
        /// Index of the client.
        client: usize,
        /// Which namespace.
        kind: Kind,
        /// The names, duplicates allowed.
        names: Vec<Bytes>,
    },
    /// `PUBLISH`; the driver makes the payload unique.
    Publish {
        /// The channel.
        channel: Bytes,
        /// The start of the payload.
        payload: Bytes,
    },
    /// `SPUBLISH`; the driver makes the payload unique.
    SPublish {
        /// The shard channel.
        channel: Bytes,
        /// The start of the payload.
        payload: Bytes,
    },
    /// Compare everything delivered so far, and per-client state.
    Deliveries,
    /// Disconnect client `client` and connect it again, holding nothing.
    Reconnect {
        /// Index of the client.
        client: usize,
    },
    /// `PUBSUB CHANNELS [pattern]`.
    Channels(Option<Bytes>),
    /// `PUBSUB SHARDCHANNELS [pattern]`.
    ShardChannels(Option<Bytes>),
    /// `PUBSUB NUMSUB names...`.
    NumSub(Vec<Bytes>),
    /// `PUBSUB SHARDNUMSUB names...`.
    ShardNumSub(Vec<Bytes>),
    /// `PUBSUB NUMPAT`.
    NumPat,
}

/// What a driver compared, for the totals a test prints.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stats {
    /// Operations applied (every method call counts one).
    pub(crate) ops: u64,
    /// Per-argument confirmations compared.
    pub(crate) confirmations: u64,
    /// `PUBLISH` and `SPUBLISH` calls compared.
    pub(crate) publishes: u64,
    /// Of those, the ones that reached at least one subscriber.
    pub(crate) delivering: u64,
    /// Messages compared (Redis's side).
    pub(crate) messages: u64,
    /// Introspection calls compared.
    pub(crate) introspections: u64,
}

impl Stats {
    /// Adds `other` to these totals.
    pub(crate) fn add(&mut self, other: Stats) {
        self.ops += other.ops;
        self.confirmations += other.confirmations;
        self.publishes += other.publishes;
        self.delivering += other.delivering;
        self.messages += other.messages;
        self.introspections += other.introspections;
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ops, {} confirmations, {} publishes ({} reached someone), {} messages, \
             {} introspection calls",
            self.ops,
            self.confirmations,
            self.publishes,
            self.delivering,
            self.messages,
            self.introspections
        )
    }
}

/// One subscriber client, on both sides.
struct Conn {
    /// The tannoy subscriber under test.
    tannoy: tannoy::Subscriber,
    /// The same client on the replay broker, fed one name per call.
    replay: tannoy::Subscriber,
    /// The Redis connection.
    redis: redis_support::Subscriber,
    /// The Redis connection's `CLIENT ID`, to find it in `CLIENT LIST`.
    redis_id: i64,
}

/// One operation sequence applied to tannoy and to Redis side by side.
pub(crate) struct Differential<'s> {
    /// The server; new connections for reconnects come from here.
    server: &'s RedisServer,
    /// The broker under test.
    broker: Broker,
    /// The broker the replay subscribers live on; never published to.
    replay: Broker,
    /// Redis connection for publishing and introspection.
    client: redis_support::Client,
    /// The subscriber clients.
    conns: Vec<Conn>,
    /// Every operation so far, rendered, for failure messages.
    history: Vec<String>,
    /// Publishes so far, to make payloads unique.
    published: u64,
    /// What was compared.
    stats: Stats,
}

impl<'s> Differential<'s> {
    /// A fresh broker and `clients` fresh subscriber clients on both sides.
    ///
    /// Kills whatever subscribed connections an earlier sequence left on
    /// `server`, then checks that it holds nothing.
    ///
    /// # Panics
    ///
    /// When the server still holds a channel, pattern or shard channel.
    pub(crate) fn new(server: &'s RedisServer, clients: usize) -> Differential<'s> {
        let mut client = server.client();
        match client.command(&[b"CLIENT", b"KILL", b"TYPE", b"pubsub"]) {
            Frame::Integer(_) => {}
            other => panic!("CLIENT KILL TYPE pubsub answered {other:?}"),
        }
        assert_eq!(client.pubsub_numpat(), 0, "a pattern outlived its clients");
        assert_eq!(client.pubsub_channels(None), Vec::<Vec<u8>>::new());
        assert_eq!(client.pubsub_shardchannels(None), Vec::<Vec<u8>>::new());
        let broker = Broker::builder().queue_capacity(QUEUE_CAPACITY).build();
        let replay = Broker::builder().queue_capacity(QUEUE_CAPACITY).build();
        let conns = (0..clients)
            .map(|_| Conn::connect(server, &broker, &replay))
            .collect();
        Differential {
            server,
            broker,
            replay,
            client,
            conns,
            history: Vec::new(),
            published: 0,
            stats: Stats::default(),
        }
    }

    /// What has been compared so far.
    pub(crate) fn stats(&self) -> Stats {
        self.stats
    }

    /// The tannoy broker, for checks beyond the differential ones.
    pub(crate) fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Applies one generated operation.
    pub(crate) fn apply(&mut self, op: &Op) {
        let slices = |names: &[Bytes]| names.iter().map(|n| n.to_vec()).collect::<Vec<_>>();
        match op {
            Op::Subscribe {
                client,
                kind,
                names,
            } => {
                let names = slices(names);
                self.subscribe(*client, *kind, &refs(&names));
            }
            Op::Unsubscribe {
                client,
                kind,
                names,
            } => {
                let names = slices(names);
                self.unsubscribe(*client, *kind, &refs(&names));
            }
            Op::Publish { channel, payload } => {
                self.publish_unique(channel, payload);
            }
            Op::SPublish { channel, payload } => {
                self.spublish_unique(channel, payload);
            }
            Op::Deliveries => {
                self.deliveries();
            }
            Op::Reconnect { client } => {
                self.reconnect(*client);
            }
            Op::Channels(pattern) => {
                self.channels(pattern.as_deref());
            }
            Op::ShardChannels(pattern) => {
                self.shard_channels(pattern.as_deref());
            }
            Op::NumSub(names) => {
                let names = slices(names);
                self.numsub(&refs(&names));
            }
            Op::ShardNumSub(names) => {
                let names = slices(names);
                self.shard_numsub(&refs(&names));
            }
            Op::NumPat => {
                self.numpat();
            }
        }
    }

    /// `SUBSCRIBE`, `PSUBSCRIBE` or `SSUBSCRIBE` on client `i`; returns the
    /// agreed per-argument counts.
    ///
    /// # Panics
    ///
    /// When `names` is empty (Redis's arity error has no tannoy
    /// counterpart), or when the two sides disagree.
    pub(crate) fn subscribe(&mut self, i: usize, kind: Kind, names: &[&[u8]]) -> Vec<i64> {
        assert!(!names.is_empty(), "subscribe needs at least one name");
        self.record(format!(
            "client {i}: {} {}",
            kind.subscribe_verb(),
            list(names)
        ));
        let conn = &mut self.conns[i];
        let confirmed = match kind {
            Kind::Channel => conn.redis.subscribe(names),
            Kind::Pattern => conn.redis.psubscribe(names),
            Kind::Shard => conn.redis.ssubscribe(names),
        };
        let count = match kind {
            Kind::Channel => conn.tannoy.subscribe(names),
            Kind::Pattern => conn.tannoy.psubscribe(names),
            Kind::Shard => conn.tannoy.ssubscribe(names),
        };
        let replayed: Vec<i64> = names
            .iter()
            .map(|name| {
                let n = match kind {
                    Kind::Channel => conn.replay.subscribe([name]),
                    Kind::Pattern => conn.replay.psubscribe([name]),
                    Kind::Shard => conn.replay.ssubscribe([name]),
                };
                n as i64
            })
            .collect();
        let echoed: Vec<&[u8]> = confirmed.iter().map(|(n, _)| n.as_slice()).collect();
        let counts: Vec<i64> = confirmed.iter().map(|&(_, c)| c).collect();
        self.check(echoed == names, || {
            format!("Redis confirmed {} for {}", list(&echoed), list(names))
        });
        self.check(counts.last() == Some(&(count as i64)), || {
            format!("tannoy's count {count} vs Redis's confirmations {counts:?}")
        });
        self.check(replayed == counts, || {
            format!("one name per call, tannoy counts {replayed:?}; Redis confirmed {counts:?}")
        });
        self.check_replay_agrees(i);
        self.stats.confirmations += counts.len() as u64;
        counts
    }

    /// `UNSUBSCRIBE`, `PUNSUBSCRIBE` or `SUNSUBSCRIBE` on client `i`, with
    /// names or (when `names` is empty) in the no-argument form; returns
    /// Redis's confirmations, which tannoy agreed with.
    ///
    /// # Panics
    ///
    /// When the two sides disagree.
    pub(crate) fn unsubscribe(
        &mut self,
        i: usize,
        kind: Kind,
        names: &[&[u8]],
    ) -> Vec<(Option<Vec<u8>>, i64)> {
        self.record(format!(
            "client {i}: {} {}",
            kind.unsubscribe_verb(),
            list(names)
        ));
        let conn = &mut self.conns[i];
        let held_before = conn.held(kind);
        let count_before = conn.count(kind);
        let confirmed = match kind {
            Kind::Channel => conn.redis.unsubscribe(names),
            Kind::Pattern => conn.redis.punsubscribe(names),
            Kind::Shard => conn.redis.sunsubscribe(names),
        };
        let count = match kind {
            Kind::Channel => conn.tannoy.unsubscribe(names),
            Kind::Pattern => conn.tannoy.punsubscribe(names),
            Kind::Shard => conn.tannoy.sunsubscribe(names),
        } as i64;
        let counts: Vec<i64> = confirmed.iter().map(|&(_, c)| c).collect();
        if names.is_empty() {
            let replayed = match kind {
                Kind::Channel => conn.replay.unsubscribe(names),
                Kind::Pattern => conn.replay.punsubscribe(names),
                Kind::Shard => conn.replay.sunsubscribe(names),
            } as i64;
            self.check(replayed == count, || {
                format!("the replay subscriber counts {replayed}, the subscriber {count}")
            });
            if held_before.is_empty() {
                // Nothing of this kind held: one confirmation, null name.
                self.check(confirmed == [(None, count)], || {
                    format!(
                        "tannoy held no such name and counts {count}; Redis confirmed {}",
                        confirmations(&confirmed)
                    )
                });
            } else {
                // One per name held, in hash order: compare as a set, with
                // counts falling by one each.
                let dropped: Option<BTreeSet<Vec<u8>>> =
                    confirmed.iter().map(|(n, _)| n.clone()).collect();
                let falling: Vec<i64> = (0..held_before.len() as i64)
                    .map(|k| count_before as i64 - 1 - k)
                    .collect();
                self.check(dropped.as_ref() == Some(&held_before), || {
                    format!(
                        "tannoy held {}; Redis dropped {}",
                        set(&held_before),
                        confirmations(&confirmed)
                    )
                });
                self.check(counts == falling && counts.last() == Some(&count), || {
                    format!(
                        "tannoy counted {count_before} before and {count} after; Redis confirmed {}",
                        confirmations(&confirmed)
                    )
                });
            }
        } else {
            let replayed: Vec<i64> = names
                .iter()
                .map(|name| {
                    let n = match kind {
                        Kind::Channel => conn.replay.unsubscribe([name]),
                        Kind::Pattern => conn.replay.punsubscribe([name]),
                        Kind::Shard => conn.replay.sunsubscribe([name]),
                    };
                    n as i64
                })
                .collect();
            let echoed: Vec<Option<&[u8]>> = confirmed.iter().map(|(n, _)| n.as_deref()).collect();
            let wanted: Vec<Option<&[u8]>> = names.iter().map(|&n| Some(n)).collect();
            self.check(echoed == wanted, || {
                format!(
                    "Redis confirmed {} for {}",
                    confirmations(&confirmed),
                    list(names)
                )
            });
            self.check(counts.last() == Some(&count), || {
                format!("tannoy's count {count} vs Redis's confirmations {counts:?}")
            });
            self.check(replayed == counts, || {
                format!("one name per call, tannoy counts {replayed:?}; Redis confirmed {counts:?}")
            });
        }
        self.check_replay_agrees(i);
        self.stats.confirmations += counts.len() as u64;
        confirmed
    }

    /// `PUBLISH channel payload`; returns the agreed receiver count.
    ///
    /// # Panics
    ///
    /// When the counts differ.
    pub(crate) fn publish(&mut self, channel: &[u8], payload: &[u8]) -> i64 {
        self.record(format!("PUBLISH {} {}", show(channel), show(payload)));
        let redis = self.client.publish(channel, payload);
        let tannoy = self
            .broker
            .publish(channel, Bytes::copy_from_slice(payload)) as i64;
        self.check(redis == tannoy, || {
            format!("PUBLISH receivers: Redis {redis}, tannoy {tannoy}")
        });
        self.stats.publishes += 1;
        self.stats.delivering += u64::from(redis > 0);
        self.published += 1;
        redis
    }

    /// `SPUBLISH channel payload`; returns the agreed receiver count.
    ///
    /// # Panics
    ///
    /// When the counts differ.
    pub(crate) fn spublish(&mut self, channel: &[u8], payload: &[u8]) -> i64 {
        self.record(format!("SPUBLISH {} {}", show(channel), show(payload)));
        let redis = self.client.spublish(channel, payload);
        let tannoy = self
            .broker
            .spublish(channel, Bytes::copy_from_slice(payload)) as i64;
        self.check(redis == tannoy, || {
            format!("SPUBLISH receivers: Redis {redis}, tannoy {tannoy}")
        });
        self.stats.publishes += 1;
        self.stats.delivering += u64::from(redis > 0);
        self.published += 1;
        redis
    }

    /// [`publish`](Self::publish) with `payload` followed by `#n`, unique
    /// within this driver, so consecutive publishes never look like one.
    pub(crate) fn publish_unique(&mut self, channel: &[u8], payload: &[u8]) -> i64 {
        let payload = self.unique(payload);
        self.publish(channel, &payload)
    }

    /// [`spublish`](Self::spublish) with a unique payload, as
    /// [`publish_unique`](Self::publish_unique).
    pub(crate) fn spublish_unique(&mut self, channel: &[u8], payload: &[u8]) -> i64 {
        let payload = self.unique(payload);
        self.spublish(channel, &payload)
    }

    /// Everything delivered to each client since the last comparison,
    /// compared; returns Redis's pushes per client, in Redis's order. Also
    /// compares each client's `sub`/`psub`/`ssub` counts.
    ///
    /// # Panics
    ///
    /// When any client's deliveries or counts differ.
    pub(crate) fn deliveries(&mut self) -> Vec<Vec<Push>> {
        self.record("deliveries".to_owned());
        let mut all = Vec::with_capacity(self.conns.len());
        for i in 0..self.conns.len() {
            let redis = self.conns[i].redis.barrier();
            let tannoy = self.conns[i].drain();
            self.compare_deliveries(i, &redis, &tannoy);
            all.push(redis);
        }
        self.check_client_list();
        all
    }

    /// Disconnects client `i` on both sides and connects it again; returns
    /// what it had been sent and not yet compared (compared).
    ///
    /// # Panics
    ///
    /// When those deliveries differ.
    pub(crate) fn reconnect(&mut self, i: usize) -> Vec<Push> {
        self.record(format!("client {i}: disconnect and reconnect"));
        let fresh = Conn::connect(self.server, &self.broker, &self.replay);
        let old = std::mem::replace(&mut self.conns[i], fresh);
        let (redis, tannoy) = old.disconnect();
        self.compare_deliveries(i, &redis, &tannoy);
        redis
    }

    /// `PUBSUB CHANNELS [pattern]`; returns the agreed names, sorted.
    ///
    /// # Panics
    ///
    /// When the sets differ, or tannoy lists a name twice.
    pub(crate) fn channels(&mut self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        self.record(format!("PUBSUB CHANNELS {}", option(pattern)));
        let redis = self.client.pubsub_channels(pattern);
        let tannoy = sorted(match pattern {
            None => self.broker.channels(None),
            Some(p) => self.broker.channels(p),
        });
        self.check(redis == tannoy, || {
            format!(
                "CHANNELS {}: Redis {}, tannoy {}",
                option(pattern),
                list(&refs(&redis)),
                list(&refs(&tannoy))
            )
        });
        self.stats.introspections += 1;
        redis
    }

    /// `PUBSUB SHARDCHANNELS [pattern]`; returns the agreed names, sorted.
    ///
    /// # Panics
    ///
    /// When the sets differ, or tannoy lists a name twice.
    pub(crate) fn shard_channels(&mut self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        self.record(format!("PUBSUB SHARDCHANNELS {}", option(pattern)));
        let redis = self.client.pubsub_shardchannels(pattern);
        let tannoy = sorted(match pattern {
            None => self.broker.shard_channels(None),
            Some(p) => self.broker.shard_channels(p),
        });
        self.check(redis == tannoy, || {
            format!(
                "SHARDCHANNELS {}: Redis {}, tannoy {}",
                option(pattern),
                list(&refs(&redis)),
                list(&refs(&tannoy))
            )
        });
        self.stats.introspections += 1;
        redis
    }

    /// `PUBSUB NUMSUB names...`; returns the agreed pairs, in argument
    /// order.
    ///
    /// # Panics
    ///
    /// When the answers differ in any way.
    pub(crate) fn numsub(&mut self, names: &[&[u8]]) -> Vec<(Vec<u8>, i64)> {
        self.record(format!("PUBSUB NUMSUB {}", list(names)));
        let redis = self.client.pubsub_numsub(names);
        let tannoy = pairs(self.broker.numsub(names));
        self.check(redis == tannoy, || {
            format!(
                "NUMSUB {}: Redis {}, tannoy {}",
                list(names),
                counted(&redis),
                counted(&tannoy)
            )
        });
        self.stats.introspections += 1;
        redis
    }

    /// `PUBSUB SHARDNUMSUB names...`; returns the agreed pairs, in argument
    /// order.
    ///
    /// # Panics
    ///
    /// When the answers differ in any way.
    pub(crate) fn shard_numsub(&mut self, names: &[&[u8]]) -> Vec<(Vec<u8>, i64)> {
        self.record(format!("PUBSUB SHARDNUMSUB {}", list(names)));
        let redis = self.client.pubsub_shardnumsub(names);
        let tannoy = pairs(self.broker.shard_numsub(names));
        self.check(redis == tannoy, || {
            format!(
                "SHARDNUMSUB {}: Redis {}, tannoy {}",
                list(names),
                counted(&redis),
                counted(&tannoy)
            )
        });
        self.stats.introspections += 1;
        redis
    }

    /// `PUBSUB NUMPAT`; returns the agreed count.
    ///
    /// # Panics
    ///
    /// When the counts differ.
    pub(crate) fn numpat(&mut self) -> i64 {
        self.record("PUBSUB NUMPAT".to_owned());
        let redis = self.client.pubsub_numpat();
        let tannoy = self.broker.numpat() as i64;
        self.check(redis == tannoy, || {
            format!("NUMPAT: Redis {redis}, tannoy {tannoy}")
        });
        self.stats.introspections += 1;
        redis
    }

    /// Compares what is still undelivered, disconnects every client on both
    /// sides, and checks that both hold nothing any more; returns the
    /// totals.
    ///
    /// # Panics
    ///
    /// When anything differs, or something outlives its clients.
    pub(crate) fn finish(mut self) -> Stats {
        self.deliveries();
        self.record("disconnect every client".to_owned());
        for (i, conn) in std::mem::take(&mut self.conns).into_iter().enumerate() {
            let (redis, tannoy) = conn.disconnect();
            self.compare_deliveries(i, &redis, &tannoy);
        }
        let channels = self.channels(None);
        let shard_channels = self.shard_channels(None);
        let numpat = self.numpat();
        self.check(channels.is_empty(), || {
            "channels outlived their clients".to_owned()
        });
        self.check(shard_channels.is_empty(), || {
            "shard channels outlived their clients".to_owned()
        });
        self.check(numpat == 0, || "patterns outlived their clients".to_owned());
        self.stats
    }

    /// Compares one client's deliveries, tolerating only the order of one
    /// publish's `pmessage`s among themselves.
    fn compare_deliveries(&mut self, i: usize, redis: &[Push], tannoy: &[Push]) {
        self.check(canonical(redis) == canonical(tannoy), || {
            format!(
                "deliveries to client {i} differ (pmessages of one publish may differ in \
                 order only)\n  Redis:  {redis:?}\n  tannoy: {tannoy:?}"
            )
        });
        self.stats.messages += redis.len() as u64;
    }

    /// Checks each client's channel, pattern and shard-channel counts
    /// against `CLIENT LIST`, and tannoy's own counts against its sets.
    fn check_client_list(&mut self) {
        let ids: Vec<String> = self.conns.iter().map(|c| c.redis_id.to_string()).collect();
        let mut args: Vec<&[u8]> = vec![b"CLIENT", b"LIST", b"ID"];
        args.extend(ids.iter().map(|id| id.as_bytes()));
        let listed = match self.client.command(&args) {
            Frame::Bulk(Some(text)) => parse_client_list(&text),
            other => panic!("CLIENT LIST answered {other:?}"),
        };
        for i in 0..self.conns.len() {
            let conn = &self.conns[i];
            let tannoy = (
                conn.tannoy.subscribed_channels().len() as i64,
                conn.tannoy.subscribed_patterns().len() as i64,
                conn.tannoy.subscribed_shard_channels().len() as i64,
            );
            let redis = listed.get(&conn.redis_id).copied();
            self.check(redis == Some(tannoy), || {
                format!(
                    "client {i} holds (channels, patterns, shard channels) {tannoy:?} in \
                     tannoy, {redis:?} in Redis's CLIENT LIST"
                )
            });
            let counts = (
                conn.tannoy.subscription_count() as i64,
                conn.tannoy.shard_subscription_count() as i64,
            );
            self.check(counts == (tannoy.0 + tannoy.1, tannoy.2), || {
                format!(
                    "client {i}: tannoy's subscription counts {counts:?} do not fit the sets \
                     it holds {tannoy:?}"
                )
            });
        }
    }

    /// Checks that client `i`'s replay subscriber holds exactly what its
    /// subscriber holds.
    fn check_replay_agrees(&self, i: usize) {
        let conn = &self.conns[i];
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            let held = conn.held(kind);
            let replayed = conn.replay_held(kind);
            self.check(held == replayed, || {
                format!(
                    "{kind:?} sets differ between one call with many names ({}) and one \
                     call per name ({})",
                    set(&held),
                    set(&replayed)
                )
            });
        }
    }

    /// A payload made unique by a `#n` suffix.
    fn unique(&self, payload: &[u8]) -> Vec<u8> {
        [payload, format!("#{}", self.published).as_bytes()].concat()
    }

    /// Adds an operation to the history.
    fn record(&mut self, what: String) {
        self.stats.ops += 1;
        self.history.push(what);
    }

    /// Panics with `what` and the recent history unless `ok`.
    #[track_caller]
    fn check(&self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            let skip = self.history.len().saturating_sub(HISTORY_SHOWN);
            let recent: Vec<String> = self.history[skip..]
                .iter()
                .enumerate()
                .map(|(n, op)| format!("  {:>4}. {op}", skip + n + 1))
                .collect();
            panic!(
                "tannoy and Redis disagree: {}\nafter these operations (last is current):\n{}",
                what(),
                recent.join("\n")
            );
        }
    }
}

impl Conn {
    /// A new client on both sides, holding nothing.
    fn connect(server: &RedisServer, broker: &Broker, replay: &Broker) -> Conn {
        let mut redis = server.subscriber();
        let redis_id = match redis.raw(&[b"CLIENT", b"ID"]) {
            Frame::Integer(id) => id,
            other => panic!("CLIENT ID answered {other:?}"),
        };
        Conn {
            tannoy: broker.subscriber(),
            replay: replay.subscriber(),
            redis,
            redis_id,
        }
    }

    /// Everything queued on the tannoy side, as Redis pushes.
    ///
    /// # Panics
    ///
    /// When the subscriber dropped a message (the queue is sized so it
    /// never should) or a message is malformed.
    fn drain(&self) -> Vec<Push> {
        assert_eq!(self.tannoy.dropped(), 0, "a tannoy queue overflowed");
        self.tannoy.try_iter().map(|m| to_push(&m)).collect()
    }

    /// Disconnects both sides; returns Redis's and tannoy's undelivered
    /// messages.
    fn disconnect(self) -> (Vec<Push>, Vec<Push>) {
        let tannoy = self.drain();
        drop(self.tannoy);
        drop(self.replay);
        (self.redis.disconnect(), tannoy)
    }

    /// The names of one kind the tannoy subscriber holds.
    fn held(&self, kind: Kind) -> BTreeSet<Vec<u8>> {
        names_of(&self.tannoy, kind)
    }

    /// The names of one kind the replay subscriber holds.
    fn replay_held(&self, kind: Kind) -> BTreeSet<Vec<u8>> {
        names_of(&self.replay, kind)
    }

    /// The count tannoy reports for one kind: channels plus patterns, or
    /// shard channels.
    fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Channel | Kind::Pattern => self.tannoy.subscription_count(),
            Kind::Shard => self.tannoy.shard_subscription_count(),
        }
    }
}

impl Kind {
    /// The Redis subscribe command for this kind.
    pub(crate) fn subscribe_verb(self) -> &'static str {
        match self {
            Kind::Channel => "SUBSCRIBE",
            Kind::Pattern => "PSUBSCRIBE",
            Kind::Shard => "SSUBSCRIBE",
        }
    }

    /// The Redis unsubscribe command for this kind.
    pub(crate) fn unsubscribe_verb(self) -> &'static str {
        match self {
            Kind::Channel => "UNSUBSCRIBE",
            Kind::Pattern => "PUNSUBSCRIBE",
            Kind::Shard => "SUNSUBSCRIBE",
        }
    }
}

/// The names of one kind a tannoy subscriber holds.
fn names_of(sub: &tannoy::Subscriber, kind: Kind) -> BTreeSet<Vec<u8>> {
    let names = match kind {
        Kind::Channel => sub.subscribed_channels(),
        Kind::Pattern => sub.subscribed_patterns(),
        Kind::Shard => sub.subscribed_shard_channels(),
    };
    names.iter().map(|n| n.to_vec()).collect()
}

/// A tannoy message as the Redis push it stands for.
///
/// # Panics
///
/// When a pattern message has no pattern, or another kind has one.
pub(crate) fn to_push(message: &Message) -> Push {
    let (channel, payload) = (message.channel(), message.payload());
    match (message.kind(), message.pattern()) {
        (MessageKind::Message, None) => Push::message(channel, payload),
        (MessageKind::PMessage, Some(pattern)) => Push::pmessage(pattern, channel, payload),
        (MessageKind::SMessage, None) => Push::smessage(channel, payload),
        (kind, pattern) => panic!(
            "tannoy delivered a {kind} with pattern {:?}",
            pattern.map(|p| show(p))
        ),
    }
}

/// Deliveries in a canonical order: within each run of consecutive
/// messages of one publish (same channel and payload), the `pmessage`s are
/// sorted among themselves, in the positions they occupy. Everything else
/// keeps its place.
pub(crate) fn canonical(pushes: &[Push]) -> Vec<Push> {
    let mut out = pushes.to_vec();
    let mut start = 0;
    while start < out.len() {
        let key = publish_key(&out[start]);
        let end = (start..out.len())
            .find(|&k| publish_key(&out[k]) != key)
            .unwrap_or(out.len());
        let slots: Vec<usize> = (start..end)
            .filter(|&k| matches!(out[k], Push::PMessage { .. }))
            .collect();
        let mut patterned: Vec<Push> = slots.iter().map(|&k| out[k].clone()).collect();
        patterned.sort_by(|a, b| pattern_of(a).cmp(pattern_of(b)));
        for (slot, push) in slots.into_iter().zip(patterned) {
            out[slot] = push;
        }
        start = end;
    }
    out
}

/// The channel and payload a push carries: what one publish shares.
fn publish_key(push: &Push) -> (&[u8], &[u8]) {
    match push {
        Push::Message { channel, payload }
        | Push::SMessage { channel, payload }
        | Push::PMessage {
            channel, payload, ..
        } => (channel, payload),
    }
}

/// The pattern of a `pmessage`; empty for other pushes.
fn pattern_of(push: &Push) -> &[u8] {
    match push {
        Push::PMessage { pattern, .. } => pattern,
        _ => b"",
    }
}

/// Parses `CLIENT LIST` output into `id -> (sub, psub, ssub)`.
fn parse_client_list(text: &[u8]) -> BTreeMap<i64, (i64, i64, i64)> {
    let text = String::from_utf8_lossy(text);
    text.lines()
        .map(|line| {
            let field = |name: &str| -> i64 {
                line.split(' ')
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("no {name}= in CLIENT LIST line {line:?}"))
            };
            (field("id"), (field("sub"), field("psub"), field("ssub")))
        })
        .collect()
}

/// Borrowed views of owned names.
pub(crate) fn refs(names: &[Vec<u8>]) -> Vec<&[u8]> {
    names.iter().map(Vec::as_slice).collect()
}

/// tannoy's names as sorted owned byte strings.
fn sorted(names: Vec<Bytes>) -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = names.iter().map(|n| n.to_vec()).collect();
    names.sort();
    names
}

/// tannoy's `NUMSUB` answer in the harness's shape.
fn pairs(counts: Vec<(Bytes, usize)>) -> Vec<(Vec<u8>, i64)> {
    counts
        .into_iter()
        .map(|(name, n)| (name.to_vec(), n as i64))
        .collect()
}

/// Renders names for messages: `[b"a", b"b"]`.
fn list(names: &[&[u8]]) -> String {
    let shown: Vec<String> = names.iter().map(|n| show(n)).collect();
    format!("[{}]", shown.join(", "))
}

/// Renders a set of names for messages.
fn set(names: &BTreeSet<Vec<u8>>) -> String {
    let shown: Vec<String> = names.iter().map(|n| show(n)).collect();
    format!("{{{}}}", shown.join(", "))
}

/// Renders an optional pattern for messages.
fn option(pattern: Option<&[u8]>) -> String {
    pattern.map_or_else(|| "(no pattern)".to_owned(), show)
}

/// Renders `(name, count)` pairs for messages.
fn counted(pairs: &[(Vec<u8>, i64)]) -> String {
    let shown: Vec<String> = pairs
        .iter()
        .map(|(n, c)| format!("{} {c}", show(n)))
        .collect();
    format!("[{}]", shown.join(", "))
}

/// Renders unsubscribe confirmations for messages.
fn confirmations(confirmed: &[(Option<Vec<u8>>, i64)]) -> String {
    let shown: Vec<String> = confirmed
        .iter()
        .map(|(n, c)| {
            format!(
                "{} {c}",
                n.as_deref().map_or_else(|| "null".to_owned(), show)
            )
        })
        .collect();
    format!("[{}]", shown.join(", "))
}

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

/// Channel names that come up again and again, so generated operations
/// collide: realistic names, and hostile ones (empty, NUL, CR/LF, high
/// bytes, glob metacharacters and brackets, which are plain bytes in a
/// channel name).
pub(crate) const CHANNEL_POOL: &[&[u8]] = &[
    b"ai:models:updated",
    b"ai:models:deleted",
    b"ai:embeddings:refresh",
    b"conversations:new",
    b"news.sport",
    b"",
    b"\x00",
    b"a",
    b"b",
    b"ab",
    b"a:b",
    b"a\r\nb",
    b"\x80",
    b"\xff\xfe",
    b"caf\xc3\xa9",
    b"a[b",
    b"]",
    b"[",
    b"\\",
    b"*",
    b"?",
    b"a*",
    b"-",
];

/// Patterns that come up again and again: every construct of the grammar
/// (stars, `?`, classes, negation, ranges forward, reversed and across the
/// signed-byte boundary, escapes, an unterminated `[`, a trailing `\`, the
/// empty pattern), realistic ones, and some that equal a channel name.
pub(crate) const PATTERN_POOL: &[&[u8]] = &[
    b"*",
    b"**",
    b"?",
    b"",
    b"a*",
    b"*b",
    b"a?",
    b"?*?",
    b"ai:*",
    b"ai:models:*",
    b"*:updated",
    b"conversations:*",
    b"news.*",
    b"[ab]",
    b"[^a]*",
    b"[a-c]*",
    b"[c-a]",
    b"[a-]",
    b"[]a]",
    b"[^]",
    b"[!a]",
    b"[\x80-\xff]*",
    b"[\x00-\xff]",
    b"*[\x7f-\x81]",
    b"\\*",
    b"\\[*",
    b"a\\",
    b"\\",
    b"[",
    b"[^",
    b"a[b",
    b"*[",
    b"*\x00*",
    b"a\r\n?",
    b"caf?",
    b"caf??",
];

/// Bytes generated channel names are made of: a few letters and the
/// bytes the grammar cares about, so patterns match often.
const CHANNEL_BYTES: &[u8] = b"ab:[]\\*?-^\x00\x80\xff\n";

/// A channel name: often one of a few hot names, usually from
/// [`CHANNEL_POOL`], else a short string over a small alphabet.
pub(crate) fn channel() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::sample::select(HOT_CHANNELS).prop_map(<[u8]>::to_vec),
        3 => prop::sample::select(CHANNEL_POOL).prop_map(<[u8]>::to_vec),
        1 => random_channel(),
        1 => shaped_channel(),
    ]
}

/// Channel names drawn more often than the rest, so generated operations
/// keep meeting the same names: some realistic, some hostile.
const HOT_CHANNELS: &[&[u8]] = &[b"ai:models:updated", b"", b"a", b"a[b", b"\x80", b"*"];

/// A short channel over a small alphabet, sometimes empty.
pub(crate) fn random_channel() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(CHANNEL_BYTES), 0..5)
}

/// A pattern: usually from [`PATTERN_POOL`], sometimes a channel name,
/// else built from the grammar.
pub(crate) fn pattern() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        5 => prop::sample::select(HOT_PATTERNS).prop_map(<[u8]>::to_vec),
        4 => prop::sample::select(PATTERN_POOL).prop_map(<[u8]>::to_vec),
        1 => prop::sample::select(HOT_CHANNELS).prop_map(<[u8]>::to_vec),
        3 => grammar_pattern(),
        1 => shaped_pattern(),
    ]
}

/// Patterns drawn more often than the rest; each matches some of
/// [`HOT_CHANNELS`].
const HOT_PATTERNS: &[&[u8]] = &[
    b"*",
    b"a*",
    b"?",
    b"",
    b"ai:*",
    b"[^a]*",
    b"a[\\[]b",
    b"[\x80-\xff]",
];

/// A pattern built from 0 to 5 grammar elements over the channel
/// alphabet, any of which may be malformed (a class missing its `]`, a
/// trailing `\`).
pub(crate) fn grammar_pattern() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(element(), 0..6).prop_map(|parts| parts.concat())
}

/// A pattern shaped like real subscriptions (a literal, `prefix*`,
/// `*suffix`, `prefix*suffix`, `a*b*c`, with a `?` or a class in places)
/// whose literal parts hold escapes (`\*`, `\[`, `\\`, `\a`), NUL and
/// high bytes: the shapes a pattern index treats specially, with literal
/// text that is easy to get wrong.
pub(crate) fn shaped_pattern() -> impl Strategy<Value = Vec<u8>> {
    let word = || {
        prop::collection::vec(
            prop_oneof![
                6 => prop::sample::select(&b"ab:"[..]).prop_map(|b| vec![b]),
                1 => prop::sample::select(&b"*?[\\a]"[..]).prop_map(|b| vec![b'\\', b]),
                1 => prop::sample::select(&b"\x00\x80-]"[..]).prop_map(|b| vec![b]),
                1 => Just(b"?".to_vec()),
                1 => Just(b"[ab]".to_vec()),
            ],
            0..4,
        )
        .prop_map(|parts| parts.concat())
    };
    prop_oneof![
        2 => word(),
        3 => (word(), word()).prop_map(|(a, b)| [a, b].concat()),
        3 => word().prop_map(|a| [a, b"*".to_vec()].concat()),
        2 => word().prop_map(|a| [b"*".to_vec(), a].concat()),
        3 => (word(), word()).prop_map(|(a, b)| [a, b"*".to_vec(), b].concat()),
        2 => (word(), word(), word())
            .prop_map(|(a, b, c)| [a, b"*".to_vec(), b, b"*".to_vec(), c].concat()),
        1 => word().prop_map(|a| [a, b"\\".to_vec()].concat()),
    ]
}

/// A channel over the alphabet of [`shaped_pattern`], including the
/// bytes its escapes stand for.
pub(crate) fn shaped_channel() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(&b"ab:*?[\\\x00\x80-]"[..]), 0..7)
}

/// One element of a pattern.
fn element() -> impl Strategy<Value = Vec<u8>> {
    let byte = || prop::sample::select(CHANNEL_BYTES);
    prop_oneof![
        4 => byte().prop_map(|b| vec![b]),
        3 => Just(b"*".to_vec()),
        1 => Just(b"**".to_vec()),
        2 => Just(b"?".to_vec()),
        1 => byte().prop_map(|b| vec![b'\\', b]),
        1 => Just(b"\\".to_vec()),
        3 => class(),
    ]
}

/// A character class: `[`, maybe `^`, up to three items (bytes, ranges in
/// either direction, escapes), and usually, but not always, `]`.
fn class() -> impl Strategy<Value = Vec<u8>> {
    let byte = || prop::sample::select(CHANNEL_BYTES);
    let item = prop_oneof![
        2 => byte().prop_map(|b| vec![b]),
        2 => (byte(), byte()).prop_map(|(x, y)| vec![x, b'-', y]),
        1 => byte().prop_map(|b| vec![b'\\', b]),
    ];
    (
        any::<bool>(),
        prop::collection::vec(item, 0..4),
        prop::bool::weighted(0.8),
    )
        .prop_map(|(negated, items, closed)| {
            let mut class = vec![b'['];
            if negated {
                class.push(b'^');
            }
            class.extend(items.concat());
            if closed {
                class.push(b']');
            }
            class
        })
}

/// A payload: short, sometimes empty, sometimes binary. The driver makes
/// it unique.
pub(crate) fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => Just(Vec::new()),
        2 => prop::sample::select(CHANNEL_POOL).prop_map(<[u8]>::to_vec),
        1 => prop::collection::vec(any::<u8>(), 0..8),
    ]
}

/// One to three names from `names`, duplicates allowed.
fn some(names: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<Bytes>> {
    prop::collection::vec(names.prop_map(Bytes::from), 1..=3)
}

/// Zero to four names from `names`, duplicates allowed.
fn any_number(names: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<Bytes>> {
    prop::collection::vec(names.prop_map(Bytes::from), 0..=4)
}

/// Names of `kind`: channel names or patterns.
fn names_for(kind: Kind) -> BoxedStrategy<Vec<u8>> {
    match kind {
        Kind::Pattern => pattern().boxed(),
        Kind::Channel | Kind::Shard => channel().boxed(),
    }
}

/// One of the three kinds.
fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Channel), Just(Kind::Pattern), Just(Kind::Shard)]
}

/// One operation for a run with `clients` subscriber clients.
pub(crate) fn op(clients: usize) -> impl Strategy<Value = Op> {
    let client = move || 0..clients;
    let bytes = |s: BoxedStrategy<Vec<u8>>| s.prop_map(Bytes::from);
    prop_oneof![
        14 => subscribe_op(clients),
        3 => (client(), kind())
            .prop_flat_map(|(client, kind)| {
                some(names_for(kind)).prop_map(move |names| Op::Unsubscribe { client, kind, names })
            }),
        2 => (client(), kind()).prop_map(|(client, kind)| Op::Unsubscribe {
            client,
            kind,
            names: Vec::new()
        }),
        10 => (channel(), payload()).prop_map(|(c, p)| Op::Publish {
            channel: c.into(),
            payload: p.into()
        }),
        4 => (channel(), payload()).prop_map(|(c, p)| Op::SPublish {
            channel: c.into(),
            payload: p.into()
        }),
        2 => Just(Op::Deliveries),
        1 => client().prop_map(|client| Op::Reconnect { client }),
        2 => prop::option::weighted(0.8, bytes(pattern().boxed())).prop_map(Op::Channels),
        1 => prop::option::weighted(0.7, bytes(pattern().boxed())).prop_map(Op::ShardChannels),
        2 => any_number(channel()).prop_map(Op::NumSub),
        1 => any_number(channel()).prop_map(Op::ShardNumSub),
        1 => Just(Op::NumPat),
    ]
}

/// A subscribe operation for a run with `clients` subscriber clients.
fn subscribe_op(clients: usize) -> impl Strategy<Value = Op> {
    (0..clients, kind()).prop_flat_map(|(client, kind)| {
        some(names_for(kind)).prop_map(move |names| Op::Subscribe {
            client,
            kind,
            names,
        })
    })
}

/// A sequence: one to `max_clients` clients and at most `max_ops`
/// operations on them. Up to a quarter of them are subscribes up front, so
/// that most sequences publish to clients that hold something; the rest
/// are any operation.
pub(crate) fn sequence(
    max_clients: usize,
    max_ops: usize,
) -> impl Strategy<Value = (usize, Vec<Op>)> {
    let setup = max_ops / 4;
    (1..=max_clients).prop_flat_map(move |clients| {
        (
            prop::collection::vec(subscribe_op(clients), 0..=setup),
            prop::collection::vec(op(clients), 1..=max_ops - setup),
        )
            .prop_map(move |(mut ops, body)| {
                ops.extend(body);
                (clients, ops)
            })
    })
}
