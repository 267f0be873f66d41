//! The unmodified redis-py client against tannoy-server, sync and asyncio,
//! RESP2 and RESP3, in the shapes Python services use it: publisher
//! functions calling `redis_client.publish(...)`, a worker thread looping
//! over `pubsub.listen()`, `psubscribe('ai:*')`, health-check pings while
//! subscribed, and a transactional pipeline.
//!
//! The Python interpreter is `TANNOY_PYTHON` if set (`.ci/run` points it at
//! a venv with redis-py), else `python3`. Without one that can `import
//! redis`, the test prints why and skips, unless `TANNOY_REQUIRE_REDIS` is
//! set.

#[path = "support/redis.rs"]
mod redis;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tannoy_server::TestServer;

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

/// The interpreter to use, if it has redis-py; `None` to skip.
fn python() -> Option<String> {
    let python = std::env::var("TANNOY_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let has_redis = Command::new(&python)
        .args(["-c", "import redis"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_redis {
        Some(python)
    } else {
        redis::skip(&format!(
            "{python} cannot import redis (install redis-py, or set TANNOY_PYTHON)"
        ))
    }
}

/// redis-py, sync and asyncio, RESP2 and RESP3, works unchanged.
#[test]
fn redis_py_sync_and_asyncio() {
    let Some(python) = python() else { return };
    let server = TestServer::start();
    let mut child = Command::new(python)
        .args(["-c", SCRIPT])
        .arg(server.local_addr().port().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the redis-py checks did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    assert!(
        output.status.success() && output.stdout.ends_with(b"ok\n"),
        "redis-py checks failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
