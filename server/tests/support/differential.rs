// The cases of the differential tests, included by `differential.rs`
// (plaintext) and `differential_tls.rs` (TLS), which declare the support
// modules `redis`, `resp` and `tls`, and `TLS`: whether both servers are
// reached over TLS.

use std::time::Duration;

use redis::{RawConn, RedisServer, encode};
use tannoy_server::{Server, TestServer, TlsConfig};

/// One server pair and connections to each.
struct Pair {
    /// The real server.
    _redis: RedisServer,
    /// Ours.
    _tannoy: TestServer,
    /// The certificate files redis-server was started with (over TLS).
    _files: Option<tls::TempDir>,
    /// Connections to redis-server.
    r: Vec<RawConn>,
    /// The same connections to tannoy-server.
    t: Vec<RawConn>,
    /// The next sentinel token.
    token: u64,
}

/// How long a step that expects no sentinel reply (replies off, a
/// transaction being queued) waits for output to stop.
const QUIET: Duration = Duration::from_millis(150);

impl Pair {
    /// Both servers with `conns` connections each; `None` to skip.
    fn new(conns: usize) -> Option<Pair> {
        Self::with(conns, &[], Server::builder())
    }

    /// As [`new`](Self::new), with redis-server arguments and a matching
    /// tannoy-server configuration.
    fn with(
        conns: usize,
        redis_args: &[&str],
        builder: tannoy_server::ServerBuilder,
    ) -> Option<Pair> {
        if TLS {
            return Self::with_tls(conns, redis_args, builder);
        }
        let redis = RedisServer::start_with(redis_args)?;
        let tannoy = TestServer::with(builder);
        let r = (0..conns).map(|_| RawConn::connect(redis.addr())).collect();
        let t = (0..conns)
            .map(|_| RawConn::connect(tannoy.local_addr()))
            .collect();
        Some(Pair {
            _redis: redis,
            _tannoy: tannoy,
            _files: None,
            r,
            t,
            token: 0,
        })
    }

    /// [`with`](Self::with) over TLS: redis-server with `--tls-port` and
    /// tannoy-server serving TLS, both with one certificate from a CA
    /// made for the pair, and every connection a TLS client that trusts
    /// that CA alone.
    fn with_tls(
        conns: usize,
        redis_args: &[&str],
        builder: tannoy_server::ServerBuilder,
    ) -> Option<Pair> {
        let ca = tls::Ca::new("differential CA");
        let identity = ca.server();
        let files = tls::TempDir::new("differential");
        let paths = [
            files.write("server.crt", &identity.cert_pem),
            files.write("server.key", &identity.key_pem),
            files.write("ca.crt", ca.pem()),
        ]
        .map(|p| p.display().to_string());
        let mut args = redis_args.to_vec();
        args.extend([
            "--tls-cert-file",
            &paths[0],
            "--tls-key-file",
            &paths[1],
            "--tls-ca-cert-file",
            &paths[2],
            "--tls-auth-clients",
            "no",
        ]);
        let redis = RedisServer::start_tls(&args)?;
        let config =
            TlsConfig::from_pem(&identity.cert_pem, &identity.key_pem).expect("an identity");
        let tannoy = TestServer::with(builder.tls(config));
        let client = tls::client_config(ca.pem(), None);
        let connect = |addr| RawConn::connect_tls(addr, client.clone(), tls::loopback_name());
        let redis_addr = redis.tls_addr().expect("redis-server's TLS port");
        let r = (0..conns).map(|_| connect(redis_addr)).collect();
        let t = (0..conns).map(|_| connect(tannoy.local_addr())).collect();
        Some(Pair {
            _redis: redis,
            _tannoy: tannoy,
            _files: Some(files),
            r,
            t,
            token: 0,
        })
    }

    /// Sends `bytes` then a sentinel on connection `i` of both servers and
    /// returns both outputs up to the sentinel's reply (masked).
    fn exchange(&mut self, i: usize, bytes: &[u8]) -> (Vec<u8>, Vec<u8>) {
        self.token += 1;
        let token = format!("sentinel-{}", self.token);
        let mut request = bytes.to_vec();
        request.extend_from_slice(&encode(&[b"PING", token.as_bytes()]));
        let suffix = format!("{token}\r\n");
        let mut outputs = Vec::new();
        for conn in [&mut self.r[i], &mut self.t[i]] {
            conn.send(&request);
            let mut output = conn.read_until_suffix(suffix.as_bytes());
            // Drop the sentinel's own reply (its framing depends on mode).
            let cut = sentinel_start(&output, &token);
            output.truncate(cut);
            outputs.push(mask_ids(&output));
        }
        let t = outputs.pop().unwrap_or_default();
        let r = outputs.pop().unwrap_or_default();
        (r, t)
    }

    /// [`exchange`](Self::exchange), asserting both outputs are the same
    /// bytes; returns them.
    #[track_caller]
    fn step(&mut self, i: usize, bytes: &[u8]) -> Vec<u8> {
        let (r, t) = self.exchange(i, bytes);
        assert_same(&r, &t, bytes);
        r
    }

    /// A command given as arguments, through [`step`](Self::step).
    #[track_caller]
    fn cmd(&mut self, i: usize, args: &[&str]) -> Vec<u8> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.step(i, &encode(&args))
    }

    /// Sends `bytes` and compares what arrives until the output has been
    /// quiet for a while (for steps with no sentinel reply).
    #[track_caller]
    fn quiet(&mut self, i: usize, bytes: &[u8]) -> Vec<u8> {
        self.send_both(i, bytes, |conn| mask_ids(&conn.read_for(QUIET)))
    }

    /// Sends `bytes`, which must make both servers close the connection,
    /// and compares everything sent before the close.
    #[track_caller]
    fn closing(&mut self, i: usize, bytes: &[u8]) -> Vec<u8> {
        self.send_both(i, bytes, |conn| {
            let output = conn.read_to_close();
            assert!(conn.is_closed());
            output
        })
    }

    /// Sends `bytes` on connection `i` of redis-server, then of
    /// tannoy-server, reads each one's output with `read`, and asserts the
    /// outputs are the same; returns them.
    #[track_caller]
    fn send_both(
        &mut self,
        i: usize,
        bytes: &[u8],
        mut read: impl FnMut(&mut RawConn) -> Vec<u8>,
    ) -> Vec<u8> {
        let mut outputs = Vec::new();
        for conn in [&mut self.r[i], &mut self.t[i]] {
            conn.send(bytes);
            outputs.push(read(conn));
        }
        assert_same(&outputs[0], &outputs[1], bytes);
        outputs.swap_remove(0)
    }
}

/// Asserts that tannoy-server's output `t` is redis-server's `r`, shown as
/// text with the request `bytes` that produced them when it is not.
#[track_caller]
fn assert_same(r: &[u8], t: &[u8], bytes: &[u8]) {
    assert_eq!(
        String::from_utf8_lossy(t),
        String::from_utf8_lossy(r),
        "for {:?}",
        String::from_utf8_lossy(bytes)
    );
}

/// Where the sentinel's reply starts in `output` (which ends with it).
fn sentinel_start(output: &[u8], token: &str) -> usize {
    let bulk = format!("${}\r\n{token}\r\n", token.len());
    let end = output.len() - bulk.len();
    // In RESP2 subscribed mode the reply is `*2 $4 pong <bulk>`.
    let pong = b"*2\r\n$4\r\npong\r\n";
    if output[..end].ends_with(pong) {
        end - pong.len()
    } else {
        end
    }
}

/// Masks client ids: the integer after `id` in `HELLO`'s map.
fn mask_ids(output: &[u8]) -> Vec<u8> {
    let key = b"$2\r\nid\r\n:";
    let mut out = Vec::new();
    let mut rest = output;
    while let Some(at) = rest.windows(key.len()).position(|w| w == key) {
        out.extend_from_slice(&rest[..at + key.len()]);
        out.extend_from_slice(b"ID");
        rest = &rest[at + key.len()..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        rest = &rest[digits..];
    }
    out.extend_from_slice(rest);
    out
}

/// Runs `case` once in RESP2 and once with every connection in RESP3.
fn both_protocols(conns: usize, case: impl Fn(&mut Pair)) {
    for resp3 in [false, true] {
        let Some(mut pair) = Pair::new(conns) else {
            return;
        };
        if resp3 {
            for i in 0..conns {
                pair.cmd(i, &["HELLO", "3"]);
            }
        }
        case(&mut pair);
    }
}

/// Subscribe, publish from elsewhere, unsubscribe: confirmations (one per
/// argument, duplicates included), messages and counts.
#[test]
fn subscribe_publish_unsubscribe() {
    both_protocols(2, |p| {
        p.cmd(0, &["SUBSCRIBE", "a", "b", "a"]);
        p.cmd(1, &["PUBLISH", "a", "hello"]);
        p.cmd(1, &["PUBLISH", "nobody", "x"]);
        p.cmd(0, &[]);
        p.cmd(0, &["PSUBSCRIBE", "a*", "a*"]);
        p.cmd(1, &["PUBLISH", "a", "twice"]);
        p.cmd(0, &[]);
        p.cmd(0, &["UNSUBSCRIBE", "nope", "a", "a"]);
        p.cmd(0, &["UNSUBSCRIBE"]);
        p.cmd(0, &["PUNSUBSCRIBE"]);
        p.cmd(0, &["PUNSUBSCRIBE"]);
        p.cmd(0, &["UNSUBSCRIBE"]);
        p.cmd(0, &["SUNSUBSCRIBE"]);
        p.cmd(0, &["PING"]);
        p.cmd(0, &["PING", "after"]);
    });
}

/// Patterns are confirmed in subscription order by a no-argument
/// PUNSUBSCRIBE, as 7.0 does.
#[test]
fn punsubscribe_all_in_subscription_order() {
    both_protocols(1, |p| {
        p.cmd(0, &["PSUBSCRIBE", "z*", "a*", "m?", "[x]"]);
        p.cmd(0, &["SUBSCRIBE", "c"]);
        p.cmd(0, &["PUNSUBSCRIBE"]);
        p.cmd(0, &["UNSUBSCRIBE"]);
    });
}

/// Shard channels: their own namespace and counts.
#[test]
fn sharded_pubsub() {
    both_protocols(3, |p| {
        p.cmd(0, &["SSUBSCRIBE", "same", "other"]);
        p.cmd(1, &["SUBSCRIBE", "same"]);
        p.cmd(1, &["PSUBSCRIBE", "*"]);
        p.cmd(2, &["SPUBLISH", "same", "S"]);
        p.cmd(2, &["PUBLISH", "same", "P"]);
        p.cmd(0, &[]);
        p.cmd(1, &[]);
        p.cmd(2, &["PUBSUB", "SHARDNUMSUB", "same", "unknown", "same"]);
        p.cmd(2, &["PUBSUB", "SHARDCHANNELS", "s*"]);
        p.cmd(2, &["PUBSUB", "NUMSUB", "same"]);
        p.cmd(0, &["SUNSUBSCRIBE", "other", "nope"]);
        p.cmd(0, &["SUNSUBSCRIBE"]);
    });
}

/// A RESP2 client in subscribed mode may only (un)subscribe, PING, QUIT
/// and RESET; errors on unknown commands and arity come first. RESP3 has
/// no such rule.
#[test]
fn subscribed_mode_rules() {
    both_protocols(1, |p| {
        p.cmd(0, &["SSUBSCRIBE", "s"]);
        p.cmd(0, &["PUBLISH", "c", "m"]);
        p.cmd(0, &["ECHO", "x"]);
        p.cmd(0, &["CLIENT", "GETNAME"]);
        p.cmd(0, &["PUBSUB", "NUMSUB"]);
        p.cmd(0, &["HELLO"]);
        p.cmd(0, &["FOO", "bar"]);
        p.cmd(0, &["PING", "a", "b"]);
        p.cmd(0, &["SUBSCRIBE"]);
        p.cmd(0, &["PING"]);
        p.cmd(0, &["RESET"]);
        p.cmd(0, &["PING"]);
        p.cmd(0, &["SUBSCRIBE", "x"]);
        p.closing(0, &encode(&[b"QUIT"]));
    });
}

/// RESET in RESP3 subscribed mode drops the subscriptions silently and
/// goes back to RESP2; HELLO 2 while subscribed makes a RESP2 subscriber.
#[test]
fn reset_and_hello_while_subscribed() {
    let Some(mut p) = Pair::new(2) else { return };
    p.cmd(0, &["HELLO", "3"]);
    p.cmd(0, &["SUBSCRIBE", "a", "b"]);
    p.cmd(0, &["RESET"]);
    p.cmd(1, &["PUBLISH", "a", "gone"]);
    p.cmd(0, &["UNSUBSCRIBE"]);
    p.cmd(0, &["HELLO", "3"]);
    p.cmd(0, &["SUBSCRIBE", "a"]);
    p.cmd(0, &["HELLO", "2"]);
    p.cmd(0, &["ECHO", "refused"]);
    p.cmd(1, &["PUBLISH", "a", "as resp2"]);
    p.cmd(0, &[]);
}

/// A RESP3 client publishing to its own channel gets the push before the
/// integer reply, as 7.0 sends them.
#[test]
fn self_publish_push_before_reply() {
    let Some(mut p) = Pair::new(1) else { return };
    p.cmd(0, &["HELLO", "3"]);
    p.cmd(0, &["SUBSCRIBE", "me"]);
    p.cmd(0, &["PSUBSCRIBE", "m*"]);
    p.cmd(0, &["PUBLISH", "me", "self"]);
    p.cmd(0, &["ECHO", "fine"]);
}

/// Introspection and its errors.
#[test]
fn pubsub_introspection() {
    both_protocols(3, |p| {
        p.cmd(0, &["SUBSCRIBE", "news.sport"]);
        p.cmd(1, &["PSUBSCRIBE", "foo*", "bar*"]);
        p.cmd(0, &["PSUBSCRIBE", "foo*", "baz*"]);
        p.cmd(2, &["PUBSUB", "CHANNELS"]);
        p.cmd(2, &["PUBSUB", "channels", "news.*"]);
        p.cmd(2, &["PUBSUB", "CHANNELS", "*"]);
        p.cmd(
            2,
            &["PUBSUB", "NUMSUB", "news.sport", "foo*", "news.sport", "x"],
        );
        p.cmd(2, &["PUBSUB", "NUMSUB"]);
        p.cmd(2, &["PUBSUB", "NUMPAT"]);
        p.cmd(2, &["PUBSUB", "SHARDNUMSUB"]);
        p.cmd(2, &["PUBSUB"]);
        p.cmd(2, &["PUBSUB", "FOO"]);
        p.cmd(2, &["PUBSUB", "CHANNELS", "a", "b"]);
        p.cmd(2, &["PUBSUB", "SHARDCHANNELS", "a", "b"]);
        p.cmd(2, &["PUBSUB", "NUMPAT", "x"]);
        p.cmd(2, &["PUBSUB", "HELP", "x"]);
        p.cmd(2, &["PUBLISH", "news.sport", "goal"]);
        p.cmd(0, &[]);
        p.cmd(2, &["PUBLISH"]);
        p.cmd(2, &["SPUBLISH", "a"]);
        p.cmd(2, &["SUBSCRIBE"]);
    });
}

/// Connection commands: PING, ECHO, HELLO, AUTH (no password), SELECT,
/// unknown commands.
#[test]
fn connection_commands() {
    both_protocols(1, |p| {
        for args in [
            &["PING"][..],
            &["ping", "x"],
            &["PING", "a", "b"],
            &["ECHO"],
            &["ECHO", "a", "b"],
            &["echo", ""],
            &["HELLO", "4"],
            &["HELLO", "x"],
            &["HELLO", "3", "foo"],
            &["HELLO", "2", "SETNAME", "a b"],
            &["HELLO", "2", "AUTH", "default"],
            &["HELLO", "2", "AUTH", "nobody", "pw"],
            &["HELLO", "2", "AUTH", "default", "anything", "SETNAME", "me"],
            &["CLIENT", "GETNAME"],
            &["AUTH", "x"],
            &["AUTH", "a", "b"],
            &["AUTH", "default", "x"],
            &["AUTH", "a", "b", "c"],
            &["SELECT", "16"],
            &["SELECT", "-1"],
            &["SELECT", "1x"],
            &["SELECT", "15"],
            &["SELECT", "0"],
            &["FOO"],
            &["FOO", "a", "b"],
            &["foo\u{1}", "\r\n"],
        ] {
            p.cmd(0, args);
        }
    });
}

/// The unknown-command error quotes at most about 128 bytes of arguments.
#[test]
fn unknown_command_truncation() {
    let Some(mut p) = Pair::new(1) else { return };
    let long = "y".repeat(200);
    let name = "N".repeat(300);
    p.cmd(0, &["NOPE", &long, "z"]);
    p.cmd(0, &["NOPE", "a", &long]);
    p.cmd(0, &[&name, "a"]);
    p.step(0, &encode(&[b"NOPE", b"a\x00b", b"\xff"]));
}

/// CLIENT subcommands whose answers do not depend on the connection.
#[test]
fn client_commands() {
    both_protocols(2, |p| {
        for args in [
            &["CLIENT", "SETNAME", "worker-1"][..],
            &["CLIENT", "GETNAME"],
            &["CLIENT", "SETNAME", "a b"],
            &["CLIENT", "SETNAME", ""],
            &["CLIENT", "GETNAME"],
            &["CLIENT"],
            &["CLIENT", "FOO"],
            &["CLIENT", "ID", "x"],
            &["CLIENT", "NO-EVICT", "on"],
            &["CLIENT", "NO-EVICT", "maybe"],
            &["CLIENT", "GETREDIR"],
            &["CLIENT", "UNPAUSE"],
            &["CLIENT", "KILL", "1.2.3.4:5"],
            &["CLIENT", "KILL", "ID", "0"],
            &["CLIENT", "KILL", "ID", "999"],
            &["CLIENT", "KILL", "USER", "bob"],
            &["CLIENT", "KILL", "TYPE", "x"],
            &["CLIENT", "KILL", "TYPE", "master"],
            &["CLIENT", "KILL", "ID", "999", "SKIPME", "maybe"],
            &["CLIENT", "KILL", "ID"],
            &["CLIENT", "KILL"],
            &["CLIENT", "LIST", "TYPE", "x"],
            &["CLIENT", "LIST", "ID", "x"],
            &["CLIENT", "LIST", "foo"],
            &["CLIENT", "LIST", "TYPE", "replica"],
            &["CLIENT", "REPLY", "maybe"],
        ] {
            p.cmd(0, args);
        }
        // Killing the other connection by type, then oneself.
        p.cmd(1, &["SUBSCRIBE", "c"]);
        p.cmd(0, &["CLIENT", "KILL", "TYPE", "pubsub"]);
        p.cmd(0, &["PUBLISH", "c", "nobody"]);
        p.closing(
            0,
            &encode(&[b"CLIENT", b"KILL", b"TYPE", b"normal", b"SKIPME", b"no"]),
        );
    });
}

/// CLIENT REPLY OFF and SKIP mute replies but not pub/sub frames.
#[test]
fn client_reply_modes() {
    both_protocols(2, |p| {
        p.quiet(0, &encode(&[b"CLIENT", b"REPLY", b"OFF"]));
        p.quiet(0, &encode(&[b"SUBSCRIBE", b"c"]));
        p.cmd(1, &["PUBLISH", "c", "heard"]);
        p.quiet(0, &encode(&[b"PING"]));
        p.quiet(0, &encode(&[b"UNSUBSCRIBE"]));
        p.quiet(0, &encode(&[b"ECHO", b"muted"]));
        p.cmd(0, &["CLIENT", "REPLY", "ON"]);
        p.quiet(0, &encode(&[b"CLIENT", b"REPLY", b"SKIP"]));
        p.quiet(0, &encode(&[b"ECHO", b"skipped"]));
        p.cmd(0, &["ECHO", "back"]);
    });
}

/// CONFIG for the settings this server has, and its errors.
#[test]
fn config_commands() {
    both_protocols(1, |p| {
        for args in [
            &["CONFIG", "GET", "maxclients"][..],
            &["CONFIG", "GET", "client-output-buffer-limit"],
            &["CONFIG", "GET", "requirepass"],
            &["CONFIG", "GET", "proto-max-bulk-len"],
            &["CONFIG", "GET", "MAXCLIENTS"],
            &["CONFIG", "GET", "no-such-parameter"],
            &["CONFIG", "GET"],
            &["CONFIG", "SET", "maxclients", "abc"],
            &["CONFIG", "SET", "maxclients", "0"],
            &["CONFIG", "SET", "foo", "bar"],
            &["CONFIG", "SET", "maxclients"],
            &["CONFIG", "SET", "maxclients", "500"],
            &["CONFIG", "GET", "maxclients"],
            &[
                "CONFIG",
                "SET",
                "client-output-buffer-limit",
                "pubsub 1mb 512kb 10",
            ],
            &["CONFIG", "GET", "client-output-buffer-limit"],
            &["CONFIG", "SET", "client-output-buffer-limit", "pubsub 1mb"],
            &["CONFIG", "SET", "client-output-buffer-limit", "xx 1 2 3"],
            &["CONFIG", "SET", "proto-max-bulk-len", "10"],
            &["CONFIG", "SET", "proto-max-bulk-len", "1mb"],
            &["CONFIG", "GET", "proto-max-bulk-len"],
            &["CONFIG", "SET", "maxclients", "10", "maxclients", "10"],
            &["CONFIG", "REWRITE"],
            &["CONFIG", "RESETSTAT"],
            &["CONFIG", "FOO"],
        ] {
            p.cmd(0, args);
        }
    });
}

/// The keyspace commands answer as an empty Redis does; COMMAND INFO
/// describes commands as Redis does.
#[test]
fn server_commands() {
    both_protocols(1, |p| {
        for args in [
            &["FLUSHALL"][..],
            &["FLUSHALL", "ASYNC"],
            &["FLUSHALL", "x"],
            &["FLUSHDB", "sync"],
            &["FLUSHDB", "sync", "x"],
            &["DBSIZE"],
            &["DBSIZE", "x"],
            &["FUNCTION", "FLUSH"],
            &["FUNCTION", "FLUSH", "x"],
            &["FUNCTION", "FLUSH", "ASYNC"],
            &["FUNCTION", "LIST"],
            &[
                "COMMAND",
                "INFO",
                "nosuch",
                "ping",
                "publish",
                "subscribe",
                "echo",
            ],
            &[
                "COMMAND",
                "INFO",
                "pubsub|channels",
                "client|list",
                "hello",
                "auth",
                "flushall",
            ],
            &[
                "COMMAND",
                "INFO",
                "config|get",
                "info",
                "multi",
                "exec",
                "select",
                "reset",
            ],
            &["COMMAND", "COUNT", "x"],
            &["COMMAND", "FOO"],
            &["COMMAND", "DOCS", "nosuch"],
            &["COMMAND", "LIST", "FILTERBY", "foo", "x"],
            &["INFO", "nosuch"],
        ] {
            p.cmd(0, args);
        }
    });
}

/// MULTI/EXEC: queuing, aborts, and 7.0's framing when queued commands
/// push (a multi-channel SUBSCRIBE; a RESP3 self-publish).
#[test]
fn transactions() {
    both_protocols(2, |p| {
        p.quiet(0, &encode(&[b"MULTI"]));
        p.quiet(0, &encode(&[b"PUBLISH", b"c", b"m"]));
        p.quiet(0, &encode(&[b"PING"]));
        p.cmd(0, &["EXEC"]);
        p.cmd(0, &["EXEC"]);
        p.cmd(0, &["DISCARD"]);
        p.cmd(0, &["WATCH", "k"]);
        p.cmd(0, &["UNWATCH"]);
        p.quiet(0, &encode(&[b"MULTI"]));
        p.quiet(0, &encode(&[b"FOO"]));
        p.quiet(0, &encode(&[b"MULTI"]));
        p.quiet(0, &encode(&[b"WATCH", b"k"]));
        p.cmd(0, &["EXEC"]);
        p.quiet(0, &encode(&[b"MULTI"]));
        p.quiet(0, &encode(&[b"PING"]));
        p.cmd(0, &["DISCARD"]);
        p.quiet(1, &encode(&[b"MULTI"]));
        p.quiet(1, &encode(&[b"SUBSCRIBE", b"m1", b"m2"]));
        p.quiet(1, &encode(&[b"SSUBSCRIBE", b"s"]));
        p.quiet(1, &encode(&[b"PING"]));
        p.quiet(1, &encode(&[b"PUBLISH", b"m1", b"self"]));
        p.quiet(1, &encode(&[b"EXEC"]));
    });
}

/// Inline commands, as telnet and `redis-cli` pipe mode send them.
#[test]
fn inline_commands() {
    both_protocols(1, |p| {
        p.step(0, b"PING\r\n");
        p.step(0, b"ECHO \"a b\" \r\n");
        p.step(0, b"echo 'it\\'s'\n");
        p.step(0, b"ECHO \"\\x41\\n\\q\"\r\n");
        p.step(0, b"\r\n\n   \r\n");
        p.step(0, b"SUBSCRIBE one two\r\n");
        p.step(0, b"UNSUBSCRIBE one\r\n");
        p.step(0, b"UNSUBSCRIBE\r\n");
        p.step(0, b"PUBLISH c 'quoted payload'\r\n");
    });
}

/// Pipelined requests in one write, answered in order.
#[test]
fn pipelining() {
    both_protocols(2, |p| {
        let mut batch = Vec::new();
        for i in 0..50 {
            let channel = format!("ch{}", i % 5);
            batch.extend(encode(&[b"SUBSCRIBE", channel.as_bytes()]));
        }
        p.step(0, &batch);
        let mut publishes = Vec::new();
        for i in 0..100 {
            let channel = format!("ch{}", i % 7);
            let payload = format!("payload-{i}");
            publishes.extend(encode(&[
                b"PUBLISH",
                channel.as_bytes(),
                payload.as_bytes(),
            ]));
            publishes.extend(b"ECHO inline\r\n");
        }
        p.step(1, &publishes);
        p.step(0, b"");
    });
}

/// Binary-safe names and payloads, and the empty name.
#[test]
fn binary_names_and_payloads() {
    both_protocols(2, |p| {
        p.step(0, &encode(&[b"SUBSCRIBE", b"\x00\xff", b"", b"a\r\nb"]));
        p.step(0, &encode(&[b"PSUBSCRIBE", b"\xff*", b"\x00*"]));
        p.step(1, &encode(&[b"PUBLISH", b"\x00\xff", b""]));
        p.step(1, &encode(&[b"PUBLISH", b"", b"\x00\x01\x02\r\n"]));
        p.step(1, &encode(&[b"PUBLISH", b"\xff", b"x"]));
        p.step(0, b"");
        p.step(1, &encode(&[b"PUBSUB", b"NUMSUB", b"", b"\x00\xff"]));
        p.step(1, &encode(&[b"PUBSUB", b"CHANNELS", b"\x00*"]));
    });
}

/// Each protocol error gets Redis's reply, after the requests before it
/// in the same write ran, and closes the connection.
#[test]
fn protocol_errors_close_the_connection() {
    let cases: &[&[u8]] = &[
        b"*x\r\n",
        b"PING\r\n*01\r\n",
        b"*2147483648\r\n",
        b"*1\r\nfoo\r\n",
        b"*1\r\n\r\n",
        b"*1\r\n$-1\r\n",
        b"*1\r\n$536870913\r\n",
        b"*1\r\n\xff\r\n",
        b"\"unbalanced\r\n",
        b"ECHO 'a'b\r\n",
    ];
    for case in cases {
        for resp3 in [false, true] {
            let Some(mut p) = Pair::new(1) else { return };
            if resp3 {
                p.cmd(0, &["HELLO", "3"]);
            }
            p.closing(0, case);
        }
    }
}

/// Over-long lines with no end fail as in Redis.
#[test]
fn oversized_lines() {
    let Some(mut p) = Pair::new(3) else { return };
    let mut count = b"*".to_vec();
    count.resize(70 * 1024, b'1');
    p.closing(0, &count);
    let mut bulk = b"*1\r\n$".to_vec();
    bulk.resize(70 * 1024, b'2');
    p.closing(1, &bulk);
    p.closing(2, &vec![b'a'; 70 * 1024]);
}

/// With requirepass: NOAUTH, AUTH and HELLO AUTH, the unauthenticated
/// request limits, and RESET requiring authentication again.
#[test]
fn requirepass() {
    let Some(mut p) = Pair::with(
        2,
        &["--requirepass", "s3cret"],
        Server::builder().requirepass("s3cret"),
    ) else {
        return;
    };
    for args in [
        &["PING"][..],
        &["PUBLISH", "c", "m"],
        &["SUBSCRIBE", "c"],
        &["HELLO", "3"],
        &["HELLO", "3", "AUTH", "default", "wrong"],
        &["AUTH", "wrong"],
        &["AUTH", "default", "wrong"],
        &["AUTH", "s3cret"],
        &["PING"],
        &["RESET"],
        &["PING"],
        &["HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "n"],
        &["CLIENT", "GETNAME"],
    ] {
        p.quiet(
            0,
            &encode(&args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>()),
        );
    }
    p.closing(1, b"*11\r\n");
    let Some(mut p) = Pair::with(
        1,
        &["--requirepass", "s3cret"],
        Server::builder().requirepass("s3cret"),
    ) else {
        return;
    };
    p.closing(0, b"*1\r\n$16385\r\n");
}

/// INFO has Redis's sections and fields (values differ by nature).
#[test]
fn info_shape() {
    let Some(mut p) = Pair::new(1) else { return };
    for section in ["server", "clients"] {
        let request = encode(&[b"INFO", section.as_bytes()]);
        let mut names = Vec::new();
        for conn in [&mut p.r[0], &mut p.t[0]] {
            conn.send(&request);
            let reply = conn.read_until_suffix(b"\r\n\r\n");
            let text = String::from_utf8_lossy(&reply).into_owned();
            let fields: Vec<String> = text
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_owned()))
                .collect();
            names.push(fields);
        }
        for field in &names[0] {
            assert!(names[1].contains(field), "INFO {section} lacks {field}");
        }
    }
}

/// CLIENT LIST and CLIENT INFO have Redis 7.0's fields in its order, and
/// the same values where they describe the connection's state.
#[test]
fn client_list_shape() {
    let Some(mut p) = Pair::new(2) else { return };
    p.cmd(0, &["CLIENT", "SETNAME", "lister"]);
    p.cmd(1, &["PSUBSCRIBE", "a*"]);
    p.cmd(1, &["SSUBSCRIBE", "s1", "s2"]);
    p.cmd(0, &["SELECT", "3"]);
    let mut lines = Vec::new();
    for conn in [&mut p.r[0], &mut p.t[0]] {
        conn.send(&encode(&[b"CLIENT", b"LIST"]));
        let reply = conn.read_until_suffix(b"\n\r\n");
        let text = String::from_utf8_lossy(&reply).into_owned();
        let parsed: Vec<Vec<(String, String)>> = text
            .lines()
            .skip(1)
            .filter(|l| l.starts_with("id="))
            .map(|l| {
                l.split(' ')
                    .filter_map(|f| f.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
                    .collect()
            })
            .collect();
        lines.push(parsed);
    }
    let (r, t) = (&lines[0], &lines[1]);
    assert_eq!(r.len(), 2);
    assert_eq!(t.len(), 2);
    for (rl, tl) in r.iter().zip(t) {
        let names =
            |l: &Vec<(String, String)>| l.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        assert_eq!(names(tl), names(rl));
        for key in [
            "name", "flags", "db", "sub", "psub", "ssub", "multi", "cmd", "user", "resp",
        ] {
            let get = |l: &Vec<(String, String)>| {
                l.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
            };
            assert_eq!(get(tl), get(rl), "field {key}");
        }
    }
}

/// A tiny deterministic random number generator (xorshift), so failures
/// replay from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Random operation sequences over three connections, in both protocols:
/// after every step, every connection's output (replies and pushes, in a
/// canonical form where Redis's order is hash order) is the same.
#[test]
fn random_sequences() {
    const CHANNELS: &[&str] = &["a", "b", "ab", "", "c:1"];
    const PATTERNS: &[&str] = &["a*", "*", "?", "[ab]*", "c:*"];
    let seeds: Vec<u64> = (1..=6)
        .map(|i| 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i))
        .collect();
    for seed in seeds {
        let resp3 = seed % 2 == 0;
        let Some(mut p) = Pair::new(3) else { return };
        if resp3 {
            for i in 0..3 {
                p.cmd(i, &["HELLO", "3"]);
            }
        }
        let mut rng = Rng(seed);
        for op in 0..120 {
            let conn = (rng.next() % 3) as usize;
            let mut args: Vec<String> = Vec::new();
            match rng.next() % 12 {
                0 | 1 => {
                    args.push("SUBSCRIBE".into());
                    for _ in 0..=rng.next() % 3 {
                        args.push(rng.pick(CHANNELS).into());
                    }
                }
                2 => {
                    args.push("PSUBSCRIBE".into());
                    for _ in 0..=rng.next() % 2 {
                        args.push(rng.pick(PATTERNS).into());
                    }
                }
                3 => {
                    args.push("UNSUBSCRIBE".into());
                    for _ in 0..rng.next() % 3 {
                        args.push(rng.pick(CHANNELS).into());
                    }
                }
                4 => {
                    args.push("PUNSUBSCRIBE".into());
                    for _ in 0..rng.next() % 2 {
                        args.push(rng.pick(PATTERNS).into());
                    }
                }
                5 => {
                    args.push("SSUBSCRIBE".into());
                    args.push(rng.pick(CHANNELS).into());
                }
                6 => {
                    args.push("SUNSUBSCRIBE".into());
                    if rng.next() % 2 == 0 {
                        args.push(rng.pick(CHANNELS).into());
                    }
                }
                7 => args.extend([
                    "SPUBLISH".into(),
                    rng.pick(CHANNELS).into(),
                    format!("s{op}"),
                ]),
                8 => args.extend([
                    "PUBSUB".into(),
                    "NUMSUB".into(),
                    rng.pick(CHANNELS).into(),
                    rng.pick(CHANNELS).into(),
                ]),
                9 => args.extend(["PUBSUB".into(), "NUMPAT".into()]),
                _ => args.extend([
                    "PUBLISH".into(),
                    rng.pick(CHANNELS).into(),
                    format!("m{op}"),
                ]),
            }
            let request = encode(&args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>());
            for i in 0..3 {
                let bytes = if i == conn {
                    request.clone()
                } else {
                    Vec::new()
                };
                let (r, t) = p.exchange(i, &bytes);
                let (r, t) = (
                    resp::canonical(&resp::parse_all(&r)),
                    resp::canonical(&resp::parse_all(&t)),
                );
                assert_eq!(t, r, "seed {seed:#x}, op {op}, connection {i}: {args:?}");
            }
        }
    }
}
