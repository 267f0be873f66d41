//! A subscriber holding many subscriptions (hundreds of channels, thousands
//! of patterns) receives exactly what one holding a few does: the same
//! messages, in the same order, with the same `seq`, the same drop-oldest
//! accounting, and the same wake-ups. Such a subscriber is told by its
//! channels which ones have news instead of looking at each of them on
//! every receive, so these tests cover that path: every subscriber here
//! holds far more subscriptions than the point where it switches.

#[path = "support/drain.rs"]
mod drain;
#[path = "support/watchdog.rs"]
mod watchdog;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use drain::drain_as;
use proptest::prelude::*;
use tannoy::{Broker, Message, OverflowPolicy, Subscriber};

/// Channels the tests pick from: far more than a subscriber needs to be
/// one "of many feeds".
const CHANNELS: usize = 64;

/// Name of channel `i`.
fn channel(i: usize) -> String {
    format!("room:{i}")
}

/// A received message as plain data: (kind, channel, pattern, payload, seq).
type Got = (&'static str, Vec<u8>, Option<Vec<u8>>, Vec<u8>, u64);

/// `msg` as a [`Got`].
fn got(msg: &Message) -> Got {
    (
        msg.kind().as_str(),
        msg.channel().to_vec(),
        msg.pattern().map(|p| p.to_vec()),
        msg.payload().to_vec(),
        msg.seq(),
    )
}

/// Everything queued for `sub` right now, oldest first.
fn drain(sub: &Subscriber) -> Vec<Got> {
    drain_as(sub, got)
}

/// One step of a single-threaded run.
#[derive(Debug, Clone)]
enum Op {
    /// Publish a payload to a channel.
    Publish(usize),
    /// Subscribe to a channel.
    Subscribe(usize),
    /// Unsubscribe from a channel.
    Unsubscribe(usize),
    /// Subscribe to the pattern `room:<digit>*`.
    Psubscribe(u8),
    /// Receive everything queued, at both subscribers.
    Drain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..CHANNELS).prop_map(Op::Publish),
        2 => (0..CHANNELS).prop_map(Op::Subscribe),
        1 => (0..CHANNELS).prop_map(Op::Unsubscribe),
        1 => (0u8..10).prop_map(Op::Psubscribe),
        2 => Just(Op::Drain),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A default (drop-oldest) subscriber of many channels and patterns
    /// receives exactly what a subscriber with a queue of its own receives
    /// (`DropNewest`, never full here), message for message, `seq` for
    /// `seq`, whatever the order of publishes, subscribes, unsubscribes
    /// and receives.
    #[test]
    fn many_subscriptions_receive_as_a_queue_does(ops in prop::collection::vec(op(), 1..300)) {
        let broker = Broker::builder().queue_capacity(100_000).build();
        let feeds = broker.subscriber();
        let queue = broker.subscriber_with(OverflowPolicy::DropNewest);
        // Start well past the switch, so the whole run is on that path.
        let start: Vec<String> = (0..CHANNELS).step_by(2).map(channel).collect();
        prop_assert_eq!(feeds.subscribe(&start), queue.subscribe(&start));
        for (n, op) in ops.iter().enumerate() {
            match op {
                Op::Publish(c) => {
                    let payload = format!("{n}");
                    broker.publish(channel(*c), payload);
                }
                Op::Subscribe(c) => {
                    prop_assert_eq!(feeds.subscribe([channel(*c)]), queue.subscribe([channel(*c)]));
                }
                Op::Unsubscribe(c) => {
                    prop_assert_eq!(
                        feeds.unsubscribe([channel(*c)]),
                        queue.unsubscribe([channel(*c)])
                    );
                }
                Op::Psubscribe(d) => {
                    let pattern = format!("room:{d}*");
                    prop_assert_eq!(feeds.psubscribe([&pattern]), queue.psubscribe([&pattern]));
                }
                Op::Drain => prop_assert_eq!(drain(&feeds), drain(&queue)),
            }
            prop_assert_eq!(feeds.len(), queue.len());
        }
        prop_assert_eq!(drain(&feeds), drain(&queue));
        prop_assert_eq!(feeds.dropped(), 0);
    }
}

/// Publishing more than the capacity to a subscriber of many channels that
/// does not read drops exactly the oldest messages, counted, with `seq`
/// jumping past them, across every channel.
#[test]
fn many_subscriptions_drop_the_oldest_exactly() {
    let broker = Broker::builder().queue_capacity(10).build();
    let sub = broker.subscriber();
    let names: Vec<String> = (0..CHANNELS).map(channel).collect();
    sub.subscribe(&names);
    for i in 0..35 {
        broker.publish(channel(i % CHANNELS), format!("{i}"));
    }
    assert_eq!(sub.len(), 10);
    assert_eq!(sub.dropped(), 25);
    let received = drain(&sub);
    let payloads: Vec<String> = received
        .iter()
        .map(|g| String::from_utf8(g.3.clone()).unwrap())
        .collect();
    let expected: Vec<String> = (25..35).map(|i| i.to_string()).collect();
    assert_eq!(payloads, expected, "the newest ten, in publish order");
    let seqs: Vec<u64> = received.iter().map(|g| g.4).collect();
    assert_eq!(seqs, (25..35).collect::<Vec<u64>>());
    assert_eq!(sub.dropped(), 25);
}

/// Unsubscribing from one of many channels keeps what was already
/// published there, and nothing published afterwards arrives through it.
#[test]
fn many_subscriptions_unsubscribe_keeps_what_was_queued() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    let names: Vec<String> = (0..CHANNELS).map(channel).collect();
    sub.subscribe(&names);
    broker.publish(channel(7), "before");
    sub.unsubscribe([channel(7)]);
    broker.publish(channel(7), "after");
    broker.publish(channel(8), "elsewhere");
    let payloads: Vec<Vec<u8>> = drain(&sub).into_iter().map(|g| g.3).collect();
    assert_eq!(payloads, [b"before".to_vec(), b"elsewhere".to_vec()]);
    // Subscribing again reads only what comes next.
    sub.subscribe([channel(7)]);
    broker.publish(channel(7), "again");
    let payloads: Vec<Vec<u8>> = drain(&sub).into_iter().map(|g| g.3).collect();
    assert_eq!(payloads, [b"again".to_vec()]);
}

/// A thread blocked in `recv` on a subscriber of many channels is woken
/// by one publish to any of them, with no close or timeout to rescue it.
#[test]
fn many_subscriptions_wake_a_blocked_receiver() {
    watchdog::guarded(Duration::from_secs(60), "recv never woke", || {
        let broker = Broker::new();
        let sub = broker.subscriber();
        let names: Vec<String> = (0..CHANNELS).map(channel).collect();
        sub.subscribe(&names);
        sub.psubscribe(["other:*"]);
        for round in 0..50usize {
            thread::scope(|scope| {
                let receiver = scope.spawn(|| sub.recv().map(|m| m.payload().to_vec()));
                // Give the receiver time to park (not needed for correctness).
                thread::sleep(Duration::from_millis(1));
                let target = if round % 5 == 0 {
                    "other:x".to_owned()
                } else {
                    channel(round * 7 % CHANNELS)
                };
                broker.publish(target, format!("{round}"));
                let payload = receiver.join().unwrap().expect("a message");
                assert_eq!(payload, round.to_string().into_bytes());
            });
        }
    });
}

/// Counts wake-ups.
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// An async receive pending on a subscriber of many channels is woken by a
/// publish to any of them, and then returns that message.
#[test]
fn many_subscriptions_wake_an_async_receiver() {
    let broker = Broker::new();
    let mut sub = broker.subscriber();
    let names: Vec<String> = (0..CHANNELS).map(channel).collect();
    sub.subscribe(&names);
    for round in 0..20usize {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        let mut recv = pin!(sub.recv_async());
        assert!(recv.as_mut().poll(&mut cx).is_pending());
        broker.publish(channel(round * 3 % CHANNELS), "ping");
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "round {round}: woken once"
        );
        match recv.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(msg)) => assert_eq!(msg.channel(), &channel(round * 3 % CHANNELS)),
            other => panic!("round {round}: {other:?}"),
        }
    }
}

/// Each publishing thread's messages reach a subscriber of many channels
/// in publish order, across channels, with `seq` counting up by one.
#[test]
fn many_subscriptions_keep_each_publishers_order() {
    const PER_PUBLISHER: usize = 20_000;
    let broker = Broker::builder().queue_capacity(1 << 20).build();
    let sub = broker.subscriber();
    let names: Vec<String> = (0..CHANNELS).map(channel).collect();
    sub.subscribe(&names);
    sub.psubscribe(["room:1*"]);
    let publishers: Vec<_> = (0..2u8)
        .map(|p| {
            let broker = broker.clone();
            thread::spawn(move || {
                for i in 0..PER_PUBLISHER {
                    let mut payload = vec![p];
                    payload.extend_from_slice(&(i as u64).to_be_bytes());
                    broker.publish(channel((i * 13 + usize::from(p)) % CHANNELS), payload);
                }
            })
        })
        .collect();
    let mut last = [None::<u64>; 2];
    let mut last_pattern = [None::<u64>; 2];
    let mut next_seq = 0;
    let mut exact = 0;
    let mut finished = false;
    while !finished {
        finished = publishers.iter().all(|p| p.is_finished());
        for g in drain(&sub) {
            assert_eq!(g.4, next_seq, "seq counts up by one");
            next_seq += 1;
            let p = usize::from(g.3[0]);
            let i = u64::from_be_bytes(g.3[1..9].try_into().unwrap());
            let last = if g.2.is_some() {
                &mut last_pattern[p]
            } else {
                exact += 1;
                &mut last[p]
            };
            assert!(
                last.is_none_or(|l| l < i),
                "publisher {p}: {i} after {last:?}"
            );
            *last = Some(i);
        }
    }
    for p in publishers {
        p.join().unwrap();
    }
    for g in drain(&sub) {
        assert_eq!(g.4, next_seq);
        next_seq += 1;
        if g.2.is_none() {
            exact += 1;
        }
    }
    assert_eq!(exact, 2 * PER_PUBLISHER, "every exact message, once");
    assert_eq!(sub.dropped(), 0);
}

/// A subscriber holding thousands of patterns receives what matches, and
/// nothing else, in publish order.
#[test]
fn thousands_of_patterns() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    let patterns: Vec<String> = (0..5_000).map(|i| format!("tenant{i}:*")).collect();
    assert_eq!(sub.psubscribe(&patterns), 5_000);
    for i in 0..100 {
        assert_eq!(broker.publish(format!("tenant{}:events", i * 37), "e"), 1);
        assert_eq!(broker.publish(format!("nobody{i}"), "x"), 0);
    }
    let channels: Vec<Vec<u8>> = drain(&sub).into_iter().map(|g| g.1).collect();
    let expected: Vec<Vec<u8>> = (0..100)
        .map(|i| format!("tenant{}:events", i * 37).into_bytes())
        .collect();
    assert_eq!(channels, expected);
}

/// When one subscriber of many channels leaves a channel (or is dropped),
/// the others holding it are still told of its messages: a channel forgets
/// only the departing subscriber.
#[test]
fn many_subscriptions_others_are_told_after_one_leaves() {
    let broker = Broker::new();
    let names: Vec<String> = (0..CHANNELS).map(channel).collect();
    let staying = broker.subscriber();
    staying.subscribe(&names);
    for (round, leave) in [true, false].into_iter().enumerate() {
        let leaving = broker.subscriber();
        leaving.subscribe(&names);
        // Nothing pending: every one of `staying`'s channels goes idle, so
        // only a channel telling it of news brings it back.
        assert!(staying.try_recv().is_err());
        if leave {
            leaving.unsubscribe([channel(3)]);
        } else {
            drop(leaving);
        }
        assert_eq!(broker.publish(channel(3), format!("{round}")), 1);
        let msg = staying.try_recv().expect("told of the channel's message");
        assert_eq!(msg.payload().as_ref(), round.to_string().as_bytes());
    }
}

/// A subscriber of far more channels than 64 is told of news on each of
/// them: when every channel publishes before it reads, it receives every
/// message, in publish order, and again for a second round after it has
/// read the first.
#[test]
fn many_subscriptions_hear_from_every_one_of_hundreds_of_channels() {
    const WIDE: usize = 200;
    let broker = Broker::new();
    let sub = broker.subscriber();
    let names: Vec<String> = (0..WIDE).map(channel).collect();
    sub.subscribe(&names);
    for round in 0..2 {
        for i in 0..WIDE {
            assert_eq!(broker.publish(channel(i), format!("{round}:{i}")), 1);
        }
        let payloads: Vec<String> = drain(&sub)
            .into_iter()
            .map(|g| String::from_utf8(g.3).unwrap())
            .collect();
        let expected: Vec<String> = (0..WIDE).map(|i| format!("{round}:{i}")).collect();
        assert_eq!(payloads, expected, "round {round}");
    }
}
