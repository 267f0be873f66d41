//! Subscription interest: `Broker::watch_interest` reports each name's
//! first subscriber and last departure, exactly once per real change.

#[path = "support/shows.rs"]
mod shows;
#[path = "support/watchdog.rs"]
mod watchdog;

use std::thread;
use std::time::Duration;

use futures::StreamExt;
use shows::assert_shows;
use tannoy::{Broker, InterestChange, InterestKind, OverflowPolicy};

/// How long a hang guard waits before declaring a hang: it only turns a
/// hang into a failure, it never measures speed.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// Everything pending, as (kind, name, active).
fn drain(watch: &tannoy::InterestWatch) -> Vec<(InterestKind, String, bool)> {
    std::iter::from_fn(|| watch.try_next())
        .map(|c: InterestChange| {
            (
                c.kind(),
                String::from_utf8_lossy(c.name()).into_owned(),
                c.is_active(),
            )
        })
        .collect()
}

/// A watch first reports what is held when it is made, every kind of name.
#[test]
fn a_new_watch_reports_what_is_held() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["a", "b"]);
    sub.psubscribe(["p*"]);
    sub.ssubscribe(["s"]);
    let watch = broker.watch_interest();
    let mut held = drain(&watch);
    held.sort();
    assert_eq!(
        held,
        [
            (InterestKind::Channel, "a".into(), true),
            (InterestKind::Channel, "b".into(), true),
            (InterestKind::Pattern, "p*".into(), true),
            (InterestKind::ShardChannel, "s".into(), true),
        ]
    );
    assert!(watch.try_next().is_none());
}

/// Only the first subscriber and the last departure are changes; a second
/// subscriber, or one of two leaving, is not.
#[test]
fn only_first_and_last_are_changes() {
    let broker = Broker::new();
    let watch = broker.watch_interest();
    let a = broker.subscriber();
    let b = broker.subscriber();
    a.subscribe(["c"]);
    b.subscribe(["c"]);
    a.psubscribe(["x*"]);
    b.psubscribe(["x*"]);
    assert_eq!(
        drain(&watch),
        [
            (InterestKind::Channel, "c".into(), true),
            (InterestKind::Pattern, "x*".into(), true),
        ]
    );
    a.unsubscribe(["c"]);
    assert!(drain(&watch).is_empty(), "b still holds both");
    drop(b);
    assert_eq!(drain(&watch), [(InterestKind::Channel, "c".into(), false)]);
    a.punsubscribe(["x*"]);
    assert_eq!(drain(&watch), [(InterestKind::Pattern, "x*".into(), false)]);
    drop(a);
    assert!(drain(&watch).is_empty());
}

/// A change undone before the watcher looked is not reported, and a name
/// that changes many times while unread takes one entry.
#[test]
fn changes_undone_before_reading_are_not_reported() {
    let broker = Broker::new();
    let watch = broker.watch_interest();
    let sub = broker.subscriber();
    for _ in 0..1000 {
        sub.subscribe(["flap"]);
        sub.unsubscribe(["flap"]);
    }
    assert!(watch.try_next().is_none());
    sub.subscribe(["flap"]);
    assert_eq!(
        drain(&watch),
        [(InterestKind::Channel, "flap".into(), true)]
    );
    for _ in 0..1000 {
        sub.unsubscribe(["flap"]);
        sub.subscribe(["flap"]);
    }
    assert!(watch.try_next().is_none(), "still active, as last reported");
}

/// A subscriber disconnected by its overflow policy gives up its names, and
/// the watch sees it.
#[test]
fn a_disconnected_subscriber_gives_up_its_names() {
    let broker = Broker::builder().queue_capacity(1).build();
    let sub = broker.subscriber_with(OverflowPolicy::Disconnect);
    sub.subscribe(["c"]);
    let watch = broker.watch_interest();
    assert_eq!(drain(&watch), [(InterestKind::Channel, "c".into(), true)]);
    broker.publish("c", "1");
    broker.publish("c", "2");
    assert!(sub.is_disconnected());
    assert_eq!(drain(&watch), [(InterestKind::Channel, "c".into(), false)]);
}

/// Every watch sees every change; a dropped watch costs nothing more.
#[test]
fn watches_are_independent() {
    let broker = Broker::new();
    let first = broker.watch_interest();
    let second = broker.watch_interest();
    let sub = broker.subscriber();
    sub.subscribe(["c"]);
    assert_eq!(drain(&first).len(), 1);
    drop(first);
    sub.subscribe(["d"]);
    assert_eq!(
        drain(&second),
        [
            (InterestKind::Channel, "c".into(), true),
            (InterestKind::Channel, "d".into(), true),
        ]
    );
}

/// A watch can wait for a subscriber on another thread; closing the broker
/// ends its stream.
#[test]
fn waiting_for_another_thread_to_subscribe() {
    let broker = Broker::new();
    let watch = broker.watch_interest();
    let worker = {
        let broker = broker.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            let sub = broker.subscriber();
            sub.subscribe(["jobs"]);
            sub.recv().map(|m| m.into_payload())
        })
    };
    let change = watch
        .next_timeout(Duration::from_secs(10))
        .expect("the worker subscribed");
    assert_eq!(change.name(), "jobs");
    assert_eq!(broker.publish("jobs", "j"), 1);
    assert_eq!(worker.join().unwrap().unwrap(), "j");
    assert!(
        watch.next_timeout(Duration::from_secs(10)).is_some(),
        "the worker's subscriber dropped: jobs is inactive"
    );
    broker.close();
    assert!(watch.next_timeout(Duration::from_secs(10)).is_none());
}

/// The stream yields changes as they happen, woken by the subscribing
/// thread, and ends when the broker closes.
#[test]
fn the_stream_follows_changes_and_ends_at_close() {
    let broker = Broker::new();
    let mut watch = broker.watch_interest();
    let other = broker.clone();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let subscriber = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        let sub = other.subscriber();
        sub.psubscribe(["ai:*"]);
        // Leave only once the watch has seen the pattern arrive.
        seen_rx.recv().unwrap();
        drop(sub);
        other.close();
    });
    let changes: Vec<_> = futures::executor::block_on(async {
        let mut seen = Vec::new();
        while let Some(change) = watch.next().await {
            seen.push((change.kind(), change.is_active()));
            let _ = seen_tx.send(());
        }
        seen
    });
    subscriber.join().unwrap();
    assert_eq!(
        changes,
        [
            (InterestKind::Pattern, true),
            (InterestKind::Pattern, false)
        ]
    );
}

/// A watch's `Debug` shows how many changes wait to be read, how many names
/// it last reported active, and whether the broker has closed.
#[test]
fn a_watchs_debug_shows_pending_active_and_closed() {
    let broker = Broker::new();
    let watch = broker.watch_interest();
    let sub = broker.subscriber();
    sub.subscribe(["a", "b"]);
    let shown = format!("{watch:?}");
    assert_shows(
        &shown,
        &["InterestWatch", "pending: 2", "active: 0", "closed: false"],
    );
    assert_eq!(drain(&watch).len(), 2);
    let shown = format!("{watch:?}");
    assert_shows(&shown, &["pending: 0", "active: 2", "closed: false"]);
    broker.close();
    let shown = format!("{watch:?}");
    assert_shows(&shown, &["closed: true"]);
}

/// An interest watch's `next_timeout` gives up and returns `None` once the
/// timeout passes with nothing to report, and afterwards still reports the
/// next change.
#[test]
fn interest_next_timeout_returns_none_when_nothing_changes() {
    watchdog::guarded(HANG_GUARD, "next_timeout never returned", || {
        let broker = Broker::new();
        let watch = broker.watch_interest();
        assert!(watch.next_timeout(Duration::from_millis(5)).is_none());
        let sub = broker.subscriber();
        sub.subscribe(["late"]);
        let change = watch.next_timeout(Duration::from_millis(5)).unwrap();
        assert_eq!(change.name(), "late");
        assert!(watch.next_timeout(Duration::from_millis(5)).is_none());
    });
}
