//! TLS listeners, through raw TLS connections: pub/sub over TLS, plaintext
//! and TLS listeners on one broker, `requirepass` identical on both,
//! mutual TLS, and handshakes that fail (plaintext, garbage, an untrusted
//! or expired certificate, a client that stalls) costing one connection
//! only while a witness keeps receiving.

#[path = "support/redis.rs"]
mod redis;
#[path = "support/tls.rs"]
mod tls;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use redis::{RawConn, encode};
use tannoy_server::{AuthClients, Server, TestServer, TlsConfig, TlsErrorKind};
use tls::{Ca, IN_2000, Identity, client_config, client_config_at, loopback_name};

/// How long any one wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);

/// A TLS connection to `addr` trusting `ca_pem`.
fn connect(addr: SocketAddr, ca_pem: &str) -> RawConn {
    RawConn::connect_tls(addr, client_config(ca_pem, None), loopback_name())
}

/// A TLS connection presenting `identity`, or the error that refused it
/// (during the handshake, or, in TLS 1.3, on the first exchange after it,
/// which is when a client learns that its certificate was refused).
fn try_mutual(
    addr: SocketAddr,
    ca_pem: &str,
    identity: Option<&Identity>,
) -> Result<RawConn, String> {
    let mut conn = RawConn::try_connect_tls(addr, client_config(ca_pem, identity), loopback_name())
        .map_err(|e| e.to_string())?;
    conn.try_send(b"PING\r\n").map_err(|e| e.to_string())?;
    let reply = conn.read_until_suffix(b"\r\n");
    if reply == b"+PONG\r\n" {
        Ok(conn)
    } else {
        Err(format!(
            "refused after the handshake: {:?}",
            String::from_utf8_lossy(&reply)
        ))
    }
}

/// A subscribed witness over TLS.
fn witness(addr: SocketAddr, ca_pem: &str) -> RawConn {
    let mut conn = connect(addr, ca_pem);
    conn.send(&encode(&[b"SUBSCRIBE", b"w"]));
    conn.read_until_suffix(b":1\r\n");
    conn
}

/// The witness receives a publish to `w`.
#[track_caller]
fn witness_works(server: &TestServer, witness: &mut RawConn, n: u32) {
    let payload = format!("still here {n}");
    assert_eq!(server.broker().publish("w", payload.clone()), 1);
    let frame = format!("${}\r\n{payload}\r\n", payload.len());
    let got = witness.read_until_suffix(frame.as_bytes());
    assert!(got.ends_with(frame.as_bytes()), "{got:?}");
}

/// A TLS configuration for `identity`.
fn config(identity: &Identity) -> TlsConfig {
    TlsConfig::from_pem(&identity.cert_pem, &identity.key_pem).expect("a valid identity")
}

/// Reads from a raw socket until it closes; true if it closed (EOF or a
/// reset) within [`WAIT`].
fn closes(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// `TestServer::start_tls`: a `rediss://` URL, and subscribe / publish /
/// psubscribe over TLS, with a large payload and a burst of small ones
/// arriving whole (the TLS stream is flushed when the output empties).
#[test]
fn pubsub_over_tls() {
    let server = TestServer::start_tls();
    assert_eq!(server.url(), format!("rediss://{}", server.local_addr()));
    assert_eq!(server.tls_local_addr(), Some(server.local_addr()));
    let mut sub = connect(server.local_addr(), server.ca_pem());
    let mut publisher = connect(server.local_addr(), server.ca_pem());
    sub.send(&encode(&[b"SUBSCRIBE", b"news"]));
    assert_eq!(
        sub.read_until_suffix(b":1\r\n"),
        b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
    );
    sub.send(&encode(&[b"PSUBSCRIBE", b"n*"]));
    sub.read_until_suffix(b":2\r\n");
    publisher.send(&encode(&[b"PUBLISH", b"news", b"hello"]));
    assert_eq!(publisher.read_until_suffix(b"\r\n"), b":2\r\n");
    assert_eq!(
        sub.read_until_suffix(b"$2\r\nn*\r\n$4\r\nnews\r\n$5\r\nhello\r\n"),
        b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n\
          *4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$5\r\nhello\r\n"
    );
    sub.send(&encode(&[b"PUNSUBSCRIBE"]));
    sub.read_until_suffix(b":1\r\n");
    let big = vec![b'x'; 1 << 20];
    publisher.send(&encode(&[b"PUBLISH", b"news", &big]));
    assert_eq!(publisher.read_until_suffix(b"\r\n"), b":1\r\n");
    let mut expected = b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$1048576\r\n".to_vec();
    expected.extend_from_slice(&big);
    expected.extend_from_slice(b"\r\n");
    assert!(
        sub.read_until_suffix(b"x\r\n") == expected,
        "the large message arrived altered"
    );
    for i in 0..500 {
        server.broker().publish("news", format!("m{i}"));
    }
    let last = sub.read_until_suffix(b"$4\r\nm499\r\n");
    let count = last.windows(9).filter(|w| w == b"$7\r\nmessa").count();
    assert_eq!(count, 500);
}

/// A server with a plaintext and a TLS listener: one broker, each
/// client sees the other's publishes, and `CONFIG GET` reports both
/// ports.
#[test]
fn plaintext_and_tls_listeners_share_one_broker() {
    let server = TestServer::with_tls(
        Server::builder()
            .bind("127.0.0.1:0")
            .tls_bind("127.0.0.1:0"),
    );
    let tls_addr = server.tls_local_addr().expect("a TLS listener");
    assert_ne!(tls_addr, server.local_addr());
    assert_eq!(server.url(), format!("redis://{}", server.local_addr()));
    assert_eq!(server.tls_url(), Some(format!("rediss://{tls_addr}")));
    let mut plain = RawConn::connect(server.local_addr());
    let mut secure = connect(tls_addr, server.ca_pem());
    plain.send(&encode(&[b"SUBSCRIBE", b"c"]));
    plain.read_until_suffix(b":1\r\n");
    secure.send(&encode(&[b"PUBLISH", b"c", b"from tls"]));
    assert_eq!(secure.read_until_suffix(b"\r\n"), b":1\r\n");
    plain.read_until_suffix(b"$8\r\nfrom tls\r\n");
    let mut sub = connect(tls_addr, server.ca_pem());
    sub.send(&encode(&[b"SUBSCRIBE", b"d"]));
    sub.read_until_suffix(b":1\r\n");
    let mut publisher = RawConn::connect(server.local_addr());
    publisher.send(&encode(&[b"PUBLISH", b"d", b"from tcp"]));
    assert_eq!(publisher.read_until_suffix(b"\r\n"), b":1\r\n");
    sub.read_until_suffix(b"$8\r\nfrom tcp\r\n");
    secure.send(&encode(&[b"CONFIG", b"GET", b"*port"]));
    let (port, tls_port) = (
        server.local_addr().port().to_string(),
        tls_addr.port().to_string(),
    );
    let expected = format!(
        "*4\r\n$4\r\nport\r\n${}\r\n{port}\r\n$8\r\ntls-port\r\n${}\r\n{tls_port}\r\n",
        port.len(),
        tls_port.len()
    );
    assert_eq!(
        String::from_utf8_lossy(&secure.read_until_suffix(format!("{tls_port}\r\n").as_bytes())),
        expected
    );
}

/// `requirepass`, `AUTH password`, `AUTH default password`, `HELLO ...
/// AUTH` and `RESET`: the same bytes over TLS as over plaintext.
#[test]
fn auth_is_identical_over_tls_and_plaintext() {
    let server = TestServer::with_tls(
        Server::builder()
            .bind("127.0.0.1:0")
            .tls_bind("127.0.0.1:0")
            .requirepass("access-key"),
    );
    assert!(
        server
            .tls_url()
            .expect("TLS")
            .starts_with("rediss://:access-key@127.0.0.1:")
    );
    let tls_addr = server.tls_local_addr().expect("a TLS listener");
    let mut outputs = Vec::new();
    for mut conn in [
        RawConn::connect(server.local_addr()),
        connect(tls_addr, server.ca_pem()),
    ] {
        let mut output = Vec::new();
        for args in [
            &["PING"][..],
            &["PUBLISH", "c", "m"],
            &["AUTH", "wrong"],
            &["AUTH", "default", "wrong"],
            &["HELLO", "3", "AUTH", "default", "wrong"],
            &["AUTH", "access-key"],
            &["PING"],
            &["RESET"],
            &["PING"],
            &["AUTH", "default", "access-key"],
            &["PUBLISH", "c", "m"],
            &["RESET"],
            &[
                "HELLO",
                "3",
                "AUTH",
                "default",
                "access-key",
                "SETNAME",
                "azure",
            ],
            &["CLIENT", "GETNAME"],
            &["PING"],
        ] {
            conn.send(&encode(
                &args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>(),
            ));
            output.push(conn.read_for(Duration::from_millis(150)));
        }
        outputs.push(output);
    }
    // HELLO's map carries the client id, which differs between the two.
    let mask = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes).into_owned();
        match text.find("$2\r\nid\r\n:") {
            Some(at) => {
                let rest = &text[at + 9..];
                let end = rest.find("\r\n").unwrap_or(rest.len());
                format!("{}ID{}", &text[..at + 9], &rest[end..])
            }
            None => text,
        }
    };
    for (plain, secure) in outputs[0].iter().zip(&outputs[1]) {
        assert_eq!(mask(secure), mask(plain));
    }
    assert_eq!(outputs[1][0], b"-NOAUTH Authentication required.\r\n");
    assert_eq!(outputs[1][5], b"+OK\r\n");
    assert_eq!(outputs[1][9], b"+OK\r\n");
    assert_eq!(outputs[1][13], b"$5\r\nazure\r\n");
}

/// Failed handshakes: plaintext on the TLS port, garbage, a client that
/// trusts another CA, a client that stalls half-way through its hello.
/// Each costs its own connection only, ends within the handshake
/// timeout, and never becomes a client; the witness keeps receiving.
#[test]
fn failed_handshakes_cost_one_connection_only() {
    let ca = Ca::new("the server's CA");
    let tls = config(&ca.server()).handshake_timeout(Duration::from_millis(300));
    let server = TestServer::with(Server::builder().tls(tls));
    let addr = server.local_addr();
    let mut w = witness(addr, ca.pem());
    let mut n = 0;

    // Plaintext RESP on the TLS port.
    let mut plain = TcpStream::connect(addr).expect("connect");
    plain.write_all(b"*1\r\n$4\r\nPING\r\n").expect("send");
    assert!(closes(&mut plain), "plaintext was not refused");
    n += 1;
    witness_works(&server, &mut w, n);

    // Garbage, and a valid-looking record header followed by garbage.
    for seed in 1..4u64 {
        let mut junk = TcpStream::connect(addr).expect("connect");
        let mut state = seed;
        let mut bytes: Vec<u8> = (0..64 * 1024)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect();
        if seed == 2 {
            bytes[..5].copy_from_slice(&[0x16, 0x03, 0x01, 0x40, 0x00]);
        }
        let _ = junk.write_all(&bytes);
        assert!(closes(&mut junk), "garbage was not refused");
        n += 1;
        witness_works(&server, &mut w, n);
    }

    // A client that trusts another CA refuses the server.
    let other = Ca::new("another CA");
    let refused = RawConn::try_connect_tls(addr, client_config(other.pem(), None), loopback_name());
    let error = refused.expect_err("a certificate from an untrusted CA was accepted");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
    n += 1;
    witness_works(&server, &mut w, n);

    // A client that sends half a ClientHello and stops: dropped at the
    // handshake timeout.
    let mut stalled = TcpStream::connect(addr).expect("connect");
    stalled
        .write_all(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ])
        .expect("send");
    assert!(closes(&mut stalled), "a stalled handshake was kept");
    // And one that sends nothing at all.
    let mut silent = TcpStream::connect(addr).expect("connect");
    assert!(closes(&mut silent), "a silent connection was kept");
    n += 1;
    witness_works(&server, &mut w, n);

    assert_eq!(server.clients().len(), 1, "only the witness is a client");
}

/// A server whose certificate has expired: a client that checks it
/// against today's date refuses it (rustls reports it as expired), and
/// that costs its own connection only. The witness, whose clock says
/// 2000 when the certificate was valid, verifies it fully and keeps
/// receiving.
#[test]
fn expired_certificate_is_refused_while_others_receive() {
    let ca = Ca::new("ca");
    let server = TestServer::with(Server::builder().tls(config(&ca.expired_server())));
    let addr = server.local_addr();
    let mut w = RawConn::connect_tls(addr, client_config_at(ca.pem(), IN_2000), loopback_name());
    w.send(&encode(&[b"SUBSCRIBE", b"w"]));
    w.read_until_suffix(b":1\r\n");
    witness_works(&server, &mut w, 1);
    for n in 2..4 {
        let refused =
            RawConn::try_connect_tls(addr, client_config(ca.pem(), None), loopback_name());
        let error = refused.expect_err("an expired certificate was accepted");
        assert!(error.to_string().contains("certificate expired"), "{error}");
        witness_works(&server, &mut w, n);
    }
    assert_eq!(server.clients().len(), 1, "only the witness is a client");
}

/// At most `maxclients` handshakes run at once: connections beyond that
/// are closed at once instead of holding memory.
#[test]
fn handshakes_in_progress_are_bounded() {
    let ca = Ca::new("ca");
    let server = TestServer::with(Server::builder().maxclients(2).tls(config(&ca.server())));
    let addr = server.local_addr();
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    // Let the two be accepted before the rest arrive.
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..3 {
        let mut extra = TcpStream::connect(addr).expect("connect");
        assert!(closes(&mut extra), "a handshake past maxclients was kept");
    }
    drop(held);
    // Once those finish, a real client gets in.
    let mut conn = None;
    for _ in 0..50 {
        match try_mutual(addr, ca.pem(), None) {
            Ok(c) => {
                conn = Some(c);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    assert!(
        conn.is_some(),
        "no client got in after the handshakes ended"
    );
}

/// `maxclients` over TLS: the refusal is Redis's error, sent over TLS.
#[test]
fn maxclients_refusal_is_sent_over_tls() {
    let server = TestServer::with_tls(Server::builder().maxclients(1));
    let mut first = connect(server.local_addr(), server.ca_pem());
    first.send(b"PING\r\n");
    first.read_until_suffix(b"+PONG\r\n");
    let mut second = connect(server.local_addr(), server.ca_pem());
    assert_eq!(
        second.read_until_suffix(b"reached\r\n"),
        b"-ERR max number of clients reached\r\n"
    );
}

/// QUIT over TLS: `+OK`, then the server closes the TLS session cleanly
/// (`close_notify`, which a client reads as end of stream).
#[test]
fn quit_over_tls_closes_cleanly() {
    let server = TestServer::start_tls();
    let mut conn = connect(server.local_addr(), server.ca_pem());
    conn.send(b"QUIT\r\n");
    assert_eq!(conn.read_to_close(), b"+OK\r\n");
    assert!(conn.is_closed());
}

/// Restarting a TLS server listens for TLS again on the same port.
#[test]
fn restart_listens_for_tls_again() {
    let server = TestServer::start_tls();
    let url = server.url();
    let mut conn = connect(server.local_addr(), server.ca_pem());
    conn.send(&encode(&[b"SUBSCRIBE", b"c"]));
    conn.read_until_suffix(b":1\r\n");
    server.restart().expect("restart");
    assert_eq!(conn.read_to_close(), b"");
    assert_eq!(server.url(), url);
    let mut again = connect(server.local_addr(), server.ca_pem());
    again.send(b"PING\r\n");
    assert_eq!(again.read_until_suffix(b"\r\n"), b"+PONG\r\n");
}

/// Mutual TLS (`tls-auth-clients yes`): a client certificate signed by
/// the CA gets in; none, an expired one, or one from another CA is
/// refused, while an admitted client keeps receiving. With `optional`,
/// no certificate is fine but a bad one is still refused.
#[test]
fn mutual_tls() {
    let ca = Ca::new("server CA");
    let clients = Ca::new("client CA");
    let stranger = Ca::new("stranger CA");
    let late = clients.expired_client("late");
    let trusted = clients.pem();

    for auth in [AuthClients::Yes, AuthClients::Optional] {
        let tls = config(&ca.server())
            .client_ca_pem(trusted)
            .expect("CA")
            .auth_clients(auth);
        let server = TestServer::with(Server::builder().tls(tls));
        let addr = server.local_addr();
        let good = clients.client("good");
        let mut admitted =
            try_mutual(addr, ca.pem(), Some(&good)).expect("a valid client certificate");
        admitted.send(&encode(&[b"SUBSCRIBE", b"w"]));
        admitted.read_until_suffix(b":1\r\n");
        let none = try_mutual(addr, ca.pem(), None);
        assert_eq!(
            none.is_ok(),
            auth == AuthClients::Optional,
            "{auth}: {:?}",
            none.err()
        );
        let foreign = stranger.client("foreign");
        assert!(
            try_mutual(addr, ca.pem(), Some(&foreign)).is_err(),
            "{auth}: another CA's client"
        );
        assert!(
            try_mutual(addr, ca.pem(), Some(&late)).is_err(),
            "{auth}: an expired client certificate"
        );
        witness_works(&server, &mut admitted, 1);
    }
}

/// Settings that cannot work are refused with what is wrong.
#[test]
fn unusable_settings_are_refused() {
    let ca = Ca::new("ca");
    let a = ca.server();
    let b = ca.server();
    let mismatched =
        TlsConfig::from_pem(&a.cert_pem, &b.key_pem).expect_err("a key of another certificate");
    assert_eq!(mismatched.kind(), TlsErrorKind::Rejected);
    let no_key = TlsConfig::from_pem(&a.cert_pem, &a.cert_pem).expect_err("no key");
    assert_eq!(no_key.kind(), TlsErrorKind::Pem);
    let no_ca = TlsConfig::from_pem(&a.cert_pem, &a.key_pem)
        .expect("valid")
        .client_ca_pem("nothing here")
        .expect_err("no CA");
    assert_eq!(no_ca.kind(), TlsErrorKind::Pem);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let needs_ca = Server::builder()
            .tls(config(&a).auth_clients(AuthClients::Yes))
            .start()
            .await
            .expect_err("client certificates required with no CA");
        assert_eq!(needs_ca.kind(), std::io::ErrorKind::InvalidInput);
        assert!(
            needs_ca.to_string().contains("needs a CA certificate"),
            "{needs_ca}"
        );
        let needs_tls = Server::builder()
            .tls_bind("127.0.0.1:0")
            .start()
            .await
            .expect_err("a TLS address without TLS settings");
        assert_eq!(needs_tls.kind(), std::io::ErrorKind::InvalidInput);
    });
}
