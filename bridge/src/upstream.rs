//! One upstream connection: connecting with the relay as its push
//! callback, and the subscription commands.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::try_join_all;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionInfo, ProtocolVersion, PushInfo, RedisResult};
use tannoy::Broker;
use tokio::sync::Notify;

use crate::names::{Names, diff};
use crate::relay::Relay;

/// Names per `SUBSCRIBE`/`PSUBSCRIBE`/... command: resubscribing 10,000
/// channels takes ten commands, each a few hundred KiB at most.
const NAMES_PER_COMMAND: usize = 1000;

/// Shard subscriptions in flight at once. redis-rs offers `SSUBSCRIBE`
/// with several names only on cluster connections, so a standalone
/// connection sends one per name, pipelined this many at a time.
const SHARD_COMMANDS_IN_FLIGHT: usize = 256;

/// How the bridge connects: timeouts and the server's address and
/// credentials.
#[derive(Debug, Clone)]
pub(crate) struct Dial {
    /// Address, database and credentials; always RESP3.
    pub(crate) info: ConnectionInfo,
    /// How long a connection attempt may take.
    pub(crate) connect_timeout: Duration,
    /// How long a command may wait for its reply.
    pub(crate) response_timeout: Duration,
}

/// A live connection and the relay that reads it.
#[derive(Debug)]
pub(crate) struct Link {
    /// The connection: subscriptions and commands share it (RESP3 allows
    /// commands on a subscribed connection).
    pub(crate) conn: MultiplexedConnection,
    /// The relay fed by the connection's pushes.
    pub(crate) relay: Arc<Relay>,
    /// Notified when the connection is lost.
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

impl Link {
    /// Connects, authenticates and switches to RESP3, relaying every push
    /// into `broker`.
    pub(crate) async fn connect(dial: &Dial, broker: &Broker) -> RedisResult<Link> {
        let client = redis::Client::open(dial.info.clone())?;
        let relay = Arc::new(Relay::new(broker.clone()));
        let lost = relay.lost();
        let feed = Arc::clone(&relay);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(dial.connect_timeout))
            .set_response_timeout(Some(dial.response_timeout))
            .set_push_sender(move |push: PushInfo| {
                feed.handle(push);
                Ok::<(), Infallible>(())
            });
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok(Link { conn, relay, lost })
    }

    /// Sends what makes the connection hold exactly `want`, given that it
    /// holds `have`; `have` follows each command that succeeds.
    pub(crate) async fn reconcile(&mut self, want: &Names, have: &mut Names) -> RedisResult<()> {
        let (add, remove) = diff(&want.channels, &have.channels);
        for chunk in remove.chunks(NAMES_PER_COMMAND) {
            self.conn.unsubscribe(as_args(chunk)).await?;
            forget(&mut have.channels, chunk);
        }
        for chunk in add.chunks(NAMES_PER_COMMAND) {
            self.conn.subscribe(as_args(chunk)).await?;
            have.channels.extend(chunk.iter().cloned());
        }
        let (add, remove) = diff(&want.patterns, &have.patterns);
        for chunk in remove.chunks(NAMES_PER_COMMAND) {
            self.conn.punsubscribe(as_args(chunk)).await?;
            forget(&mut have.patterns, chunk);
        }
        for chunk in add.chunks(NAMES_PER_COMMAND) {
            self.conn.psubscribe(as_args(chunk)).await?;
            have.patterns.extend(chunk.iter().cloned());
        }
        let (add, remove) = diff(&want.shard_channels, &have.shard_channels);
        for chunk in remove.chunks(SHARD_COMMANDS_IN_FLIGHT) {
            self.each(b"SUNSUBSCRIBE", chunk).await?;
            forget(&mut have.shard_channels, chunk);
        }
        for chunk in add.chunks(SHARD_COMMANDS_IN_FLIGHT) {
            self.each(b"SSUBSCRIBE", chunk).await?;
            have.shard_channels.extend(chunk.iter().cloned());
        }
        Ok(())
    }

    /// Sends `command name` for each name, pipelined.
    async fn each(&self, command: &[u8], names: &[Bytes]) -> RedisResult<()> {
        try_join_all(names.iter().map(|name| {
            let mut conn = self.conn.clone();
            let mut cmd = redis::Cmd::new();
            cmd.arg(command).arg(name.as_ref());
            async move { conn.send_packed_command(&cmd).await }
        }))
        .await?;
        Ok(())
    }

    /// `PING`: fails when the server no longer answers in time.
    pub(crate) async fn ping(&mut self) -> RedisResult<()> {
        redis::cmd("PING").query_async::<()>(&mut self.conn).await
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
