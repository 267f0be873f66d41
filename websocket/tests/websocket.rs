//! The WebSocket example's server, driven by real WebSocket clients over
//! loopback: each connection hears exactly its own subscriptions as JSON, a
//! closed or vanished socket is unsubscribed promptly, a client that stops
//! reading slows no one and sees its losses as `seq` gaps, and shutdown ends
//! every connection and the server.
//!
//! The server is the example's own code: this file includes
//! `websocket/src/main.rs` as a module and calls its `serve`, so the test
//! owns the `Broker` and publishes deterministically (the example's
//! once-a-second publisher is not started, except in the one test about it).

#[path = "../src/main.rs"]
#[allow(
    dead_code,
    reason = "the example's `main` is its entry point, not called from here"
)]
mod websocket_example;

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Serving, close, connect, connect_with_recv_buffer, next_json, within};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tannoy::{Broker, MessageKind};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use websocket_example::{AI_PATTERN, PREDICTIONS, QUEUE_CAPACITY};

/// The example's server running on an ephemeral loopback port.
struct Server {
    /// Where it listens.
    addr: SocketAddr,
    /// The broker it forwards from; the test publishes through it.
    broker: Broker,
    /// The serving task.
    serving: Serving,
}

impl Server {
    /// Starts the example's server with a fresh broker on `127.0.0.1:0`.
    async fn start() -> Self {
        let broker = Broker::new();
        let serving = Serving::start(broker.clone()).await;
        Self {
            addr: serving.addr,
            broker,
            serving,
        }
    }

    /// Shuts the server down and waits for it to finish.
    async fn stop(self) {
        self.serving.stop().await;
        assert!(self.broker.is_closed(), "shutdown closes the broker");
    }
}

/// Waits (boundedly) until `condition` holds, checking every few
/// milliseconds.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    within(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// How many connections the server holds subscribed to [`PREDICTIONS`].
fn prediction_subscribers(broker: &Broker) -> usize {
    broker.numsub([PREDICTIONS])[0].1
}

/// Every connection hears its own subscriptions, as exact JSON: a plain
/// client gets `message` frames for `ai:predictions:ready` only, and a
/// `?patterns=true` client also gets `pmessage` frames (with the pattern)
/// for every `ai:*` channel, with `seq` counting per connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_connection_gets_its_subscriptions_as_json() {
    let server = Server::start().await;
    let mut alice = connect(server.addr, "/ws/alice").await;
    let mut bob = connect(server.addr, "/ws/bob?patterns=true").await;
    // The server subscribes before answering the handshake, so no waiting.
    assert_eq!(prediction_subscribers(&server.broker), 2);
    assert_eq!(server.broker.numpat(), 1);

    let prediction = r#"{"model":"sentiment-v3","conversation":"c-17","score":0.82}"#;
    let broker = &server.broker;
    assert_eq!(broker.publish(PREDICTIONS, prediction), 3);
    assert_eq!(broker.publish("ai:models:updated", "sentiment-v4"), 1);
    assert_eq!(broker.publish("conversations:new", "hello"), 0);
    assert_eq!(broker.publish(PREDICTIONS, "second"), 3);

    // Alice's next frame after the first prediction is the second one: the
    // model update never reached her.
    assert_eq!(
        next_json(&mut alice).await,
        json!({"type": "message", "channel": PREDICTIONS, "data": prediction, "seq": 0}),
    );
    assert_eq!(
        next_json(&mut alice).await,
        json!({"type": "message", "channel": PREDICTIONS, "data": "second", "seq": 1}),
    );

    // Bob hears each prediction twice, as Redis would send it: by channel,
    // then by pattern.
    let expected_for_bob = [
        json!({"type": "message", "channel": PREDICTIONS, "data": prediction, "seq": 0}),
        json!({"type": "pmessage", "pattern": AI_PATTERN, "channel": PREDICTIONS,
               "data": prediction, "seq": 1}),
        json!({"type": "pmessage", "pattern": AI_PATTERN, "channel": "ai:models:updated",
               "data": "sentiment-v4", "seq": 2}),
        json!({"type": "message", "channel": PREDICTIONS, "data": "second", "seq": 3}),
        json!({"type": "pmessage", "pattern": AI_PATTERN, "channel": PREDICTIONS,
               "data": "second", "seq": 4}),
    ];
    for expected in expected_for_bob {
        assert_eq!(next_json(&mut bob).await, expected);
    }

    close(alice).await;
    close(bob).await;
    server.stop().await;
}

/// A socket closed by its client, with a close handshake or by simply
/// vanishing, loses its subscriptions promptly even though nothing is
/// being published: the forwarder watches the socket, not only the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_socket_is_unsubscribed_promptly_while_idle() {
    let server = Server::start().await;
    let broker = server.broker.clone();
    let mut polite = connect(server.addr, "/ws/polite").await;
    let abrupt = connect(server.addr, "/ws/abrupt?patterns=true").await;
    assert_eq!(prediction_subscribers(&broker), 2);
    assert_eq!(broker.numpat(), 1);

    // A close handshake: send Close, then read until the server's reply
    // ends the stream.
    within("the close frame to be sent", polite.close(None))
        .await
        .expect("close");
    while let Some(frame) = within("the close handshake", polite.next()).await {
        let frame = frame.expect("a clean close");
        assert!(frame.is_close() || frame.is_ping(), "unexpected {frame:?}");
    }
    eventually("the polite client's subscriber to go", || {
        prediction_subscribers(&broker) == 1
    })
    .await;
    assert_eq!(broker.numpat(), 1, "the other connection keeps its pattern");

    // No close frame at all: the TCP connection just ends.
    drop(abrupt);
    eventually("the abrupt client's subscriber to go", || {
        prediction_subscribers(&broker) == 0 && broker.numpat() == 0
    })
    .await;

    server.stop().await;
}

/// A client that stops reading slows no one: while it reads nothing, a
/// reading client receives all of 10,000 predictions, in order, and every
/// publish returns at once. When the stalled client reads at last, it gets
/// the newest messages, in order, with `seq` gaps exactly where its queue
/// dropped the oldest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_drops_its_oldest_and_slows_no_one() {
    /// Predictions published in all.
    const PREDICTIONS_SENT: u64 = 10_000;
    /// Published between two reads of the reading client: at most half its
    /// queue, so the reading client can never lose a message however the
    /// threads are scheduled.
    const BATCH: u64 = QUEUE_CAPACITY as u64 / 2;
    /// Size of the filler published after each prediction on a channel only
    /// the stalled client hears (through `ai:*`). The stalled client's
    /// receive buffer is pinned to 64 KiB (the kernel doubles it) and the
    /// server's send buffer grows to `net.ipv4.tcp_wmem`'s maximum, 4 MiB
    /// by default: some 1,000 fillers in flight at most, out of 40 MiB
    /// published. So drops are certain, with a wide margin; and the reading
    /// client's frames stay small, which keeps this test quick.
    const FILLER: usize = 4096;

    let server = Server::start().await;
    let broker = server.broker.clone();
    let mut reader = connect(server.addr, "/ws/reader").await;
    let mut stalled =
        connect_with_recv_buffer(server.addr, "/ws/stalled?patterns=true", Some(64 * 1024)).await;
    assert_eq!(prediction_subscribers(&broker), 2);

    let prediction = |i: u64| format!(r#"{{"conversation":"c-{i}","score":0.5}}"#);
    let padding = "x".repeat(FILLER - 6);
    let filler = |i: u64| format!("{i:05}:{padding}");
    // The stalled client's stream: per prediction i, three messages (by
    // channel, by pattern, then the filler), so message `seq` is this.
    let stalled_frame = |seq: u64| {
        let i = seq / 3;
        match seq % 3 {
            0 => json!({"type": "message", "channel": PREDICTIONS,
                        "data": prediction(i), "seq": seq}),
            1 => json!({"type": "pmessage", "pattern": AI_PATTERN, "channel": PREDICTIONS,
                        "data": prediction(i), "seq": seq}),
            _ => json!({"type": "pmessage", "pattern": AI_PATTERN, "channel": "ai:filler",
                        "data": filler(i), "seq": seq}),
        }
    };

    for start in (0..PREDICTIONS_SENT).step_by(BATCH as usize) {
        let end = (start + BATCH).min(PREDICTIONS_SENT);
        for i in start..end {
            // Never blocks, whoever is stalled. Reader 1, stalled 2.
            assert_eq!(broker.publish(PREDICTIONS, prediction(i)), 3);
            assert_eq!(broker.publish("ai:filler", filler(i)), 1);
        }
        for i in start..end {
            let expected = json!({"type": "message", "channel": PREDICTIONS,
                                  "data": prediction(i), "seq": i});
            assert_eq!(next_json(&mut reader).await, expected);
        }
    }

    // Now the stalled client reads everything it still has coming: what
    // sat in socket buffers, then what its queue kept (the newest).
    let addressed = 3 * PREDICTIONS_SENT;
    let (mut received, mut dropped, mut next_seq) = (0u64, 0u64, 0u64);
    loop {
        let got = next_json(&mut stalled).await;
        let seq = got["seq"].as_u64().expect("seq is a number");
        assert!(seq >= next_seq, "seq went back from {next_seq} to {seq}");
        assert_eq!(got, stalled_frame(seq), "stalled client, message {seq}");
        dropped += seq - next_seq;
        received += 1;
        next_seq = seq + 1;
        if seq == addressed - 1 {
            break;
        }
    }
    assert_eq!(received + dropped, addressed);
    assert!(dropped > 0, "a client that never read lost nothing");
    // What it got is bounded by buffers plus its queue, not by how much was
    // published (see FILLER for the bound).
    assert!(
        received < addressed / 3,
        "the stalled client got {received} of {addressed}"
    );

    close(reader).await;
    close(stalled).await;
    server.stop().await;
}

/// Shutting the server down sends every open socket a "going away" close
/// frame, unsubscribes every connection, ends the serving task and stops
/// accepting connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_every_connection_and_the_server() {
    let server = Server::start().await;
    let broker = server.broker.clone();
    let addr = server.addr;
    let mut client = connect(server.addr, "/ws/carol?patterns=1").await;
    assert_eq!(broker.numpat(), 1);

    server.stop().await;

    match within("a close frame", client.next()).await {
        Some(Ok(Frame::Close(Some(close)))) => assert_eq!(close.code, CloseCode::Away),
        other => panic!("expected a going-away close frame, got {other:?}"),
    }
    eventually("the connection's subscriber to go", || {
        prediction_subscribers(&broker) == 0 && broker.numpat() == 0
    })
    .await;
    let refused = within("a refused connection", TcpStream::connect(addr)).await;
    assert!(refused.is_err(), "the listener is closed");
}

/// The example's demo publisher publishes JSON predictions, with a model
/// update every fifth tick, and stops once the broker is closed.
#[tokio::test]
async fn demo_publisher_publishes_predictions_until_closed() {
    let broker = Broker::new();
    let mut sub = broker.subscriber();
    sub.subscribe([PREDICTIONS]);
    sub.psubscribe(["ai:models:*"]);
    let publisher = tokio::spawn(websocket_example::publish_predictions(
        broker.clone(),
        Duration::from_millis(1),
    ));

    for seq in 0..5 {
        let message = within("a prediction", sub.recv_async())
            .await
            .expect("open");
        assert_eq!(
            (message.seq(), message.channel()),
            (seq, &PREDICTIONS.into())
        );
        let prediction: Value = serde_json::from_slice(message.payload()).expect("JSON");
        assert_eq!(prediction["model"], "sentiment-v3");
        assert!(
            prediction["conversation"]
                .as_str()
                .expect("a string")
                .starts_with("c-")
        );
        let score = prediction["score"].as_f64().expect("a number");
        assert!((0.0..1.0).contains(&score), "score {score}");
    }
    let update = within("a model update", sub.recv_async())
        .await
        .expect("open");
    assert_eq!(update.kind(), MessageKind::PMessage);
    assert_eq!(update.channel(), "ai:models:updated");
    let update: Value = serde_json::from_slice(update.payload()).expect("JSON");
    assert_eq!(update, json!({"model": "sentiment-v3", "version": 1}));

    broker.close();
    within("the publisher to stop", publisher)
        .await
        .expect("publisher panicked");
}
