//! `redis-cli` against tannoy-server: `SUBSCRIBE` printing what is
//! published, one-shot `PUBLISH`, and pipe mode (`--pipe`, inline
//! commands in bulk); and `SUBSCRIBE`/`PUBLISH` over TLS (`--tls
//! --cacert` with the test server's generated CA, and a password), where
//! a `redis-cli` that trusts another CA fails alone. Skips without
//! `redis-cli`, unless `TANNOY_REQUIRE_REDIS` is set.

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

/// `redis-cli` aimed at a TLS server with a password, trusting the CA
/// file `ca` (see [`TestServer::ca_path`]), or `None` to skip.
fn tls_cli(server: &TestServer, ca: &std::path::Path) -> Option<Command> {
    let mut command = cli(server)?;
    command
        .args(["--tls", "--cacert"])
        .arg(ca)
        .args(["-a", ACCESS_KEY, "--no-auth-warning"]);
    Some(command)
}

/// The password of the TLS test, as an Azure access key is used.
const ACCESS_KEY: &str = "access-key";

/// `redis-cli SUBSCRIBE` prints the confirmation, then each message that
/// `redis-cli PUBLISH` sends, as with redis-server.
#[test]
fn subscribe_and_publish() {
    let server = TestServer::start();
    let Some(subscribe) = cli(&server) else {
        return;
    };
    let Some(publish) = cli(&server) else { return };
    let _subscriber = check_subscribe_and_publish(subscribe, publish);
}

/// `redis-cli --tls --cacert CA -a PASSWORD` SUBSCRIBE and PUBLISH, as
/// against an Azure cache: the same output as over plaintext. A
/// `redis-cli` that trusts another CA fails to connect and says why,
/// while the TLS subscriber keeps receiving.
#[test]
fn subscribe_and_publish_over_tls() {
    let server = TestServer::with_tls(tannoy_server::Server::builder().requirepass(ACCESS_KEY));
    let Some(subscribe) = tls_cli(&server, server.ca_path()) else {
        return;
    };
    let Some(publish) = tls_cli(&server, server.ca_path()) else {
        return;
    };
    let next = check_subscribe_and_publish(subscribe, publish);

    // A server with a CA of its own: its CA file is the wrong one here.
    let stranger = TestServer::start_tls();
    let Some(mut wrong) = tls_cli(&server, stranger.ca_path()) else {
        return;
    };
    let output = wrong
        .args(["PUBLISH", "ai:models:updated", "never"])
        .output()
        .expect("run redis-cli");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("certificate verify failed"),
        "redis-cli trusted another CA's server: {text}"
    );
    assert_eq!(server.broker().publish("ai:models:updated", "after"), 1);
    assert_eq!(
        [next(), next(), next()],
        ["message", "ai:models:updated", "after"]
    );
}

/// Runs `subscribe` with `SUBSCRIBE ai:models:updated` and `publish` with
/// a `PUBLISH` to it; checks what both print; returns the source of the
/// subscriber's further lines (it stays subscribed until the source
/// drops).
fn check_subscribe_and_publish(
    mut subscribe: Command,
    mut publish: Command,
) -> impl Fn() -> String {
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
    let next = move || {
        let _alive = &child;
        rx.recv_timeout(WAIT).expect("a line from redis-cli")
    };
    assert_eq!(
        [next(), next(), next()],
        ["subscribe", "ai:models:updated", "1"]
    );
    let output = publish
        .args(["PUBLISH", "ai:models:updated", "gpt-5:v2"])
        .output()
        .expect("run redis-cli");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "1\n");
    assert_eq!(
        [next(), next(), next()],
        ["message", "ai:models:updated", "gpt-5:v2"]
    );
    next
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
