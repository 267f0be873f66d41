//! The API around the engine: what a Rust user expects of a channel library
//! (tokio broadcast, crossbeam, redis-rs), held to account. Binary filters
//! for introspection, publishing borrowed data, waiting for shutdown, weak
//! handles, batch receive, fused iterators and streams, and names that say
//! which set they list.

#[path = "support/shows.rs"]
mod shows;
#[path = "support/watchdog.rs"]
mod watchdog;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::future::Future;
use std::iter::FusedIterator;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use futures_core::{FusedFuture, FusedStream, Stream};
use shows::assert_shows;
use tannoy::{
    Broker, BrokerBuilder, Bytes, Message, MessageKind, OverflowPolicy, RecvError, Subscriber,
    TryRecvError, WeakBroker,
};

/// How long a hang guard waits before declaring a hang. Generous: it only
/// turns a hang into a failure, it never measures speed.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// A pause that makes it likely (not certain) that a receiver thread has
/// parked; correctness never depends on it.
const LET_IT_PARK: Duration = Duration::from_millis(20);

/// The overflow policies, one per kind of inbox: drop-oldest subscribers
/// read feeds, the others own a queue.
const POLICIES: [OverflowPolicy; 3] = [
    OverflowPolicy::DropOldest,
    OverflowPolicy::DropNewest,
    OverflowPolicy::Disconnect,
];

/// Runs `f` on its own thread, failing instead of hanging.
fn guarded<T: Send + 'static>(hang: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    watchdog::guarded(HANG_GUARD, hang, f)
}

/// A set of names, for order-free comparison.
fn set<T: AsRef<[u8]>>(names: impl IntoIterator<Item = T>) -> BTreeSet<Vec<u8>> {
    names.into_iter().map(|n| n.as_ref().to_vec()).collect()
}

/// Counts how often it was woken.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    /// Times woken so far.
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A counting waker and its counter.
fn counting() -> (Arc<CountingWaker>, Waker) {
    let counter = Arc::new(CountingWaker::default());
    (Arc::clone(&counter), Waker::from(counter))
}

/// Polls `fut` once with `waker`.
fn poll_with<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

// ---------------------------------------------------------------------------
// Broker::channels with a binary pattern
// ---------------------------------------------------------------------------

/// An optional pattern of any byte-string type filters exactly as the same
/// pattern given as `Option<&str>`; `None` of any type lists everything.
#[test]
fn optional_binary_patterns_filter_channels() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe([b"\x80raw".as_slice(), b"\x80", b"text", b""]);
    let all = set([b"\x80raw".as_slice(), b"\x80", b"text", b""]);
    let binary = set([b"\x80raw".as_slice(), b"\x80"]);

    assert_eq!(set(broker.channels(None)), all);
    assert_eq!(set(broker.channels(Some("t*"))), set(["text"]));

    let slice: Option<&[u8]> = Some(b"\x80*");
    let array: Option<&[u8; 2]> = Some(b"\x80*");
    let string: Option<String> = Some("t*".to_owned());
    let owned = String::from("t*");
    let string_ref: Option<&String> = Some(&owned);
    let vec: Option<Vec<u8>> = Some(b"\x80*".to_vec());
    let bytes: Option<Bytes> = Some(Bytes::from_static(b"\x80*"));
    assert_eq!(set(broker.channels(&slice)), binary);
    assert_eq!(set(broker.channels(&array)), binary);
    assert_eq!(set(broker.channels(&string)), set(["text"]));
    assert_eq!(set(broker.channels(&string_ref)), set(["text"]));
    assert_eq!(set(broker.channels(&vec)), binary);
    assert_eq!(set(broker.channels(&bytes)), binary);
    assert_eq!(set(broker.channels(string.as_deref())), set(["text"]));

    let none_bytes: Option<Bytes> = None;
    let none_vec: Option<Vec<u8>> = None;
    assert_eq!(set(broker.channels(&none_bytes)), all);
    assert_eq!(set(broker.channels(&none_vec)), all);
}

/// The same filters work for shard channels, which stay a namespace apart.
#[test]
fn optional_binary_patterns_filter_shard_channels() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.ssubscribe([b"\xffs".as_slice(), b"plain"]);
    sub.subscribe([b"\xffc".as_slice()]);
    let pattern: Option<Bytes> = Some(Bytes::from_static(b"\xff*"));
    assert_eq!(broker.shard_channels(&pattern), [b"\xffs".as_slice()]);
    assert_eq!(broker.channels(&pattern), [b"\xffc".as_slice()]);
    let none: Option<Vec<u8>> = None;
    assert_eq!(
        set(broker.shard_channels(&none)),
        set([b"\xffs".as_slice(), b"plain"])
    );
}

// ---------------------------------------------------------------------------
// Publishing borrowed data
// ---------------------------------------------------------------------------

/// Borrowed strings and byte slices publish into a `Broker<Bytes>` as a
/// copy: the message keeps its content after the source changes or goes.
#[test]
fn borrowed_data_publishes_as_a_copy() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["c"]);

    let mut line = String::from("first");
    assert_eq!(broker.publish("c", line.as_str()), 1);
    assert_eq!(broker.publish("c", &line), 1);
    line.clear();
    line.push_str("changed");

    let mut buf = vec![1u8, 2, 3];
    assert_eq!(broker.publish("c", &buf[..]), 1);
    assert_eq!(broker.publish("c", &buf), 1);
    buf[0] = 9;
    drop(buf);

    let array = [4u8, 5];
    assert_eq!(broker.publish("c", &array), 1);
    assert_eq!(broker.spublish("c", "not for a channel subscriber"), 0);
    {
        let temporary = format!("{}-{}", "built", 7);
        broker.publish("c", temporary.as_str());
    }
    broker.publish("c", Cow::Borrowed(&b"cow"[..]));

    let got: Vec<Bytes> = sub.try_iter().map(Message::into_payload).collect();
    assert_eq!(
        got,
        [
            &b"first"[..],
            b"first",
            &[1, 2, 3],
            &[1, 2, 3],
            &[4, 5],
            b"built-7",
            b"cow"
        ]
    );
}

/// Publishing a `Bytes` (or a `&Bytes`, or a `String`/`Vec<u8>` moved in)
/// copies no data: the receiver sees the publisher's buffer.
#[test]
fn owned_payloads_publish_without_a_copy() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["c"]);
    let shared = Bytes::from(vec![7u8; 64]);
    broker.publish("c", shared.clone());
    broker.publish("c", &shared);
    let vec = vec![8u8; 64];
    let vec_ptr = vec.as_ptr();
    broker.publish("c", vec);
    let string = String::from("moved, not copied");
    let string_ptr = string.as_ptr();
    broker.publish("c", string);

    let ptrs: Vec<*const u8> = sub.try_iter().map(|m| m.into_payload().as_ptr()).collect();
    assert_eq!(
        ptrs,
        [shared.as_ptr(), shared.as_ptr(), vec_ptr, string_ptr]
    );
}

/// Other payload types keep taking their own type, plus the conversions
/// `Into` gave before for the standard ones.
#[test]
fn other_payload_types_take_their_own_type_and_the_usual_conversions() {
    let strings = BrokerBuilder::<String>::new().build();
    let sub = strings.subscriber();
    sub.subscribe(["c"]);
    let owned = String::from("owned");
    strings.publish("c", "literal");
    strings.publish("c", owned.as_str());
    strings.publish("c", &owned);
    strings.publish("c", owned);
    strings.publish("c", 'x');
    let got: Vec<String> = sub.try_iter().map(Message::into_payload).collect();
    assert_eq!(got, ["literal", "owned", "owned", "owned", "x"]);

    let vecs = BrokerBuilder::<Vec<u8>>::new().build();
    let sub = vecs.subscriber();
    sub.subscribe(["c"]);
    vecs.publish("c", &b"ab"[..]);
    vecs.publish("c", b"cd");
    vecs.publish("c", "ef");
    vecs.publish("c", vec![b'g']);
    let got: Vec<Vec<u8>> = sub.try_iter().map(Message::into_payload).collect();
    assert_eq!(got, [&b"ab"[..], b"cd", b"ef", b"g"]);

    /// A payload type of the application's own.
    #[derive(Clone, Debug, PartialEq)]
    struct Event(u32);
    let events = BrokerBuilder::<Arc<Event>>::new().build();
    let sub = events.subscriber();
    sub.subscribe(["c"]);
    let shared = Arc::new(Event(1));
    events.publish("c", Arc::clone(&shared));
    events.publish("c", Event(2)); // wrapped in an Arc
    let first = sub.try_recv().unwrap().into_payload();
    assert!(Arc::ptr_eq(&first, &shared), "the Arc itself was published");
    assert_eq!(*sub.try_recv().unwrap().into_payload(), Event(2));
}

// ---------------------------------------------------------------------------
// Changing subscriptions while another thread receives
// ---------------------------------------------------------------------------

/// A control thread adds a channel while a worker thread is blocked in
/// `recv`: the subscribe call does not wait for the worker, and the worker
/// wakes for the new channel's first message. For every policy, with the
/// worker holding nothing yet and holding another channel.
#[test]
fn subscribe_from_another_thread_while_recv_blocks() {
    for policy in POLICIES {
        for holds_one_already in [false, true] {
            let got = guarded("the blocked worker never saw the new channel", move || {
                let broker = Broker::new();
                let sub = Arc::new(broker.subscriber_with(policy));
                if holds_one_already {
                    sub.subscribe(["quiet"]);
                }
                let worker = {
                    let sub = Arc::clone(&sub);
                    thread::spawn(move || sub.recv().map(Message::into_payload))
                };
                thread::sleep(LET_IT_PARK);
                // The control thread: this one.
                assert_eq!(sub.subscribe(["jobs"]), 1 + usize::from(holds_one_already));
                assert_eq!(broker.publish("jobs", "j-1"), 1);
                worker.join().unwrap()
            });
            assert_eq!(
                got,
                Ok(Bytes::from("j-1")),
                "{policy:?}, holds one: {holds_one_already}"
            );
        }
    }
}

/// Unsubscribing from another thread while the worker is blocked stops
/// delivery at once; the worker sees what comes on the channels it keeps.
#[test]
fn unsubscribe_from_another_thread_while_recv_blocks() {
    for policy in POLICIES {
        let got = guarded("the blocked worker never woke", move || {
            let broker = Broker::new();
            let sub = Arc::new(broker.subscriber_with(policy));
            sub.subscribe(["dropped", "kept"]);
            let worker = {
                let sub = Arc::clone(&sub);
                thread::spawn(move || sub.recv().map(Message::into_payload))
            };
            thread::sleep(LET_IT_PARK);
            assert_eq!(sub.unsubscribe(["dropped"]), 1);
            assert_eq!(broker.publish("dropped", "lost"), 0);
            assert_eq!(broker.publish("kept", "seen"), 1);
            worker.join().unwrap()
        });
        assert_eq!(got, Ok(Bytes::from("seen")), "{policy:?}");
    }
}

// ---------------------------------------------------------------------------
// Waiting for shutdown
// ---------------------------------------------------------------------------

/// `closed()` stays pending while the broker is open, is woken by
/// `close()`, and then completes; a future made afterwards completes at
/// once.
#[test]
fn closed_completes_on_close() {
    let broker = Broker::new();
    let mut closed = broker.closed();
    let (counter, waker) = counting();
    assert!(poll_with(&mut closed, &waker).is_pending());
    assert!(!closed.is_terminated());
    broker.publish("c", "x");
    assert_eq!(counter.count(), 0, "nothing but the close wakes it");
    broker.close();
    assert_eq!(counter.count(), 1);
    assert!(poll_with(&mut closed, &waker).is_ready());
    assert!(closed.is_terminated());

    let mut late = broker.closed();
    assert!(poll_with(&mut late, &waker).is_ready());
}

/// Dropping the last handle completes `closed()`, which holds no handle
/// itself; so does `Subscriber::closed`.
#[test]
fn closed_completes_when_the_last_handle_drops() {
    let broker = Broker::new();
    let clone = broker.clone();
    let sub = broker.subscriber();
    let mut from_broker = broker.closed();
    let mut from_sub = sub.closed();
    let (counter, waker) = counting();
    assert!(poll_with(&mut from_broker, &waker).is_pending());
    assert!(poll_with(&mut from_sub, &waker).is_pending());
    drop(broker);
    assert_eq!(counter.count(), 0, "a handle is still alive");
    assert!(poll_with(&mut from_broker, &waker).is_pending());
    drop(clone);
    assert_eq!(counter.count(), 2, "both futures woken");
    assert!(poll_with(&mut from_broker, &waker).is_ready());
    assert!(poll_with(&mut from_sub, &waker).is_ready());
    assert_eq!(sub.recv(), Err(RecvError::Closed));
}

/// A future polled again with a different waker wakes the new one only;
/// a dropped future is not woken.
#[test]
fn closed_wakes_the_latest_waker_of_live_futures_only() {
    let broker = Broker::new();
    let mut closed = broker.closed();
    let (stale, stale_waker) = counting();
    let (fresh, fresh_waker) = counting();
    assert!(poll_with(&mut closed, &stale_waker).is_pending());
    assert!(poll_with(&mut closed, &fresh_waker).is_pending());
    let mut dropped = broker.closed();
    let (gone, gone_waker) = counting();
    assert!(poll_with(&mut dropped, &gone_waker).is_pending());
    drop(dropped);
    broker.close();
    assert_eq!((stale.count(), fresh.count(), gone.count()), (0, 1, 0));
}

/// A waker woken by the close may use the broker at once (here: poll a new
/// `closed()` future and publish): the close wakes with no lock held.
#[test]
fn a_waker_woken_by_close_may_use_the_broker() {
    /// On wake, uses the broker it was given.
    struct Reentrant {
        broker: Broker,
        saw: mpsc::Sender<(bool, usize)>,
    }
    impl Wake for Reentrant {
        fn wake(self: Arc<Self>) {
            let mut again = self.broker.closed();
            let ready = poll_with(&mut again, Waker::noop()).is_ready();
            let reached = self.broker.publish("c", "after close");
            let _ = self.saw.send((ready, reached));
        }
    }
    let got = guarded("the close deadlocked with its own waker", || {
        let broker = Broker::new();
        let (saw, seen) = mpsc::channel();
        let waker = Waker::from(Arc::new(Reentrant {
            broker: broker.clone(),
            saw,
        }));
        let mut closed = broker.closed();
        assert!(poll_with(&mut closed, &waker).is_pending());
        broker.close();
        seen.recv().unwrap()
    });
    assert_eq!(got, (true, 0));
}

/// A task awaiting `closed()` on a runtime is woken by a close on another
/// thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_wakes_a_task_on_a_runtime() {
    let broker = Broker::new();
    let closed = broker.closed();
    let task = tokio::spawn(async move {
        closed.await;
        "done"
    });
    thread::spawn(move || {
        thread::sleep(LET_IT_PARK);
        drop(broker);
    });
    let outcome = tokio::time::timeout(HANG_GUARD, task).await;
    assert_eq!(outcome.expect("closed() was never woken").unwrap(), "done");
}

// ---------------------------------------------------------------------------
// Weak handles
// ---------------------------------------------------------------------------

/// A weak handle upgrades while the broker is open, to a working handle;
/// it does not keep the broker open; it no longer upgrades once closed.
#[test]
fn weak_handles_do_not_keep_the_broker_open() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["c"]);
    let weak: WeakBroker = broker.downgrade();
    let weak_clone = weak.clone();

    let strong = weak.upgrade().expect("open");
    assert_eq!(strong.publish("c", "via upgrade"), 1);
    drop(broker);
    assert!(!strong.is_closed(), "the upgraded handle keeps it open");
    assert!(weak.upgrade().is_some());
    drop(strong);

    assert_eq!(sub.recv().unwrap().payload(), "via upgrade");
    assert_eq!(
        sub.recv(),
        Err(RecvError::Closed),
        "closed with weak handles alive"
    );
    assert!(weak.upgrade().is_none());
    assert!(weak_clone.upgrade().is_none());
}

/// An explicitly closed broker does not upgrade, though strong handles
/// remain; nor does one whose every handle and subscriber is gone.
#[test]
fn weak_handles_do_not_upgrade_a_closed_broker() {
    let broker = Broker::new();
    let weak = broker.downgrade();
    broker.close();
    assert!(weak.upgrade().is_none());
    drop(broker);
    assert!(weak.upgrade().is_none());
}

/// Upgrading races safely with the last handle's drop: a handle that an
/// upgrade returned keeps the broker open until it drops (nobody calls
/// `close` here), and once every handle is gone the broker is closed and
/// never upgrades again. Two threads upgrade and drop in a loop while the
/// original handle drops, so the last drop is often one of theirs, racing
/// the other's upgrade.
#[test]
fn upgrade_races_with_the_last_drop() {
    let rounds = if cfg!(miri) { 10 } else { 1_000 };
    guarded("a racing upgrade hung", move || {
        for _ in 0..rounds {
            let broker = Broker::new();
            let sub = broker.subscriber();
            sub.subscribe(["c"]);
            let weak = broker.downgrade();
            let start = Arc::new(Barrier::new(3));
            let racers: Vec<_> = (0..2)
                .map(|_| {
                    let (start, weak) = (Arc::clone(&start), weak.clone());
                    thread::spawn(move || {
                        start.wait();
                        let mut upgrades = 0usize;
                        while let Some(strong) = weak.upgrade() {
                            upgrades += 1;
                            assert_eq!(
                                strong.publish("c", "x"),
                                1,
                                "an upgraded handle found its broker closed"
                            );
                            assert!(
                                !strong.is_closed(),
                                "an upgraded handle found its broker closed"
                            );
                        }
                        upgrades
                    })
                })
                .collect();
            start.wait();
            drop(broker);
            let upgrades: usize = racers.into_iter().map(|r| r.join().unwrap()).sum();
            assert!(weak.upgrade().is_none(), "every handle dropped");
            let received = sub.try_iter().count() as u64;
            assert_eq!(
                received + sub.dropped(),
                upgrades as u64,
                "one message per upgrade"
            );
            assert_eq!(sub.recv(), Err(RecvError::Closed));
        }
    });
}

// ---------------------------------------------------------------------------
// Batch receive
// ---------------------------------------------------------------------------

/// `recv_many` takes what is queued up to `limit`, in `recv`'s order,
/// appending to what the buffer held; for every policy.
#[test]
fn recv_many_takes_what_is_queued_up_to_the_limit() {
    for policy in POLICIES {
        let broker = Broker::builder().queue_capacity(16).build();
        let sub = broker.subscriber_with(policy);
        sub.subscribe(["a", "b"]);
        sub.psubscribe(["*"]);
        for i in 0..3 {
            broker.publish(if i % 2 == 0 { "a" } else { "b" }, i.to_string());
        }
        // Each publish: an exact message, then a pattern one.
        let mut buf = Vec::new();
        buf.push(sub.recv().unwrap());
        assert_eq!(sub.recv_many(&mut buf, 4).unwrap(), 4, "{policy:?}");
        assert_eq!(sub.recv_many(&mut buf, 4).unwrap(), 1, "{policy:?}");
        let seqs: Vec<u64> = buf.iter().map(Message::seq).collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4, 5], "{policy:?}");
        let payloads: Vec<&Bytes> = buf.iter().map(Message::payload).collect();
        assert_eq!(payloads, ["0", "0", "1", "1", "2", "2"], "{policy:?}");
        let kinds: Vec<MessageKind> = buf.iter().map(Message::kind).collect();
        assert_eq!(kinds[..2], [MessageKind::Message, MessageKind::PMessage]);
        assert!(sub.is_empty());
    }
}

/// `recv_many` with limit 0 returns 0 at once, even with nothing queued and
/// even when closed; it blocks for the first message otherwise.
#[test]
fn recv_many_blocks_for_the_first_message_only() {
    for policy in POLICIES {
        let got = guarded("recv_many never woke for the first message", move || {
            let broker = Broker::new();
            let sub = Arc::new(broker.subscriber_with(policy));
            sub.subscribe(["c"]);
            let mut buf = Vec::new();
            assert_eq!(sub.recv_many(&mut buf, 0), Ok(0));
            let worker = {
                let sub = Arc::clone(&sub);
                thread::spawn(move || {
                    let mut buf = Vec::new();
                    let n = sub.recv_many(&mut buf, 8);
                    (
                        n,
                        buf.into_iter()
                            .map(Message::into_payload)
                            .collect::<Vec<_>>(),
                    )
                })
            };
            thread::sleep(LET_IT_PARK);
            broker.publish("c", "first");
            let got = worker.join().unwrap();
            broker.close();
            assert_eq!(sub.recv_many(&mut buf, 0), Ok(0));
            got
        });
        assert_eq!(got.0, Ok(got.1.len()), "{policy:?}");
        assert_eq!(got.1.first(), Some(&Bytes::from("first")), "{policy:?}");
    }
}

/// After a close, `recv_many` drains what was queued, then reports
/// `Closed`; a disconnected subscriber drains, then reports
/// `Disconnected`.
#[test]
fn recv_many_drains_then_reports_the_end() {
    for policy in POLICIES {
        let broker = Broker::builder().queue_capacity(4).build();
        let sub = broker.subscriber_with(policy);
        sub.subscribe(["c"]);
        for i in 0..3 {
            broker.publish("c", i.to_string());
        }
        broker.close();
        let mut buf = Vec::new();
        assert_eq!(sub.recv_many(&mut buf, 10), Ok(3), "{policy:?}");
        assert_eq!(sub.recv_many(&mut buf, 10), Err(RecvError::Closed));
        assert_eq!(sub.try_recv_many(&mut buf, 10), Err(TryRecvError::Closed));
        assert_eq!(buf.len(), 3);
    }

    let broker = Broker::builder().queue_capacity(2).build();
    let sub = broker.subscriber_with(OverflowPolicy::Disconnect);
    sub.subscribe(["c"]);
    for i in 0..3 {
        broker.publish("c", i.to_string());
    }
    let mut buf = Vec::new();
    assert_eq!(sub.recv_many(&mut buf, 10), Ok(2));
    assert_eq!(sub.recv_many(&mut buf, 10), Err(RecvError::Disconnected));
    assert_eq!(
        sub.try_recv_many(&mut buf, 10),
        Err(TryRecvError::Disconnected)
    );
}

/// `try_recv_many` never waits: `Empty` when nothing is queued, else what
/// is queued up to the limit.
#[test]
fn try_recv_many_takes_what_is_queued_without_waiting() {
    for policy in POLICIES {
        let broker = Broker::new();
        let sub = broker.subscriber_with(policy);
        sub.subscribe(["c"]);
        let mut buf = Vec::new();
        assert_eq!(sub.try_recv_many(&mut buf, 5), Err(TryRecvError::Empty));
        assert_eq!(sub.try_recv_many(&mut buf, 0), Ok(0));
        for i in 0..7 {
            broker.publish("c", i.to_string());
        }
        assert_eq!(sub.try_recv_many(&mut buf, 5), Ok(5), "{policy:?}");
        assert_eq!(sub.try_recv_many(&mut buf, 5), Ok(2), "{policy:?}");
        assert_eq!(sub.try_recv_many(&mut buf, 5), Err(TryRecvError::Empty));
        let seqs: Vec<u64> = buf.iter().map(Message::seq).collect();
        assert_eq!(seqs, (0..7).collect::<Vec<_>>());
    }
}

/// `recv_many_async` waits for the first message, is woken by a publish,
/// takes what is queued up to the limit; dropped while pending, it loses
/// nothing.
#[test]
fn recv_many_async_is_woken_and_cancellation_safe() {
    for policy in POLICIES {
        let broker = Broker::new();
        let mut sub = broker.subscriber_with(policy);
        sub.subscribe(["c"]);
        let mut buf = Vec::new();
        let (counter, waker) = counting();
        {
            let mut fut = sub.recv_many_async(&mut buf, 2);
            assert!(poll_with(&mut fut, &waker).is_pending());
        } // cancelled
        broker.publish("c", "0");
        {
            let mut fut = sub.recv_many_async(&mut buf, 2);
            assert_eq!(poll_with(&mut fut, &waker), Poll::Ready(Ok(1)));
        }
        {
            let mut fut = sub.recv_many_async(&mut buf, 2);
            assert!(poll_with(&mut fut, &waker).is_pending());
            let before = counter.count();
            broker.publish("c", "1");
            broker.publish("c", "2");
            broker.publish("c", "3");
            assert!(
                counter.count() > before,
                "{policy:?}: the publish woke the future"
            );
            assert_eq!(poll_with(&mut fut, &waker), Poll::Ready(Ok(2)));
        }
        let payloads: Vec<&Bytes> = buf.iter().map(Message::payload).collect();
        assert_eq!(payloads, ["0", "1", "2"], "{policy:?}");
        assert_eq!(sub.try_recv().unwrap().payload(), "3");
        let mut fut = sub.recv_many_async(&mut buf, 0);
        assert_eq!(poll_with(&mut fut, &waker), Poll::Ready(Ok(0)));
    }
}

/// `recv_many_async` on a runtime: a publisher task's messages all arrive,
/// in batches, then the close ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_many_async_receives_everything_then_the_close() {
    let broker = Broker::builder().queue_capacity(1000).build();
    let mut sub = broker.subscriber();
    sub.subscribe(["c"]);
    let publisher = broker.clone();
    tokio::spawn(async move {
        for i in 0..500 {
            publisher.publish("c", i.to_string());
            if i % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        publisher.close();
    });
    drop(broker);
    let mut buf = Vec::new();
    let end = tokio::time::timeout(HANG_GUARD, async {
        loop {
            if let Err(end) = sub.recv_many_async(&mut buf, 64).await {
                break end;
            }
        }
    })
    .await
    .expect("recv_many_async hung");
    assert_eq!(end, RecvError::Closed);
    let got: Vec<u64> = buf.iter().map(Message::seq).collect();
    assert_eq!(got, (0..500).collect::<Vec<_>>());
    assert!(sub.is_terminated());
}

// ---------------------------------------------------------------------------
// Fused iterators and streams
// ---------------------------------------------------------------------------

/// Compile-time: the types promise what they implement.
#[test]
fn iter_is_fused_and_the_streams_are_fused() {
    fn fused_iter<I: FusedIterator>(_: &I) {}
    fn fused_stream<S: FusedStream>(_: &S) {}
    fn fused_future<F: FusedFuture>(_: &F) {}
    let broker = Broker::new();
    let sub = broker.subscriber();
    fused_iter(&sub.iter());
    fused_stream(&sub);
    fused_stream(&broker.watch_interest());
    fused_future(&broker.closed());
}

/// The end is sticky: after `Closed`, no subscribe or publish makes a
/// message arrive, so `recv` keeps failing and `iter` stays ended.
#[test]
fn the_end_after_close_is_sticky() {
    for policy in POLICIES {
        let broker = Broker::new();
        let other = broker.clone();
        let sub = broker.subscriber_with(policy);
        sub.subscribe(["c"]);
        broker.publish("c", "queued");
        broker.close();
        let mut iter = sub.iter();
        assert_eq!(
            iter.next().map(Message::into_payload),
            Some("queued".into())
        );
        assert!(iter.next().is_none());
        sub.subscribe(["d"]);
        sub.psubscribe(["*"]);
        assert_eq!(other.publish("c", "late"), 0);
        assert_eq!(other.publish("d", "late"), 0);
        assert!(iter.next().is_none(), "{policy:?}");
        assert_eq!(sub.recv(), Err(RecvError::Closed), "{policy:?}");
        assert_eq!(sub.try_recv(), Err(TryRecvError::Closed), "{policy:?}");
    }
}

/// The end is sticky after a disconnect too: re-subscribing is ignored and
/// nothing more arrives.
#[test]
fn the_end_after_disconnect_is_sticky() {
    let broker = Broker::builder().queue_capacity(1).build();
    let sub = broker.subscriber_with(OverflowPolicy::Disconnect);
    sub.subscribe(["c"]);
    broker.publish("c", "kept");
    broker.publish("c", "overflows");
    let mut iter = sub.iter();
    assert_eq!(iter.next().map(Message::into_payload), Some("kept".into()));
    assert!(iter.next().is_none());
    assert_eq!(
        sub.subscribe(["c"]),
        0,
        "a disconnected subscriber holds nothing"
    );
    assert_eq!(broker.publish("c", "late"), 0);
    assert!(iter.next().is_none());
    assert_eq!(sub.recv(), Err(RecvError::Disconnected));
}

/// The subscriber's stream reports itself terminated once it has ended,
/// and then stays ended without looking again.
#[test]
fn subscriber_stream_terminates_for_good() {
    for policy in POLICIES {
        let broker = Broker::new();
        let mut sub = broker.subscriber_with(policy);
        sub.subscribe(["c"]);
        broker.publish("c", "x");
        broker.close();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(!sub.is_terminated());
        let first = Pin::new(&mut sub).poll_next(&mut cx);
        assert!(matches!(first, Poll::Ready(Some(_))));
        assert!(!sub.is_terminated(), "{policy:?}: a message is not the end");
        assert!(matches!(
            Pin::new(&mut sub).poll_next(&mut cx),
            Poll::Ready(None)
        ));
        assert!(sub.is_terminated(), "{policy:?}");
        assert!(matches!(
            Pin::new(&mut sub).poll_next(&mut cx),
            Poll::Ready(None)
        ));
    }
}

/// `recv_async` seeing the end also marks the stream terminated.
#[test]
fn recv_async_end_terminates_the_stream() {
    let broker = Broker::new();
    let mut sub = broker.subscriber();
    broker.close();
    let mut recv = pin!(sub.recv_async());
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(
        recv.as_mut().poll(&mut cx),
        Poll::Ready(Err(RecvError::Closed))
    );
    assert!(sub.is_terminated());
}

/// The interest watch's stream ends after the close and stays ended, while
/// `try_next` still reports what changes after it.
#[test]
fn interest_stream_terminates_for_good() {
    let broker = Broker::new();
    let mut watch = broker.watch_interest();
    let sub = broker.subscriber();
    sub.subscribe(["before"]);
    broker.close();
    let mut cx = Context::from_waker(Waker::noop());
    let first = Pin::new(&mut watch).poll_next(&mut cx);
    assert!(matches!(first, Poll::Ready(Some(ref c)) if c.name() == "before"));
    assert!(!watch.is_terminated());
    assert!(matches!(
        Pin::new(&mut watch).poll_next(&mut cx),
        Poll::Ready(None)
    ));
    assert!(watch.is_terminated());
    sub.subscribe(["after"]);
    assert!(matches!(
        Pin::new(&mut watch).poll_next(&mut cx),
        Poll::Ready(None)
    ));
    assert_eq!(
        watch.try_next().map(|c| c.name().clone()),
        Some("after".into())
    );
}

// ---------------------------------------------------------------------------
// MessageKind is non-exhaustive
// ---------------------------------------------------------------------------

/// Code outside the crate must keep a wildcard arm when matching on
/// `MessageKind`, so a kind added later is not a breaking change. Without
/// `#[non_exhaustive]`, the wildcard arm here is unreachable and this test
/// does not compile.
#[test]
#[deny(unreachable_patterns)]
fn message_kind_is_non_exhaustive() {
    let name = |kind: MessageKind| match kind {
        MessageKind::Message => "exact",
        MessageKind::PMessage => "pattern",
        MessageKind::SMessage => "shard",
        _ => "a later kind",
    };
    assert_eq!(name(MessageKind::PMessage), "pattern");
}

// ---------------------------------------------------------------------------
// What a subscriber holds, named apart from what the broker lists
// ---------------------------------------------------------------------------

/// `subscribed_*` list what this subscriber holds; `Broker::channels` and
/// `shard_channels` list what anybody holds.
#[test]
fn subscribed_names_are_this_subscribers_own() {
    let broker = Broker::new();
    let (a, b) = (broker.subscriber(), broker.subscriber());
    a.subscribe(["a1", "both"]);
    b.subscribe(["b1", "both"]);
    a.psubscribe(["a*"]);
    b.psubscribe(["b*"]);
    a.ssubscribe(["as"]);
    b.ssubscribe(["bs"]);
    assert_eq!(set(a.subscribed_channels()), set(["a1", "both"]));
    assert_eq!(set(b.subscribed_channels()), set(["b1", "both"]));
    assert_eq!(set(a.subscribed_patterns()), set(["a*"]));
    assert_eq!(set(a.subscribed_shard_channels()), set(["as"]));
    assert_eq!(set(broker.channels(None)), set(["a1", "b1", "both"]));
    assert_eq!(set(broker.shard_channels(None)), set(["as", "bs"]));
    a.unsubscribe(["both"]);
    assert_eq!(set(a.subscribed_channels()), set(["a1"]));
    assert_eq!(set(broker.channels(None)), set(["a1", "b1", "both"]));
}

/// The names from before the rename (`channels`, `patterns`,
/// `shard_channels`) still list what `subscribed_*` list: code written
/// against them keeps working until it moves.
#[test]
#[allow(deprecated, reason = "the old names are what this test covers")]
fn the_old_names_list_the_same_sets() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["a1", "both"]);
    sub.psubscribe(["a*"]);
    sub.ssubscribe(["as", "{x}s"]);
    assert_eq!(set(sub.channels()), set(["a1", "both"]));
    assert_eq!(set(sub.patterns()), set(["a*"]));
    assert_eq!(set(sub.shard_channels()), set(["as", "{x}s"]));
    assert_eq!(sub.channels(), sub.subscribed_channels());
    assert_eq!(sub.patterns(), sub.subscribed_patterns());
    assert_eq!(sub.shard_channels(), sub.subscribed_shard_channels());
}

/// A subscriber is shared between threads by reference: subscribing,
/// receiving and listing run concurrently. (Compile-time: `Sync`.)
#[test]
fn subscriber_and_weak_handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Subscriber>();
    send_sync::<WeakBroker>();
    send_sync::<tannoy::Closed>();
    fn unpin<T: Unpin>() {}
    unpin::<tannoy::Closed>();
}

/// A broker's `Debug` shows what it is made of and holds now: its shards,
/// its live subscribers and interest watches, and whether it is closed.
#[test]
fn a_brokers_debug_shows_its_shards_subscribers_and_watches() {
    let broker: Broker = Broker::builder().shards(4).queue_capacity(8).build();
    let shown = format!("{broker:?}");
    assert_shows(
        &shown,
        &[
            "shards: 4",
            "queue_capacity: 8",
            "subscribers: 0",
            "interest_watches: 0",
            "closed: false",
        ],
    );
    let (a, b) = (broker.subscriber(), broker.subscriber());
    let watch = broker.watch_interest();
    let shown = format!("{broker:?}");
    assert_shows(&shown, &["subscribers: 2", "interest_watches: 1"]);
    drop((a, b, watch));
    let shown = format!("{broker:?}");
    assert_shows(&shown, &["subscribers: 0", "interest_watches: 0"]);
}

/// The receive futures show what they are in `Debug`, and `recv_many_async`
/// its limit.
#[test]
fn receive_futures_say_what_they_are_in_debug() {
    let broker: Broker = Broker::new();
    let mut sub = broker.subscriber();
    assert!(format!("{:?}", sub.recv_async()).starts_with("Recv"));
    let mut buf = Vec::new();
    let shown = format!("{:?}", sub.recv_many_async(&mut buf, 7));
    assert!(
        shown.starts_with("RecvMany") && shown.contains("limit: 7"),
        "{shown}"
    );
}

/// A subscriber's `Debug` shows its state now: subscriptions in each
/// namespace, what is queued, its capacity, what it dropped and whether it
/// was disconnected; for every kind of inbox.
#[test]
fn a_subscribers_debug_shows_its_state() {
    for policy in POLICIES {
        let broker: Broker = Broker::builder().queue_capacity(2).build();
        let sub = broker.subscriber_with(policy);
        sub.subscribe(["a", "b"]);
        sub.psubscribe(["a*"]);
        sub.ssubscribe(["s"]);
        broker.publish("b", "1");
        let shown = format!("{sub:?}");
        assert!(shown.starts_with("Subscriber"), "{shown}");
        for field in [
            "subscriptions: 3",
            "shard_subscriptions: 1",
            "queued: 1",
            "capacity: 2",
            "dropped: 0",
            "disconnected: false",
        ] {
            assert!(
                shown.contains(field),
                "{policy:?}: {field} missing from {shown}"
            );
        }
        broker.publish("b", "2");
        broker.publish("b", "3");
        let shown = format!("{sub:?}");
        let expected: &[&str] = match policy {
            OverflowPolicy::Disconnect => &["queued: 2", "dropped: 1", "disconnected: true"],
            _ => &["queued: 2", "dropped: 1", "disconnected: false"],
        };
        for field in expected {
            assert!(
                shown.contains(field),
                "{policy:?}: {field} missing from {shown}"
            );
        }
    }
}

/// The blocking iterators show what they are in `Debug`.
#[test]
fn receive_iterators_say_what_they_are_in_debug() {
    let broker: Broker = Broker::new();
    let sub = broker.subscriber();
    assert!(format!("{:?}", sub.iter()).starts_with("Iter"));
    assert!(format!("{:?}", sub.try_iter()).starts_with("TryIter"));
}

/// The remaining `IntoPayload` conversions carry their content: an owned
/// `Box<str>`, a `BytesMut`, owned and borrowed `Cow`s into `Bytes`; arrays
/// by value and `&Vec<u8>` into `Vec<u8>`.
#[test]
fn every_payload_conversion_keeps_the_content() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["c"]);
    broker.publish("c", Box::<str>::from("boxed"));
    broker.publish("c", bytes::BytesMut::from(&b"mutable"[..]));
    broker.publish("c", Cow::<[u8]>::Owned(b"owned cow".to_vec()));
    broker.publish("c", Cow::Borrowed("borrowed str"));
    broker.publish("c", Cow::<str>::Owned(String::from("owned str")));
    let got: Vec<Bytes> = sub.try_iter().map(Message::into_payload).collect();
    assert_eq!(
        got,
        [
            &b"boxed"[..],
            b"mutable",
            b"owned cow",
            b"borrowed str",
            b"owned str"
        ]
    );

    let vecs = BrokerBuilder::<Vec<u8>>::new().build();
    let sub = vecs.subscriber();
    sub.subscribe(["c"]);
    vecs.publish("c", *b"xy");
    let owned = vec![b'z', b'w'];
    vecs.publish("c", &owned);
    let got: Vec<Vec<u8>> = sub.try_iter().map(Message::into_payload).collect();
    assert_eq!(got, [&b"xy"[..], b"zw"]);
}

/// Each receive error says in words what stopped the receive; the
/// `Closed` and `Disconnected` variants read the same in every error type.
#[test]
fn receive_errors_say_what_stopped_the_receive() {
    let closed = "receiving on a closed broker";
    let disconnected = "subscriber disconnected after its queue overflowed";
    assert_eq!(RecvError::Closed.to_string(), closed);
    assert_eq!(RecvError::Disconnected.to_string(), disconnected);
    assert_eq!(
        TryRecvError::Empty.to_string(),
        "receiving on an empty queue"
    );
    assert_eq!(TryRecvError::Closed.to_string(), closed);
    assert_eq!(TryRecvError::Disconnected.to_string(), disconnected);
    assert_eq!(
        tannoy::RecvTimeoutError::Timeout.to_string(),
        "timed out waiting on an empty queue"
    );
    assert_eq!(tannoy::RecvTimeoutError::Closed.to_string(), closed);
    assert_eq!(
        tannoy::RecvTimeoutError::Disconnected.to_string(),
        disconnected
    );
}

/// A message kind displays as the word Redis puts first in its push
/// reply, and a message's `Debug` shows its kind, sequence number,
/// channel, pattern (for a pattern match only) and payload.
#[test]
fn messages_and_their_kinds_show_what_they_are() {
    assert_eq!(MessageKind::Message.to_string(), "message");
    assert_eq!(MessageKind::PMessage.to_string(), "pmessage");
    assert_eq!(MessageKind::SMessage.to_string(), "smessage");

    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["news"]);
    sub.psubscribe(["n*"]);
    broker.publish("news", "hi");
    let exact = format!("{:?}", sub.try_recv().unwrap());
    let matched = format!("{:?}", sub.try_recv().unwrap());
    for (shown, fields) in [
        (
            &exact,
            &[
                "Message",
                "kind: Message",
                "seq: 0",
                "channel: b\"news\"",
                "payload: b\"hi\"",
            ][..],
        ),
        (
            &matched,
            &[
                "kind: PMessage",
                "seq: 1",
                "pattern: b\"n*\"",
                "payload: b\"hi\"",
            ][..],
        ),
    ] {
        assert_shows(shown, fields);
    }
    assert!(!exact.contains("pattern"), "{exact}");
}

/// The builders, a weak handle and a `Closed` future each name themselves
/// in `Debug`, and the builders show the settings they will build with.
#[test]
fn builders_and_handles_say_what_they_are_in_debug() {
    let builder = Broker::builder()
        .queue_capacity(8)
        .shards(4)
        .overflow_policy(OverflowPolicy::DropNewest);
    let shown = format!("{builder:?}");
    assert_shows(
        &shown,
        &[
            "BrokerBuilder",
            "queue_capacity: 8",
            "shards: 4",
            "overflow_policy: DropNewest",
        ],
    );
    let broker = builder.build();
    let shown = format!(
        "{:?}",
        broker
            .subscriber_builder()
            .queue_capacity(3)
            .overflow_policy(OverflowPolicy::Disconnect)
    );
    assert_shows(
        &shown,
        &[
            "SubscriberBuilder",
            "queue_capacity: 3",
            "overflow_policy: Disconnect",
        ],
    );
    assert!(format!("{:?}", broker.downgrade()).starts_with("WeakBroker"));
    let closed = broker.closed();
    let shown = format!("{closed:?}");
    assert!(
        shown.starts_with("Closed") && shown.contains("done: false"),
        "{shown}"
    );
}
