//! Delivery: who receives what, as which kind of message, in which order,
//! and what `publish` / `spublish` return (semantics spec §3 and §6).

#[path = "support/drain.rs"]
mod drain;
#[path = "support/rng.rs"]
mod rng;
#[path = "support/watchdog.rs"]
mod watchdog;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use drain::drain_as;
use rng::Rng;
use tannoy::{
    Broker, BrokerBuilder, Bytes, Message, MessageKind, OverflowPolicy, Subscriber, TryRecvError,
};

/// A received message as plain owned data, for comparisons:
/// (kind as Redis names it, channel, pattern, payload).
type Got = (&'static str, Vec<u8>, Option<Vec<u8>>, Vec<u8>);

/// `msg` as a [`Got`].
fn got(msg: &Message) -> Got {
    (
        msg.kind().as_str(),
        msg.channel().to_vec(),
        msg.pattern().map(|p| p.to_vec()),
        msg.payload().to_vec(),
    )
}

/// An exact-channel message as a [`Got`].
fn message(channel: &[u8], payload: &[u8]) -> Got {
    ("message", channel.to_vec(), None, payload.to_vec())
}

/// A pattern message as a [`Got`].
fn pmessage(pattern: &[u8], channel: &[u8], payload: &[u8]) -> Got {
    (
        "pmessage",
        channel.to_vec(),
        Some(pattern.to_vec()),
        payload.to_vec(),
    )
}

/// A shard message as a [`Got`].
fn smessage(channel: &[u8], payload: &[u8]) -> Got {
    ("smessage", channel.to_vec(), None, payload.to_vec())
}

/// Everything queued for `sub` right now, oldest first.
fn drain(sub: &Subscriber) -> Vec<Got> {
    drain_as(sub, got)
}

/// An exact subscriber receives a `Message` naming the channel, with no
/// pattern and the payload unchanged.
#[test]
fn exact_subscription_delivers_message_kind() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["orders"]);

    assert_eq!(broker.publish("orders", "o-1"), 1);
    let msg = sub.try_recv().expect("queued by publish");
    assert_eq!(msg.kind(), MessageKind::Message);
    assert_eq!(msg.kind().as_str(), "message");
    assert_eq!(msg.channel(), "orders");
    assert_eq!(msg.pattern(), None);
    assert_eq!(msg.payload(), "o-1");
    assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
}

/// A pattern subscriber receives a `PMessage` carrying the pattern as
/// subscribed and the channel as published.
#[test]
fn pattern_subscription_delivers_pmessage_with_pattern_and_concrete_channel() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.psubscribe(["news.*"]);

    assert_eq!(broker.publish("news.sport", "goal"), 1);
    let msg = sub.try_recv().expect("queued by publish");
    assert_eq!(msg.kind(), MessageKind::PMessage);
    assert_eq!(msg.kind().as_str(), "pmessage");
    assert_eq!(
        msg.pattern().expect("a pattern message names its pattern"),
        "news.*"
    );
    assert_eq!(msg.channel(), "news.sport");
    assert_eq!(msg.payload(), "goal");
}

/// A subscriber to a channel only gets messages published to exactly that
/// channel: no prefix, case or glob matching for exact subscriptions.
#[test]
fn exact_subscription_matches_exact_bytes_only() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["foo", "b*"]);

    for other in ["fo", "foo2", "Foo", "f*", "bar"] {
        assert_eq!(broker.publish(other, "x"), 0, "published to {other:?}");
    }
    assert_eq!(broker.publish("b*", "literal"), 1);
    assert_eq!(drain(&sub), [message(b"b*", b"literal")]);
}

/// The spec's verified example: one subscriber holding `news.sport` and five
/// patterns matching it gets 6 frames, the exact message first, and
/// `publish` returns 6.
#[test]
fn channel_plus_five_matching_patterns_count_and_receive_six() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["news.sport"]);
    let patterns: [&[u8]; 5] = [b"news.*", b"*", b"news.s*", b"n*", b"*sport"];
    assert_eq!(sub.psubscribe(patterns), 6);

    assert_eq!(broker.publish("news.sport", "goal"), 6);
    let frames = drain(&sub);
    assert_eq!(frames.len(), 6);
    assert_eq!(frames[0], message(b"news.sport", b"goal"));
    let rest: BTreeSet<Got> = frames[1..].iter().cloned().collect();
    let expected: BTreeSet<Got> = patterns
        .iter()
        .map(|p| pmessage(p, b"news.sport", b"goal"))
        .collect();
    assert_eq!(rest, expected);
}

/// Two subscribers holding the same pattern are counted twice, and each
/// receives its own copy.
#[test]
fn two_subscribers_on_one_pattern_count_two() {
    let broker = Broker::new();
    let a = broker.subscriber();
    let b = broker.subscriber();
    a.psubscribe(["ch*"]);
    b.psubscribe(["ch*"]);

    assert_eq!(broker.publish("chat", "hi"), 2);
    assert_eq!(drain(&a), [pmessage(b"ch*", b"chat", b"hi")]);
    assert_eq!(drain(&b), [pmessage(b"ch*", b"chat", b"hi")]);
}

/// The receiver count sums, over subscribers, one for the exact channel plus
/// one per matching pattern; non-matching patterns add nothing.
#[test]
fn publish_count_sums_exact_and_matching_patterns_over_subscribers() {
    let broker = Broker::new();
    let a = broker.subscriber();
    let b = broker.subscriber();
    let c = broker.subscriber();
    a.subscribe(["news.sport"]);
    a.psubscribe(["news.*", "weather.*"]);
    b.psubscribe(["*", "[", "news.sport?"]);
    c.subscribe(["news.weather"]);

    // a: exact + news.*; b: *; c: nothing.
    assert_eq!(broker.publish("news.sport", "goal"), 3);
    assert_eq!(drain(&a).len(), 2);
    assert_eq!(drain(&b), [pmessage(b"*", b"news.sport", b"goal")]);
    assert!(drain(&c).is_empty());
}

/// A message published while nobody matches is gone: `publish` returns 0
/// and a later subscriber does not receive it.
#[test]
fn nothing_is_stored_for_later_subscribers() {
    let broker = Broker::new();
    assert_eq!(broker.publish("c", "early"), 0);
    let sub = broker.subscriber();
    sub.subscribe(["c"]);
    sub.psubscribe(["*"]);
    assert!(drain(&sub).is_empty());
    assert_eq!(broker.publish("c", "late"), 2);
    assert_eq!(drain(&sub)[0], message(b"c", b"late"));
}

/// Subscribing again to a channel or pattern already held does not
/// duplicate delivery: still one copy per publish.
#[test]
fn resubscribing_does_not_duplicate_delivery() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["x", "x"]);
    sub.subscribe(["x"]);
    sub.psubscribe(["x*", "x*"]);
    sub.psubscribe(["x*"]);

    assert_eq!(broker.publish("x", "1"), 2);
    assert_eq!(
        drain(&sub),
        [message(b"x", b"1"), pmessage(b"x*", b"x", b"1")]
    );
}

/// Per subscriber, the exact-channel message of a publish comes before all
/// pattern messages of that publish, whatever the subscription order.
#[test]
fn exact_message_precedes_pattern_messages_of_the_same_publish() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    // Patterns first, so subscription order would put them first.
    sub.psubscribe([
        "o*", "or*", "ord*", "orde*", "*r", "?rder", "o?der", "[o]rder", "*",
    ]);
    sub.subscribe(["order"]);

    for i in 0..20 {
        let payload = format!("m{i}");
        assert_eq!(broker.publish("order", payload.clone()), 10);
        let frames = drain(&sub);
        assert_eq!(frames.len(), 10);
        assert_eq!(frames[0], message(b"order", payload.as_bytes()));
        assert!(
            frames[1..].iter().all(|f| f.0 == "pmessage"),
            "pattern messages must follow the exact one: {frames:?}"
        );
    }
}

/// Pattern messages of one publish go out once per matching pattern, never
/// twice for the same pattern, and each names the pattern that matched.
#[test]
fn each_matching_pattern_delivers_exactly_once_per_publish() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    let patterns = ["a*", "*b", "a?", "[ab][ab]", "ab", "\\a*", "x*"];
    sub.psubscribe(patterns);

    assert_eq!(broker.publish("ab", "p"), 6);
    let frames = drain(&sub);
    let names: Vec<Vec<u8>> = frames.iter().map(|f| f.2.clone().unwrap()).collect();
    let distinct: BTreeSet<&Vec<u8>> = names.iter().collect();
    assert_eq!(
        distinct.len(),
        names.len(),
        "a pattern delivered twice: {frames:?}"
    );
    let expected: BTreeSet<Got> = patterns[..6]
        .iter()
        .map(|p| pmessage(p.as_bytes(), b"ab", b"p"))
        .collect();
    assert_eq!(frames.into_iter().collect::<BTreeSet<_>>(), expected);
}

/// Hand-off is synchronous: when `publish` returns, the message is already
/// in every receiver's queue, so `try_recv` right after it sees it.
#[test]
fn try_recv_right_after_publish_sees_the_message() {
    let broker = Broker::new();
    let exact = broker.subscriber();
    let pattern = broker.subscriber();
    let shard = broker.subscriber();
    exact.subscribe(["c"]);
    pattern.psubscribe(["c*"]);
    shard.ssubscribe(["c"]);

    for i in 0..100u32 {
        let payload = i.to_string();
        assert_eq!(broker.publish("c", payload.clone()), 2);
        assert_eq!(broker.spublish("c", payload.clone()), 1);
        assert_eq!(exact.len(), 1);
        assert_eq!(exact.try_recv().unwrap().payload(), payload.as_str());
        assert_eq!(pattern.try_recv().unwrap().payload(), payload.as_str());
        assert_eq!(shard.try_recv().unwrap().payload(), payload.as_str());
    }
}

/// A receiver parked in a blocking `recv()` (no timeout, and the broker
/// stays open) is woken by one publish alone, whatever subscription
/// delivers it: for a feed reader (`DropOldest`), which waits on every
/// feed it reads at once, and for a subscriber with its own queue
/// (`DropNewest`, `Disconnect`).
#[test]
fn a_parked_recv_is_woken_by_one_publish() {
    /// A named publish and what it delivers.
    type Case = (&'static str, fn(&Broker) -> usize, Got);
    let publishes: [Case; 4] = [
        ("exact", |b| b.publish("c", "x"), message(b"c", b"x")),
        (
            "second exact",
            |b| b.publish("c2", "x"),
            message(b"c2", b"x"),
        ),
        (
            "pattern",
            |b| b.publish("p1", "x"),
            pmessage(b"p*", b"p1", b"x"),
        ),
        ("shard", |b| b.spublish("s", "x"), smessage(b"s", b"x")),
    ];
    for policy in [
        OverflowPolicy::DropOldest,
        OverflowPolicy::DropNewest,
        OverflowPolicy::Disconnect,
    ] {
        for (kind, publish, expected) in publishes.clone() {
            let what = format!("{policy:?}, {kind}: a parked recv was never woken");
            let received = watchdog::guarded(Duration::from_secs(60), &what, move || {
                let broker = Broker::new();
                let sub = broker.subscriber_with(policy);
                sub.subscribe(["c", "c2"]);
                sub.psubscribe(["p*"]);
                sub.ssubscribe(["s"]);
                let receiver = thread::spawn(move || sub.recv().map(|msg| got(&msg)));
                // Long enough for the receiver to give up spinning and park;
                // the broker stays open until it has returned.
                thread::sleep(Duration::from_millis(50));
                assert_eq!(publish(&broker), 1);
                let received = receiver.join().unwrap();
                drop(broker);
                received
            });
            assert_eq!(received, Ok(expected), "{policy:?}, {kind}");
        }
    }
}

/// A publish made on another thread is in the queue once that thread's
/// `publish` has returned (observed through `join`), with no waiting.
#[test]
fn publish_from_another_thread_is_queued_when_it_returns() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["jobs"]);
    let publisher = broker.clone();
    let count = std::thread::spawn(move || publisher.publish("jobs", "j-1"))
        .join()
        .unwrap();
    assert_eq!(count, 1);
    assert_eq!(sub.try_recv().unwrap().payload(), "j-1");
}

/// One publisher's messages reach a subscriber in publish order, across
/// channels, patterns and shard channels, and `seq` counts them 0, 1, 2, ...
#[test]
fn one_publishers_messages_arrive_in_publish_order_across_channels_and_patterns() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["a", "b"]);
    sub.psubscribe(["c*"]);
    sub.ssubscribe(["s"]);

    let mut expected = Vec::new();
    for i in 0..300u32 {
        let payload = i.to_string();
        let channel: &[u8] = match i % 4 {
            0 => b"a",
            1 => b"b",
            2 => b"c-1",
            _ => b"s",
        };
        if channel == b"s" {
            assert_eq!(broker.spublish(channel, payload.clone()), 1);
            expected.push(smessage(channel, payload.as_bytes()));
        } else {
            assert_eq!(broker.publish(channel, payload.clone()), 1);
            expected.push(match channel {
                b"c-1" => pmessage(b"c*", channel, payload.as_bytes()),
                _ => message(channel, payload.as_bytes()),
            });
        }
    }
    let mut received = Vec::new();
    for (n, msg) in sub.try_iter().enumerate() {
        assert_eq!(msg.seq(), n as u64);
        received.push(got(&msg));
    }
    assert_eq!(received, expected);
}

/// The same holds when one publisher writes streaks of messages to one
/// channel and then another, and the subscriber receives a few at a time
/// in between: a subscriber of several channels may take several messages
/// of one channel in a row, but never one published after another
/// channel's message that it has not yet received.
#[test]
fn streaks_on_several_channels_arrive_in_publish_order() {
    const CHANNELS: [&str; 4] = ["a", "b", "c", "p-1"];
    for seed in 1..=20u64 {
        let broker = Broker::builder().queue_capacity(1024).build();
        let sub = broker.subscriber();
        sub.subscribe(["a", "b", "c"]);
        sub.psubscribe(["p-*"]);
        let mut rng = Rng::new(seed);
        let (mut published, mut received) = (0u64, 0u64);
        // Each message must be the next one published, numbered as such.
        let mut check = |msg: Message| {
            assert_eq!(
                (msg.payload().as_ref(), msg.seq()),
                (received.to_string().as_bytes(), received),
                "seed {seed}"
            );
            received += 1;
        };
        while published < 600 {
            let channel = CHANNELS[rng.below(4)];
            for _ in 0..=rng.below(6) {
                broker.publish(channel, published.to_string());
                published += 1;
            }
            for _ in 0..rng.below(8) {
                let Ok(msg) = sub.try_recv() else { break };
                check(msg);
            }
        }
        sub.try_iter().for_each(&mut check);
        assert_eq!(received, published, "seed {seed}");
    }
}

/// Channel names, pattern names and payloads are arbitrary bytes: the empty
/// name, NUL and 0x80..0xFF all work, and so does an empty payload.
#[test]
fn names_and_payloads_are_binary_safe() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    let channels: [&[u8]; 5] = [b"", b"\x00", b"a\x00b", b"\x80\xff", b"caf\xc3\xa9"];
    assert_eq!(sub.subscribe(channels), 5);

    for channel in channels {
        let payload: Vec<u8> = [channel, b"\x00\xff\x80"].concat();
        assert_eq!(broker.publish(channel, payload.clone()), 1);
        assert_eq!(drain(&sub), [message(channel, &payload)]);
        assert_eq!(broker.publish(channel, Bytes::new()), 1);
        assert_eq!(drain(&sub), [message(channel, b"")]);
    }
    // The spec's verified case: channel b"\x00\xff" with an empty payload.
    let p = broker.subscriber();
    p.psubscribe([b"\x00?".as_slice()]);
    assert_eq!(broker.publish(b"\x00\xff", ""), 1);
    assert_eq!(drain(&p), [pmessage(b"\x00?", b"\x00\xff", b"")]);
}

/// The empty channel is matched only by the empty pattern: `*` and `**`
/// need at least one byte.
#[test]
fn empty_channel_is_matched_only_by_the_empty_pattern() {
    let broker = Broker::new();
    let stars = broker.subscriber();
    let empty = broker.subscriber();
    stars.psubscribe(["*", "**", "*?*"]);
    empty.psubscribe([""]);

    assert_eq!(broker.publish("", "e"), 1);
    assert!(drain(&stars).is_empty());
    assert_eq!(drain(&empty), [pmessage(b"", b"", b"e")]);
    assert_eq!(broker.publish("x", "x"), 3);
    assert!(drain(&empty).is_empty());
}

/// Patterns use Redis's glob: `!` does not negate, ranges are swapped,
/// braces and dots are literal, and a trailing backslash is a backslash.
#[test]
fn pattern_delivery_uses_redis_glob_rules() {
    let cases: [(&[u8], &[u8], bool); 10] = [
        (b"[!a]", b"!", true),
        (b"[!a]", b"b", false),
        (b"[z-a]", b"m", true),
        (b"{a,b}", b"a", false),
        (b"{a,b}", b"{a,b}", true),
        (b"a.b", b"axb", false),
        (b"\\", b"\\", true),
        (b"h?llo", b"hllo", false),
        (b"?", b"\xc3\xa9", false),
        (b"[\x00-\xff]", b"\x90", false),
    ];
    for (pattern, channel, matches) in cases {
        let broker = Broker::new();
        let sub = broker.subscriber();
        sub.psubscribe([pattern]);
        let count = broker.publish(channel, "x");
        assert_eq!(
            count,
            usize::from(matches),
            "pattern {:?} vs channel {:?}",
            pattern.escape_ascii().to_string(),
            channel.escape_ascii().to_string()
        );
        assert_eq!(drain(&sub).len(), count);
        assert_eq!(tannoy::glob_match(pattern, channel), matches);
    }
}

/// After unsubscribing, messages already queued still arrive; later ones do
/// not, except through a pattern the subscriber still holds.
#[test]
fn unsubscribe_keeps_queued_messages_and_matching_patterns_still_deliver() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["c"]);
    sub.psubscribe(["c*"]);
    assert_eq!(broker.publish("c", "before"), 2);
    sub.unsubscribe(["c"]);
    assert_eq!(broker.publish("c", "after"), 1);

    assert_eq!(
        drain(&sub),
        [
            message(b"c", b"before"),
            pmessage(b"c*", b"c", b"before"),
            pmessage(b"c*", b"c", b"after"),
        ]
    );
}

/// Typed payloads: a `Broker<Arc<T>>` hands every receiver the publisher's
/// `Arc` itself (same allocation), even for a `T` that is not `Clone`, and
/// keeps no reference once the channel has no subscriber left.
#[test]
fn arc_payloads_are_shared_not_copied() {
    #[derive(Debug, PartialEq)]
    struct Prediction {
        /// Model score.
        score: u32,
    }

    let broker = BrokerBuilder::<Arc<Prediction>>::new().build();
    let a = broker.subscriber();
    let b = broker.subscriber();
    a.subscribe(["ai:ready"]);
    a.psubscribe(["ai:*"]);
    b.psubscribe(["*"]);

    let event = Arc::new(Prediction { score: 9 });
    assert_eq!(broker.publish("ai:ready", Arc::clone(&event)), 3);
    let received: Vec<Message<Arc<Prediction>>> = a.try_iter().chain(b.try_iter()).collect();
    assert_eq!(received.len(), 3);
    for msg in &received {
        assert!(Arc::ptr_eq(msg.payload(), &event));
        assert_eq!(msg.payload().score, 9);
    }
    drop(received);
    // The broker may keep the channel's latest payload (crate docs,
    // Trade-offs) until the channel loses its last subscriber.
    drop((a, b));
    assert_eq!(
        Arc::strong_count(&event),
        1,
        "the broker leaked a reference"
    );
}

/// Fan-out never copies `Bytes` payload data: every receiver's payload
/// points at the publisher's buffer.
#[test]
fn bytes_fan_out_shares_the_published_buffer() {
    let broker = Broker::new();
    let mut subs: Vec<Subscriber> = (0..8).map(|_| broker.subscriber()).collect();
    for (i, sub) in subs.iter_mut().enumerate() {
        if i % 2 == 0 {
            sub.subscribe(["frames"]);
        }
        sub.psubscribe(["fr*", "*"]);
    }
    let payload = Bytes::from(vec![7u8; 4096]);
    assert_eq!(broker.publish("frames", payload.clone()), 4 + 16);

    let mut seen = 0;
    for sub in &subs {
        for msg in sub.try_iter() {
            assert_eq!(msg.payload().as_ptr(), payload.as_ptr());
            assert_eq!(msg.payload().len(), payload.len());
            seen += 1;
        }
    }
    assert_eq!(seen, 20);
}

/// The spec's §6 check: with A on shard channel `same`, B on channel `same`
/// and C on pattern `*`, `spublish` reaches only A and `publish` only B and C.
#[test]
fn shard_and_normal_namespaces_are_separate() {
    let broker = Broker::new();
    let a = broker.subscriber();
    let b = broker.subscriber();
    let c = broker.subscriber();
    a.ssubscribe(["same"]);
    b.subscribe(["same"]);
    c.psubscribe(["*"]);

    assert_eq!(broker.spublish("same", "S"), 1);
    assert_eq!(drain(&a), [smessage(b"same", b"S")]);
    assert!(drain(&b).is_empty());
    assert!(drain(&c).is_empty());

    assert_eq!(broker.publish("same", "P"), 2);
    assert!(drain(&a).is_empty());
    assert_eq!(drain(&b), [message(b"same", b"P")]);
    assert_eq!(drain(&c), [pmessage(b"*", b"same", b"P")]);
}

/// `spublish` delivers `SMessage`s with no pattern, and never reaches
/// patterns, even one matching every non-empty channel.
#[test]
fn patterns_never_receive_shard_messages() {
    let broker = Broker::new();
    let patterns = broker.subscriber();
    patterns.psubscribe(["*", "s*", "shard"]);
    let shard = broker.subscriber();
    shard.ssubscribe(["shard"]);

    assert_eq!(broker.spublish("shard", "x"), 1);
    assert!(drain(&patterns).is_empty());
    let msg = shard.try_recv().unwrap();
    assert_eq!(msg.kind(), MessageKind::SMessage);
    assert_eq!(msg.kind().as_str(), "smessage");
    assert_eq!(msg.pattern(), None);
    assert_eq!(msg.channel(), "shard");
    assert_eq!(broker.spublish("unheld", "x"), 0);
}

/// `ssubscribe("sh*")` subscribes to the literal name `sh*`: `spublish`
/// to `shX` reaches nobody, to `sh*` reaches it.
#[test]
fn ssubscribe_glob_name_is_literal() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.ssubscribe(["sh*"]);
    assert_eq!(broker.spublish("shX", "x"), 0);
    assert_eq!(broker.spublish("sh*", "y"), 1);
    assert_eq!(drain(&sub), [smessage(b"sh*", b"y")]);
}

/// One subscriber holding both `same` and shard `same` gets exactly one
/// message of the matching kind for each `publish` and `spublish`.
#[test]
fn one_subscriber_in_both_namespaces_gets_one_message_per_kind() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["same"]);
    sub.ssubscribe(["same"]);

    assert_eq!(broker.publish("same", "P"), 1);
    assert_eq!(broker.spublish("same", "S"), 1);
    assert_eq!(
        drain(&sub),
        [message(b"same", b"P"), smessage(b"same", b"S")]
    );
}

/// Every subscriber of a channel receives every message, in the same order,
/// each numbered from 0 in its own stream.
#[test]
fn every_subscriber_gets_every_message_with_its_own_seq() {
    let broker = Broker::new();
    let early = broker.subscriber();
    early.subscribe(["warmup", "c"]);
    broker.publish("warmup", "w");
    let late = broker.subscriber();
    late.subscribe(["c"]);

    for i in 0..10u32 {
        assert_eq!(broker.publish("c", i.to_string()), 2);
    }
    let early_got: Vec<_> = early.try_iter().collect();
    let late_got: Vec<_> = late.try_iter().collect();
    assert_eq!(early_got.len(), 11);
    assert_eq!(late_got.len(), 10);
    for (i, (e, l)) in early_got[1..].iter().zip(&late_got).enumerate() {
        assert_eq!(e.payload(), l.payload());
        assert_eq!(e.seq(), i as u64 + 1);
        assert_eq!(l.seq(), i as u64);
    }
}

/// A receiver blocked in `recv` is still woken by the channel's next
/// publish after another subscriber of that channel leaves it: a channel
/// forgets the departing subscriber's wake-up, not the others'.
#[test]
fn a_blocked_receiver_is_woken_after_another_subscriber_leaves() {
    watchdog::guarded(Duration::from_secs(60), "recv never woke", || {
        let broker = Broker::new();
        let waiting = broker.subscriber();
        waiting.subscribe(["c"]);
        for round in 0..20usize {
            let leaving = broker.subscriber();
            leaving.subscribe(["c"]);
            thread::scope(|scope| {
                let receiver = scope.spawn(|| waiting.recv().map(|m| m.payload().to_vec()));
                // Time for the receiver to park, so that it waits on the
                // channel when `leaving` leaves it (not needed for the
                // message to arrive, only for the test to test the wake).
                thread::sleep(Duration::from_millis(20));
                if round % 2 == 0 {
                    leaving.unsubscribe(["c"]);
                } else {
                    drop(leaving);
                }
                broker.publish("c", format!("{round}"));
                let payload = receiver.join().unwrap().expect("a message");
                assert_eq!(payload, round.to_string().into_bytes());
            });
        }
    });
}

/// A blocking `recv` is woken by a publish that lands while it is getting
/// ready to wait (after it found nothing, before it parks), wherever in
/// that stretch the publish falls: the receiver must either see the
/// message or be woken by it, never park past it. Each round publishes one
/// message after a different delay from the moment the receiver is about
/// to call `recv`; a missed wake-up leaves `recv` parked for good (nothing
/// else is published), which the watchdog reports. The delays only spread
/// the publishes; no outcome depends on them.
#[test]
fn recv_is_woken_by_a_publish_landing_while_it_gets_ready_to_wait() {
    const ROUNDS: u64 = 400;
    for channels in [&["c"][..], &["c", "d", "e"][..]] {
        let what = format!("{channels:?}: a recv missed the wake-up of its message");
        watchdog::guarded(Duration::from_secs(60), &what, move || {
            let broker = Broker::new();
            let sub = broker.subscriber();
            sub.subscribe(channels);
            // The round the receiver is about to receive, plus one.
            let calling = AtomicU64::new(0);
            thread::scope(|scope| {
                scope.spawn(|| {
                    for round in 0..ROUNDS {
                        calling.store(round + 1, Ordering::Release);
                        let msg = sub.recv().expect("the broker stays open");
                        assert_eq!(msg.payload(), round.to_string().as_str());
                    }
                });
                for round in 0..ROUNDS {
                    while calling.load(Ordering::Acquire) != round + 1 {
                        std::hint::spin_loop();
                    }
                    // 0 to 20 µs, in steps of 50 ns.
                    let delay = Duration::from_nanos(round % 400 * 50);
                    let since = Instant::now();
                    while since.elapsed() < delay {
                        std::hint::spin_loop();
                    }
                    let channel = channels[round as usize % channels.len()];
                    assert_eq!(broker.publish(channel, round.to_string()), 1);
                }
            });
        });
    }
}
