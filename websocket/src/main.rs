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
//!                                                  # and --period-ms 200 (the demo publisher's period)
//! websocat ws://127.0.0.1:3000/ws/alice           # predictions only
//! websocat 'ws://127.0.0.1:3000/ws/bob?patterns=true'   # and every ai:* event
//! ```
//!
//! Ctrl-C stops it: the server closes the broker, which ends every
//! subscriber, so each forwarder sends its browser a "going away" close
//! frame and returns. (axum's graceful shutdown does not wait for upgraded
//! WebSocket connections; closing the broker is what ends them.)
//!
//! # Several servers behind a load balancer
//!
//! With `--redis URL`, the broker is joined to a Redis (or Valkey) server
//! by a [`tannoy_redis::Bridge`], and the demo publisher publishes through
//! the bridge. Run two servers on one Redis and a browser on either hears
//! every prediction published by either:
//!
//! ```text
//! redis-server --port 6379 &
//! cargo run -p tannoy-websocket-example -- --port 3000 --redis redis://127.0.0.1:6379 &
//! cargo run -p tannoy-websocket-example -- --port 3001 --redis redis://127.0.0.1:6379 &
//! websocat ws://127.0.0.1:3001/ws/alice
//! ```
//!
//! Each process holds one upstream subscription to `ai:predictions:ready`
//! (and one to `ai:*` while a `?patterns=true` browser is connected),
//! however many browsers it serves, and fans out locally. What changes for
//! a browser:
//!
//! - The server answers the handshake only once Redis has confirmed the
//!   upstream subscription, so an open connection still misses nothing
//!   published after; if Redis does not confirm within
//!   [`SYNC_TIMEOUT`], the handshake is refused with 503.
//! - Every connection also holds [`GAP_CHANNEL`]: when the connection to
//!   Redis is lost, the browser gets one frame on `tannoy-redis:gap`
//!   (`data` is the outage number) exactly where messages may be missing,
//!   and can reload what it shows.
//! - A bridged prediction also names its `publisher` (the publishing
//!   process's id) and its `tick` (counting up by one per publisher), so
//!   a browser sees which server produced it.
//!
//! `websocket/tests/websocket.rs` runs this same server (it includes this
//! file as a module) against real WebSocket clients;
//! `websocket/tests/scaled_out.rs` runs two servers on one `redis-server`,
//! as two in-process servers and as two processes.

use std::collections::HashMap;
use std::error::Error;
use std::future::Future;
use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tannoy::{Broker, Message, Subscriber};
use tannoy_redis::{Bridge, GAP_CHANNEL};
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

/// How long a bridged server waits for Redis to confirm a new connection's
/// upstream subscriptions before refusing the handshake with 503. A
/// confirmation takes one round trip (well under a millisecond on a LAN);
/// this only bounds the wait while Redis is away, when the bridge would
/// otherwise wait for its next connection.
pub(crate) const SYNC_TIMEOUT: Duration = Duration::from_secs(5);

/// What the server forwards from and the demo publisher publishes to: a
/// broker alone, or a broker joined to Redis by a bridge.
#[derive(Clone, Debug)]
pub(crate) struct Hub {
    /// The local broker every connection's subscriber belongs to.
    pub(crate) broker: Broker,
    /// The bridge joining `broker` to Redis, when there is one.
    pub(crate) bridge: Option<Arc<Bridge>>,
}

impl Hub {
    /// A hub whose broker is joined to Redis by `bridge` (which must have
    /// been built on that broker).
    pub(crate) fn bridged(bridge: Bridge) -> Self {
        Self {
            broker: bridge.broker().clone(),
            bridge: Some(Arc::new(bridge)),
        }
    }
}

impl From<Broker> for Hub {
    fn from(broker: Broker) -> Self {
        Self {
            broker,
            bridge: None,
        }
    }
}

/// The HTTP application: one route, `/ws/{client_id}`, that upgrades to a
/// WebSocket forwarding the hub's predictions.
///
/// It starts no publisher: whoever owns the hub publishes (in this example
/// [`publish_predictions`], in the tests the test itself).
pub(crate) fn app(hub: Hub) -> Router {
    Router::new()
        .route("/ws/{client_id}", get(connect))
        .with_state(hub)
}

/// Serves [`app`] on `listener` until `shutdown` completes, then closes
/// the hub's broker so that every open WebSocket is ended too (which also
/// stops its bridge, if any).
///
/// # Errors
///
/// As [`axum::serve()`]: only if accepting connections fails fatally.
pub(crate) async fn serve(
    listener: TcpListener,
    hub: impl Into<Hub>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let hub = hub.into();
    let closer = hub.broker.clone();
    axum::serve(listener, app(hub))
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
    State(hub): State<Hub>,
) -> Response {
    let patterns = options
        .get("patterns")
        .is_some_and(|value| value == "true" || value == "1");

    // Subscribe now, before the 101 response goes out: a client that has
    // seen its connection open will receive everything published after.
    let subscriber = hub
        .broker
        .subscriber_builder()
        .queue_capacity(QUEUE_CAPACITY)
        .build();
    subscriber.subscribe([PREDICTIONS]);
    if patterns {
        subscriber.psubscribe([AI_PATTERN]);
    }
    if let Some(bridge) = &hub.bridge {
        // Outages of the Redis connection reach the browser as frames.
        subscriber.subscribe([GAP_CHANNEL]);
        // With a bridge, "subscribed" means "confirmed by Redis": only
        // then do other servers' publishes reach this subscriber.
        if !matches!(
            tokio::time::timeout(SYNC_TIMEOUT, bridge.sync()).await,
            Ok(Ok(()))
        ) {
            eprintln!("{client_id}: refused, Redis did not confirm the subscription");
            return (StatusCode::SERVICE_UNAVAILABLE, "Redis is unreachable").into_response();
        }
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
/// `ai:models:updated`, until the hub's broker is closed.
///
/// With a bridge, it publishes through Redis, so every bridged server's
/// browsers receive it, and each prediction also carries `publisher` (this
/// process's id) and `tick` (0, 1, 2, ...). A publish that fails while
/// Redis is away is logged and skipped; the next tick tries again.
pub(crate) async fn publish_predictions(hub: impl Into<Hub>, period: Duration) {
    let hub = hub.into();
    let mut ticks = tokio::time::interval(period);
    for n in 0u64.. {
        ticks.tick().await;
        if hub.broker.is_closed() {
            break;
        }
        let mut prediction = json!({
            "model": "sentiment-v3",
            "conversation": format!("c-{}", 17 + n % 5),
            // A deterministic wobble between 0.00 and 0.99.
            "score": (n * 37 % 100) as f64 / 100.0,
        });
        if hub.bridge.is_some() {
            prediction["publisher"] = std::process::id().into();
            prediction["tick"] = n.into();
        }
        hub.publish(PREDICTIONS, prediction.to_string()).await;
        if n % 5 == 4 {
            let update = json!({"model": "sentiment-v3", "version": n / 5 + 1});
            hub.publish("ai:models:updated", update.to_string()).await;
        }
    }
}

impl Hub {
    /// Publishes to the broker, or through the bridge to Redis.
    async fn publish(&self, channel: &str, payload: String) {
        match &self.bridge {
            None => {
                self.broker.publish(channel, payload);
            }
            Some(bridge) => {
                if let Err(e) = bridge.publish(channel, payload).await {
                    eprintln!("publishing on {channel} failed: {e}");
                }
            }
        }
    }
}

/// The command line: `[--port N] [--redis URL] [--period-ms N]`.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    /// Where to listen (0 picks a free port).
    port: u16,
    /// The Redis server to bridge to, if any.
    redis: Option<String>,
    /// The demo publisher's period.
    period: Duration,
}

/// The usage line.
const USAGE: &str = "usage: websocket [--port N] [--redis URL] [--period-ms N]";

/// Reads the options (each as `--name value` or `--name=value`).
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        port: DEFAULT_PORT,
        redis: None,
        period: Duration::from_secs(1),
    };
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        if !["--port", "--redis", "--period-ms"].contains(&name.as_str()) {
            return Err(format!("{USAGE}  (unexpected {arg:?})"));
        }
        let Some(value) = inline.or_else(|| args.next()) else {
            return Err(format!("{USAGE}  ({name} wants a value)"));
        };
        match name.as_str() {
            "--port" => {
                options.port = value
                    .parse()
                    .map_err(|_| format!("--port wants a number from 0 to 65535, not {value:?}"))?;
            }
            "--period-ms" => {
                let ms: u64 =
                    value.parse().ok().filter(|&ms| ms > 0).ok_or_else(|| {
                        format!("--period-ms wants a positive number, not {value:?}")
                    })?;
                options.period = Duration::from_millis(ms);
            }
            _ => options.redis = Some(value),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let options = parse_args(std::env::args().skip(1))?;
    let broker = Broker::new();
    let hub = match &options.redis {
        None => Hub::from(broker),
        Some(url) => {
            // Fails here, before listening, if Redis is not there at all;
            // later outages are retried by the bridge.
            let bridge = Bridge::builder()
                .url(url.as_str())
                .broker(broker)
                .start()
                .await?;
            Hub::bridged(bridge)
        }
    };

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, options.port)).await?;
    let addr = listener.local_addr()?;
    println!("listening on ws://{addr}/ws/{{client_id}}");
    if let Some(url) = &options.redis {
        println!("bridged to {url}: browsers here hear every server on it");
    }
    println!("try:  websocat ws://{addr}/ws/alice");
    println!("      websocat 'ws://{addr}/ws/bob?patterns=true'");

    let publisher = tokio::spawn(publish_predictions(hub.clone(), options.period));
    let ctrl_c = async {
        // If Ctrl-C cannot be listened for, run until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        println!("shutting down");
    };
    serve(listener, hub, ctrl_c).await?;
    // The publisher would notice the closed broker at its next tick; no
    // need to wait for that. The bridge stops on its own once the broker
    // is closed.
    publisher.abort();
    Ok(())
}
