//! `redis-cli` against tannoy-server: `SUBSCRIBE` printing what is
//! published, one-shot `PUBLISH`, and pipe mode (`--pipe`, inline
//! commands in bulk). Skips without `redis-cli`, unless
//! `TANNOY_REQUIRE_REDIS` is set.

#[path = "support/redis.rs"]
mod redis;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tannoy_server::TestServer;

/// How long any one wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);

/// A child process killed and reaped when dropped, so a failing test
/// leaves no `redis-cli` behind.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `redis-cli` aimed at the server, or `None` to skip.
fn cli(server: &TestServer) -> Option<Command> {
    let Some(binary) = redis::find_on_path("redis-cli") else {
        return redis::skip("redis-cli not found");
    };
    let mut command = Command::new(binary);
    command
        .args(["-h", "127.0.0.1", "-p"])
        .arg(server.local_addr().port().to_string());
    Some(command)
}

/// `redis-cli SUBSCRIBE` prints the confirmation, then each message that
/// `redis-cli PUBLISH` sends, as with redis-server.
#[test]
fn subscribe_and_publish() {
    let server = TestServer::start();
    let Some(mut subscribe) = cli(&server) else {
        return;
    };
    let mut child = Reaped(
        subscribe
            .args(["SUBSCRIBE", "ai:models:updated"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run redis-cli"),
    );
    let stdout = child.0.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let next = || rx.recv_timeout(WAIT).expect("a line from redis-cli");
    assert_eq!(
        [next(), next(), next()],
        ["subscribe", "ai:models:updated", "1"]
    );

    let Some(mut publish) = cli(&server) else {
        return;
    };
    let output = publish
        .args(["PUBLISH", "ai:models:updated", "gpt-5:v2"])
        .output()
        .expect("run redis-cli");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "1\n");
    assert_eq!(
        [next(), next(), next()],
        ["message", "ai:models:updated", "gpt-5:v2"]
    );
    drop(child);
}

/// `redis-cli --pipe` sends inline commands in bulk and checks every
/// reply arrived (it ends with an `ECHO` of a random marker).
#[test]
fn pipe_mode() {
    let server = TestServer::start();
    let broker = server.broker().clone();
    let local = &mut broker.subscriber();
    local.subscribe(["bulk"]);
    let Some(mut pipe) = cli(&server) else { return };
    let mut child = pipe
        .arg("--pipe")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run redis-cli");
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        for i in 0..1000 {
            writeln!(stdin, "PUBLISH bulk \"message {i}\"\r").expect("write");
        }
    }
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "redis-cli --pipe did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("errors: 0, replies: 1000"), "{text}");
    let received: Vec<_> = local.try_iter().map(|m| m.into_payload()).collect();
    assert_eq!(received.len(), 1000);
    assert_eq!(received[999], "message 999");
}
