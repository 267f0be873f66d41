//! Bridges to one real `redis-server`: several brokers, each with its own
//! bridge, exchanging messages through the server; upstream subscriptions
//! following local interest; a stalled local subscriber.

#[path = "support/redis.rs"]
mod support;

use std::time::Duration;

use support::{PATIENCE, RedisServer};
use tannoy::{Broker, MessageKind, Subscriber};
use tannoy_redis::{Bridge, ErrorKind, GAP_CHANNEL, State};

/// A bridge from `broker` to `server`, reconnecting quickly.
async fn bridge(server: &RedisServer, broker: &Broker) -> Bridge {
    Bridge::builder()
        .url(server.url())
        .broker(broker.clone())
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(200))
        .start()
        .await
        .expect("the bridge starts")
}

/// One received message: (kind, pattern, channel, payload).
type Seen = (&'static str, String, String, String);

/// Receives until a message on channel `end` arrives; returns what came
/// before it, in order.
async fn until_end(sub: &mut Subscriber) -> Vec<Seen> {
    let mut seen = Vec::new();
    loop {
        let msg = tokio::time::timeout(PATIENCE, sub.recv_async())
            .await
            .expect("the end marker arrives")
            .expect("the subscriber is open");
        if msg.channel() == "end" {
            return seen;
        }
        let text = |b: &tannoy::Bytes| String::from_utf8_lossy(b).into_owned();
        seen.push((
            msg.kind().as_str(),
            msg.pattern().map(text).unwrap_or_default(),
            text(msg.channel()),
            text(msg.payload()),
        ));
    }
}

fn m(kind: MessageKind, pattern: &str, channel: &str, payload: &str) -> Seen {
    (
        kind.as_str(),
        pattern.into(),
        channel.into(),
        payload.into(),
    )
}

fn sorted(mut v: Vec<Seen>) -> Vec<Seen> {
    v.sort();
    v
}

/// Three brokers, each with its own bridge and a mix of exact and pattern
/// subscribers (one holding a channel both exactly and through two
/// patterns): a publish through any bridge reaches every local subscriber
/// in every process exactly as a direct Redis connection holding the same
/// names would receive it, once, exact before pattern; and the publish
/// count is the server's count of upstream subscriptions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_in_one_receive_in_all_exact_and_patterns_mixed() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b, c) = (Broker::new(), Broker::new(), Broker::new());
    let (bridge_a, bridge_b, bridge_c) = (
        bridge(&server, &a).await,
        bridge(&server, &b).await,
        bridge(&server, &c).await,
    );

    let mut a_exact = a.subscriber();
    a_exact.subscribe(["news.eu", "end"]);
    let mut a_pattern = a.subscriber();
    a_pattern.psubscribe(["news.*"]);
    a_pattern.subscribe(["end"]);
    let mut a_both = a.subscriber();
    a_both.subscribe(["news.eu", "end"]);
    a_both.psubscribe(["news.*", "n*"]);
    let mut b_pattern = b.subscriber();
    b_pattern.psubscribe(["news.*"]);
    b_pattern.subscribe(["end"]);
    let mut b_us = b.subscriber();
    b_us.subscribe(["news.us", "end"]);
    let mut c_both = c.subscriber();
    c_both.subscribe(["news.eu", "news.us", "end"]);
    for bridge in [&bridge_a, &bridge_b, &bridge_c] {
        bridge.sync().await.expect("subscribed upstream");
    }

    // Upstream: A holds news.eu + news.* + n*, B news.* (+ news.us), C news.eu.
    assert_eq!(
        bridge_a.publish("news.eu", "1").await.expect("published"),
        5
    );
    assert_eq!(
        bridge_b.publish("news.us", "2").await.expect("published"),
        5
    );
    assert_eq!(
        bridge_c.publish("news.asia", "3").await.expect("published"),
        3
    );
    assert_eq!(
        bridge_c.publish("nothing", "4").await.expect("published"),
        1
    );
    assert_eq!(bridge_a.publish("end", "").await.expect("published"), 3);

    use MessageKind::{Message as M, PMessage as P};
    assert_eq!(until_end(&mut a_exact).await, [m(M, "", "news.eu", "1")]);
    assert_eq!(
        until_end(&mut a_pattern).await,
        [
            m(P, "news.*", "news.eu", "1"),
            m(P, "news.*", "news.us", "2"),
            m(P, "news.*", "news.asia", "3"),
        ]
    );
    let both = until_end(&mut a_both).await;
    assert_eq!(both[0], m(M, "", "news.eu", "1"), "exact before patterns");
    assert_eq!(
        sorted(both),
        sorted(vec![
            m(M, "", "news.eu", "1"),
            m(P, "news.*", "news.eu", "1"),
            m(P, "n*", "news.eu", "1"),
            m(P, "news.*", "news.us", "2"),
            m(P, "n*", "news.us", "2"),
            m(P, "news.*", "news.asia", "3"),
            m(P, "n*", "news.asia", "3"),
            m(P, "n*", "nothing", "4"),
        ])
    );
    assert_eq!(
        until_end(&mut b_pattern).await,
        [
            m(P, "news.*", "news.eu", "1"),
            m(P, "news.*", "news.us", "2"),
            m(P, "news.*", "news.asia", "3"),
        ]
    );
    assert_eq!(until_end(&mut b_us).await, [m(M, "", "news.us", "2")]);
    assert_eq!(
        until_end(&mut c_both).await,
        [m(M, "", "news.eu", "1"), m(M, "", "news.us", "2")]
    );
    for sub in [&a_exact, &a_pattern, &a_both, &b_pattern, &b_us, &c_both] {
        assert!(sub.try_recv().is_err(), "nothing after the end marker");
        assert_eq!(sub.dropped(), 0);
    }
    for bridge in [bridge_a, bridge_b, bridge_c] {
        bridge.shutdown().await;
    }
}

/// However many local subscribers share a name, the server sees one
/// upstream connection holding it once; when the last local subscriber
/// leaves, the bridge unsubscribes upstream (PUBSUB NUMSUB / NUMPAT /
/// SHARDNUMSUB on the server go back to 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_interest_ending_unsubscribes_upstream() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let broker = Broker::new();
    let bridge = bridge(&server, &broker).await;
    let subs: Vec<Subscriber> = (0..50)
        .map(|_| {
            let sub = broker.subscriber();
            sub.subscribe(["orders"]);
            sub.psubscribe(["orders:*"]);
            sub.ssubscribe(["stock"]);
            sub
        })
        .collect();
    bridge.sync().await.expect("subscribed upstream");
    assert_eq!(server.numsub("orders"), 1);
    assert_eq!(server.numpat(), 1);
    assert_eq!(server.shard_numsub("stock"), 1);
    // This test's own query connection, and the bridge's one (earlier
    // query connections may take a moment to be noticed as closed).
    support::eventually("one upstream connection", || {
        server.connected_clients() == 2
    });

    let mut subs = subs.into_iter();
    let last = subs.next().expect("one subscriber");
    drop(subs);
    bridge.sync().await.expect("synced");
    assert_eq!(server.numsub("orders"), 1, "one local subscriber is left");
    last.punsubscribe(["orders:*"]);
    bridge.sync().await.expect("synced");
    assert_eq!(server.numpat(), 0);
    assert_eq!(server.numsub("orders"), 1);
    drop(last);
    bridge.sync().await.expect("synced");
    assert_eq!(server.numsub("orders"), 0);
    assert_eq!(server.shard_numsub("stock"), 0);

    // The local notice channel is never subscribed upstream.
    let notices = broker.subscriber();
    notices.subscribe([GAP_CHANNEL]);
    bridge.sync().await.expect("synced");
    assert_eq!(server.numsub(GAP_CHANNEL), 0);
    bridge.shutdown().await;
}

/// Shard channels on a standalone server: SSUBSCRIBE follows local
/// interest, SPUBLISH through the bridge reaches the local shard
/// subscribers as `smessage`s, counted once per upstream connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_channels_on_a_standalone_server() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (Broker::new(), Broker::new());
    let (bridge_a, bridge_b) = (bridge(&server, &a).await, bridge(&server, &b).await);
    let mut subs = Vec::new();
    for broker in [&a, &a, &b] {
        let sub = broker.subscriber();
        sub.ssubscribe(["orders:{7}"]);
        sub.psubscribe(["*"]); // patterns never match shard channels
        subs.push(sub);
    }
    bridge_a.sync().await.expect("synced");
    bridge_b.sync().await.expect("synced");
    assert_eq!(
        bridge_b
            .spublish("orders:{7}", "shipped")
            .await
            .expect("spublished"),
        2
    );
    for sub in &mut subs {
        let msg = tokio::time::timeout(PATIENCE, sub.recv_async())
            .await
            .expect("in time")
            .expect("open");
        assert_eq!(msg.kind(), MessageKind::SMessage);
        assert_eq!(msg.payload(), "shipped");
    }
    bridge_a.shutdown().await;
    bridge_b.shutdown().await;
}

/// A local subscriber that never reads loses its own oldest messages and
/// slows nothing: another local subscriber of the same channel receives
/// every one of a burst of messages, in order, with no gap in `seq`,
/// while the stalled one's `dropped()` counts exactly what it lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_local_subscriber_does_not_slow_the_bridge() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    const N: usize = 5_000;
    const CAPACITY: usize = 16;
    let broker = Broker::new();
    let bridge = bridge(&server, &broker).await;
    let stalled = broker.subscriber_builder().queue_capacity(CAPACITY).build();
    stalled.subscribe(["ticks"]);
    let mut active = broker.subscriber_builder().queue_capacity(N).build();
    active.subscribe(["ticks"]);
    bridge.sync().await.expect("synced");

    let url = server.url();
    let publisher = tokio::task::spawn_blocking(move || {
        let client = redis::Client::open(url).expect("a client");
        let mut conn = client.get_connection().expect("connected");
        let mut pipe = redis::pipe();
        for i in 0..N {
            pipe.cmd("PUBLISH").arg("ticks").arg(i).ignore();
        }
        pipe.query::<()>(&mut conn).expect("published");
    });
    for i in 0..N {
        let msg = tokio::time::timeout(PATIENCE, active.recv_async())
            .await
            .expect("in time")
            .expect("open");
        assert_eq!(msg.payload(), i.to_string().as_str());
        assert_eq!(msg.seq(), i as u64, "no gap");
    }
    publisher.await.expect("the publisher finished");
    assert_eq!(active.dropped(), 0);
    assert_eq!(stalled.dropped(), (N - CAPACITY) as u64);
    assert_eq!(stalled.len(), CAPACITY);
    bridge.shutdown().await;
}

/// A builder without a broker or with a bad URL fails at `start`, as does
/// an unreachable server; after shutdown the state is `Closed`; when the
/// broker closes, the bridge stops by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_errors_and_the_end_of_a_bridge() {
    let err = Bridge::builder()
        .url("redis://127.0.0.1:1")
        .start()
        .await
        .expect_err("no broker");
    assert_eq!(err.kind(), ErrorKind::NoBroker);
    let err = Bridge::builder()
        .url("http://nowhere")
        .broker(Broker::new())
        .start()
        .await
        .expect_err("not a redis URL");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);

    let Some(server) = RedisServer::start() else {
        return;
    };
    let broker = Broker::new();
    let bridge = bridge(&server, &broker).await;
    let sub = broker.subscriber();
    sub.subscribe(["x"]);
    bridge.sync().await.expect("synced");
    let mut status = bridge.status_watch();
    broker.close();
    tokio::time::timeout(PATIENCE, status.wait_for(|s| s.state() == State::Closed))
        .await
        .expect("in time")
        .expect("the status is kept");
    let err = bridge.publish("x", "late").await.expect_err("closed");
    assert_eq!(err.kind(), ErrorKind::Closed);
    assert_eq!(
        bridge.sync().await.expect_err("closed").kind(),
        ErrorKind::Closed
    );
    bridge.shutdown().await;
    support::eventually("the server drops the bridge's connection", || {
        server.numsub("x") == 0
    });
}
