//! Pushing pub/sub events to browsers over WebSockets, with axum.
//!
//! The AI side of the customer-service system publishes a prediction on
//! `ai:predictions:ready` whenever a model has scored a conversation. Agents'
//! browsers want those predictions live. This server bridges the two:
//!
//! 1. A browser opens `ws://HOST/ws/{client_id}`. Before the upgrade is
//!    answered, the handler creates a tannoy [`Subscriber`] for this one
//!    connection and subscribes it to `ai:predictions:ready` (plus the
//!    pattern `ai:*` when the URL says `?patterns=true` or `?patterns=1`).
//!    So once the browser sees the connection open, it misses nothing
//!    published after.
//! 2. A forwarder task per connection waits on two things at once: the next
//!    message from its subscriber, which it sends as one JSON text frame,
//!    and the socket's incoming side, so that a browser that goes away is
//!    noticed at once even when nothing is being published.
//! 3. When the socket closes, the forwarder returns and drops its
//!    `Subscriber`, which unsubscribes it from everything: no bookkeeping.
//! 4. A background task plays the model: it publishes a prediction every
//!    second, and now and then a model-update event on `ai:models:updated`
//!    (which only `?patterns=true` clients see).
//!
//! Each frame is a JSON object:
//!
//! ```text
//! {"channel":"ai:predictions:ready","data":"{\"conversation\":\"c-17\",\"model\":\"sentiment-v3\",\"score\":0.82}","seq":41,"type":"message"}
//! {"channel":"ai:models:updated","data":"{\"model\":\"sentiment-v3\",\"version\":4}","pattern":"ai:*","seq":42,"type":"pmessage"}
//! ```
//!
//! `data` is the payload exactly as published (here itself JSON, so a
//! browser calls `JSON.parse` on it); `seq` numbers every message addressed
//! to this connection. As in Redis, a `?patterns=true` client receives each
//! prediction twice: once as a `message` (its channel subscription) and once
//! as a `pmessage` (its `ai:*` pattern).
//!
//! # Why one subscriber per connection
//!
//! A subscriber is tannoy's equivalent of one Redis connection: it owns its
//! subscriptions and one bounded queue. Giving every socket its own means
//! each browser chooses what it hears, closing a socket unsubscribes exactly
//! that browser, and, above all, a slow browser only fills its own queue.
//! Publishers never wait for anyone.
//!
//! # Slow browsers
//!
//! Each connection's queue holds [`QUEUE_CAPACITY`] messages. When a browser
//! stops reading (a frozen tab, a phone on a bad network), the socket's send
//! buffers fill, its forwarder waits, and its queue fills; from then on
//! tannoy drops that connection's *oldest* queued messages, so memory stays
//! bounded and the browser gets the freshest predictions when it wakes up.
//! The loss is visible twice: a jump in `seq` tells the browser how many
//! messages it missed, and the forwarder logs it.
//!
//! # Running it
//!
//! ```text
//! cargo run -p tannoy-websocket-example            # or: -- --port 8080 (0 picks a free port)
//! websocat ws://127.0.0.1:3000/ws/alice           # predictions only
//! websocat 'ws://127.0.0.1:3000/ws/bob?patterns=true'   # and every ai:* event
//! ```
//!
//! Ctrl-C stops it: the server closes the broker, which ends every
//! subscriber, so each forwarder sends its browser a "going away" close
//! frame and returns. (axum's graceful shutdown does not wait for upgraded
//! WebSocket connections; closing the broker is what ends them.)
//!
//! `websocket/tests/websocket.rs` runs this same server (it includes this
//! file as a module) against real WebSocket clients.

use std::collections::HashMap;
use std::error::Error;
use std::future::Future;
use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use tannoy::{Broker, Message, Subscriber};
use tokio::net::TcpListener;

/// The channel every connection subscribes to.
pub(crate) const PREDICTIONS: &str = "ai:predictions:ready";

/// The pattern a connection also subscribes to with `?patterns=true`.
pub(crate) const AI_PATTERN: &str = "ai:*";

/// Messages a connection's subscriber queues before dropping its oldest.
///
/// A browser that keeps up never has more than a handful queued; 256 rides
/// out a few seconds of a busy tab at this example's rates while capping a
/// dead tab's cost at 256 payloads.
pub(crate) const QUEUE_CAPACITY: usize = 256;

/// The port used when `--port` is not given.
const DEFAULT_PORT: u16 = 3000;

/// The HTTP application: one route, `/ws/{client_id}`, that upgrades to a
/// WebSocket forwarding `broker`'s predictions.
///
/// It starts no publisher: whoever owns `broker` publishes (in this example
/// [`publish_predictions`], in the tests the test itself).
pub(crate) fn app(broker: Broker) -> Router {
    Router::new()
        .route("/ws/{client_id}", get(connect))
        .with_state(broker)
}

/// Serves [`app`] on `listener` until `shutdown` completes, then closes
/// `broker` so that every open WebSocket is ended too.
///
/// # Errors
///
/// As [`axum::serve`]: only if accepting connections fails fatally.
pub(crate) async fn serve(
    listener: TcpListener,
    broker: Broker,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let closer = broker.clone();
    axum::serve(listener, app(broker))
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Upgraded connections are not tracked by axum's graceful
            // shutdown; ending every subscriber ends their forwarders.
            closer.close();
        })
        .await
}

/// Handles `GET /ws/{client_id}[?patterns=true]`: subscribes a fresh
/// subscriber, then hands it to the upgraded socket's forwarder.
async fn connect(
    upgrade: WebSocketUpgrade,
    Path(client_id): Path<String>,
    Query(options): Query<HashMap<String, String>>,
    State(broker): State<Broker>,
) -> Response {
    let patterns = options
        .get("patterns")
        .is_some_and(|value| value == "true" || value == "1");

    // Subscribe now, before the 101 response goes out: a client that has
    // seen its connection open will receive everything published after.
    let subscriber = broker
        .subscriber_builder()
        .queue_capacity(QUEUE_CAPACITY)
        .build();
    subscriber.subscribe([PREDICTIONS]);
    if patterns {
        subscriber.psubscribe([AI_PATTERN]);
    }
    eprintln!("{client_id}: connected (patterns: {patterns})");

    // If the upgrade fails, the closure, and with it the subscriber, is
    // dropped: that unsubscribes it.
    upgrade.on_upgrade(move |socket| forward(socket, subscriber, client_id))
}

/// Sends `subscriber`'s messages to `socket` as JSON until either side ends.
///
/// Returns when the browser closes the socket or disappears (noticed even
/// while nothing is published, because the socket's incoming side is
/// awaited too), or when the broker is closed. Dropping `subscriber` on the
/// way out unsubscribes it.
async fn forward(mut socket: WebSocket, mut subscriber: Subscriber, client_id: String) {
    // The seq the next message should have if nothing was dropped.
    let mut expected_seq = 0;
    loop {
        tokio::select! {
            // Both futures are cancellation-safe: whichever loses the race
            // is dropped without losing a message or a frame.
            received = subscriber.recv_async() => {
                let Ok(message) = received else {
                    // The broker was closed: the server is shutting down.
                    let frame = CloseFrame {
                        code: close_code::AWAY,
                        reason: "server shutting down".into(),
                    };
                    // The browser may be gone already; nothing to do then.
                    let _ = socket.send(Frame::Close(Some(frame))).await;
                    break;
                };
                if message.seq() > expected_seq {
                    eprintln!(
                        "{client_id}: too slow, {} oldest message(s) dropped",
                        message.seq() - expected_seq,
                    );
                }
                expected_seq = message.seq() + 1;
                // While this waits for a stalled browser, the subscriber's
                // queue absorbs new messages, then drops its oldest. (A
                // peer that vanishes without a trace is noticed here only
                // when TCP gives up; a production server would add pings
                // or a send timeout.)
                let frame = Frame::Text(to_json(&message).to_string().into());
                if socket.send(frame).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                // Closed (after the close handshake, which the socket
                // answers by itself) or broken: the browser is gone.
                None | Some(Err(_)) => break,
                // Pings are answered by the socket itself; a Close frame
                // is answered too, and the next receive reports the end.
                // This example ignores what browsers send.
                Some(Ok(_)) => {}
            },
        }
    }
    eprintln!("{client_id}: disconnected");
}

/// The JSON frame for one message: `type`, `channel`, `data`, `seq`, and
/// `pattern` for a `pmessage`. Names and payloads are shown as UTF-8 (any
/// invalid bytes replaced), since JSON has no byte strings.
pub(crate) fn to_json(message: &Message) -> Value {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let mut frame = json!({
        "type": message.kind().as_str(),
        "channel": text(message.channel()),
        "data": text(message.payload()),
        "seq": message.seq(),
    });
    if let Some(pattern) = message.pattern() {
        frame["pattern"] = text(pattern).into();
    }
    frame
}

/// Plays the AI side: publishes a made-up prediction on [`PREDICTIONS`]
/// every `period`, and every fifth time a model-update event on
/// `ai:models:updated`, until `broker` is closed.
pub(crate) async fn publish_predictions(broker: Broker, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    for n in 0u64.. {
        ticks.tick().await;
        if broker.is_closed() {
            break;
        }
        let prediction = json!({
            "model": "sentiment-v3",
            "conversation": format!("c-{}", 17 + n % 5),
            // A deterministic wobble between 0.00 and 0.99.
            "score": (n * 37 % 100) as f64 / 100.0,
        });
        broker.publish(PREDICTIONS, prediction.to_string());
        if n % 5 == 4 {
            let update = json!({"model": "sentiment-v3", "version": n / 5 + 1});
            broker.publish("ai:models:updated", update.to_string());
        }
    }
}

/// Reads `--port N` (or `--port=N`) from the command line.
fn parse_port(mut args: impl Iterator<Item = String>) -> Result<u16, String> {
    let mut port = DEFAULT_PORT;
    while let Some(arg) = args.next() {
        let value = match arg.strip_prefix("--port") {
            Some("") => args.next(),
            Some(rest) => rest.strip_prefix('=').map(str::to_owned),
            None => None,
        };
        let Some(value) = value else {
            return Err(format!("usage: websocket [--port N]  (unexpected {arg:?})"));
        };
        port = value
            .parse()
            .map_err(|_| format!("--port wants a number from 0 to 65535, not {value:?}"))?;
    }
    Ok(port)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let port = parse_port(std::env::args().skip(1))?;
    let broker = Broker::new();

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    let addr = listener.local_addr()?;
    println!("listening on ws://{addr}/ws/{{client_id}}");
    println!("try:  websocat ws://{addr}/ws/alice");
    println!("      websocat 'ws://{addr}/ws/bob?patterns=true'");

    let publisher = tokio::spawn(publish_predictions(broker.clone(), Duration::from_secs(1)));
    let ctrl_c = async {
        // If Ctrl-C cannot be listened for, run until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        println!("shutting down");
    };
    serve(listener, broker, ctrl_c).await?;
    // The publisher would notice the closed broker at its next tick; no
    // need to wait for that.
    publisher.abort();
    Ok(())
}
