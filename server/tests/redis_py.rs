//! The unmodified redis-py client against tannoy-server, sync and asyncio,
//! RESP2 and RESP3, in the shapes Python services use it: publisher
//! functions calling `redis_client.publish(...)`, a worker thread looping
//! over `pubsub.listen()`, `psubscribe('ai:*')`, health-check pings while
//! subscribed, and a transactional pipeline.
//!
//! Over plain TCP, the services' own FastAPI shape: a WebSocket forwarder
//! on `redis.asyncio.from_url("redis://...")`, reading with `listen()` and
//! with `get_message()`, served by uvicorn and read by a real WebSocket
//! client, beside the sync publisher and its `listen()` worker.
//!
//! Over TLS, the Azure shape: `redis.Redis(host, port, password=...,
//! ssl=True, ssl_ca_certs=..., decode_responses=True)` trusting the test
//! server's generated CA, driving the same publisher and `listen()`
//! worker, and a FastAPI WebSocket forwarder on `redis.asyncio` served by
//! uvicorn, read by a real WebSocket client (the `websockets` package), in
//! RESP2 and RESP3. An untrusted CA, an expired certificate, plaintext to
//! the TLS port and a wrong password each fail for that client while the
//! worker keeps receiving.
//!
//! The Python interpreter is `TANNOY_PYTHON` if set (`.ci/run` points it at
//! a venv with redis-py, FastAPI, uvicorn and websockets), else `python3`.
//! Without one that can import what a test needs, the test prints why and
//! skips, unless `TANNOY_REQUIRE_REDIS` is set.

#[path = "support/redis.rs"]
mod redis;
#[path = "support/tls.rs"]
mod tls;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tannoy_server::{Server, TestServer, TlsConfig};

/// The Python program: exits 0 when every check passes, prints what
/// failed otherwise.
const SCRIPT: &str = r#"
import asyncio, sys, threading, time
import redis

port = int(sys.argv[1])

def publish_prediction(redis_client, model, score):
    return redis_client.publish("ai:predictions:ready", f"{model}:{score}")

def publish_conversation(redis_client, text):
    return redis_client.publish("conversations:new", text)

for protocol in (2, 3):
    redis_client = redis.Redis(host="127.0.0.1", port=port, protocol=protocol,
                               decode_responses=True, health_check_interval=1)
    pubsub = redis_client.pubsub()
    pubsub.subscribe("conversations:new")
    pubsub.psubscribe("ai:*")
    received = []

    def worker():
        for message in pubsub.listen():
            if message["type"] in ("message", "pmessage"):
                received.append((message["type"], message["channel"], message["data"]))
                if len(received) == 3:
                    return

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while redis_client.pubsub_numsub("conversations:new")[0][1] != 1:
        assert time.time() < deadline, "never subscribed"
        time.sleep(0.01)
    assert publish_conversation(redis_client, "Where is my order?") == 1
    assert publish_prediction(redis_client, "gpt-5", 0.9) == 1
    assert redis_client.publish("ai:models:updated", "v2") == 1
    thread.join(10)
    assert received == [
        ("message", "conversations:new", "Where is my order?"),
        ("pmessage", "ai:predictions:ready", "gpt-5:0.9"),
        ("pmessage", "ai:models:updated", "v2"),
    ], received
    time.sleep(1.1)
    pubsub.check_health()
    pubsub.ping()
    pubsub.unsubscribe()
    pubsub.punsubscribe()
    pubsub.close()
    pipe = redis_client.pipeline()
    pipe.publish("nobody", "1")
    pipe.publish("nobody", "2")
    assert pipe.execute() == [0, 0]
    assert redis_client.ping()
    redis_client.close()

async def asyncio_checks():
    import redis.asyncio as aioredis
    for protocol in (2, 3):
        client = aioredis.Redis(host="127.0.0.1", port=port, protocol=protocol,
                                decode_responses=True)
        pubsub = client.pubsub()
        await pubsub.psubscribe("ai:*")
        assert await client.publish("ai:alerts", "fire") == 1
        deadline = time.time() + 10
        while True:
            assert time.time() < deadline, "no message"
            # None for the confirmation it consumed, or for a timeout.
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None and message["type"] == "pmessage":
                assert message["data"] == "fire"
                break
        await pubsub.aclose()
        await client.aclose()

asyncio.run(asyncio_checks())
print("ok")
"#;

/// What the FastAPI programs share, run before each of them: the
/// publisher functions, the `listen()` worker, the WebSocket forwarder app
/// and the checks that read it through a real WebSocket client. Every wait
/// gives up after `LIMIT` seconds, and every server listens on 127.0.0.1.
const FORWARDER_PRELUDE: &str = r#"
import asyncio, contextlib, queue, socket, sys, threading, time
import redis
import redis.asyncio as aioredis
import uvicorn
import websockets
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

LIMIT = 10
# How long one WebSocket may be forwarded to before its forwarder gives up.
FORWARD_LIMIT = 30

def publish_prediction(redis_client, model, score):
    return redis_client.publish("ai:predictions:ready", f"{model}:{score}")

def publish_conversation(redis_client, text):
    return redis_client.publish("conversations:new", text)

def make_app(connect):
    """The forwarder: each WebSocket gets its own redis.asyncio client from
    connect(), subscribed to ai:predictions:ready, and every message on it;
    /ws/predictions reads with `async for ... in pubsub.listen()`,
    /ws/predictions/polled with get_message()."""
    app = FastAPI()

    async def listened(websocket, pubsub):
        async for message in pubsub.listen():
            if message["type"] == "message":
                await websocket.send_text(message["data"])

    async def polled(websocket, pubsub):
        deadline = time.monotonic() + FORWARD_LIMIT
        while time.monotonic() < deadline:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None and message["type"] == "message":
                await websocket.send_text(message["data"])

    async def forward(websocket, read):
        await websocket.accept()
        redis_client = connect()
        pubsub = redis_client.pubsub()
        await pubsub.subscribe("ai:predictions:ready")
        try:
            await asyncio.wait_for(read(websocket, pubsub), FORWARD_LIMIT)
        except WebSocketDisconnect:
            pass
        finally:
            await pubsub.aclose()
            await redis_client.aclose()

    @app.websocket("/ws/predictions")
    async def predictions(websocket: WebSocket):
        await forward(websocket, listened)

    @app.websocket("/ws/predictions/polled")
    async def polled_predictions(websocket: WebSocket):
        await forward(websocket, polled)

    return app

def wait_until(what, condition):
    deadline = time.time() + LIMIT
    while not condition():
        assert time.time() < deadline, f"never {what}"
        time.sleep(0.01)

def wait_for_numsub(redis_client, channel, n):
    wait_until(f"{n} subscribers to {channel}",
               lambda: redis_client.pubsub_numsub(channel)[0][1] == n)

def start_worker(pubsub):
    """The worker thread looping over pubsub.listen(): puts each message it
    receives on the queue it returns, and ends after "stop"."""
    received = queue.Queue()

    def worker():
        for message in pubsub.listen():
            if message["type"] in ("message", "pmessage"):
                received.put((message["type"], message["channel"], message["data"]))
                if message["data"] == "stop":
                    return

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    return thread, received

def subscribed_worker(redis_client):
    """A pubsub on redis_client subscribed to conversations:new and ai:*,
    its listen() worker shown to receive a conversation: returns the pubsub,
    the worker's thread and the queue it fills."""
    pubsub = redis_client.pubsub()
    pubsub.subscribe("conversations:new")
    pubsub.psubscribe("ai:*")
    thread, received = start_worker(pubsub)
    wait_for_numsub(redis_client, "conversations:new", 1)
    assert publish_conversation(redis_client, "Where is my order?") == 1
    assert received.get(timeout=LIMIT) == ("message", "conversations:new", "Where is my order?")
    return pubsub, thread, received

def stop_worker(redis_client, pubsub, thread):
    """Sends the worker its "stop", waits for it to end, closes its pubsub."""
    assert publish_conversation(redis_client, "stop") == 1
    thread.join(LIMIT)
    assert not thread.is_alive()
    pubsub.close()

PREDICTIONS = [(f"model-{i}", i / 10) for i in range(20)]

async def receive(ws, path, n):
    """The next n texts on the WebSocket ws to path."""
    got = []
    for _ in range(n):
        try:
            got.append(await asyncio.wait_for(ws.recv(), LIMIT))
        except asyncio.TimeoutError:
            raise AssertionError(f"{path}: nothing for {LIMIT}s after {got}") from None
    return got

def forwarded(redis_client, received, app, paths):
    """forwarder_checks, then the worker's ai:* subscription, whose queue is
    received, got every prediction and the last publish too."""
    asyncio.run(forwarder_checks(redis_client, app, paths))
    for model, score in PREDICTIONS:
        assert received.get(timeout=LIMIT) == ("pmessage", "ai:predictions:ready",
                                               f"{model}:{score}")
    assert received.get(timeout=LIMIT) == ("pmessage", "ai:predictions:ready", "after:close")

async def forwarder_checks(redis_client, app, paths):
    """Serves app with uvicorn and opens a WebSocket to each of paths: each
    receives exactly the predictions published, in order, and PUBLISH counts
    each forwarder and the worker's ai:*. When the WebSockets close, each
    forwarder finds out at its next message and unsubscribes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    ws_port = listener.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    deadline = time.time() + LIMIT
    while not server.started:
        assert time.time() < deadline and not serving.done(), "uvicorn never started"
        await asyncio.sleep(0.01)
    receivers = len(paths) + 1
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(
                       websockets.connect(f"ws://127.0.0.1:{ws_port}{path}", open_timeout=LIMIT,
                                          close_timeout=LIMIT))
                   for path in paths]
        await asyncio.to_thread(wait_for_numsub, redis_client, "ai:predictions:ready", len(paths))
        for model, score in PREDICTIONS:
            n = await asyncio.to_thread(publish_prediction, redis_client, model, score)
            assert n == receivers, f"PUBLISH counted {n} receivers, not {receivers}"
        expected = [f"{model}:{score}" for model, score in PREDICTIONS]
        for path, ws in zip(paths, clients):
            got = await receive(ws, path, len(expected))
            assert got == expected, (path, got)
    # The browsers left: each forwarder finds out at its next message, and
    # its finally block unsubscribes.
    n = await asyncio.to_thread(publish_prediction, redis_client, "after", "close")
    assert n == receivers, f"PUBLISH counted {n} receivers, not {receivers}"
    await asyncio.to_thread(wait_for_numsub, redis_client, "ai:predictions:ready", 0)
    server.should_exit = True
    await asyncio.wait_for(serving, LIMIT)
"#;

/// The FastAPI program over plain TCP, as the services connect in
/// development: `redis://` URLs, no password. `argv` is the server's
/// port. Exits 0 when every check passes, prints what failed otherwise.
const PLAIN_SCRIPT: &str = r#"
url = f"redis://127.0.0.1:{int(sys.argv[1])}"

for protocol in (2, 3):
    # The socket timeout bounds the worker's listen() when nothing comes.
    redis_client = redis.Redis.from_url(url, protocol=protocol, decode_responses=True,
                                        socket_timeout=LIMIT)
    pubsub, thread, received = subscribed_worker(redis_client)

    app = make_app(lambda: aioredis.from_url(url, protocol=protocol, decode_responses=True))
    forwarded(redis_client, received, app, ["/ws/predictions", "/ws/predictions/polled"])

    stop_worker(redis_client, pubsub, thread)
    # The worker's connection gone, nothing is left subscribed.
    wait_until("unsubscribed the closed connection",
               lambda: redis_client.pubsub_numsub("conversations:new")[0][1] == 0
                       and redis_client.pubsub_numpat() == 0)
    redis_client.close()
print("ok")
"#;

/// The FastAPI program over TLS: `argv` is the TLS server's port, its
/// password, its CA file, another CA's file, and the port and CA file of
/// a server whose certificate has expired. Exits 0 when every check
/// passes, prints what failed otherwise.
const TLS_SCRIPT: &str = r#"
from redis.backoff import NoBackoff
from redis.retry import Retry

port, password, ca_certs, other_ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
expired_port, expired_ca = int(sys.argv[5]), sys.argv[6]
host = "localhost"

def refused(what, **kwargs):
    """A client made with kwargs fails to PING, within its timeouts."""
    client = redis.Redis(decode_responses=True, socket_timeout=5, socket_connect_timeout=5,
                         retry=Retry(NoBackoff(), 0), **kwargs)
    started = time.time()
    try:
        client.ping()
    except redis.exceptions.RedisError as e:
        assert time.time() - started < 30, f"{what}: took {time.time() - started:.1f}s"
        return str(e)
    finally:
        client.close()
    raise AssertionError(f"{what}: the client got in")

for protocol in (2, 3):
    redis_client = redis.Redis(host=host, port=port, password=password, ssl=True,
                               ssl_ca_certs=ca_certs, decode_responses=True,
                               protocol=protocol)
    pubsub, thread, received = subscribed_worker(redis_client)

    app = make_app(lambda: aioredis.Redis(host=host, port=port, password=password, ssl=True,
                                          ssl_ca_certs=ca_certs, decode_responses=True,
                                          protocol=protocol))
    forwarded(redis_client, received, app, ["/ws/predictions"])

    def still_receives(n):
        assert publish_conversation(redis_client, f"still here {n}") == 1
        assert received.get(timeout=10) == ("message", "conversations:new", f"still here {n}")

    error = refused("another CA", host=host, port=port, password=password, ssl=True,
                    ssl_ca_certs=other_ca, protocol=protocol)
    assert "certificate verify failed" in error, error
    still_receives(1)
    error = refused("an expired certificate", host=host, port=expired_port, ssl=True,
                    ssl_ca_certs=expired_ca, protocol=protocol)
    assert "certificate has expired" in error, error
    still_receives(2)
    refused("plaintext to the TLS port", host=host, port=port, password=password,
            protocol=protocol)
    still_receives(3)
    error = refused("a wrong password", host=host, port=port, password="wrong", ssl=True,
                    ssl_ca_certs=ca_certs, protocol=protocol)
    assert "invalid" in error.lower() or "wrongpass" in error.lower(), error
    still_receives(4)

    stop_worker(redis_client, pubsub, thread)
    redis_client.close()
print("ok")
"#;

/// The interpreter to use, if it can import every module of `modules`
/// (Python names, comma-separated); `None` to skip.
fn python(modules: &str) -> Option<String> {
    let python = std::env::var("TANNOY_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let has_modules = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_modules {
        Some(python)
    } else {
        redis::skip(&format!(
            "{python} cannot import {modules} (install them with pip, or set TANNOY_PYTHON)"
        ))
    }
}

/// Runs `script` with `args` and checks it printed `ok` last.
fn run(python: &str, script: &str, args: &[&str]) {
    let mut child = Command::new(python)
        .args(["-c", script])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the Python checks did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    assert!(
        output.status.success() && output.stdout.ends_with(b"ok\n"),
        "the Python checks failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// redis-py, sync and asyncio, RESP2 and RESP3, works unchanged.
#[test]
fn redis_py_sync_and_asyncio() {
    let Some(python) = python("redis") else {
        return;
    };
    let server = TestServer::start();
    run(&python, SCRIPT, &[&server.local_addr().port().to_string()]);
}

/// Over TLS with a password, as against Azure Cache for Redis: the
/// publisher, the `listen()` worker and the FastAPI WebSocket forwarder
/// with only their connection arguments filled in, RESP2 and RESP3; and
/// the TLS failures, each an error for that client alone.
#[test]
fn redis_py_over_tls_with_a_fastapi_forwarder() {
    let Some(python) = python("redis, fastapi, uvicorn, websockets") else {
        return;
    };
    let server = TestServer::with_tls(Server::builder().requirepass("access-key"));
    let files = tls::TempDir::new("redis-py");
    let other_ca = files.write("other-ca.crt", tls::Ca::new("another CA").pem());
    let ca = tls::Ca::new("the expired server's CA");
    let expired_ca = files.write("expired-ca.crt", ca.pem());
    let identity = ca.expired_server();
    let expired = TestServer::with(
        Server::builder()
            .tls(TlsConfig::from_pem(&identity.cert_pem, &identity.key_pem).expect("identity")),
    );
    run(
        &python,
        &format!("{FORWARDER_PRELUDE}{TLS_SCRIPT}"),
        &[
            &server.local_addr().port().to_string(),
            "access-key",
            &server.ca_path().display().to_string(),
            &other_ca.display().to_string(),
            &expired.local_addr().port().to_string(),
            &expired_ca.display().to_string(),
        ],
    );
}

/// Over plain TCP, the services' own shape: the FastAPI forwarder on
/// `redis.asyncio.from_url("redis://...")`, reading with `listen()` and
/// with `get_message()`, beside the sync publisher and its `listen()`
/// worker, RESP2 and RESP3. Each WebSocket receives exactly the
/// predictions, in order; PUBLISH counts what redis-server counts; a
/// WebSocket closing unsubscribes its forwarder.
#[test]
fn redis_py_fastapi_forwarder_over_plain_tcp() {
    let Some(python) = python("redis, fastapi, uvicorn, websockets") else {
        return;
    };
    let server = TestServer::start();
    run(
        &python,
        &format!("{FORWARDER_PRELUDE}{PLAIN_SCRIPT}"),
        &[&server.local_addr().port().to_string()],
    );
}
