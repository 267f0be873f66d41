//! The unmodified redis-py client against tannoy-server, sync and asyncio,
//! RESP2 and RESP3, in the shapes Python services use it: publisher
//! functions calling `redis_client.publish(...)`, a worker thread looping
//! over `pubsub.listen()`, `psubscribe('ai:*')`, health-check pings while
//! subscribed, and a transactional pipeline.
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

/// The Python program over TLS: `argv` is the TLS server's port, its
/// password, its CA file, another CA's file, and the port and CA file of
/// a server whose certificate has expired. Exits 0 when every check
/// passes, prints what failed otherwise.
const TLS_SCRIPT: &str = r#"
import asyncio, queue, socket, sys, threading, time
import redis
import redis.asyncio as aioredis
import uvicorn
from redis.backoff import NoBackoff
from redis.retry import Retry
import websockets
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

port, password, ca_certs, other_ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
expired_port, expired_ca = int(sys.argv[5]), sys.argv[6]
host = "localhost"

def publish_prediction(redis_client, model, score):
    return redis_client.publish("ai:predictions:ready", f"{model}:{score}")

def publish_conversation(redis_client, text):
    return redis_client.publish("conversations:new", text)

def make_app(protocol):
    app = FastAPI()

    @app.websocket("/ws/predictions")
    async def predictions(websocket: WebSocket):
        await websocket.accept()
        redis_client = aioredis.Redis(host=host, port=port, password=password, ssl=True,
                                      ssl_ca_certs=ca_certs, decode_responses=True,
                                      protocol=protocol)
        pubsub = redis_client.pubsub()
        await pubsub.subscribe("ai:predictions:ready")
        try:
            async for message in pubsub.listen():
                if message["type"] == "message":
                    await websocket.send_text(message["data"])
        except WebSocketDisconnect:
            pass
        finally:
            await pubsub.aclose()
            await redis_client.aclose()

    return app

def wait_for_numsub(redis_client, channel, n):
    deadline = time.time() + 10
    while redis_client.pubsub_numsub(channel)[0][1] != n:
        assert time.time() < deadline, f"{channel} never had {n} subscribers"
        time.sleep(0.01)

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

async def forwarder_checks(redis_client, protocol):
    app = make_app(protocol)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    ws_port = listener.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        await asyncio.sleep(0.01)
    async with websockets.connect(f"ws://127.0.0.1:{ws_port}/ws/predictions") as ws:
        # The forwarder and the worker's ai:* pattern both receive.
        await asyncio.to_thread(wait_for_numsub, redis_client, "ai:predictions:ready", 1)
        for i in range(20):
            n = await asyncio.to_thread(publish_prediction, redis_client, f"model-{i}", i / 10)
            assert n == 2, n
        got = [await asyncio.wait_for(ws.recv(), 10) for _ in range(20)]
        assert got == [f"model-{i}:{i / 10}" for i in range(20)], got
    # The browser left: the forwarder finds out at its next message, and
    # its finally block unsubscribes.
    assert await asyncio.to_thread(publish_prediction, redis_client, "after", "close") == 2
    await asyncio.to_thread(wait_for_numsub, redis_client, "ai:predictions:ready", 0)
    server.should_exit = True
    await serving

for protocol in (2, 3):
    redis_client = redis.Redis(host=host, port=port, password=password, ssl=True,
                               ssl_ca_certs=ca_certs, decode_responses=True,
                               protocol=protocol)
    pubsub = redis_client.pubsub()
    pubsub.subscribe("conversations:new")
    pubsub.psubscribe("ai:*")
    received = queue.Queue()

    def worker():
        for message in pubsub.listen():
            if message["type"] in ("message", "pmessage"):
                received.put((message["type"], message["channel"], message["data"]))
                if message["data"] == "stop":
                    return

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    wait_for_numsub(redis_client, "conversations:new", 1)
    assert publish_conversation(redis_client, "Where is my order?") == 1
    assert received.get(timeout=10) == ("message", "conversations:new", "Where is my order?")

    asyncio.run(forwarder_checks(redis_client, protocol))
    for i in range(20):
        assert received.get(timeout=10) == ("pmessage", "ai:predictions:ready",
                                            f"model-{i}:{i / 10}")
    assert received.get(timeout=10) == ("pmessage", "ai:predictions:ready", "after:close")

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

    assert publish_conversation(redis_client, "stop") == 1
    thread.join(10)
    assert not thread.is_alive()
    pubsub.close()
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
        TLS_SCRIPT,
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
