//! Faults on demand, each observed by an unmodified reconnecting redis-rs
//! client (its `ConnectionManager`, which resubscribes after reconnecting)
//! as it would observe them with a real redis-server: a killed
//! connection, a restart with every subscription gone, a stall.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::{PushInfo, PushKind, Value};
use tannoy_server::{Server, TestServer};
use tokio::sync::mpsc::UnboundedReceiver;

/// How long any one wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);

/// A RESP3 `ConnectionManager` that resubscribes after reconnecting, with
/// its pushes.
async fn manager(url: &str) -> (ConnectionManager, UnboundedReceiver<PushInfo>) {
    let client = redis::Client::open(format!("{url}?protocol=resp3")).expect("valid url");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_push_sender(tx)
        .set_automatic_resubscription();
    let manager = client
        .get_connection_manager_with_config(config)
        .await
        .expect("connect");
    (manager, rx)
}

/// Publishes `payload` in-process every few milliseconds, nudging the
/// manager with a PING (which makes it reconnect), until a message with
/// that payload arrives; returns the kinds of pushes seen before it.
async fn until_delivered(
    broker: &tannoy::Broker,
    manager: &mut ConnectionManager,
    pushes: &mut UnboundedReceiver<PushInfo>,
    payload: &str,
) -> Vec<PushKind> {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "no delivery of {payload}; saw {seen:?}"
        );
        broker.publish("jobs", payload.to_owned());
        let _: Result<String, _> = redis::cmd("PING").query_async(manager).await;
        let wait = tokio::time::sleep(Duration::from_millis(20));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                push = pushes.recv() => {
                    let push = push.expect("the push channel stays open");
                    if push.kind == PushKind::Message
                        && push.data.get(1) == Some(&Value::BulkString(payload.as_bytes().to_vec()))
                    {
                        return seen;
                    }
                    seen.push(push.kind);
                }
                () = &mut wait => break,
            }
        }
    }
}

/// `kill_clients` drops the subscriber's connection as `CLIENT KILL`
/// would: its subscription is gone at once, redis-rs sees the
/// disconnection, reconnects and resubscribes, and receives again.
#[tokio::test]
async fn killed_connection_reconnects_and_resubscribes() {
    let server = Server::builder().start().await.expect("start");
    let broker = server.broker().clone();
    let (mut manager, mut pushes) = manager(&server.url()).await;
    manager.subscribe("jobs").await.expect("subscribe");
    until_delivered(&broker, &mut manager, &mut pushes, "before").await;

    let killed = server.kill_clients(|c| c.is_subscribed()).await;
    assert_eq!(killed, 1);
    assert_eq!(
        broker.numsub(["jobs"])[0].1,
        0,
        "the subscription went with the kill"
    );
    let seen = until_delivered(&broker, &mut manager, &mut pushes, "after").await;
    assert!(seen.contains(&PushKind::Disconnection), "saw {seen:?}");
    assert_eq!(broker.numsub(["jobs"])[0].1, 1);
    server.shutdown().await;
}

/// `restart` drops every connection and subscription and listens again on
/// the same port; the client finds the server there again and resubscribes.
#[tokio::test]
async fn restart_on_the_same_port_loses_subscriptions() {
    let server = Server::builder().start().await.expect("start");
    let broker = server.broker().clone();
    let port = server.local_addr().port();
    let (mut manager, mut pushes) = manager(&server.url()).await;
    manager.subscribe("jobs").await.expect("subscribe");
    manager.psubscribe("jo*").await.expect("psubscribe");
    until_delivered(&broker, &mut manager, &mut pushes, "before").await;

    server.restart().await.expect("restart");
    assert_eq!(server.local_addr().port(), port);
    assert_eq!(broker.numsub(["jobs"])[0].1, 0);
    assert_eq!(broker.numpat(), 0);
    let seen = until_delivered(&broker, &mut manager, &mut pushes, "after").await;
    assert!(seen.contains(&PushKind::Disconnection), "saw {seen:?}");
    assert_eq!(broker.numpat(), 1, "the pattern was resubscribed too");
    server.shutdown().await;
}

/// While stopped the port refuses connections; `resume` brings it back.
#[test]
fn stop_refuses_until_resume() {
    let redis = TestServer::start();
    let client = redis::Client::open(redis.url()).expect("valid url");
    let mut con = client.get_connection().expect("connect");
    redis.stop();
    assert!(redis::cmd("PING").query::<String>(&mut con).is_err());
    assert!(client.get_connection().is_err());
    redis.resume().expect("resume");
    let mut con = client.get_connection().expect("connect again");
    assert_eq!(
        redis::cmd("PING").query::<String>(&mut con).expect("ping"),
        "PONG"
    );
}

/// A stalled client receives nothing for the stall's duration, then
/// everything, in order, as after a network hiccup.
#[tokio::test]
async fn stall_delays_delivery_without_loss() {
    let server = Server::builder().start().await.expect("start");
    let client = redis::Client::open(server.url()).expect("valid url");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub.subscribe("ticks").await.expect("subscribe");
    let stall = Duration::from_millis(400);
    assert_eq!(server.stall_clients(|c| c.is_subscribed(), stall), 1);
    let stalled_at = Instant::now();
    for i in 0..20 {
        assert_eq!(server.broker().publish("ticks", format!("t{i}")), 1);
    }
    let mut stream = pubsub.on_message();
    let first = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("in time")
        .expect("a message");
    assert!(
        stalled_at.elapsed() >= stall,
        "delivered after {:?}, inside a {stall:?} stall",
        stalled_at.elapsed()
    );
    let mut got = vec![first.get_payload::<String>().expect("payload")];
    while got.len() < 20 {
        let msg = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("in time")
            .expect("a message");
        got.push(msg.get_payload::<String>().expect("payload"));
    }
    let expected: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    assert_eq!(got, expected);
    drop(stream);
    drop(pubsub);
    server.shutdown().await;
}
