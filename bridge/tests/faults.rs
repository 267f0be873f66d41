//! The server goes away mid-stream: the bridge reconnects with backoff,
//! resubscribes to what is held by then, announces the gap to local
//! subscribers, queues nothing meanwhile, and never panics.

#[path = "support/redis.rs"]
mod support;

use std::time::Duration;

use support::{PATIENCE, RedisServer};
use tannoy::{Broker, Subscriber};
use tannoy_redis::{Bridge, ErrorKind, GAP_CHANNEL, State, Status};
use tokio::sync::watch;

/// The next message's (channel, payload).
async fn next(sub: &mut Subscriber) -> (String, String) {
    let msg = tokio::time::timeout(PATIENCE, sub.recv_async())
        .await
        .expect("a message in time")
        .expect("the subscriber is open");
    let text = |b: &tannoy::Bytes| String::from_utf8_lossy(b).into_owned();
    (text(msg.channel()), text(msg.payload()))
}

/// Waits until the bridge reports `state`.
async fn wait_state(status: &mut watch::Receiver<Status>, state: State) {
    tokio::time::timeout(PATIENCE, status.wait_for(|s| s.state() == state))
        .await
        .unwrap_or_else(|_| panic!("never {state:?}"))
        .expect("the bridge keeps its status");
}

/// Kill and restart the server twice while subscribers hold exact, pattern
/// and shard names: each outage puts one notice (with its number) in the
/// queue of every subscriber holding GAP_CHANNEL, between the last message
/// before the outage and the first after it; publishing fails at once
/// while away; interest that comes and goes during the outage leaves
/// nothing upstream; after each restart the bridge holds exactly the
/// current interest again, and messages flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_the_server_mid_stream() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let broker = Broker::new();
    let bridge = Bridge::builder()
        .url(server.url())
        .broker(broker.clone())
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(100))
        .health_check_interval(Duration::from_millis(500))
        .start()
        .await
        .expect("the bridge starts");
    let mut status = bridge.status_watch();
    let mut prices = broker.subscriber();
    prices.subscribe(["prices", GAP_CHANNEL]);
    let mut watcher = broker.subscriber();
    watcher.psubscribe(["pri*"]);
    let mut shard = broker.subscriber();
    shard.ssubscribe(["stock:{1}"]);
    shard.subscribe([GAP_CHANNEL]);
    bridge.sync().await.expect("synced");

    for outage in 1..=2u64 {
        let before = format!("before {outage}");
        server.publish("prices", &before);
        let _: i64 = server.query(redis::cmd("SPUBLISH").arg("stock:{1}").arg(&before));
        assert_eq!(next(&mut prices).await, ("prices".into(), before.clone()));
        assert_eq!(next(&mut watcher).await, ("prices".into(), before.clone()));
        assert_eq!(next(&mut shard).await, ("stock:{1}".into(), before.clone()));

        server.kill();
        let notice = (GAP_CHANNEL.to_owned(), outage.to_string());
        assert_eq!(next(&mut prices).await, notice);
        assert_eq!(next(&mut shard).await, notice);
        assert_eq!(bridge.status().outages(), outage);
        let err = bridge.publish("prices", "lost").await.expect_err("away");
        assert!(
            matches!(err.kind(), ErrorKind::Disconnected | ErrorKind::Upstream),
            "{err}"
        );
        // Interest that comes and goes while the server is away.
        let passing = broker.subscriber();
        passing.subscribe((0..1000).map(|i| format!("passing:{i}")));
        passing.psubscribe(["passing:*"]);
        drop(passing);

        server.restart();
        wait_state(&mut status, State::Connected).await;
        bridge.sync().await.expect("resubscribed");
        assert_eq!(server.numsub("prices"), 1);
        assert_eq!(server.numsub("passing:0"), 0);
        assert_eq!(server.numpat(), 1);
        assert_eq!(server.shard_numsub("stock:{1}"), 1);
        assert_eq!(server.numsub(GAP_CHANNEL), 0);

        let after = format!("after {outage}");
        assert_eq!(
            bridge.publish("prices", &after).await.expect("published"),
            2
        );
        assert_eq!(
            bridge
                .spublish("stock:{1}", &after)
                .await
                .expect("spublished"),
            1
        );
        assert_eq!(next(&mut prices).await, ("prices".into(), after.clone()));
        assert_eq!(next(&mut watcher).await, ("prices".into(), after.clone()));
        assert_eq!(next(&mut shard).await, ("stock:{1}".into(), after.clone()));
    }
    assert!(prices.try_recv().is_err() && watcher.try_recv().is_err());
    assert_eq!(prices.dropped() + watcher.dropped() + shard.dropped(), 0);
    bridge.shutdown().await;
}

/// While the server stays away, the bridge keeps retrying with backoff
/// and never blocks its owner: publishes fail at once, status says
/// `Connecting`, and shutdown returns promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stays_away() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let broker = Broker::new();
    let bridge = Bridge::builder()
        .url(server.url())
        .broker(broker.clone())
        .reconnect_backoff(Duration::from_millis(5), Duration::from_millis(20))
        .start()
        .await
        .expect("the bridge starts");
    let mut status = bridge.status_watch();
    let sub = broker.subscriber();
    sub.subscribe(["x"]);
    bridge.sync().await.expect("synced");
    server.kill();
    wait_state(&mut status, State::Connecting).await;
    for _ in 0..100 {
        let err = bridge.publish("x", "y").await.expect_err("away");
        assert_eq!(err.kind(), ErrorKind::Disconnected);
    }
    // Many attempts later it is still retrying, and stops when asked.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bridge.status().state(), State::Connecting);
    assert_eq!(bridge.status().outages(), 1);
    tokio::time::timeout(PATIENCE, bridge.shutdown())
        .await
        .expect("shutdown returns");
}
