//! tannoy-server beside redis-server, in the same run, on the same machine:
//! `PUBLISH` throughput, fan-out deliveries and latency, and memory per
//! connection.
//!
//! Both servers run as separate processes on free loopback ports: the
//! `tannoy-server` binary of this crate (built by `cargo bench` with the
//! bench profile) with its defaults, and `redis-server` (Debian's
//! `redis-server` package, 7.0) with persistence off. Both get the same
//! clients.
//!
//! **`publish/<pipeline>/<server>`**: `redis-benchmark -c 50 -n N [-P 16]
//! --csv PUBLISH bench:publish <64 bytes>`, no subscribers, unpipelined
//! (`p1`) and 16 requests per pipeline (`p16`). One criterion iteration
//! is one `redis-benchmark` run; its time is the one `redis-benchmark`
//! measured (`N / rps` from its CSV), so criterion's `thrpt` is
//! `redis-benchmark`'s requests per second.
//!
//! **`fanout/<subscribers>/<server>`**: 1, 50 and 500 subscriber
//! connections (RESP2, `SUBSCRIBE bench:fanout`, read by tasks of this
//! process) and one publisher connection. One iteration is a burst of
//! publishes (64-byte payloads, the first 8 bytes the send time),
//! pipelined 16 to a write with at most 64 unanswered, timed from the
//! first write until every subscriber has received every message. Every
//! `PUBLISH` reply is checked to count every subscriber, and every frame
//! received to be the message Redis sends. Criterion's `thrpt` is
//! deliveries per second (a publish counts once per subscriber);
//! publish-to-receive latency is measured for every delivery.
//!
//! **Memory**: each server's resident set (`VmRSS` in `/proc/PID/status`)
//! before and after opening 1,000 connections that each sent one `PING`
//! (idle), then after each subscribed to a channel of its own
//! (subscribed); read at once and again after 3 s, once Redis's
//! once-a-second housekeeping has shrunk idle clients' buffers.
//!
//! **Over TLS** (`fanout_tls/<subscribers>/<server>`, and memory per TLS
//! connection): the same fan-out and memory measurements on a second pair
//! of fresh processes, `tannoy-server --tls-port 0` (TLS only) and
//! `redis-server --tls-port` (Debian's build links OpenSSL), both with one
//! certificate from a CA generated for the run; every client is a rustls
//! client (tokio-rustls for the fan-out) that verifies it. Both servers
//! negotiate TLS 1.3 with the same client, so they do the same
//! cryptographic work per byte.
//!
//! After criterion's runs, a few more rounds run interleaved (tannoy,
//! redis, redis, tannoy, ...), so the two are compared moments apart on a
//! machine whose load may drift. The tables at the end give, per server,
//! the median over every run (warm-up included) of the rate, p99 latency
//! (for `PUBLISH`, as `redis-benchmark` reports it), and the median of the
//! per-round tannoy / redis ratios. The CPU (model name, family, model) is
//! printed first.
//!
//! **Run**: `cargo bench -p tannoy-server --bench versus_redis` (about
//! 5 minutes). `redis-server` and `redis-benchmark` are found on `PATH`
//! (or in `/usr/bin`; `TANNOY_REDIS_SERVER` names another `redis-server`);
//! without them the benchmark says so and does nothing, unless
//! `TANNOY_REQUIRE_REDIS=1`, which makes that a failure.
//! `TANNOY_BENCH_QUICK=1` runs a smoke-sized version (so does running the
//! target without `--bench`, as `cargo test --benches` does).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group,
    criterion_main, measurement::WallTime,
};
use tannoy_test_support::{
    cpu, find_on_path, find_redis_server, free_port, quick, redis_server_command, resp_request,
    skip,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// Payload bytes of every published message.
const PAYLOAD: usize = 64;

/// `redis-benchmark` connections (its default).
const BENCHMARK_CLIENTS: u32 = 50;

/// Publishes per write of the fan-out publisher.
const BATCH: u64 = 16;

/// Most unanswered publishes of the fan-out publisher.
const WINDOW: u64 = 64;

/// Channel of the fan-out benchmark.
const FANOUT_CHANNEL: &[u8] = b"bench:fanout";

/// Longest any one step may take before the run is declared stuck.
const STUCK: Duration = Duration::from_secs(60);

/// The two programs the benchmark needs besides this crate's.
struct Tools {
    /// `redis-server`.
    redis_server: PathBuf,
    /// `redis-benchmark`.
    redis_benchmark: PathBuf,
}

impl Tools {
    /// Finds both, or says what is missing (and fails if that is required).
    fn find() -> Option<Tools> {
        let redis_server = find_redis_server();
        let redis_benchmark = find_on_path("redis-benchmark");
        match (redis_server, redis_benchmark) {
            (Some(redis_server), Some(redis_benchmark)) => Some(Tools {
                redis_server,
                redis_benchmark,
            }),
            _ => skip(
                "redis-server or redis-benchmark not found (Debian packages \
                 redis-server and redis-tools)",
            ),
        }
    }
}

/// A server process on a loopback port, killed when dropped.
struct ServerProcess {
    /// `tannoy` or `redis`, as the benchmark ids and tables name it.
    name: &'static str,
    /// The process.
    child: Child,
    /// Where it listens.
    addr: SocketAddr,
    /// A private directory to remove afterwards (redis-server's log).
    dir: Option<PathBuf>,
}

impl ServerProcess {
    /// This crate's `tannoy-server` on a free port (`--port 0`), with its
    /// default settings.
    fn tannoy() -> ServerProcess {
        Self::tannoy_with(&["--port", "0"], false)
    }

    /// This crate's `tannoy-server` serving TLS only, on a free port, with
    /// `tls`'s certificate.
    fn tannoy_tls(tls: &TlsFiles) -> ServerProcess {
        let [cert, key] = [&tls.cert, &tls.key].map(|p| p.display().to_string());
        let args = [
            "--tls-port",
            "0",
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
        ];
        Self::tannoy_with(&args, true)
    }

    /// `tannoy-server` with `args`; the address is its first `listening
    /// on` line's, or with `tls` its `(tls)` line's.
    fn tannoy_with(args: &[&str], tls: bool) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tannoy-server"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run tannoy-server");
        let stdout = child.stdout.take().expect("tannoy-server's stdout");
        let (tx, rx) = mpsc::channel();
        // Passes on every line, draining stdout until the process ends.
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let _ = tx.send(line.unwrap_or_default());
            }
        });
        let next = || {
            rx.recv_timeout(Duration::from_secs(30))
                .expect("tannoy-server prints `listening on HOST:PORT`")
        };
        let mut line = next();
        if tls {
            while !line.ends_with(" (tls)") {
                line = next();
            }
            line.truncate(line.len() - " (tls)".len());
        }
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line from tannoy-server: {line:?}"));
        ServerProcess {
            name: "tannoy",
            child,
            addr,
            dir: None,
        }
    }

    /// `redis-server` on a free port, persistence off.
    fn redis(binary: &Path) -> ServerProcess {
        Self::redis_with(binary, None)
    }

    /// `redis-server` with its plaintext port and, with `tls`, a TLS port
    /// with `tls`'s certificate, which is then the address the benchmark
    /// uses.
    fn redis_with(binary: &Path, tls: Option<&TlsFiles>) -> ServerProcess {
        let mut failure = String::new();
        for _ in 0..5 {
            match Self::try_redis(binary, tls) {
                Ok(server) => return server,
                Err(e) => failure = e,
            }
        }
        panic!("could not start {}: {failure}", binary.display());
    }

    /// One attempt at [`redis_with`](Self::redis_with), on one port (two
    /// with TLS).
    fn try_redis(binary: &Path, tls: Option<&TlsFiles>) -> Result<ServerProcess, String> {
        let port = free_port().map_err(|e| e.to_string())?;
        let mut tls_args = Vec::new();
        let mut addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        if let Some(tls) = tls {
            let tls_port = free_port().map_err(|e| e.to_string())?;
            addr.set_port(tls_port);
            tls_args.extend(["--tls-port".into(), tls_port.to_string()]);
            for (flag, path) in [
                ("--tls-cert-file", &tls.cert),
                ("--tls-key-file", &tls.key),
                ("--tls-ca-cert-file", &tls.ca),
            ] {
                tls_args.extend([flag.to_owned(), path.display().to_string()]);
            }
            tls_args.extend(["--tls-auth-clients".into(), "no".into()]);
        }
        let dir =
            std::env::temp_dir().join(format!("tannoy-bench-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let child = redis_server_command(binary, port, &dir)
            .args(&tls_args)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let plaintext = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let server = ServerProcess {
            name: "redis",
            child,
            addr,
            dir: Some(dir),
        };
        // Ready when it answers, and it is our process that answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        let wanted = format!("process_id:{}\r\n", server.child.id());
        loop {
            if let Ok(mut conn) = TcpStream::connect(plaintext) {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                conn.write_all(b"INFO server\r\n")
                    .map_err(|e| e.to_string())?;
                let mut reply = Vec::new();
                let mut buf = [0; 4096];
                while !reply.windows(wanted.len()).any(|w| w == wanted.as_bytes()) {
                    match conn.read(&mut buf) {
                        Ok(n) if n > 0 => reply.extend_from_slice(&buf[..n]),
                        _ => return Err(format!("port {port} is served by another process")),
                    }
                }
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err("no answer within 10 s".to_owned());
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Resident set size in bytes (`VmRSS`).
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read the server's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .expect("VmRSS in /proc/PID/status")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

// ---------------------------------------------------------------------
// TLS: certificates and clients
// ---------------------------------------------------------------------

/// A CA generated for the run and a server certificate it signed for
/// 127.0.0.1, in files both servers read; removed when dropped.
struct TlsFiles {
    /// The private directory holding the files.
    dir: PathBuf,
    /// The CA certificate, PEM.
    ca_pem: String,
    /// `ca.crt`.
    ca: PathBuf,
    /// `server.crt`.
    cert: PathBuf,
    /// `server.key`.
    key: PathBuf,
}

impl TlsFiles {
    /// Generates the CA and the server certificate (ECDSA P-256, rcgen's
    /// default, as a current Azure or Let's Encrypt certificate may be).
    fn generate() -> TlsFiles {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "tannoy bench CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign the CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("a server key");
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server parameters");
        let cert = params.signed_by(&key, &issuer).expect("sign");
        let dir = std::env::temp_dir().join(format!("tannoy-bench-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the certificates");
        let write = |name: &str, contents: &str| {
            let path = dir.join(name);
            std::fs::write(&path, contents).expect("write a certificate file");
            path
        };
        TlsFiles {
            ca_pem: ca_cert.pem(),
            ca: write("ca.crt", &ca_cert.pem()),
            cert: write("server.crt", &cert.pem()),
            key: write("server.key", &key.serialize_pem()),
            dir,
        }
    }

    /// A rustls client configuration that trusts the CA alone.
    #[allow(
        deprecated,
        reason = "the ring provider, deprecated for lacking post-quantum key exchange, is the \
                  one tannoy-server uses, and needs no cmake to build"
    )]
    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.expect("CA PEM")).expect("trust the CA");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The name the clients check the servers' certificate against.
fn server_name() -> ServerName<'static> {
    ServerName::IpAddress(std::net::IpAddr::from(Ipv4Addr::LOCALHOST).into())
}

/// An async client connection: TCP, or TLS over TCP.
trait AsyncConn: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncConn for T {}

/// A blocking client connection: TCP, or TLS over TCP.
trait SyncConn: Read + Write {}

impl<T: Read + Write> SyncConn for T {}

/// How the benchmark's clients reach a server.
#[derive(Clone)]
enum Connector {
    /// Plain TCP.
    Tcp,
    /// TLS with this configuration, verifying the server's certificate.
    Tls(Arc<rustls::ClientConfig>),
}

impl Connector {
    /// A connection to `addr`, its TLS handshake done.
    async fn connect(&self, addr: SocketAddr) -> Box<dyn AsyncConn> {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tcp.set_nodelay(true).expect("TCP_NODELAY");
        match self {
            Connector::Tcp => Box::new(tcp),
            Connector::Tls(config) => Box::new(
                tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(server_name(), tcp)
                    .await
                    .expect("TLS handshake"),
            ),
        }
    }

    /// A blocking connection to `addr`, its TLS handshake done.
    fn connect_sync(&self, addr: SocketAddr) -> Box<dyn SyncConn> {
        let mut tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(STUCK)).expect("read timeout");
        match self {
            Connector::Tcp => Box::new(tcp),
            Connector::Tls(config) => {
                let mut tls = rustls::ClientConnection::new(Arc::clone(config), server_name())
                    .expect("a TLS client");
                while tls.is_handshaking() {
                    tls.complete_io(&mut tcp).expect("TLS handshake");
                }
                Box::new(rustls::StreamOwned::new(tls, tcp))
            }
        }
    }
}

/// The median of `values` (the mean of the middle two when even).
fn median(values: &[f64]) -> f64 {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Interleaved round order: tannoy, redis, then redis, tannoy, ..., so
/// neither side always goes first.
fn round_order(round: usize) -> [usize; 2] {
    if round % 2 == 0 { [0, 1] } else { [1, 0] }
}

/// Measurements of one workload on one server.
#[derive(Default)]
struct Record {
    /// Rate of every run: requests or deliveries per second.
    rates: Vec<f64>,
    /// The p99 latency of every `redis-benchmark` run, in ms.
    p99_ms: Vec<f64>,
    /// Rate of each interleaved round.
    rounds: Vec<f64>,
}

// ---------------------------------------------------------------------
// PUBLISH with redis-benchmark
// ---------------------------------------------------------------------

/// What one `redis-benchmark` run reported.
struct BenchmarkRun {
    /// Requests per second.
    rps: f64,
    /// 99th percentile latency, in milliseconds.
    p99_ms: f64,
}

/// Runs `redis-benchmark` with `PUBLISH` against `addr` and parses its
/// CSV line: `"test","rps","avg_latency_ms","min_latency_ms",
/// "p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"`.
fn redis_benchmark(tool: &Path, addr: SocketAddr, requests: u64, pipeline: u32) -> BenchmarkRun {
    let payload = "x".repeat(PAYLOAD);
    let mut child = Command::new(tool)
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-c", &BENCHMARK_CLIENTS.to_string()])
        .args(["-n", &requests.to_string(), "-P", &pipeline.to_string()])
        .args(["--csv", "PUBLISH", "bench:publish", &payload])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run redis-benchmark");
    let deadline = Instant::now() + STUCK;
    while child
        .try_wait()
        .expect("wait for redis-benchmark")
        .is_none()
    {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("redis-benchmark against {addr} did not finish within {STUCK:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
    let output = child.wait_with_output().expect("redis-benchmark's output");
    let text = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<f64> = text
        .lines()
        .find(|l| l.starts_with("\"PUBLISH"))
        .map(|l| {
            l.split(',')
                .skip(1)
                .map(|f| f.trim_matches('"').parse().unwrap_or(f64::NAN))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        output.status.success() && fields.len() == 7 && fields[0] > 0.0,
        "redis-benchmark against {addr} failed: {text}"
    );
    BenchmarkRun {
        rps: fields[0],
        p99_ms: fields[5],
    }
}

/// `PUBLISH` throughput, unpipelined and pipelined, on both servers.
fn publish(
    c: &mut Criterion,
    tools: &Tools,
    servers: &[ServerProcess; 2],
    quick: bool,
) -> Vec<(String, [Record; 2])> {
    let mut group = c.benchmark_group("publish");
    configure(&mut group, quick);
    let rounds = if quick { 1 } else { 4 };
    let mut results = Vec::new();
    // Requests per run: about a third of a second on a 2-CPU machine.
    let workloads: [(&str, u32, u64); 2] = if quick {
        [("p1", 1, 500), ("p16", 16, 5_000)]
    } else {
        [("p1", 1, 5_000), ("p16", 16, 80_000)]
    };
    for (label, pipeline, requests) in workloads {
        let records: [Mutex<Record>; 2] = Default::default();
        group.throughput(Throughput::Elements(requests));
        for (server, record) in servers.iter().zip(&records) {
            group.bench_function(BenchmarkId::new(label, server.name), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let run = redis_benchmark(
                            &tools.redis_benchmark,
                            server.addr,
                            requests,
                            pipeline,
                        );
                        let mut record = record.lock().expect("record");
                        record.rates.push(run.rps);
                        record.p99_ms.push(run.p99_ms);
                        total += Duration::from_secs_f64(requests as f64 / run.rps);
                    }
                    total
                });
            });
        }
        for round in 0..rounds {
            for side in round_order(round) {
                let run = redis_benchmark(
                    &tools.redis_benchmark,
                    servers[side].addr,
                    requests,
                    pipeline,
                );
                let mut record = records[side].lock().expect("record");
                record.rates.push(run.rps);
                record.p99_ms.push(run.p99_ms);
                record.rounds.push(run.rps);
            }
        }
        let [a, b] = records;
        let name = format!("PUBLISH, -P {pipeline} (-c {BENCHMARK_CLIENTS} -n {requests})");
        results.push((
            name,
            [
                a.into_inner().expect("record"),
                b.into_inner().expect("record"),
            ],
        ));
    }
    group.finish();
    results
}

// ---------------------------------------------------------------------
// Fan-out
// ---------------------------------------------------------------------

/// State shared by a fan-out fixture's subscriber tasks and its publisher.
struct FanoutShared {
    /// When the fixture started: send times are nanoseconds since this.
    base: Instant,
    /// Messages each subscriber must have received, in total, for the
    /// current burst to be complete.
    target: AtomicU64,
    /// Subscribers still short of `target`.
    remaining: AtomicUsize,
    /// Signalled when `remaining` reaches zero.
    done: Notify,
    /// Publish-to-receive latency of every delivery, in nanoseconds.
    latencies: Mutex<Vec<u64>>,
}

impl FanoutShared {
    /// Nanoseconds since `base`.
    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The bytes of one message frame as both servers send it (RESP2).
fn message_frame_prefix() -> Vec<u8> {
    let mut frame = b"*3\r\n$7\r\nmessage\r\n".to_vec();
    frame.extend_from_slice(format!("${}\r\n", FANOUT_CHANNEL.len()).as_bytes());
    frame.extend_from_slice(FANOUT_CHANNEL);
    frame.extend_from_slice(format!("\r\n${PAYLOAD}\r\n").as_bytes());
    frame
}

/// One subscriber connection's reader: checks and times every message.
async fn subscriber(mut conn: Box<dyn AsyncConn>, shared: Arc<FanoutShared>) {
    let prefix = message_frame_prefix();
    let frame_len = prefix.len() + PAYLOAD + 2;
    let mut buf = vec![0; 64 * 1024];
    let mut filled = 0;
    let mut received: u64 = 0;
    let mut latencies = Vec::new();
    loop {
        let n = match conn.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let now = shared.now();
        filled += n;
        let before = received;
        let mut at = 0;
        while filled - at >= frame_len {
            let frame = &buf[at..at + frame_len];
            assert!(
                frame.starts_with(&prefix) && frame.ends_with(b"\r\n"),
                "not the message frame Redis sends: {:?}",
                String::from_utf8_lossy(frame)
            );
            let sent_at = &frame[prefix.len()..prefix.len() + 8];
            let sent_at = u64::from_le_bytes(sent_at.try_into().expect("8 bytes"));
            latencies.push(now.saturating_sub(sent_at));
            received += 1;
            at += frame_len;
        }
        buf.copy_within(at..filled, 0);
        filled -= at;
        if !latencies.is_empty() {
            shared
                .latencies
                .lock()
                .expect("latencies")
                .append(&mut latencies);
        }
        let target = shared.target.load(Ordering::SeqCst);
        if before < target
            && received >= target
            && shared.remaining.fetch_sub(1, Ordering::SeqCst) == 1
        {
            shared.done.notify_one();
        }
    }
}

/// One server's fan-out setup: subscriber connections and a publisher.
struct Fanout {
    /// What the subscriber tasks and the publisher share.
    shared: Arc<FanoutShared>,
    /// The subscriber tasks.
    tasks: Vec<JoinHandle<()>>,
    /// The publisher's connection.
    publisher: Box<dyn AsyncConn>,
    /// Subscriber connections.
    subscribers: usize,
    /// Publishes per burst.
    burst: u64,
}

impl Fanout {
    /// Connects `subscribers` subscribers and a publisher to `addr`.
    async fn connect(
        connector: &Connector,
        addr: SocketAddr,
        subscribers: usize,
        burst: u64,
    ) -> Fanout {
        let shared = Arc::new(FanoutShared {
            base: Instant::now(),
            target: AtomicU64::new(0),
            remaining: AtomicUsize::new(0),
            done: Notify::new(),
            latencies: Mutex::new(Vec::new()),
        });
        let subscribe = resp_request(&[b"SUBSCRIBE", FANOUT_CHANNEL]);
        let mut confirmation = b"*3\r\n$9\r\nsubscribe\r\n".to_vec();
        confirmation.extend_from_slice(format!("${}\r\n", FANOUT_CHANNEL.len()).as_bytes());
        confirmation.extend_from_slice(FANOUT_CHANNEL);
        confirmation.extend_from_slice(b"\r\n:1\r\n");
        let mut tasks = Vec::with_capacity(subscribers);
        for _ in 0..subscribers {
            let mut conn = connector.connect(addr).await;
            conn.write_all(&subscribe).await.expect("SUBSCRIBE");
            conn.flush().await.expect("SUBSCRIBE");
            let mut reply = vec![0; confirmation.len()];
            conn.read_exact(&mut reply).await.expect("confirmation");
            assert_eq!(reply, confirmation, "subscribe confirmation");
            tasks.push(tokio::spawn(subscriber(conn, Arc::clone(&shared))));
        }
        let publisher = connector.connect(addr).await;
        Fanout {
            shared,
            tasks,
            publisher,
            subscribers,
            burst,
        }
    }

    /// Deliveries of one burst.
    fn deliveries(&self) -> u64 {
        self.burst * self.subscribers as u64
    }

    /// Publishes one burst and waits until every subscriber has it all;
    /// returns the time taken.
    async fn burst(&mut self) -> Duration {
        let shared = &self.shared;
        shared.remaining.store(self.subscribers, Ordering::SeqCst);
        shared.target.fetch_add(self.burst, Ordering::SeqCst);
        let reply = format!(":{}\r\n", self.subscribers).into_bytes();
        let mut replies = vec![0; 64 * 1024];
        let mut filled = 0;
        let mut batch = Vec::new();
        let (mut sent, mut answered) = (0, 0);
        let start = Instant::now();
        while answered < self.burst {
            while sent < self.burst && sent - answered + BATCH <= WINDOW {
                let count = BATCH.min(self.burst - sent);
                let mut payload = [b'x'; PAYLOAD];
                payload[..8].copy_from_slice(&shared.now().to_le_bytes());
                batch.clear();
                for _ in 0..count {
                    batch.extend_from_slice(&resp_request(&[b"PUBLISH", FANOUT_CHANNEL, &payload]));
                }
                self.publisher.write_all(&batch).await.expect("PUBLISH");
                // TLS: out of the session's buffer onto the socket.
                self.publisher.flush().await.expect("PUBLISH");
                sent += count;
            }
            let n = self
                .publisher
                .read(&mut replies[filled..])
                .await
                .expect("PUBLISH replies");
            assert!(n > 0, "the server closed the publisher's connection");
            filled += n;
            let whole = filled / reply.len() * reply.len();
            for answer in replies[..whole].chunks(reply.len()) {
                assert_eq!(
                    answer,
                    &reply[..],
                    "PUBLISH must reach every subscriber: {:?}",
                    String::from_utf8_lossy(answer)
                );
            }
            answered += (whole / reply.len()) as u64;
            replies.copy_within(whole..filled, 0);
            filled -= whole;
        }
        tokio::time::timeout(STUCK, shared.done.notified())
            .await
            .expect("every subscriber receives every message");
        start.elapsed()
    }

    /// The latencies recorded so far, in nanoseconds.
    fn take_latencies(&self) -> Vec<u64> {
        std::mem::take(&mut *self.shared.latencies.lock().expect("latencies"))
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The `q`-quantile of `values` (which it reorders), or NaN when empty.
fn quantile(values: &mut [u64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let index = ((values.len() - 1) as f64 * q).round() as usize;
    *values.select_nth_unstable(index).1 as f64
}

/// Fan-out results of one size on one server.
struct FanoutResult {
    /// Deliveries per second of every burst, and of the interleaved ones.
    record: Record,
    /// Median publish-to-receive latency, in microseconds.
    p50_us: f64,
    /// 99th percentile, in microseconds.
    p99_us: f64,
}

/// Fan-out to 1, 50 and 500 subscriber connections on both servers,
/// through `connector`, as criterion group `name`.
fn fanout(
    c: &mut Criterion,
    name: &str,
    connector: &Connector,
    runtime: &Runtime,
    servers: &[ServerProcess; 2],
    quick: bool,
) -> Vec<(usize, [FanoutResult; 2])> {
    let mut group = c.benchmark_group(name);
    configure(&mut group, quick);
    let rounds = if quick { 1 } else { 4 };
    // Publishes per burst: about 100,000 deliveries (20,000 for one
    // subscriber, where the publisher's round trips bound the rate).
    let sizes: &[(usize, u64)] = if quick {
        &[(1, 200), (50, 100)]
    } else {
        &[(1, 20_000), (50, 2_000), (500, 200)]
    };
    let mut results = Vec::new();
    for &(subscribers, burst) in sizes {
        let mut fixtures = servers.each_ref().map(|server| {
            runtime.block_on(Fanout::connect(connector, server.addr, subscribers, burst))
        });
        group.throughput(Throughput::Elements(fixtures[0].deliveries()));
        let mut records: [Record; 2] = Default::default();
        for (fixture, (server, record)) in fixtures.iter_mut().zip(servers.iter().zip(&mut records))
        {
            let deliveries = fixture.deliveries() as f64;
            group.bench_function(
                BenchmarkId::new(subscribers.to_string(), server.name),
                |b| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let elapsed = runtime.block_on(fixture.burst());
                            record.rates.push(deliveries / elapsed.as_secs_f64());
                            total += elapsed;
                        }
                        total
                    });
                },
            );
        }
        for round in 0..rounds {
            for side in round_order(round) {
                let elapsed = runtime.block_on(fixtures[side].burst());
                let rate = fixtures[side].deliveries() as f64 / elapsed.as_secs_f64();
                records[side].rates.push(rate);
                records[side].rounds.push(rate);
            }
        }
        let [a, b] = records;
        let results_of = |fixture: &Fanout, record: Record| {
            let mut latencies = fixture.take_latencies();
            FanoutResult {
                record,
                p50_us: quantile(&mut latencies, 0.50) / 1e3,
                p99_us: quantile(&mut latencies, 0.99) / 1e3,
            }
        };
        let [ta, tb] = &fixtures;
        results.push((subscribers, [results_of(ta, a), results_of(tb, b)]));
        // Close the connections before the next size connects.
        drop(fixtures);
    }
    group.finish();
    results
}

// ---------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------

/// Resident bytes per connection, read at once and after a pause.
struct MemoryResult {
    /// Connections opened.
    connections: usize,
    /// Per idle connection (one `PING` served): at once, after the pause.
    idle: [f64; 2],
    /// Per connection subscribed to a channel of its own, counted from
    /// before any connection opened: at once, after the pause.
    subscribed: [f64; 2],
}

/// Reads exactly `expected.len()` bytes and checks them.
fn expect_reply(conn: &mut dyn SyncConn, expected: &[u8]) {
    let mut reply = vec![0; expected.len()];
    conn.read_exact(&mut reply).expect("a reply");
    assert_eq!(
        reply,
        expected,
        "unexpected reply {:?}",
        String::from_utf8_lossy(&reply)
    );
}

/// Measures `server`'s memory per idle and per subscribed connection,
/// connecting through `connector`.
fn memory(
    server: &ServerProcess,
    connector: &Connector,
    connections: usize,
    pause: Duration,
) -> MemoryResult {
    let per = |after: u64, before: u64| (after as f64 - before as f64) / connections as f64;
    let before = server.rss();
    let mut conns: Vec<Box<dyn SyncConn>> = (0..connections)
        .map(|_| connector.connect_sync(server.addr))
        .collect();
    for conn in &mut conns {
        conn.write_all(b"PING\r\n").expect("PING");
        conn.flush().expect("PING");
    }
    for conn in &mut conns {
        expect_reply(conn.as_mut(), b"+PONG\r\n");
    }
    let idle_now = server.rss();
    thread::sleep(pause);
    let idle_later = server.rss();
    for (i, conn) in conns.iter_mut().enumerate() {
        let channel = format!("memory:{i}");
        conn.write_all(&resp_request(&[b"SUBSCRIBE", channel.as_bytes()]))
            .expect("SUBSCRIBE");
        conn.flush().expect("SUBSCRIBE");
    }
    for (i, conn) in conns.iter_mut().enumerate() {
        let channel = format!("memory:{i}");
        let confirmation = format!(
            "*3\r\n$9\r\nsubscribe\r\n${}\r\n{channel}\r\n:1\r\n",
            channel.len()
        );
        expect_reply(conn.as_mut(), confirmation.as_bytes());
    }
    let subscribed_now = server.rss();
    thread::sleep(pause);
    let subscribed_later = server.rss();
    drop(conns);
    MemoryResult {
        connections,
        idle: [per(idle_now, before), per(idle_later, before)],
        subscribed: [per(subscribed_now, before), per(subscribed_later, before)],
    }
}

// ---------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------

/// Criterion settings for the groups here: ten long samples each.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>, quick: bool) {
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    if quick {
        group
            .warm_up_time(Duration::from_millis(50))
            .measurement_time(Duration::from_millis(200));
    } else {
        group
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
    }
}

/// `tannoy / redis` of the medians of `[tannoy, redis]`.
fn ratio(values: [f64; 2]) -> f64 {
    values[0] / values[1]
}

/// The median of the per-round ratios tannoy / redis.
fn round_ratio(tannoy: &Record, redis: &Record) -> f64 {
    let ratios: Vec<f64> = tannoy
        .rounds
        .iter()
        .zip(&redis.rounds)
        .map(|(t, r)| t / r)
        .collect();
    median(&ratios)
}

/// Prints a fan-out table.
fn print_fanout(title: &str, fanout: &[(usize, [FanoutResult; 2])]) {
    println!(
        "{title}, 1 publisher ({BATCH} publishes a write, at most {WINDOW} unanswered), \
         {PAYLOAD}-byte payloads (deliveries/s; publish-to-receive latency)"
    );
    println!(
        "{:<12} {:>14} {:>14} {:>8} {:>8} {:>11} {:>11} {:>11} {:>11}",
        "subscribers",
        "tannoy del/s",
        "redis del/s",
        "ratio",
        "rounds",
        "tannoy p50",
        "redis p50",
        "tannoy p99",
        "redis p99"
    );
    for (subscribers, [t, r]) in fanout {
        let rates = [median(&t.record.rates), median(&r.record.rates)];
        println!(
            "{:<12} {:>14.0} {:>14.0} {:>7.2}x {:>7.2}x {:>9.0}us {:>9.0}us {:>9.0}us {:>9.0}us",
            subscribers,
            rates[0],
            rates[1],
            ratio(rates),
            round_ratio(&t.record, &r.record),
            t.p50_us,
            r.p50_us,
            t.p99_us,
            r.p99_us,
        );
    }
    println!();
}

/// Prints a memory table (tannoy's row, then redis's).
fn print_memory(title: &str, pause: Duration, memory: &[MemoryResult; 2]) {
    println!(
        "{title}: resident bytes per connection ({} connections; at once / after {pause:?})",
        memory[0].connections
    );
    println!("{:<8} {:>20} {:>20}", "server", "idle (PING)", "subscribed");
    for (name, m) in ["tannoy", "redis"].iter().zip(memory) {
        println!(
            "{:<8} {:>9.0} / {:>8.0} {:>9.0} / {:>8.0}",
            name, m.idle[0], m.idle[1], m.subscribed[0], m.subscribed[1]
        );
    }
    println!();
}

/// Runs everything and prints the tables.
fn versus_redis(c: &mut Criterion) {
    let Some(tools) = Tools::find() else {
        return;
    };
    let quick = quick();
    println!("CPU: {}", cpu());
    let (connections, pause) = if quick {
        (50, Duration::from_millis(100))
    } else {
        (1_000, Duration::from_secs(3))
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime for the fan-out clients");

    let servers = [
        ServerProcess::tannoy(),
        ServerProcess::redis(&tools.redis_server),
    ];
    // Memory first, on servers nothing else has used yet.
    let plain_memory = servers
        .each_ref()
        .map(|s| memory(s, &Connector::Tcp, connections, pause));
    let publish = publish(c, &tools, &servers, quick);
    let plain_fanout = fanout(c, "fanout", &Connector::Tcp, &runtime, &servers, quick);
    drop(servers);

    // TLS, on a fresh pair.
    let tls = TlsFiles::generate();
    let tls_servers = [
        ServerProcess::tannoy_tls(&tls),
        ServerProcess::redis_with(&tools.redis_server, Some(&tls)),
    ];
    let connector = Connector::Tls(tls.client_config());
    let tls_memory = tls_servers
        .each_ref()
        .map(|s| memory(s, &connector, connections, pause));
    let tls_fanout = fanout(c, "fanout_tls", &connector, &runtime, &tls_servers, quick);

    println!();
    println!("CPU: {}", cpu());
    println!();
    println!(
        "redis-benchmark PUBLISH, no subscribers (requests/s; p99 as redis-benchmark reports it)"
    );
    println!(
        "{:<44} {:>12} {:>12} {:>8} {:>8} {:>10} {:>10}",
        "workload", "tannoy rps", "redis rps", "ratio", "rounds", "tannoy p99", "redis p99"
    );
    for (name, records) in &publish {
        let rps = [median(&records[0].rates), median(&records[1].rates)];
        println!(
            "{:<44} {:>12.0} {:>12.0} {:>7.2}x {:>7.2}x {:>8.2}ms {:>8.2}ms",
            name,
            rps[0],
            rps[1],
            ratio(rps),
            round_ratio(&records[0], &records[1]),
            median(&records[0].p99_ms),
            median(&records[1].p99_ms),
        );
    }
    println!();
    print_fanout("fan-out", &plain_fanout);
    print_fanout("fan-out over TLS", &tls_fanout);
    print_memory("memory", pause, &plain_memory);
    print_memory("memory over TLS", pause, &tls_memory);
    drop(runtime);
}

criterion_group! {
    name = benches;
    // Ten long samples a benchmark; plots would add nothing to the tables.
    config = Criterion::default().without_plots();
    targets = versus_redis
}
criterion_main!(benches);
