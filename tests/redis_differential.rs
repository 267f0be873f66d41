//! tannoy against a real `redis-server`: every operation is applied to both,
//! and every observable answer must agree (see `support/differential.rs`
//! for what is compared and the one ordering Redis leaves open).
//!
//! The hand-written cases follow the themes of Redis's own
//! `tests/unit/pubsub.tcl` and `pubsubshard.tcl`, and also assert the
//! answer both sides agreed on, so each reads as a claim about Redis. The
//! proptests apply a thousand random sequences, and a hundred long ones,
//! over realistic and hostile names; each prints its totals to stderr.
//!
//! Every test skips without a server, unless `TANNOY_REQUIRE_REDIS` is set.

#[path = "support/redis.rs"]
mod redis_support;

#[path = "support/differential.rs"]
mod differential;

use std::cell::Cell;
use std::io::Write;
use std::time::Instant;

use differential::{Differential, Kind, Stats};
use proptest::test_runner::{Config, TestRunner};
use redis_support::{AWKWARD_NAMES, Push, REQUIRE_ENV, redis_or_skip, rerun_without_server};

/// An unsubscribe confirmation as the driver returns it.
fn unsub(name: Option<&[u8]>, count: i64) -> (Option<Vec<u8>>, i64) {
    (name.map(<[u8]>::to_vec), count)
}

/// A `(name, count)` pair as `NUMSUB` answers.
fn pair(name: &[u8], count: i64) -> (Vec<u8>, i64) {
    (name.to_vec(), count)
}

/// Owned names, sorted, as the driver's channel listings come.
fn names(list: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = list.iter().map(|n| n.to_vec()).collect();
    names.sort();
    names
}

/// The names confirmed by a no-argument unsubscribe, sorted (Redis sends
/// them in hash order).
fn dropped(confirmed: &[(Option<Vec<u8>>, i64)]) -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = confirmed
        .iter()
        .map(|(n, _)| n.clone().expect("a named confirmation"))
        .collect();
    names.sort();
    names
}

/// Writes a line to the real stderr, past the test harness's capture, so
/// totals show in a normal `cargo test` run.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Subscribing to two channels counts 1 then 2; each receives its own
/// messages; after unsubscribing one, only the other still receives.
#[test]
fn subscribe_publish_unsubscribe_basics() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut d = Differential::new(&server, 1);
    assert_eq!(d.subscribe(0, Kind::Channel, &[b"chan1", b"chan2"]), [1, 2]);
    assert_eq!(d.publish(b"chan1", b"hello"), 1);
    assert_eq!(d.publish(b"chan2", b"world"), 1);
    assert_eq!(
        d.deliveries(),
        [vec![
            Push::message(b"chan1", b"hello"),
            Push::message(b"chan2", b"world")
        ]]
    );
    assert_eq!(
        d.unsubscribe(0, Kind::Channel, &[b"chan1"]),
        [unsub(Some(b"chan1"), 1)]
    );
    assert_eq!(d.publish(b"chan1", b"hello"), 0);
    assert_eq!(d.publish(b"chan2", b"world"), 1);
    assert_eq!(
        d.unsubscribe(0, Kind::Channel, &[b"chan2"]),
        [unsub(Some(b"chan2"), 0)]
    );
    assert_eq!(d.publish(b"chan2", b"world"), 0);
    assert_eq!(d.deliveries(), [vec![Push::message(b"chan2", b"world")]]);
    d.finish();
}

/// Two clients on one channel are both counted and both receive.
#[test]
fn two_clients_on_one_channel_both_receive() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut d = Differential::new(&server, 2);
    assert_eq!(d.subscribe(0, Kind::Channel, &[b"chan1"]), [1]);
    assert_eq!(d.subscribe(1, Kind::Channel, &[b"chan1"]), [1]);
    assert_eq!(d.publish(b"chan1", b"hello"), 2);
    let hello = vec![Push::message(b"chan1", b"hello")];
    assert_eq!(d.deliveries(), [hello.clone(), hello]);
    assert_eq!(d.numsub(&[b"chan1"]), [pair(b"chan1", 2)]);
    d.finish();
}

/// A name given several times, in one call or in several, is held once:
/// every argument is confirmed, the count grows only for new names, and a
/// publish delivers one copy.
#[test]
fn subscribing_a_name_more_than_once_holds_it_once() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut d = Differential::new(&server, 1);
    assert_eq!(
        d.subscribe(0, Kind::Channel, &[b"chan1", b"chan1", b"chan1"]),
        [1, 1, 1]
    );
    assert_eq!(
        d.subscribe(0, Kind::Channel, &[b"x", b"x", b"y", b"x"]),
        [2, 2, 3, 3]
    );
    assert_eq!(d.subscribe(0, Kind::Channel, &[b"chan1"]), [3]);
    assert_eq!(d.subscribe(0, Kind::Pattern, &[b"p*", b"p*"]), [4, 4]);
    assert_eq!(d.publish(b"chan1", b"hello"), 1);
    assert_eq!(d.publish(b"p1", b"pat"), 1);
    assert_eq!(
        d.deliveries(),
        [vec![
            Push::message(b"chan1", b"hello"),
            Push::pmessage(b"p*", b"p1", b"pat")
        ]]
    );
    assert_eq!(d.subscribe(0, Kind::Shard, &[b"s", b"s", b"t"]), [1, 1, 2]);
    assert_eq!(d.spublish(b"s", b"shard"), 1);
    assert_eq!(d.deliveries(), [vec![Push::smessage(b"s", b"shard")]]);
    d.finish();
}

/// Unsubscribing names not held confirms each with the current count, on
/// a client that never subscribed as on one that did; names are compared
/// exactly and per namespace, never as globs.
#[test]
fn unsubscribing_names_not_held_keeps_the_count() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut d = Differential::new(&server, 1);
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        let confirmed = d.unsubscribe(0, kind, &[b"foo", b"bar", b"quux"]);
        assert_eq!(
            confirmed,
            [
                unsub(Some(b"foo"), 0),
                unsub(Some(b"bar"), 0),
                unsub(Some(b"quux"), 0)
            ]
        );
    }
    d.subscribe(0, Kind::Channel, &[b"x", b"y"]);
    d.subscribe(0, Kind::Pattern, &[b"p*", b"fo*"]);
    d.subscribe(0, Kind::Shard, &[b"s"]);
    assert_eq!(
        d.unsubscribe(0, Kind::Channel, &[b"nope", b"x", b"x"]),
        [
            unsub(Some(b"nope"), 4),
            unsub(Some(b"x"), 3),
            unsub(Some(b"x"), 3)
        ]
    );
    // Wrong namespace: a pattern is not a channel, a channel not a shard
    // channel, and `f*` is not a glob over `fo*`.
    assert_eq!(
        d.unsubscribe(0, Kind::Channel, &[b"p*"]),
        [unsub(Some(b"p*"), 3)]
    );
    assert_eq!(
        d.unsubscribe(0, Kind::Shard, &[b"y"]),
        [unsub(Some(b"y"), 1)]
    );
    assert_eq!(
        d.unsubscribe(0, Kind::Pattern, &[b"y", b"s", b"f*"]),
        [
            unsub(Some(b"y"), 3),
            unsub(Some(b"s"), 3),
            unsub(Some(b"f*"), 3)
        ]
    );
    assert_eq!(d.numpat(), 2);
    assert_eq!(d.publish(b"foo", b"m"), 1);
    assert_eq!(d.deliveries(), [vec![Push::pmessage(b"fo*", b"foo", b"m")]]);
    d.finish();
}

/// `PSUBSCRIBE foo.* bar.*` counts 1, 2; only channels matching a held
/// pattern are delivered, as `pmessage`s naming the pattern; after
/// `PUNSUBSCRIBE` of one pattern only the other delivers.
#[test]
fn psubscribe_publish_punsubscribe_basics() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut d = Differential::new(&server, 1);
    assert_eq!(d.subscribe(0, Kind::Pattern, &[b"foo.*", b"bar.*"]), [1, 2]);
    assert_eq!(d.publish(b"foo.1", b"hello"), 1);
    assert_eq!(d.publish(b"bar.1", b"hello"), 1);
    assert_eq!(d.publish(b"foo1", b"hello"), 0);
    assert_eq!(d.publish(b"barfoo.1", b"hello"), 0);
    assert_eq!(d.publish(b"qux.1", b"hello"), 0);
    assert_eq!(
        d.deliveries(),
        [vec![
            Push::pmessage(b"foo.*", b"foo.1", b"hello"),
            Push::pmessage(b"bar.*", b"bar.1", b"hello")
        ]]
    );
    assert_eq!(
        d.unsubscribe(0, Kind::Pattern, &[b"foo.*"]),
        [unsub(Some(b"foo.*"), 1)]
    );
    assert_eq!(d.publish(b"foo.1", b"hello"), 0);
    assert_eq!(d.publish(b"bar.1", b"hello"), 1);
    assert_eq!(
        d.unsubscribe(0, Kind::Pattern, &[b"bar.*"]),
        [unsub(Some(b"bar.*"), 0)]
    );
    assert_eq!(d.publish(b"bar.1", b"hello"), 0);
    assert_eq!(
        d.deliveries(),
        [vec![Push::pmessage(b"bar.*", b"bar.1", b"hello")]]
    );
    d.finish();
}

/// Two clients on one pattern are both counted and both receive.
#[test]
fn two_clients_on_one_pattern_both_receive() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut d = Differential::new(&server, 2);
    assert_eq!(d.subscribe(0, Kind::Pattern, &[b"chan.*"]), [1]);
    assert_eq!(d.subscribe(1, Kind::Pattern, &[b"chan.*"]), [1]);
    assert_eq!(d.publish(b"chan.foo", b"hello"), 2);
    let hello = vec![Push::pmessage(b"chan.*", b"chan.foo", b"hello")];
    assert_eq!(d.deliveries(), [hello.clone(), hello]);
    assert_eq!(d.numpat(), 1);
    d.finish();
}

/// A client holding a channel and k matching patterns gets 1 + k messages
/// per publish, the exact one first, and is counted 1 + k times; another
/// client's pattern adds one; patterns that don't match add nothing.
#[test]
fn channel_and_matching_patterns_deliver_one_plus_k_copies() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut d = Differential::new(&server, 2);
    let matching: [&[u8]; 5] = [b"news.*", b"*", b"news.s*", b"n*", b"*sport"];
    assert_eq!(d.subscribe(0, Kind::Channel, &[b"news.sport"]), [1]);
    assert_eq!(d.subscribe(0, Kind::Pattern, &matching), [2, 3, 4, 5, 6]);
    assert_eq!(
        d.subscribe(0, Kind::Pattern, &[b"x*", b"news.sport?"]),
        [7, 8]
    );
    for i in 0..5 {
        assert_eq!(d.publish_unique(b"news.sport", b"goal"), 6, "publish {i}");
    }
    let delivered = d.deliveries();
    assert_eq!(delivered[0].len(), 30);
    for group in delivered[0].chunks(6) {
        assert!(matches!(group[0], Push::Message { .. }), "{group:?}");
    }
    assert_eq!(d.subscribe(1, Kind::Pattern, &[b"news.*"]), [1]);
    assert_eq!(d.publish(b"news.sport", b"x"), 7);
    assert_eq!(d.publish(b"news.weather", b"y"), 4);
    let delivered = d.deliveries();
    assert_eq!(
        delivered[1],
        [
            Push::pmessage(b"news.*", b"news.sport", b"x"),
            Push::pmessage(b"news.*", b"news.weather", b"y")
        ]
    );
    assert_eq!(d.numsub(&[b"news.sport"]), [pair(b"news.sport", 1)]);
    d.finish();
}

/// `SUBSCRIBE` then `PSUBSCRIBE` share one count, and a channel matching
/// both delivers the `message` before the `pmessage`.
#[test]
fn mixing_subscribe_and_psubscribe_delivers_message_then_pmessage() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut d = Differential::new(&server, 1);
    assert_eq!(d.subscribe(0, Kind::Channel, &[b"foo.bar"]), [1]);
    assert_eq!(d.subscribe(0, Kind::Pattern, &[b"foo.*"]), [2]);
    assert_eq!(d.subscribe(0, Kind::Shard, &[b"foo.bar"]), [1]);
    assert_eq!(d.publish(b"foo.bar", b"hello"), 2);
    assert_eq!(
        d.deliveries(),
        [vec![
            Push::message(b"foo.bar", b"hello"),
            Push::pmessage(b"foo.*", b"foo.bar", b"hello")
        ]]
    );
    d.finish();
}

/// The no-argument unsubscribes drop every name of their kind, one
/// confirmation each with counts falling, and afterwards nothing is
/// delivered through them; with nothing of the kind held they confirm a
/// null name with the current count, which can be non-zero.
#[test]
fn unsubscribe_all_forms_drop_every_name_of_their_kind() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut d = Differential::new(&server, 1);
    assert_eq!(
        d.subscribe(0, Kind::Channel, &[b"chan1", b"chan2", b"chan3"]),
        [1, 2, 3]
    );
    assert_eq!(
        d.subscribe(0, Kind::Pattern, &[b"chan1.*", b"chan2.*"]),
        [4, 5]
    );
    assert_eq!(d.subscribe(0, Kind::Shard, &[b"s1", b"s2"]), [1, 2]);

    let confirmed = d.unsubscribe(0, Kind::Channel, &[]);
    assert_eq!(dropped(&confirmed), names(&[b"chan1", b"chan2", b"chan3"]));
    assert_eq!(confirmed.iter().map(|c| c.1).collect::<Vec<_>>(), [4, 3, 2]);
    for channel in [b"chan1", b"chan2", b"chan3"] {
        assert_eq!(d.publish(channel, b"hello"), 0);
    }
    // No channels left: a null name, with the two patterns still counted.
    assert_eq!(d.unsubscribe(0, Kind::Channel, &[]), [unsub(None, 2)]);

    let confirmed = d.unsubscribe(0, Kind::Pattern, &[]);
    assert_eq!(dropped(&confirmed), names(&[b"chan1.*", b"chan2.*"]));
    assert_eq!(d.publish(b"chan1.hi", b"hello"), 0);
    assert_eq!(d.unsubscribe(0, Kind::Pattern, &[]), [unsub(None, 0)]);

    let confirmed = d.unsubscribe(0, Kind::Shard, &[]);
    assert_eq!(dropped(&confirmed), names(&[b"s1", b"s2"]));
    assert_eq!(d.spublish(b"s1", b"hello"), 0);
    assert_eq!(d.unsubscribe(0, Kind::Shard, &[]), [unsub(None, 0)]);
    assert_eq!(d.deliveries(), [vec![]]);
    d.finish();
}

/// On a client that never subscribed, each no-argument form still answers,
/// with a null name and count 0.
#[test]
fn unsubscribe_all_forms_always_reply() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut d = Differential::new(&server, 1);
    for kind in [Kind::Pattern, Kind::Channel, Kind::Shard] {
        assert_eq!(d.unsubscribe(0, kind, &[]), [unsub(None, 0)], "{kind:?}");
    }
    // And again after holding and dropping something of each kind.
    d.subscribe(0, Kind::Shard, &[b"s"]);
    assert_eq!(d.unsubscribe(0, Kind::Channel, &[]), [unsub(None, 0)]);
    assert_eq!(d.unsubscribe(0, Kind::Shard, &[]), [unsub(Some(b"s"), 0)]);
    assert_eq!(d.unsubscribe(0, Kind::Shard, &[]), [unsub(None, 0)]);
    d.finish();
}

/// `NUMPAT` counts distinct patterns, however many clients hold each:
/// `foo*` on two clients plus `bar*` and `baz*` is 3.
#[test]
fn numpat_counts_distinct_patterns_across_clients() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut d = Differential::new(&server, 2);
    assert_eq!(d.numpat(), 0);
    d.subscribe(0, Kind::Pattern, &[b"foo*"]);
    d.subscribe(1, Kind::Pattern, &[b"foo*"]);
    d.subscribe(0, Kind::Pattern, &[b"bar*"]);
    d.subscribe(1, Kind::Pattern, &[b"baz*"]);
    assert_eq!(d.numpat(), 3);
    d.unsubscribe(0, Kind::Pattern, &[b"foo*"]);
    assert_eq!(d.numpat(), 3);
    d.unsubscribe(1, Kind::Pattern, &[b"foo*"]);
    assert_eq!(d.numpat(), 2);
    d.unsubscribe(0, Kind::Pattern, &[]);
    d.unsubscribe(1, Kind::Pattern, &[]);
    assert_eq!(d.numpat(), 0);
    d.finish();
}

/// `NUMSUB` answers one pair per argument, in order, duplicates repeated,
/// unknown names 0, and counts exact subscribers only: neither patterns
/// nor shard subscribers.
#[test]
fn numsub_counts_exact_subscribers_only() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut d = Differential::new(&server, 3);
    assert_eq!(
        d.numsub(&[b"abc", b"def"]),
        [pair(b"abc", 0), pair(b"def", 0)]
    );
    d.subscribe(0, Kind::Channel, &[b"dc1", b"dc2"]);
    d.subscribe(1, Kind::Channel, &[b"dc1"]);
    d.subscribe(1, Kind::Pattern, &[b"dc*", b"foo*"]);
    d.subscribe(2, Kind::Pattern, &[b"foo*"]);
    d.subscribe(2, Kind::Shard, &[b"dc1", b"ds"]);
    assert_eq!(
        d.numsub(&[b"foo*", b"dc1", b"dc1", b"dc2", b"ds", b"dc*"]),
        [
            pair(b"foo*", 0),
            pair(b"dc1", 2),
            pair(b"dc1", 2),
            pair(b"dc2", 1),
            pair(b"ds", 0),
            pair(b"dc*", 0)
        ]
    );
    assert_eq!(d.numsub(&[]), []);
    assert_eq!(
        d.shard_numsub(&[b"dc1", b"ds", b"dc2"]),
        [pair(b"dc1", 1), pair(b"ds", 1), pair(b"dc2", 0)]
    );
    assert_eq!(d.shard_numsub(&[]), []);
    d.finish();
}

/// Shard channels are their own namespace: `SPUBLISH` reaches only shard
/// subscribers, `PUBLISH` never reaches them, patterns never match them
/// (`SSUBSCRIBE sh*` is the literal name), and shard introspection and
/// counts are separate.
#[test]
fn shard_channels_are_a_separate_namespace() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut d = Differential::new(&server, 3);
    assert_eq!(d.subscribe(0, Kind::Shard, &[b"same"]), [1]);
    assert_eq!(d.subscribe(1, Kind::Channel, &[b"same"]), [1]);
    assert_eq!(d.subscribe(2, Kind::Pattern, &[b"*"]), [1]);
    assert_eq!(d.spublish(b"same", b"S"), 1);
    assert_eq!(d.publish(b"same", b"P"), 2);
    assert_eq!(
        d.deliveries(),
        [
            vec![Push::smessage(b"same", b"S")],
            vec![Push::message(b"same", b"P")],
            vec![Push::pmessage(b"*", b"same", b"P")]
        ]
    );

    assert_eq!(d.subscribe(0, Kind::Shard, &[b"sh*"]), [2]);
    assert_eq!(d.spublish(b"shX", b"1"), 0);
    assert_eq!(d.spublish(b"sh*", b"2"), 1);
    assert_eq!(d.deliveries()[0], [Push::smessage(b"sh*", b"2")]);

    assert_eq!(d.shard_channels(None), names(&[b"same", b"sh*"]));
    assert_eq!(d.shard_channels(Some(b"sa*")), names(&[b"same"]));
    assert_eq!(d.shard_channels(Some(b"sh\\*")), names(&[b"sh*"]));
    assert_eq!(d.channels(None), names(&[b"same"]));
    assert_eq!(
        d.numsub(&[b"same", b"sh*"]),
        [pair(b"same", 1), pair(b"sh*", 0)]
    );
    assert_eq!(
        d.shard_numsub(&[b"same", b"unknown"]),
        [pair(b"same", 1), pair(b"unknown", 0)]
    );
    assert_eq!(d.numpat(), 1);

    // Shard counts are |H| alone, and channel counts leave shards out.
    assert_eq!(d.subscribe(0, Kind::Channel, &[b"n1"]), [1]);
    assert_eq!(d.subscribe(0, Kind::Shard, &[b"s3"]), [3]);
    assert_eq!(
        d.unsubscribe(0, Kind::Shard, &[b"same"]),
        [unsub(Some(b"same"), 2)]
    );
    assert_eq!(d.spublish(b"same", b"gone"), 0);
    assert_eq!(d.deliveries(), [vec![], vec![], vec![]]);
    d.finish();
}

/// Two shard subscribers of one channel are both reached; `SHARDNUMSUB`
/// and `SHARDCHANNELS` see them, `NUMSUB` and `CHANNELS` do not.
#[test]
fn spublish_reaches_every_shard_subscriber() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut d = Differential::new(&server, 2);
    assert_eq!(d.subscribe(0, Kind::Shard, &[b"chan1"]), [1]);
    assert_eq!(d.subscribe(1, Kind::Shard, &[b"chan1"]), [1]);
    assert_eq!(d.spublish(b"chan1", b"hello"), 2);
    assert_eq!(d.shard_numsub(&[b"chan1"]), [pair(b"chan1", 2)]);
    assert_eq!(d.shard_channels(None), names(&[b"chan1"]));
    assert_eq!(d.channels(None), names(&[]));
    assert_eq!(d.numsub(&[b"chan1"]), [pair(b"chan1", 0)]);
    let hello = vec![Push::smessage(b"chan1", b"hello")];
    assert_eq!(d.deliveries(), [hello.clone(), hello]);
    d.finish();
}

/// Channel names, patterns and payloads are arbitrary bytes: empty, NUL,
/// CR/LF, RESP-looking text, bytes 0x80 and above, brackets and glob
/// metacharacters, all delivered and listed intact.
#[test]
fn binary_names_and_payloads_agree() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let weird = AWKWARD_NAMES;
    let mut d = Differential::new(&server, 2);
    assert_eq!(
        d.subscribe(0, Kind::Channel, &weird),
        (1..=9).collect::<Vec<_>>()
    );
    assert_eq!(
        d.subscribe(1, Kind::Pattern, &[b"\x00*", b"[x]", b"\\[x]", b"*\\\\"]),
        [1, 2, 3, 4]
    );
    d.subscribe(1, Kind::Shard, &weird);
    for (i, channel) in weird.iter().enumerate() {
        let payload = weird[(i + 4) % weird.len()];
        d.publish_unique(channel, payload);
        d.spublish_unique(channel, payload);
    }
    d.publish(b"\x00\xff", &[0xa5; 10_000]);
    d.deliveries();
    assert_eq!(d.channels(None), names(&weird));
    assert_eq!(d.channels(Some(b"*")).len(), 8, "all but the empty name");
    assert_eq!(d.channels(Some(b"a?b")), names(&[b"a[b"]));
    assert_eq!(d.channels(Some(b"\\[*")), names(&[b"[x]"]));
    assert_eq!(
        d.shard_channels(Some(b"[\x80-\xff]*")),
        names(&[b"\xff\x80\xc3\xa9"])
    );
    d.numsub(&weird);
    d.shard_numsub(&weird);
    d.unsubscribe(0, Kind::Channel, &weird);
    d.unsubscribe(1, Kind::Shard, &[]);
    d.finish();
}

/// The empty name is a channel like any other: `CHANNELS` with no pattern
/// lists it, `CHANNELS *` does not, `CHANNELS ""` lists only it; only the
/// empty pattern matches it, and `*` does not.
#[test]
fn the_empty_channel_is_listed_without_a_pattern_but_not_by_star() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut d = Differential::new(&server, 2);
    d.subscribe(0, Kind::Channel, &[b"", b"a", b"b*"]);
    d.subscribe(0, Kind::Pattern, &[b"pat*"]);
    d.subscribe(0, Kind::Shard, &[b"", b"shard"]);
    assert_eq!(d.channels(None), names(&[b"", b"a", b"b*"]));
    assert_eq!(d.channels(Some(b"*")), names(&[b"a", b"b*"]));
    assert_eq!(d.channels(Some(b"")), names(&[b""]));
    assert_eq!(d.channels(Some(b"b\\*")), names(&[b"b*"]));
    assert_eq!(d.shard_channels(None), names(&[b"", b"shard"]));
    assert_eq!(d.shard_channels(Some(b"*")), names(&[b"shard"]));
    assert_eq!(d.numsub(&[b""]), [pair(b"", 1)]);
    d.subscribe(1, Kind::Pattern, &[b"*", b"", b"?*"]);
    assert_eq!(d.publish(b"", b""), 2);
    assert_eq!(d.spublish(b"", b""), 1);
    assert_eq!(
        d.deliveries(),
        [
            vec![Push::message(b"", b""), Push::smessage(b"", b"")],
            vec![Push::pmessage(b"", b"", b"")]
        ]
    );
    d.finish();
}

/// Disconnecting removes every subscription of all three kinds, silently:
/// `NUMSUB` and `SHARDNUMSUB` drop, a pattern another client still holds
/// stays in `NUMPAT`, and messages queued before the disconnect were still
/// delivered.
#[test]
fn disconnect_removes_every_subscription() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut d = Differential::new(&server, 2);
    d.subscribe(0, Kind::Pattern, &[b"dp*", b"only*"]);
    d.subscribe(0, Kind::Channel, &[b"dc1"]);
    d.subscribe(0, Kind::Shard, &[b"ds"]);
    d.subscribe(1, Kind::Pattern, &[b"dp*"]);
    assert_eq!(d.numpat(), 2);
    assert_eq!(d.publish(b"dc1", b"last"), 1);
    assert_eq!(d.reconnect(0), [Push::message(b"dc1", b"last")]);
    assert_eq!(d.numsub(&[b"dc1"]), [pair(b"dc1", 0)]);
    assert_eq!(d.shard_numsub(&[b"ds"]), [pair(b"ds", 0)]);
    assert_eq!(d.numpat(), 1);
    assert_eq!(d.channels(None), names(&[]));
    assert_eq!(d.shard_channels(None), names(&[]));
    assert_eq!(d.publish(b"dp1", b"m"), 1);
    assert_eq!(d.reconnect(1), [Push::pmessage(b"dp*", b"dp1", b"m")]);
    assert_eq!(d.numpat(), 0);
    // The reconnected clients start from nothing.
    assert_eq!(d.unsubscribe(0, Kind::Pattern, &[]), [unsub(None, 0)]);
    assert_eq!(d.subscribe(0, Kind::Channel, &[b"dc1"]), [1]);
    d.finish();
}

/// Messages queued before an unsubscribe still arrive, in order; nothing
/// arrives through the subscription afterwards, while a matching pattern
/// the client keeps still delivers.
#[test]
fn messages_queued_before_an_unsubscribe_still_arrive() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut d = Differential::new(&server, 1);
    d.subscribe(0, Kind::Channel, &[b"c", b"d"]);
    d.subscribe(0, Kind::Pattern, &[b"?"]);
    d.publish(b"c", b"1");
    d.publish(b"d", b"2");
    d.unsubscribe(0, Kind::Channel, &[b"c"]);
    d.publish(b"c", b"3");
    d.unsubscribe(0, Kind::Pattern, &[]);
    d.publish(b"c", b"4");
    d.publish(b"d", b"5");
    assert_eq!(
        d.deliveries(),
        [vec![
            Push::message(b"c", b"1"),
            Push::pmessage(b"?", b"c", b"1"),
            Push::message(b"d", b"2"),
            Push::pmessage(b"?", b"d", b"2"),
            Push::pmessage(b"?", b"c", b"3"),
            Push::message(b"d", b"5"),
        ]]
    );
    d.finish();
}

/// Many patterns matching one channel deliver one `pmessage` each, after
/// the `message`, in an order Redis leaves to its hash table; tannoy
/// delivers the same multiset.
#[test]
fn many_matching_patterns_deliver_the_same_multiset() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let patterns: [&[u8]; 12] = [
        b"o*",
        b"or*",
        b"ord*",
        b"orde*",
        b"*r",
        b"?rder",
        b"o?der",
        b"[o]rder",
        b"*",
        b"[^x]*",
        b"[a-z]rder",
        b"[z-a]*r",
    ];
    let mut d = Differential::new(&server, 2);
    d.subscribe(0, Kind::Channel, &[b"order"]);
    d.subscribe(0, Kind::Pattern, &patterns);
    let mut reversed = patterns;
    reversed.reverse();
    d.subscribe(1, Kind::Pattern, &reversed);
    for _ in 0..10 {
        assert_eq!(d.publish_unique(b"order", b"o"), 25);
    }
    let delivered = d.deliveries();
    assert_eq!((delivered[0].len(), delivered[1].len()), (130, 120));
    d.finish();
}

/// Disconnect and reconnect in a loop, with subscriptions of every kind
/// each time: nothing accumulates on either side.
#[test]
fn reconnecting_clients_leave_nothing_behind() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let mut d = Differential::new(&server, 3);
    for round in 0..20 {
        let i = round % 3;
        let channel = format!("c{}", round % 4).into_bytes();
        d.subscribe(i, Kind::Channel, &[&channel, b"all"]);
        d.subscribe(i, Kind::Pattern, &[b"c*", b"?"]);
        d.subscribe(i, Kind::Shard, &[&channel]);
        d.publish_unique(b"all", b"");
        d.publish_unique(&channel, b"");
        d.spublish_unique(&channel, b"");
        d.reconnect((round + 1) % 3);
        d.numsub(&[b"all", b"c0", b"c1"]);
        d.numpat();
    }
    d.finish();
}

/// Random sequences of every operation, over several clients and hostile
/// names, agree on every answer (see `support/differential.rs`).
///
/// One server serves every sequence; each starts from a verified-empty
/// server and ends by disconnecting everyone and checking both sides are
/// empty. Case count: `PROPTEST_CASES`, default 1000.
#[test]
fn prop_random_sequences_agree() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    run_sequences("prop_random_sequences_agree", &server, cases, 4, 40);
}

/// Runs `cases` random sequences of up to `max_ops` operations on up to
/// `max_clients` clients against `server`, then reports the totals.
///
/// # Panics
///
/// With proptest's minimal failing sequence, when one disagrees.
fn run_sequences(
    test: &str,
    server: &redis_support::RedisServer,
    cases: u32,
    max_clients: usize,
    max_ops: usize,
) {
    let config = Config {
        cases,
        // The runner is driven by hand, so there is no source file to
        // persist failures beside; the failing sequence is in the panic.
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let total = Cell::new(Stats::default());
    let sequences = Cell::new(0u64);
    let started = Instant::now();
    let strategy = differential::sequence(max_clients, max_ops);
    let result = runner.run(&strategy, |(clients, ops)| {
        let mut d = Differential::new(server, clients);
        for op in &ops {
            d.apply(op);
        }
        let mut stats = total.get();
        stats.add(d.finish());
        total.set(stats);
        sequences.set(sequences.get() + 1);
        Ok(())
    });
    report(&format!(
        "{test}: {} sequences run ({cases} cases asked, up to {max_ops} ops on up to \
         {max_clients} clients), {} in {:.1?}",
        sequences.get(),
        total.get(),
        started.elapsed()
    ));
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

/// Long random sequences over more clients agree too: with up to 160
/// operations, names pile up, so publishes meet many channels and
/// patterns at once and unsubscribes find more to drop. Case count:
/// `PROPTEST_CASES` / 10, default 100.
#[test]
fn prop_long_sequences_agree() {
    let Some(server) = redis_or_skip() else {
        return;
    };
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .map_or(100, |n| n.div_ceil(10));
    run_sequences("prop_long_sequences_agree", &server, cases, 6, 160);
}

/// Without a server every test in this file skips and passes; with
/// `TANNOY_REQUIRE_REDIS=1` they fail instead.
///
/// Runs this test binary again, minus this test, with the server path
/// pointed at nothing.
#[test]
fn every_test_skips_without_a_server_unless_required() {
    let run = |require: Option<&str>| {
        rerun_without_server(
            &[
                "--skip",
                "every_test_skips_without_a_server",
                "--test-threads",
                "1",
            ],
            require,
        )
    };
    let (passed, text) = run(None);
    assert!(passed, "without a server every test must skip:\n{text}");
    assert!(
        text.contains("skipping: ") && !text.contains(" 0 passed"),
        "the tests ran and reported the skip:\n{text}"
    );
    let (passed, text) = run(Some("1"));
    assert!(
        !passed,
        "with {REQUIRE_ENV}=1 a missing server must fail:\n{text}"
    );
    assert!(
        text.contains("redis-server not found"),
        "the failure explains itself:\n{text}"
    );
}

/// The delivery comparison forgives exactly what Redis leaves open: the
/// order of one publish's `pmessage`s among themselves. The exact message
/// must come first, publishes keep their order, and nothing may be missing
/// or added. (Checks the driver itself; needs no server.)
#[test]
fn delivery_comparison_forgives_only_pattern_order_within_a_publish() {
    use differential::canonical;
    let m = |payload: &[u8]| Push::message(b"c", payload);
    let pm = |pattern: &[u8], payload: &[u8]| Push::pmessage(pattern, b"c", payload);
    let same = |a: &[Push], b: &[Push]| canonical(a) == canonical(b);

    assert!(same(
        &[m(b"1"), pm(b"a*", b"1"), pm(b"*", b"1")],
        &[m(b"1"), pm(b"*", b"1"), pm(b"a*", b"1")]
    ));
    assert!(same(
        &[
            pm(b"a*", b"1"),
            pm(b"*", b"1"),
            pm(b"*", b"2"),
            pm(b"a*", b"2")
        ],
        &[
            pm(b"*", b"1"),
            pm(b"a*", b"1"),
            pm(b"a*", b"2"),
            pm(b"*", b"2")
        ]
    ));
    // The exact message first.
    assert!(!same(
        &[m(b"1"), pm(b"a*", b"1")],
        &[pm(b"a*", b"1"), m(b"1")]
    ));
    // Publishes in order.
    assert!(!same(
        &[pm(b"a*", b"1"), pm(b"*", b"2")],
        &[pm(b"*", b"2"), pm(b"a*", b"1")]
    ));
    // Nothing missing, duplicated or of another kind.
    assert!(!same(&[m(b"1"), pm(b"a*", b"1")], &[m(b"1")]));
    assert!(!same(
        &[pm(b"a*", b"1")],
        &[pm(b"a*", b"1"), pm(b"a*", b"1")]
    ));
    assert!(!same(&[m(b"1")], &[Push::smessage(b"c", b"1")]));
    assert!(!same(&[m(b"1")], &[Push::message(b"d", b"1")]));
}
