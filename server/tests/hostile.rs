//! Hostile clients: garbage, absurd lengths, abrupt disconnects mid-frame,
//! a thousand connections at once. No byte sequence panics the server or
//! affects another connection, and half-written requests do not hold
//! memory forever.

#[path = "support/redis.rs"]
mod redis;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use redis::{RawConn, encode};
use tannoy_server::{Server, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long any one wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);

/// A witness connection that must keep working: subscribed to `w`, it
/// receives what is published there.
fn witness_works(server: &TestServer, witness: &mut RawConn, n: u32) {
    let payload = format!("still here {n}");
    assert_eq!(server.broker().publish("w", payload.clone()), 1);
    let frame = format!("${}\r\n{payload}\r\n", payload.len());
    let got = witness.read_until_suffix(frame.as_bytes());
    assert!(got.ends_with(frame.as_bytes()));
}

/// A subscribed witness connection.
fn witness(server: &TestServer) -> RawConn {
    let mut conn = RawConn::connect(server.local_addr());
    conn.send(&encode(&[b"SUBSCRIBE", b"w"]));
    conn.read_until_suffix(b":1\r\n");
    conn
}

/// Deterministic garbage (xorshift), biased towards protocol bytes.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let b = (state >> 24) as u8;
            match b % 8 {
                0 => b"*$\r\n"[(b as usize / 8) % 4],
                1 => b'0' + b % 10,
                _ => b,
            }
        })
        .collect()
}

/// Random bytes on many connections: each is answered or closed, never
/// panics the server, and the witness keeps receiving.
#[test]
fn garbage_never_hurts_others() {
    let server = TestServer::start();
    let mut w = witness(&server);
    for seed in 0..200u64 {
        let mut conn = TcpStream::connect(server.local_addr()).expect("connect");
        let _ = conn.write_all(&garbage(seed, 64 + (seed as usize * 37) % 4000));
        if seed % 3 == 0 {
            // Hang up at once, maybe mid-frame.
            drop(conn);
        } else {
            let _ = conn.set_read_timeout(Some(Duration::from_millis(20)));
            let _ = conn.read(&mut [0u8; 4096]);
        }
        if seed % 50 == 0 {
            witness_works(&server, &mut w, seed as u32);
        }
    }
    witness_works(&server, &mut w, 1000);
}

/// Absurd announced lengths allocate nothing ahead of the data, and a
/// request that stops arriving is dropped after the request timeout.
#[test]
fn absurd_lengths_and_stalled_requests() {
    let server =
        TestServer::with(Server::builder().request_timeout(Some(Duration::from_millis(300))));
    let mut w = witness(&server);
    let mut conns = Vec::new();
    for _ in 0..20 {
        let mut conn = RawConn::connect(server.local_addr());
        conn.send(b"*2147483647\r\n$536870912\r\nabc");
        conns.push(conn);
    }
    std::thread::sleep(Duration::from_millis(100));
    for client in server.clients() {
        assert!(
            client.pending_output() < 1024,
            "nothing is queued for a half-sent request"
        );
    }
    witness_works(&server, &mut w, 1);
    for conn in &mut conns {
        let rest = conn.read_to_close();
        assert!(rest.is_empty(), "closed without a reply: {rest:?}");
    }
    let deadline = Instant::now() + WAIT;
    while server.clients().len() > 1 {
        assert!(Instant::now() < deadline, "only the witness should be left");
        std::thread::sleep(Duration::from_millis(5));
    }
    witness_works(&server, &mut w, 2);
}

/// A request over `client-query-buffer-limit` closes its connection.
#[test]
fn query_buffer_limit() {
    let server = TestServer::start();
    let mut conn = RawConn::connect(server.local_addr());
    conn.send(b"CONFIG SET client-query-buffer-limit 1mb\r\n");
    conn.read_until_suffix(b"+OK\r\n");
    let mut big = b"*2\r\n$4\r\nECHO\r\n$2000000\r\n".to_vec();
    big.resize(big.len() + 1_500_000, b'x');
    let mut stream = TcpStream::connect(server.local_addr()).expect("connect");
    let _ = stream.write_all(&big);
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty());
}

/// Disconnecting in the middle of every kind of frame leaves no trace:
/// subscriptions of the vanished clients are gone.
#[test]
fn abrupt_disconnect_mid_frame() {
    let server = TestServer::start();
    let full = [
        encode(&[b"SUBSCRIBE", b"gone"]),
        encode(&[b"PUBLISH", b"gone", b"payload"]),
        b"PSUBSCRIBE go*\r\n".to_vec(),
    ]
    .concat();
    for cut in 0..full.len() {
        let mut conn = TcpStream::connect(server.local_addr()).expect("connect");
        conn.write_all(&full[..cut]).expect("send");
        drop(conn);
    }
    let deadline = Instant::now() + WAIT;
    while !server.clients().is_empty() {
        assert!(Instant::now() < deadline, "connections linger");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(server.broker().numsub(["gone"])[0].1, 0);
    assert_eq!(server.broker().numpat(), 0);
}

/// A thousand subscriber connections at once: one publish reaches all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections() {
    const CONNECTIONS: usize = 1000;
    let server = Server::builder().start().await.expect("start");
    let mut conns = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut conn = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .expect("connect");
        conn.write_all(b"SUBSCRIBE crowd\r\n").await.expect("send");
        conns.push(conn);
    }
    let confirmation = b"*3\r\n$9\r\nsubscribe\r\n$5\r\ncrowd\r\n:1\r\n";
    for conn in &mut conns {
        let mut buf = vec![0; confirmation.len()];
        tokio::time::timeout(WAIT, conn.read_exact(&mut buf))
            .await
            .expect("in time")
            .expect("confirmation");
        assert_eq!(&buf, confirmation);
    }
    assert_eq!(server.broker().publish("crowd", "hello all"), CONNECTIONS);
    let message = b"*3\r\n$7\r\nmessage\r\n$5\r\ncrowd\r\n$9\r\nhello all\r\n";
    for conn in &mut conns {
        let mut buf = vec![0; message.len()];
        tokio::time::timeout(WAIT, conn.read_exact(&mut buf))
            .await
            .expect("in time")
            .expect("message");
        assert_eq!(&buf, message);
    }
    drop(conns);
    server.shutdown().await;
}
