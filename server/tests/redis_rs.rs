//! The unmodified redis-rs client against tannoy-server: sync `PubSub`
//! and async `aio::PubSub` in RESP2 and RESP3, RESP3 pushes on a
//! multiplexed connection, and network clients mixed with in-process
//! subscribers and publishers on one broker; then the same over TLS
//! (`rediss://`, redis-rs's rustls support) with a password, trusting the
//! test server's generated CA, and the TLS failures a client can meet (an
//! untrusted CA, an expired certificate, plaintext to the TLS port), each
//! an error for that client alone.

#[path = "support/redis.rs"]
mod raw;
#[path = "support/tls.rs"]
mod tls;

use std::time::Duration;

use futures_util::StreamExt;
use redis::{AsyncTypedCommands, Commands, PushKind, Value};
use tannoy_server::{Server, TestServer, TlsConfig};

/// How long any one wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);

/// The URL for a protocol.
fn url(server: &TestServer, resp3: bool) -> String {
    if resp3 {
        format!("{}?protocol=resp3", server.url())
    } else {
        server.url()
    }
}

/// Sync `PubSub` on `subscriber`: subscribe and psubscribe, receive a
/// publish from `publisher` twice (channel and pattern), then drop the
/// `PubSub` and check the connection answers ordinary commands again.
fn sync_pubsub_checks(subscriber: &mut redis::Connection, publisher: &mut redis::Connection) {
    {
        let mut pubsub = subscriber.as_pubsub();
        pubsub.subscribe("ai:models:updated").expect("subscribe");
        pubsub.psubscribe("ai:*").expect("psubscribe");
        let receivers: i64 = publisher
            .publish("ai:models:updated", "gpt-5:v2")
            .expect("publish");
        assert_eq!(receivers, 2);
        let first = pubsub.get_message().expect("message");
        assert_eq!(first.get_channel_name(), "ai:models:updated");
        assert_eq!(first.get_payload::<String>().expect("payload"), "gpt-5:v2");
        assert!(!first.from_pattern());
        let second = pubsub.get_message().expect("pmessage");
        assert!(second.from_pattern());
        assert_eq!(second.get_pattern::<String>().expect("pattern"), "ai:*");
    }
    let pong: String = redis::cmd("PING").query(subscriber).expect("ping");
    assert_eq!(pong, "PONG");
}

/// Async `aio::PubSub` on `client`: subscribe and psubscribe, then ten
/// publishes from a multiplexed connection arrive on the stream twice
/// each, the exact ones in publish order.
async fn async_pubsub_checks(client: &redis::Client) {
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub.subscribe("orders").await.expect("subscribe");
    pubsub.psubscribe("ord*").await.expect("psubscribe");
    let mut publisher = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    for i in 0..10 {
        let n = publisher
            .publish("orders", format!("o-{i}"))
            .await
            .expect("publish");
        assert_eq!(n, 2);
    }
    let mut stream = pubsub.on_message();
    let mut exact = Vec::new();
    let mut by_pattern = 0;
    while exact.len() < 10 || by_pattern < 10 {
        let msg = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("a message in time")
            .expect("the stream continues");
        if msg.from_pattern() {
            by_pattern += 1;
        } else {
            exact.push(msg.get_payload::<String>().expect("payload"));
        }
    }
    let expected: Vec<String> = (0..10).map(|i| format!("o-{i}")).collect();
    assert_eq!(exact, expected);
}

/// A multiplexed connection to `client` whose RESP3 pushes go to the
/// returned receiver.
async fn push_connection(
    client: &redis::Client,
) -> (
    redis::aio::MultiplexedConnection,
    tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let config = redis::AsyncConnectionConfig::new().set_push_sender(tx);
    let con = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect");
    (con, rx)
}

/// A push's data as redis-rs gives it: bulk strings.
fn bulks(items: &[&str]) -> Vec<Value> {
    items
        .iter()
        .map(|item| Value::BulkString(item.as_bytes().to_vec()))
        .collect()
}

/// The next push from `rx`, within `WAIT`.
async fn next_push(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
) -> redis::PushInfo {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a push in time")
        .expect("the channel stays open")
}

/// Sync `PubSub`: subscribe and psubscribe, receive a publish from
/// another connection twice (channel and pattern), then drop the
/// `PubSub` (redis-rs unsubscribes everything and reads until both counts
/// reach 0) and use the connection for ordinary commands again.
#[test]
fn sync_pubsub_resp2_and_resp3() {
    for resp3 in [false, true] {
        let server = TestServer::start();
        let client = redis::Client::open(url(&server, resp3)).expect("valid url");
        let mut subscriber = client.get_connection().expect("connect");
        subscriber.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut publisher = client.get_connection().expect("connect");
        sync_pubsub_checks(&mut subscriber, &mut publisher);
        let numsub: Vec<(String, i64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("ai:models:updated")
            .query(&mut publisher)
            .expect("numsub");
        assert_eq!(numsub, [("ai:models:updated".to_owned(), 0)]);
    }
}

/// Async `aio::PubSub` in both protocols: messages from a multiplexed
/// publisher arrive on the stream in publish order.
#[tokio::test]
async fn async_pubsub_resp2_and_resp3() {
    for resp3 in [false, true] {
        let server = TestServer::start();
        let client = redis::Client::open(url(&server, resp3)).expect("valid url");
        async_pubsub_checks(&client).await;
    }
}

/// RESP3 pushes on a multiplexed connection: `subscribe` there delivers
/// messages to the push sender, beside ordinary replies.
#[tokio::test]
async fn resp3_pushes_on_a_multiplexed_connection() {
    let server = TestServer::start();
    let client = redis::Client::open(url(&server, true)).expect("valid url");
    let (mut con, mut rx) = push_connection(&client).await;
    con.subscribe("alerts").await.expect("subscribe");
    let echoed: String = redis::cmd("ECHO")
        .arg("interleaved")
        .query_async(&mut con)
        .await
        .expect("echo");
    assert_eq!(echoed, "interleaved");
    assert_eq!(con.publish("alerts", "fire").await.expect("publish"), 1);
    loop {
        let push = next_push(&mut rx).await;
        if push.kind == PushKind::Message {
            assert_eq!(push.data, bulks(&["alerts", "fire"]));
            break;
        }
    }
}

/// One broker, two kinds of users: an in-process subscriber sees a
/// redis-rs client's publishes, a redis-rs subscriber sees in-process
/// publishes, and introspection counts both.
#[tokio::test]
async fn mixed_in_process_and_network() {
    let broker = tannoy::Broker::new();
    let server = Server::builder()
        .broker(broker.clone())
        .start()
        .await
        .expect("start");
    let client = redis::Client::open(server.url()).expect("valid url");

    let mut local = broker.subscriber();
    let local_ref = &mut local;
    local_ref.subscribe(["conversations:new"]);
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub
        .subscribe("conversations:new")
        .await
        .expect("subscribe");

    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let counts: Vec<(String, i64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("conversations:new")
        .query_async(&mut con)
        .await
        .expect("numsub");
    assert_eq!(counts, [("conversations:new".to_owned(), 2)]);
    assert_eq!(broker.numsub(["conversations:new"])[0].1, 2);

    // Network to in-process and network.
    let n = con
        .publish("conversations:new", "from redis-rs")
        .await
        .expect("publish");
    assert_eq!(n, 2);
    let got = tokio::time::timeout(WAIT, local.recv_async())
        .await
        .expect("in time")
        .expect("a message");
    assert_eq!(got.payload(), "from redis-rs");
    // In-process to network.
    assert_eq!(broker.publish("conversations:new", "from the broker"), 2);
    let mut stream = pubsub.on_message();
    let mut payloads = Vec::new();
    while payloads.len() < 2 {
        let msg = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("in time")
            .expect("a message");
        payloads.push(msg.get_payload::<String>().expect("payload"));
    }
    assert_eq!(payloads, ["from redis-rs", "from the broker"]);
    let got = local.try_recv().expect("the in-process publish too");
    assert_eq!(got.payload(), "from the broker");
    drop(stream);
    drop(pubsub);
    server.shutdown().await;
}

/// A client sending `CLIENT SETINFO` on connect (redis-rs does) shows its
/// library name to the fault API's filters.
#[test]
fn connect_handshake_is_accepted() {
    let server = TestServer::start();
    let client = redis::Client::open(server.url()).expect("valid url");
    let mut con = client.get_connection().expect("connect");
    let _: () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("worker")
        .query(&mut con)
        .expect("setname");
    let clients = server.clients();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].name(), Some(&b"worker"[..]));
    assert_eq!(clients[0].lib_name(), Some(&b"redis-rs"[..]));
}

/// The password of the TLS tests, as an Azure access key is used.
const ACCESS_KEY: &str = "access-key";

/// A TLS test server with a password: what Azure Cache for Redis looks
/// like to a client.
fn azure_like() -> TestServer {
    TestServer::with_tls(Server::builder().requirepass(ACCESS_KEY))
}

/// A redis-rs client for `url` that trusts only `ca_pem`, verifying the
/// server's certificate as it would in production.
fn tls_client(url: String, ca_pem: &str) -> redis::RedisResult<redis::Client> {
    redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca_pem.as_bytes().to_vec()),
        },
    )
}

/// Sync `PubSub` over TLS with a password, RESP2 and RESP3: `rediss://`
/// with the generated CA; subscribe, psubscribe, publish from another TLS
/// connection, and the connection usable again after the `PubSub` drops.
#[test]
fn tls_sync_pubsub_resp2_and_resp3() {
    for resp3 in [false, true] {
        let server = azure_like();
        assert!(server.url().starts_with("rediss://:access-key@127.0.0.1:"));
        let client = tls_client(url(&server, resp3), server.ca_pem()).expect("valid url");
        let mut subscriber = client.get_connection_with_timeout(WAIT).expect("connect");
        subscriber.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut publisher = client.get_connection_with_timeout(WAIT).expect("connect");
        sync_pubsub_checks(&mut subscriber, &mut publisher);
        let clients = server.clients();
        assert_eq!(clients.len(), 2);
        assert!(
            clients
                .iter()
                .all(|c| c.lib_name() == Some(&b"redis-rs"[..]))
        );
    }
}

/// Async over TLS with a password: `aio::PubSub` in both protocols
/// receives a multiplexed publisher's messages in order, and RESP3
/// pushes arrive on a multiplexed connection's push sender.
#[tokio::test]
async fn tls_async_pubsub_and_resp3_pushes() {
    for resp3 in [false, true] {
        let server = azure_like();
        let client = tls_client(url(&server, resp3), server.ca_pem()).expect("valid url");
        async_pubsub_checks(&client).await;
    }

    let server = azure_like();
    let client = tls_client(url(&server, true), server.ca_pem()).expect("valid url");
    let (mut con, mut rx) = push_connection(&client).await;
    con.subscribe("alerts").await.expect("subscribe");
    con.psubscribe("al*").await.expect("psubscribe");
    assert_eq!(con.publish("alerts", "fire").await.expect("publish"), 2);
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let push = next_push(&mut rx).await;
        match push.kind {
            PushKind::Message => {
                assert_eq!(push.data, bulks(&["alerts", "fire"]));
                kinds.push("message");
            }
            PushKind::PMessage => {
                assert_eq!(push.data, bulks(&["al*", "alerts", "fire"]));
                kinds.push("pmessage");
            }
            _ => {}
        }
    }
    assert_eq!(kinds, ["message", "pmessage"]);
}

/// Connects a redis-rs client to `server` over TLS.
fn tls_connection(server: &TestServer) -> redis::Connection {
    let client = tls_client(server.url(), server.ca_pem()).expect("valid url");
    let con = client.get_connection_with_timeout(WAIT).expect("connect");
    con.set_read_timeout(Some(WAIT)).expect("timeout");
    con
}

/// Message `n` published over TLS arrives at `pubsub`, subscribed to `w`
/// over TLS.
#[track_caller]
fn still_receives(pubsub: &mut redis::PubSub<'_>, publisher: &mut redis::Connection, n: u32) {
    let payload = format!("still here {n}");
    let receivers: i64 = publisher.publish("w", &payload).expect("publish");
    assert_eq!(receivers, 1);
    let msg = pubsub.get_message().expect("message");
    assert_eq!(msg.get_payload::<String>().expect("payload"), payload);
}

/// Each TLS failure is an error for the redis-rs client that meets it,
/// returned within the connection timeout, and costs nothing else: a
/// client that trusts another CA, one that speaks plaintext to the TLS
/// port, one with the wrong password, and one whose server presents an
/// expired certificate. Other TLS clients keep receiving throughout.
#[test]
fn tls_failures_are_errors_for_that_client_only() {
    let server = azure_like();
    let mut subscriber = tls_connection(&server);
    let mut witness = subscriber.as_pubsub();
    witness.subscribe("w").expect("subscribe");
    let mut publisher = tls_connection(&server);
    still_receives(&mut witness, &mut publisher, 1);

    let other = tls::Ca::new("another CA");
    let error = tls_client(server.url(), other.pem())
        .expect("valid url")
        .get_connection_with_timeout(WAIT)
        .err()
        .expect("a server from an untrusted CA was accepted");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
    still_receives(&mut witness, &mut publisher, 2);

    let plaintext = format!("redis://:{ACCESS_KEY}@{}", server.local_addr());
    let error = redis::Client::open(plaintext)
        .expect("valid url")
        .get_connection_with_timeout(WAIT)
        .err()
        .expect("plaintext to the TLS port was answered");
    assert!(!error.is_timeout(), "{error}");
    still_receives(&mut witness, &mut publisher, 3);

    let wrong_key = server.url().replace(ACCESS_KEY, "wrong-key");
    let error = tls_client(wrong_key, server.ca_pem())
        .expect("valid url")
        .get_connection_with_timeout(WAIT)
        .err()
        .expect("a wrong password was accepted");
    assert_eq!(
        error.kind(),
        redis::ErrorKind::AuthenticationFailed,
        "{error}"
    );
    still_receives(&mut witness, &mut publisher, 4);
    // The refused clients' connections close on their own schedule: the
    // server sees the last one go a moment after that client gave up.
    let deadline = std::time::Instant::now() + WAIT;
    while server.clients().len() > 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(server.clients().len(), 2, "only the witness's connections");

    // An expired server certificate: refused by redis-rs, while a client
    // whose clock says the certificate is still valid keeps receiving.
    let ca = tls::Ca::new("ca");
    let identity = ca.expired_server();
    let expired = TestServer::with(
        Server::builder()
            .tls(TlsConfig::from_pem(&identity.cert_pem, &identity.key_pem).expect("identity")),
    );
    let addr = expired.local_addr();
    let mut old = raw::RawConn::connect_tls(
        addr,
        tls::client_config_at(ca.pem(), tls::IN_2000),
        tls::loopback_name(),
    );
    old.send(&raw::encode(&[b"SUBSCRIBE", b"w"]));
    old.read_until_suffix(b":1\r\n");
    let error = tls_client(format!("rediss://{addr}"), ca.pem())
        .expect("valid url")
        .get_connection_with_timeout(WAIT)
        .err()
        .expect("an expired certificate was accepted");
    assert!(error.to_string().contains("expired"), "{error}");
    assert_eq!(expired.broker().publish("w", "after"), 1);
    old.read_until_suffix(b"$5\r\nafter\r\n");
    assert_eq!(expired.clients().len(), 1);
}
