//! Bridges to a TLS-only `redis-server` through `rediss://` URLs, trusting
//! the private CA that signed the server's certificate: brokers exchange
//! messages as over plain TCP, with a client certificate where the server
//! requires one; a CA that did not sign the server's certificate, a
//! missing password or client certificate, or an unreadable PEM fail
//! cleanly.
//!
//! The certificates are tannoy-server's fixed test files
//! (`server/tests/data/tls`, made by its `make.sh`): `ca.crt`, and
//! `server.crt` for 127.0.0.1 signed by it.

#[path = "support/redis.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::{PATIENCE, RedisServer};
use tannoy::Broker;
use tannoy_redis::{Bridge, BridgeBuilder, Error, ErrorKind};

/// The password the tests set on the server.
const PASSWORD: &str = "s3cret";

/// The directory of the test certificates.
fn tls_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../server/tests/data/tls")
}

/// One of the test certificate files.
fn read(name: &str) -> Vec<u8> {
    let path = tls_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `rediss://:password@127.0.0.1:port` for `server`.
fn url_with_password(server: &RedisServer) -> String {
    format!("rediss://:{PASSWORD}@127.0.0.1:{}", server.port())
}

/// A TLS-only server that requires [`PASSWORD`], or `None` when skipped.
fn tls_server() -> Option<RedisServer> {
    let server = RedisServer::start_tls(&tls_dir(), &[])?;
    server.query::<()>(
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("requirepass")
            .arg(PASSWORD),
    );
    Some(server)
}

/// A builder for `broker`, with short waits.
fn builder(url: String, broker: &Broker) -> BridgeBuilder {
    Bridge::builder()
        .url(url)
        .broker(broker.clone())
        .connect_timeout(Duration::from_secs(5))
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(200))
}

/// Starts `builder`, within a bounded wait.
async fn start(builder: BridgeBuilder) -> Result<Bridge, Error> {
    tokio::time::timeout(PATIENCE, builder.start())
        .await
        .expect("start() returns in time")
}

/// Two brokers, each bridged over TLS with a password to the same server,
/// trusting the private CA: a publish through one bridge reaches a local
/// subscriber of the other broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brokers_exchange_over_tls_trusting_a_private_ca() {
    let Some(server) = tls_server() else {
        return;
    };
    let (a, b) = (Broker::new(), Broker::new());
    let bridge_a =
        start(builder(url_with_password(&server), &a).tls_ca_certificate(read("ca.crt")))
            .await
            .expect("the bridge to a TLS server starts");
    let bridge_b =
        start(builder(url_with_password(&server), &b).tls_ca_certificate(read("ca.crt")))
            .await
            .expect("the bridge to a TLS server starts");

    let mut sub = b.subscriber();
    sub.subscribe(["secure:news"]);
    bridge_b.sync().await.expect("subscribed upstream over TLS");

    let receivers = bridge_a
        .publish("secure:news", "over tls")
        .await
        .expect("the publish goes through TLS");
    assert_eq!(receivers, 1, "one upstream subscription: broker b's bridge");
    let msg = tokio::time::timeout(PATIENCE, sub.recv_async())
        .await
        .expect("the message arrives in time")
        .expect("the subscriber is open");
    assert_eq!(msg.channel(), "secure:news");
    assert_eq!(msg.payload(), "over tls");

    bridge_a.shutdown().await;
    bridge_b.shutdown().await;
}

/// A bridge that trusts a root which did not sign the server's certificate
/// (the server's own certificate, not a CA) fails its first connection
/// with [`ErrorKind::Connect`], in bounded time and without a panic; so
/// does one with the right CA but no password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_or_a_missing_password_fails_to_connect() {
    let Some(server) = tls_server() else {
        return;
    };
    let broker = Broker::new();

    let wrong_root = builder(url_with_password(&server), &broker)
        .tls_ca_certificate(read("server.crt"))
        .connect_timeout(Duration::from_secs(2));
    let err = start(wrong_root)
        .await
        .expect_err("a server certificate no trusted root signed");
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(err.to_string().contains("certificate"), "{err} says why");

    let no_password = builder(server.url(), &broker)
        .tls_ca_certificate(read("ca.crt"))
        .connect_timeout(Duration::from_secs(2));
    let err = start(no_password)
        .await
        .expect_err("a server that requires a password");
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");

    // The server is fine: the right CA and password still connect.
    let bridge =
        start(builder(url_with_password(&server), &broker).tls_ca_certificate(read("ca.crt")))
            .await
            .expect("the bridge starts");
    bridge.shutdown().await;
}

/// A server that requires client certificates (mutual TLS) accepts a
/// bridge presenting one its CA signed, and refuses one presenting none.
/// The server's certificate doubles as the client's: the CA signed it for
/// client authentication too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate() {
    let Some(server) = RedisServer::start_tls(&tls_dir(), &["--tls-auth-clients", "yes"]) else {
        return;
    };
    let broker = Broker::new();

    let without = builder(server.url(), &broker)
        .tls_ca_certificate(read("ca.crt"))
        .connect_timeout(Duration::from_secs(2));
    let err = start(without)
        .await
        .expect_err("a server that requires a client certificate");
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");

    let with = builder(server.url(), &broker)
        .tls_ca_certificate(read("ca.crt"))
        .tls_client_certificate(read("server.crt"), read("server.key"));
    let bridge = start(with)
        .await
        .expect("the bridge presenting a certificate starts");
    let mut sub = broker.subscriber();
    sub.subscribe(["mtls"]);
    bridge.sync().await.expect("subscribed upstream");
    assert_eq!(server.numsub("mtls"), 1);
    bridge.publish("mtls", "hello").await.expect("published");
    let msg = tokio::time::timeout(PATIENCE, sub.recv_async())
        .await
        .expect("the message arrives in time")
        .expect("the subscriber is open");
    assert_eq!(msg.payload(), "hello");
    bridge.shutdown().await;
}

/// Certificates the bridge cannot use are configuration errors, reported
/// by `start()` before any connection: text with no certificate, a
/// certificate block that is not one, a client key that is not a key, and
/// certificates for a URL without TLS.
#[tokio::test(flavor = "current_thread")]
async fn unusable_certificates_are_configuration_errors() {
    let broker = Broker::new();
    // Nothing listens on port 1: were anything tried, it would fail with
    // Connect, not InvalidConfig.
    let url = || "rediss://127.0.0.1:1".to_owned();
    let cases: [(&str, BridgeBuilder); 4] = [
        (
            "no certificate",
            builder(url(), &broker).tls_ca_certificate("not a certificate"),
        ),
        (
            "a malformed certificate",
            builder(url(), &broker).tls_ca_certificate(
                "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            ),
        ),
        (
            "a client key that is no key",
            builder(url(), &broker)
                .tls_ca_certificate(read("ca.crt"))
                .tls_client_certificate(read("server.crt"), "no key"),
        ),
        (
            "a URL without TLS",
            builder("redis://127.0.0.1:1".to_owned(), &broker).tls_ca_certificate(read("ca.crt")),
        ),
    ];
    for (what, builder) in cases {
        let err = start(builder).await.expect_err(what);
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{what}: {err}");
        assert!(err.redis_error().is_some(), "{what}: {err} says why");
    }
}
