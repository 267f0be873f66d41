//! The upstream connections: connecting with a relay as each one's push
//! callback, and the subscription commands.
//!
//! A standalone server gets one connection for everything. A cluster gets
//! one connection to one node for channels and patterns (a cluster
//! propagates `PUBLISH` to every node, and the exact relay needs channels
//! and patterns on one connection, whose confirmations it replays), and a
//! cluster connection for shard channels, which redis-rs routes to the
//! node owning each slot and moves when slots move.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::try_join_all;
use redis::aio::MultiplexedConnection;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, ConnectionInfo, ErrorKind, ProtocolVersion, PushInfo, RedisError,
    RedisResult, TlsCertificates,
};
use tannoy::Broker;
use tokio::sync::Notify;

use crate::names::{Names, diff};
use crate::relay::Relay;

/// Names per `SUBSCRIBE`/`PSUBSCRIBE`/... command: resubscribing 10,000
/// channels takes ten commands, each a few hundred KiB at most.
const NAMES_PER_COMMAND: usize = 1000;

/// Shard subscriptions in flight at once. One `SSUBSCRIBE` may name
/// several channels only when they share a slot (in a cluster), and
/// redis-rs offers it only on cluster connections, so the bridge sends one
/// per name, pipelined this many at a time.
const SHARD_COMMANDS_IN_FLIGHT: usize = 256;

/// How the bridge connects: the server (or the cluster's seed nodes),
/// credentials and timeouts.
#[derive(Debug, Clone)]
pub(crate) struct Dial {
    /// Address, database and credentials of each node to try, in turn;
    /// always RESP3, and with `tls`'s certificates for `rediss://`. One
    /// for a standalone server.
    pub(crate) nodes: Vec<ConnectionInfo>,
    /// Certificates to trust or present instead of the defaults, for the
    /// cluster connection, which reads them from here.
    pub(crate) tls: Option<TlsCertificates>,
    /// Whether the nodes form a Redis Cluster.
    pub(crate) cluster: bool,
    /// How long a connection attempt may take.
    pub(crate) connect_timeout: Duration,
    /// How long a command may wait for its reply.
    pub(crate) response_timeout: Duration,
}

/// The connections a bridge publishes through.
#[derive(Clone)]
pub(crate) struct Conns {
    /// One node's connection: channels and patterns, `PUBLISH` (a cluster
    /// propagates both to every node), and shard channels on a standalone
    /// server.
    pub(crate) node: MultiplexedConnection,
    /// In a cluster: shard channels and `SPUBLISH`, each routed to the node
    /// owning its slot.
    pub(crate) shards: Option<ClusterConnection>,
}

impl fmt::Debug for Conns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conns")
            .field("cluster", &self.shards.is_some())
            .finish_non_exhaustive()
    }
}

/// Live connections and the relays that read them.
#[derive(Debug)]
pub(crate) struct Link {
    /// The connections: subscriptions and commands share them (RESP3
    /// allows commands on a subscribed connection).
    pub(crate) conns: Conns,
    /// The relays fed by the connections' pushes.
    pub(crate) relays: Vec<Arc<Relay>>,
    /// Notified when a connection is lost.
    pub(crate) lost: Arc<Notify>,
}

/// `info` switched to RESP3, which the relay needs: its pushes carry the
/// subscription confirmations in order with the messages.
pub(crate) fn resp3(info: ConnectionInfo) -> ConnectionInfo {
    let redis = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    info.set_redis_settings(redis)
}

/// A push callback feeding `relay`.
fn feed(relay: &Arc<Relay>) -> impl Fn(PushInfo) -> Result<(), Infallible> + Send + Sync + 'static {
    let relay = Arc::clone(relay);
    move |push| {
        relay.handle(push);
        Ok(())
    }
}

impl Link {
    /// Connects, authenticates and switches to RESP3, relaying every push
    /// into `broker`; `attempt` picks the node to try first.
    pub(crate) async fn connect(dial: &Dial, broker: &Broker, attempt: usize) -> RedisResult<Link> {
        let lost = Arc::new(Notify::new());
        let node_relay = Arc::new(Relay::new(broker.clone(), Arc::clone(&lost)));
        let info = dial
            .nodes
            .get(attempt % dial.nodes.len().max(1))
            .ok_or_else(|| RedisError::from((ErrorKind::InvalidClientConfig, "no server")))?;
        let client = redis::Client::open(info.clone())?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(dial.connect_timeout))
            .set_response_timeout(Some(dial.response_timeout))
            .set_push_sender(feed(&node_relay));
        let node = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let mut relays = vec![node_relay];
        let shards = if dial.cluster {
            let shard_relay = Arc::new(Relay::new(broker.clone(), Arc::clone(&lost)));
            let mut builder = ClusterClientBuilder::new(dial.nodes.clone())
                .use_protocol(ProtocolVersion::RESP3)
                .connection_timeout(dial.connect_timeout)
                .response_timeout(dial.response_timeout)
                .push_sender(feed(&shard_relay));
            if let Some(certs) = &dial.tls {
                builder = builder.certs(certs.clone());
            }
            let client = builder.build()?;
            relays.push(shard_relay);
            Some(client.get_async_connection().await?)
        } else {
            None
        };
        Ok(Link {
            conns: Conns { node, shards },
            relays,
            lost,
        })
    }

    /// Sends what makes the connections hold exactly `want`, given that
    /// they hold `have`; `have` follows each command that succeeds.
    pub(crate) async fn reconcile(&mut self, want: &Names, have: &mut Names) -> RedisResult<()> {
        let node = &mut self.conns.node;
        let (add, remove) = diff(&want.channels, &have.channels);
        for chunk in remove.chunks(NAMES_PER_COMMAND) {
            node.unsubscribe(as_args(chunk)).await?;
            forget(&mut have.channels, chunk);
        }
        for chunk in add.chunks(NAMES_PER_COMMAND) {
            node.subscribe(as_args(chunk)).await?;
            have.channels.extend(chunk.iter().cloned());
        }
        let (add, remove) = diff(&want.patterns, &have.patterns);
        for chunk in remove.chunks(NAMES_PER_COMMAND) {
            node.punsubscribe(as_args(chunk)).await?;
            forget(&mut have.patterns, chunk);
        }
        for chunk in add.chunks(NAMES_PER_COMMAND) {
            node.psubscribe(as_args(chunk)).await?;
            have.patterns.extend(chunk.iter().cloned());
        }
        let (add, remove) = diff(&want.shard_channels, &have.shard_channels);
        for chunk in remove.chunks(SHARD_COMMANDS_IN_FLIGHT) {
            self.each(Shard::Unsubscribe, chunk).await?;
            forget(&mut have.shard_channels, chunk);
        }
        for chunk in add.chunks(SHARD_COMMANDS_IN_FLIGHT) {
            self.each(Shard::Subscribe, chunk).await?;
            have.shard_channels.extend(chunk.iter().cloned());
        }
        Ok(())
    }

    /// Subscribes to or unsubscribes from each shard channel, pipelined:
    /// through the cluster connection (each to its slot's owner), or one
    /// command per name on a standalone server.
    async fn each(&self, what: Shard, names: &[Bytes]) -> RedisResult<()> {
        try_join_all(names.iter().map(|name| {
            let node = self.conns.node.clone();
            let shards = self.conns.shards.clone();
            async move {
                match (shards, what) {
                    (Some(mut shards), Shard::Subscribe) => shards.ssubscribe(name.as_ref()).await,
                    (Some(mut shards), Shard::Unsubscribe) => {
                        shards.sunsubscribe(name.as_ref()).await
                    }
                    (None, _) => {
                        let mut node = node;
                        let mut cmd = redis::Cmd::new();
                        cmd.arg(what.command()).arg(name.as_ref());
                        node.send_packed_command(&cmd).await.map(drop)
                    }
                }
            }
        }))
        .await?;
        Ok(())
    }

    /// `PING` on the node connection: fails when the server no longer
    /// answers in time.
    pub(crate) async fn ping(&mut self) -> RedisResult<()> {
        redis::cmd("PING")
            .query_async::<()>(&mut self.conns.node)
            .await
    }
}

/// A shard subscription command.
#[derive(Clone, Copy, Debug)]
enum Shard {
    /// `SSUBSCRIBE`.
    Subscribe,
    /// `SUNSUBSCRIBE`.
    Unsubscribe,
}

impl Shard {
    /// The command's name.
    fn command(self) -> &'static str {
        match self {
            Shard::Subscribe => "SSUBSCRIBE",
            Shard::Unsubscribe => "SUNSUBSCRIBE",
        }
    }
}

/// Names as command arguments.
fn as_args(names: &[Bytes]) -> Vec<&[u8]> {
    names.iter().map(|n| n.as_ref()).collect()
}

/// Removes `names` from `set`.
fn forget(set: &mut std::collections::HashSet<Bytes>, names: &[Bytes]) {
    for name in names {
        set.remove(name);
    }
}
