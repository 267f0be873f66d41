//! Shutdown: `close()` and dropping the last `Broker` handle stop the
//! broker; receivers drain what is queued and then see `Closed`, blocked
//! ones are woken, and worker loops end.

#[path = "support/watchdog.rs"]
mod watchdog;

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use futures_core::Stream;
use tannoy::{Broker, OverflowPolicy, RecvError, RecvTimeoutError, TryRecvError};

/// How long a hang guard waits before declaring that a receiver was never
/// woken. Generous: it only turns a hang into a failure.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// A pause that makes it likely (not certain) that a receiver thread has
/// parked before the test closes the broker. Correctness never depends on
/// it: either order must end the same way.
const LET_IT_PARK: Duration = Duration::from_millis(20);

/// Runs `f` on its own thread and returns its result, failing (instead of
/// hanging) if it does not finish within [`HANG_GUARD`]. A panic in `f`
/// is re-raised here.
fn guarded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    watchdog::guarded(HANG_GUARD, "a receiver was never woken (hang)", f)
}

/// `close()` wakes a `recv` blocked in another thread; it returns what was
/// queued first, then `Err(Closed)`.
#[test]
fn close_wakes_a_blocked_recv_after_draining() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["c"]);
    let (ready, is_ready) = mpsc::channel();
    let (finished, outcome) = mpsc::channel();
    let receiver = thread::spawn(move || {
        let first = sub.recv().unwrap();
        ready.send(()).unwrap();
        let mut rest = Vec::new();
        let end = loop {
            match sub.recv() {
                Ok(msg) => rest.push(msg.into_payload()),
                Err(err) => break err,
            }
        };
        finished.send(()).unwrap();
        (first.into_payload(), rest, end)
    });

    broker.publish("c", "first");
    is_ready.recv_timeout(HANG_GUARD).unwrap();
    thread::sleep(LET_IT_PARK);
    broker.publish("c", "queued-1");
    broker.publish("c", "queued-2");
    broker.close();
    outcome
        .recv_timeout(HANG_GUARD)
        .expect("close did not wake the blocked recv");
    let (first, rest, end) = receiver.join().unwrap();
    assert_eq!(first, "first");
    assert_eq!(rest, ["queued-1", "queued-2"]);
    assert_eq!(end, RecvError::Closed);
}

/// `close()` with nothing queued wakes a parked `recv` with `Closed`.
#[test]
fn close_wakes_a_parked_recv_on_an_empty_queue() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["c"]);
    let closer = broker.clone();
    let end = guarded(move || {
        let waker = thread::spawn(move || {
            thread::sleep(LET_IT_PARK);
            closer.close();
        });
        let end = sub.recv();
        waker.join().unwrap();
        end
    });
    assert_eq!(end.unwrap_err(), RecvError::Closed);
}

/// Dropping the last `Broker` handle closes it: a blocked `recv` drains
/// and then returns `Closed`.
#[test]
fn dropping_the_last_broker_handle_wakes_a_blocked_recv() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["c"]);
    broker.publish("c", "kept");
    let got = guarded(move || {
        let dropper = thread::spawn(move || {
            thread::sleep(LET_IT_PARK);
            drop(broker);
        });
        let got: Vec<_> = std::iter::from_fn(|| Some(sub.recv())).take(3).collect();
        dropper.join().unwrap();
        got
    });
    assert_eq!(got[0].as_ref().unwrap().payload(), "kept");
    assert_eq!(got[1], Err(RecvError::Closed));
    assert_eq!(got[2], Err(RecvError::Closed), "Closed is final");
}

/// `close()` wakes every blocked receiver at once, whichever receive call
/// each is blocked in.
#[test]
fn close_wakes_every_blocked_receiver() {
    let broker = Broker::new();
    let (outcomes, results) = mpsc::channel();
    let mut workers = Vec::new();
    for i in 0..4 {
        let sub = broker.subscriber();
        sub.subscribe(["c"]);
        let outcomes = outcomes.clone();
        workers.push(thread::spawn(move || {
            let end = match i {
                0 => sub.recv().map(drop).map_err(RecvTimeoutError::from),
                1 => sub.recv_timeout(Duration::MAX).map(drop),
                2 => sub
                    .recv_deadline(Instant::now() + Duration::from_secs(3600))
                    .map(drop),
                _ => {
                    sub.iter().for_each(drop);
                    Ok(())
                }
            };
            outcomes.send((i, end)).unwrap();
        }));
    }
    drop(outcomes);
    thread::sleep(LET_IT_PARK);
    broker.close();
    let mut ends = Vec::new();
    for _ in 0..4 {
        ends.push(
            results
                .recv_timeout(HANG_GUARD)
                .expect("a blocked receiver was not woken by close"),
        );
    }
    ends.sort_by_key(|(i, _)| *i);
    assert_eq!(
        ends,
        [
            (0, Err(RecvTimeoutError::Closed)),
            (1, Err(RecvTimeoutError::Closed)),
            (2, Err(RecvTimeoutError::Closed)),
            (3, Ok(())),
        ]
    );
    for worker in workers {
        worker.join().unwrap();
    }
}

/// After `close()`, queued messages are still delivered in order by every
/// receive call, then each reports `Closed` (never `Empty` or `Timeout`).
#[test]
fn receives_after_close_drain_then_report_closed() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["c"]);
    sub.psubscribe(["c*"]);
    sub.ssubscribe(["s"]);
    broker.publish("c", "1");
    broker.spublish("s", "2");
    broker.close();
    assert!(broker.is_closed());

    assert_eq!(sub.len(), 3);
    assert_eq!(sub.try_recv().unwrap().payload(), "1");
    assert_eq!(
        sub.recv_timeout(Duration::from_secs(3600))
            .unwrap()
            .payload(),
        "1"
    );
    assert_eq!(sub.recv().unwrap().payload(), "2");
    assert_eq!(sub.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(sub.recv(), Err(RecvError::Closed));
    assert_eq!(
        sub.recv_timeout(Duration::from_secs(3600)),
        Err(RecvTimeoutError::Closed)
    );
    assert_eq!(
        sub.recv_deadline(Instant::now() + Duration::from_secs(3600)),
        Err(RecvTimeoutError::Closed)
    );
    // A timeout too long for a deadline means "forever", never a panic.
    assert_eq!(
        sub.recv_timeout(Duration::MAX),
        Err(RecvTimeoutError::Closed)
    );
    assert_eq!(sub.try_iter().count(), 0);
    assert_eq!(sub.iter().count(), 0);
}

/// Before `close()`, a timed receive that finds nothing reports `Timeout`,
/// not `Closed`: a worker loop tells "nothing yet, keep going" from "the
/// broker is gone, stop" by it. For every policy, and for a subscriber of
/// one channel, of several, and of many (each receives along its own
/// path); the deadlines are short because they do pass. A receive that
/// never returns fails the test instead of hanging it.
#[test]
fn a_timed_receive_on_an_open_broker_reports_timeout() {
    watchdog::guarded(HANG_GUARD, "a timed receive never returned", || {
        let many: Vec<String> = (0..40).map(|i| format!("c{i}")).collect();
        for policy in [
            OverflowPolicy::DropOldest,
            OverflowPolicy::DropNewest,
            OverflowPolicy::Disconnect,
        ] {
            for channels in [&many[..1], &many[..3], &many[..]] {
                let broker = Broker::new();
                let sub = broker.subscriber_with(policy);
                sub.subscribe(channels);
                let what = format!("{policy:?}, {} channels", channels.len());
                assert_eq!(
                    sub.recv_timeout(Duration::from_millis(1)),
                    Err(RecvTimeoutError::Timeout),
                    "{what}"
                );
                assert_eq!(
                    sub.recv_deadline(Instant::now() + Duration::from_millis(1)),
                    Err(RecvTimeoutError::Timeout),
                    "{what}"
                );
                // And a message published meanwhile is still there after it.
                broker.publish(&channels[0], "late");
                assert_eq!(
                    sub.recv_timeout(Duration::from_millis(1))
                        .map(|msg| msg.into_payload()),
                    Ok("late".into()),
                    "{what}"
                );
            }
        }
    });
}

/// After `close()`, `publish` and `spublish` return 0 and queue nothing,
/// for exact, pattern and shard subscribers alike; `close` is idempotent.
#[test]
fn publish_after_close_returns_zero_and_delivers_nothing() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["c"]);
    sub.psubscribe(["*"]);
    sub.ssubscribe(["c"]);
    broker.close();
    broker.close();
    assert!(broker.is_closed());
    assert_eq!(broker.publish("c", "x"), 0);
    assert_eq!(broker.spublish("c", "x"), 0);
    assert!(sub.is_empty());
    assert_eq!(sub.dropped(), 0, "refused after close is not a drop");
    assert_eq!(sub.try_recv(), Err(TryRecvError::Closed));
}

/// A `for msg in sub.iter()` worker loop sees every message in order and
/// ends by itself once the broker is closed.
#[test]
fn iter_worker_loop_ends_cleanly_on_close() {
    let broker = Broker::builder().queue_capacity(4096).build();
    let sub = broker.subscriber();
    sub.subscribe(["work"]);
    let worker = thread::spawn(move || {
        let mut seen = Vec::new();
        for msg in sub.iter() {
            seen.push((msg.seq(), msg.into_payload()));
        }
        seen
    });
    for i in 0..1000u64 {
        assert_eq!(broker.publish("work", i.to_string()), 1);
    }
    broker.close();
    let seen = guarded(move || worker.join().unwrap());
    assert_eq!(seen.len(), 1000);
    for (i, (seq, payload)) in seen.iter().enumerate() {
        assert_eq!(*seq, i as u64);
        assert_eq!(payload, i.to_string().as_str());
    }
}

/// `for msg in &sub` also ends when the last broker handle is dropped.
#[test]
fn for_loop_over_subscriber_ends_when_broker_is_dropped() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["work"]);
    let worker = thread::spawn(move || {
        let mut n = 0;
        for _msg in &sub {
            n += 1;
        }
        n
    });
    for _ in 0..10 {
        broker.publish("work", "job");
    }
    drop(broker);
    assert_eq!(guarded(move || worker.join().unwrap()), 10);
}

/// A subscriber created after `close()` is closed from the start: nothing
/// reaches it and every receive reports `Closed` at once.
#[test]
fn subscriber_created_after_close_is_closed() {
    let broker = Broker::new();
    broker.close();
    let sub = broker.subscriber();
    let _ = sub.subscribe(["c"]);
    assert_eq!(broker.publish("c", "x"), 0);
    assert_eq!(sub.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(sub.recv(), Err(RecvError::Closed));
    assert_eq!(
        sub.recv_timeout(Duration::from_secs(3600)),
        Err(RecvTimeoutError::Closed)
    );
    let strict = broker.subscriber_with(OverflowPolicy::Disconnect);
    assert_eq!(strict.recv(), Err(RecvError::Closed));
}

/// Clones share one broker and keep it open until the last is dropped;
/// `close()` on any clone closes it for all.
#[test]
fn clones_keep_the_broker_open_until_the_last_is_dropped() {
    let broker = Broker::new();
    let second = broker.clone();
    let third = second.clone();
    let sub = broker.subscriber();
    sub.subscribe(["c"]);

    drop(broker);
    assert!(!third.is_closed());
    assert_eq!(second.publish("c", "via second"), 1);
    drop(second);
    assert!(!third.is_closed());
    assert_eq!(third.publish("c", "via third"), 1);
    let fourth = third.clone();
    drop(third);
    assert_eq!(fourth.publish("c", "via fourth"), 1);

    let closer = fourth.clone();
    closer.close();
    assert!(fourth.is_closed());
    assert_eq!(fourth.publish("c", "x"), 0);
    drop((closer, fourth));
    let got: Vec<_> = sub.iter().map(|m| m.into_payload()).collect();
    assert_eq!(got, ["via second", "via third", "via fourth"]);
}

/// A subscriber does not keep the broker open: with every `Broker` handle
/// gone, its `recv` reports `Closed`, and it stays safe to use and drop.
#[test]
fn a_subscriber_alone_does_not_keep_the_broker_open() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["c"]);
    let other = broker.subscriber();
    drop(broker);
    assert_eq!(sub.recv(), Err(RecvError::Closed));
    assert_eq!(other.try_recv(), Err(TryRecvError::Closed));
    // Still usable as a value: bookkeeping calls do not panic.
    let _ = sub.psubscribe(["p*"]);
    let _ = sub.unsubscribe(["c"]);
    let _ = sub.punsubscribe(["p*"]);
    assert!(sub.subscribed_channels().is_empty());
    drop(sub);
    drop(other);
}

/// Closing does not turn a disconnected subscriber into a closed one: the
/// first final state sticks.
#[test]
fn a_disconnected_subscriber_stays_disconnected_after_close() {
    let broker = Broker::builder().queue_capacity(1).build();
    let sub = broker.subscriber_with(OverflowPolicy::Disconnect);
    sub.subscribe(["c"]);
    broker.publish("c", "1");
    broker.publish("c", "2");
    broker.close();
    assert_eq!(sub.recv().unwrap().payload(), "1");
    assert_eq!(sub.recv(), Err(RecvError::Disconnected));
}

/// Every publish that counted a subscriber before `close()` is received by
/// it (or counted as dropped) afterwards: close loses nothing it accepted.
#[test]
fn close_racing_publishes_loses_no_counted_message() {
    for round in 0..20 {
        let broker = Broker::builder().queue_capacity(64).build();
        let sub = broker.subscriber();
        sub.subscribe(["c"]);
        sub.psubscribe(["c*"]);
        let publisher = broker.clone();
        let counted = thread::spawn(move || {
            let mut counted = 0;
            loop {
                let n = publisher.publish("c", "x");
                if n == 0 {
                    return counted;
                }
                counted += n as u64;
            }
        });
        let mut received = 0u64;
        for _ in 0..round * 5 {
            if sub.recv().is_ok() {
                received += 1;
            }
        }
        broker.close();
        let counted = guarded(move || counted.join().unwrap());
        received += sub.iter().count() as u64;
        assert_eq!(sub.recv(), Err(RecvError::Closed));
        assert_eq!(received + sub.dropped(), counted, "round {round}");
    }
}

/// The async receivers end too: `recv_async` resolves to `Err(Closed)` once
/// the queue is drained, and the `Stream` ends with `None`.
#[test]
fn async_receivers_end_on_close() {
    let broker = Broker::new();
    let mut sub = broker.subscriber();
    sub.subscribe(["c"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let closer = broker.clone();
    let (first, end, mut sub) = runtime.block_on(async move {
        let task = tokio::spawn(async move {
            let first = sub.recv_async().await;
            let end = sub.recv_async().await;
            (first, end, sub)
        });
        tokio::task::yield_now().await;
        closer.publish("c", "async");
        tokio::task::yield_now().await;
        closer.close();
        task.await.unwrap()
    });
    assert_eq!(first.unwrap().payload(), "async");
    assert_eq!(end, Err(RecvError::Closed));

    let next = runtime.block_on(poll_fn(|cx| Pin::new(&mut sub).poll_next(cx)));
    assert!(next.is_none(), "the Stream ends after close");
}
