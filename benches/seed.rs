//! The seed's workload: tannoy against the pub/sub map Rust users write by
//! hand, on one realistic fan-out workload, in the same run.
//!
//! **Workload** (`support/seed_workload.rs`, all seeded): 10,000 channels
//! (`conversations:new`, `ai:predictions:ready`, `ai:conversations:{id}`,
//! `ai:models:{model}:status`, `ml:models:{model}:status`,
//! `ai:{model}:predictions`, `tenant{t}:{collection}:events`, ...) ranked
//! by a Zipf(1.1) popularity; 20,000 subscribers (then 100,000), each
//! holding 1-3 distinct channels drawn from that popularity, and one in
//! five also holding one of 200 patterns (`ai:conversations:*`,
//! `ml:models:*:status`, `ai:*:predictions`, `tenant42:*`, ...). Two
//! publisher threads publish 64-byte payloads to Zipf-drawn channels: the
//! channel sequence is drawn beforehand and each publish clones a payload
//! made beforehand, so the bench allocates nothing per publish. Two
//! consumer threads sweep their half of the subscribers with `try_recv`
//! until each is empty, again and again. Queues hold 1,024 messages. A
//! publisher never gets more than [`WINDOW`] publishes ahead of the
//! consumers' last full sweep, so no queue can overflow on either side
//! however the threads are scheduled, and the run checks that none did.
//! One criterion iteration is one burst: a fixed sequence of publishes per
//! publisher, timed from the first publish to the last receive.
//!
//! **Peer** (`support/seed_peer.rs`): tokio's mini-redis shape, one lock
//! around a `HashMap<Bytes, broadcast::Sender<Bytes>>` with one tokio
//! broadcast channel (capacity 1,024) per subscribed channel name, and
//! patterns as a list of (pattern, broadcast channel) scanned with
//! [`tannoy::glob_match`] on every publish. A peer subscriber holds one
//! receiver per channel and one per pattern, and the consumers sweep each
//! with `try_recv`. The lock is `std::sync::RwLock` by default, the faster
//! of the two on an AMD EPYC family 25 model 1 (2 vCPUs): in two runs the
//! same peer with a `Mutex` delivered 0.82-0.84x as much at 20,000
//! subscribers and 0.82-0.88x at 100,000 (with `RwLock` the two publishers
//! look up under a shared lock). Set
//! `TANNOY_SEED_PEER_LOCK=mutex` to measure the `Mutex` instead, or
//! `=both` for both.
//!
//! **Checked inside every timed burst**, so a fast wrong answer cannot
//! pass: each `publish` returns exactly the receivers the plan says it
//! reaches; the sum of `publish` returns equals received + dropped + still
//! queued over all subscribers, and nothing was dropped or left queued; at
//! 100 sampled subscribers each publisher's messages arrive in publish
//! order (for tannoy across all of the subscriber's channels, with `seq`
//! counting up by one; the peer keeps no order across its receivers, so
//! there it is checked per receiver). A violation panics saying what went
//! wrong.
//!
//! **One step alone**: the `seed_drain` group takes the threads away. One
//! thread publishes one window of the same plan (20,000 subscribers) and
//! then drains every subscriber, so its throughput is the receive side's
//! cost per delivery (plus the publishes) with no scheduling in it; run it
//! alone with `cargo bench -p tannoy-benches --bench seed -- seed_drain`.
//!
//! **Run**: `cargo bench -p tannoy-benches --bench seed` (under three
//! minutes). `TANNOY_BENCH_QUICK=1` runs only 20,000 subscribers with short
//! bursts, a short measurement and two rounds, as a smoke test; so does
//! `cargo test -p tannoy-benches --bench seed`, all checks included.
//!
//! **Reading the output**: criterion's `thrpt` for
//! `seed_workload/<side>/<subscribers>` is deliveries per second (a publish
//! counts once per receiver it reached). After criterion has timed each
//! side, nine more bursts per side run interleaved (tannoy, peer, peer,
//! tannoy, ...), so the two are compared moments apart on a machine whose
//! load may drift. Then a table prints, per side: deliveries per second
//! over every burst run (warm-up included) and the median of the
//! interleaved rounds; publish latency p50 / p99 / max (each `publish`
//! call timed alone, over every burst); heap bytes held after subscribing
//! everything and after the runs (a counting allocator sees every
//! allocation; the bench's own records are left out); heap allocations per
//! publish in the last burst. The last row is tannoy / peer of each column
//! (the rounds column is the median of the per-round ratios); for
//! deliveries per second above 1 is better for tannoy, for the others
//! below 1 is.

use std::alloc::System;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group,
    measurement::WallTime,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tannoy::{Broker, Subscriber, TryRecvError};
use tannoy_test_support::{cpu, quick};

#[path = "support/workload.rs"]
mod workload;

#[path = "support/seed_workload.rs"]
mod seed_workload;

#[path = "support/seed_peer.rs"]
mod seed_peer;

use seed_peer::{Peer, PeerLock, PeerState, PeerSubscriber};
use seed_workload::{CHANNELS, PATTERNS, Plan, decode, payloads};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Publisher threads.
const PUBLISHERS: usize = 2;

/// Consumer threads; each sweeps its share of the subscribers.
const CONSUMERS: usize = 2;

/// Capacity of every queue: a tannoy subscriber's, a broadcast channel's.
const QUEUE_CAPACITY: usize = 1024;

/// How many of its publishes a publisher may have made that the consumers'
/// last full sweep has not yet covered. A publish puts at most two
/// messages in a subscriber's queue (one for its channel, one for its
/// pattern) and one in a broadcast channel, so with two publishers no
/// queue ever holds more than `2 * 2 * WINDOW = 960 < 1,024` messages.
const WINDOW: u64 = 240;

/// Subscribers whose order is checked, spread evenly.
const SAMPLED: usize = 100;

/// The longest a burst may take before the run is declared stuck.
const STUCK: Duration = Duration::from_secs(120);

/// Heap bytes held now, as counted by the allocator.
fn heap() -> i64 {
    let stats = GLOBAL.stats();
    stats.bytes_allocated as i64 - stats.bytes_deallocated as i64
}

/// Heap allocations made so far.
fn allocations() -> u64 {
    let stats = GLOBAL.stats();
    (stats.allocations + stats.reallocations) as u64
}

/// Per sampled subscriber, what arrived last, to check order.
#[derive(Clone)]
struct OrderCheck {
    /// The subscriber's index, for messages.
    subscriber: usize,
    /// Per stream (tannoy: exact or pattern; peer: receiver) and
    /// publisher, the last publish index received in this burst.
    last: Vec<[Option<u64>; PUBLISHERS]>,
    /// Per publisher, the last index received on any stream (tannoy only:
    /// its one queue keeps a publisher's order across channels).
    any: [Option<u64>; PUBLISHERS],
    /// The `seq` the next tannoy message must carry.
    next_seq: u64,
}

impl OrderCheck {
    /// A check for `subscriber` with `streams` streams.
    fn new(subscriber: usize, streams: usize) -> Self {
        Self {
            subscriber,
            last: vec![[None; PUBLISHERS]; streams],
            any: [None; PUBLISHERS],
            next_seq: 0,
        }
    }

    /// Forgets the indices of the previous burst, whose payloads the next
    /// one reuses (`seq` goes on counting).
    fn new_burst(&mut self) {
        self.last.iter_mut().for_each(|l| *l = [None; PUBLISHERS]);
        self.any = [None; PUBLISHERS];
    }

    /// Checks a payload arriving on `stream`: its publisher's index must
    /// exceed the last one on that stream.
    fn stream(&mut self, side: &str, stream: usize, payload: &[u8]) -> (usize, u64) {
        let (publisher, index) = decode(payload);
        let last = &mut self.last[stream][publisher];
        if let Some(prev) = *last {
            assert!(
                index > prev,
                "{side}: publisher {publisher}'s publish {index} arrived after its publish \
                 {prev} on stream {stream} of subscriber {}",
                self.subscriber
            );
        }
        *last = Some(index);
        (publisher, index)
    }

    /// Checks tannoy's order across all of a subscriber's streams (a
    /// channel and a pattern both matching deliver one publish twice, so
    /// equal is allowed) and its `seq`.
    fn across(&mut self, publisher: usize, index: u64, seq: u64) {
        if let Some(prev) = self.any[publisher] {
            assert!(
                index >= prev,
                "tannoy: publisher {publisher}'s publish {index} arrived after its publish \
                 {prev} at subscriber {} (across its channels)",
                self.subscriber
            );
        }
        self.any[publisher] = Some(index);
        assert_eq!(
            seq, self.next_seq,
            "tannoy: subscriber {} received seq {seq} where {} was next, with nothing dropped",
            self.subscriber, self.next_seq
        );
        self.next_seq += 1;
    }
}

/// What a sweep of one subscriber found.
#[derive(Clone, Copy, Default)]
struct Drained {
    /// Messages received.
    received: u64,
    /// Messages the receive side reported lost (the peer's `Lagged`).
    lost: u64,
}

impl std::ops::AddAssign for Drained {
    fn add_assign(&mut self, other: Self) {
        self.received += other.received;
        self.lost += other.lost;
    }
}

/// One contender: how to publish, receive and count.
trait Side: Sync {
    /// A subscriber handle.
    type Sub: Send;
    /// Name in the output.
    fn name(&self) -> String;
    /// Publishes `payload` to `channel`; returns the receivers reached.
    fn publish(&self, channel: &[u8], payload: Bytes) -> usize;
    /// Receives everything queued at `sub`.
    fn drain(sub: &mut Self::Sub) -> Drained;
    /// The same, checking order with `check`.
    fn drain_checked(sub: &mut Self::Sub, check: &mut OrderCheck) -> Drained;
    /// Messages `sub` has lost that [`drain`](Side::drain) did not
    /// report, and messages still queued.
    fn lost_and_queued(sub: &Self::Sub) -> (u64, u64);
    /// How many order streams `sub` has.
    fn streams(sub: &Self::Sub) -> usize;
}

/// tannoy: one `Broker`.
struct Tannoy(Broker);

impl Side for Tannoy {
    type Sub = Subscriber;

    fn name(&self) -> String {
        "tannoy".into()
    }

    fn publish(&self, channel: &[u8], payload: Bytes) -> usize {
        self.0.publish(channel, payload)
    }

    fn drain(sub: &mut Subscriber) -> Drained {
        drain_tannoy(sub, |_| {})
    }

    fn drain_checked(sub: &mut Subscriber, check: &mut OrderCheck) -> Drained {
        drain_tannoy(sub, |message| {
            let stream = usize::from(message.pattern().is_some());
            let (publisher, index) = check.stream("tannoy", stream, message.payload());
            check.across(publisher, index, message.seq());
        })
    }

    fn lost_and_queued(sub: &Subscriber) -> (u64, u64) {
        (sub.dropped(), sub.len() as u64)
    }

    fn streams(_: &Subscriber) -> usize {
        2
    }
}

impl<L: PeerLock<PeerState>> Side for Peer<L> {
    type Sub = PeerSubscriber;

    fn name(&self) -> String {
        let lock = std::any::type_name::<L>();
        let lock = if lock.contains("Mutex") {
            "mutex"
        } else {
            "rwlock"
        };
        format!("peer_{lock}")
    }

    fn publish(&self, channel: &[u8], payload: Bytes) -> usize {
        Peer::publish(self, channel, payload)
    }

    fn drain(sub: &mut PeerSubscriber) -> Drained {
        drain_peer(sub, |_, _| {})
    }

    fn drain_checked(sub: &mut PeerSubscriber, check: &mut OrderCheck) -> Drained {
        drain_peer(sub, |stream, payload| {
            check.stream("peer", stream, payload);
        })
    }

    fn lost_and_queued(sub: &PeerSubscriber) -> (u64, u64) {
        (0, sub.receivers.iter().map(|rx| rx.len() as u64).sum())
    }

    fn streams(sub: &PeerSubscriber) -> usize {
        sub.receivers.len()
    }
}

/// Receives everything queued for a tannoy subscriber, showing each
/// message to `seen` first.
fn drain_tannoy(sub: &mut Subscriber, mut seen: impl FnMut(&tannoy::Message)) -> Drained {
    let mut received = 0;
    loop {
        match sub.try_recv() {
            Ok(message) => {
                seen(&message);
                black_box(message);
                received += 1;
            }
            Err(TryRecvError::Empty) => break,
            Err(e) => panic!("tannoy: try_recv failed during the run: {e}"),
        }
    }
    Drained { received, lost: 0 }
}

/// Receives everything queued in each of a peer subscriber's receivers,
/// showing each payload to `seen` with its receiver's index first, and
/// counts what the receivers lagged past.
fn drain_peer(sub: &mut PeerSubscriber, mut seen: impl FnMut(usize, &[u8])) -> Drained {
    use tokio::sync::broadcast::error::TryRecvError;
    let mut drained = Drained::default();
    for (stream, rx) in sub.receivers.iter_mut().enumerate() {
        loop {
            match rx.try_recv() {
                Ok(payload) => {
                    seen(stream, &payload);
                    black_box(payload);
                    drained.received += 1;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(n)) => drained.lost += n,
                Err(e) => panic!("peer: try_recv failed during the run: {e}"),
            }
        }
    }
    drained
}

/// An atomic on its own cache line (two, against adjacent-line prefetch),
/// so the pacing counters do not share lines with each other.
#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

/// The counters publishers and consumers pace each other with in a burst.
#[derive(Default)]
struct Pacing {
    /// Per publisher, publishes completed.
    completed: [Padded; PUBLISHERS],
    /// Per consumer and publisher, that publisher's completed count read
    /// at the start of the consumer's last full sweep: everything those
    /// publishes delivered to the consumer's subscribers was received.
    covered: [[Padded; PUBLISHERS]; CONSUMERS],
    /// Publishers finished.
    done: Padded,
    /// Set when a thread of the burst panics, so the others stop.
    abort: AtomicBool,
}

impl Pacing {
    /// Publisher `p`'s publishes covered by both consumers.
    fn covered(&self, p: usize) -> u64 {
        self.covered
            .iter()
            .map(|c| c[p].0.load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
    }
}

/// Sets [`Pacing::abort`] if its thread unwinds.
struct AbortOnPanic<'a>(&'a AtomicBool);

impl Drop for AbortOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.store(true, Ordering::Release);
        }
    }
}

/// A contender built from a plan, with what its bursts accumulated.
struct Contender<S: Side> {
    /// The broker or peer.
    side: S,
    /// Its subscribers, in plan order.
    subs: Vec<S::Sub>,
    /// Order checks of the sampled subscribers, `SAMPLED / CONSUMERS` per
    /// consumer's share.
    checks: Vec<OrderCheck>,
    /// Every `stride`-th subscriber is sampled.
    stride: usize,
    /// Heap bytes the side held once everything was subscribed.
    heap_subscribed: i64,
    /// Per publisher, the latency of each publish of the current burst.
    burst_latencies: Vec<Vec<u64>>,
    /// Latencies of every publish of every burst, in nanoseconds.
    latencies: Vec<u64>,
    /// Sum of `publish` returns, over every burst.
    returned: u64,
    /// Messages received, over every burst.
    received: u64,
    /// Messages the receive side reported lost, over every burst.
    lost: u64,
    /// Time of every burst.
    elapsed: Duration,
    /// Heap allocations made during the last burst (queues have grown
    /// by then, so this is what publishing and receiving allocate).
    allocations: u64,
    /// Bursts run.
    bursts: u64,
}

impl<S: Side> Contender<S> {
    /// Builds the subscribers of `plan` on `side`, made by `build` (the
    /// counted heap includes what `build` allocates).
    fn new(
        plan: &Plan,
        build: impl FnOnce() -> S,
        subscribe: impl Fn(&S, usize) -> S::Sub,
    ) -> Self {
        let n = plan.subscribers.len();
        assert!(
            n % (SAMPLED * CONSUMERS) == 0,
            "subscriber count must split evenly"
        );
        let heap_before = heap();
        let side = build();
        let subs: Vec<S::Sub> = (0..n).map(|i| subscribe(&side, i)).collect();
        let heap_subscribed = heap() - heap_before;
        let stride = n / SAMPLED;
        let checks = (0..SAMPLED)
            .map(|k| OrderCheck::new(k * stride, S::streams(&subs[k * stride])))
            .collect();
        let burst_latencies = plan
            .publishes
            .iter()
            .map(|seq| vec![0; seq.len()])
            .collect();
        Self {
            side,
            subs,
            checks,
            stride,
            heap_subscribed,
            burst_latencies,
            latencies: Vec::new(),
            returned: 0,
            received: 0,
            lost: 0,
            elapsed: Duration::ZERO,
            allocations: 0,
            bursts: 0,
        }
    }

    /// Runs one burst: both publishers publish their sequence, paced by the
    /// consumers, while both consumers sweep until everything is received.
    /// Returns the time from the first publish to the last receive, then
    /// checks the burst's accounting and loss.
    fn burst(&mut self, plan: &Plan, payloads: &[Vec<Bytes>]) -> Duration {
        let name = self.side.name();
        let pacing = Pacing::default();
        let barrier = Barrier::new(PUBLISHERS + CONSUMERS);
        let alloc_start = AtomicU64::new(0);
        self.checks.iter_mut().for_each(OrderCheck::new_burst);
        let share = self.subs.len() / CONSUMERS;
        let checks_per_share = SAMPLED / CONSUMERS;
        let stride = self.stride;
        let side = &self.side;

        let (starts, published, ends) = thread::scope(|scope| {
            let publishers: Vec<_> = self
                .burst_latencies
                .iter_mut()
                .enumerate()
                .map(|(p, latencies)| {
                    let (pacing, barrier, alloc_start) = (&pacing, &barrier, &alloc_start);
                    let (channels, expected) = (&plan.publishes[p], &plan.receivers[p]);
                    let (names, payloads, name) = (&plan.channels, &payloads[p], &name);
                    scope.spawn(move || {
                        let _guard = AbortOnPanic(&pacing.abort);
                        barrier.wait();
                        if p == 0 {
                            alloc_start.store(allocations(), Ordering::Relaxed);
                        }
                        let start = Instant::now();
                        let mut returned = 0u64;
                        let mut wrong = None;
                        for (i, &channel) in channels.iter().enumerate() {
                            while i as u64 - pacing.covered(p) >= WINDOW {
                                assert!(
                                    !pacing.abort.load(Ordering::Acquire),
                                    "another thread of the burst failed"
                                );
                                assert!(start.elapsed() < STUCK, "{name}: consumers stalled");
                                thread::yield_now();
                            }
                            let payload = payloads[i].clone();
                            let t = Instant::now();
                            let reached = side.publish(&names[channel as usize], payload);
                            latencies[i] = t.elapsed().as_nanos() as u64;
                            returned += reached as u64;
                            if reached as u64 != expected[i] && wrong.is_none() {
                                wrong = Some((i, reached));
                            }
                            pacing.completed[p].0.store(i as u64 + 1, Ordering::Release);
                        }
                        pacing.done.0.fetch_add(1, Ordering::Release);
                        if let Some((i, reached)) = wrong {
                            panic!(
                                "{name}: publisher {p}'s publish {i} to {:?} reached {reached} \
                                 receivers; its subscribers number {}",
                                names[channels[i] as usize], expected[i]
                            );
                        }
                        (start, returned)
                    })
                })
                .collect();

            let consumers: Vec<_> = self
                .subs
                .chunks_mut(share)
                .zip(self.checks.chunks_mut(checks_per_share))
                .enumerate()
                .map(|(c, (subs, checks))| {
                    let (pacing, barrier, name) = (&pacing, &barrier, &name);
                    scope.spawn(move || {
                        let _guard = AbortOnPanic(&pacing.abort);
                        barrier.wait();
                        let start = Instant::now();
                        let mut drained = Drained::default();
                        loop {
                            let done = pacing.done.0.load(Ordering::Acquire) == PUBLISHERS as u64;
                            let snapshot: [u64; PUBLISHERS] = std::array::from_fn(|p| {
                                pacing.completed[p].0.load(Ordering::Acquire)
                            });
                            let mut checks = checks.iter_mut();
                            let mut next_check = checks.next();
                            for (k, sub) in subs.iter_mut().enumerate() {
                                let swept = match next_check.as_deref_mut() {
                                    Some(check) if k % stride == 0 => {
                                        let swept = S::drain_checked(sub, check);
                                        next_check = checks.next();
                                        swept
                                    }
                                    _ => S::drain(sub),
                                };
                                drained += swept;
                            }
                            for (p, &seen) in snapshot.iter().enumerate() {
                                pacing.covered[c][p].0.store(seen, Ordering::Release);
                            }
                            if done {
                                break;
                            }
                            assert!(
                                !pacing.abort.load(Ordering::Acquire),
                                "another thread of the burst failed"
                            );
                            assert!(start.elapsed() < STUCK, "{name}: publishers stalled");
                        }
                        (Instant::now(), allocations(), drained)
                    })
                })
                .collect();

            let published: Vec<_> = publishers
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect();
            let ends: Vec<_> = consumers
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect();
            let starts: Vec<Instant> = published.iter().map(|(s, _)| *s).collect();
            (starts, published, ends)
        });

        let start = starts.into_iter().min().expect("publishers ran");
        let end = ends
            .iter()
            .map(|(e, _, _)| *e)
            .max()
            .expect("consumers ran");
        let elapsed = end - start;
        let alloc_end = ends.iter().map(|(_, a, _)| *a).max().unwrap_or(0);
        self.allocations = alloc_end.saturating_sub(alloc_start.load(Ordering::Relaxed));
        self.returned += published.iter().map(|(_, r)| r).sum::<u64>();
        for (_, _, drained) in &ends {
            self.received += drained.received;
            self.lost += drained.lost;
        }
        for l in &self.burst_latencies {
            self.latencies.extend_from_slice(l);
        }
        self.elapsed += elapsed;
        self.bursts += 1;
        self.check_accounting(plan);
        elapsed
    }

    /// Exact accounting over every burst so far: the sum of `publish`
    /// returns is what was received plus what was lost plus what is still
    /// queued; and nothing was lost or left queued.
    fn check_accounting(&self, plan: &Plan) {
        let name = self.side.name();
        let (mut lost, mut queued) = (self.lost, 0);
        for sub in &self.subs {
            let (l, q) = S::lost_and_queued(sub);
            lost += l;
            queued += q;
        }
        assert_eq!(
            self.returned,
            self.received + lost + queued,
            "{name}: publish returned {} deliveries in all, but {} were received, {lost} lost \
             and {queued} are queued",
            self.returned,
            self.received
        );
        assert_eq!(
            self.returned,
            self.bursts * plan.deliveries_per_burst(),
            "{name}: deliveries differ from the plan's"
        );
        assert_eq!(
            (lost, queued),
            (0, 0),
            "{name}: messages were lost or left queued (lost, queued) after a burst sized to \
             lose nothing"
        );
    }

    /// Heap bytes of this bench's own records (latencies, order checks),
    /// allocated after building and so not the contender's.
    fn bookkeeping_bytes(&self) -> i64 {
        let latencies = self.latencies.capacity()
            + self
                .burst_latencies
                .iter()
                .map(Vec::capacity)
                .sum::<usize>();
        let vecs = self.burst_latencies.capacity() * size_of::<Vec<u64>>();
        let checks = self.checks.capacity() * size_of::<OrderCheck>()
            + self
                .checks
                .iter()
                .map(|c| c.last.capacity() * size_of::<[Option<u64>; PUBLISHERS]>())
                .sum::<usize>();
        (latencies * size_of::<u64>() + vecs + checks) as i64
    }

    /// What to print and compare.
    fn summary(&mut self) -> Summary {
        self.latencies.sort_unstable();
        let at = |q: f64| {
            let i = ((self.latencies.len() as f64 * q).ceil() as usize).saturating_sub(1);
            Duration::from_nanos(self.latencies.get(i).copied().unwrap_or(0))
        };
        Summary {
            name: self.side.name(),
            deliveries_per_sec: self.returned as f64 / self.elapsed.as_secs_f64(),
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
            heap_subscribed: self.heap_subscribed,
            heap_after: 0,
            rounds: Vec::new(),
            allocations_per_publish: self.allocations as f64
                / self.burst_latencies.iter().map(Vec::len).sum::<usize>() as f64,
            publishes: self.latencies.len(),
            bursts: self.bursts,
        }
    }
}

/// One side's figures for the table.
struct Summary {
    /// Contender.
    name: String,
    /// Deliveries over the time of every burst.
    deliveries_per_sec: f64,
    /// Median publish latency.
    p50: Duration,
    /// 99th-percentile publish latency.
    p99: Duration,
    /// Slowest publish.
    max: Duration,
    /// Heap bytes held once everything was subscribed.
    heap_subscribed: i64,
    /// Heap bytes held after the runs (queues as grown by them), as
    /// dropping the contender freed them.
    heap_after: i64,
    /// Deliveries per second of each interleaved round.
    rounds: Vec<f64>,
    /// Heap allocations per publish during the last burst.
    allocations_per_publish: f64,
    /// Publishes timed.
    publishes: usize,
    /// Bursts run.
    bursts: u64,
}

/// Mebibytes.
fn mib(bytes: i64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Prints the table of a size: each side, then tannoy / each peer.
fn print_summaries(plan: &Plan, summaries: &[Summary]) {
    let n = plan.subscribers.len();
    println!(
        "\nseed_workload, {n} subscribers: {CHANNELS} channels ({} matched by a held pattern), \
         {PATTERNS} patterns held by {} subscribers, {:.0} deliveries per publish",
        plan.channels_matched,
        plan.pattern_subscribers(),
        plan.deliveries_per_burst() as f64 / plan.publishes_per_burst() as f64
    );
    println!(
        "{:<14} {:>13} {:>13} {:>10} {:>10} {:>10} {:>15} {:>14} {:>10} {:>18}",
        "side",
        "deliveries/s",
        "rounds median",
        "p50",
        "p99",
        "max",
        "heap subscribed",
        "heap after run",
        "allocs/pub",
        "publishes (bursts)"
    );
    for s in summaries {
        println!(
            "{:<14} {:>12.2}M {:>12.2}M {:>10.1?} {:>10.1?} {:>10.1?} {:>11.1} MiB {:>10.1} MiB \
             {:>10.3} {:>18}",
            s.name,
            s.deliveries_per_sec / 1e6,
            median(s.rounds.clone()) / 1e6,
            s.p50,
            s.p99,
            s.max,
            mib(s.heap_subscribed),
            mib(s.heap_after),
            s.allocations_per_publish,
            format!("{} ({})", s.publishes, s.bursts)
        );
    }
    let (tannoy, peers) = summaries.split_first().expect("tannoy ran");
    for peer in peers {
        let ratio = |a: f64, b: f64| a / b;
        let rounds = tannoy
            .rounds
            .iter()
            .zip(&peer.rounds)
            .map(|(t, p)| t / p)
            .collect();
        println!(
            "{:<14} {:>12.2}x {:>12.2}x {:>9.2}x {:>9.2}x {:>9.2}x {:>14.2}x {:>13.2}x",
            format!("tannoy/{}", peer.name.trim_start_matches("peer_")),
            ratio(tannoy.deliveries_per_sec, peer.deliveries_per_sec),
            median(rounds),
            ratio(tannoy.p50.as_secs_f64(), peer.p50.as_secs_f64()),
            ratio(tannoy.p99.as_secs_f64(), peer.p99.as_secs_f64()),
            ratio(tannoy.max.as_secs_f64(), peer.max.as_secs_f64()),
            ratio(tannoy.heap_subscribed as f64, peer.heap_subscribed as f64),
            ratio(tannoy.heap_after as f64, peer.heap_after as f64),
        );
    }
    println!();
}

/// A contender as the driver sees it, whatever its side.
trait Bursts {
    /// Name in the output.
    fn name(&self) -> String;
    /// Runs one burst; returns its time.
    fn burst(&mut self, plan: &Plan, payloads: &[Vec<Bytes>]) -> Duration;
    /// The figures so far.
    fn summary(&mut self) -> Summary;
    /// Drops the contender; returns the heap bytes that freed, less the
    /// bench's own records: what the contender held after its runs.
    fn release(self: Box<Self>) -> i64;
}

impl<S: Side> Bursts for Contender<S> {
    fn name(&self) -> String {
        self.side.name()
    }

    fn burst(&mut self, plan: &Plan, payloads: &[Vec<Bytes>]) -> Duration {
        Contender::burst(self, plan, payloads)
    }

    fn summary(&mut self) -> Summary {
        Contender::summary(self)
    }

    fn release(self: Box<Self>) -> i64 {
        let bookkeeping = self.bookkeeping_bytes() + size_of::<Self>() as i64;
        let before = heap();
        drop(self);
        before - heap() - bookkeeping
    }
}

/// Times each contender in `group`, one burst per iteration; then runs
/// `rounds` interleaved rounds of one burst each (who goes first
/// alternating), so the ratios compare bursts run moments apart on a
/// machine whose load may drift; then drops each and returns the figures.
fn run(
    group: &mut BenchmarkGroup<'_, WallTime>,
    plan: &Plan,
    payloads: &[Vec<Bytes>],
    mut contenders: Vec<Box<dyn Bursts + '_>>,
    rounds: usize,
) -> Vec<Summary> {
    for contender in &mut contenders {
        let id = BenchmarkId::new(contender.name(), plan.subscribers.len());
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| contender.burst(plan, payloads))
                    .sum::<Duration>()
            })
        });
    }
    let deliveries = plan.deliveries_per_burst() as f64;
    let mut per_round = vec![Vec::with_capacity(rounds); contenders.len()];
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..contenders.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let elapsed = contenders[i].burst(plan, payloads);
            per_round[i].push(deliveries / elapsed.as_secs_f64());
        }
    }
    contenders
        .into_iter()
        .zip(per_round)
        .map(|(mut contender, rounds)| {
            let mut summary = contender.summary();
            summary.rounds = rounds;
            summary.heap_after = contender.release();
            summary
        })
        .collect()
}

/// The median of `values` (the mean of the middle two when even).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Sets `group`'s times: short ones for a smoke run (see
/// [`quick`]), else `measurement` after a second's warm-up.
fn set_times(group: &mut BenchmarkGroup<'_, WallTime>, measurement: Duration) {
    if quick() {
        group
            .warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_millis(500));
    } else {
        group
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(measurement);
    }
}

/// tannoy, subscribed as `plan` says.
fn tannoy(plan: &Plan) -> Contender<Tannoy> {
    Contender::new(
        plan,
        || Tannoy(Broker::builder().queue_capacity(QUEUE_CAPACITY).build()),
        |broker, i| {
            let s = &plan.subscribers[i];
            let sub = broker.0.subscriber();
            sub.subscribe(s.channels.iter().map(|&c| &plan.channels[c as usize]));
            sub.psubscribe(s.pattern.map(|p| &plan.patterns[p as usize]));
            sub
        },
    )
}

/// The peer with lock `L`, subscribed as `plan` says.
fn peer<L: PeerLock<PeerState>>(plan: &Plan) -> Contender<Peer<L>> {
    Contender::new(
        plan,
        || Peer::<L>::new(QUEUE_CAPACITY),
        |peer, i| {
            let s = &plan.subscribers[i];
            peer.subscribe(
                s.channels.iter().map(|&c| &plan.channels[c as usize][..]),
                s.pattern.map(|p| &plan.patterns[p as usize][..]),
            )
        },
    )
}

/// The seed's workload at 20,000 and 100,000 subscribers, tannoy beside
/// the peer.
fn seed_workload(c: &mut Criterion) {
    println!("CPU: {}", cpu());
    let quick = quick();
    let lock = std::env::var("TANNOY_SEED_PEER_LOCK").unwrap_or_else(|_| "rwlock".into());
    let mut group = c.benchmark_group("seed_workload");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    set_times(&mut group, Duration::from_secs(4));
    // Interleaved rounds after criterion's timing: nine, so that their
    // median holds on a machine whose load drifts within a run.
    let rounds = if quick { 2 } else { 9 };
    // Publishes per publisher per burst: fewer at the larger size, where
    // each publish reaches five times as many subscribers.
    let sizes: &[(usize, usize)] = if quick {
        &[(20_000, 256)]
    } else {
        &[(20_000, 512), (100_000, 128)]
    };
    for &(subscribers, burst) in sizes {
        let plan = Plan::new(subscribers, PUBLISHERS, burst);
        let payloads: Vec<Vec<Bytes>> = (0..PUBLISHERS).map(|p| payloads(p as u8, burst)).collect();
        group.throughput(Throughput::Elements(plan.deliveries_per_burst()));

        let tannoy = tannoy(&plan);
        let mut contenders: Vec<Box<dyn Bursts>> = vec![Box::new(tannoy)];
        if lock != "mutex" {
            contenders.push(Box::new(peer::<RwLock<PeerState>>(&plan)));
        }
        if lock == "mutex" || lock == "both" {
            contenders.push(Box::new(peer::<Mutex<PeerState>>(&plan)));
        }
        let summaries = run(&mut group, &plan, &payloads, contenders, rounds);
        print_summaries(&plan, &summaries);
    }
    group.finish();
}

/// One step of the seed's workload in isolation: the receive side's cost
/// per delivery, with no threads and so no scheduling in the figure.
///
/// One iteration publishes one window of the plan (each publisher's first
/// [`WINDOW`] publishes, interleaved) from this thread and then drains
/// every subscriber, as one consumer's sweep does. Throughput is
/// deliveries; the iteration checks that it received exactly what the
/// plan addresses and that nothing was lost.
fn seed_drain(c: &mut Criterion) {
    let mut group = c.benchmark_group("seed_drain");
    group.sample_size(10);
    set_times(&mut group, Duration::from_secs(3));
    let window = WINDOW as usize;
    let plan = Plan::new(20_000, PUBLISHERS, window);
    let payloads: Vec<Vec<Bytes>> = (0..PUBLISHERS).map(|p| payloads(p as u8, window)).collect();
    group.throughput(Throughput::Elements(plan.deliveries_per_burst()));
    drain_bench(&mut group, &plan, &payloads, tannoy(&plan));
    drain_bench(
        &mut group,
        &plan,
        &payloads,
        peer::<RwLock<PeerState>>(&plan),
    );
    group.finish();
}

/// [`seed_drain`] for one contender.
fn drain_bench<S: Side>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    plan: &Plan,
    payloads: &[Vec<Bytes>],
    mut contender: Contender<S>,
) {
    let name = contender.side.name();
    let Contender { side, subs, .. } = &mut contender;
    group.bench_function(name.as_str(), |b| {
        b.iter(|| drain_window(plan, payloads, side, subs));
    });
}

/// One iteration of [`seed_drain`]: publishes one window of `plan` from
/// this thread, then drains every subscriber, checking that exactly what
/// the plan addresses arrived and nothing was lost.
fn drain_window<S: Side>(plan: &Plan, payloads: &[Vec<Bytes>], side: &S, subs: &mut [S::Sub]) {
    for i in 0..WINDOW as usize {
        for (p, channels) in plan.publishes.iter().enumerate() {
            let channel = &plan.channels[channels[i] as usize];
            side.publish(channel, payloads[p][i].clone());
        }
    }
    let mut drained = Drained::default();
    for sub in subs.iter_mut() {
        drained += S::drain(sub);
    }
    assert_eq!(
        (drained.received, drained.lost),
        (plan.deliveries_per_burst(), 0),
        "{}: one window must deliver exactly what the plan addresses",
        side.name()
    );
}

/// Runs [`seed_drain`]'s iteration a fixed number of times for one side,
/// outside criterion, so a tool that counts instructions (callgrind) can
/// take the difference of two round counts: what one window costs, with
/// the setup subtracted. Returns whether `TANNOY_SEED_DRAIN_ROUNDS` asked
/// for this (`TANNOY_SEED_DRAIN_SIDE` is `tannoy`, the default, or
/// `peer`); `benches/callgrind-seed-drain.sh` drives it.
fn fixed_drain_from_env() -> bool {
    let Ok(rounds) = std::env::var("TANNOY_SEED_DRAIN_ROUNDS") else {
        return false;
    };
    let rounds: usize = rounds
        .parse()
        .expect("TANNOY_SEED_DRAIN_ROUNDS must be a number of windows");
    let side = std::env::var("TANNOY_SEED_DRAIN_SIDE").unwrap_or_else(|_| "tannoy".into());
    let window = WINDOW as usize;
    let plan = Plan::new(20_000, PUBLISHERS, window);
    let payloads: Vec<Vec<Bytes>> = (0..PUBLISHERS).map(|p| payloads(p as u8, window)).collect();
    match side.as_str() {
        "tannoy" => fixed_drain(&plan, &payloads, tannoy(&plan), rounds),
        "peer" => fixed_drain(&plan, &payloads, peer::<RwLock<PeerState>>(&plan), rounds),
        other => panic!("TANNOY_SEED_DRAIN_SIDE must be tannoy or peer, not {other:?}"),
    }
    println!(
        "{side}: {rounds} windows of {} deliveries each",
        plan.deliveries_per_burst()
    );
    true
}

/// [`fixed_drain_from_env`] for one contender.
fn fixed_drain<S: Side>(
    plan: &Plan,
    payloads: &[Vec<Bytes>],
    mut contender: Contender<S>,
    rounds: usize,
) {
    let Contender { side, subs, .. } = &mut contender;
    for _ in 0..rounds {
        drain_window(plan, payloads, side, subs);
    }
}

criterion_group! {
    name = benches;
    // Plots of ten long samples say nothing the table does not, and
    // drawing them took 13-15 s per benchmark on a loaded 2-vCPU machine,
    // a third of the run.
    config = Criterion::default().without_plots();
    targets = seed_workload, seed_drain
}

fn main() {
    if fixed_drain_from_env() {
        return;
    }
    // What `criterion_main!` expands to.
    benches();
    Criterion::default().configure_from_args().final_summary();
}
