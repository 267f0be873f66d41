//! The seed scenario scaled out: the WebSocket example served by two
//! servers, each with its own broker and its own `tannoy_redis::Bridge`,
//! through one real `redis-server`. Real WebSocket clients on either
//! server receive every `ai:predictions:ready` message published through
//! either, in Redis's order; each server holds one upstream subscription
//! however many browsers it serves; an outage of Redis reaches every
//! browser as one `tannoy-redis:gap` frame.
//!
//! Two servers in this process (so the test publishes deterministically
//! through each bridge), then two OS processes of the example binary with
//! `--redis`, whose demo publishers publish through their bridges.
//!
//! The `redis-server` is private to each test, on a free loopback port
//! (tannoy-redis's test support, shared). Without one installed the tests
//! skip, unless `TANNOY_REQUIRE_REDIS=1`.

#[path = "../src/main.rs"]
#[allow(
    dead_code,
    reason = "the example's `main` is its entry point, not called from here"
)]
mod websocket_example;

#[path = "../../bridge/tests/support/redis.rs"]
mod support;

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use common::{Client, Serving, close, connect, next_json, within};
use serde_json::{Value, json};
use support::RedisServer;
use tannoy::Broker;
use tannoy_redis::{Bridge, GAP_CHANNEL, State};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use websocket_example::{AI_PATTERN, Hub, PREDICTIONS};

/// The example's server, bridged to Redis, on an ephemeral loopback port.
struct Server {
    /// Where it listens.
    addr: SocketAddr,
    /// Its broker and bridge.
    hub: Hub,
    /// The serving task.
    serving: Serving,
}

impl Server {
    /// Starts a server whose fresh broker is bridged to `url`, with quick
    /// reconnection so the outage below is short.
    async fn start(url: &str) -> Self {
        let bridge = Bridge::builder()
            .url(url)
            .broker(Broker::new())
            .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(100))
            .health_check_interval(Duration::from_millis(500))
            .start()
            .await
            .expect("the bridge starts");
        let hub = Hub::bridged(bridge);
        let serving = Serving::start(hub.clone()).await;
        Self {
            addr: serving.addr,
            hub,
            serving,
        }
    }

    /// The server's bridge.
    fn bridge(&self) -> &Bridge {
        self.hub.bridge.as_deref().expect("a bridged server")
    }

    /// Publishes through this server's bridge; returns Redis's count.
    async fn publish(&self, channel: &str, payload: &str) -> usize {
        within("a publish", self.bridge().publish(channel, payload))
            .await
            .expect("published")
    }

    /// Waits until the bridge is connected again and holds its browsers'
    /// names upstream.
    async fn resynced(&self) {
        let mut status = self.bridge().status_watch();
        within(
            "the bridge to reconnect",
            status.wait_for(|s| s.state() == State::Connected),
        )
        .await
        .expect("the bridge keeps its status");
        within("the upstream subscriptions", async {
            // A connection lost while resubscribing fails one sync; the
            // bridge reconnects, and the next one succeeds.
            while self.bridge().sync().await.is_err() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }

    /// Shuts the server down: closing its broker ends every WebSocket and
    /// stops its bridge.
    async fn stop(self) {
        self.serving.stop().await;
        assert!(self.hub.broker.is_closed(), "shutdown closes the broker");
        let bridge = self.hub.bridge.as_deref().expect("a bridged server");
        let mut status = bridge.status_watch();
        within(
            "the bridge to stop",
            status.wait_for(|s| s.state() == State::Closed),
        )
        .await
        .expect("the bridge keeps its status");
    }
}

/// A `message` frame on [`PREDICTIONS`].
fn message(data: &str, seq: u64) -> Value {
    json!({"type": "message", "channel": PREDICTIONS, "data": data, "seq": seq})
}

/// A `pmessage` frame through [`AI_PATTERN`].
fn pmessage(channel: &str, data: &str, seq: u64) -> Value {
    json!({"type": "pmessage", "pattern": AI_PATTERN, "channel": channel, "data": data, "seq": seq})
}

/// Two servers, three browsers (alice on A; bob, with `?patterns=true`, and
/// carol on B): every prediction published through either server's bridge
/// reaches all three, once, in publish order; Redis sees one subscription
/// per server and counts upstream subscriptions, not browsers. When Redis
/// restarts, each browser gets one gap frame exactly between the last
/// message before and the first after, and then predictions flow again to
/// old and new browsers alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_browser_on_either_server_gets_every_prediction() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let a = Server::start(&redis.url()).await;
    let b = Server::start(&redis.url()).await;
    let mut alice = connect(a.addr, "/ws/alice").await;
    let mut bob = connect(b.addr, "/ws/bob?patterns=true").await;
    let mut carol = connect(b.addr, "/ws/carol").await;

    // The handshake is answered once Redis confirmed the subscription: no
    // waiting here. Three browsers, two upstream subscriptions.
    assert_eq!(redis.numsub(PREDICTIONS), 2);
    assert_eq!(redis.numpat(), 1, "only B holds ai:*");
    assert_eq!(b.hub.broker.numsub([PREDICTIONS])[0].1, 2);

    // Predictions through A and B in turn, and a model update through A
    // after the fifth. Redis counts A's channel, B's channel and B's
    // pattern: 3, whatever the number of browsers.
    let predictions: Vec<String> = (0..10)
        .map(|i| format!(r#"{{"conversation":"c-{i}","score":0.{i}}}"#))
        .collect();
    let update = r#"{"model":"sentiment-v3","version":4}"#;
    for (i, prediction) in predictions.iter().enumerate() {
        let server = if i % 2 == 0 { &a } else { &b };
        assert_eq!(server.publish(PREDICTIONS, prediction).await, 3);
        if i == 4 {
            assert_eq!(a.publish("ai:models:updated", update).await, 1);
        }
    }

    let mut bob_seq = 0;
    for (i, prediction) in predictions.iter().enumerate() {
        let seq = i as u64;
        assert_eq!(next_json(&mut alice).await, message(prediction, seq));
        assert_eq!(next_json(&mut carol).await, message(prediction, seq));
        assert_eq!(next_json(&mut bob).await, message(prediction, bob_seq));
        assert_eq!(
            next_json(&mut bob).await,
            pmessage(PREDICTIONS, prediction, bob_seq + 1)
        );
        bob_seq += 2;
        if i == 4 {
            assert_eq!(
                next_json(&mut bob).await,
                pmessage("ai:models:updated", update, bob_seq)
            );
            bob_seq += 1;
        }
    }

    // Redis goes away: each browser hears of it once, from its own server.
    redis.kill();
    let gap =
        |seq: u64| json!({"type": "message", "channel": GAP_CHANNEL, "data": "1", "seq": seq});
    assert_eq!(next_json(&mut alice).await, gap(10));
    assert_eq!(next_json(&mut carol).await, gap(10));
    assert_eq!(next_json(&mut bob).await, gap(bob_seq));
    bob_seq += 1;

    redis.restart();
    a.resynced().await;
    b.resynced().await;
    assert_eq!(redis.numsub(PREDICTIONS), 2, "both servers resubscribed");
    assert_eq!(redis.numpat(), 1);
    let mut dave = connect(a.addr, "/ws/dave").await;
    assert_eq!(
        redis.numsub(PREDICTIONS),
        2,
        "a new browser adds nothing upstream"
    );

    let after = r#"{"conversation":"c-after","score":0.5}"#;
    assert_eq!(b.publish(PREDICTIONS, after).await, 3);
    assert_eq!(next_json(&mut alice).await, message(after, 11));
    assert_eq!(next_json(&mut carol).await, message(after, 11));
    assert_eq!(next_json(&mut dave).await, message(after, 0));
    assert_eq!(next_json(&mut bob).await, message(after, bob_seq));
    assert_eq!(
        next_json(&mut bob).await,
        pmessage(PREDICTIONS, after, bob_seq + 1)
    );

    // The last browser of a server leaving drops its upstream interest.
    close(bob).await;
    close(carol).await;
    support::eventually("B's upstream subscriptions to go", || {
        redis.numsub(PREDICTIONS) == 1 && redis.numpat() == 0
    });
    close(alice).await;
    close(dave).await;
    a.stop().await;
    b.stop().await;
    support::eventually("A's upstream subscription to go", || {
        redis.numsub(PREDICTIONS) == 0
    });
}

/// One run of the example binary with `--redis`.
struct Process {
    /// The process (killed when dropped).
    child: Child,
    /// Where it listens.
    addr: SocketAddr,
    /// Its id: what its predictions carry as `publisher`.
    pid: u64,
    /// Its stdout, kept open so that its prints never fail.
    _stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Process {
    /// Runs the example on a free port, bridged to `url`, publishing a
    /// prediction every 20 ms, and reads where it listens.
    async fn start(url: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tannoy-websocket-example"))
            .args(["--port", "0", "--redis", url, "--period-ms", "20"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the example runs");
        let pid = u64::from(child.id().expect("a running child"));
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let first = within("the example to listen", lines.next_line())
            .await
            .expect("readable stdout")
            .expect("the example prints where it listens");
        let addr = first
            .strip_prefix("listening on ws://")
            .and_then(|rest| rest.split_once("/ws/"))
            .and_then(|(addr, _)| addr.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        Self {
            child,
            addr,
            pid,
            _stdout: lines,
        }
    }

    /// Kills the process and waits for it.
    async fn kill(mut self) {
        within("the example to die", self.child.kill())
            .await
            .expect("killed");
    }
}

/// Reads `client` until it has seen at least `ticks` consecutive
/// predictions from each of `publishers`, checking that every frame is a
/// prediction and that no publisher's ticks skip one once first seen.
async fn hear_all(client: &mut Client, publishers: &[u64], ticks: u64) {
    let mut last: HashMap<u64, (u64, u64)> = HashMap::new(); // pid -> (first, last tick)
    let done = |last: &HashMap<u64, (u64, u64)>| {
        publishers.iter().all(|p| {
            last.get(p)
                .is_some_and(|(first, now)| now - first + 1 >= ticks)
        })
    };
    let mut expected_seq = 0;
    while !done(&last) {
        let frame = next_json(client).await;
        assert_eq!(frame["type"], "message", "{frame}");
        assert_eq!(frame["channel"], PREDICTIONS, "{frame}");
        assert_eq!(frame["seq"], expected_seq, "no frame is dropped");
        expected_seq += 1;
        let data: Value =
            serde_json::from_str(frame["data"].as_str().expect("data is text")).expect("JSON");
        let publisher = data["publisher"].as_u64().expect("a publisher");
        let tick = data["tick"].as_u64().expect("a tick");
        assert!(
            publishers.contains(&publisher),
            "unknown publisher in {data}"
        );
        let entry = last
            .entry(publisher)
            .or_insert((tick, tick.wrapping_sub(1)));
        assert_eq!(
            tick,
            entry.1.wrapping_add(1),
            "publisher {publisher} skipped a tick"
        );
        entry.1 = tick;
    }
}

/// The example binary run twice with `--redis` on one `redis-server`: a
/// browser on either process hears every prediction of both processes'
/// publishers (consecutive ticks, nothing dropped), and a process that
/// dies takes its upstream subscription with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let one = Process::start(&redis.url()).await;
    let two = Process::start(&redis.url()).await;
    let publishers = [one.pid, two.pid];
    let mut on_one = connect(one.addr, "/ws/on-one").await;
    let mut on_two = connect(two.addr, "/ws/on-two").await;
    assert_eq!(redis.numsub(PREDICTIONS), 2);

    hear_all(&mut on_one, &publishers, 10).await;
    hear_all(&mut on_two, &publishers, 10).await;

    close(on_one).await;
    close(on_two).await;
    one.kill().await;
    two.kill().await;
    support::eventually("the processes' subscriptions to go", || {
        redis.numsub(PREDICTIONS) == 0
    });
}
