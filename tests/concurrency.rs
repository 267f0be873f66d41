//! Concurrency: thread-safety of the handles, freedom from deadlock and
//! panic under churn, and a stress test checking exact per-subscriber
//! accounting, provenance and per-publisher order while publishers,
//! subscribers and short-lived subscribers all run at once.
//!
//! Durations scale with `TANNOY_STRESS_MS` (default below) and shrink
//! under Miri. They bound how long the threads churn; no test asserts on
//! speed.

#[path = "support/rng.rs"]
mod rng;
#[path = "support/watchdog.rs"]
mod watchdog;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use rng::Rng;
use tannoy::{
    Broker, BrokerBuilder, Bytes, Message, MessageKind, OverflowPolicy, RecvTimeoutError,
    Subscriber, TryRecvError, glob_match,
};

/// How long a hang guard waits before declaring a deadlock. Generous: it
/// only turns a hang into a failure.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// Channel names used by the concurrent tests (shared by both namespaces).
const NAMES: [&[u8]; 6] = [b"a", b"b", b"ab", b"ba", b"", b"\x80"];

/// Patterns used by the concurrent tests; most match some of [`NAMES`].
const PATTERNS: [&[u8]; 6] = [b"a*", b"*", b"?", b"[ab]b", b"*a", b""];

/// How long churn and stress loops run: `TANNOY_STRESS_MS`, else
/// `default_ms`; a tenth of that under Miri.
fn stress_duration(default_ms: u64) -> Duration {
    let ms = std::env::var("TANNOY_STRESS_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_ms);
    Duration::from_millis(if cfg!(miri) { ms / 10 } else { ms })
}

/// Runs `f` on its own thread and returns its result, failing (instead of
/// hanging) if it does not finish within [`HANG_GUARD`]. A panic in `f` is
/// re-raised here.
fn guarded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    watchdog::guarded(HANG_GUARD, "deadlock: still running after the guard", f)
}

/// Compile-time checks: these only build if the bounds hold.
fn assert_thread_safety() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send_sync_clone::<Broker<Bytes>>();
    send_sync_clone::<Broker<Arc<String>>>();
    send::<Subscriber<Bytes>>();
    send::<Subscriber<Arc<String>>>();
    send_sync::<Message<Bytes>>();
}

/// `Broker<Bytes>` is `Send + Sync + Clone` and `Subscriber<Bytes>` is
/// `Send`, so brokers are shared and subscribers moved across threads.
#[test]
fn handles_are_thread_safe() {
    assert_thread_safety();
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["c"]);
    let shared = broker.clone();
    let moved = thread::spawn(move || {
        shared.publish("c", "from another thread");
        sub
    })
    .join()
    .unwrap();
    assert_eq!(moved.try_recv().unwrap().payload(), "from another thread");
}

/// Publishing from many threads while others subscribe, unsubscribe, read
/// and drop subscribers (of every overflow policy), and another inspects,
/// neither deadlocks nor panics; once every subscriber is gone the broker
/// is empty again.
#[test]
fn churn_neither_deadlocks_nor_panics() {
    let churn_for = stress_duration(2000);
    let broker = Broker::builder().queue_capacity(4).shards(4).build();
    let inspector = broker.clone();
    let leftovers = guarded(move || {
        let deadline = Instant::now() + churn_for;
        let mut threads = Vec::new();
        for id in 0..2u64 {
            let broker = broker.clone();
            threads.push(thread::spawn(move || {
                let mut rng = Rng::new(id);
                let mut published = 0u64;
                while Instant::now() < deadline {
                    let name = NAMES[rng.below(NAMES.len())];
                    if rng.one_in(5) {
                        broker.spublish(name, "s");
                    } else {
                        broker.publish(name, Bytes::from_static(b"p"));
                    }
                    published += 1;
                }
                assert!(published > 0);
            }));
        }
        for id in 0..2u64 {
            let broker = broker.clone();
            threads.push(thread::spawn(move || {
                let mut rng = Rng::new(100 + id);
                let mut alive: Vec<Subscriber> = Vec::new();
                while Instant::now() < deadline {
                    if alive.len() < 8 || rng.one_in(3) {
                        let policy = match rng.below(3) {
                            0 => OverflowPolicy::DropOldest,
                            1 => OverflowPolicy::DropNewest,
                            _ => OverflowPolicy::Disconnect,
                        };
                        alive.push(broker.subscriber_with(policy));
                    }
                    let at = rng.below(alive.len());
                    let sub = &mut alive[at];
                    let name = NAMES[rng.below(NAMES.len())];
                    let pattern = PATTERNS[rng.below(PATTERNS.len())];
                    match rng.below(9) {
                        0 => {
                            let _ = sub.subscribe([name, NAMES[rng.below(NAMES.len())]]);
                        }
                        1 => {
                            let _ = sub.psubscribe([pattern]);
                        }
                        2 => {
                            let _ = sub.ssubscribe([name]);
                        }
                        3 => {
                            let _ = sub.unsubscribe([name]);
                        }
                        4 => {
                            let _ = sub.punsubscribe([pattern]);
                        }
                        5 => {
                            sub.unsubscribe(std::iter::empty::<&[u8]>());
                            sub.punsubscribe(std::iter::empty::<&[u8]>());
                            sub.sunsubscribe(std::iter::empty::<&[u8]>());
                        }
                        6 => {
                            let _ = sub.try_iter().count();
                        }
                        7 => drop(alive.swap_remove(at)),
                        _ => {
                            let _ = (
                                sub.subscribed_channels(),
                                sub.subscribed_patterns(),
                                sub.dropped(),
                                sub.len(),
                            );
                        }
                    }
                }
            }));
        }
        {
            // A blocking receiver parks and wakes throughout the churn.
            let broker = broker.clone();
            threads.push(thread::spawn(move || {
                let sub = broker.subscriber();
                sub.psubscribe(["*"]);
                while Instant::now() < deadline {
                    match sub.recv_timeout(Duration::from_millis(1)) {
                        Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                        Err(err) => panic!("{err:?}"),
                    }
                }
            }));
        }
        threads.push(thread::spawn(move || {
            let mut rng = Rng::new(7);
            while Instant::now() < deadline {
                let pattern = PATTERNS[rng.below(PATTERNS.len())];
                let _ = inspector.channels(None);
                let _ = inspector.channels(pattern);
                let _ = inspector.shard_channels(None);
                let _ = inspector.numsub(NAMES);
                let _ = inspector.shard_numsub(NAMES);
                let _ = inspector.numpat();
            }
        }));
        for thread in threads {
            thread.join().unwrap();
        }
        (
            broker.channels(None),
            broker.shard_channels(None),
            broker.numpat(),
            broker.publish("a", "after"),
        )
    });
    assert_eq!(
        leftovers,
        (vec![], vec![], 0, 0),
        "all subscribers are gone"
    );
}

/// One publish as its publisher logged it.
#[derive(Clone, Copy, Debug)]
struct Published {
    /// Whether it was a `spublish`.
    shard: bool,
    /// Index into [`NAMES`].
    name: u8,
    /// Clock ticket taken just before the call.
    start: u64,
    /// Clock ticket taken just after it returned.
    end: u64,
    /// What the call returned.
    count: u32,
}

/// A fixed set of subscriptions, as indices into [`NAMES`] / [`PATTERNS`].
#[derive(Clone, Debug, Default)]
struct SubscriptionSet {
    /// Channels held.
    channels: BTreeSet<usize>,
    /// Patterns held.
    patterns: BTreeSet<usize>,
    /// Shard channels held.
    shards: BTreeSet<usize>,
}

impl SubscriptionSet {
    /// A random, non-empty set.
    fn random(rng: &mut Rng) -> Self {
        let mut set = Self::default();
        while set.channels.is_empty() && set.patterns.is_empty() && set.shards.is_empty() {
            for i in 0..NAMES.len() {
                if rng.one_in(4) {
                    set.channels.insert(i);
                }
                if rng.one_in(6) {
                    set.shards.insert(i);
                }
            }
            for i in 0..PATTERNS.len() {
                if rng.one_in(5) {
                    set.patterns.insert(i);
                }
            }
        }
        set
    }

    /// Subscribes `sub` to everything in the set.
    fn apply(&self, sub: &mut Subscriber) {
        sub.subscribe(self.channels.iter().map(|&i| NAMES[i]));
        sub.psubscribe(self.patterns.iter().map(|&i| PATTERNS[i]));
        sub.ssubscribe(self.shards.iter().map(|&i| NAMES[i]));
    }

    /// How many messages `publish` addresses to a holder of this set.
    fn addressed_by(&self, publish: &Published) -> u64 {
        self.addressed_by_kind(publish.shard, publish.name)
    }

    /// How many messages a `spublish` (if `shard`) or `publish` to
    /// `NAMES[name]` addresses to a holder of this set.
    fn addressed_by_kind(&self, shard: bool, name: u8) -> u64 {
        let name = usize::from(name);
        if shard {
            return u64::from(self.shards.contains(&name));
        }
        let by_pattern = self
            .patterns
            .iter()
            .filter(|&&p| glob_match(PATTERNS[p], NAMES[name]))
            .count();
        u64::from(self.channels.contains(&name)) + by_pattern as u64
    }
}

/// The payload of publisher `publisher`'s `seq`-th publish.
fn encode(publisher: u8, seq: u32, shard: bool, name: u8) -> Bytes {
    let mut bytes = vec![publisher, u8::from(shard), name, 0];
    bytes.extend_from_slice(&seq.to_le_bytes());
    Bytes::from(bytes)
}

/// A received message's claimed origin, decoded from its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Origin {
    /// Publisher id.
    publisher: u8,
    /// That publisher's sequence number.
    seq: u32,
    /// Whether it was a `spublish`.
    shard: bool,
    /// Index into [`NAMES`].
    name: u8,
}

/// Decodes [`encode`]'s payload.
fn decode(payload: &[u8]) -> Origin {
    assert_eq!(payload.len(), 8, "payload corrupted: {payload:?}");
    Origin {
        publisher: payload[0],
        shard: payload[1] == 1,
        name: payload[2],
        seq: u32::from_le_bytes(payload[4..8].try_into().unwrap()),
    }
}

/// What one subscriber saw, checked as it arrives.
struct Observer {
    /// What it holds.
    set: SubscriptionSet,
    /// Messages received.
    received: u64,
    /// The last `Message::seq` seen.
    last_seq: Option<u64>,
    /// Per publisher: the last publish seen and the kinds/patterns of it
    /// seen so far (exact = `None`, pattern = `Some(index)`).
    last_from: Vec<Option<(u32, BTreeSet<Option<usize>>)>>,
    /// Every origin received, checked against the publishers' logs later.
    origins: Vec<Origin>,
}

impl Observer {
    /// An observer of a holder of `set`, with `publishers` publishers.
    fn new(set: SubscriptionSet, publishers: usize) -> Self {
        Self {
            set,
            received: 0,
            last_seq: None,
            last_from: vec![None; publishers],
            origins: Vec::new(),
        }
    }

    /// Checks one received message: it was published to a channel this
    /// subscriber holds (or matching a pattern it holds), with the right
    /// kind; `seq` increases; each publisher's messages come in publish
    /// order, the exact copy before pattern copies, and nothing twice.
    fn observe(&mut self, msg: &Message) {
        let origin = decode(msg.payload());
        let name = usize::from(origin.name);
        assert_eq!(msg.channel(), NAMES[name], "channel differs from payload's");
        let via = match msg.kind() {
            MessageKind::Message => {
                assert!(!origin.shard, "a spublish arrived as a message");
                assert!(self.set.channels.contains(&name), "channel not held");
                None
            }
            MessageKind::SMessage => {
                assert!(origin.shard, "a publish arrived as an smessage");
                assert!(self.set.shards.contains(&name), "shard channel not held");
                None
            }
            MessageKind::PMessage => {
                assert!(!origin.shard, "a spublish reached a pattern");
                let pattern = msg.pattern().expect("pmessage without pattern");
                let index = PATTERNS
                    .iter()
                    .position(|p| pattern == p)
                    .expect("unknown pattern");
                assert!(self.set.patterns.contains(&index), "pattern not held");
                assert!(glob_match(pattern, msg.channel()), "pattern does not match");
                Some(index)
            }
            other => panic!("unexpected message kind {other:?}"),
        };
        if let Some(last) = self.last_seq {
            assert!(msg.seq() > last, "seq went from {last} to {}", msg.seq());
        }
        self.last_seq = Some(msg.seq());

        let from = &mut self.last_from[usize::from(origin.publisher)];
        match from {
            Some((seq, seen)) if *seq == origin.seq => {
                assert!(via.is_some(), "exact copy after a pattern copy: {origin:?}");
                assert!(seen.insert(via), "same copy twice: {origin:?}");
            }
            Some((seq, _)) if *seq > origin.seq => {
                panic!("publisher order broken: {} after {seq}", origin.seq)
            }
            _ => *from = Some((origin.seq, BTreeSet::from([via]))),
        }
        self.received += 1;
        self.origins.push(origin);
    }

    /// Checks the origins against the publishers' logs: each was really
    /// published, with that kind and channel.
    fn check_provenance(&self, logs: &[Vec<Published>]) {
        for origin in &self.origins {
            let log = &logs[usize::from(origin.publisher)];
            let publish = log
                .get(origin.seq as usize)
                .unwrap_or_else(|| panic!("never published: {origin:?}"));
            assert_eq!((publish.shard, publish.name), (origin.shard, origin.name));
        }
    }
}

/// A short-lived subscriber's record: its window on the clock and totals.
struct Visit {
    /// What it saw.
    observer: Observer,
    /// Clock before its subscribe calls.
    subscribe_start: u64,
    /// Clock after its subscribe calls returned.
    subscribe_end: u64,
    /// Clock before its unsubscribe-all calls.
    leave_start: u64,
    /// Clock after they returned.
    leave_end: u64,
    /// Received + dropped + queued once it had left (so nothing more
    /// could reach it).
    total: u64,
}

/// Unsubscribes `sub` from everything (after which no publish can reach
/// it), drains it into `observer`, and returns received + dropped +
/// queued, checking the queue ended empty.
fn leave_and_drain(sub: &mut Subscriber, observer: &mut Observer) -> u64 {
    sub.unsubscribe(std::iter::empty::<&[u8]>());
    sub.punsubscribe(std::iter::empty::<&[u8]>());
    sub.sunsubscribe(std::iter::empty::<&[u8]>());
    loop {
        match sub.try_recv() {
            Ok(msg) => observer.observe(&msg),
            Err(TryRecvError::Empty) => break,
            Err(err) => panic!("{err:?}"),
        }
    }
    assert_eq!(sub.len(), 0);
    observer.received + sub.dropped()
}

/// Stress: publishers, long-lived subscribers and short-lived subscribers
/// all at once, on 6 channels, 6 patterns and shard channels, with small
/// queues so drop-oldest works hard. Checks, per subscriber:
/// * addressed (from the publishers' logs) = received + dropped + queued,
///   exactly for long-lived ones and within the publishes that overlapped
///   their subscribe/unsubscribe for short-lived ones;
/// * every message was really published to a channel it held, by the
///   right kind of subscription, and nothing arrives twice;
/// * each publisher's messages arrive in publish order;
/// * with drop-oldest, the newest message is never lost;
///
/// and globally that the publish counts sum to what all subscribers got.
#[test]
fn stress_accounting_provenance_and_order() {
    const PUBLISHERS: usize = 3;
    const STABLE: usize = 3;
    const CHURNERS: usize = 2;
    /// Caps each publisher's log (memory) on fast machines.
    const MAX_PUBLISHES: u32 = 300_000;

    let run_for = stress_duration(3000);
    let broker = Broker::builder().queue_capacity(8).shards(8).build();
    let clock = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(PUBLISHERS + STABLE + CHURNERS + 1));
    let publishing = Arc::new(AtomicBool::new(true));

    let (logs, stable, visits) = guarded(move || {
        let mut stable_threads = Vec::new();
        for id in 0..STABLE {
            let mut sub = broker.subscriber();
            let (start, publishing) = (Arc::clone(&start), Arc::clone(&publishing));
            stable_threads.push(thread::spawn(move || {
                let mut rng = Rng::new(1000 + id as u64);
                let mut observer = Observer::new(SubscriptionSet::random(&mut rng), PUBLISHERS);
                observer.set.apply(&mut sub);
                start.wait();
                while publishing.load(Ordering::SeqCst) {
                    match sub.recv_timeout(Duration::from_millis(5)) {
                        Ok(msg) => observer.observe(&msg),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(err) => panic!("{err:?}"),
                    }
                    if rng.one_in(64) {
                        // Fall behind for a while so the queue overflows.
                        for _ in 0..rng.below(200) {
                            thread::yield_now();
                        }
                    }
                }
                let total = leave_and_drain(&mut sub, &mut observer);
                (observer, total, sub.overflow_policy())
            }));
        }

        let mut churn_threads = Vec::new();
        for id in 0..CHURNERS {
            let broker = broker.clone();
            let (start, publishing) = (Arc::clone(&start), Arc::clone(&publishing));
            let clock = Arc::clone(&clock);
            churn_threads.push(thread::spawn(move || {
                let mut rng = Rng::new(2000 + id as u64);
                let mut visits = Vec::new();
                start.wait();
                while publishing.load(Ordering::SeqCst) {
                    let mut observer = Observer::new(SubscriptionSet::random(&mut rng), PUBLISHERS);
                    let mut sub = broker.subscriber();
                    let subscribe_start = clock.fetch_add(1, Ordering::SeqCst);
                    observer.set.apply(&mut sub);
                    let subscribe_end = clock.fetch_add(1, Ordering::SeqCst);
                    for _ in 0..rng.below(300) {
                        match sub.try_recv() {
                            Ok(msg) => observer.observe(&msg),
                            Err(TryRecvError::Empty) => thread::yield_now(),
                            Err(err) => panic!("{err:?}"),
                        }
                    }
                    let leave_start = clock.fetch_add(1, Ordering::SeqCst);
                    let total = leave_and_drain(&mut sub, &mut observer);
                    let leave_end = clock.fetch_add(1, Ordering::SeqCst);
                    drop(sub);
                    visits.push(Visit {
                        observer,
                        subscribe_start,
                        subscribe_end,
                        leave_start,
                        leave_end,
                        total,
                    });
                }
                visits
            }));
        }

        let mut publisher_threads = Vec::new();
        for id in 0..PUBLISHERS {
            let broker = broker.clone();
            let start = Arc::clone(&start);
            let clock = Arc::clone(&clock);
            publisher_threads.push(thread::spawn(move || {
                let mut rng = Rng::new(3000 + id as u64);
                let mut log = Vec::new();
                start.wait();
                let deadline = Instant::now() + run_for;
                let mut seq = 0u32;
                while seq < MAX_PUBLISHES && Instant::now() < deadline {
                    let name = rng.below(NAMES.len()) as u8;
                    let shard = rng.one_in(6);
                    let payload = encode(id as u8, seq, shard, name);
                    let channel = NAMES[usize::from(name)];
                    let start = clock.fetch_add(1, Ordering::SeqCst);
                    let count = if shard {
                        broker.spublish(channel, payload)
                    } else {
                        broker.publish(channel, payload)
                    };
                    let end = clock.fetch_add(1, Ordering::SeqCst);
                    if rng.one_in(4) {
                        // Let readers run too (2 cores, 8 threads).
                        thread::yield_now();
                    }
                    log.push(Published {
                        shard,
                        name,
                        start,
                        end,
                        count: count as u32,
                    });
                    seq += 1;
                }
                log
            }));
        }

        start.wait();
        let logs: Vec<Vec<Published>> = publisher_threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        publishing.store(false, Ordering::SeqCst);
        let stable: Vec<_> = stable_threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let visits: Vec<Visit> = churn_threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        (logs, stable, visits)
    });

    let all_publishes = || logs.iter().flatten();
    assert!(all_publishes().count() > 0);

    // How many publishes went to each (kind, name), for the long-lived
    // subscribers, which were addressed by every publish.
    let mut per_kind = [[0u64; NAMES.len()]; 2];
    for publish in all_publishes() {
        per_kind[usize::from(publish.shard)][usize::from(publish.name)] += 1;
    }
    let mut delivered_to_someone = 0u64;
    for (observer, total, policy) in &stable {
        observer.check_provenance(&logs);
        let mut addressed = 0;
        for (shard, counts) in per_kind.iter().enumerate() {
            for (name, n) in counts.iter().enumerate() {
                addressed += n * observer.set.addressed_by_kind(shard == 1, name as u8);
            }
        }
        assert_eq!(
            *total, addressed,
            "long-lived subscriber: received + dropped + queued != addressed ({:?})",
            observer.set
        );
        if *policy == OverflowPolicy::DropOldest && addressed > 0 {
            assert_eq!(
                observer.last_seq,
                Some(addressed - 1),
                "drop-oldest lost the newest message"
            );
        }
        delivered_to_someone += total;
    }
    for visit in &visits {
        visit.observer.check_provenance(&logs);
        let set = &visit.observer.set;
        let mut surely = 0;
        let mut maybe = 0;
        for log in &logs {
            // Each log is ordered by both tickets, so only publishes in
            // this window can overlap the visit.
            let first = log.partition_point(|p| p.end <= visit.subscribe_start);
            let last = log.partition_point(|p| p.start < visit.leave_end);
            for publish in &log[first..last.max(first)] {
                let n = set.addressed_by(publish);
                if publish.start > visit.subscribe_end && publish.end < visit.leave_start {
                    surely += n;
                }
                if publish.end > visit.subscribe_start && publish.start < visit.leave_end {
                    maybe += n;
                }
            }
        }
        assert!(
            (surely..=maybe).contains(&visit.total),
            "short-lived subscriber got {} but was addressed between {surely} and {maybe}",
            visit.total
        );
        for origin in &visit.observer.origins {
            let publish = &logs[usize::from(origin.publisher)][origin.seq as usize];
            assert!(
                publish.end > visit.subscribe_start && publish.start < visit.leave_end,
                "received a publish from outside its lifetime: {origin:?}"
            );
        }
        delivered_to_someone += visit.total;
    }
    let counted: u64 = all_publishes().map(|p| u64::from(p.count)).sum();
    let received: u64 = stable.iter().map(|(o, ..)| o.received).sum::<u64>()
        + visits.iter().map(|v| v.observer.received).sum::<u64>();
    eprintln!(
        "stress: {} publishes, {counted} deliveries, {received} received, {} short-lived subscribers",
        all_publishes().count(),
        visits.len()
    );
    assert_eq!(
        counted, delivered_to_someone,
        "publish counts must sum to what subscribers received, dropped or held"
    );
    assert!(!visits.is_empty(), "no short-lived subscriber ran");
    assert!(
        stable.iter().any(|(o, ..)| o.received > 0),
        "stress too weak: nothing received"
    );
}

/// Redis serialises publishes, so subscribers of one channel receive
/// concurrent publishers' messages in the same relative order (spec §3.4:
/// two publishers, two subscribers, identical sequences; checklist item 3).
/// Checked with four publishers, eight exact subscribers and one pattern
/// subscriber, each subscriber read by its own thread as a consumer would
/// be (more threads than cores, so fan-outs get preempted midway).
#[test]
fn subscribers_of_one_channel_agree_on_the_order_of_concurrent_publishes() {
    const PUBLISHERS: u8 = 4;
    const EXACT: usize = 8;
    let per_publisher: u32 = if cfg!(miri) { 50 } else { 10_000 };
    let rounds = if cfg!(miri) { 1 } else { 2 };
    for round in 0..rounds {
        let total = usize::from(PUBLISHERS) * per_publisher as usize;
        // Room for everything: no drop may blur the comparison.
        let broker = Broker::builder().queue_capacity(total).build();
        let mut readers = Vec::new();
        for i in 0..=EXACT {
            let sub = broker.subscriber();
            if i < EXACT {
                sub.subscribe(["c"]);
            } else {
                sub.psubscribe(["c*"]);
            }
            readers.push(thread::spawn(move || {
                let order: Vec<Origin> = sub.iter().map(|m| decode(m.payload())).collect();
                (order, sub.dropped())
            }));
        }
        let start = Arc::new(Barrier::new(usize::from(PUBLISHERS)));
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|id| {
                let broker = broker.clone();
                let start = Arc::clone(&start);
                thread::spawn(move || {
                    start.wait();
                    for seq in 0..per_publisher {
                        broker.publish("c", encode(id, seq, false, 0));
                    }
                })
            })
            .collect();
        let orders = guarded(move || {
            publishers.into_iter().for_each(|t| t.join().unwrap());
            broker.close();
            readers
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect::<Vec<_>>()
        });

        for (i, (order, dropped)) in orders.iter().enumerate() {
            assert_eq!((order.len(), *dropped), (total, 0), "subscriber {i}");
            let first_difference = orders[0].0.iter().zip(order).position(|(l, r)| l != r);
            assert_eq!(
                first_difference, None,
                "round {round}: subscriber {i} (of {EXACT} exact + 1 pattern) saw the \
                 same publishes in a different order than subscriber 0"
            );
        }
    }
}

/// A payload that can pause the publishing thread in the middle of a
/// fan-out, as a slow `Clone` or `Drop` (or plain preemption) may, so a test
/// can run another publish at exactly that point.
struct Pausing {
    /// Which publish this is.
    id: u8,
    /// Where this value pauses, if anywhere. Copies never pause.
    pause: Option<(PauseOn, Arc<Pause>)>,
}

/// Which of a [`Pausing`] payload's trait methods pauses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PauseOn {
    /// Each `clone` of the original.
    Clone,
    /// The original's `drop` (say, evicted by a later publish).
    Drop,
}

/// What the publishing thread reports to the test.
enum Event {
    /// A payload paused; the test must send on `resume`.
    Paused,
    /// Publish A returned this count.
    Done(usize),
}

/// The shared side of a [`Pausing`] payload's pause.
struct Pause {
    /// Pauses happen only while armed.
    armed: AtomicBool,
    /// Where pauses are reported.
    events: std::sync::Mutex<mpsc::Sender<Event>>,
    /// Waited on before a paused call returns.
    resume: std::sync::Mutex<mpsc::Receiver<()>>,
}

impl Pausing {
    /// Pauses if this value pauses on `on` and the pause is armed.
    fn maybe_pause(&self, on: PauseOn) {
        if let Some((when, pause)) = &self.pause {
            if *when == on && pause.armed.load(Ordering::SeqCst) {
                pause.events.lock().unwrap().send(Event::Paused).unwrap();
                pause.resume.lock().unwrap().recv().unwrap();
            }
        }
    }
}

impl Clone for Pausing {
    fn clone(&self) -> Self {
        self.maybe_pause(PauseOn::Clone);
        Self {
            id: self.id,
            pause: None,
        }
    }
}

impl Drop for Pausing {
    fn drop(&mut self) {
        self.maybe_pause(PauseOn::Drop);
    }
}

/// Publish A (to channel `c`) is paused after reaching some of `subs` but
/// not all, and publish B to `c` then runs from another thread. Redis would
/// order one of them first for everybody; here too every subscriber must
/// see A and B in the same order (spec §3.4).
///
/// `setup` subscribes and may pre-fill queues, using `pause` for payloads
/// that should pause; A itself pauses on `a_pauses_on`. If the fan-out has
/// no pause point between receivers, B simply runs after A.
fn one_order_with_a_paused_fan_out(
    capacity: usize,
    a_pauses_on: PauseOn,
    setup: fn(&Broker<Pausing>, &Arc<Pause>) -> Vec<Subscriber<Pausing>>,
) {
    let broker = BrokerBuilder::<Pausing>::new()
        .queue_capacity(capacity)
        .build();
    let (events, event) = mpsc::channel();
    let (resume, resumed) = mpsc::channel();
    let pause = Arc::new(Pause {
        armed: AtomicBool::new(false),
        events: std::sync::Mutex::new(events.clone()),
        resume: std::sync::Mutex::new(resumed),
    });
    let subs = setup(&broker, &pause);
    // What each subscriber held before A, to tell whether A reached it.
    let before: Vec<(usize, u64)> = subs.iter().map(|s| (s.len(), s.dropped())).collect();
    let reached = |subs: &[Subscriber<Pausing>]| {
        subs.iter()
            .zip(&before)
            .filter(|(s, (len, dropped))| s.len() > *len || s.dropped() > *dropped)
            .count()
    };

    pause.armed.store(true, Ordering::SeqCst);
    let a_payload = Pausing {
        id: b'A',
        pause: Some((a_pauses_on, Arc::clone(&pause))),
    };
    let a = {
        let broker = broker.clone();
        thread::spawn(move || {
            let n = broker.publish("c", a_payload);
            events.send(Event::Done(n)).unwrap();
        })
    };
    let mut b = None;
    let a_count = loop {
        match event.recv_timeout(HANG_GUARD).expect("publish A hung") {
            Event::Done(n) => break n,
            Event::Paused => {
                let n = reached(&subs);
                if b.is_none() && n > 0 && n < subs.len() {
                    let broker = broker.clone();
                    let (done, is_done) = mpsc::channel();
                    b = Some(thread::spawn(move || {
                        let n = broker.publish(
                            "c",
                            Pausing {
                                id: b'B',
                                pause: None,
                            },
                        );
                        let _ = done.send(());
                        n
                    }));
                    // If B cannot finish while A is paused (A holds a lock B
                    // needs), let A go on: B then comes second everywhere.
                    // Too short a wait can only hide the bug, never fake it.
                    let _ = is_done.recv_timeout(Duration::from_secs(1));
                }
                resume.send(()).unwrap();
            }
        }
    };
    pause.armed.store(false, Ordering::SeqCst);
    a.join().unwrap();
    assert_eq!(a_count, subs.len());
    let b_count = match b {
        Some(b) => b.join().unwrap(),
        None => broker.publish(
            "c",
            Pausing {
                id: b'B',
                pause: None,
            },
        ),
    };
    assert_eq!(b_count, subs.len());

    let orders: Vec<String> = subs
        .iter()
        .map(|s| {
            s.try_iter()
                .map(|m| char::from(m.payload().id))
                .filter(|id| "AB".contains(*id))
                .collect()
        })
        .collect();
    for order in &orders {
        assert_eq!(order.len(), 2, "lost a message: {orders:?}");
        assert_eq!(
            order, &orders[0],
            "subscribers disagree on the order of two publishes"
        );
    }
}

/// Three exact subscribers of one channel see two overlapping publishes in
/// one order. A pauses when its delivery to the first subscriber evicts
/// that subscriber's oldest message (whose `Drop` pauses).
#[test]
fn exact_subscribers_see_overlapping_publishes_in_one_order() {
    one_order_with_a_paused_fan_out(2, PauseOn::Clone, |broker, pause| {
        let first = broker.subscriber();
        first.subscribe(["c", "x"]);
        broker.publish(
            "x",
            Pausing {
                id: b'x',
                pause: Some((PauseOn::Drop, Arc::clone(pause))),
            },
        );
        broker.publish(
            "x",
            Pausing {
                id: b'y',
                pause: None,
            },
        );
        let mut subs = vec![first];
        for _ in 0..2 {
            let sub = broker.subscriber();
            sub.subscribe(["c"]);
            subs.push(sub);
        }
        subs
    });
}

/// An exact and a pattern subscriber of one channel see two overlapping
/// publishes in one order. A pauses in each clone of its payload (the
/// pattern delivery needs one after the exact delivery is done).
#[test]
fn exact_and_pattern_subscribers_see_overlapping_publishes_in_one_order() {
    one_order_with_a_paused_fan_out(16, PauseOn::Clone, |broker, _| {
        let exact = broker.subscriber();
        exact.subscribe(["c"]);
        let pattern = broker.subscriber();
        pattern.psubscribe(["c*"]);
        vec![exact, pattern]
    });
}
