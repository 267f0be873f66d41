//! Hazards (issue 11): user code that calls back into the broker — a
//! payload's `Drop` or `Clone`, a waker's `wake` — must never run while the
//! broker holds one of its locks, on any path that can run it, under every
//! overflow policy; the last `Broker` handle must close the broker whatever
//! a delivered payload held; and a sole receiver must get its payload
//! without a clone.
//!
//! Every test that could deadlock runs under a watchdog, so a deadlock
//! fails the test instead of hanging the run. Channels all live in one
//! shard (`shards(1)`), so any callback that publishes while a shard lock
//! is held would hit that very lock.

#[path = "support/watchdog.rs"]
mod watchdog;

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use futures_core::Stream;
use tannoy::{Broker, BrokerBuilder, OverflowPolicy, RecvError, Subscriber, TryRecvError};

/// Every overflow policy: each path is checked under all of them.
const POLICIES: [OverflowPolicy; 3] = [
    OverflowPolicy::DropOldest,
    OverflowPolicy::DropNewest,
    OverflowPolicy::Disconnect,
];

/// The queue capacity of the subscriber each test works on.
const CAPACITY: usize = 3;

/// How long a case may run before it counts as deadlocked. Generous: a
/// case takes milliseconds; the limit only turns a hang into a failure.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// No names, for the "all" form of the unsubscribe calls.
const ALL: [&str; 0] = [];

/// Runs `case` on its own thread, failing with `what` if it deadlocks.
fn guarded<T: Send + 'static>(what: &str, case: impl FnOnce() -> T + Send + 'static) -> T {
    watchdog::guarded(HANG_GUARD, &format!("deadlock: {what}"), case)
}

// ---------------------------------------------------------------------------
// A payload whose `Drop` calls back into the broker.
// ---------------------------------------------------------------------------

/// What an armed [`Hook`] does when it is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// Publishes more than [`CAPACITY`] messages to `d` in both namespaces,
    /// which overflows a subscriber holding `d` (under `Disconnect`, that
    /// unsubscribes it from everything), and one to `c`, another channel
    /// (all channels share one shard).
    Publish,
    /// Publishes to `u` in both namespaces: the channel each test works on,
    /// so the publish re-enters the very channel (and feed) whose path
    /// dropped the payload.
    Echo,
    /// Subscribes and unsubscribes the subscriber under test itself (the
    /// one whose subscriptions lock the path may hold), in all three
    /// namespaces, reads its counters, and creates and drops another
    /// subscriber (the broker's subscriber list).
    Resubscribe,
}

/// Every action: each path is checked with each.
const ACTIONS: [Action; 3] = [Action::Publish, Action::Echo, Action::Resubscribe];

/// Counts of armed payload copies, shared by one test case's payloads.
#[derive(Debug, Default)]
struct Tally {
    /// Armed copies created (the original and every clone).
    copies: AtomicUsize,
    /// Armed copies dropped (each runs its action once).
    fired: AtomicUsize,
}

impl Tally {
    /// Armed copies created so far.
    fn copies(&self) -> usize {
        self.copies.load(Ordering::SeqCst)
    }

    /// Armed copies dropped so far.
    fn fired(&self) -> usize {
        self.fired.load(Ordering::SeqCst)
    }
}

/// What one test case's armed payloads share.
struct Plan {
    /// The broker the action uses: a handle, so it keeps the broker open
    /// while any armed copy lives.
    broker: Broker<Hook>,
    /// The action.
    action: Action,
    /// The subscriber under test (gone while it is being dropped).
    victim: Weak<Subscriber<Hook>>,
    /// Copies created and dropped.
    tally: Arc<Tally>,
}

impl Plan {
    /// Runs the action.
    fn run(&self) {
        let broker = &self.broker;
        match self.action {
            Action::Publish => {
                for _ in 0..=CAPACITY {
                    broker.publish("d", Hook::inert());
                    broker.spublish("d", Hook::inert());
                }
                broker.publish("c", Hook::inert());
                broker.spublish("c", Hook::inert());
            }
            Action::Echo => {
                broker.publish("u", Hook::inert());
                broker.spublish("u", Hook::inert());
            }
            Action::Resubscribe => {
                if let Some(victim) = self.victim.upgrade() {
                    victim.subscribe(["c", "x"]);
                    victim.psubscribe(["c*", "x*"]);
                    victim.ssubscribe(["c", "x"]);
                    victim.unsubscribe(["x"]);
                    victim.punsubscribe(["x*"]);
                    victim.sunsubscribe(["x"]);
                    let _ = (victim.len(), victim.dropped(), victim.subscribed_channels());
                    let _ = victim.is_disconnected();
                }
                let other = broker.subscriber();
                other.subscribe(["c"]);
                other.psubscribe(["c*"]);
                other.ssubscribe(["c"]);
                drop(other);
                let _ = (broker.numsub(["c"]), broker.numpat(), broker.channels(None));
            }
        }
    }
}

/// A payload that runs its plan's action when dropped (if armed); inert
/// payloads, which the actions publish, do nothing.
struct Hook {
    /// The plan, for an armed payload.
    plan: Option<Arc<Plan>>,
}

impl Hook {
    /// A payload that does nothing when dropped.
    fn inert() -> Self {
        Self { plan: None }
    }

    /// An armed payload following `plan`.
    fn armed(plan: &Arc<Plan>) -> Self {
        plan.tally.copies.fetch_add(1, Ordering::SeqCst);
        Self {
            plan: Some(Arc::clone(plan)),
        }
    }

    /// Whether it is armed.
    fn is_armed(&self) -> bool {
        self.plan.is_some()
    }
}

impl Clone for Hook {
    fn clone(&self) -> Self {
        match &self.plan {
            Some(plan) => Self::armed(plan),
            None => Self::inert(),
        }
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        if let Some(plan) = self.plan.take() {
            plan.tally.fired.fetch_add(1, Ordering::SeqCst);
            plan.run();
        }
    }
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_armed() { "armed" } else { "inert" })
    }
}

/// One test case: a one-shard broker, the subscriber under test and the
/// plan its armed payloads follow.
struct Scene {
    /// The test's own broker handle.
    broker: Broker<Hook>,
    /// The subscriber under test (the test holds the only strong
    /// reference; payloads reach it through a `Weak`).
    victim: Arc<Subscriber<Hook>>,
    /// What armed payloads do.
    plan: Arc<Plan>,
    /// Their counts.
    tally: Arc<Tally>,
}

impl Scene {
    /// A scene whose subscriber under test has `policy` and a queue of
    /// [`CAPACITY`].
    fn new(policy: OverflowPolicy, action: Action) -> Self {
        let broker = BrokerBuilder::<Hook>::new()
            .queue_capacity(CAPACITY)
            .shards(1)
            .build();
        let victim = Arc::new(broker.subscriber_with(policy));
        let tally = Arc::new(Tally::default());
        let plan = Arc::new(Plan {
            broker: broker.clone(),
            action,
            victim: Arc::downgrade(&victim),
            tally: Arc::clone(&tally),
        });
        Self {
            broker,
            victim,
            plan,
            tally,
        }
    }

    /// A new armed payload.
    fn hazard(&self) -> Hook {
        Hook::armed(&self.plan)
    }

    /// Receives everything the subscriber under test holds, dropping each
    /// message; returns how many were armed.
    fn drain(&self) -> usize {
        self.victim
            .try_iter()
            .filter(|m| m.payload().is_armed())
            .count()
    }

    /// Publishes inert messages to `channel` until the subscriber under
    /// test holds [`CAPACITY`] messages.
    fn fill(&self, channel: &str) {
        while self.victim.len() < CAPACITY {
            assert_eq!(self.broker.publish(channel, Hook::inert()), 1);
        }
    }

    /// As [`fill`](Self::fill), with shard messages.
    fn fill_shard(&self, channel: &str) {
        while self.victim.len() < CAPACITY {
            assert_eq!(self.broker.spublish(channel, Hook::inert()), 1);
        }
    }

    /// Ends the case: drops the subscriber under test (and with it every
    /// message it still holds), then checks that every armed copy ran its
    /// action exactly once and that the broker is still usable from
    /// another thread (no lock was left held).
    fn finish(self) {
        let Scene {
            broker,
            victim,
            plan,
            tally,
        } = self;
        drop(victim);
        drop(plan);
        assert_eq!(
            tally.fired(),
            tally.copies(),
            "every armed payload copy is dropped exactly once"
        );
        if !broker.is_closed() {
            let other = broker.clone();
            std::thread::spawn(move || {
                let sub = other.subscriber();
                sub.subscribe(["c"]);
                sub.psubscribe(["c*"]);
                assert_eq!(other.publish("c", Hook::inert()), 2);
                assert_eq!(sub.try_iter().count(), 2);
            })
            .join()
            .expect("the broker is usable afterwards");
        }
    }
}

/// Runs `case` once for every policy and action, each on its own guarded
/// thread, naming the path and the case if it deadlocks.
fn for_every_case(path: &str, case: impl Fn(OverflowPolicy, Action) + Copy + Send + 'static) {
    for policy in POLICIES {
        for action in ACTIONS {
            guarded(
                &format!("{path}, {policy:?} subscriber, payload Drop: {action:?}"),
                move || case(policy, action),
            );
        }
    }
}

/// Runs `case` in a fresh [`Scene`] for every policy and action (see
/// [`for_every_case`]), with the scene's broker and subscriber under test
/// at hand, then [`finish`](Scene::finish)es the scene.
fn in_every_scene(path: &str, case: fn(&Scene, &Broker<Hook>, &Subscriber<Hook>)) {
    for_every_case(path, move |policy, action| {
        let scene = Scene::new(policy, action);
        case(&scene, &scene.broker, &scene.victim);
        scene.finish();
    });
}

/// `unsubscribe` runs no payload's `Drop` under a lock: with a channel
/// whose last message was received and dropped, another whose message is
/// unread, and a full queue, unsubscribing from both completes, and every
/// payload is later dropped exactly once (its `Drop` publishing into the
/// full subscriber, or re-subscribing that very subscriber).
#[test]
fn payload_drop_may_use_the_broker_during_unsubscribe() {
    in_every_scene("unsubscribe", |scene, broker, victim| {
        victim.subscribe(["u", "u2"]);
        broker.publish("u", scene.hazard());
        broker.publish("u", scene.hazard());
        assert_eq!(scene.drain(), 2, "both received, and dropped");
        victim.subscribe(["d"]);
        broker.publish("u2", scene.hazard());
        scene.fill("d");
        victim.unsubscribe(["u", "u2"]);
    });
}

/// `punsubscribe` runs no payload's `Drop` under a lock: with pattern
/// messages received and dropped, others unread, and a full queue,
/// unsubscribing from the patterns (by name, then all) completes and every
/// payload is dropped exactly once.
#[test]
fn payload_drop_may_use_the_broker_during_punsubscribe() {
    in_every_scene("punsubscribe", |scene, broker, victim| {
        victim.psubscribe(["u*", "k*"]);
        broker.publish("u1", scene.hazard());
        assert_eq!(scene.drain(), 1);
        victim.subscribe(["d"]);
        broker.publish("k1", scene.hazard());
        scene.fill("d");
        victim.punsubscribe(["u*"]);
        victim.punsubscribe(ALL);
    });
}

/// `sunsubscribe` runs no payload's `Drop` under a lock: as for
/// `unsubscribe`, with shard channels.
#[test]
fn payload_drop_may_use_the_broker_during_sunsubscribe() {
    in_every_scene("sunsubscribe", |scene, broker, victim| {
        victim.ssubscribe(["u", "u2"]);
        broker.spublish("u", scene.hazard());
        broker.spublish("u", scene.hazard());
        assert_eq!(scene.drain(), 2);
        victim.ssubscribe(["d"]);
        broker.spublish("u2", scene.hazard());
        scene.fill_shard("d");
        victim.sunsubscribe(["u"]);
        victim.sunsubscribe(ALL);
    });
}

/// Dropping a `Subscriber` runs no payload's `Drop` under a lock: a
/// subscriber holding a channel, a pattern and shard channels, with a
/// message received and dropped and others unread in a full queue, is
/// dropped while its payloads publish into the channels it is leaving.
#[test]
fn payload_drop_may_use_the_broker_while_a_subscriber_drops() {
    in_every_scene("Subscriber drop", |scene, broker, victim| {
        victim.subscribe(["u"]);
        victim.psubscribe(["k*"]);
        broker.publish("u", scene.hazard());
        assert_eq!(scene.drain(), 1);
        broker.publish("k1", scene.hazard());
        // Shard channels are left after exact channels: `d` is still held
        // while the exact channel's payloads go.
        victim.ssubscribe(["d", "u2"]);
        broker.spublish("u2", scene.hazard());
        scene.fill_shard("d");
    });
}

/// Eviction at publish runs no payload's `Drop` under a lock: a full
/// subscriber's policy evicts (`DropOldest`: the feed's oldest entry),
/// refuses (`DropNewest`) or disconnects (`Disconnect`) while the publisher
/// holds its locks, and the payloads it lets go publish into the same
/// channel and subscriber, or re-subscribe it.
#[test]
fn payload_drop_may_use_the_broker_during_eviction_at_publish() {
    in_every_scene("eviction at publish", |scene, broker, victim| {
        victim.subscribe(["u", "d"]);
        victim.psubscribe(["u*"]);
        for _ in 0..3 * CAPACITY {
            broker.publish("u", scene.hazard());
        }
        // Up to two armed copies per publish (the exact message and the
        // pattern message's clone). What the subscriber keeps is bounded
        // (a queue of CAPACITY, or CAPACITY per feed read); the publishes
        // dropped everything else.
        let held = scene.tally.copies() - scene.tally.fired();
        assert!(held <= 2 * CAPACITY, "{held} armed copies held");
    });
}

/// A `DropOldest` reader far behind drops its excess when it next
/// receives, and those payloads' `Drop` may use the broker, even
/// re-subscribe that very reader. The subscribers that kept up (one
/// reader, and one of each policy) took their copies first.
#[test]
fn payload_drop_may_use_the_broker_during_a_receive_side_capacity_drop() {
    for_every_case("receive-side capacity drop", |policy, action| {
        let scene = Scene::new(OverflowPolicy::DropOldest, action);
        let (broker, victim) = (&scene.broker, &scene.victim);
        let keeper = broker.subscriber_builder().queue_capacity(8).build();
        let other = broker
            .subscriber_builder()
            .queue_capacity(8)
            .overflow_policy(policy)
            .build();
        for sub in [&**victim, &keeper, &other] {
            sub.subscribe(["u"]);
        }
        for _ in 0..8 {
            broker.publish("u", scene.hazard());
        }
        assert_eq!(keeper.try_iter().count(), 8);
        assert_eq!(other.try_iter().count(), 8);
        assert_eq!(
            scene.tally.fired(),
            0,
            "the lagging reader still holds all eight"
        );
        assert_eq!(victim.dropped(), 5);
        let newest = victim.try_recv().expect("the newest three are kept");
        assert_eq!(newest.seq(), 5);
        assert_eq!(
            scene.tally.fired(),
            5,
            "the five beyond capacity went with that receive"
        );
        drop(newest);
        assert_eq!(scene.tally.fired(), 6);
        drop((keeper, other));
        scene.finish();
    });
}

/// `close()` runs no payload's `Drop` under a lock, and the payloads still
/// queued at close are received afterwards, their `Drop` using a closed
/// broker (publishes return 0) without harm.
#[test]
fn payload_drop_may_use_the_broker_during_and_after_close() {
    in_every_scene("close", |scene, broker, victim| {
        victim.subscribe(["u"]);
        victim.psubscribe(["u*"]);
        broker.publish("u", scene.hazard());
        victim.subscribe(["d"]);
        broker.publish("d", Hook::inert());
        assert_eq!(victim.len(), CAPACITY);
        broker.close();
        assert_eq!(broker.publish("u", scene.hazard()), 0);
        assert_eq!(victim.iter().filter(|m| m.payload().is_armed()).count(), 2);
        assert_eq!(victim.try_recv().unwrap_err(), TryRecvError::Closed);
    });
}

/// Dropping the last `Broker` handle may happen inside a payload's `Drop`
/// (the armed payloads hold the last handles): the subscriber's
/// `for msg in sub.iter()` loop receives everything, the last armed
/// payload's drop closes the broker, and the loop ends.
#[test]
fn payload_drop_may_drop_the_last_broker_handle() {
    for_every_case("drop of the last Broker handle", |policy, action| {
        let scene = Scene::new(policy, action);
        let Scene {
            broker,
            victim,
            plan,
            tally,
        } = scene;
        let probe = broker.subscriber();
        victim.subscribe(["u"]);
        victim.psubscribe(["u*"]);
        broker.publish("u", Hook::armed(&plan));
        drop(plan);
        drop(broker);
        let mut armed = 0;
        for msg in victim.iter() {
            armed += usize::from(msg.payload().is_armed());
        }
        assert_eq!(armed, 2);
        drop(victim);
        assert_eq!(tally.fired(), tally.copies());
        assert_eq!(
            probe.recv().unwrap_err(),
            RecvError::Closed,
            "the last handle, dropped by a payload, closed the broker"
        );
    });
}

/// A publish of one of the three message kinds.
type PublishFn = fn(&Broker<Hook>, Hook) -> usize;

/// A received `Message` is its payload's last holder: dropping it runs the
/// payload's `Drop` there and then (exact, pattern and shard messages),
/// with no lock held, so that `Drop` may use the broker.
#[test]
fn payload_drop_may_use_the_broker_when_a_message_drops() {
    in_every_scene("Message drop", |scene, broker, victim| {
        victim.subscribe(["u"]);
        victim.ssubscribe(["u"]);
        victim.psubscribe(["p*"]);
        let publishes: [PublishFn; 3] = [
            |b, h| b.publish("u", h),
            |b, h| b.spublish("u", h),
            |b, h| b.publish("p1", h),
        ];
        for publish in publishes {
            assert_eq!(publish(broker, scene.hazard()), 1);
            let msg = victim.try_recv().expect("delivered");
            assert!(msg.payload().is_armed());
            let before = scene.tally.fired();
            drop(msg);
            assert_eq!(
                scene.tally.fired(),
                before + 1,
                "dropping the message dropped its payload"
            );
            assert_eq!(scene.drain(), 0);
        }
    });
}

// ---------------------------------------------------------------------------
// The last handle, and clones.
// ---------------------------------------------------------------------------

/// A payload holding a broker handle, as a job might carry a handle to
/// report back on.
#[derive(Clone, Debug)]
struct Carrier {
    /// The handle carried (copies carry clones).
    _broker: Option<Broker<Carrier>>,
}

/// Dropping the last `Broker` handle closes the broker even when a
/// message's payload held a handle: once the only subscriber has received
/// and dropped that message, nothing retains the payload, so
/// `for msg in sub.iter()` ends (exact, pattern and shard messages, every
/// policy).
#[test]
fn last_handle_closes_after_the_only_receiver_dropped_a_payload_holding_a_handle() {
    for policy in POLICIES {
        for kind in ["exact", "pattern", "shard"] {
            guarded(
                &format!("{policy:?} subscriber, {kind} message: the broker never closed"),
                move || {
                    let broker = BrokerBuilder::<Carrier>::new().shards(1).build();
                    let sub = broker.subscriber_with(policy);
                    let carrier = Carrier {
                        _broker: Some(broker.clone()),
                    };
                    let delivered = match kind {
                        "exact" => {
                            sub.subscribe(["jobs"]);
                            broker.publish("jobs", carrier)
                        }
                        "pattern" => {
                            sub.psubscribe(["jo*"]);
                            broker.publish("jobs", carrier)
                        }
                        _ => {
                            sub.ssubscribe(["jobs"]);
                            broker.spublish("jobs", carrier)
                        }
                    };
                    assert_eq!(delivered, 1);
                    drop(sub.recv().expect("delivered"));
                    drop(broker);
                    assert_eq!(sub.iter().count(), 0);
                    assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Closed);
                },
            );
        }
    }
}

/// A payload counting how often it is cloned.
#[derive(Debug)]
struct CountsClones {
    /// Clones of this value and its copies, shared by them.
    clones: Arc<AtomicUsize>,
}

impl Clone for CountsClones {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Self {
            clones: Arc::clone(&self.clones),
        }
    }
}

/// `Message::into_payload` moves the payload out without cloning it when
/// the message is its only holder: for a sole receiver of an exact, a
/// pattern or a shard message, under every policy (a pattern message's
/// payload is the publish's own clone; `into_payload` adds none).
#[test]
fn into_payload_does_not_clone_for_a_sole_receiver() {
    for policy in POLICIES {
        for kind in ["exact", "pattern", "shard"] {
            let broker = BrokerBuilder::<CountsClones>::new().build();
            let sub = broker.subscriber_with(policy);
            let clones = Arc::new(AtomicUsize::new(0));
            let payload = CountsClones {
                clones: Arc::clone(&clones),
            };
            let (delivered, by_publish) = match kind {
                "exact" => {
                    sub.subscribe(["c"]);
                    (broker.publish("c", payload), 0)
                }
                "pattern" => {
                    sub.psubscribe(["c*"]);
                    (broker.publish("c", payload), 1)
                }
                _ => {
                    sub.ssubscribe(["c"]);
                    (broker.spublish("c", payload), 0)
                }
            };
            assert_eq!(delivered, 1);
            let msg = sub.recv().expect("delivered");
            assert_eq!(
                clones.load(Ordering::SeqCst),
                by_publish,
                "{policy:?} {kind}"
            );
            let _payload = msg.into_payload();
            assert_eq!(
                clones.load(Ordering::SeqCst),
                by_publish,
                "{policy:?} {kind}: into_payload cloned a payload it held alone"
            );
        }
    }
}

/// `Message::into_payload` clones exactly once when another subscriber
/// holds the same message, and not at all for the last holder.
#[test]
fn into_payload_clones_once_while_another_receiver_holds_the_message() {
    for (first, second) in [
        (OverflowPolicy::DropOldest, OverflowPolicy::DropOldest),
        (OverflowPolicy::DropNewest, OverflowPolicy::Disconnect),
        (OverflowPolicy::DropOldest, OverflowPolicy::DropNewest),
    ] {
        let broker = BrokerBuilder::<CountsClones>::new().build();
        let a = broker.subscriber_with(first);
        let b = broker.subscriber_with(second);
        a.subscribe(["c"]);
        b.subscribe(["c"]);
        let clones = Arc::new(AtomicUsize::new(0));
        let payload = CountsClones {
            clones: Arc::clone(&clones),
        };
        assert_eq!(broker.publish("c", payload), 2);
        let (from_a, from_b) = (a.recv().unwrap(), b.recv().unwrap());
        assert_eq!(
            clones.load(Ordering::SeqCst),
            0,
            "fan-out shares the payload"
        );
        let _ = from_a.into_payload();
        assert_eq!(
            clones.load(Ordering::SeqCst),
            1,
            "b still holds it: one clone"
        );
        let _ = from_b.into_payload();
        assert_eq!(clones.load(Ordering::SeqCst), 1, "b was the last holder");
    }
}

/// A payload whose `Clone` publishes, as a copy-on-clone audit hook might.
#[derive(Debug)]
struct Noisy {
    /// Where its clones publish (inert copies publish nothing).
    broker: Option<Broker<Noisy>>,
}

impl Clone for Noisy {
    fn clone(&self) -> Self {
        if let Some(broker) = &self.broker {
            broker.publish("c", Noisy { broker: None });
            broker.publish("other", Noisy { broker: None });
        }
        Self { broker: None }
    }
}

/// A payload's `Clone` runs with no broker lock held, so it may publish to
/// the very channel being published to and to another one (one shard):
/// each pattern message's clone publishes first, then the publish itself
/// delivers, and every count is exact. Every policy.
#[test]
fn payload_clone_may_publish_to_the_same_and_another_channel() {
    for policy in POLICIES {
        guarded(
            &format!("{policy:?}: a payload's Clone published"),
            move || {
                let broker = BrokerBuilder::<Noisy>::new()
                    .queue_capacity(16)
                    .shards(1)
                    .build();
                let exact = broker.subscriber_with(policy);
                exact.subscribe(["c"]);
                let patterns = broker.subscriber_with(policy);
                patterns.psubscribe(["c*", "*"]);
                let noisy = Noisy {
                    broker: Some(broker.clone()),
                };
                // Two pattern messages, so two clones, each publishing to `c`
                // (1 exact + 2 pattern deliveries) and `other` (1 pattern).
                assert_eq!(broker.publish("c", noisy), 3);
                assert_eq!(
                    exact.try_iter().count(),
                    3,
                    "two from the clones, then its own"
                );
                assert_eq!(patterns.try_iter().count(), 2 * 3 + 2);
                let copy = exact.subscribe(["c"]);
                assert_eq!(copy, 1, "the broker is still usable");
            },
        );
    }
}

// ---------------------------------------------------------------------------
// Wakers that call back into the broker.
// ---------------------------------------------------------------------------

/// A waker that, when woken, runs its "task" inline, and the task uses
/// the broker: it publishes to the woken subscriber's channel and another,
/// and subscribes a bystander and a new subscriber.
struct Meddler {
    /// The broker it uses.
    broker: Broker,
    /// A subscriber it (un)subscribes.
    bystander: Subscriber,
    /// Wake-ups so far.
    woken: AtomicUsize,
}

impl Meddler {
    /// A meddling waker on `broker`, and its state.
    fn new(broker: &Broker) -> (Arc<Self>, Waker) {
        let meddler = Arc::new(Self {
            broker: broker.clone(),
            bystander: broker.subscriber(),
            woken: AtomicUsize::new(0),
        });
        let waker = Waker::from(Arc::clone(&meddler));
        (meddler, waker)
    }

    /// Wake-ups so far.
    fn woken(&self) -> usize {
        self.woken.load(Ordering::SeqCst)
    }
}

impl Wake for Meddler {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.fetch_add(1, Ordering::SeqCst);
        self.broker.publish("c", "from wake");
        self.broker.publish("other", "from wake");
        self.bystander.subscribe(["c", "w"]);
        self.bystander.psubscribe(["c*"]);
        self.bystander.unsubscribe(["w"]);
        let newcomer = self.broker.subscriber();
        newcomer.subscribe(["c"]);
        drop(newcomer);
    }
}

/// Polls `sub`'s `recv_async` once with `waker`; it must be pending.
fn park_async(sub: &mut Subscriber, waker: &Waker) {
    let mut cx = Context::from_waker(waker);
    let mut recv = pin!(sub.recv_async());
    assert!(recv.as_mut().poll(&mut cx).is_pending());
}

/// A waker whose `wake` runs inline and uses the broker (publishes to the
/// woken channel, subscribes) does not deadlock when a publish wakes it:
/// publishes wake only once they hold no lock. Every policy.
#[test]
fn waker_may_use_the_broker_when_a_publish_wakes_it() {
    for policy in POLICIES {
        guarded(
            &format!("{policy:?}: a publish woke a meddling waker"),
            move || {
                let broker = Broker::builder().shards(1).build();
                let mut sub = broker.subscriber_with(policy);
                sub.subscribe(["c"]);
                let (meddler, waker) = Meddler::new(&broker);
                park_async(&mut sub, &waker);
                assert_eq!(broker.publish("c", "wake up"), 1);
                assert_eq!(meddler.woken(), 1);
                let got: Vec<_> = sub.try_iter().map(|m| m.into_payload()).collect();
                assert_eq!(got, ["wake up", "from wake"]);
                assert_eq!(broker.numsub(["c"])[0].1, 2, "sub and the bystander");
            },
        );
    }
}

/// A waker whose `wake` runs inline and uses the broker does not deadlock
/// when a subscribe wakes it (a reader waiting on its feeds is woken to
/// look at a new one).
#[test]
fn waker_may_use_the_broker_when_a_subscribe_wakes_it() {
    for policy in POLICIES {
        guarded(
            &format!("{policy:?}: a subscribe woke a meddling waker"),
            move || {
                let broker = Broker::builder().shards(1).build();
                let mut sub = broker.subscriber_with(policy);
                sub.subscribe(["c"]);
                let (meddler, waker) = Meddler::new(&broker);
                park_async(&mut sub, &waker);
                sub.subscribe(["e"]);
                sub.psubscribe(["e*"]);
                sub.ssubscribe(["e"]);
                assert!(meddler.woken() <= 1, "one registration, one wake-up");
                assert_eq!(broker.publish("e", "after"), 2);
            },
        );
    }
}

/// `close()` wakes waiting async receivers only once it holds no lock, so
/// a waker that runs inline, publishes and creates subscribers does not
/// deadlock it. Every policy.
#[test]
fn waker_may_use_the_broker_when_close_wakes_it() {
    for policy in POLICIES {
        guarded(
            &format!("{policy:?}: close woke a meddling waker"),
            move || {
                let broker = Broker::builder().shards(1).build();
                let mut sub = broker.subscriber_with(policy);
                sub.subscribe(["c"]);
                let (meddler, waker) = Meddler::new(&broker);
                park_async(&mut sub, &waker);
                broker.close();
                assert_eq!(meddler.woken(), 1);
                assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Closed);
            },
        );
    }
}

/// A waker that publishes when its last reference is dropped.
struct LastWords {
    /// Where it publishes.
    broker: Broker,
}

impl Wake for LastWords {
    fn wake(self: Arc<Self>) {}
}

impl Drop for LastWords {
    fn drop(&mut self) {
        self.broker.publish("c", "a waker's last words");
    }
}

/// A no-op waker.
struct Idle;

impl Wake for Idle {
    fn wake(self: Arc<Self>) {}
}

/// A stale waker is replaced when the receiver is polled with a new one;
/// if the broker held its last reference, dropping it runs user code (the
/// waker's `Drop`), which may publish to the very channel being waited on.
/// Every policy, through `recv_async` and `Stream`.
#[test]
fn replaced_waker_may_use_the_broker_when_dropped() {
    let mut hung = Vec::new();
    for policy in POLICIES {
        for stream in [false, true] {
            let case = format!("{policy:?} subscriber, polled as a stream: {stream}");
            let outcome = std::panic::catch_unwind(|| {
                watchdog::guarded(Duration::from_secs(10), "hang", move || {
                    replace_a_waker_that_publishes_when_dropped(policy, stream);
                });
            });
            if outcome.is_err() {
                hung.push(case);
            }
        }
    }
    assert!(
        hung.is_empty(),
        "a replaced waker's Drop deadlocked or failed: {hung:#?}"
    );
}

/// One case of [`replaced_waker_may_use_the_broker_when_dropped`].
fn replace_a_waker_that_publishes_when_dropped(policy: OverflowPolicy, stream: bool) {
    let broker = Broker::builder().shards(1).build();
    let mut sub = broker.subscriber_with(policy);
    sub.subscribe(["c"]);
    let stale = Waker::from(Arc::new(LastWords {
        broker: broker.clone(),
    }));
    let fresh = Waker::from(Arc::new(Idle));
    // Each waker is dropped right after its poll, so the broker holds the
    // stale one's last reference when the second poll replaces it. That
    // drop publishes during the second poll, which may then return the
    // message at once or stay pending (with the fresh waker woken); either
    // way the message is received exactly once.
    let mut got = Vec::new();
    let mut first = true;
    for waker in [stale, fresh] {
        let mut cx = Context::from_waker(&waker);
        let polled = if stream {
            match Stream::poll_next(std::pin::Pin::new(&mut sub), &mut cx) {
                std::task::Poll::Ready(Some(msg)) => Some(msg),
                std::task::Poll::Ready(None) => panic!("the stream ended"),
                std::task::Poll::Pending => None,
            }
        } else {
            match pin!(sub.recv_async()).as_mut().poll(&mut cx) {
                std::task::Poll::Ready(Ok(msg)) => Some(msg),
                std::task::Poll::Ready(Err(err)) => panic!("recv_async failed: {err}"),
                std::task::Poll::Pending => None,
            }
        };
        if first {
            assert!(
                polled.is_none(),
                "nothing was published before the first poll"
            );
            first = false;
        }
        got.extend(polled.map(|m| m.into_payload()));
    }
    got.extend(sub.try_iter().map(|m| m.into_payload()));
    assert_eq!(got, ["a waker's last words"]);
}
