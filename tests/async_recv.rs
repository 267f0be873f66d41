//! Async receiving: `Subscriber::recv_async` and the `Stream` implementation
//! are woken by publishers (no polling), are cancellation-safe, end when the
//! broker closes, work on more than one executor, and keep drop-oldest gaps
//! visible through `Message::seq`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use futures::task::{ArcWake, waker};
use futures::{Stream, StreamExt};
use tannoy::{Broker, Bytes, MessageKind, OverflowPolicy, RecvError, Subscriber};

/// Bounds every await that could hang if a wake-up were lost.
const PATIENCE: Duration = Duration::from_secs(10);

/// A waker that counts how often it is woken.
struct CountingWaker(AtomicUsize);

impl ArcWake for CountingWaker {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A pending `recv_async` is woken by the publish that queues a message,
/// exactly once, and not before: nothing polls in the background.
#[test]
fn pending_recv_is_woken_once_by_publish() {
    let broker = Broker::new();
    let mut sub = broker.subscriber();
    sub.subscribe(["ai:predictions:ready"]);

    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = waker(Arc::clone(&counter));
    let mut cx = Context::from_waker(&waker);
    {
        let mut recv = pin!(sub.recv_async());
        assert!(recv.as_mut().poll(&mut cx).is_pending());
        thread::sleep(Duration::from_millis(20));
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            0,
            "woken with nothing queued"
        );

        assert_eq!(broker.publish("ai:predictions:ready", "p1"), 1);
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        match recv.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(msg)) => assert_eq!(msg.payload(), "p1"),
            other => panic!("expected the message, got {other:?}"),
        }
    }
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
}

/// A tokio task awaiting `recv_async` wakes when another OS thread publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_task_wakes_on_publish_from_another_thread() {
    let broker = Broker::new();
    let mut sub = broker.subscriber();
    sub.subscribe(["jobs"]);

    let task = tokio::spawn(async move {
        let msg = sub.recv_async().await.expect("broker open");
        (msg.kind(), msg.payload().clone())
    });
    let publisher = broker.clone();
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        publisher.publish("jobs", "job-1");
    });
    let (kind, payload) = tokio::time::timeout(PATIENCE, task)
        .await
        .expect("woken")
        .expect("task ok");
    assert_eq!(
        (kind, payload),
        (MessageKind::Message, Bytes::from("job-1"))
    );
}

/// The same works on a different executor (`futures::executor`), with no
/// tokio runtime anywhere.
#[test]
fn futures_executor_receives_and_streams() {
    let broker = Broker::new();
    let mut sub = broker.subscriber();
    sub.psubscribe(["ai:*"]);

    let publisher = broker.clone();
    let feeder = thread::spawn(move || {
        for i in 0..5 {
            thread::sleep(Duration::from_millis(5));
            publisher.publish(format!("ai:model:{i}"), format!("v{i}"));
        }
        publisher.close();
    });

    let first = futures::executor::block_on(sub.recv_async()).expect("open");
    assert_eq!(first.channel(), "ai:model:0");
    let rest: Vec<_> = futures::executor::block_on(
        (&mut sub)
            .map(|msg| String::from_utf8(msg.payload().to_vec()).unwrap())
            .collect::<Vec<_>>(),
    );
    assert_eq!(rest, ["v1", "v2", "v3", "v4"]);
    feeder.join().unwrap();
}

/// The stream yields what was queued before close, then ends; a later
/// `recv_async` reports `Closed`.
#[tokio::test]
async fn stream_drains_then_ends_on_close() {
    let broker = Broker::new();
    let mut sub = broker.subscriber();
    sub.subscribe(["c"]);
    for p in ["a", "b", "c"] {
        broker.publish("c", p);
    }
    broker.close();
    let got: Vec<Bytes> =
        tokio::time::timeout(PATIENCE, (&mut sub).map(|m| m.payload().clone()).collect())
            .await
            .expect("stream ended");
    assert_eq!(got, ["a", "b", "c"]);
    assert_eq!(sub.recv_async().await, Err(RecvError::Closed));
}

/// A stream that is waiting when the broker closes is woken and ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_stream_ends_when_broker_closes() {
    let broker = Broker::new();
    let mut sub = broker.subscriber();
    sub.subscribe(["c"]);
    let task = tokio::spawn(async move { sub.next().await.is_none() });
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(broker); // the last handle: closes the broker
    assert!(
        tokio::time::timeout(PATIENCE, task)
            .await
            .expect("woken")
            .unwrap()
    );
}

/// Under `OverflowPolicy::Disconnect`, the stream ends after the queued
/// messages, and `recv_async` then reports the disconnect.
#[tokio::test]
async fn stream_ends_after_disconnect_for_overflow() {
    let broker = Broker::new();
    let mut sub = broker
        .subscriber_builder()
        .queue_capacity(2)
        .overflow_policy(OverflowPolicy::Disconnect)
        .build();
    sub.subscribe(["c"]);
    for p in ["1", "2", "3", "4"] {
        broker.publish("c", p);
    }
    let got: Vec<Bytes> = (&mut sub).map(|m| m.payload().clone()).collect().await;
    assert_eq!(got, ["1", "2"]);
    assert_eq!(sub.recv_async().await, Err(RecvError::Disconnected));
    assert_eq!(broker.numsub(["c"])[0].1, 0);
}

/// Every overflow policy: feed readers (`DropOldest`) and subscribers with
/// their own queue (`DropNewest`, `Disconnect`) take different paths.
const POLICIES: [OverflowPolicy; 3] = [
    OverflowPolicy::DropOldest,
    OverflowPolicy::DropNewest,
    OverflowPolicy::Disconnect,
];

/// A waker counting its wake-ups, and the counter.
fn counting_waker() -> (Arc<CountingWaker>, std::task::Waker) {
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = waker(Arc::clone(&counter));
    (counter, waker)
}

/// Polls `sub` once, through `recv_async` or as a `Stream`, with `waker`;
/// returns the payload if a message was ready.
fn poll_once(sub: &mut Subscriber, stream: bool, waker: &std::task::Waker) -> Poll<Bytes> {
    let mut cx = Context::from_waker(waker);
    if stream {
        Pin::new(sub)
            .poll_next(&mut cx)
            .map(|msg| msg.expect("open").into_payload())
    } else {
        pin!(sub.recv_async())
            .as_mut()
            .poll(&mut cx)
            .map(|msg| msg.expect("open").into_payload())
    }
}

/// A pending receiver polled again with a different waker (its task moved,
/// or `select!` built a new future) is woken through the new waker only:
/// the stale one is replaced, not kept. Every policy, `recv_async` and
/// `Stream`.
#[test]
fn repoll_with_a_new_waker_replaces_the_stale_one() {
    for policy in POLICIES {
        for stream in [false, true] {
            let broker = Broker::new();
            let mut sub = broker.subscriber_with(policy);
            sub.subscribe(["c"]);
            let (stale, stale_waker) = counting_waker();
            let (fresh, fresh_waker) = counting_waker();
            assert!(poll_once(&mut sub, stream, &stale_waker).is_pending());
            assert!(poll_once(&mut sub, stream, &fresh_waker).is_pending());
            assert_eq!(broker.publish("c", "x"), 1);
            let woken = (
                stale.0.load(Ordering::SeqCst),
                fresh.0.load(Ordering::SeqCst),
            );
            assert_eq!(
                woken,
                (0, 1),
                "{policy:?}, stream: {stream}: (stale, fresh)"
            );
            assert_eq!(
                poll_once(&mut sub, stream, &fresh_waker),
                Poll::Ready(Bytes::from("x"))
            );
        }
    }
}

/// A receive future woken by a publish and then dropped before it is
/// polled again (cancelled, as `select!` drops the losing branch) takes
/// nothing with it: the message it was woken for is received next, with
/// its `seq`, and so is the one after. Every policy, `recv_async` and
/// `Stream`, exact and pattern subscriptions.
#[test]
fn woken_recv_dropped_before_its_next_poll_takes_nothing() {
    for policy in POLICIES {
        for stream in [false, true] {
            let broker = Broker::new();
            let mut sub = broker.subscriber_with(policy);
            sub.subscribe(["c"]);
            sub.psubscribe(["c*"]);
            let (counter, waker) = counting_waker();
            assert!(poll_once(&mut sub, stream, &waker).is_pending());
            assert_eq!(broker.publish("c", "kept"), 2);
            assert_eq!(counter.0.load(Ordering::SeqCst), 1, "woken, then dropped");
            assert_eq!(broker.publish("c", "next"), 2);
            let got: Vec<(u64, Bytes)> = sub
                .try_iter()
                .map(|m| (m.seq(), m.payload().clone()))
                .collect();
            let expected: Vec<(u64, Bytes)> = vec![
                (0, "kept".into()),
                (1, "kept".into()),
                (2, "next".into()),
                (3, "next".into()),
            ];
            assert_eq!(got, expected, "{policy:?}, stream: {stream}");
            assert_eq!(sub.dropped(), 0);
        }
    }
}

/// Cancelling receive futures loses nothing while another thread
/// publishes: every other pending future is dropped after the publish
/// that wakes it (so a message is waiting for it when it is cancelled),
/// the rest are polled to completion, and every message still arrives
/// exactly once, in order, with consecutive `seq`s. Every policy.
#[test]
fn cancelled_recv_loses_no_message() {
    const COUNT: u64 = 2_000;
    for policy in POLICIES {
        let broker = Broker::builder().queue_capacity(COUNT as usize).build();
        let mut sub = broker.subscriber_with(policy);
        sub.subscribe(["ticks"]);
        let publisher = broker.clone();
        let feeder = thread::spawn(move || {
            for i in 0..COUNT {
                publisher.publish("ticks", i.to_string());
                if i % 8 == 0 {
                    thread::sleep(Duration::from_micros(50));
                }
            }
        });

        let (counter, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let mut received = Vec::new();
        let mut cancelled_after_wake = 0u32;
        let deadline = std::time::Instant::now() + PATIENCE;
        while (received.len() as u64) < COUNT {
            let mut recv = pin!(sub.recv_async());
            let woken = counter.0.load(Ordering::SeqCst);
            match recv.as_mut().poll(&mut cx) {
                Poll::Ready(msg) => received.push(msg.expect("open")),
                Poll::Pending => {
                    while counter.0.load(Ordering::SeqCst) == woken {
                        assert!(std::time::Instant::now() < deadline, "never woken");
                        thread::yield_now();
                    }
                    if cancelled_after_wake as usize <= received.len() / 2 {
                        // Dropped with a message waiting for it.
                        cancelled_after_wake += 1;
                        continue;
                    }
                    match recv.as_mut().poll(&mut cx) {
                        Poll::Ready(msg) => received.push(msg.expect("open")),
                        Poll::Pending => panic!("woken with nothing to receive"),
                    }
                }
            }
        }
        feeder.join().unwrap();
        assert!(
            cancelled_after_wake > 0,
            "no future was cancelled after its wake-up"
        );
        let payloads: Vec<u64> = received
            .iter()
            .map(|m| std::str::from_utf8(m.payload()).unwrap().parse().unwrap())
            .collect();
        assert_eq!(payloads, (0..COUNT).collect::<Vec<_>>(), "{policy:?}");
        assert!(
            received
                .iter()
                .enumerate()
                .all(|(i, m)| m.seq() == i as u64)
        );
        assert_eq!(sub.dropped(), 0);
        assert!(sub.try_recv().is_err());
    }
}

/// Many tasks, each with its own subscriber, on a multi-threaded runtime:
/// every task receives every message of a fan-out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_to_many_async_subscribers() {
    const TASKS: usize = 32;
    const MESSAGES: usize = 100;
    let broker = Broker::new();
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let mut sub = broker.subscriber();
        sub.subscribe(["conversations:new"]);
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while let Some(msg) = sub.next().await {
                assert_eq!(msg.seq(), n as u64);
                n += 1;
            }
            n
        }));
    }
    let publisher = broker.clone();
    thread::spawn(move || {
        for i in 0..MESSAGES {
            assert_eq!(publisher.publish("conversations:new", i.to_string()), TASKS);
        }
        publisher.close();
    })
    .join()
    .unwrap();
    for task in tasks {
        let n = tokio::time::timeout(PATIENCE, task)
            .await
            .expect("ended")
            .unwrap();
        assert_eq!(n, MESSAGES);
    }
}

/// Gaps are visible exactly: with several threads publishing concurrently
/// into a small queue read slowly, the received sequence numbers increase,
/// their jumps add up to `dropped()`, and received + dropped = every
/// delivery `publish` counted. Each publisher's messages stay in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_gaps_are_exact_under_concurrent_publishing() {
    const PUBLISHERS: usize = 3;
    const EACH: usize = 2_000;
    let broker = Broker::new();
    let mut sub = broker.subscriber_builder().queue_capacity(8).build();
    sub.subscribe(["events"]);
    sub.psubscribe(["ev*"]); // two deliveries per publish

    let addressed = Arc::new(AtomicUsize::new(0));
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let broker = broker.clone();
            let addressed = Arc::clone(&addressed);
            thread::spawn(move || {
                for i in 0..EACH {
                    let n = broker.publish("events", format!("{p}:{i}"));
                    addressed.fetch_add(n, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let published = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let closer = {
        let broker = broker.clone();
        let published = Arc::clone(&published);
        thread::spawn(move || {
            for p in publishers {
                p.join().unwrap();
            }
            published.store(true, Ordering::SeqCst);
            broker.close();
        })
    };
    drop(broker);

    let mut last_seq: Option<u64> = None;
    let mut gaps = 0u64;
    let mut received = 0u64;
    let mut last_by_publisher: HashMap<(MessageKind, usize), usize> = HashMap::new();
    tokio::time::timeout(PATIENCE, async {
        while let Some(msg) = sub.next().await {
            let expected = last_seq.map_or(0, |s| s + 1);
            assert!(msg.seq() >= expected, "seq went backwards");
            gaps += msg.seq() - expected;
            last_seq = Some(msg.seq());
            received += 1;
            let text = std::str::from_utf8(msg.payload()).unwrap();
            let (p, i) = text.split_once(':').unwrap();
            let (p, i): (usize, usize) = (p.parse().unwrap(), i.parse().unwrap());
            if let Some(prev) = last_by_publisher.insert((msg.kind(), p), i) {
                assert!(i > prev, "publisher {p}'s messages out of order");
            }
            if received % 16 == 0 {
                tokio::task::yield_now().await; // read slowly
            }
            if received == 100 {
                // Stall until every publish is done, so drops must happen
                // (the queue holds 8 of 12,000 deliveries).
                while !published.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    })
    .await
    .expect("stream ended");
    closer.join().unwrap();

    assert_eq!(addressed.load(Ordering::SeqCst), PUBLISHERS * EACH * 2);
    assert!(sub.dropped() > 0);
    assert_eq!(gaps, sub.dropped(), "seq jumps must add up to dropped()");
    assert_eq!(received + sub.dropped(), (PUBLISHERS * EACH * 2) as u64);
}
