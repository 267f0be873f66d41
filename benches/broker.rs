//! tannoy beside its peers, in the same criterion groups, so every number
//! reads as a ratio measured in one run on one machine.
//!
//! Run: `cargo bench --bench broker` (add `-- <group>` to pick one).
//!
//! Instructions instead of time: `benches/callgrind-broker.sh` counts with
//! callgrind what one message of `publish_recv_one` and one delivery of
//! `fanout` cost each side, running the same iterations outside criterion
//! (see [`fixed_count_from_env`]). Wall-clock ratios on a loaded 2-vCPU
//! machine move by a third between runs; these counts do not.

use std::hint::black_box;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use tannoy::{Broker, glob_match};

#[path = "support/workload.rs"]
mod workload;

use workload::{
    HOT_CHANNEL, PATTERN_COUNTS, fresh_channels, hot_channel_patterns, realistic_patterns,
};

/// A payload like a small JSON event, heap-allocated as real payloads are:
/// cloning it is an atomic reference-count increment for every contender.
fn payload() -> Bytes {
    Bytes::copy_from_slice(br#"{"model":"gpt-5","version":2,"status":"ready"}"#)
}

/// Publish then receive on the same thread, one exact subscriber, against
/// the floor: a raw crossbeam bounded channel sending the same `Bytes`.
fn publish_recv_one(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish_recv_one");
    group.throughput(Throughput::Elements(1));

    let mut tannoy = tannoy_publish_recv_one();
    group.bench_function("tannoy", |b| b.iter(&mut tannoy));

    let mut crossbeam = crossbeam_publish_recv_one();
    group.bench_function("crossbeam_channel", |b| b.iter(&mut crossbeam));
    group.finish();
}

/// [`publish_recv_one`]'s tannoy side: sets up one broker with one exact
/// subscriber and returns the iteration, one publish and its receive. Both
/// criterion and [`fixed_count_from_env`] run what this returns, so the
/// instruction counts are of the code criterion times.
fn tannoy_publish_recv_one() -> impl FnMut() {
    let broker = Broker::new();
    let sub = broker.subscriber();
    sub.subscribe(["ai:models:updated"]);
    let p = payload();
    move || {
        broker.publish(black_box("ai:models:updated"), p.clone());
        black_box(sub.try_recv().unwrap());
    }
}

/// [`publish_recv_one`]'s peer, as [`tannoy_publish_recv_one`]: one send
/// and one receive on a crossbeam bounded channel.
fn crossbeam_publish_recv_one() -> impl FnMut() {
    let (tx, rx) = crossbeam_channel::bounded::<Bytes>(1024);
    let p = payload();
    move || {
        tx.send(black_box(p.clone())).unwrap();
        black_box(rx.try_recv().unwrap());
    }
}

/// The subscriber counts [`fanout`] measures.
const FANOUT_SUBSCRIBERS: [usize; 5] = [1, 16, 64, 256, 1024];

/// One publish delivered to n subscribers, each of which then receives it;
/// throughput is deliveries. The peer is tokio's broadcast channel with the
/// same number of receivers.
fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    for n in FANOUT_SUBSCRIBERS {
        group.throughput(Throughput::Elements(n as u64));

        let mut tannoy = tannoy_fanout(n);
        group.bench_with_input(BenchmarkId::new("tannoy", n), &n, |b, _| {
            b.iter(&mut tannoy)
        });

        let mut tokio = tokio_fanout(n);
        group.bench_with_input(BenchmarkId::new("tokio_broadcast", n), &n, |b, _| {
            b.iter(&mut tokio)
        });
    }
    group.finish();
}

/// [`fanout`]'s tannoy side: sets up one broker with `n` subscribers to
/// one channel and returns the iteration, one publish and every
/// subscriber's receive. Both criterion and [`fixed_count_from_env`] run
/// what this returns.
fn tannoy_fanout(n: usize) -> impl FnMut() {
    let broker = Broker::new();
    let subs: Vec<_> = (0..n)
        .map(|_| {
            let s = broker.subscriber();
            s.subscribe(["conversations:new"]);
            s
        })
        .collect();
    let p = payload();
    move || {
        broker.publish(black_box("conversations:new"), p.clone());
        for s in &subs {
            black_box(s.try_recv().unwrap());
        }
    }
}

/// [`fanout`]'s peer, as [`tannoy_fanout`]: one send on a tokio broadcast
/// channel with `n` receivers, and every receiver's receive.
fn tokio_fanout(n: usize) -> impl FnMut() {
    let (tx, _) = tokio::sync::broadcast::channel::<Bytes>(1024);
    let mut rxs: Vec<_> = (0..n).map(|_| tx.subscribe()).collect();
    let p = payload();
    move || {
        tx.send(black_box(p.clone())).unwrap();
        for r in &mut rxs {
            black_box(r.try_recv().unwrap());
        }
    }
}

/// Messages sent per batch in the cross-thread benchmark, and the queue
/// size that holds a whole batch, so neither side ever drops or blocks on a
/// full queue and both are timed doing the same work.
const BATCH: u64 = 1024;

/// One publisher thread, one subscriber thread blocking in `recv`: the time
/// to hand each message across. The peer is crossbeam-channel's blocking
/// `recv` on a bounded channel. Both run the same harness: the consumer
/// thread acknowledges every completed batch.
fn cross_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("cross_thread");
    group.throughput(Throughput::Elements(1));

    group.bench_function("tannoy", |b| {
        let broker = Broker::builder().queue_capacity(BATCH as usize).build();
        let sub = broker.subscriber();
        sub.subscribe(["jobs"]);
        let (ack_tx, ack_rx) = mpsc::channel();
        let consumer = thread::spawn(move || consume_acking(|| sub.recv().ok(), ack_tx));
        let p = payload();
        b.iter_custom(|iters| timed_batches(iters, || broker.publish("jobs", p.clone()), &ack_rx));
        broker.close();
        consumer.join().unwrap();
    });

    group.bench_function("crossbeam_channel", |b| {
        let (tx, rx) = crossbeam_channel::bounded::<Bytes>(BATCH as usize);
        let (ack_tx, ack_rx) = mpsc::channel();
        let consumer = thread::spawn(move || consume_acking(|| rx.recv().ok(), ack_tx));
        let p = payload();
        b.iter_custom(|iters| timed_batches(iters, || tx.send(p.clone()).unwrap(), &ack_rx));
        drop(tx);
        consumer.join().unwrap();
    });
    group.finish();
}

/// One publisher thread, one tokio task receiving with `recv_async` (woken
/// by the publisher): the async hand-off per message, beside a tokio task
/// receiving from `tokio::sync::broadcast` in the same harness.
fn async_delivery(c: &mut Criterion) {
    let mut group = c.benchmark_group("async_delivery");
    group.throughput(Throughput::Elements(1));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();

    group.bench_function("tannoy", |b| {
        let broker = Broker::builder().queue_capacity(BATCH as usize).build();
        let mut sub = broker.subscriber();
        sub.subscribe(["ai:predictions:ready"]);
        let (ack_tx, ack_rx) = mpsc::channel();
        let consumer = runtime.spawn(async move {
            let mut acker = Acker::new(ack_tx);
            while let Ok(msg) = sub.recv_async().await {
                acker.received(msg);
            }
        });
        let p = payload();
        b.iter_custom(|iters| {
            timed_batches(
                iters,
                || broker.publish("ai:predictions:ready", p.clone()),
                &ack_rx,
            )
        });
        broker.close();
        runtime.block_on(consumer).unwrap();
    });

    group.bench_function("tokio_broadcast", |b| {
        let (tx, mut rx) = tokio::sync::broadcast::channel::<Bytes>(BATCH as usize);
        let (ack_tx, ack_rx) = mpsc::channel();
        let consumer = runtime.spawn(async move {
            let mut acker = Acker::new(ack_tx);
            while let Ok(msg) = rx.recv().await {
                acker.received(msg);
            }
        });
        let p = payload();
        b.iter_custom(|iters| timed_batches(iters, || tx.send(p.clone()).unwrap(), &ack_rx));
        drop(tx);
        runtime.block_on(consumer).unwrap();
    });
    group.finish();
}

/// The consumer side of the hand-off benchmarks: counts what it receives
/// and acknowledges every completed batch.
struct Acker {
    /// Messages received.
    received: u64,
    /// Where acknowledgements go.
    acks: mpsc::Sender<()>,
}

impl Acker {
    /// An acker sending to `acks`.
    fn new(acks: mpsc::Sender<()>) -> Self {
        Self { received: 0, acks }
    }

    /// Takes one message, acknowledging if it completes a batch.
    fn received<M>(&mut self, msg: M) {
        black_box(msg);
        self.received += 1;
        if self.received % BATCH == 0 {
            self.acks.send(()).unwrap();
        }
    }
}

/// A blocking consumer: receives until `recv` returns `None`,
/// acknowledging every completed batch.
fn consume_acking<M>(mut recv: impl FnMut() -> Option<M>, acks: mpsc::Sender<()>) {
    let mut acker = Acker::new(acks);
    while let Some(msg) = recv() {
        acker.received(msg);
    }
}

/// Sends `iters` messages (rounded up to whole batches) with `send`,
/// waiting for the consumer's acknowledgement after each batch, and returns
/// the time per `iters` messages.
fn timed_batches<R>(
    iters: u64,
    mut send: impl FnMut() -> R,
    acks: &mpsc::Receiver<()>,
) -> Duration {
    let batches = iters.div_ceil(BATCH);
    let start = Instant::now();
    for _ in 0..batches {
        for _ in 0..BATCH {
            black_box(send());
        }
        acks.recv().unwrap();
    }
    start
        .elapsed()
        .mul_f64(iters as f64 / (batches * BATCH) as f64)
}

/// What Redis does on every `PUBLISH`: test every pattern with the
/// reference matcher, in a loop, and deliver each match (here to a
/// crossbeam channel).
struct LinearScan {
    /// Subscribed patterns with their subscriber's queue.
    patterns: Vec<(Vec<u8>, crossbeam_channel::Sender<Bytes>)>,
}

impl LinearScan {
    /// Delivers `payload` to every pattern matching `channel`.
    fn publish(&self, channel: &[u8], payload: &Bytes) -> usize {
        let mut receivers = 0;
        for (pattern, queue) in &self.patterns {
            if glob_match(pattern, channel) {
                let _ = queue.try_send(payload.clone());
                receivers += 1;
            }
        }
        receivers
    }
}

/// Publish with n realistic patterns held (one subscriber holds them all),
/// to the same channel every time and to a new channel every time, beside
/// Redis's linear scan with the reference matcher. Each iteration publishes
/// and drains what was delivered. For the hot channel exactly one pattern
/// matches at every size, so the sizes differ only in the index's cost.
fn publish_with_patterns(c: &mut Criterion) {
    let fresh = fresh_channels();
    for (group_name, hot) in [
        ("patterns_hot_channel", true),
        ("patterns_new_channel", false),
    ] {
        let mut group = c.benchmark_group(group_name);
        group.throughput(Throughput::Elements(1));
        for n in PATTERN_COUNTS {
            let patterns = if hot {
                hot_channel_patterns(n)
            } else {
                realistic_patterns(n)
            };
            let p = payload();
            // The channel of the i-th publish: the hot one, or a new one.
            let channel_at = |i: usize| {
                if hot {
                    HOT_CHANNEL
                } else {
                    &fresh[i % fresh.len()][..]
                }
            };

            let broker = Broker::new();
            let sub = broker.subscriber();
            sub.psubscribe(&patterns);
            let mut i = 0usize;
            group.bench_with_input(BenchmarkId::new("tannoy", n), &n, |b, _| {
                b.iter(|| {
                    let channel = channel_at(i);
                    i += 1;
                    black_box(broker.publish(channel, p.clone()));
                    for msg in sub.try_iter() {
                        black_box(msg);
                    }
                })
            });

            let (tx, rx) = crossbeam_channel::bounded(1024);
            let scan = LinearScan {
                patterns: patterns.iter().map(|p| (p.clone(), tx.clone())).collect(),
            };
            let mut i = 0usize;
            group.bench_with_input(BenchmarkId::new("linear_scan", n), &n, |b, _| {
                b.iter(|| {
                    let channel = channel_at(i);
                    i += 1;
                    black_box(scan.publish(channel, &p));
                    for msg in rx.try_iter() {
                        black_box(msg);
                    }
                })
            });
        }
        group.finish();
    }
}

/// One psubscribe plus one punsubscribe while 10,000 patterns are held (by
/// another subscriber), cycling through patterns of the same realistic mix
/// that are not held. The peer is the linear scan's list: append, then find
/// and remove.
fn pattern_churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("pattern_churn_10k_held");
    group.throughput(Throughput::Elements(1));
    let all = realistic_patterns(20_000);
    let (held, churn) = all.split_at(10_000);

    let broker = Broker::new();
    let holder = broker.subscriber();
    holder.psubscribe(held);
    let churner = broker.subscriber();
    let mut i = 0usize;
    group.bench_function("tannoy", |b| {
        b.iter(|| {
            let pattern = &churn[i % churn.len()];
            i += 1;
            black_box(churner.psubscribe([pattern]));
            black_box(churner.punsubscribe([pattern]));
        })
    });

    let (tx, _rx) = crossbeam_channel::bounded(1);
    let mut scan = LinearScan {
        patterns: held.iter().map(|p| (p.clone(), tx.clone())).collect(),
    };
    let mut i = 0usize;
    group.bench_function("linear_scan", |b| {
        b.iter(|| {
            let pattern = &churn[i % churn.len()];
            i += 1;
            scan.patterns.push((pattern.clone(), tx.clone()));
            let at = scan
                .patterns
                .iter()
                .rposition(|(p, _)| p == pattern)
                .unwrap();
            black_box(scan.patterns.remove(at));
        })
    });
    group.finish();
}

/// Publish+receive throughput with one thread, and with two threads on
/// distinct channels (each publishing to its own subscriber and draining
/// it): lock sharding should let the second thread add throughput.
fn publisher_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("publisher_threads");
    group.throughput(Throughput::Elements(1));
    for threads in [1usize, 2] {
        let broker = Broker::new();
        let subs: Vec<_> = (0..threads)
            .map(|t| {
                let sub = broker.subscriber();
                sub.subscribe([format!("sensor:{t}:reading")]);
                sub
            })
            .collect();
        // One payload per thread: cloning a shared one would bounce its
        // reference count's cache line between the threads.
        let payloads: Vec<Bytes> = (0..threads).map(|_| payload()).collect();
        group.bench_with_input(BenchmarkId::from_parameter(threads), &threads, |b, _| {
            b.iter_custom(|iters| {
                let per_thread = iters.div_ceil(threads as u64);
                let start = Instant::now();
                thread::scope(|scope| {
                    for (t, (sub, p)) in subs.iter().zip(&payloads).enumerate() {
                        let broker = &broker;
                        scope.spawn(move || {
                            let channel = format!("sensor:{t}:reading");
                            for _ in 0..per_thread {
                                broker.publish(channel.as_str(), p.clone());
                                black_box(sub.try_recv().unwrap());
                            }
                        });
                    }
                });
                // Time per message of the combined throughput.
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per_thread * threads as u64) as f64)
            })
        });
    }
    group.finish();
}

/// Runs one benchmark's iteration a fixed number of times for one side,
/// outside criterion, so a tool that counts instructions (callgrind) can
/// take the difference of two round counts: what one iteration costs, with
/// the setup (building the broker, subscribing) and the process's start
/// subtracted. Machine load moves wall-clock ratios on a small shared
/// machine; it does not move these counts. Returns whether
/// `TANNOY_BROKER_COUNT` asked for this: it names the benchmark,
/// `publish_recv_one` or `fanout/<n>` with n one of
/// [`FANOUT_SUBSCRIBERS`]; `TANNOY_BROKER_ROUNDS` is the number of
/// iterations and `TANNOY_BROKER_SIDE` is `tannoy`, the default, or `peer`.
/// `benches/callgrind-broker.sh` drives it, reading the line this prints.
fn fixed_count_from_env() -> bool {
    let Ok(scenario) = std::env::var("TANNOY_BROKER_COUNT") else {
        return false;
    };
    let rounds: u64 = std::env::var("TANNOY_BROKER_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .expect("TANNOY_BROKER_ROUNDS must be a number of iterations");
    let side = std::env::var("TANNOY_BROKER_SIDE").unwrap_or_else(|_| "tannoy".into());
    let peer = match side.as_str() {
        "tannoy" => false,
        "peer" => true,
        other => panic!("TANNOY_BROKER_SIDE must be tannoy or peer, not {other:?}"),
    };
    // Who ran, how many operations one iteration is, and what they are.
    let (name, per_round, unit) = if scenario == "publish_recv_one" {
        if peer {
            repeat(rounds, crossbeam_publish_recv_one());
            ("crossbeam_channel", 1, "message")
        } else {
            repeat(rounds, tannoy_publish_recv_one());
            ("tannoy", 1, "message")
        }
    } else {
        let n = scenario
            .strip_prefix("fanout/")
            .and_then(|n| n.parse().ok())
            .filter(|n| FANOUT_SUBSCRIBERS.contains(n))
            .unwrap_or_else(|| {
                panic!(
                    "TANNOY_BROKER_COUNT must be publish_recv_one or fanout/<n> with n one of \
                     {FANOUT_SUBSCRIBERS:?}, not {scenario:?}"
                )
            });
        if peer {
            repeat(rounds, tokio_fanout(n));
            ("tokio_broadcast", n, "delivery")
        } else {
            repeat(rounds, tannoy_fanout(n));
            ("tannoy", n, "delivery")
        }
    };
    println!("{scenario} {name}: {rounds} rounds, {per_round} per round, counted per {unit}");
    true
}

/// Runs `iteration` `rounds` times, as criterion's `iter` does.
fn repeat(rounds: u64, mut iteration: impl FnMut()) {
    for _ in 0..rounds {
        iteration();
    }
}

criterion_group!(
    benches,
    publish_recv_one,
    fanout,
    cross_thread,
    async_delivery,
    publish_with_patterns,
    pattern_churn,
    publisher_threads
);

fn main() {
    if fixed_count_from_env() {
        return;
    }
    // What `criterion_main!` expands to.
    benches();
    Criterion::default().configure_from_args().final_summary();
}
