//! One channel, many local subscribers, one real `redis-server`:
//! tannoy-redis against plain redis-rs, side by side in the same run.
//!
//! **Sides.** `bridge`: one `Broker`, one `tannoy_redis::Bridge`, and N
//! local subscribers of the channel, each awaited by its own Tokio task
//! (as each WebSocket connection of the seed's gateway would be).
//! `redis-rs`: one async `PubSub` connection per subscriber
//! (`Client::get_async_pubsub`, RESP2, each subscribed to the channel and
//! read by its own task), which is what applications write without a
//! bridge. At N = 10,000 the `redis-rs` side is capped at [`RAW_CAP`]
//! connections (1,000; 10,000 sockets on each end of loopback is more than
//! this bench should ask of a small machine), and its row says so: Redis's
//! cost for it grows with the connection count, so 10,000 would cost about
//! ten times the capped row.
//!
//! **Workload.** A separate redis-rs connection (the same for both sides)
//! publishes 64-byte payloads, each carrying its send time. Loopback only;
//! the server is private to the run (a free port, nothing on disk).
//!
//! **Measured**, per side and subscriber count N (1, 100, 10,000):
//!
//! - criterion's time per iteration: one publish, until its last delivery;
//! - the latency run, [`MESSAGES`] publishes (50 in the smoke test), each
//!   sent once the previous one has reached every subscriber: one message
//!   in flight, so what is measured is one publish, not queueing. Each
//!   delivery's publish-to-receive latency (the send time in the payload
//!   to the receiving task's clock reading), p50 and p99 over all
//!   deliveries, in 250 ns buckets;
//! - the CPU run, as many publishes at one per [`CADENCE`] (1 ms), each
//!   awaiting its reply but not its deliveries: Redis's CPU per publish
//!   from `INFO cpu` (`used_cpu_sys + used_cpu_user` before and after,
//!   less the server's idle rate measured just before over [`IDLE`] (1 s)
//!   with the same clients connected, so its periodic housekeeping is not
//!   charged to publishes); and the server's `connected_clients` from
//!   `INFO clients`, with the subscriber connections among them (that
//!   count less the publisher's and the bench's own `INFO` connection).
//!
//! Every publish must return exactly the upstream subscriptions expected
//! (1 for the bridge, one per connection for redis-rs) and every
//! subscriber must receive every message once; a violation panics.
//!
//! **Run**: `cargo bench -p tannoy-redis --bench fanout` (about two
//! minutes; `TANNOY_FANOUT_SUBSCRIBERS=1,100` runs only those counts). `TANNOY_BENCH_QUICK=1`, or `cargo test -p tannoy-redis
//! --benches` (which runs bench targets without `--bench`), runs a smoke
//! test: redis-rs capped at 100 connections, 50 publishes, short criterion
//! timings. Without `redis-server` the bench prints one line and exits,
//! unless `TANNOY_REQUIRE_REDIS=1`; `TANNOY_REDIS_SERVER` names the binary.
//!
//! **Reading the output**: after criterion's lines a table prints one row
//! per side and N, and per N the ratios bridge / redis-rs of Redis CPU per
//! publish and of latency p50 and p99.

#[path = "../tests/support/redis.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use support::{RedisServer, info_field};
use tannoy::Broker;
use tannoy_redis::Bridge;
use tannoy_test_support::{cpu, quick};
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Bytes per payload: the send time (8 bytes), then filler.
const PAYLOAD: usize = 64;

/// Local subscriber counts.
const SUBSCRIBERS: [usize; 3] = [1, 100, 10_000];

/// The most redis-rs connections one side opens (see the module docs).
const RAW_CAP: usize = 1_000;

/// The cap in the smoke test.
const QUICK_RAW_CAP: usize = 100;

/// Publishes in each of the table's two bounded runs.
const MESSAGES: u64 = 400;

const _: () = assert!(MESSAGES as usize <= QUEUE_CAPACITY);

/// Publishes in the smoke test's bounded run.
const QUICK_MESSAGES: u64 = 50;

/// The CPU run's cadence: one publish every millisecond, each awaiting
/// its reply but not its deliveries, whatever the subscriber count (a row
/// where Redis needs longer per publish runs as fast as Redis answers).
/// The same cadence for every row gives Redis the same idle gaps, so its
/// CPU per publish is compared under the same conditions. In a first
/// version the CPU was measured on the latency run, where each publish
/// follows the previous one's last delivery: the bridge's
/// 10,000-subscriber row then cost Redis twice its 1-subscriber row (108 µs
/// against 54 µs) only because its publishes came 20 ms apart instead of
/// 0.15 ms, with Redis's caches gone cold in between; paced at 25 ms, every
/// row cost 150-190 µs.
const CADENCE: Duration = Duration::from_millis(1);

/// Local queue capacity: holds a whole CPU run (the bridge's 10,000
/// subscribers fall behind a 1 ms cadence, and must not drop).
const QUEUE_CAPACITY: usize = 1024;

/// How long the server's idle CPU is measured before each bounded run.
const IDLE: Duration = Duration::from_secs(1);

/// The same in the smoke test.
const QUICK_IDLE: Duration = Duration::from_millis(200);

/// Latency histogram resolution.
const BUCKET_NANOS: u64 = 250;

/// Latency histogram buckets: 250 ns each, up to 2^20 of them (262 ms);
/// slower deliveries land in the last.
const BUCKETS: usize = 1 << 20;

/// The longest one publish may take to reach everyone before the bench
/// declares it lost.
const STUCK: Duration = Duration::from_secs(30);

/// The subscriber counts to run: [`SUBSCRIBERS`], or those listed in
/// `TANNOY_FANOUT_SUBSCRIBERS` (comma-separated, say `1` to look closely
/// at one row).
fn sizes() -> Vec<usize> {
    match std::env::var("TANNOY_FANOUT_SUBSCRIBERS") {
        Ok(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .expect("TANNOY_FANOUT_SUBSCRIBERS: numbers, comma-separated")
            })
            .collect(),
        Err(_) => SUBSCRIBERS.to_vec(),
    }
}

/// What every receiving task reports to: deliveries so far, a wake-up for
/// the publisher, and the latency histogram.
struct Probe {
    /// The clock payloads carry their send time on.
    base: Instant,
    /// Deliveries so far.
    delivered: AtomicU64,
    /// Deliveries the publisher is waiting for.
    target: AtomicU64,
    /// Wakes the publisher once `delivered` reaches `target`.
    reached: Notify,
    /// Deliveries per 250 ns of latency.
    histogram: Box<[AtomicU64]>,
}

impl Probe {
    /// A probe on `base`'s clock.
    fn new(base: Instant) -> Arc<Self> {
        Arc::new(Self {
            base,
            delivered: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            reached: Notify::new(),
            histogram: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// Records one delivery of `payload`.
    fn record(&self, payload: &[u8]) {
        let now = self.base.elapsed().as_nanos() as u64;
        let sent = payload
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .expect("a payload starts with its send time");
        assert_eq!(payload.len(), PAYLOAD, "the payload arrives whole");
        let bucket = (now.saturating_sub(sent) / BUCKET_NANOS).min(BUCKETS as u64 - 1);
        self.histogram[bucket as usize].fetch_add(1, Ordering::Relaxed);
        let delivered = self.delivered.fetch_add(1, Ordering::AcqRel) + 1;
        if delivered >= self.target.load(Ordering::Acquire) {
            self.reached.notify_one();
        }
    }

    /// Empties the histogram.
    fn reset(&self) {
        for bucket in &*self.histogram {
            bucket.store(0, Ordering::Relaxed);
        }
    }

    /// The latency below which a fraction `q` of recorded deliveries fell.
    fn quantile(&self, q: f64) -> Duration {
        let counts: Vec<u64> = self
            .histogram
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Duration::from_nanos((i as u64 + 1) * BUCKET_NANOS);
            }
        }
        Duration::ZERO
    }
}

/// The two sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// tannoy-redis: one bridge, N local subscribers.
    Bridge,
    /// redis-rs: one `PubSub` connection per subscriber.
    RedisRs,
}

impl Side {
    /// The side's name in criterion ids and the table.
    fn name(self) -> &'static str {
        match self {
            Side::Bridge => "bridge",
            Side::RedisRs => "redis-rs",
        }
    }

    /// The channel the side's subscribers hold: one per side, so both
    /// sides can stay subscribed while their rounds alternate.
    fn channel(self) -> &'static str {
        match self {
            Side::Bridge => "ai:predictions:ready:bridge",
            Side::RedisRs => "ai:predictions:ready:redis-rs",
        }
    }
}

/// One side subscribed with N subscribers.
struct Fleet {
    /// Which side.
    side: Side,
    /// Local subscribers asked for.
    subscribers: usize,
    /// Receivers actually subscribed (N, or the cap for redis-rs).
    receivers: usize,
    /// What each `PUBLISH` must return: upstream subscriptions.
    upstream: usize,
    /// The receiving tasks.
    tasks: Vec<JoinHandle<()>>,
    /// Where they report.
    probe: Arc<Probe>,
    /// The bridge side's broker and bridge.
    bridge: Option<(Broker, Bridge)>,
}

impl Fleet {
    /// Subscribes `side` with `subscribers` subscribers (at most `cap`
    /// redis-rs connections) and waits until the server holds them all.
    async fn start(
        side: Side,
        subscribers: usize,
        cap: usize,
        server: &RedisServer,
        base: Instant,
    ) -> Fleet {
        let probe = Probe::new(base);
        let mut tasks = Vec::new();
        let (receivers, upstream, bridge) = match side {
            Side::Bridge => {
                let broker = Broker::builder().queue_capacity(QUEUE_CAPACITY).build();
                let bridge = Bridge::builder()
                    .url(server.url())
                    .broker(broker.clone())
                    .start()
                    .await
                    .expect("the bridge starts");
                for _ in 0..subscribers {
                    let mut sub = broker.subscriber();
                    sub.subscribe([side.channel()]);
                    let probe = Arc::clone(&probe);
                    tasks.push(tokio::spawn(async move {
                        // Ends when the broker is closed.
                        while let Ok(msg) = sub.recv_async().await {
                            probe.record(msg.payload());
                        }
                    }));
                }
                bridge.sync().await.expect("subscribed upstream");
                (subscribers, 1, Some((broker, bridge)))
            }
            Side::RedisRs => {
                let client = redis::Client::open(server.url()).expect("a client");
                let connections = subscribers.min(cap);
                for _ in 0..connections {
                    let mut pubsub = client.get_async_pubsub().await.expect("a connection");
                    pubsub.subscribe(side.channel()).await.expect("subscribed");
                    let mut messages = pubsub.into_on_message();
                    let probe = Arc::clone(&probe);
                    tasks.push(tokio::spawn(async move {
                        // Ends when aborted, which closes the connection.
                        while let Some(msg) = messages.next().await {
                            probe.record(msg.get_payload_bytes());
                        }
                    }));
                }
                (connections, connections, None)
            }
        };
        assert_eq!(
            server.numsub(side.channel()),
            upstream as i64,
            "{}: the server holds every upstream subscription",
            side.name()
        );
        Fleet {
            side,
            subscribers,
            receivers,
            upstream,
            tasks,
            probe,
            bridge,
        }
    }

    /// Publishes one message and waits until every receiver has it.
    async fn round(&self, publisher: &mut MultiplexedConnection, payload: &mut [u8; PAYLOAD]) {
        let target = self.announce(1);
        self.publish(publisher, payload).await;
        self.wait_for(target, "a publish").await;
    }

    /// Publishes `messages` messages at [`CADENCE`], each awaiting its
    /// reply only, then waits until every receiver has them all.
    async fn stream(
        &self,
        publisher: &mut MultiplexedConnection,
        payload: &mut [u8; PAYLOAD],
        messages: u64,
    ) {
        let target = self.announce(messages);
        let mut ticks = tokio::time::interval(CADENCE);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for _ in 0..messages {
            ticks.tick().await;
            self.publish(publisher, payload).await;
        }
        self.wait_for(target, "a stream of publishes").await;
    }

    /// Tells the probe that `messages` more messages are to reach every
    /// receiver; returns the delivery count that makes them all delivered.
    fn announce(&self, messages: u64) -> u64 {
        let target =
            self.probe.delivered.load(Ordering::Acquire) + messages * self.receivers as u64;
        self.probe.target.store(target, Ordering::Release);
        target
    }

    /// Publishes `payload` stamped with its send time, and checks that
    /// PUBLISH counted every upstream subscription.
    async fn publish(&self, publisher: &mut MultiplexedConnection, payload: &mut [u8; PAYLOAD]) {
        let sent = self.probe.base.elapsed().as_nanos() as u64;
        payload[..8].copy_from_slice(&sent.to_le_bytes());
        let count: usize = redis::cmd("PUBLISH")
            .arg(self.side.channel())
            .arg(&payload[..])
            .query_async(publisher)
            .await
            .expect("published");
        assert_eq!(
            count,
            self.upstream,
            "{}: PUBLISH's count",
            self.side.name()
        );
    }

    /// Waits until the deliveries reach `target`, failing with `what` if
    /// that takes longer than [`STUCK`].
    async fn wait_for(&self, target: u64, what: &str) {
        let deadline = tokio::time::Instant::now() + STUCK;
        while self.probe.delivered.load(Ordering::Acquire) < target {
            tokio::time::timeout_at(deadline, self.probe.reached.notified())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{} with {}: {what} did not reach everyone in {STUCK:?}",
                        self.side.name(),
                        self.subscribers
                    )
                });
        }
    }

    /// Stops the receivers and drops the connections.
    async fn stop(self) {
        match self.bridge {
            Some((broker, bridge)) => {
                bridge.shutdown().await;
                broker.close();
                for task in self.tasks {
                    task.await.expect("a receiver ends cleanly");
                }
            }
            None => {
                for task in &self.tasks {
                    task.abort();
                }
                for task in self.tasks {
                    let _ = task.await;
                }
            }
        }
        assert_eq!(
            self.probe.delivered.load(Ordering::Acquire),
            self.probe.target.load(Ordering::Acquire),
            "every message delivered once, and nothing more"
        );
    }
}

/// The table's measurements of one side at one subscriber count.
struct Row {
    /// Which side.
    side: Side,
    /// Local subscribers asked for.
    subscribers: usize,
    /// Receivers actually subscribed.
    receivers: usize,
    /// Connections the side added to the server's `connected_clients`.
    connections: i64,
    /// Server CPU per publish, idle rate subtracted.
    cpu_per_publish: Duration,
    /// The idle rate subtracted, CPU per second.
    idle_per_second: Duration,
    /// Time Redis spent inside `PUBLISH` per call, from `INFO
    /// commandstats`.
    in_publish: Duration,
    /// Latency p50 and p99.
    p50: Duration,
    /// See `p50`.
    p99: Duration,
}

/// The server's CPU time so far (`used_cpu_sys + used_cpu_user`).
fn server_cpu(monitor: &mut redis::Connection) -> f64 {
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query(monitor)
        .expect("INFO cpu");
    info_field(&info, "used_cpu_sys").expect("used_cpu_sys")
        + info_field(&info, "used_cpu_user").expect("used_cpu_user")
}

/// Calls of `PUBLISH` and the microseconds Redis spent in them so far,
/// from `INFO commandstats`: the command's own work (matching, and
/// appending the message to every subscriber's output buffer), without
/// the socket writes that follow or the event loop around it.
fn publish_stats(monitor: &mut redis::Connection) -> (f64, f64) {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(monitor)
        .expect("INFO commandstats");
    let Some(line) = info
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_publish:"))
    else {
        return (0.0, 0.0);
    };
    let field = |name: &str| {
        line.split(',')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .expect("a cmdstat_publish field")
    };
    (field("calls"), field("usec"))
}

/// The server's `connected_clients`.
fn connected_clients(monitor: &mut redis::Connection) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query(monitor)
        .expect("INFO clients");
    info_field(&info, "connected_clients").expect("connected_clients") as i64
}

/// Everything one run shares.
struct Bench {
    /// The runtime the receivers and the publisher run on.
    runtime: Runtime,
    /// The private server.
    server: RedisServer,
    /// The `INFO` connection (blocking, used between runs).
    monitor: redis::Connection,
    /// The publisher.
    publisher: MultiplexedConnection,
    /// The clock payloads carry.
    base: Instant,
    /// Publishes per latency run and per CPU run.
    messages: u64,
    /// The most redis-rs connections.
    cap: usize,
    /// How long the idle rate is measured.
    idle: Duration,
    /// `connected_clients` with no side subscribed.
    baseline: i64,
}

/// Both sides at one subscriber count, both subscribed at once (each on
/// its own channel): criterion times each; the latency runs alternate
/// their rounds (bridge, redis-rs, bridge, ...) so the two are compared
/// moments apart on a machine whose load drifts; then each side's CPU
/// run.
fn measure(
    bench: &mut Bench,
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    subscribers: usize,
) -> [Row; 2] {
    let mut fleets = Vec::new();
    let mut connections = Vec::new();
    for side in [Side::Bridge, Side::RedisRs] {
        let before = connected_clients(&mut bench.monitor);
        fleets.push(bench.runtime.block_on(Fleet::start(
            side,
            subscribers,
            bench.cap,
            &bench.server,
            bench.base,
        )));
        connections.push(connected_clients(&mut bench.monitor) - before);
    }
    let mut payload = [b'x'; PAYLOAD];
    for fleet in &fleets {
        let id = BenchmarkId::new(fleet.side.name(), subscribers);
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                bench.runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        fleet.round(&mut bench.publisher, &mut payload).await;
                    }
                    black_box(start.elapsed())
                })
            });
        });
    }

    // The latency runs: one message in flight, sides alternating.
    for fleet in &fleets {
        fleet.probe.reset();
    }
    bench.runtime.block_on(async {
        for _ in 0..bench.messages {
            for fleet in &fleets {
                fleet.round(&mut bench.publisher, &mut payload).await;
            }
        }
    });
    let latencies: Vec<(Duration, Duration)> = fleets
        .iter()
        .map(|f| (f.probe.quantile(0.50), f.probe.quantile(0.99)))
        .collect();

    // The CPU runs: the server's idle rate (both sides connected), then
    // each side's publishes at one per CADENCE.
    let idle_start = server_cpu(&mut bench.monitor);
    std::thread::sleep(bench.idle);
    let idle_rate = (server_cpu(&mut bench.monitor) - idle_start) / bench.idle.as_secs_f64();
    let mut rows = Vec::new();
    for ((fleet, connections), (p50, p99)) in fleets.into_iter().zip(connections).zip(latencies) {
        let (calls_before, usec_before) = publish_stats(&mut bench.monitor);
        let before = server_cpu(&mut bench.monitor);
        let start = Instant::now();
        bench
            .runtime
            .block_on(fleet.stream(&mut bench.publisher, &mut payload, bench.messages));
        let elapsed = start.elapsed().as_secs_f64();
        let used = server_cpu(&mut bench.monitor) - before;
        let (calls, usec) = publish_stats(&mut bench.monitor);
        let net = (used - idle_rate * elapsed).max(0.0);
        rows.push(Row {
            side: fleet.side,
            subscribers,
            receivers: fleet.receivers,
            connections,
            cpu_per_publish: Duration::from_secs_f64(net / bench.messages as f64),
            idle_per_second: Duration::from_secs_f64(idle_rate.max(0.0)),
            in_publish: Duration::from_secs_f64(
                (usec - usec_before) / 1e6 / (calls - calls_before).max(1.0),
            ),
            p50,
            p99,
        });
        bench.runtime.block_on(fleet.stop());
    }
    // Closed connections leave the server a moment later; the next count
    // must not see them.
    support::eventually("the server to drop the sides' connections", || {
        connected_clients(&mut bench.monitor) == bench.baseline
    });
    let raw = rows.pop().expect("two rows");
    let bridge = rows.pop().expect("two rows");
    [bridge, raw]
}

/// Microseconds with one decimal.
fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

/// Prints the table.
fn print_table(rows: &[Row], bench: &Bench) {
    let (messages, cap, baseline) = (bench.messages, bench.cap, bench.baseline);
    println!();
    println!("CPU: {}", cpu());
    println!(
        "{PAYLOAD}-byte payloads. Latency: {messages} publishes per side, one in flight, sides \
         alternating. Redis CPU: {messages} publishes at one per {CADENCE:?}, net of the \
         server's idle rate (shown per second); in PUBLISH: Redis's own time inside the \
         command per call (INFO commandstats), the same run. Connections: what the side added to INFO \
         connected_clients ({baseline} before: the publisher and the INFO connection). \
         redis-rs capped at {cap} connections."
    );
    println!(
        "{:<9} {:>7} {:>9} {:>11} {:>16} {:>10} {:>13} {:>9} {:>9}",
        "side",
        "subs",
        "receivers",
        "connections",
        "redis µs/publish",
        "idle µs/s",
        "in PUBLISH µs",
        "p50 µs",
        "p99 µs"
    );
    for row in rows {
        println!(
            "{:<9} {:>7} {:>9} {:>11} {:>16} {:>10} {:>13} {:>9} {:>9}",
            row.side.name(),
            row.subscribers,
            row.receivers,
            row.connections,
            us(row.cpu_per_publish),
            us(row.idle_per_second),
            format!("{:.2}", row.in_publish.as_secs_f64() * 1e6),
            us(row.p50),
            us(row.p99)
        );
    }
    println!("bridge / redis-rs:");
    for pair in rows.chunks(2) {
        let [b, r] = pair else { continue };
        let ratio = |x: Duration, y: Duration| x.as_secs_f64() / y.as_secs_f64();
        println!(
            "  {:>6} subscribers ({} redis-rs connections): redis CPU {:.3}, in PUBLISH {:.3}, \
             p50 {:.2}, p99 {:.2}",
            b.subscribers,
            r.receivers,
            ratio(b.cpu_per_publish, r.cpu_per_publish),
            ratio(b.in_publish, r.in_publish),
            ratio(b.p50, r.p50),
            ratio(b.p99, r.p99)
        );
    }
}

/// Both sides at 1, 100 and 10,000 subscribers.
fn fanout(c: &mut Criterion) {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let quick = quick();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let client = redis::Client::open(server.url()).expect("a client");
    let mut monitor = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .expect("the INFO connection");
    let publisher = runtime
        .block_on(client.get_multiplexed_async_connection())
        .expect("the publisher's connection");
    let baseline = connected_clients(&mut monitor);
    let mut bench = Bench {
        runtime,
        server,
        monitor,
        publisher,
        base: Instant::now(),
        messages: if quick { QUICK_MESSAGES } else { MESSAGES },
        cap: if quick { QUICK_RAW_CAP } else { RAW_CAP },
        idle: if quick { QUICK_IDLE } else { IDLE },
        baseline,
    };

    let mut group = c.benchmark_group("fanout");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    if quick {
        group
            .warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_millis(300));
    } else {
        group
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
    }
    let mut rows = Vec::new();
    for n in sizes() {
        rows.extend(measure(&mut bench, &mut group, n));
    }
    group.finish();
    print_table(&rows, &bench);
}

criterion_group! {
    name = benches;
    // Plots say nothing the table does not.
    config = Criterion::default().without_plots();
    targets = fanout
}
criterion_main!(benches);
