//! Slow subscribers, `maxclients` and `requirepass`: a client that stops
//! reading never slows a publisher or another client, and its memory stays
//! within the pub/sub output-buffer limit.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tannoy_server::{OutputBufferLimit, Overflow, Server, TestServer};

/// How long any one wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);

/// The output-buffer limit the tests use: small, so a flood passes it fast.
const LIMIT: u64 = 256 * 1024;

/// A subscriber on a raw socket that never reads after its confirmation.
/// Its receive buffer is 4 KiB (set before connecting, so the kernel does
/// not grow it), as a slow client's would be full.
fn stalled_subscriber(server: &Server, channel: &str) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket
        .connect(&server.local_addr().into())
        .expect("connect");
    let mut conn: TcpStream = socket.into();
    conn.write_all(format!("SUBSCRIBE {channel}\r\n").as_bytes())
        .expect("send");
    let mut confirmation = vec![0; 27 + channel.len() + channel.len().to_string().len()];
    conn.set_read_timeout(Some(WAIT)).expect("timeout");
    conn.read_exact(&mut confirmation).expect("confirmation");
    conn
}

/// Publishes 16 KiB payloads in-process until `done` holds (or a bound is
/// reached), checking that the slow client's queued output never passes
/// the limit by more than one publish's worth; returns how many were
/// published.
fn flood(server: &Server, pace: impl Fn(usize), done: impl Fn(&Server) -> bool) -> usize {
    let payload = vec![b'x'; 16 * 1024];
    for i in 0..4096 {
        pace(i);
        server
            .broker()
            .publish("flood", bytes::Bytes::from(payload.clone()));
        for client in server.clients() {
            assert!(
                client.pending_output() as u64 <= LIMIT + 64 * 1024,
                "client {} holds {} bytes",
                client.id(),
                client.pending_output()
            );
        }
        if done(server) {
            return i + 1;
        }
        if i % 64 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let state: Vec<_> = server
        .clients()
        .iter()
        .map(|c| (c.id(), c.pending_output(), c.is_subscribed()))
        .collect();
    panic!(
        "the flood never ended; numsub {:?}, clients {state:?}",
        server.broker().numsub(["flood"])
    );
}

/// As in Redis, a subscriber over the limit is disconnected, while a fast
/// one on the same channel receives every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_is_disconnected() {
    let server = Server::builder()
        .client_output_buffer_limit_pubsub(OutputBufferLimit::new(LIMIT, 0, 0))
        .start()
        .await
        .expect("start");
    let client = redis::Client::open(server.url()).expect("valid url");
    let mut fast = client.get_async_pubsub().await.expect("pubsub");
    fast.subscribe("flood").await.expect("subscribe");
    let slow = stalled_subscriber(&server, "flood");

    // The fast subscriber reads all along, in its own task.
    let mut stream = fast.into_on_message();
    let received = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&received);
    let reader = tokio::spawn(async move {
        while stream.next().await.is_some() {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    // Publish no faster than the fast subscriber reads: it stays within a
    // few messages of the publisher, far under the limit.
    let pace = |published: usize| {
        let deadline = Instant::now() + WAIT;
        while published > received.load(std::sync::atomic::Ordering::Relaxed) + 4 {
            assert!(
                Instant::now() < deadline,
                "the fast subscriber stopped reading"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
    };
    let published = tokio::task::block_in_place(|| {
        flood(&server, pace, |s| s.broker().numsub(["flood"])[0].1 == 1)
    });
    let client_count = server.clients().len();
    let deadline = Instant::now() + WAIT;
    while received.load(std::sync::atomic::Ordering::Relaxed) < published
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let fast_count = received.load(std::sync::atomic::Ordering::Relaxed);
    reader.abort();
    assert_eq!(fast_count, published);
    assert_eq!(client_count, 1, "only the fast subscriber is left");

    // The slow client reads what the kernel held, then the end.
    let mut slow = slow;
    let mut sink = [0u8; 65536];
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "the slow connection was not closed"
        );
        match slow.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut con)
        .await
        .expect("info");
    assert!(
        info.contains("client_output_buffer_limit_disconnections:1\r\n"),
        "{info}"
    );
    server.shutdown().await;
}

/// With drop-oldest, the slow subscriber stays connected, its drops are
/// counted (`CLIENT LIST` shows `dropped=`), and once it reads again it
/// gets the most recent messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_keeps_the_slow_subscriber() {
    let server = Server::builder()
        .client_output_buffer_limit_pubsub(OutputBufferLimit::new(LIMIT, 0, 0))
        .overflow(Overflow::DropOldest)
        .start()
        .await
        .expect("start");
    let mut slow = stalled_subscriber(&server, "flood");
    let published = tokio::task::block_in_place(|| {
        flood(
            &server,
            |_| {},
            |s| s.clients().iter().any(|c| c.dropped() > 100),
        )
    });
    assert_eq!(
        server.broker().numsub(["flood"])[0].1,
        1,
        "still subscribed"
    );
    let dropped = server.clients()[0].dropped();
    assert!(dropped > 0 && (dropped as usize) < published);

    let client = redis::Client::open(server.url()).expect("valid url");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut con)
        .await
        .expect("list");
    assert!(list.contains(" dropped="), "{list}");
    server.broker().publish("flood", "the latest");
    let text = tokio::task::block_in_place(|| {
        let mut seen = Vec::new();
        let mut buf = [0u8; 65536];
        let deadline = Instant::now() + WAIT;
        while !seen.ends_with(b"$10\r\nthe latest\r\n") {
            assert!(Instant::now() < deadline, "the latest message never came");
            let n = slow.read(&mut buf).expect("read");
            assert_ne!(n, 0, "the slow subscriber was disconnected");
            seen.extend_from_slice(&buf[..n]);
        }
        seen
    });
    assert!(
        text.len() < published * 16 * 1024,
        "the oldest messages were dropped"
    );
    server.shutdown().await;
}

/// `maxclients` refuses further connections with Redis's error, counted in
/// `INFO`; raising it with `CONFIG SET` lets them in.
#[test]
fn maxclients_refuses_with_redis_error() {
    let redis = TestServer::with(Server::builder().maxclients(2));
    let mut first = TcpStream::connect(redis.local_addr()).expect("connect");
    let _second = TcpStream::connect(redis.local_addr()).expect("connect");
    let deadline = Instant::now() + WAIT;
    while redis.clients().len() < 2 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut third = TcpStream::connect(redis.local_addr()).expect("connect");
    third.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut refused = Vec::new();
    third.read_to_end(&mut refused).expect("read to the close");
    assert_eq!(refused, b"-ERR max number of clients reached\r\n");

    first.set_read_timeout(Some(WAIT)).expect("timeout");
    first
        .write_all(b"CONFIG SET maxclients 3\r\nINFO stats\r\n")
        .expect("send");
    let mut reply = vec![0u8; 8192];
    let n = first.read(&mut reply).expect("reply");
    let mut text = String::from_utf8_lossy(&reply[..n]).into_owned();
    while !text.contains("rejected_connections") {
        let n = first.read(&mut reply).expect("reply");
        text.push_str(&String::from_utf8_lossy(&reply[..n]));
    }
    assert!(text.starts_with("+OK\r\n"));
    assert!(text.contains("rejected_connections:1\r\n"), "{text}");
    let client = redis::Client::open(redis.url()).expect("valid url");
    let mut con = client.get_connection().expect("a third client fits now");
    assert_eq!(
        redis::cmd("PING").query::<String>(&mut con).expect("ping"),
        "PONG"
    );
}

/// With a password, redis-rs connects through the URL's password; a
/// client without it is refused with NOAUTH.
#[test]
fn requirepass_through_the_url() {
    let redis = TestServer::with(Server::builder().requirepass("p@ss word"));
    let client = redis::Client::open(redis.url()).expect("valid url");
    let mut con = client.get_connection().expect("connect with the password");
    assert_eq!(
        redis::cmd("PUBLISH")
            .arg("c")
            .arg("m")
            .query::<i64>(&mut con)
            .expect("publish"),
        0
    );
    let url = format!("redis://{}", redis.local_addr());
    let mut anonymous = redis::Client::open(url)
        .expect("valid url")
        .get_connection()
        .expect("connect");
    let err = redis::cmd("PUBLISH")
        .arg("c")
        .arg("m")
        .query::<i64>(&mut anonymous)
        .unwrap_err();
    assert_eq!(err.code(), Some("NOAUTH"));
}
