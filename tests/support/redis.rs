//! The Redis side of the differential tests: a private `redis-server` per
//! test, a small blocking RESP2 client, and wrappers for a subscribed
//! connection and for a publishing/introspecting one.
//!
//! Include it from a test file with
//!
//! ```ignore
//! #[path = "support/redis.rs"]
//! mod redis_support;
//!
//! #[test]
//! fn something() {
//!     let Some(server) = redis_support::redis_or_skip() else { return };
//!     let mut sub = server.subscriber();
//!     let mut client = server.client();
//!     // ...
//! }
//! ```
//!
//! # Why a hand-written client
//!
//! The differential suite compares every observable frame: the order of
//! pushes, confirmations for duplicate arguments, the null name of a
//! no-argument unsubscribe. A general-purpose Redis client hides exactly
//! those details, so this one speaks RESP2 directly and returns frames as
//! they came off the wire.
//!
//! # Environment
//!
//! | variable | effect |
//! |---|---|
//! | `TANNOY_REDIS_SERVER` | path of the `redis-server` binary to run, instead of searching `PATH` and `/usr/bin` |
//! | `TANNOY_REQUIRE_REDIS` | when set to anything but empty or `0`, a missing server fails the test instead of skipping it |
//!
//! # Determinism
//!
//! Redis runs commands one at a time, and every wrapper here waits for the
//! server's answer before returning. So once `subscribe` has returned, a
//! later `publish` from another connection is certain to see the
//! subscription; once `publish` has returned, its pushes are queued, and a
//! [`Subscriber::barrier`] returns them; once [`Subscriber::disconnect`]
//! has returned, the server has dropped every subscription of that client.
//! Dropping a [`Subscriber`] without `disconnect` closes the socket too,
//! but the server notices that at some later point, so introspection right
//! after a plain drop may still count the old subscriptions.

// Each test file that includes this module uses a different subset of it.
#![allow(
    dead_code,
    reason = "shared by several test files, each using a subset"
)]

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Environment variable naming the `redis-server` binary to use.
pub(crate) const SERVER_ENV: &str = "TANNOY_REDIS_SERVER";

/// Environment variable that turns a missing server into a test failure.
pub(crate) const REQUIRE_ENV: &str = "TANNOY_REQUIRE_REDIS";

/// How long any single read may block before the test fails.
///
/// Every command here is answered within milliseconds by a local server;
/// ten seconds is far beyond that even on a loaded two-core machine, yet
/// short enough that a harness or server bug fails the test instead of
/// hanging it.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`RedisServer::start`] waits for a new server to answer `PING`.
///
/// A server with no data to load answers in about 20 ms here; the margin
/// covers a machine busy with parallel test binaries.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times [`RedisServer::start`] tries a fresh port.
///
/// A free port is found by binding port 0 and closing it again, so another
/// process can take it before the server binds. One retry almost always
/// suffices; five makes a spurious failure vanishingly unlikely.
const START_ATTEMPTS: u32 = 5;

/// Largest bulk string or array accepted from the server.
///
/// Matches Redis's own `proto-max-bulk-len` default (512 MiB), so anything
/// bigger is a framing error, not data.
const MAX_LEN: i64 = 512 * 1024 * 1024;

/// Starts a private server, or reports that none is installed.
///
/// Returns `None` after printing one line to stderr when no `redis-server`
/// can be found and [`REQUIRE_ENV`] is not set; the caller then returns
/// early so the test passes as skipped:
///
/// ```ignore
/// let Some(server) = redis_or_skip() else { return };
/// ```
///
/// # Panics
///
/// When no server is found but [`REQUIRE_ENV`] is set, or when a server is
/// found but cannot be started (see [`RedisServer::start`]).
pub(crate) fn redis_or_skip() -> Option<RedisServer> {
    RedisServer::start()
}

/// A [`SERVER_ENV`] value where no server is, for [`rerun_without_server`].
pub(crate) const MISSING_SERVER: &str = "/nonexistent/redis-server";

/// Runs the current test binary again with `args` (libtest's: which tests,
/// how), with [`SERVER_ENV`] pointed at [`MISSING_SERVER`] and
/// [`REQUIRE_ENV`] set to `require` (removed for `None`), and returns
/// whether it passed and what it wrote (stdout, then stderr).
///
/// For tests of what a missing server does: the rerun's tests skip or fail.
///
/// # Panics
///
/// If the test binary cannot be found or run.
pub(crate) fn rerun_without_server(args: &[&str], require: Option<&str>) -> (bool, String) {
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut command = Command::new(exe);
    command.args(args).env(SERVER_ENV, MISSING_SERVER);
    match require {
        Some(value) => command.env(REQUIRE_ENV, value),
        None => command.env_remove(REQUIRE_ENV),
    };
    let output = command.output().expect("rerun the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A `redis-server` process private to the test that started it.
///
/// It listens only on 127.0.0.1 at a port chosen for it, keeps nothing on
/// disk, and runs in its own temporary directory. Dropping the value kills
/// the process, waits for it, and removes the directory.
///
/// If the test process itself is killed (not merely panicking), the server
/// outlives it; it holds no data and only a loopback port.
#[derive(Debug)]
pub(crate) struct RedisServer {
    /// The running server process.
    child: Child,
    /// Loopback port the server listens on.
    port: u16,
    /// Private working directory, holding only the log file.
    dir: PathBuf,
}

impl RedisServer {
    /// Finds `redis-server`, starts it on a free loopback port and waits
    /// until it answers `PING`.
    ///
    /// The binary is [`SERVER_ENV`] if that is set, else the first
    /// `redis-server` on `PATH`, else `/usr/bin/redis-server`. The server
    /// gets no configuration file, so it never reads or joins a system-wide
    /// instance's setup, and `--save ''`, `--appendonly no` and a private
    /// `--dir` keep it off any shared disk state.
    ///
    /// Returns `None` (after printing a single line to stderr) when no
    /// binary is found and [`REQUIRE_ENV`] is unset, empty or `0`.
    ///
    /// # Panics
    ///
    /// When no binary is found and [`REQUIRE_ENV`] asks for one, or when the
    /// binary exists but no server could be brought up; the message quotes
    /// the server's log.
    pub(crate) fn start() -> Option<RedisServer> {
        let Some(binary) = find_binary() else {
            let reason = match std::env::var_os(SERVER_ENV) {
                Some(path) if !path.is_empty() => {
                    format!(
                        "redis-server not found at {SERVER_ENV}={}",
                        path.to_string_lossy()
                    )
                }
                _ => "redis-server not found on PATH or in /usr/bin".to_owned(),
            };
            if redis_required() {
                panic!(
                    "{reason}, and {REQUIRE_ENV} is set: install redis-server or unset {REQUIRE_ENV}"
                );
            }
            report_skip(&reason);
            return None;
        };
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            match RedisServer::try_start(&binary) {
                Ok(server) => return Some(server),
                Err(failure) => last_failure = failure,
            }
        }
        panic!(
            "could not start {} after {START_ATTEMPTS} attempts; last attempt: {last_failure}",
            binary.display()
        );
    }

    /// One attempt at [`RedisServer::start`] on one port.
    ///
    /// The `Err` describes what went wrong, with the server's log.
    fn try_start(binary: &Path) -> Result<RedisServer, String> {
        let port = free_port().map_err(|e| format!("no free loopback port: {e}"))?;
        let dir = private_dir(port).map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let log = dir.join("redis.log");
        let spawned = Command::new(binary)
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(["--protected-mode", "yes"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(&log)
            .args(["--loglevel", "notice"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(format!("cannot run {}: {e}", binary.display()));
            }
        };
        // From here on, dropping `server` cleans up whatever goes wrong.
        let mut server = RedisServer { child, port, dir };
        server.wait_until_ready()?;
        Ok(server)
    }

    /// Polls the new server until it answers `PING`, then checks that the
    /// answering process is ours.
    ///
    /// The identity check matters because the port may have been taken by
    /// another test's server between [`free_port`] and our bind: ours then
    /// exits, while the other one answers `PING` perfectly well.
    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "redis-server exited with {status}; {}",
                    self.log_tail()
                ));
            }
            if let Ok(stream) = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(1)) {
                // Failures here are not the test's: they are reported as a
                // failed attempt, and `start` tries another port.
                let mut conn = RespConn::from_stream(stream);
                conn.send_all(&[&[b"PING"], &[b"INFO", b"server"]]);
                let pong = conn.try_read_frame();
                let info = conn.try_read_frame();
                if let (Ok(Some(Frame::Simple(pong))), Ok(Some(Frame::Bulk(Some(info))))) =
                    (pong, info)
                {
                    let wanted = format!("process_id:{}\r\n", self.child.id());
                    return if pong == b"PONG" && contains(&info, wanted.as_bytes()) {
                        Ok(())
                    } else {
                        Err(format!("port {} is served by another process", self.port))
                    };
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no PING answer within {START_TIMEOUT:?}; {}",
                    self.log_tail()
                ));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The last few lines of the server's log, for failure messages.
    fn log_tail(&self) -> String {
        match std::fs::read(self.dir.join("redis.log")) {
            Ok(log) => {
                let text = String::from_utf8_lossy(&log);
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(8)..];
                format!("log tail:\n{}", tail.join("\n"))
            }
            Err(e) => format!("no log ({e})"),
        }
    }

    /// The loopback port the server listens on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The server's socket address.
    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Opens a new raw connection.
    ///
    /// # Panics
    ///
    /// When the server does not accept the connection.
    pub(crate) fn connect(&self) -> RespConn {
        match TcpStream::connect_timeout(&self.addr(), READ_TIMEOUT) {
            Ok(stream) => RespConn::from_stream(stream),
            Err(e) => panic!("cannot connect to redis-server on port {}: {e}", self.port),
        }
    }

    /// Opens a new connection for subscribing.
    ///
    /// # Panics
    ///
    /// When the server does not accept the connection.
    pub(crate) fn subscriber(&self) -> Subscriber {
        Subscriber::new(self.connect())
    }

    /// Opens a new connection for publishing and introspection.
    ///
    /// # Panics
    ///
    /// When the server does not accept the connection.
    pub(crate) fn client(&self) -> Client {
        Client::new(self.connect())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Errors are ignored: the process may already be gone, and a panic
        // here could abort a test that is already unwinding.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether [`REQUIRE_ENV`] asks for a missing server to fail the test.
fn redis_required() -> bool {
    match std::env::var_os(REQUIRE_ENV) {
        Some(value) => !value.is_empty() && value != "0",
        None => false,
    }
}

/// Prints the skip notice, once per test binary.
///
/// It goes straight to the stderr handle rather than through `eprintln!`,
/// which the test harness captures and shows only for failing tests; a skip
/// is exactly what a passing test must not hide.
fn report_skip(reason: &str) {
    static REPORTED: OnceLock<()> = OnceLock::new();
    REPORTED.get_or_init(|| {
        let _ = writeln!(
            io::stderr(),
            "skipping: {reason}; install it (apt-get install redis-server) or set \
             {REQUIRE_ENV}=1 to make this a failure"
        );
    });
}

/// Locates the `redis-server` binary (see [`RedisServer::start`]).
fn find_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(SERVER_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .map(|dir| dir.join("redis-server"))
        .chain([PathBuf::from("/usr/bin/redis-server")])
        .find(|candidate| candidate.is_file())
}

/// A loopback port that was free a moment ago.
fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Creates an empty directory for one server.
///
/// The name holds the process id and port, which together are unique among
/// live servers, plus a counter against reuse within one process.
fn private_dir(port: u16) -> io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tannoy-redis-{}-{port}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Channel names and payloads that a byte-exact client and server must
/// carry intact: empty, NUL, CR/LF, RESP-looking text, bytes 0x80 and
/// above, brackets (a bracket never closed among them) and glob
/// metacharacters, and a space. The NUL name is at index 1.
pub(crate) const AWKWARD_NAMES: [&[u8]; 9] = [
    b"",
    b"\x00",
    b"a\r\nb",
    b"\r\n*1\r\n$1\r\n",
    b"\xff\x80\xc3\xa9",
    b"[x]",
    b"a[b",
    b"*?\\",
    b" ",
];

/// Renders bytes as an escaped byte-string literal, for messages.
pub(crate) fn show(bytes: &[u8]) -> String {
    format!("b\"{}\"", bytes.escape_ascii())
}

/// Renders a command for messages, cut short if long.
fn show_command(args: &[&[u8]]) -> String {
    let mut text = args.iter().map(|a| show(a)).collect::<Vec<_>>().join(" ");
    if text.len() > 200 {
        let mut cut = 200;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(" …");
    }
    text
}

/// One RESP2 value as the server sent it.
///
/// `Debug` prints byte strings as escaped literals (`b"a\x00"`), so
/// assertion failures stay readable.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// `+...`: a status reply such as `OK` or `PONG`.
    Simple(Vec<u8>),
    /// `-...`: an error reply, the full text including its `ERR` prefix.
    Error(Vec<u8>),
    /// `:...`: an integer.
    Integer(i64),
    /// `$...`: a bulk string, or `None` for the null bulk `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*...`: an array, or `None` for the null array `*-1`.
    Array(Option<Vec<Frame>>),
}

impl Frame {
    /// A non-null bulk string.
    pub(crate) fn bulk(bytes: &[u8]) -> Frame {
        Frame::Bulk(Some(bytes.to_vec()))
    }

    /// A non-null array.
    pub(crate) fn array(items: Vec<Frame>) -> Frame {
        Frame::Array(Some(items))
    }

    /// An error reply with the given text.
    pub(crate) fn error(text: &str) -> Frame {
        Frame::Error(text.as_bytes().to_vec())
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frame::Simple(s) => write!(f, "Simple({})", show(s)),
            Frame::Error(s) => write!(f, "Error({})", show(s)),
            Frame::Integer(n) => write!(f, "Integer({n})"),
            Frame::Bulk(Some(b)) => write!(f, "Bulk({})", show(b)),
            Frame::Bulk(None) => f.write_str("Bulk(null)"),
            Frame::Array(Some(items)) => f.debug_list().entries(items).finish(),
            Frame::Array(None) => f.write_str("Array(null)"),
        }
    }
}

/// A blocking RESP2 connection.
///
/// Reads are buffered and time out after [`READ_TIMEOUT`], failing the test
/// with the last command sent, so a missing reply never hangs a test run.
pub(crate) struct RespConn {
    /// Buffered reader over the socket; writes go to the inner stream.
    reader: BufReader<TcpStream>,
    /// The last command sent, for failure messages.
    last_command: String,
}

impl fmt::Debug for RespConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RespConn")
            .field("peer", &self.reader.get_ref().peer_addr().ok())
            .field("last_command", &self.last_command)
            .finish_non_exhaustive()
    }
}

impl RespConn {
    /// Wraps a connected socket.
    ///
    /// # Panics
    ///
    /// When the socket options cannot be set.
    pub(crate) fn from_stream(stream: TcpStream) -> RespConn {
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(READ_TIMEOUT)))
            // Commands are small and each is written in one go; without
            // this, Nagle's algorithm can hold a pipelined second write back
            // until the first is acknowledged.
            .and_then(|()| stream.set_nodelay(true))
            .unwrap_or_else(|e| panic!("cannot configure redis socket: {e}"));
        RespConn {
            reader: BufReader::new(stream),
            last_command: String::from("(none yet)"),
        }
    }

    /// Sends one command as a RESP array of bulk strings.
    ///
    /// # Panics
    ///
    /// When the write fails.
    pub(crate) fn send(&mut self, args: &[&[u8]]) {
        self.send_all(&[args]);
    }

    /// Sends several commands in a single write (pipelining).
    ///
    /// # Panics
    ///
    /// When the write fails.
    pub(crate) fn send_all(&mut self, commands: &[&[&[u8]]]) {
        let mut wire = Vec::new();
        for args in commands {
            encode_command(&mut wire, args);
        }
        self.last_command = commands
            .iter()
            .map(|args| show_command(args))
            .collect::<Vec<_>>()
            .join("; ");
        if let Err(e) = self.reader.get_mut().write_all(&wire) {
            panic!("cannot send {} to redis-server: {e}", self.last_command);
        }
    }

    /// Reads the next frame.
    ///
    /// # Panics
    ///
    /// When the server closes the connection, sends something that is not
    /// RESP2, or sends nothing within [`READ_TIMEOUT`].
    pub(crate) fn read_frame(&mut self) -> Frame {
        match self.read_frame_or_eof() {
            Some(frame) => frame,
            None => panic!(
                "redis-server closed the connection; last command sent: {}",
                self.last_command
            ),
        }
    }

    /// Reads the next frame, or `None` if the server closed the connection
    /// cleanly between frames.
    ///
    /// # Panics
    ///
    /// As [`RespConn::read_frame`], except on a clean close.
    pub(crate) fn read_frame_or_eof(&mut self) -> Option<Frame> {
        self.try_read_frame()
            .unwrap_or_else(|e| panic!("{e}; last command sent: {}", self.last_command))
    }

    /// Sends a command and reads its single reply.
    ///
    /// Only for connections that are not subscribed, where every command
    /// has exactly one reply.
    ///
    /// # Panics
    ///
    /// As [`RespConn::send`] and [`RespConn::read_frame`].
    pub(crate) fn command(&mut self, args: &[&[u8]]) -> Frame {
        self.send(args);
        self.read_frame()
    }

    /// Reads the next frame; `Ok(None)` on a clean close, `Err` describing
    /// a timeout, an I/O failure or malformed input.
    fn try_read_frame(&mut self) -> Result<Option<Frame>, String> {
        match self.reader.fill_buf() {
            Ok([]) => Ok(None),
            Ok(_) => self.parse_frame().map(Some),
            Err(e) => Err(describe_io_error(&e)),
        }
    }

    /// Parses one frame from the buffered stream.
    fn parse_frame(&mut self) -> Result<Frame, String> {
        let line = self.read_line()?;
        let Some((&kind, rest)) = line.split_first() else {
            return Err(malformed("empty line where a frame type was expected"));
        };
        Ok(match kind {
            b'+' => Frame::Simple(rest.to_vec()),
            b'-' => Frame::Error(rest.to_vec()),
            b':' => Frame::Integer(parse_int(rest)?),
            b'$' => match parse_len(rest)? {
                None => Frame::Bulk(None),
                Some(len) => {
                    let mut body = vec![0; len + 2];
                    self.reader
                        .read_exact(&mut body)
                        .map_err(|e| describe_io_error(&e))?;
                    if !body.ends_with(b"\r\n") {
                        return Err(malformed("bulk string not followed by CRLF"));
                    }
                    body.truncate(len);
                    Frame::Bulk(Some(body))
                }
            },
            b'*' => match parse_len(rest)? {
                None => Frame::Array(None),
                Some(len) => Frame::Array(Some(
                    (0..len)
                        .map(|_| self.parse_frame())
                        .collect::<Result<_, _>>()?,
                )),
            },
            other => {
                return Err(malformed(&format!(
                    "unexpected frame type {:?} (this client speaks RESP2 only)",
                    char::from(other)
                )));
            }
        })
    }

    /// Reads one CRLF-terminated line, without the CRLF.
    fn read_line(&mut self) -> Result<Vec<u8>, String> {
        let mut line = Vec::new();
        self.reader
            .read_until(b'\n', &mut line)
            .map_err(|e| describe_io_error(&e))?;
        if !line.ends_with(b"\r\n") {
            return Err(malformed(&format!(
                "line not ended by CRLF: {}",
                show(&line)
            )));
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }
}

/// Parses the decimal integer of a `:` frame or a length.
fn parse_int(digits: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed(&format!("bad integer {}", show(digits))))
}

/// Parses the length of a `$` or `*` frame; `None` for the null `-1`.
fn parse_len(digits: &[u8]) -> Result<Option<usize>, String> {
    match parse_int(digits)? {
        -1 => Ok(None),
        len @ 0..=MAX_LEN => Ok(Some(len as usize)),
        len => Err(malformed(&format!("bad length {len}"))),
    }
}

/// Describes a failed read, telling a timeout apart from a close.
fn describe_io_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("no reply from redis-server within {READ_TIMEOUT:?}")
        }
        io::ErrorKind::UnexpectedEof => "redis-server closed the connection mid-frame".to_owned(),
        _ => format!("reading from redis-server failed: {e}"),
    }
}

/// Describes malformed input from the server.
fn malformed(what: &str) -> String {
    format!("malformed RESP2 from redis-server: {what}")
}

/// Appends one command, as a RESP array of bulk strings, to `wire`.
fn encode_command(wire: &mut Vec<u8>, args: &[&[u8]]) {
    wire.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        wire.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        wire.extend_from_slice(arg);
        wire.extend_from_slice(b"\r\n");
    }
}

/// A message delivered to a subscribed connection.
///
/// `Debug` prints byte strings as escaped literals.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum Push {
    /// `message`: published on a channel the connection subscribed to.
    Message {
        /// The channel, as published.
        channel: Vec<u8>,
        /// The payload.
        payload: Vec<u8>,
    },
    /// `pmessage`: published on a channel matching a subscribed pattern.
    PMessage {
        /// The pattern, as subscribed.
        pattern: Vec<u8>,
        /// The channel, as published.
        channel: Vec<u8>,
        /// The payload.
        payload: Vec<u8>,
    },
    /// `smessage`: published with `SPUBLISH` on a subscribed shard channel.
    SMessage {
        /// The shard channel.
        channel: Vec<u8>,
        /// The payload.
        payload: Vec<u8>,
    },
}

impl Push {
    /// A `message` push.
    pub(crate) fn message(channel: &[u8], payload: &[u8]) -> Push {
        Push::Message {
            channel: channel.to_vec(),
            payload: payload.to_vec(),
        }
    }

    /// A `pmessage` push.
    pub(crate) fn pmessage(pattern: &[u8], channel: &[u8], payload: &[u8]) -> Push {
        Push::PMessage {
            pattern: pattern.to_vec(),
            channel: channel.to_vec(),
            payload: payload.to_vec(),
        }
    }

    /// An `smessage` push.
    pub(crate) fn smessage(channel: &[u8], payload: &[u8]) -> Push {
        Push::SMessage {
            channel: channel.to_vec(),
            payload: payload.to_vec(),
        }
    }

    /// Recognises a push frame; `None` for anything else (confirmations,
    /// replies).
    fn from_frame(frame: &Frame) -> Option<Push> {
        let Frame::Array(Some(items)) = frame else {
            return None;
        };
        let bulk = |i: usize| match items.get(i) {
            Some(Frame::Bulk(Some(bytes))) => Some(bytes.clone()),
            _ => None,
        };
        match (bulk(0)?.as_slice(), items.len()) {
            (b"message", 3) => Some(Push::Message {
                channel: bulk(1)?,
                payload: bulk(2)?,
            }),
            (b"pmessage", 4) => Some(Push::PMessage {
                pattern: bulk(1)?,
                channel: bulk(2)?,
                payload: bulk(3)?,
            }),
            (b"smessage", 3) => Some(Push::SMessage {
                channel: bulk(1)?,
                payload: bulk(2)?,
            }),
            _ => None,
        }
    }
}

impl fmt::Debug for Push {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Push::Message { channel, payload } => {
                write!(f, "message({}, {})", show(channel), show(payload))
            }
            Push::PMessage {
                pattern,
                channel,
                payload,
            } => write!(
                f,
                "pmessage({}, {}, {})",
                show(pattern),
                show(channel),
                show(payload)
            ),
            Push::SMessage { channel, payload } => {
                write!(f, "smessage({}, {})", show(channel), show(payload))
            }
        }
    }
}

/// A connection used for subscribing (RESP2 subscribed mode).
///
/// Message pushes can arrive at any time, also while a confirmation or a
/// reply is awaited; they are kept, in arrival order, and handed out by
/// [`Subscriber::barrier`] or [`Subscriber::next_push`]. Nothing is lost
/// and a push is never taken for a confirmation.
#[derive(Debug)]
pub(crate) struct Subscriber {
    /// The underlying connection.
    conn: RespConn,
    /// Pushes read but not yet handed out, oldest first.
    pending: VecDeque<Push>,
}

/// Source of unique `PING` arguments for barriers.
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(0);

/// A fresh argument for a barrier `PING`.
fn barrier_token() -> Vec<u8> {
    format!(
        "tannoy-barrier-{}",
        NEXT_TOKEN.fetch_add(1, Ordering::Relaxed)
    )
    .into_bytes()
}

impl Subscriber {
    /// Wraps a connection; it need not be subscribed yet.
    pub(crate) fn new(conn: RespConn) -> Subscriber {
        Subscriber {
            conn,
            pending: VecDeque::new(),
        }
    }

    /// `SUBSCRIBE names...`: one `(name, count)` per argument, in argument
    /// order, as the server confirmed them.
    ///
    /// # Panics
    ///
    /// When `names` is empty (Redis answers that with an arity error; send
    /// it with [`Subscriber::raw`] instead), or when the server answers with
    /// anything but the expected confirmations.
    pub(crate) fn subscribe(&mut self, names: &[&[u8]]) -> Vec<(Vec<u8>, i64)> {
        self.subscribe_kind(b"SUBSCRIBE", b"subscribe", names)
    }

    /// `PSUBSCRIBE patterns...`, as [`Subscriber::subscribe`].
    ///
    /// # Panics
    ///
    /// As [`Subscriber::subscribe`].
    pub(crate) fn psubscribe(&mut self, patterns: &[&[u8]]) -> Vec<(Vec<u8>, i64)> {
        self.subscribe_kind(b"PSUBSCRIBE", b"psubscribe", patterns)
    }

    /// `SSUBSCRIBE names...`, as [`Subscriber::subscribe`]; counts are
    /// shard channels only.
    ///
    /// # Panics
    ///
    /// As [`Subscriber::subscribe`].
    pub(crate) fn ssubscribe(&mut self, names: &[&[u8]]) -> Vec<(Vec<u8>, i64)> {
        self.subscribe_kind(b"SSUBSCRIBE", b"ssubscribe", names)
    }

    /// `UNSUBSCRIBE names...`: one `(name, count)` per argument, in order.
    ///
    /// With no names this is the no-argument form: one confirmation per
    /// channel held, in the server's (hash) order, or exactly one with a
    /// `None` name when none was held. All of them are collected, however
    /// many there are.
    ///
    /// # Panics
    ///
    /// When the server answers with anything but confirmations.
    pub(crate) fn unsubscribe(&mut self, names: &[&[u8]]) -> Vec<(Option<Vec<u8>>, i64)> {
        self.unsubscribe_kind(b"UNSUBSCRIBE", b"unsubscribe", names)
    }

    /// `PUNSUBSCRIBE patterns...`, as [`Subscriber::unsubscribe`].
    ///
    /// # Panics
    ///
    /// As [`Subscriber::unsubscribe`].
    pub(crate) fn punsubscribe(&mut self, patterns: &[&[u8]]) -> Vec<(Option<Vec<u8>>, i64)> {
        self.unsubscribe_kind(b"PUNSUBSCRIBE", b"punsubscribe", patterns)
    }

    /// `SUNSUBSCRIBE names...`, as [`Subscriber::unsubscribe`]; counts are
    /// shard channels only.
    ///
    /// # Panics
    ///
    /// As [`Subscriber::unsubscribe`].
    pub(crate) fn sunsubscribe(&mut self, names: &[&[u8]]) -> Vec<(Option<Vec<u8>>, i64)> {
        self.unsubscribe_kind(b"SUNSUBSCRIBE", b"sunsubscribe", names)
    }

    /// Waits until every push for commands the server has already run has
    /// arrived, and returns all pushes not yet handed out, in order.
    ///
    /// It sends `PING` with a unique argument and reads up to its answer.
    /// The server handles commands in order and a publish queues its
    /// pushes before replying, so by the time the answer arrives, every
    /// push from a publish that has returned is in hand. The answer is
    /// `[pong, arg]` in subscribed mode and the bulk `arg` otherwise; both
    /// are accepted.
    ///
    /// # Panics
    ///
    /// When something other than a push arrives before the answer.
    pub(crate) fn barrier(&mut self) -> Vec<Push> {
        let token = barrier_token();
        self.conn.send(&[b"PING", &token]);
        self.read_to_barrier(&token, |frame| {
            panic!("unexpected frame before the barrier PING's answer: {frame:?}")
        });
        self.pending.drain(..).collect()
    }

    /// The next push, waiting for one if none is buffered.
    ///
    /// # Panics
    ///
    /// When a non-push frame arrives, or nothing within [`READ_TIMEOUT`].
    pub(crate) fn next_push(&mut self) -> Push {
        if let Some(push) = self.pending.pop_front() {
            return push;
        }
        let frame = self.conn.read_frame();
        match Push::from_frame(&frame) {
            Some(push) => push,
            None => panic!("expected a message push, got {frame:?}"),
        }
    }

    /// Sends any command; pushes that arrive meanwhile are buffered.
    ///
    /// Pair it with [`Subscriber::read_reply`]. Useful for what the typed
    /// methods don't cover: `PING`, `RESET`, refused commands, arity errors.
    ///
    /// # Panics
    ///
    /// When the write fails.
    pub(crate) fn send(&mut self, args: &[&[u8]]) {
        self.conn.send(args);
    }

    /// The next frame that is not a message push; pushes are buffered.
    ///
    /// # Panics
    ///
    /// As [`RespConn::read_frame`].
    pub(crate) fn read_reply(&mut self) -> Frame {
        loop {
            let frame = self.conn.read_frame();
            match Push::from_frame(&frame) {
                Some(push) => self.pending.push_back(push),
                None => return frame,
            }
        }
    }

    /// Sends a command and returns its first non-push frame.
    ///
    /// For commands with exactly one reply frame. A command answered by
    /// several frames (a subscribe with several names) leaves the rest to
    /// further [`Subscriber::read_reply`] calls.
    ///
    /// # Panics
    ///
    /// As [`Subscriber::send`] and [`Subscriber::read_reply`].
    pub(crate) fn raw(&mut self, args: &[&[u8]]) -> Frame {
        self.send(args);
        self.read_reply()
    }

    /// Closes the connection with `QUIT` and waits until the server has
    /// closed it, so every subscription is gone when this returns; returns
    /// the pushes not yet handed out.
    ///
    /// # Panics
    ///
    /// When `QUIT` is not answered with `+OK` followed by the close.
    pub(crate) fn disconnect(mut self) -> Vec<Push> {
        let reply = self.raw(&[b"QUIT"]);
        assert_eq!(reply, Frame::Simple(b"OK".to_vec()), "QUIT reply");
        if let Some(frame) = self.conn.read_frame_or_eof() {
            panic!("expected the server to close the connection after QUIT, got {frame:?}");
        }
        self.pending.into_iter().collect()
    }

    /// The underlying connection, for frame-level checks.
    ///
    /// Frames read through it bypass the push buffer.
    pub(crate) fn conn_mut(&mut self) -> &mut RespConn {
        &mut self.conn
    }

    /// Shared body of the three subscribe commands.
    fn subscribe_kind(
        &mut self,
        command: &[u8],
        kind: &[u8],
        names: &[&[u8]],
    ) -> Vec<(Vec<u8>, i64)> {
        assert!(
            !names.is_empty(),
            "{} needs at least one name; send the arity error case with Subscriber::raw",
            show(command)
        );
        let mut args = vec![command];
        args.extend_from_slice(names);
        self.conn.send(&args);
        (0..names.len())
            .map(|_| {
                let frame = self.read_reply();
                match parse_confirmation(&frame, kind) {
                    Some((Some(name), count)) => (name, count),
                    _ => panic!("expected a {} confirmation, got {frame:?}", show(kind)),
                }
            })
            .collect()
    }

    /// Shared body of the three unsubscribe commands.
    ///
    /// The no-argument form answers with as many confirmations as names
    /// were held, which only the server knows, so it is followed by a
    /// barrier `PING` in the same write and everything up to the barrier's
    /// answer is collected.
    fn unsubscribe_kind(
        &mut self,
        command: &[u8],
        kind: &[u8],
        names: &[&[u8]],
    ) -> Vec<(Option<Vec<u8>>, i64)> {
        let mut args = vec![command];
        args.extend_from_slice(names);
        let parse = |frame: &Frame| match parse_confirmation(frame, kind) {
            Some(confirmation) => confirmation,
            None => panic!("expected a {} confirmation, got {frame:?}", show(kind)),
        };
        if names.is_empty() {
            let token = barrier_token();
            self.conn.send_all(&[&args, &[b"PING", &token]]);
            let mut confirmations = Vec::new();
            self.read_to_barrier(&token, |frame| confirmations.push(parse(&frame)));
            assert!(
                !confirmations.is_empty(),
                "no-argument {} got no confirmation at all",
                show(command)
            );
            confirmations
        } else {
            self.conn.send(&args);
            (0..names.len())
                .map(|_| parse(&self.read_reply()))
                .collect()
        }
    }

    /// Reads until the answer to a barrier `PING token`, buffering pushes
    /// and passing every other frame to `other`.
    fn read_to_barrier(&mut self, token: &[u8], mut other: impl FnMut(Frame)) {
        let subscribed_answer = Frame::array(vec![Frame::bulk(b"pong"), Frame::bulk(token)]);
        let plain_answer = Frame::bulk(token);
        loop {
            let frame = self.read_reply();
            if frame == subscribed_answer || frame == plain_answer {
                return;
            }
            other(frame);
        }
    }
}

/// Parses a (un)subscribe confirmation `[kind, name or null, count]`.
fn parse_confirmation(frame: &Frame, kind: &[u8]) -> Option<(Option<Vec<u8>>, i64)> {
    match frame {
        Frame::Array(Some(items)) => match items.as_slice() {
            [
                Frame::Bulk(Some(k)),
                Frame::Bulk(name),
                Frame::Integer(count),
            ] if k == kind => Some((name.clone(), *count)),
            _ => None,
        },
        _ => None,
    }
}

/// A connection used for publishing and `PUBSUB` introspection; never
/// subscribed.
#[derive(Debug)]
pub(crate) struct Client {
    /// The underlying connection.
    conn: RespConn,
}

impl Client {
    /// Wraps a connection that is not subscribed.
    pub(crate) fn new(conn: RespConn) -> Client {
        Client { conn }
    }

    /// `PUBLISH channel payload`: the number of pushes queued.
    ///
    /// # Panics
    ///
    /// When the reply is not an integer.
    pub(crate) fn publish(&mut self, channel: &[u8], payload: &[u8]) -> i64 {
        self.integer(&[b"PUBLISH", channel, payload])
    }

    /// `SPUBLISH channel payload`: the number of shard subscribers reached.
    ///
    /// # Panics
    ///
    /// When the reply is not an integer.
    pub(crate) fn spublish(&mut self, channel: &[u8], payload: &[u8]) -> i64 {
        self.integer(&[b"SPUBLISH", channel, payload])
    }

    /// `PUBSUB CHANNELS [pattern]`, sorted (Redis's own order is hash
    /// order and means nothing).
    ///
    /// Note that `None` (no filter) and `Some(b"*")` differ: only the
    /// former lists the empty-named channel.
    ///
    /// # Panics
    ///
    /// When the reply is not an array of bulk strings.
    pub(crate) fn pubsub_channels(&mut self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        self.names(b"CHANNELS", pattern)
    }

    /// `PUBSUB SHARDCHANNELS [pattern]`, sorted.
    ///
    /// # Panics
    ///
    /// When the reply is not an array of bulk strings.
    pub(crate) fn pubsub_shardchannels(&mut self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        self.names(b"SHARDCHANNELS", pattern)
    }

    /// `PUBSUB NUMSUB channels...`: one `(channel, subscribers)` per
    /// argument, in argument order, duplicates repeated.
    ///
    /// # Panics
    ///
    /// When the reply is not a flat array of name/integer pairs.
    pub(crate) fn pubsub_numsub(&mut self, channels: &[&[u8]]) -> Vec<(Vec<u8>, i64)> {
        self.counts(b"NUMSUB", channels)
    }

    /// `PUBSUB SHARDNUMSUB channels...`, as [`Client::pubsub_numsub`].
    ///
    /// # Panics
    ///
    /// As [`Client::pubsub_numsub`].
    pub(crate) fn pubsub_shardnumsub(&mut self, channels: &[&[u8]]) -> Vec<(Vec<u8>, i64)> {
        self.counts(b"SHARDNUMSUB", channels)
    }

    /// `PUBSUB NUMPAT`: the number of distinct patterns subscribed.
    ///
    /// # Panics
    ///
    /// When the reply is not an integer.
    pub(crate) fn pubsub_numpat(&mut self) -> i64 {
        self.integer(&[b"PUBSUB", b"NUMPAT"])
    }

    /// Sends any command and returns its single reply, errors included.
    ///
    /// # Panics
    ///
    /// As [`RespConn::command`].
    pub(crate) fn command(&mut self, args: &[&[u8]]) -> Frame {
        self.conn.command(args)
    }

    /// The underlying connection.
    pub(crate) fn conn_mut(&mut self) -> &mut RespConn {
        &mut self.conn
    }

    /// Runs a command whose reply must be an integer.
    fn integer(&mut self, args: &[&[u8]]) -> i64 {
        match self.conn.command(args) {
            Frame::Integer(n) => n,
            other => panic!("{} answered {other:?}, not an integer", show_command(args)),
        }
    }

    /// Runs `PUBSUB <sub> [pattern]` and returns the names, sorted.
    fn names(&mut self, sub: &[u8], pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        let mut args: Vec<&[u8]> = vec![b"PUBSUB", sub];
        args.extend(pattern);
        let reply = self.conn.command(&args);
        let mut names: Vec<Vec<u8>> = match &reply {
            Frame::Array(Some(items)) => items
                .iter()
                .map(|item| match item {
                    Frame::Bulk(Some(name)) => name.clone(),
                    _ => panic!("{} answered {reply:?}", show_command(&args)),
                })
                .collect(),
            _ => panic!("{} answered {reply:?}", show_command(&args)),
        };
        names.sort();
        names
    }

    /// Runs `PUBSUB <sub> channels...` and pairs up the flat reply.
    fn counts(&mut self, sub: &[u8], channels: &[&[u8]]) -> Vec<(Vec<u8>, i64)> {
        let mut args: Vec<&[u8]> = vec![b"PUBSUB", sub];
        args.extend_from_slice(channels);
        let reply = self.conn.command(&args);
        let pairs = match &reply {
            Frame::Array(Some(items)) if items.len() % 2 == 0 => items
                .chunks_exact(2)
                .map(|pair| match pair {
                    [Frame::Bulk(Some(name)), Frame::Integer(n)] => Some((name.clone(), *n)),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>(),
            _ => None,
        };
        pairs.unwrap_or_else(|| panic!("{} answered {reply:?}", show_command(&args)))
    }
}
