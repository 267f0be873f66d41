//! A bridge in a second OS process: the `chat` example, spawned by the
//! test, exchanges messages with a bridge in this process through one
//! real `redis-server`.

#[path = "support/redis.rs"]
mod support;

use std::process::Stdio;

use support::{PATIENCE, RedisServer};
use tannoy::Broker;
use tannoy_redis::Bridge;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

/// The child's next output line.
async fn line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("the child answers in time")
        .expect("the child's stdout is readable")
        .expect("the child is still running")
}

/// A publish in either process reaches the other's local subscribers
/// (exact and pattern) once; when the child exits, the server drops its
/// subscriptions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_exchanges_messages_through_redis() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut child = Command::new(support::example("chat"))
        .args([server.url().as_str(), "room:1", "room:*"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the chat example runs");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    assert_eq!(line(&mut lines).await, "ready");

    let broker = Broker::new();
    let bridge = Bridge::builder()
        .url(server.url())
        .broker(broker.clone())
        .start()
        .await
        .expect("the bridge starts");
    let mut here = broker.subscriber();
    here.psubscribe(["room:*"]);
    bridge.sync().await.expect("synced");

    // This process to the child: one exact and one pattern delivery there.
    assert_eq!(
        bridge.publish("room:1", "hello").await.expect("published"),
        3
    );
    let mut got = vec![line(&mut lines).await, line(&mut lines).await];
    got.sort();
    assert_eq!(
        got,
        ["message room:1 hello", "pmessage room:* room:1 hello"]
    );
    let msg = tokio::time::timeout(PATIENCE, here.recv_async())
        .await
        .expect("in time")
        .expect("open");
    assert_eq!(
        (msg.channel().as_ref(), msg.payload().as_ref()),
        (&b"room:1"[..], &b"hello"[..])
    );

    // The child to this process.
    stdin
        .write_all(b"room:2 hi there\n")
        .await
        .expect("written");
    let mut got = vec![line(&mut lines).await, line(&mut lines).await];
    got.sort();
    assert_eq!(got, ["pmessage room:* room:2 hi there", "published 2"]);
    let msg = tokio::time::timeout(PATIENCE, here.recv_async())
        .await
        .expect("in time")
        .expect("open");
    assert_eq!(msg.pattern().expect("a pattern message"), "room:*");
    assert_eq!(msg.payload(), "hi there");
    assert!(here.try_recv().is_err(), "each message once");

    drop(stdin);
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("the child exits in time")
        .expect("the child's status");
    assert!(status.success(), "the child exited with {status}");
    support::eventually("the child's subscriptions are gone", || {
        server.numsub("room:1") == 0 && server.numpat() == 1
    });
    bridge.shutdown().await;
}
