//! Private `redis-server` processes for the bridge's tests: one server, a
//! server restarted on the same port, a TLS-only server, or a three-node
//! Redis Cluster, each on free loopback ports with nothing on disk.
//!
//! # Environment
//!
//! | variable | effect |
//! |---|---|
//! | `TANNOY_REDIS_SERVER` | path of the `redis-server` binary, instead of searching `PATH` and `/usr/bin` |
//! | `TANNOY_REQUIRE_REDIS` | when set to anything but empty or `0`, a missing binary fails the test instead of skipping it |

#![allow(
    dead_code,
    unused_imports,
    reason = "shared by several test files, each using a subset"
)]

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub(crate) use tannoy_test_support::{REQUIRE_ENV, SERVER_ENV, find_on_path, required, skip};
use tannoy_test_support::{find_redis_server, redis_server_command};

/// How long a server may take to come up, or a test to see something
/// happen: far beyond what a local server needs, short enough to fail
/// instead of hanging.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// A free loopback port (free when asked; the server may race for it).
pub(crate) fn free_port() -> u16 {
    tannoy_test_support::free_port().expect("a free loopback port")
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// A `redis-server` process private to one test, on a loopback port.
/// Dropping it kills it and removes its directory.
#[derive(Debug)]
pub(crate) struct RedisServer {
    /// The binary, for restarts.
    binary: PathBuf,
    /// The process, while it runs.
    child: Option<Child>,
    /// Its port.
    port: u16,
    /// Its private directory.
    dir: PathBuf,
    /// Extra arguments it was started with.
    extra: Vec<String>,
    /// For a TLS-only server: the directory of `ca.crt`, `server.crt` and
    /// `server.key`.
    tls: Option<PathBuf>,
}

/// Marks a spawn failure caused by a `redis-server` built without TLS.
const NO_TLS: &str = "redis-server has no TLS support";

impl RedisServer {
    /// Starts a server, or skips (see [`skip`]) when none is installed.
    pub(crate) fn start() -> Option<RedisServer> {
        Self::start_with(&[])
    }

    /// As [`start`](Self::start), with extra `--name value` arguments.
    pub(crate) fn start_with(extra: &[&str]) -> Option<RedisServer> {
        Self::start_inner(extra, None)
    }

    /// A server that speaks only TLS, with the certificate (signed by
    /// `ca.crt`) and key in `dir`; clients need no certificate unless
    /// `extra` says `--tls-auth-clients yes` (this module's own queries
    /// present `server.crt`, which may serve as a client's too). Skips (or
    /// fails, see [`skip`]) when `redis-server` is missing or was built
    /// without TLS.
    pub(crate) fn start_tls(dir: &Path, extra: &[&str]) -> Option<RedisServer> {
        Self::start_inner(extra, Some(dir.to_owned()))
    }

    /// Starts a server with `extra` arguments, TLS-only when `tls` names
    /// the certificates' directory.
    fn start_inner(extra: &[&str], tls: Option<PathBuf>) -> Option<RedisServer> {
        let Some(binary) = find_redis_server() else {
            return skip("redis-server not found");
        };
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let mut failure = String::new();
        for _ in 0..5 {
            let port = if extra.iter().any(|a| a == "--cluster-enabled") {
                free_cluster_port()
            } else {
                free_port()
            };
            let dir = std::env::temp_dir()
                .join(format!("tannoy-redis-bridge-{}-{port}", std::process::id()));
            let mut server = RedisServer {
                binary: binary.clone(),
                child: None,
                port,
                dir,
                extra: extra.clone(),
                tls: tls.clone(),
            };
            match server.spawn() {
                Ok(()) => return Some(server),
                Err(e) if e == NO_TLS => return skip(NO_TLS),
                Err(e) => failure = e,
            }
        }
        panic!("could not start {}: {failure}", binary.display());
    }

    /// Starts the process on `self.port` and waits until it answers.
    fn spawn(&mut self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        let mut command = redis_server_command(&self.binary, self.port, &self.dir);
        let stderr = self.dir.join("stderr.log");
        if let Some(tls) = &self.tls {
            // The later --port wins: no plain port, TLS on ours. A build
            // without TLS rejects the directive on stderr and exits.
            command
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(tls.join("server.crt"))
                .arg("--tls-key-file")
                .arg(tls.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(tls.join("ca.crt"))
                .args(["--tls-auth-clients", "no"])
                .stderr(std::fs::File::create(&stderr).map_err(|e| e.to_string())?);
        }
        command.args(&self.extra);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                let said = std::fs::read_to_string(&stderr).unwrap_or_default();
                if self.tls.is_some() && said.contains("Bad directive") && said.contains("tls-") {
                    return Err(NO_TLS.to_owned());
                }
                return Err(format!("redis-server exited with {status}"));
            }
            if let Ok(info) = self.try_query::<String>(redis::cmd("INFO").arg("server")) {
                if info.contains(&format!("process_id:{pid}\r\n")) {
                    return Ok(());
                }
                self.kill();
                return Err(format!("port {} is served by another process", self.port));
            }
            if Instant::now() > deadline {
                self.kill();
                return Err("no answer in time".to_owned());
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the server (as a crash would), leaving its port to a restart.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    ///
    /// # Panics
    ///
    /// When the port was taken meanwhile or the server does not come up.
    pub(crate) fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("restart failed: {e}"),
                Err(_) => thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// The server's port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The server's URL: `rediss://` for a TLS server.
    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Runs one command on a fresh connection.
    pub(crate) fn try_query<T: redis::FromRedisValue>(
        &self,
        cmd: &mut redis::Cmd,
    ) -> redis::RedisResult<T> {
        let client = match &self.tls {
            None => redis::Client::open(self.url())?,
            Some(dir) => {
                let certs = redis::TlsCertificates {
                    client_tls: Some(redis::ClientTlsConfig {
                        client_cert: std::fs::read(dir.join("server.crt"))?,
                        client_key: std::fs::read(dir.join("server.key"))?,
                    }),
                    root_cert: Some(std::fs::read(dir.join("ca.crt"))?),
                };
                redis::Client::build_with_tls(self.url(), certs)?
            }
        };
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        cmd.query(&mut conn)
    }

    /// Runs one command, or fails the test.
    pub(crate) fn query<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> T {
        self.try_query(cmd)
            .unwrap_or_else(|e| panic!("command on port {}: {e}", self.port))
    }

    /// `PUBSUB NUMSUB channel`: the server's subscriber count of a channel.
    pub(crate) fn numsub(&self, channel: &str) -> i64 {
        let reply: Vec<(String, i64)> = self.query(redis::cmd("PUBSUB").arg("NUMSUB").arg(channel));
        reply.first().map_or(0, |(_, n)| *n)
    }

    /// `PUBSUB NUMPAT`: distinct patterns held on the server.
    pub(crate) fn numpat(&self) -> i64 {
        self.query(redis::cmd("PUBSUB").arg("NUMPAT"))
    }

    /// `PUBSUB SHARDNUMSUB channel`.
    pub(crate) fn shard_numsub(&self, channel: &str) -> i64 {
        let reply: Vec<(String, i64)> =
            self.query(redis::cmd("PUBSUB").arg("SHARDNUMSUB").arg(channel));
        reply.first().map_or(0, |(_, n)| *n)
    }

    /// Connected clients, from `INFO clients`.
    pub(crate) fn connected_clients(&self) -> i64 {
        let info: String = self.query(redis::cmd("INFO").arg("clients"));
        info_field(&info, "connected_clients").unwrap_or(0.0) as i64
    }

    /// `PUBLISH`, from a plain client.
    pub(crate) fn publish(&self, channel: &str, payload: &str) -> i64 {
        self.query(redis::cmd("PUBLISH").arg(channel).arg(payload))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A numeric field of an `INFO` reply.
pub(crate) fn info_field(info: &str, name: &str) -> Option<f64> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

/// Three `redis-server --cluster-enabled yes` nodes joined into one Redis
/// Cluster by `redis-cli --cluster create`, masters only.
#[derive(Debug)]
pub(crate) struct RedisCluster {
    /// The nodes.
    pub(crate) nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts and joins the cluster, or skips when `redis-server` or
    /// `redis-cli` is missing.
    ///
    /// # Panics
    ///
    /// When the cluster does not come up.
    pub(crate) fn start() -> Option<RedisCluster> {
        let Some(cli) = find_on_path("redis-cli") else {
            return skip("redis-cli not found");
        };
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let node = RedisServer::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
            ])?;
            nodes.push(node);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let status = Command::new(cli)
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run redis-cli --cluster create");
        assert!(status.success(), "redis-cli --cluster create: {status}");
        let cluster = RedisCluster { nodes };
        let deadline = Instant::now() + PATIENCE;
        while !cluster.is_ok() {
            assert!(Instant::now() < deadline, "the cluster never became ok");
            thread::sleep(Duration::from_millis(50));
        }
        Some(cluster)
    }

    /// Whether every node reports `cluster_state:ok` and knows all three.
    fn is_ok(&self) -> bool {
        self.nodes.iter().all(|n| {
            n.try_query::<String>(redis::cmd("CLUSTER").arg("INFO"))
                .is_ok_and(|info| {
                    info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")
                })
        })
    }

    /// The nodes' URLs.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The node that owns `key`'s slot.
    pub(crate) fn owner(&self, key: &str) -> &RedisServer {
        let slot: i64 = self.nodes[0].query(redis::cmd("CLUSTER").arg("KEYSLOT").arg(key));
        let myid = |n: &RedisServer| -> String { n.query(redis::cmd("CLUSTER").arg("MYID")) };
        let slots: redis::Value = self.nodes[0].query(redis::cmd("CLUSTER").arg("SLOTS"));
        let redis::Value::Array(ranges) = slots else {
            panic!("CLUSTER SLOTS: {slots:?}")
        };
        for range in ranges {
            let redis::Value::Array(fields) = range else {
                continue;
            };
            let (Some(redis::Value::Int(lo)), Some(redis::Value::Int(hi)), Some(master)) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                continue;
            };
            if !(*lo..=*hi).contains(&slot) {
                continue;
            }
            let redis::Value::Array(master) = master else {
                continue;
            };
            let port = match master.get(1) {
                Some(redis::Value::Int(p)) => *p,
                other => panic!("CLUSTER SLOTS port: {other:?}"),
            };
            return self
                .nodes
                .iter()
                .find(|n| i64::from(n.port()) == port)
                .unwrap_or_else(|| panic!("no node on port {port} ({})", myid(&self.nodes[0])));
        }
        panic!("slot {slot} has no owner")
    }
}

/// Waits until `check` holds, polling, or fails the test with `what`.
pub(crate) fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// The path of this package's example `name`, built by `cargo test`
/// beside the test binaries.
///
/// # Panics
///
/// When it was not built (`cargo test` builds examples; a run limited with
/// `--test` does not: build it first with `cargo build --example name`).
pub(crate) fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the target directory");
    let path = dir.join("examples").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build -p tannoy-redis --example {name}` (cargo test builds it)",
        path.display()
    );
    path
}
