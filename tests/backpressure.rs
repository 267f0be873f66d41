//! Backpressure: bounded queues, the three overflow policies, exact loss
//! accounting, and that a slow or broken consumer never blocks or breaks
//! publishing.

#[path = "support/rng.rs"]
mod rng;
#[path = "support/watchdog.rs"]
mod watchdog;

use std::collections::{BTreeSet, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rng::Rng;
use tannoy::{
    Broker, BrokerBuilder, Message, OverflowPolicy, RecvError, RecvTimeoutError, Subscriber,
    TryRecvError, glob_match,
};

/// No names, for the "all" form of the unsubscribe calls.
const ALL: [&str; 0] = [];

/// How long a hang guard waits before declaring a deadlock. Generous: it
/// only turns a hang into a failure, it never measures speed.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// Payloads of everything queued for `sub`, oldest first, as strings.
fn payloads(sub: &Subscriber) -> Vec<String> {
    sub.try_iter()
        .map(|m| String::from_utf8(m.payload().to_vec()).unwrap())
        .collect()
}

/// A queue never holds more than its capacity, however much is published.
#[test]
fn queue_never_holds_more_than_capacity() {
    for capacity in [1, 2, 3, 7] {
        let broker = Broker::builder().queue_capacity(capacity).build();
        let sub = broker.subscriber();
        sub.subscribe(["c"]);
        sub.psubscribe(["c*", "*"]);
        assert_eq!(sub.capacity(), capacity);
        for i in 0..50 {
            assert_eq!(broker.publish("c", format!("{i}")), 3);
            assert!(sub.len() <= capacity, "len {} > {capacity}", sub.len());
        }
        assert_eq!(sub.len(), capacity);
        assert_eq!(sub.try_iter().count(), capacity);
        assert!(sub.is_empty());
    }
}

/// Each subscriber's own capacity bounds its queue: subscribers built with
/// different capacities on one broker keep exactly their newest messages.
#[test]
fn per_subscriber_capacity_bounds_each_queue() {
    let broker = Broker::builder().queue_capacity(4).build();
    let mut subs: Vec<Subscriber> = [1, 2, 7]
        .into_iter()
        .map(|capacity| broker.subscriber_builder().queue_capacity(capacity).build())
        .collect();
    subs.push(broker.subscriber());
    let newest = broker
        .subscriber_builder()
        .queue_capacity(2)
        .overflow_policy(OverflowPolicy::DropNewest)
        .build();
    subs.push(newest);
    for sub in &mut subs {
        sub.subscribe(["c"]);
    }
    let capacities: Vec<usize> = subs.iter().map(Subscriber::capacity).collect();
    assert_eq!(capacities, [1, 2, 7, 4, 2]);

    for i in 0..20 {
        assert_eq!(broker.publish("c", format!("{i}")), 5);
    }
    for (sub, capacity) in subs.iter().zip(&capacities) {
        assert_eq!(sub.len(), *capacity);
        assert_eq!(sub.dropped(), 20 - *capacity as u64);
    }
    assert_eq!(payloads(&subs[0]), ["19"]);
    assert_eq!(
        payloads(&subs[2]),
        ["13", "14", "15", "16", "17", "18", "19"]
    );
    assert_eq!(payloads(&subs[4]), ["0", "1"]);
}

/// A queue capacity of 0 is construction misuse and panics, for the
/// broker-wide default and for one subscriber alike.
#[test]
fn zero_capacity_is_rejected() {
    assert!(catch_unwind(|| Broker::builder().queue_capacity(0)).is_err());
    let broker = Broker::new();
    assert!(
        catch_unwind(AssertUnwindSafe(|| {
            broker.subscriber_builder().queue_capacity(0)
        }))
        .is_err()
    );
}

/// Drop-oldest (the default) keeps the newest messages, counts each one it
/// discards in `dropped()`, and `seq` shows exactly which were lost.
#[test]
fn drop_oldest_keeps_the_newest_and_counts_what_it_drops() {
    let broker = Broker::builder().queue_capacity(3).build();
    let sub = broker.subscriber();
    assert_eq!(sub.overflow_policy(), OverflowPolicy::DropOldest);
    sub.subscribe(["c"]);
    for i in 0..10 {
        assert_eq!(
            broker.publish("c", format!("m{i}")),
            1,
            "a drop still counts"
        );
    }
    assert_eq!(sub.dropped(), 7);
    let got: Vec<Message> = sub.try_iter().collect();
    let seqs: Vec<u64> = got.iter().map(Message::seq).collect();
    assert_eq!(seqs, [7, 8, 9]);
    let texts: Vec<&[u8]> = got.iter().map(|m| &m.payload()[..]).collect();
    assert_eq!(texts, [b"m7", b"m8", b"m9"]);
}

/// Seq gaps between received messages add up to `dropped()` exactly, with
/// reads interleaved with overflowing bursts.
#[test]
fn seq_gaps_show_exactly_what_was_dropped() {
    let broker = Broker::builder().queue_capacity(2).build();
    let sub = broker.subscriber();
    sub.subscribe(["c"]);
    let mut published = 0u64;
    let mut next_expected = 0u64;
    let mut gaps = 0u64;
    for burst in [1, 5, 2, 3, 9, 1, 1, 4] {
        for _ in 0..burst {
            broker.publish("c", published.to_string());
            published += 1;
        }
        // Read one message only, leaving the rest to be overwritten.
        let msg = sub.try_recv().unwrap();
        assert_eq!(msg.payload(), msg.seq().to_string().as_str());
        assert!(msg.seq() >= next_expected);
        gaps += msg.seq() - next_expected;
        next_expected = msg.seq() + 1;
        assert_eq!(gaps, sub.dropped(), "gaps so far must equal drops so far");
    }
    for msg in sub.try_iter() {
        gaps += msg.seq() - next_expected;
        next_expected = msg.seq() + 1;
    }
    assert_eq!(
        next_expected, published,
        "the newest message is never dropped"
    );
    assert_eq!(gaps, sub.dropped());
}

/// A subscriber of several channels and a pattern behaves exactly as one
/// drop-oldest queue of its capacity, whatever the interleaving of bursts
/// and receives: also partway through the messages a receive has already
/// taken from its channels in one go, when a burst since pushes some of
/// them past its capacity.
#[test]
fn a_subscriber_of_several_channels_is_one_drop_oldest_queue() {
    const CHANNELS: [&str; 4] = ["a", "b", "c", "pq"];
    for seed in 1..=60u64 {
        let capacity = 1 + seed as usize % 6;
        let broker = Broker::builder().queue_capacity(capacity).build();
        let sub = broker.subscriber();
        sub.subscribe(["a", "b", "c"]);
        sub.psubscribe(["p*"]);
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        // The queue it must behave as, and how many messages have left it
        // (received or dropped): the `seq` of the next one received.
        let mut queue: VecDeque<String> = VecDeque::new();
        let (mut left, mut dropped) = (0u64, 0u64);
        for step in 0..300 {
            if rng.below(2) == 0 {
                for k in 0..rng.below(2 * capacity + 3) {
                    let payload = format!("{step}.{k}");
                    broker.publish(CHANNELS[rng.below(CHANNELS.len())], payload.clone());
                    queue.push_back(payload);
                    if queue.len() > capacity {
                        queue.pop_front();
                        left += 1;
                        dropped += 1;
                    }
                }
            } else {
                for _ in 0..=rng.below(3) {
                    match (sub.try_recv(), queue.pop_front()) {
                        (Ok(msg), Some(expected)) => {
                            assert_eq!(
                                (&msg.payload()[..], msg.seq()),
                                (expected.as_bytes(), left),
                                "seed {seed}, step {step}"
                            );
                            left += 1;
                        }
                        (Err(TryRecvError::Empty), None) => {}
                        (got, expected) => {
                            panic!("seed {seed}, step {step}: got {got:?}, expected {expected:?}")
                        }
                    }
                }
            }
            assert_eq!(sub.dropped(), dropped, "seed {seed}, step {step}");
            assert_eq!(sub.len(), queue.len(), "seed {seed}, step {step}");
        }
    }
}

/// Lag is per subscriber: one subscriber overflowing costs the others
/// nothing.
#[test]
fn lag_is_per_subscriber() {
    let broker = Broker::builder().queue_capacity(4).build();
    let slow = broker.subscriber();
    let fast = broker.subscriber();
    slow.subscribe(["c"]);
    fast.subscribe(["c"]);
    for i in 0..100 {
        assert_eq!(broker.publish("c", format!("{i}")), 2);
        assert_eq!(fast.try_recv().unwrap().seq(), i);
    }
    assert_eq!(fast.dropped(), 0);
    assert_eq!(slow.dropped(), 96);
    assert_eq!(payloads(&slow), ["96", "97", "98", "99"]);
}

/// Pattern and exact messages share one queue: drop-oldest evicts whichever
/// is oldest, whatever its kind.
#[test]
fn drop_oldest_evicts_across_message_kinds() {
    let broker = Broker::builder().queue_capacity(2).build();
    let sub = broker.subscriber();
    sub.subscribe(["c"]);
    sub.psubscribe(["c*"]);
    sub.ssubscribe(["c"]);
    assert_eq!(broker.publish("c", "1"), 2);
    assert_eq!(broker.spublish("c", "2"), 1);
    // Exact "1" was evicted; the pattern copy of "1" and the shard "2" stay.
    let got: Vec<Message> = sub.try_iter().collect();
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].seq(), got[0].pattern().unwrap()), (1, &"c*".into()));
    assert_eq!(
        (got[1].seq(), got[1].kind()),
        (2, tannoy::MessageKind::SMessage)
    );
    assert_eq!(sub.dropped(), 1);
}

/// For every subscriber, whatever its capacity, policy, channels and
/// patterns: messages addressed to it = received + `dropped()` + still
/// queued, and `publish` returns the sum of what it addressed.
#[test]
fn accounting_is_exact_for_every_subscriber() {
    /// Names published and subscribed to.
    const NAMES: [&[u8]; 7] = [b"a", b"b", b"ab", b"ba", b"", b"a*", b"\x80"];
    /// Patterns subscribed to.
    const PATTERNS: [&[u8]; 6] = [b"a*", b"*", b"?", b"[ab]b", b"*a", b""];

    /// One subscriber and what the test knows about it.
    struct Tracked {
        /// The subscriber.
        sub: Subscriber,
        /// Channels held.
        channels: BTreeSet<&'static [u8]>,
        /// Patterns held.
        patterns: BTreeSet<&'static [u8]>,
        /// Shard channels held.
        shards: BTreeSet<&'static [u8]>,
        /// Messages addressed to it, computed independently.
        addressed: u64,
        /// Messages received.
        received: u64,
        /// `seq` the next received message must exceed or equal.
        next_seq: u64,
    }

    for (capacity, seed) in [(1, 1), (2, 2), (3, 3), (5, 4), (2, 5), (1, 6)] {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
        let broker = Broker::builder().queue_capacity(capacity).build();
        let mut subs: Vec<Tracked> = (0..5)
            .map(|i| Tracked {
                sub: broker.subscriber_with(if i % 2 == 0 {
                    OverflowPolicy::DropOldest
                } else {
                    OverflowPolicy::DropNewest
                }),
                channels: BTreeSet::new(),
                patterns: BTreeSet::new(),
                shards: BTreeSet::new(),
                addressed: 0,
                received: 0,
                next_seq: 0,
            })
            .collect();

        for _ in 0..3000 {
            let t = &mut subs[rng.below(5)];
            match rng.below(10) {
                0 => {
                    let name = NAMES[rng.below(NAMES.len())];
                    t.sub.subscribe([name]);
                    t.channels.insert(name);
                }
                1 => {
                    let pattern = PATTERNS[rng.below(PATTERNS.len())];
                    t.sub.psubscribe([pattern]);
                    t.patterns.insert(pattern);
                }
                2 => {
                    let name = NAMES[rng.below(NAMES.len())];
                    t.sub.ssubscribe([name]);
                    t.shards.insert(name);
                }
                3 => {
                    let name = NAMES[rng.below(NAMES.len())];
                    let pattern = PATTERNS[rng.below(PATTERNS.len())];
                    t.sub.unsubscribe([name]);
                    t.sub.punsubscribe([pattern]);
                    t.channels.remove(name);
                    t.patterns.remove(pattern);
                }
                4 | 5 => {
                    for _ in 0..rng.below(capacity + 2) {
                        match t.sub.try_recv() {
                            Ok(msg) => {
                                assert!(msg.seq() >= t.next_seq, "seq went backwards");
                                assert!(msg.seq() < t.addressed, "seq beyond addressed");
                                t.next_seq = msg.seq() + 1;
                                t.received += 1;
                            }
                            Err(TryRecvError::Empty) => break,
                            Err(err) => panic!("{err:?}"),
                        }
                    }
                }
                6 => {
                    let name = NAMES[rng.below(NAMES.len())];
                    let mut expected = 0;
                    for t in &mut subs {
                        let n = u64::from(t.shards.contains(name));
                        t.addressed += n;
                        expected += n as usize;
                    }
                    assert_eq!(broker.spublish(name, "s"), expected);
                }
                _ => {
                    let name = NAMES[rng.below(NAMES.len())];
                    let mut expected = 0;
                    for t in &mut subs {
                        let exact = u64::from(t.channels.contains(name));
                        let by_pattern =
                            t.patterns.iter().filter(|p| glob_match(p, name)).count() as u64;
                        t.addressed += exact + by_pattern;
                        expected += (exact + by_pattern) as usize;
                    }
                    assert_eq!(broker.publish(name, "p"), expected);
                }
            }
            for t in &subs {
                assert!(t.sub.len() <= capacity);
                assert_eq!(
                    t.addressed,
                    t.received + t.sub.dropped() + t.sub.len() as u64,
                    "addressed = received + dropped + queued (capacity {capacity}, {:?})",
                    t.sub.overflow_policy()
                );
            }
        }
        for t in &subs {
            assert!(t.addressed > 0, "scenario too weak: nothing addressed");
        }
        assert!(
            subs.iter().any(|t| t.sub.dropped() > 0),
            "scenario too weak: nothing dropped"
        );
    }
}

/// `publish` never blocks on a subscriber that never reads: a hundred
/// thousand publishes to a stalled capacity-1 subscriber all complete, are
/// all counted, and leave it holding the newest message.
#[test]
fn publish_never_blocks_on_a_stalled_subscriber() {
    const N: u64 = 100_000;
    let broker = Broker::builder().queue_capacity(1).build();
    let stalled = broker.subscriber();
    let stalled_newest = broker.subscriber_with(OverflowPolicy::DropNewest);
    stalled.subscribe(["c"]);
    stalled_newest.psubscribe(["c"]);

    let (done, finished) = mpsc::channel();
    let publisher = broker.clone();
    let worker = std::thread::spawn(move || {
        let mut counted = 0;
        for i in 0..N {
            counted += publisher.publish("c", i.to_string());
        }
        done.send(counted).unwrap();
    });
    let counted = finished
        .recv_timeout(HANG_GUARD)
        .expect("publish blocked on a stalled subscriber");
    worker.join().unwrap();

    assert_eq!(counted as u64, 2 * N);
    assert_eq!(stalled.dropped(), N - 1);
    assert_eq!(stalled_newest.dropped(), N - 1);
    let last = stalled.try_recv().unwrap();
    assert_eq!(
        (last.seq(), last.payload()),
        (N - 1, &(N - 1).to_string().into())
    );
    let first = stalled_newest.try_recv().unwrap();
    assert_eq!((first.seq(), first.payload()), (0, &"0".into()));
}

/// Drop-newest keeps the oldest messages, discards new ones while full
/// (still counting them as delivered), and the discarded ones use up `seq`
/// numbers.
#[test]
fn drop_newest_keeps_the_oldest_and_counts_what_it_refuses() {
    let broker = Broker::builder().queue_capacity(2).build();
    let sub = broker.subscriber_with(OverflowPolicy::DropNewest);
    assert_eq!(sub.overflow_policy(), OverflowPolicy::DropNewest);
    sub.subscribe(["c"]);
    for p in ["a", "b", "c", "d"] {
        assert_eq!(broker.publish("c", p), 1);
    }
    assert_eq!(sub.dropped(), 2);
    let got: Vec<Message> = sub.try_iter().collect();
    let kept: Vec<(u64, &[u8])> = got.iter().map(|m| (m.seq(), &m.payload()[..])).collect();
    assert_eq!(kept, [(0, &b"a"[..]), (1, &b"b"[..])]);

    assert_eq!(broker.publish("c", "e"), 1);
    let next = sub.try_recv().unwrap();
    assert_eq!((next.seq(), next.payload()), (4, &"e".into()));
    assert_eq!(sub.dropped(), 2);
}

/// The builder's policy applies to `subscriber()`; `subscriber_with`
/// overrides it per subscriber.
#[test]
fn builder_policy_is_the_default_and_subscriber_with_overrides_it() {
    let broker = Broker::builder()
        .queue_capacity(1)
        .overflow_policy(OverflowPolicy::DropNewest)
        .build();
    let newest = broker.subscriber();
    let oldest = broker.subscriber_with(OverflowPolicy::DropOldest);
    assert_eq!(newest.overflow_policy(), OverflowPolicy::DropNewest);
    assert_eq!(oldest.overflow_policy(), OverflowPolicy::DropOldest);
    newest.subscribe(["c"]);
    oldest.subscribe(["c"]);
    broker.publish("c", "1");
    broker.publish("c", "2");
    assert_eq!(payloads(&newest), ["1"]);
    assert_eq!(payloads(&oldest), ["2"]);
}

/// Disconnect: the publish that overflows the queue still counts the
/// subscriber; later publishes do not. Queued messages can still be
/// received, then `recv` reports `Disconnected`, and keeps doing so.
#[test]
fn disconnect_counts_the_overflowing_publish_then_drains_and_reports_disconnected() {
    let broker = Broker::builder().queue_capacity(2).build();
    let sub = broker.subscriber_with(OverflowPolicy::Disconnect);
    sub.subscribe(["c"]);
    assert_eq!(broker.publish("c", "1"), 1);
    assert_eq!(broker.publish("c", "2"), 1);
    assert!(!sub.is_disconnected());
    assert_eq!(
        broker.publish("c", "3"),
        1,
        "the overflowing publish counts"
    );
    assert!(sub.is_disconnected());
    assert_eq!(broker.publish("c", "4"), 0, "later publishes do not");

    assert_eq!(sub.dropped(), 1);
    assert_eq!(sub.recv().unwrap().payload(), "1");
    assert_eq!(sub.recv().unwrap().payload(), "2");
    assert_eq!(sub.recv(), Err(RecvError::Disconnected));
    assert_eq!(sub.recv(), Err(RecvError::Disconnected));
    assert_eq!(sub.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(
        sub.recv_timeout(Duration::from_secs(3600)),
        Err(RecvTimeoutError::Disconnected)
    );
    assert_eq!(sub.iter().count(), 0);
}

/// Disconnect unsubscribes the subscriber from everything at once: numsub,
/// numpat, shard_numsub and channels reflect it as soon as the overflowing
/// publish returns, and its own view is empty.
#[test]
fn disconnect_removes_all_subscriptions_at_once() {
    let broker = Broker::builder().queue_capacity(1).build();
    let sub = broker.subscriber_with(OverflowPolicy::Disconnect);
    let other = broker.subscriber();
    sub.subscribe(["c", "d"]);
    sub.psubscribe(["p*", "shared*"]);
    sub.ssubscribe(["s"]);
    other.psubscribe(["shared*"]);
    assert_eq!(broker.numpat(), 2);

    broker.publish("d", "fills the queue");
    broker.publish("c", "overflows");
    assert!(sub.is_disconnected());
    assert_eq!(
        broker.numsub(["c", "d"])[0].1 + broker.numsub(["c", "d"])[1].1,
        0
    );
    assert_eq!(broker.numpat(), 1);
    assert_eq!(broker.shard_numsub(["s"])[0].1, 0);
    assert!(broker.channels(None).is_empty());
    assert!(broker.shard_channels(None).is_empty());
    assert_eq!(sub.subscription_count(), 0);
    assert_eq!(sub.shard_subscription_count(), 0);
    assert!(sub.subscribed_channels().is_empty() && sub.subscribed_patterns().is_empty());
    assert!(sub.subscribed_shard_channels().is_empty());
    assert_eq!(
        broker.publish("shared1", "x"),
        1,
        "only the other subscriber"
    );
    assert_eq!(broker.spublish("s", "x"), 0);
}

/// A disconnected subscriber ignores new subscriptions: every subscribe
/// call is a no-op returning 0, and it is never counted again.
#[test]
fn subscribe_on_a_disconnected_subscriber_is_a_noop_returning_zero() {
    let broker = Broker::builder().queue_capacity(1).build();
    let sub = broker.subscriber_with(OverflowPolicy::Disconnect);
    sub.subscribe(["c"]);
    broker.publish("c", "1");
    broker.publish("c", "2");
    assert!(sub.is_disconnected());

    assert_eq!(sub.subscribe(["c", "x"]), 0);
    assert_eq!(sub.psubscribe(["*"]), 0);
    assert_eq!(sub.ssubscribe(["s"]), 0);
    assert_eq!(sub.unsubscribe(ALL), 0);
    assert_eq!(sub.punsubscribe(ALL), 0);
    assert_eq!(sub.sunsubscribe(ALL), 0);
    assert_eq!(broker.numsub(["c", "x"])[1].1, 0);
    assert_eq!(broker.numpat(), 0);
    assert_eq!(broker.publish("x", "3"), 0);
    assert_eq!(broker.spublish("s", "3"), 0);
    assert_eq!(sub.recv().unwrap().payload(), "1");
    assert_eq!(sub.try_recv(), Err(TryRecvError::Disconnected));
}

/// Disconnecting one subscriber leaves the others on the same channel
/// subscribed and receiving.
#[test]
fn disconnect_leaves_other_subscribers_alone() {
    let broker = Broker::builder().queue_capacity(1).build();
    let strict = broker.subscriber_with(OverflowPolicy::Disconnect);
    let lenient = broker.subscriber();
    strict.subscribe(["c"]);
    lenient.subscribe(["c"]);
    assert_eq!(broker.publish("c", "1"), 2);
    assert_eq!(broker.publish("c", "2"), 2);
    assert_eq!(broker.publish("c", "3"), 1);
    assert_eq!(broker.numsub(["c"])[0].1, 1);
    assert_eq!(payloads(&lenient), ["3"]);
    assert!(!lenient.is_disconnected());
}

/// Redis counts every message of the publish that overflows a client, one
/// per matching subscription (its reply counter does not look at the
/// client's state): a Disconnect subscriber holding the channel and two
/// matching patterns is counted 3 by that publish, as `publish`'s doc says
/// ("once if it holds the channel, plus once per pattern it holds").
#[test]
fn disconnect_counts_every_delivery_of_the_overflowing_publish() {
    let broker = Broker::builder().queue_capacity(1).build();
    let sub = broker.subscriber_with(OverflowPolicy::Disconnect);
    sub.subscribe(["c"]);
    sub.psubscribe(["c*", "*"]);
    // Fill the queue through one pattern only.
    assert_eq!(broker.publish("x", "fill"), 1);
    // The exact delivery overflows; the subscriber still holds both
    // matching patterns while this publish runs.
    assert_eq!(broker.publish("c", "overflow"), 3);
    assert!(sub.is_disconnected());
    assert_eq!(broker.publish("c", "later"), 0);
}

/// A payload whose `Clone` panics once its budget is spent; it records its
/// live copies so tests can also see that nothing leaks.
#[derive(Debug)]
struct Fragile {
    /// Clones still allowed, shared by every copy.
    clones_left: Arc<AtomicIsize>,
    /// Which publish it was.
    id: u32,
}

impl Clone for Fragile {
    fn clone(&self) -> Self {
        if self.clones_left.fetch_sub(1, Ordering::SeqCst) <= 0 {
            panic!("Fragile::clone: budget spent (payload {})", self.id);
        }
        Self {
            clones_left: Arc::clone(&self.clones_left),
            id: self.id,
        }
    }
}

/// `Fragile` payload `id` allowing `clones` clones.
fn fragile(id: u32, clones: isize) -> Fragile {
    Fragile {
        clones_left: Arc::new(AtomicIsize::new(clones)),
        id,
    }
}

/// A publish whose payload `Clone` panics propagates the panic but leaves
/// the broker usable: later publishes, subscribes, introspection and
/// receives work, from this thread and others. Clones happen before any
/// delivery, so a panicking clone delivers nothing at all.
#[test]
fn panicking_clone_leaves_the_broker_usable() {
    let broker = BrokerBuilder::<Fragile>::new().queue_capacity(8).build();
    let a = broker.subscriber();
    let b = broker.subscriber();
    let p = broker.subscriber();
    a.subscribe(["c"]);
    b.subscribe(["c"]);
    p.psubscribe(["c*", "?"]);

    // Each matching pattern needs its own copy (the exact subscribers
    // share the original): two clones, so the first of these publishes
    // panics at the first clone and the second at the second.
    for (id, clones) in [(1, 0), (2, 1)] {
        let boom = catch_unwind(AssertUnwindSafe(|| {
            broker.publish("c", fragile(id, clones))
        }));
        assert!(boom.is_err(), "the clone panic propagates to the publisher");
    }

    assert_eq!(broker.publish("c", fragile(3, isize::MAX)), 4);
    for (sub, expected) in [(&a, vec![3]), (&b, vec![3]), (&p, vec![3, 3])] {
        let ids: Vec<u32> = sub.try_iter().map(|m| m.payload().id).collect();
        assert_eq!(ids, expected, "only the good publish arrived");
    }

    // Every lock is free: another thread can subscribe, publish, inspect.
    let other = broker.clone();
    std::thread::spawn(move || {
        let sub = other.subscriber();
        assert_eq!(sub.subscribe(["c", "d"]), 2);
        assert_eq!(sub.psubscribe(["c*"]), 3);
        assert_eq!(other.publish("c", fragile(4, isize::MAX)), 6);
        assert_eq!(sub.recv().unwrap().payload().id, 4);
        assert_eq!(other.numsub(["c"])[0].1, 3);
        assert_eq!(other.numpat(), 2);
        assert_eq!(other.channels(None).len(), 2);
    })
    .join()
    .unwrap();
    a.unsubscribe(ALL);
    drop(p);
    assert_eq!(broker.numsub(["c"])[0].1, 1);
    assert_eq!(broker.numpat(), 0);
    assert_eq!(b.recv().unwrap().payload().id, 4);
    broker.close();
    assert_eq!(b.recv().unwrap_err(), RecvError::Closed);
}

/// A clone panic happens before the publish delivers anything, so it can
/// never leave a subscriber half-served or half-removed: a `Disconnect`
/// subscriber that the publish would have overflowed keeps its
/// subscriptions and its queue, and the next publish overflows it cleanly.
#[test]
fn panicking_clone_delivers_nothing_and_disconnects_nobody() {
    let broker = BrokerBuilder::<Fragile>::new().queue_capacity(1).build();
    let strict = broker.subscriber_with(OverflowPolicy::Disconnect);
    let watcher = broker.subscriber_builder().queue_capacity(8).build();
    strict.subscribe(["c"]);
    watcher.psubscribe(["c*", "?"]);
    assert_eq!(broker.publish("c", fragile(1, isize::MAX)), 3);
    assert_eq!(watcher.try_iter().count(), 2);

    // One clone allowed, two needed: the publish panics before `strict`'s
    // full queue sees it.
    let boom = catch_unwind(AssertUnwindSafe(|| broker.publish("c", fragile(2, 1))));
    assert!(boom.is_err());
    assert!(!strict.is_disconnected());
    assert_eq!(strict.dropped(), 0);
    assert_eq!(broker.numsub(["c"])[0].1, 1);
    assert!(
        watcher.try_recv().is_err(),
        "nothing of the panicking publish arrived"
    );

    assert_eq!(broker.publish("c", fragile(3, isize::MAX)), 3);
    assert!(strict.is_disconnected());
    assert_eq!(strict.recv().unwrap().payload().id, 1);
    assert_eq!(strict.try_recv().unwrap_err(), TryRecvError::Disconnected);
    assert!(strict.subscribed_channels().is_empty());
    assert_eq!(broker.numsub(["c"])[0].1, 0);
    assert_eq!(
        strict.subscribe(["d"]),
        0,
        "a disconnected subscriber ignores subscribe"
    );
    assert_eq!(broker.numsub(["d"])[0].1, 0);
}

/// A payload counting its live copies.
#[derive(Debug)]
struct Counted {
    /// Live copies of all `Counted` values sharing this counter.
    live: Arc<AtomicIsize>,
}

impl Counted {
    /// A new value, counted.
    fn new(live: &Arc<AtomicIsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Self {
            live: Arc::clone(live),
        }
    }
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        Self::new(&self.live)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Payload copies are freed, never leaked: after each publish, at most one
/// copy is alive per message a queue-owning subscriber holds plus, for
/// each active channel or pattern, as many as the largest capacity of the
/// subscribers reading its feed; so evicted, refused and overflowing
/// messages are freed at once; and none survives its last subscriber.
#[test]
fn payload_copies_are_freed_never_leaked() {
    let live = Arc::new(AtomicIsize::new(0));
    let broker = BrokerBuilder::<Counted>::new().queue_capacity(3).build();
    let mut subs: Vec<Subscriber<Counted>> = Vec::new();
    for policy in [
        OverflowPolicy::DropOldest,
        OverflowPolicy::DropNewest,
        OverflowPolicy::Disconnect,
        OverflowPolicy::DropOldest,
    ] {
        let sub = broker.subscriber_with(policy);
        sub.subscribe(["c", "d"]);
        sub.psubscribe(["c*", "*"]);
        subs.push(sub);
    }
    let capacity = 3;
    let bound = |subs: &[Subscriber<Counted>]| {
        let own_queues: usize = subs
            .iter()
            .filter(|s| s.overflow_policy() != OverflowPolicy::DropOldest)
            .map(|s| s.len())
            .sum();
        let feeds = broker.channels(None).len() + broker.numpat();
        (own_queues + feeds * capacity) as isize
    };

    for i in 0..200 {
        let channel = if i % 3 == 0 { "d" } else { "c" };
        broker.publish(channel, Counted::new(&live));
        let now = live.load(Ordering::SeqCst);
        assert!(now >= 0, "a copy was dropped twice");
        assert!(now <= bound(&subs), "{now} copies alive after publish {i}");
        if i % 7 == 0 {
            // Receive one and drop it.
            let _ = subs[0].try_recv();
        }
        if i == 100 {
            // A subscriber dropped with a full queue frees its messages.
            drop(subs.remove(3));
            assert!(live.load(Ordering::SeqCst) <= bound(&subs));
        }
        // Nobody holds "e": its payload is freed at once.
        broker.publish("unheld", Counted::new(&live));
        assert!(live.load(Ordering::SeqCst) <= bound(&subs));
    }
    assert!(subs[2].is_disconnected());
    let received: Vec<Message<Counted>> = subs[2].try_iter().collect();
    assert!(!received.is_empty());
    drop(received);
    drop(subs);
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "copies outlived every subscriber"
    );
    broker.close();
    drop(broker);
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

/// A payload that publishes a notice from its `Drop`, as an RAII "job
/// finished" hook might.
#[derive(Clone)]
struct Notifier {
    /// Publishes to `audit` when dropped, if set (copies share it).
    broker: Option<Broker<Notifier>>,
}

impl Drop for Notifier {
    fn drop(&mut self) {
        if let Some(broker) = self.broker.take() {
            broker.publish("audit", Notifier { broker: None });
        }
    }
}

/// Runs `f` on its own thread, failing instead of hanging if it deadlocks
/// (generous: `f` takes microseconds).
fn deadlock_guarded(f: impl FnOnce() + Send + 'static) {
    watchdog::guarded(
        Duration::from_secs(10),
        "deadlock: a payload's Drop ran while the broker held a lock",
        f,
    );
}

/// A payload's `Drop` may use the broker: when drop-oldest evicts a message
/// during a publish, the evicted payload's `Drop` can itself publish, even
/// to a channel under the same lock (one shard), without deadlocking; and
/// it runs during the publish that evicts it, once per evicted message.
#[test]
fn evicted_payload_drop_may_publish() {
    deadlock_guarded(|| {
        let broker = BrokerBuilder::<Notifier>::new()
            .queue_capacity(1)
            .shards(1)
            .build();
        let sub = broker.subscriber();
        sub.subscribe(["jobs"]);
        let audit = broker.subscriber_builder().queue_capacity(8).build();
        audit.subscribe(["audit"]);
        for published in 0..3 {
            let job = Notifier {
                broker: Some(broker.clone()),
            };
            assert_eq!(broker.publish("jobs", job), 1);
            assert_eq!(
                audit.len(),
                published,
                "every earlier job was evicted, and announced itself, by the next publish"
            );
        }
        assert_eq!(sub.dropped(), 2);
        assert_eq!(sub.len(), 1);
        assert_eq!(
            audit.try_iter().count(),
            2,
            "each evicted job announced itself once"
        );
        assert_eq!(audit.dropped(), 0);
    });
}

/// A payload's `Drop` may use the broker: a subscriber that keeps up drops
/// each message it receives, and the payload's `Drop` (whenever the broker
/// lets it run) can publish without deadlocking.
#[test]
fn received_payload_drop_may_publish() {
    deadlock_guarded(|| {
        let broker = BrokerBuilder::<Notifier>::new().shards(1).build();
        let sub = broker.subscriber();
        sub.subscribe(["jobs"]);
        let audit = broker.subscriber();
        audit.subscribe(["audit"]);
        for _ in 0..3 {
            let job = Notifier {
                broker: Some(broker.clone()),
            };
            assert_eq!(broker.publish("jobs", job), 1);
            drop(sub.try_recv().unwrap());
        }
        drop(sub);
        assert_eq!(audit.try_iter().count(), 3, "every job announced itself");
    });
}

/// Messages queued before an unsubscribe stay queued however much the
/// channel's other subscribers are sent afterwards: what a subscriber
/// loses is decided by its own capacity only. (Found by the model test: a
/// channel kept as many messages as its largest subscriber queue, and the
/// publishes after the unsubscribe pushed out one the unsubscribed
/// subscriber was still owed, though its queue held nothing else.)
#[test]
fn unsubscribing_keeps_what_later_publishes_would_push_out() {
    for pattern in [false, true] {
        let broker = Broker::builder().shards(1).build();
        let leaving = broker.subscriber_builder().queue_capacity(2).build();
        let lagging = broker.subscriber_builder().queue_capacity(1).build();
        if pattern {
            lagging.psubscribe(["*"]);
            leaving.psubscribe(["*"]);
        } else {
            lagging.subscribe(["a"]);
            leaving.subscribe(["a"]);
        }
        assert_eq!(broker.publish("a", "kept"), 2);
        if pattern {
            leaving.punsubscribe(Vec::<&str>::new());
        } else {
            leaving.unsubscribe(Vec::<&str>::new());
        }
        for later in ["x", "y", "z"] {
            assert_eq!(broker.publish("a", later), 1);
        }
        assert_eq!(
            (leaving.len(), leaving.dropped()),
            (1, 0),
            "pattern: {pattern}"
        );
        let msg = leaving
            .try_recv()
            .expect("the message queued before unsubscribing");
        assert_eq!((msg.payload().as_ref(), msg.seq()), (&b"kept"[..], 0));
        assert_eq!(leaving.dropped(), 0);
        assert!(leaving.try_recv().is_err());
        // The lagging subscriber lost exactly what its capacity of one
        // cannot hold.
        let msg = lagging.try_recv().expect("the newest message");
        assert_eq!((msg.payload().as_ref(), msg.seq()), (&b"z"[..], 3));
        assert_eq!(lagging.dropped(), 3);
    }
}

/// The same guarantee when the later publishes race the unsubscribe: a
/// subscriber leaving many channels at once still receives what it was
/// owed on each, however many publishes another thread makes meanwhile.
/// (The feed once stopped counting the reader in one step and ended its
/// cursor in another, and an append in between evicted what it was owed.)
#[test]
fn unsubscribing_keeps_what_concurrent_publishes_would_push_out() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    let broker = Broker::builder().queue_capacity(1).build();
    // A reader that never reads: the hot channel's feed keeps one entry.
    let idle = broker.subscriber();
    idle.subscribe(["hot"]);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // Bounded: the main thread stops it long before this ends.
            for _ in 0..50_000_000u64 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                broker.publish("hot", "later");
            }
        });
        let cold: Vec<String> = (0..100).map(|i| format!("cold:{i}")).collect();
        for round in 0..200 {
            let leaving = broker.subscriber();
            leaving.subscribe(["hot"]);
            leaving.subscribe(&cold);
            let deadline = Instant::now() + Duration::from_secs(60);
            while leaving.is_empty() {
                assert!(
                    Instant::now() < deadline,
                    "no publish reached the subscriber"
                );
                std::thread::yield_now();
            }
            // Leaves "hot" first, then the hundred cold channels.
            leaving.unsubscribe(Vec::<&str>::new());
            assert_eq!(
                leaving.len(),
                1,
                "round {round}: what was pending when unsubscribing stays pending"
            );
            let msg = leaving.try_recv().expect("the message it was owed");
            assert_eq!(msg.payload().as_ref(), b"later");
            assert!(
                leaving.try_recv().is_err(),
                "nothing addressed after leaving"
            );
        }
        stop.store(true, Ordering::Relaxed);
    });
}

/// Dropping a subscriber that had not read a channel's last messages gives
/// its claim on them back: the channel's other subscriber still receives
/// each of them, in order, and once it has, no copy of any payload is left.
#[test]
fn a_dropped_subscriber_gives_back_what_it_had_not_read() {
    let live = Arc::new(AtomicIsize::new(0));
    let broker = BrokerBuilder::<Counted>::new().build();
    let staying = broker.subscriber();
    let leaving = broker.subscriber();
    staying.subscribe(["a"]);
    leaving.subscribe(["a"]);
    // Two messages both read, so the channel's oldest kept message is no
    // longer its first.
    for _ in 0..2 {
        assert_eq!(broker.publish("a", Counted::new(&live)), 2);
    }
    for sub in [&staying, &leaving] {
        for _ in 0..2 {
            drop(sub.try_recv().expect("a message both read"));
        }
    }
    // Three more that only `staying` reads.
    for _ in 0..3 {
        assert_eq!(broker.publish("a", Counted::new(&live)), 2);
    }
    drop(leaving);
    let seqs: Vec<u64> = std::iter::from_fn(|| staying.try_recv().ok())
        .map(|msg| msg.seq())
        .collect();
    assert_eq!(seqs, [2, 3, 4]);
    assert_eq!(staying.dropped(), 0);
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "every payload is freed once every subscriber left or received it"
    );
}
