//! Races between a receive and a publish, made to happen at one chosen
//! instant (see `crate::interleave`), for readers of several feeds and of
//! many: the windows a single-threaded test cannot reach and a threaded
//! one reaches only by chance.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::MANY_CURSORS;
use crate::interleave::{self, Point};
use crate::{Broker, Message};

/// Enough channels to make a reader of many feeds.
fn many_channels() -> Vec<String> {
    (0..=MANY_CURSORS).map(|i| format!("c{i:02}")).collect()
}

/// Publishes `messages` in order, from the receiving thread, the first
/// time one of its receives reaches `point`.
fn publish_at(broker: &Broker, point: Point, messages: &'static [(&'static str, &'static str)]) {
    let publisher = broker.clone();
    interleave::install(move |reached| {
        if reached != point {
            return false;
        }
        for &(channel, payload) in messages {
            publisher.publish(channel, payload);
        }
        true
    });
}

/// What a message says, as text.
fn text(message: &Message) -> String {
    String::from_utf8_lossy(message.payload()).into_owned()
}

/// A publish that lands after a blocking receive's last look found nothing,
/// and before it armed its signal, still wakes it. The publish rings the
/// signal and the arm then clears the ring, so the receive must see the
/// feed's name in its list before it waits; otherwise it sleeps for ever,
/// and no later publish rings it either (the list is not empty, so they
/// add no first name).
#[test]
fn a_publish_just_before_a_blocking_receive_arms_wakes_it() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(many_channels());
    let (done, result) = mpsc::channel();
    thread::spawn(move || {
        publish_at(&broker, Point::BeforeArm, &[("c03", "late")]);
        let _ = done.send(sub.recv().map(|m| text(&m)));
    });
    let received = result
        .recv_timeout(Duration::from_secs(60))
        .expect("the receive never woke: the publish's ring was lost");
    assert_eq!(received.as_deref(), Ok("late"));
}

/// A reader of many feeds that refills one cursor looks again at the
/// cursors it found empty before picking: a publisher's message to a feed
/// it had already looked at, sent before the message it refilled, comes
/// out first.
#[test]
fn a_message_sent_to_a_feed_already_looked_at_is_not_overtaken() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(many_channels());
    // At cursor 1's refill, cursor 0 has just been looked at and found
    // empty; cursor 5 has not been looked at yet.
    publish_at(
        &broker,
        Point::Refill(1),
        &[("c00", "first"), ("c05", "second")],
    );
    let received: Vec<String> = [sub.try_recv(), sub.try_recv()]
        .into_iter()
        .map(|m| text(&m.expect("both messages are receivable")))
        .collect();
    assert_eq!(received, ["first", "second"], "the publisher's order");
}

/// A reader of a few feeds whose pass refills one cursor looks again at
/// the cursors it found idle: a publisher's message to a feed already
/// refilled, sent before a message to the feed being refilled, still comes
/// out before it, and the refilled feed's earlier message before both.
#[test]
fn a_few_feeds_keep_a_publishers_order_across_a_refill() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["c0", "c1", "c2"]);
    broker.publish("c2", "first");
    // At cursor 1's refill, cursor 0 has just been refilled (it had
    // nothing); cursor 2, which holds "first" unread, has not been.
    publish_at(
        &broker,
        Point::Refill(1),
        &[("c0", "second"), ("c2", "third")],
    );
    let received: Vec<String> = (0..3)
        .map(|_| text(&sub.try_recv().expect("three messages are receivable")))
        .collect();
    assert_eq!(
        received,
        ["first", "second", "third"],
        "the publisher's order"
    );
}
