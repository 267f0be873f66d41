//! Subscription bookkeeping and introspection: the counts that
//! (un)subscribe calls return (semantics spec §4), `PUBSUB`-style
//! introspection (§5, §6), and what dropping a subscriber removes.

use std::collections::BTreeSet;

use tannoy::{Broker, Bytes, Subscriber};

/// No names, for the "all" form of the unsubscribe calls.
const ALL: [&str; 0] = [];

/// `names` as a sorted set of owned byte strings.
fn set<I>(names: I) -> BTreeSet<Vec<u8>>
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    names.into_iter().map(|n| n.as_ref().to_vec()).collect()
}

/// A `numsub`-style reply built from literals.
fn counts(pairs: &[(&[u8], usize)]) -> Vec<(Bytes, usize)> {
    pairs
        .iter()
        .map(|&(name, n)| (Bytes::copy_from_slice(name), n))
        .collect()
}

/// Every message queued for `sub` right now.
fn drained(sub: &Subscriber) -> usize {
    sub.try_iter().count()
}

/// `subscribe` returns channels plus patterns held after the call; a name
/// repeated in one call counts once (`SUBSCRIBE x x y x` ends at 2).
#[test]
fn subscribe_counts_distinct_names_only() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    assert_eq!(sub.subscribe(["a", "b"]), 2);
    assert_eq!(sub.subscribe(["x", "x", "y", "x"]), 4);
    assert_eq!(sub.subscribe(["x"]), 4);
    assert_eq!(sub.subscription_count(), 4);
}

/// An empty list subscribes to nothing and reports the current count.
#[test]
fn subscribe_with_empty_list_changes_nothing() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    assert_eq!(sub.subscribe(ALL), 0);
    sub.subscribe(["a"]);
    sub.psubscribe(["p*"]);
    sub.ssubscribe(["s"]);
    assert_eq!(sub.subscribe(ALL), 2);
    assert_eq!(sub.psubscribe(ALL), 2);
    assert_eq!(sub.ssubscribe(ALL), 1);
    assert_eq!(broker.channels(None), ["a"]);
}

/// Counts mix channels and patterns: `SUBSCRIBE c1 c2` then
/// `PSUBSCRIBE p1 p2` gives 1, 2, 3, 4.
#[test]
fn counts_mix_channels_and_patterns() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    assert_eq!(sub.subscribe(["c1"]), 1);
    assert_eq!(sub.subscribe(["c2"]), 2);
    assert_eq!(sub.psubscribe(["p1"]), 3);
    assert_eq!(sub.psubscribe(["p2"]), 4);
    // A pattern and a channel with the same bytes are different subscriptions.
    assert_eq!(sub.psubscribe(["c1"]), 5);
    assert_eq!(sub.subscribe(["p1"]), 6);
}

/// A duplicate pattern (in one call or later) is idempotent: same count,
/// one `pmessage` per matching publish.
#[test]
fn duplicate_psubscribe_is_idempotent() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    assert_eq!(sub.psubscribe(["p*", "p*"]), 1);
    assert_eq!(sub.psubscribe(["p*"]), 1);
    assert_eq!(broker.publish("px", "1"), 1);
    assert_eq!(drained(&sub), 1);
    assert_eq!(broker.numpat(), 1);
}

/// Shard counts are separate: `ssubscribe` counts shard channels only, and
/// `subscribe` ignores the shard channels held.
#[test]
fn shard_counts_are_separate() {
    let broker = Broker::new();
    let a = broker.subscriber();
    a.subscribe(["c1", "c2"]);
    a.psubscribe(["p1", "p2"]);
    assert_eq!(a.ssubscribe(["s1"]), 1);
    assert_eq!(a.subscription_count(), 4);
    assert_eq!(a.shard_subscription_count(), 1);

    let b = broker.subscriber();
    assert_eq!(b.ssubscribe(["s1", "s2", "s2"]), 2);
    assert_eq!(b.subscribe(["n1"]), 1);
    assert_eq!(b.sunsubscribe(["s1"]), 1);
    assert_eq!(b.unsubscribe(["n1"]), 0);
}

/// Unsubscribing names not held leaves the count unchanged, even on a
/// subscriber that never subscribed.
#[test]
fn unsubscribing_names_not_held_is_harmless() {
    let broker = Broker::new();
    let fresh = broker.subscriber();
    assert_eq!(fresh.unsubscribe(["a", "b"]), 0);
    assert_eq!(fresh.punsubscribe(["a*"]), 0);
    assert_eq!(fresh.sunsubscribe(["a"]), 0);

    // Holding x, y and p*: `UNSUBSCRIBE nope x x` ends at 2.
    let sub = broker.subscriber();
    sub.subscribe(["x", "y"]);
    sub.psubscribe(["p*"]);
    assert_eq!(sub.unsubscribe(["nope"]), 3);
    assert_eq!(sub.unsubscribe(["nope", "x", "x"]), 2);
    assert_eq!(set(sub.subscribed_channels()), set(["y"]));
}

/// Unsubscribing a name in the wrong namespace is "not held": the count is
/// unchanged and the subscription keeps delivering.
#[test]
fn wrong_namespace_unsubscribe_is_not_held() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.psubscribe(["p*"]);
    sub.subscribe(["c2"]);
    sub.ssubscribe(["s"]);

    assert_eq!(sub.unsubscribe(["p*"]), 2);
    assert_eq!(sub.sunsubscribe(["c2", "p*"]), 1);
    assert_eq!(sub.punsubscribe(["c2", "s"]), 2);
    assert_eq!(sub.unsubscribe(["s"]), 2);

    assert_eq!(broker.numpat(), 1);
    assert_eq!(broker.numsub(["c2"]), counts(&[(b"c2", 1)]));
    assert_eq!(broker.shard_numsub(["s"]), counts(&[(b"s", 1)]));
    assert_eq!(broker.publish("p1", "x"), 1);
    assert_eq!(broker.publish("c2", "x"), 1);
    assert_eq!(broker.spublish("s", "x"), 1);
}

/// Unsubscribing compares exact bytes: no glob. `punsubscribe(["f*"])`
/// removes `f*` only, and `unsubscribe(["f*"])` does not remove `foo`.
#[test]
fn unsubscribe_compares_exact_bytes() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.psubscribe(["f*", "fo*"]);
    sub.subscribe(["foo"]);
    assert_eq!(sub.punsubscribe(["f*"]), 2);
    assert_eq!(sub.unsubscribe(["f*", "*", "fo?"]), 2);
    assert_eq!(set(sub.subscribed_patterns()), set(["fo*"]));
    assert_eq!(broker.publish("foo", "x"), 2);
}

/// `unsubscribe` with an empty list drops every channel and reports the
/// patterns left; `punsubscribe` likewise keeps channels, and
/// `sunsubscribe` keeps both.
#[test]
fn empty_list_unsubscribes_all_of_one_kind() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["a", "b", "c"]);
    sub.psubscribe(["p1", "p2"]);
    sub.ssubscribe(["s1", "s2"]);

    assert_eq!(sub.sunsubscribe(ALL), 0);
    assert_eq!(sub.subscription_count(), 5);
    assert!(broker.shard_channels(None).is_empty());

    assert_eq!(sub.unsubscribe(ALL), 2);
    assert!(sub.subscribed_channels().is_empty());
    assert!(broker.channels(None).is_empty());
    assert_eq!(broker.numpat(), 2);

    sub.subscribe(["a"]);
    assert_eq!(sub.punsubscribe(ALL), 1);
    assert!(sub.subscribed_patterns().is_empty());
    assert_eq!(broker.numpat(), 0);
    assert_eq!(broker.channels(None), ["a"]);
}

/// The "all" forms work with any empty iterable, including `None`.
#[test]
fn none_and_empty_vec_mean_all() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["a", "b"]);
    sub.psubscribe(["p*"]);
    sub.ssubscribe(["s"]);
    assert_eq!(sub.unsubscribe(None::<&str>), 1);
    assert_eq!(sub.punsubscribe(Vec::<Vec<u8>>::new()), 0);
    assert_eq!(sub.sunsubscribe(std::iter::empty::<&[u8]>()), 0);
}

/// The "all" form with none of that kind held reports the current count,
/// which can be non-zero: 2 patterns and no channels gives 2.
#[test]
fn empty_list_with_nothing_of_that_kind_reports_current_count() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    assert_eq!(sub.unsubscribe(ALL), 0);
    assert_eq!(sub.punsubscribe(ALL), 0);
    assert_eq!(sub.sunsubscribe(ALL), 0);

    sub.psubscribe(["p1", "p2"]);
    assert_eq!(sub.unsubscribe(ALL), 2);
    assert_eq!(sub.sunsubscribe(ALL), 0);
    sub.ssubscribe(["s"]);
    sub.punsubscribe(ALL);
    assert_eq!(sub.punsubscribe(ALL), 0);
    assert_eq!(sub.shard_subscription_count(), 1);
}

/// Subscriber introspection lists exactly the sets held, one per
/// namespace, and the two counts.
#[test]
fn subscriber_introspection_reflects_held_sets() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe([b"a".as_slice(), b"", b"\xff"]);
    sub.psubscribe(["a*", "a"]);
    sub.ssubscribe(["a", "s"]);

    assert_eq!(
        set(sub.subscribed_channels()),
        set([b"a".as_slice(), b"", b"\xff"])
    );
    assert_eq!(set(sub.subscribed_patterns()), set(["a*", "a"]));
    assert_eq!(set(sub.subscribed_shard_channels()), set(["a", "s"]));
    assert_eq!(sub.subscribed_channels().len(), 3);
    assert_eq!(sub.subscription_count(), 5);
    assert_eq!(sub.shard_subscription_count(), 2);

    sub.unsubscribe([b"".as_slice()]);
    sub.punsubscribe(["a"]);
    sub.sunsubscribe(["s"]);
    assert_eq!(
        set(sub.subscribed_channels()),
        set([b"a".as_slice(), b"\xff"])
    );
    assert_eq!(set(sub.subscribed_patterns()), set(["a*"]));
    assert_eq!(set(sub.subscribed_shard_channels()), set(["a"]));
    assert_eq!(sub.subscription_count(), 3);
    assert_eq!(sub.shard_subscription_count(), 1);
}

/// `channels(None)` lists exactly the active exact channels, the empty
/// name included; patterns and shard channels are never listed.
#[test]
fn channels_lists_active_exact_channels_only() {
    let broker = Broker::new();
    let a = broker.subscriber();
    let b = broker.subscriber();
    a.subscribe([b"".as_slice(), b"x", b"\x80"]);
    b.subscribe(["x", "y"]);
    b.psubscribe(["pat*"]);
    b.ssubscribe(["shard"]);

    assert_eq!(
        set(broker.channels(None)),
        set([b"".as_slice(), b"x", b"\x80", b"y"])
    );
    assert_eq!(broker.channels(None).len(), 4, "each channel listed once");

    a.unsubscribe(["x"]);
    assert_eq!(
        set(broker.channels(None)),
        set([b"".as_slice(), b"x", b"\x80", b"y"])
    );
    b.unsubscribe(["x"]);
    assert_eq!(
        set(broker.channels(None)),
        set([b"".as_slice(), b"\x80", b"y"])
    );
}

/// `channels(Some("*"))` does not list the empty-named channel (`*` needs a
/// byte), while `channels(None)` does; `channels(Some(""))` lists only it.
#[test]
fn star_filter_skips_the_empty_channel_and_empty_filter_finds_only_it() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["", "a", "b"]);

    assert_eq!(set(broker.channels(None)), set(["", "a", "b"]));
    assert_eq!(set(broker.channels(Some("*"))), set(["a", "b"]));
    assert_eq!(broker.channels(Some("")), [Bytes::new()]);
    assert_eq!(broker.channels(b""), [Bytes::new()]);
}

/// Filters use Redis's glob: `b\*` lists the literal channel `b*` only,
/// `[!a]` lists `!` and `a`, and byte-string filters work for binary names.
#[test]
fn channels_filter_uses_redis_glob() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe([
        b"b*".as_slice(),
        b"bx",
        b"b",
        b"!",
        b"a",
        b"\x80raw",
        b"\x90",
    ]);

    assert_eq!(broker.channels(b"b\\*"), [b"b*".as_slice()]);
    assert_eq!(set(broker.channels(Some("b*"))), set(["b*", "bx", "b"]));
    // `!` is a class member, not a negation: `b*`, `bx`... are not listed.
    assert_eq!(set(broker.channels(Some("[!a]"))), set(["!", "a"]));
    assert_eq!(broker.channels(b"\x80*"), [b"\x80raw".as_slice()]);
    // Signed ranges: 0x80..0xFF is -128..-1, so both high-byte names match.
    assert_eq!(
        set(broker.channels(b"[\x80-\xff]*")),
        set([b"\x80raw".as_slice(), b"\x90"])
    );
    assert!(broker.channels(Some("nothing*")).is_empty());
    // Every accepted filter type agrees.
    let owned = String::from("b?");
    let expected = set(["b*", "bx"]);
    assert_eq!(set(broker.channels(owned.as_str())), expected);
    assert_eq!(set(broker.channels(&owned)), expected);
    assert_eq!(set(broker.channels(owned.clone())), expected);
    assert_eq!(set(broker.channels(owned.as_bytes())), expected);
    assert_eq!(set(broker.channels(owned.as_bytes().to_vec())), expected);
    assert_eq!(set(broker.channels(Bytes::from(owned))), expected);
}

/// `numsub` answers in argument order with duplicates repeated, counts
/// exact subscribers only (a pattern named like the channel adds nothing),
/// and an empty argument list gives an empty answer.
#[test]
fn numsub_in_argument_order_with_duplicates_excluding_patterns() {
    let broker = Broker::new();
    let a = broker.subscriber();
    let b = broker.subscriber();
    a.subscribe(["x", "y"]);
    b.subscribe(["x"]);
    a.psubscribe(["foo*", "x"]);
    b.psubscribe(["foo*"]);

    assert_eq!(
        broker.numsub(["y", "x", "unknown", "x", "foo*"]),
        counts(&[
            (b"y", 1),
            (b"x", 2),
            (b"unknown", 0),
            (b"x", 2),
            (b"foo*", 0)
        ])
    );
    assert!(broker.numsub(ALL).is_empty());
    assert_eq!(broker.numsub([b"".as_slice()]), counts(&[(b"", 0)]));
}

/// `numpat` counts distinct patterns across subscribers: A with `foo*`,
/// `bar*` and B with `foo*`, `baz*` give 3; it drops only when the last
/// holder of a pattern lets go.
#[test]
fn numpat_counts_distinct_patterns() {
    let broker = Broker::new();
    let a = broker.subscriber();
    let b = broker.subscriber();
    assert_eq!(broker.numpat(), 0);
    a.psubscribe(["foo*", "bar*"]);
    b.psubscribe(["foo*", "baz*"]);
    a.subscribe(["foo*"]);
    assert_eq!(broker.numpat(), 3);

    a.punsubscribe(["foo*"]);
    assert_eq!(broker.numpat(), 3);
    b.punsubscribe(["foo*"]);
    assert_eq!(broker.numpat(), 2);
    a.punsubscribe(ALL);
    b.punsubscribe(ALL);
    assert_eq!(broker.numpat(), 0);
}

/// Shard introspection is separate: `shard_channels` and `shard_numsub`
/// see only shard channels, `channels` and `numsub` never do.
#[test]
fn shard_introspection_is_separate() {
    let broker = Broker::new();
    let a = broker.subscriber();
    let b = broker.subscriber();
    a.ssubscribe(["same", "orders:{1}", ""]);
    b.ssubscribe(["same"]);
    b.subscribe(["plain", "same"]);

    assert_eq!(
        set(broker.shard_channels(None)),
        set(["same", "orders:{1}", ""])
    );
    assert_eq!(
        set(broker.shard_channels(Some("*"))),
        set(["same", "orders:{1}"])
    );
    assert_eq!(broker.shard_channels(Some("orders:\\{?}")), ["orders:{1}"]);
    assert_eq!(set(broker.channels(None)), set(["plain", "same"]));
    assert_eq!(
        broker.shard_numsub(["same", "unknown", "plain", "same"]),
        counts(&[(b"same", 2), (b"unknown", 0), (b"plain", 0), (b"same", 2)])
    );
    assert_eq!(
        broker.numsub(["same", "orders:{1}"]),
        counts(&[(b"same", 1), (b"orders:{1}", 0)])
    );
    assert!(broker.shard_numsub(ALL).is_empty());

    a.sunsubscribe(["same"]);
    assert_eq!(broker.shard_numsub(["same"]), counts(&[(b"same", 1)]));
    b.sunsubscribe(ALL);
    assert_eq!(set(broker.shard_channels(None)), set(["orders:{1}", ""]));
    assert_eq!(broker.numsub(["same"]), counts(&[(b"same", 1)]));
}

/// A channel stays active while any subscriber holds it and disappears
/// with the last one.
#[test]
fn channel_is_active_exactly_while_someone_holds_it() {
    let broker = Broker::new();
    let a = broker.subscriber();
    let b = broker.subscriber();
    a.subscribe(["c"]);
    b.subscribe(["c"]);
    assert_eq!(broker.numsub(["c"]), counts(&[(b"c", 2)]));
    a.unsubscribe(["c"]);
    assert_eq!(broker.numsub(["c"]), counts(&[(b"c", 1)]));
    assert_eq!(broker.channels(None), ["c"]);
    b.unsubscribe(ALL);
    assert_eq!(broker.numsub(["c"]), counts(&[(b"c", 0)]));
    assert!(broker.channels(None).is_empty());
    assert_eq!(broker.publish("c", "x"), 0);
}

/// Dropping a subscriber removes all its subscriptions at once, as a Redis
/// disconnect does: `numsub` 1 to 0, `shard_numsub` 1 to 0, `numpat` stays
/// while another holds the pattern, then drops.
#[test]
fn dropping_a_subscriber_removes_all_its_subscriptions_at_once() {
    let broker = Broker::new();
    let a = broker.subscriber();
    let b = broker.subscriber();
    a.subscribe(["dc1", "shared"]);
    a.ssubscribe(["ds"]);
    a.psubscribe(["dp*", "only-a*"]);
    b.psubscribe(["dp*"]);
    b.subscribe(["shared"]);

    drop(a);
    assert_eq!(
        broker.numsub(["dc1", "shared"]),
        counts(&[(b"dc1", 0), (b"shared", 1)])
    );
    assert_eq!(broker.shard_numsub(["ds"]), counts(&[(b"ds", 0)]));
    assert_eq!(broker.numpat(), 1);
    assert_eq!(broker.channels(None), ["shared"]);
    assert!(broker.shard_channels(None).is_empty());
    assert_eq!(broker.publish("dc1", "x"), 0);
    assert_eq!(broker.publish("only-a1", "x"), 0);
    assert_eq!(broker.spublish("ds", "x"), 0);

    drop(b);
    assert_eq!(broker.numpat(), 0);
    assert!(broker.channels(None).is_empty());
    assert_eq!(broker.publish("dp1", "x"), 0);
}

/// Dropping a subscriber with messages still queued is fine and affects no
/// other subscriber's queue or subscriptions.
#[test]
fn dropping_a_subscriber_leaves_others_untouched() {
    let broker = Broker::new();
    let a = broker.subscriber();
    let b = broker.subscriber();
    a.subscribe(["c"]);
    b.subscribe(["c"]);
    broker.publish("c", "1");
    drop(a);
    assert_eq!(b.len(), 1);
    assert_eq!(b.subscription_count(), 1);
    assert_eq!(broker.publish("c", "2"), 1);
    assert_eq!(drained(&b), 2);
}
