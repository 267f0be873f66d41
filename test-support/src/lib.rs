//! What the workspace's tests and benchmarks share across packages, so
//! that each package's copy cannot drift from the others':
//!
//! - the environment switches ([`required`] and [`skip`], [`quick`]) and the CPU a
//!   benchmark ran on ([`cpu`]);
//! - finding programs ([`find_on_path`], [`find_redis_server`]), a free
//!   loopback port ([`free_port`]) and the command line of a private
//!   `redis-server` ([`redis_server_command`]), and a RESP request to
//!   send it ([`resp_request`]);
//! - the files of a fuzz corpus directory ([`corpus_files`]).
//!
//! # Environment
//!
//! | variable | effect |
//! |---|---|
//! | `TANNOY_REDIS_SERVER` | path of the `redis-server` binary, instead of searching `PATH` and `/usr/bin` |
//! | `TANNOY_REQUIRE_REDIS` | when set to anything but empty or `0`, a missing binary fails the test instead of skipping it |
//! | `TANNOY_BENCH_QUICK` | when set to anything but `0`, a benchmark runs its smoke-sized version |

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Environment variable naming the `redis-server` binary.
pub const SERVER_ENV: &str = "TANNOY_REDIS_SERVER";

/// Environment variable that turns a missing binary into a failure.
pub const REQUIRE_ENV: &str = "TANNOY_REQUIRE_REDIS";

/// Environment variable that asks a benchmark for its smoke-sized run.
pub const QUICK_ENV: &str = "TANNOY_BENCH_QUICK";

/// Whether a missing dependency (`redis-server`, `redis-benchmark`) must
/// fail the test: [`REQUIRE_ENV`] is set to anything but empty or `0`.
pub fn required() -> bool {
    std::env::var_os(REQUIRE_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Skips (returns `None` after one line on stderr) or, when [`required`],
/// fails, for a missing `what`.
///
/// # Panics
///
/// When [`REQUIRE_ENV`] asks for `what`.
pub fn skip<T>(what: &str) -> Option<T> {
    assert!(!required(), "{what}, and {REQUIRE_ENV} is set");
    eprintln!("skipped: {what} (set {REQUIRE_ENV}=1 to make this a failure)");
    None
}

/// Whether a benchmark runs its smoke test: [`QUICK_ENV`] asks for it, and
/// so does running without `--bench` (`cargo test --benches`, where
/// criterion runs each benchmark once to see that it works).
pub fn quick() -> bool {
    std::env::var_os(QUICK_ENV).is_some_and(|v| v != "0")
        || !std::env::args().any(|a| a == "--bench")
}

/// The CPU's model name, family and model, as `lscpu` reports them (from
/// `/proc/cpuinfo`), and the number of CPUs: what a benchmark prints
/// beside its numbers.
pub fn cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "?".to_owned(), |(_, v)| v.trim().to_owned())
    };
    format!(
        "{} (family {}, model {}), {} CPUs",
        field("model name"),
        field("cpu family"),
        field("model"),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}

/// A program on `PATH`, or in `/usr/bin`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The `redis-server` binary to run: [`SERVER_ENV`] when set (and `None`
/// if no file is there), else the first on `PATH` or in `/usr/bin`.
pub fn find_redis_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(SERVER_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    find_on_path("redis-server")
}

/// A free loopback port (free when asked; a server may race for it, so
/// whoever starts one checks that it is theirs that answers).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// The command that starts `binary` as a `redis-server` private to one
/// test or benchmark: on 127.0.0.1 at `port`, with no configuration file
/// (so it never reads a system-wide instance's setup), nothing saved or
/// appended, and `dir` as its working directory, where it logs to
/// `redis.log`; its standard streams are closed. Callers add their own
/// arguments (a later `--port` or `--tls-port` wins) and spawn it.
pub fn redis_server_command(binary: &Path, port: u16, dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// A command as a RESP multibulk request, the form every Redis client
/// sends: `*<count>`, then each argument as `$<length>` and its bytes.
pub fn resp_request(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The files directly under a fuzz corpus (or artifacts) directory,
/// sorted; none if it does not exist. Dotfiles (such as a `.gitkeep`) are
/// skipped.
///
/// # Panics
///
/// When an entry of an existing directory cannot be read.
pub fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}
