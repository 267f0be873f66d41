//! Checks of the Redis harness against a real `redis-server`, written as
//! claims about what Redis does (`redis-pubsub-semantics.md`), so they can
//! later be mirrored against tannoy.
//!
//! Every test starts its own server (about 20 ms) and skips when none is
//! installed, unless `TANNOY_REQUIRE_REDIS` is set.

#[path = "support/redis.rs"]
mod redis_support;

/// The 114 verified glob rows, shared with the matcher's unit tests.
///
/// Included textually, as `src/pattern` does, rather than declared as a
/// module, so this file does not pull the table under `cargo fmt`.
mod glob_table {
    #![allow(
        unreachable_pub,
        reason = "the shared table is written for src/pattern too, so its items are `pub`"
    )]
    include!("support/glob_table.rs");
}

use std::collections::HashSet;

use redis_support::{
    AWKWARD_NAMES, Frame, MISSING_SERVER, Push, REQUIRE_ENV, redis_or_skip, rerun_without_server,
};

/// A subscribe confirmation as the harness returns it.
fn sub(name: &[u8], count: i64) -> (Vec<u8>, i64) {
    (name.to_vec(), count)
}

/// An unsubscribe confirmation as the harness returns it.
fn unsub(name: Option<&[u8]>, count: i64) -> (Option<Vec<u8>>, i64) {
    (name.map(<[u8]>::to_vec), count)
}

/// A list of owned names, for comparing with introspection results.
fn names(list: &[&[u8]]) -> Vec<Vec<u8>> {
    list.iter().map(|n| n.to_vec()).collect()
}

/// The server is private: it answers on its own port, keeps nothing on
/// disk, and lives in its own directory.
#[test]
fn server_is_private_and_answers_ping() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut client = server.client();
    assert_eq!(client.command(&[b"PING"]), Frame::Simple(b"PONG".to_vec()));
    let config = |client: &mut redis_support::Client, key: &[u8]| match client
        .command(&[b"CONFIG", b"GET", key])
    {
        Frame::Array(Some(pair)) if pair.len() == 2 => pair[1].clone(),
        other => panic!("CONFIG GET answered {other:?}"),
    };
    assert_eq!(config(&mut client, b"save"), Frame::bulk(b""));
    assert_eq!(config(&mut client, b"appendonly"), Frame::bulk(b"no"));
    assert_eq!(config(&mut client, b"bind"), Frame::bulk(b"127.0.0.1"));
    assert_eq!(
        config(&mut client, b"port"),
        Frame::bulk(server.port().to_string().as_bytes())
    );
    let Frame::Bulk(Some(dir)) = config(&mut client, b"dir") else {
        panic!("CONFIG GET dir is not a bulk string")
    };
    assert!(
        String::from_utf8_lossy(&dir).contains("tannoy-redis-"),
        "server runs in {}",
        redis_support::show(&dir)
    );
}

/// Without a server, tests skip with one line on stderr, unless
/// `TANNOY_REQUIRE_REDIS` is set to something other than empty or `0`,
/// which makes them fail.
///
/// Runs this test binary again on another test, with the server path
/// pointed at nothing.
#[test]
fn missing_server_skips_unless_required() {
    let run = |require: Option<&str>| {
        rerun_without_server(&["--exact", "server_is_private_and_answers_ping"], require)
    };

    for require in [None, Some(""), Some("0")] {
        let (passed, text) = run(require);
        assert!(
            passed,
            "with {REQUIRE_ENV}={require:?} the test must skip:\n{text}"
        );
        let skips: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("skipping: "))
            .collect();
        assert_eq!(skips.len(), 1, "one skip line expected:\n{text}");
        assert!(
            skips[0].contains(MISSING_SERVER) && skips[0].contains(REQUIRE_ENV),
            "the skip line names the path and the variable: {}",
            skips[0]
        );
    }

    let (passed, text) = run(Some("1"));
    assert!(!passed, "with {REQUIRE_ENV}=1 the test must fail:\n{text}");
    assert!(
        text.contains("redis-server not found") && text.contains(REQUIRE_ENV),
        "the failure explains itself:\n{text}"
    );
}

/// The client parses every RESP2 frame type, binary-safely, including null
/// bulk strings, null arrays and nested arrays.
#[test]
fn resp2_frames_parse_exactly() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut conn = server.connect();
    let binary: &[u8] = b"\x00\r\n$3\r\n*\xff\x80";
    assert_eq!(conn.command(&[b"ECHO", binary]), Frame::bulk(binary));
    assert_eq!(conn.command(&[b"ECHO", b""]), Frame::bulk(b""));
    assert_eq!(conn.command(&[b"GET", b"missing"]), Frame::Bulk(None));
    assert_eq!(conn.command(&[b"INCRBY", b"n", b"-5"]), Frame::Integer(-5));
    assert_eq!(
        conn.command(&[b"BLPOP", b"empty-list", b"0.01"]),
        Frame::Array(None)
    );
    assert_eq!(
        conn.command(&[b"EVAL", b"return {1, {'a', {}}, 'b'}", b"0"]),
        Frame::array(vec![
            Frame::Integer(1),
            Frame::array(vec![Frame::bulk(b"a"), Frame::array(vec![])]),
            Frame::bulk(b"b"),
        ])
    );
    assert_eq!(
        conn.command(&[b"PUBLISH", b"x"]),
        Frame::error("ERR wrong number of arguments for 'publish' command")
    );
    // Pipelined commands come back in order.
    conn.send_all(&[&[b"ECHO", b"one"], &[b"ECHO", b"two"]]);
    assert_eq!(conn.read_frame(), Frame::bulk(b"one"));
    assert_eq!(conn.read_frame(), Frame::bulk(b"two"));
}

/// RESP2 subscribed mode: other commands are refused with Redis's exact
/// text and the client stays subscribed; `PING` answers `[pong, arg]`
/// there and `+PONG` again once every subscription is gone (§8.1).
#[test]
fn subscribed_mode_refuses_commands_and_ping_answers_an_array() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut s = server.subscriber();
    assert_eq!(s.raw(&[b"PING"]), Frame::Simple(b"PONG".to_vec()));
    s.subscribe(&[b"c"]);
    assert_eq!(
        s.raw(&[b"GET", b"k"]),
        Frame::error(
            "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / \
             RESET are allowed in this context"
        )
    );
    assert_eq!(
        s.raw(&[b"PING"]),
        Frame::array(vec![Frame::bulk(b"pong"), Frame::bulk(b"")])
    );
    assert_eq!(
        s.raw(&[b"PING", b"foo"]),
        Frame::array(vec![Frame::bulk(b"pong"), Frame::bulk(b"foo")])
    );
    assert_eq!(
        s.raw(&[b"SUBSCRIBE"]),
        Frame::error("ERR wrong number of arguments for 'subscribe' command")
    );
    // Still subscribed after the refusals: messages keep coming.
    assert_eq!(server.client().publish(b"c", b"m"), 1);
    assert_eq!(s.barrier(), vec![Push::message(b"c", b"m")]);
    s.unsubscribe(&[]);
    assert_eq!(s.raw(&[b"PING"]), Frame::Simple(b"PONG".to_vec()));
    assert_eq!(s.barrier(), vec![]);
}

/// Every argument of a subscribe command gets a confirmation, in argument
/// order, duplicates included; the count only grows for new names, and a
/// channel held twice still gets one copy per publish (§4).
#[test]
fn subscribe_confirms_every_argument_in_order() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut client = server.client();

    let mut a = server.subscriber();
    assert_eq!(a.subscribe(&[b"a", b"b"]), vec![sub(b"a", 1), sub(b"b", 2)]);

    let mut s = server.subscriber();
    assert_eq!(
        s.subscribe(&[b"x", b"x", b"y", b"x"]),
        vec![sub(b"x", 1), sub(b"x", 1), sub(b"y", 2), sub(b"x", 2)]
    );
    assert_eq!(s.subscribe(&[b"x"]), vec![sub(b"x", 2)]);
    assert_eq!(client.publish(b"x", b"once"), 1);
    assert_eq!(s.barrier(), vec![Push::message(b"x", b"once")]);

    let mut p = server.subscriber();
    assert_eq!(
        p.psubscribe(&[b"p*", b"p*"]),
        vec![sub(b"p*", 1), sub(b"p*", 1)]
    );
    assert_eq!(client.publish(b"pq", b"once"), 1);
    assert_eq!(p.barrier(), vec![Push::pmessage(b"p*", b"pq", b"once")]);
}

/// Channel and pattern confirmations share one count, `|C| + |P|`; shard
/// confirmations count shard channels only (§1, §4).
#[test]
fn counts_mix_channels_and_patterns_but_not_shard_channels() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut s = server.subscriber();
    assert_eq!(
        s.subscribe(&[b"c1", b"c2"]),
        vec![sub(b"c1", 1), sub(b"c2", 2)]
    );
    assert_eq!(
        s.psubscribe(&[b"p1", b"p2"]),
        vec![sub(b"p1", 3), sub(b"p2", 4)]
    );
    assert_eq!(s.ssubscribe(&[b"s1"]), vec![sub(b"s1", 1)]);
    assert_eq!(s.unsubscribe(&[b"c1"]), vec![unsub(Some(b"c1"), 3)]);
    assert_eq!(s.sunsubscribe(&[b"s1"]), vec![unsub(Some(b"s1"), 0)]);

    let mut t = server.subscriber();
    assert_eq!(
        t.ssubscribe(&[b"s1", b"s2"]),
        vec![sub(b"s1", 1), sub(b"s2", 2)]
    );
    assert_eq!(t.subscribe(&[b"n1"]), vec![sub(b"n1", 1)]);
}

/// Unsubscribing a name not held confirms it with the count unchanged, on
/// any client, and names are compared exactly, per namespace (§1, §4).
#[test]
fn unsubscribing_names_not_held_leaves_counts_unchanged() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut fresh = server.subscriber();
    assert_eq!(
        fresh.unsubscribe(&[b"a", b"b"]),
        vec![unsub(Some(b"a"), 0), unsub(Some(b"b"), 0)]
    );

    let mut s = server.subscriber();
    s.subscribe(&[b"x", b"y"]);
    s.psubscribe(&[b"p*"]);
    assert_eq!(
        s.unsubscribe(&[b"nope", b"x", b"x"]),
        vec![
            unsub(Some(b"nope"), 3),
            unsub(Some(b"x"), 2),
            unsub(Some(b"x"), 2)
        ]
    );
    // Wrong namespace: the pattern `p*` is not a channel, `y` is neither a
    // pattern nor a shard channel, and unsubscribing is never a glob match.
    assert_eq!(s.unsubscribe(&[b"p*"]), vec![unsub(Some(b"p*"), 2)]);
    assert_eq!(
        s.punsubscribe(&[b"y", b"p"]),
        vec![unsub(Some(b"y"), 2), unsub(Some(b"p"), 2)]
    );
    assert_eq!(s.sunsubscribe(&[b"y"]), vec![unsub(Some(b"y"), 0)]);
    let mut client = server.client();
    assert_eq!(client.publish(b"y", b"1"), 1);
    assert_eq!(client.publish(b"pz", b"2"), 1);
    assert_eq!(
        s.barrier(),
        vec![
            Push::message(b"y", b"1"),
            Push::pmessage(b"p*", b"pz", b"2")
        ]
    );
}

/// The no-argument forms drop every name of their kind, one confirmation
/// each with counts decreasing, or send exactly one confirmation with a
/// null name when none is held; that count can be non-zero (§4).
#[test]
fn no_argument_unsubscribe_drops_all_or_confirms_a_null_name() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut fresh = server.subscriber();
    assert_eq!(fresh.unsubscribe(&[]), vec![unsub(None, 0)]);
    assert_eq!(fresh.punsubscribe(&[]), vec![unsub(None, 0)]);
    assert_eq!(fresh.sunsubscribe(&[]), vec![unsub(None, 0)]);
    // Never subscribed, so normal commands still work afterwards.
    assert_eq!(fresh.raw(&[b"GET", b"k"]), Frame::Bulk(None));

    let mut s = server.subscriber();
    s.subscribe(&[b"c1", b"c2", b"c3"]);
    s.psubscribe(&[b"p1", b"p2"]);
    s.ssubscribe(&[b"s1", b"s2"]);
    let dropped = s.unsubscribe(&[]);
    // Hash order: only the set of names and the falling counts are fixed.
    let counts: Vec<i64> = dropped.iter().map(|(_, n)| *n).collect();
    assert_eq!(counts, vec![4, 3, 2]);
    let dropped: HashSet<Vec<u8>> = dropped.into_iter().filter_map(|(name, _)| name).collect();
    assert_eq!(
        dropped,
        HashSet::from([b"c1".to_vec(), b"c2".to_vec(), b"c3".to_vec()])
    );
    assert_eq!(s.unsubscribe(&[]), vec![unsub(None, 2)]);

    let dropped = s.punsubscribe(&[]);
    let counts: Vec<i64> = dropped.iter().map(|(_, n)| *n).collect();
    assert_eq!(counts, vec![1, 0]);
    let dropped: HashSet<Vec<u8>> = dropped.into_iter().filter_map(|(name, _)| name).collect();
    assert_eq!(dropped, HashSet::from([b"p1".to_vec(), b"p2".to_vec()]));
    assert_eq!(s.punsubscribe(&[]), vec![unsub(None, 0)]);

    // Only shard channels left: still subscribed (§1), counts are |H|.
    assert!(matches!(s.raw(&[b"GET", b"k"]), Frame::Error(_)));
    let dropped = s.sunsubscribe(&[]);
    assert_eq!(
        dropped.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        vec![1, 0]
    );
    assert_eq!(s.sunsubscribe(&[]), vec![unsub(None, 0)]);
    assert_eq!(s.raw(&[b"GET", b"k"]), Frame::Bulk(None));
}

/// The null name of a no-argument unsubscribe is a null bulk string on the
/// wire: `*3 $11 unsubscribe $-1 :0` (§3.2).
#[test]
fn null_unsubscribe_name_is_a_null_bulk_on_the_wire() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut conn = server.connect();
    for kind in [&b"unsubscribe"[..], b"punsubscribe", b"sunsubscribe"] {
        assert_eq!(
            conn.command(&[&kind.to_ascii_uppercase()]),
            Frame::array(vec![
                Frame::bulk(kind),
                Frame::Bulk(None),
                Frame::Integer(0)
            ])
        );
    }
}

/// On 7.0 the no-argument `PUNSUBSCRIBE` confirms patterns in subscription
/// order (7.2+ uses hash order, so tannoy need not mirror this) (§4, §9).
#[test]
fn punsubscribe_all_follows_subscription_order_on_7_0() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let Frame::Bulk(Some(info)) = server.client().command(&[b"INFO", b"server"]) else {
        panic!("INFO is not a bulk string")
    };
    if !String::from_utf8_lossy(&info).contains("redis_version:7.0.") {
        return;
    }
    let patterns: Vec<Vec<u8>> = (0..12)
        .map(|i| format!("pat{}*", 11 - i).into_bytes())
        .collect();
    let patterns: Vec<&[u8]> = patterns.iter().map(Vec::as_slice).collect();
    let mut s = server.subscriber();
    s.psubscribe(&patterns);
    let dropped = s.punsubscribe(&[]);
    let expected: Vec<_> = patterns
        .iter()
        .zip((0..12).rev())
        .map(|(p, n)| unsub(Some(p), n))
        .collect();
    assert_eq!(dropped, expected);
}

/// A client subscribed to a channel and to k matching patterns receives
/// 1 + k messages per publish and is counted 1 + k times; the exact-channel
/// `message` always comes first; another client on a pattern adds one;
/// shard subscribers are never counted (§3.1, §3.3).
#[test]
fn publish_counts_the_channel_plus_each_matching_pattern() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let matching: [&[u8]; 5] = [b"news.*", b"*", b"news.s*", b"n*", b"*sport"];
    let mut s = server.subscriber();
    s.subscribe(&[b"news.sport"]);
    s.psubscribe(&matching);
    s.psubscribe(&[b"x*", b"news.sport?"]);
    let mut shard = server.subscriber();
    shard.ssubscribe(&[b"news.sport"]);
    let mut client = server.client();

    for i in 0..10 {
        let payload = format!("m{i}").into_bytes();
        assert_eq!(client.publish(b"news.sport", &payload), 6);
        let pushes = s.barrier();
        assert_eq!(pushes.len(), 6, "{pushes:?}");
        assert_eq!(pushes[0], Push::message(b"news.sport", &payload));
        // Among patterns the order is hash order: compare as sets.
        let got: HashSet<Push> = pushes[1..].iter().cloned().collect();
        let want: HashSet<Push> = matching
            .iter()
            .map(|p| Push::pmessage(p, b"news.sport", &payload))
            .collect();
        assert_eq!(got, want);
    }

    let mut other = server.subscriber();
    other.psubscribe(&[b"news.*"]);
    assert_eq!(client.publish(b"news.sport", b"x"), 7);
    assert_eq!(
        other.barrier(),
        vec![Push::pmessage(b"news.*", b"news.sport", b"x")]
    );
    assert_eq!(s.barrier().len(), 6);
    assert_eq!(shard.barrier(), vec![]);
}

/// Per subscriber, each publish's `message` precedes its `pmessage`s, and
/// two subscribers see the publishes they share in the same order (§3.3,
/// §3.4).
#[test]
fn exact_message_comes_before_pattern_messages() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut a = server.subscriber();
    a.subscribe(&[b"ch"]);
    a.psubscribe(&[b"c*", b"?h"]);
    let mut b = server.subscriber();
    b.psubscribe(&[b"*"]);
    let mut client = server.client();
    let payloads: Vec<Vec<u8>> = (0..50).map(|i| format!("{i}").into_bytes()).collect();
    for payload in &payloads {
        assert_eq!(client.publish(b"ch", payload), 4);
    }
    let pushes = a.barrier();
    assert_eq!(pushes.len(), 150);
    for (group, payload) in pushes.chunks(3).zip(&payloads) {
        assert_eq!(group[0], Push::message(b"ch", payload));
        let rest: HashSet<&Push> = group[1..].iter().collect();
        let pc = Push::pmessage(b"c*", b"ch", payload);
        let ph = Push::pmessage(b"?h", b"ch", payload);
        assert_eq!(rest, HashSet::from([&pc, &ph]));
    }
    let seen: Vec<Push> = b.barrier();
    let want: Vec<Push> = payloads
        .iter()
        .map(|p| Push::pmessage(b"*", b"ch", p))
        .collect();
    assert_eq!(seen, want);
}

/// Pushes that arrive while the harness waits for confirmations are kept
/// in order, and messages queued before an unsubscribe ran still arrive,
/// before its confirmation; nothing comes through after (§3.4).
#[test]
fn pushes_arriving_during_confirmations_are_kept_in_order() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut s = server.subscriber();
    s.subscribe(&[b"c"]);
    let mut client = server.client();
    assert_eq!(client.publish(b"c", b"1"), 1);
    assert_eq!(client.publish(b"c", b"2"), 1);
    assert_eq!(s.subscribe(&[b"d"]), vec![sub(b"d", 2)]);
    assert_eq!(client.publish(b"d", b"3"), 1);
    assert_eq!(client.publish(b"c", b"4"), 1);
    assert_eq!(s.unsubscribe(&[b"c"]), vec![unsub(Some(b"c"), 1)]);
    assert_eq!(client.publish(b"c", b"5"), 0);
    assert_eq!(client.publish(b"d", b"6"), 1);
    assert_eq!(s.next_push(), Push::message(b"c", b"1"));
    assert_eq!(
        s.barrier(),
        vec![
            Push::message(b"c", b"2"),
            Push::message(b"d", b"3"),
            Push::message(b"c", b"4"),
            Push::message(b"d", b"6"),
        ]
    );
    assert_eq!(client.publish(b"d", b"7"), 1);
    assert_eq!(s.unsubscribe(&[]), vec![unsub(Some(b"d"), 0)]);
    assert_eq!(s.barrier(), vec![Push::message(b"d", b"7")]);
}

/// `NUMPAT` counts distinct patterns across clients; `NUMSUB` ignores
/// patterns; a disconnect removes every subscription of all three kinds
/// (§4 lifecycle, §5).
#[test]
fn numpat_counts_distinct_patterns_and_disconnect_drops_everything() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut client = server.client();
    assert_eq!(client.pubsub_numpat(), 0);
    let mut a = server.subscriber();
    a.psubscribe(&[b"foo*", b"bar*"]);
    a.subscribe(&[b"dc1"]);
    a.ssubscribe(&[b"ds"]);
    let mut b = server.subscriber();
    b.psubscribe(&[b"foo*", b"baz*"]);
    assert_eq!(client.pubsub_numpat(), 3);
    assert_eq!(
        client.pubsub_numsub(&[b"foo*", b"dc1", b"dc1", b"ds"]),
        vec![
            sub(b"foo*", 0),
            sub(b"dc1", 1),
            sub(b"dc1", 1),
            sub(b"ds", 0)
        ]
    );
    assert_eq!(client.pubsub_numsub(&[]), vec![]);
    assert_eq!(client.pubsub_shardnumsub(&[b"ds"]), vec![sub(b"ds", 1)]);

    assert_eq!(a.disconnect(), vec![]);
    assert_eq!(client.pubsub_numpat(), 2);
    assert_eq!(client.pubsub_numsub(&[b"dc1"]), vec![sub(b"dc1", 0)]);
    assert_eq!(client.pubsub_shardnumsub(&[b"ds"]), vec![sub(b"ds", 0)]);
    assert_eq!(client.pubsub_channels(None), Vec::<Vec<u8>>::new());
    assert_eq!(client.pubsub_shardchannels(None), Vec::<Vec<u8>>::new());

    assert_eq!(client.publish(b"foo1", b"m"), 1);
    assert_eq!(b.disconnect(), vec![Push::pmessage(b"foo*", b"foo1", b"m")]);
    assert_eq!(client.pubsub_numpat(), 0);
}

/// `PUBSUB CHANNELS` with no argument lists every active channel, the
/// empty name included; `CHANNELS *` leaves the empty name out; patterns
/// and shard channels are never listed (§5).
#[test]
fn channels_without_argument_lists_the_empty_name_but_star_does_not() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut s = server.subscriber();
    s.subscribe(&[b"", b"a", b"b*"]);
    s.psubscribe(&[b"pat*"]);
    s.ssubscribe(&[b"shard"]);
    let mut client = server.client();
    assert_eq!(client.pubsub_channels(None), names(&[b"", b"a", b"b*"]));
    assert_eq!(client.pubsub_channels(Some(b"*")), names(&[b"a", b"b*"]));
    assert_eq!(client.pubsub_channels(Some(b"")), names(&[b""]));
    assert_eq!(client.pubsub_channels(Some(b"b\\*")), names(&[b"b*"]));
    assert_eq!(client.pubsub_numsub(&[b""]), vec![sub(b"", 1)]);
    assert_eq!(client.publish(b"", b""), 1);
    assert_eq!(s.barrier(), vec![Push::message(b"", b"")]);
}

/// Shard channels are a separate namespace, with no pattern support:
/// `SPUBLISH` reaches shard subscribers only, `PUBLISH` never reaches them,
/// and each side has its own introspection (§6).
#[test]
fn shard_channels_are_a_separate_namespace() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut a = server.subscriber();
    a.ssubscribe(&[b"same"]);
    let mut b = server.subscriber();
    b.subscribe(&[b"same"]);
    let mut c = server.subscriber();
    c.psubscribe(&[b"*"]);
    let mut client = server.client();

    assert_eq!(client.spublish(b"same", b"S"), 1);
    assert_eq!(client.publish(b"same", b"P"), 2);
    assert_eq!(a.barrier(), vec![Push::smessage(b"same", b"S")]);
    assert_eq!(b.barrier(), vec![Push::message(b"same", b"P")]);
    assert_eq!(c.barrier(), vec![Push::pmessage(b"*", b"same", b"P")]);

    // `sh*` is a literal shard channel name, not a pattern.
    a.ssubscribe(&[b"sh*"]);
    assert_eq!(client.spublish(b"shX", b"1"), 0);
    assert_eq!(client.spublish(b"sh*", b"2"), 1);
    assert_eq!(a.barrier(), vec![Push::smessage(b"sh*", b"2")]);
    assert_eq!(c.barrier(), vec![]);

    assert_eq!(client.pubsub_shardchannels(None), names(&[b"same", b"sh*"]));
    assert_eq!(client.pubsub_shardchannels(Some(b"sa*")), names(&[b"same"]));
    assert_eq!(client.pubsub_channels(None), names(&[b"same"]));
    assert_eq!(
        client.pubsub_shardnumsub(&[b"same", b"unknown"]),
        vec![sub(b"same", 1), sub(b"unknown", 0)]
    );
    assert_eq!(client.pubsub_shardnumsub(&[]), vec![]);
    assert_eq!(client.pubsub_numsub(&[b"same"]), vec![sub(b"same", 1)]);
}

/// Names and payloads are arbitrary bytes ([`AWKWARD_NAMES`]: empty, NUL,
/// CR/LF, bytes 0x80 and above, brackets, glob metacharacters), and large
/// payloads (§1, §3.1).
#[test]
fn binary_names_and_payloads_round_trip() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let weird = AWKWARD_NAMES;
    let big = vec![b'\xa5'; 100_000];
    let mut s = server.subscriber();
    let confirmed = s.subscribe(&weird);
    let expected: Vec<_> = weird.iter().zip(1..).map(|(n, i)| sub(n, i)).collect();
    assert_eq!(confirmed, expected);
    assert_eq!(
        s.psubscribe(&[b"\x00*"]),
        vec![sub(b"\x00*", weird.len() as i64 + 1)]
    );
    let mut client = server.client();
    let mut want = Vec::new();
    for (i, channel) in weird.iter().enumerate() {
        let payload = weird[(i + 3) % weird.len()];
        assert_eq!(client.publish(channel, payload), if i == 1 { 2 } else { 1 });
        want.push(Push::message(channel, payload));
        if i == 1 {
            want.push(Push::pmessage(b"\x00*", channel, payload));
        }
    }
    assert_eq!(client.publish(b"\x00\xff", &big), 1);
    want.push(Push::pmessage(b"\x00*", b"\x00\xff", &big));
    assert_eq!(s.barrier(), want);
    let mut listed = names(&weird);
    listed.sort();
    assert_eq!(client.pubsub_channels(None), listed);
    let unsubscribed = s.unsubscribe(&weird);
    let expected: Vec<_> = weird
        .iter()
        .zip((1..=weird.len() as i64).rev())
        .map(|(n, i)| unsub(Some(n), i))
        .collect();
    assert_eq!(unsubscribed, expected);
}

/// Every verified glob row of §2.5 holds on this server, both through
/// `PUBSUB CHANNELS <pattern>` and through `PSUBSCRIBE` + `PUBLISH`.
#[test]
fn glob_table_rows_hold_through_channels_and_psubscribe() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut holder = server.subscriber();
    let mut watcher = server.subscriber();
    let mut client = server.client();
    let mut wrong = Vec::new();
    for row in glob_table::redis_glob_table() {
        holder.subscribe(&[&row.channel]);
        let listed = client.pubsub_channels(Some(&row.pattern)) == vec![row.channel.clone()];
        watcher.psubscribe(&[&row.pattern]);
        let receivers = client.publish(&row.channel, b"p");
        let delivered = watcher.barrier();
        let by_publish = delivered == vec![Push::pmessage(&row.pattern, &row.channel, b"p")];
        let quiet = delivered.is_empty() && receivers == 1;
        let consistent = if row.matches {
            by_publish && receivers == 2
        } else {
            quiet
        };
        if listed != row.matches || !consistent {
            wrong.push(row.row);
        }
        holder.unsubscribe(&[]);
        holder.barrier();
        watcher.punsubscribe(&[]);
    }
    assert!(
        wrong.is_empty(),
        "rows where Redis disagrees with the table: {wrong:?}"
    );
}

/// A few rows of §2.5 spelled out, so the glob behaviour is readable here
/// without the shared table.
#[test]
fn glob_surprises_hold_through_channels_and_psubscribe() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let rows: [(&[u8], &[u8], bool); 10] = [
        (b"*", b"", false),               // row 1: `*` needs a byte
        (b"", b"", true),                 // row 4
        (b"?", b"\xc3\xa9", false),       // row 18: `?` is one byte
        (b"[!a]", b"!", true),            // row 30: `!` is not negation
        (b"[a-]", b"_", true),            // row 40: range `]`..`a`
        (b"[]a]", b"a", false),           // row 43: `[]` is an empty class
        (b"[^]", b"x", true),             // row 48
        (b"\\", b"\\", true),             // row 72: lone trailing backslash
        (b"[\x00-\xff]", b"\x90", false), // row 90: signed range
        (b"{a,b}", b"a", false),          // row 109: no braces
    ];
    let mut client = server.client();
    for (pattern, channel, matches) in rows {
        let mut holder = server.subscriber();
        holder.subscribe(&[channel]);
        let listed = client.pubsub_channels(Some(pattern));
        let want = if matches {
            vec![channel.to_vec()]
        } else {
            vec![]
        };
        assert_eq!(listed, want, "CHANNELS {}", redis_support::show(pattern));
        let mut watcher = server.subscriber();
        watcher.psubscribe(&[pattern]);
        assert_eq!(client.publish(channel, b"p"), 1 + i64::from(matches));
        let want = if matches {
            vec![Push::pmessage(pattern, channel, b"p")]
        } else {
            vec![]
        };
        assert_eq!(
            watcher.barrier(),
            want,
            "PSUBSCRIBE {}",
            redis_support::show(pattern)
        );
        holder.disconnect();
        watcher.disconnect();
    }
}
