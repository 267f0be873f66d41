//! A private `redis-server` per test, for the tests that compare
//! tannoy-server with the real thing, and a raw RESP connection that
//! returns replies exactly as they came off the wire.
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

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

/// Encodes a command as a RESP multibulk request.
pub(crate) use tannoy_test_support::resp_request as encode;
pub(crate) use tannoy_test_support::{
    REQUIRE_ENV, SERVER_ENV, find_on_path, free_port, required, skip,
};
use tannoy_test_support::{find_redis_server, redis_server_command};

/// How long one read may wait before the test fails: far beyond what a
/// local server needs, short enough to fail instead of hanging.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` process private to one test, on a loopback port, with
/// nothing on disk. Dropping it kills it and removes its directory.
#[derive(Debug)]
pub(crate) struct RedisServer {
    /// The process.
    child: Child,
    /// Its port.
    port: u16,
    /// Its TLS port, if it serves TLS.
    tls_port: Option<u16>,
    /// Its private directory (log only).
    dir: PathBuf,
}

impl RedisServer {
    /// Starts a server, or skips (see [`skip`]) when none is installed.
    ///
    /// # Panics
    ///
    /// When a binary exists but no server comes up after a few ports.
    pub(crate) fn start() -> Option<RedisServer> {
        Self::start_with(&[])
    }

    /// As [`start`](Self::start), with extra `--name value` arguments.
    pub(crate) fn start_with(extra: &[&str]) -> Option<RedisServer> {
        Self::start_inner(extra, false)
    }

    /// As [`start_with`](Self::start_with), also serving TLS on a second
    /// port (`--tls-port`); `extra` names the certificate files
    /// (`--tls-cert-file`, `--tls-key-file`, `--tls-ca-cert-file`, ...).
    pub(crate) fn start_tls(extra: &[&str]) -> Option<RedisServer> {
        Self::start_inner(extra, true)
    }

    /// Starts, with a TLS port when `tls`.
    fn start_inner(extra: &[&str], tls: bool) -> Option<RedisServer> {
        let Some(binary) = find_redis_server() else {
            return skip("redis-server not found");
        };
        let mut failure = String::new();
        for _ in 0..5 {
            match Self::try_start(&binary, extra, tls) {
                Ok(server) => return Some(server),
                // A build without TLS says so in its log, and exits.
                Err(e) if tls && e.contains("TLS") => {
                    return skip(&format!("{} cannot serve TLS: {e}", binary.display()));
                }
                Err(e) => failure = e,
            }
        }
        panic!("could not start {}: {failure}", binary.display());
    }

    /// One attempt on one port (two with `tls`).
    fn try_start(binary: &Path, extra: &[&str], tls: bool) -> Result<RedisServer, String> {
        let port = free_port().map_err(|e| e.to_string())?;
        let tls_port = if tls {
            Some(free_port().map_err(|e| e.to_string())?)
        } else {
            None
        };
        let tls_args: Vec<String> = tls_port
            .map(|p| vec!["--tls-port".to_owned(), p.to_string()])
            .unwrap_or_default();
        let dir =
            std::env::temp_dir().join(format!("tannoy-server-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let child = redis_server_command(binary, port, &dir)
            .args(extra)
            .args(&tls_args)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let password = extra
            .iter()
            .position(|a| *a == "--requirepass")
            .and_then(|i| extra.get(i + 1));
        let mut server = RedisServer {
            child,
            port,
            tls_port,
            dir,
        };
        server.wait_until_ready(password.copied())?;
        Ok(server)
    }

    /// Polls until our process answers on the port.
    fn wait_until_ready(&mut self, password: Option<&str>) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                let last = log.lines().rev().take(3).collect::<Vec<_>>();
                return Err(format!("redis-server exited with {status}: {last:?}"));
            }
            if let Ok(mut conn) = RawConn::try_connect(self.addr()) {
                if let Some(password) = password {
                    conn.send(&encode(&[b"AUTH", password.as_bytes()]));
                }
                conn.send(b"INFO server\r\n");
                let reply = conn.read_for(Duration::from_millis(300));
                let wanted = format!("process_id:{}\r\n", self.child.id());
                if reply.windows(wanted.len()).any(|w| w == wanted.as_bytes()) {
                    return Ok(());
                }
                return Err(format!("port {} is served by another process", self.port));
            }
            if Instant::now() > deadline {
                return Err("no answer within 10 s".to_owned());
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The server's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The server's TLS address, if it serves TLS.
    pub(crate) fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_port
            .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A connection's way to the server: TCP, or TLS over TCP.
#[derive(Debug)]
enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS, its handshake done.
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    /// The socket underneath.
    fn socket(&self) -> &TcpStream {
        match self {
            Stream::Tcp(socket) => socket,
            Stream::Tls(tls) => &tls.sock,
        }
    }

    /// Sets the socket's read timeout.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket().set_read_timeout(timeout)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(socket) => socket.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(socket) => socket.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(socket) => socket.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// A raw connection: bytes in, bytes out, nothing interpreted.
#[derive(Debug)]
pub(crate) struct RawConn {
    /// The socket.
    stream: Stream,
    /// Bytes read but not yet taken.
    pending: Vec<u8>,
    /// Whether the peer closed the connection.
    closed: bool,
}

impl RawConn {
    /// Connects.
    pub(crate) fn try_connect(addr: SocketAddr) -> io::Result<RawConn> {
        let stream = TcpStream::connect_timeout(&addr, READ_TIMEOUT)?;
        stream.set_nodelay(true)?;
        Ok(RawConn {
            stream: Stream::Tcp(stream),
            pending: Vec::new(),
            closed: false,
        })
    }

    /// Connects over TLS with `config`, checking the server's certificate
    /// against `name`; the handshake is done when this returns.
    pub(crate) fn try_connect_tls(
        addr: SocketAddr,
        config: std::sync::Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
    ) -> io::Result<RawConn> {
        let mut socket = TcpStream::connect_timeout(&addr, READ_TIMEOUT)?;
        socket.set_nodelay(true)?;
        socket.set_read_timeout(Some(READ_TIMEOUT))?;
        let mut tls = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
        while tls.is_handshaking() {
            tls.complete_io(&mut socket)?;
        }
        Ok(RawConn {
            stream: Stream::Tls(Box::new(rustls::StreamOwned::new(tls, socket))),
            pending: Vec::new(),
            closed: false,
        })
    }

    /// [`try_connect_tls`](Self::try_connect_tls), or fails the test.
    pub(crate) fn connect_tls(
        addr: SocketAddr,
        config: std::sync::Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
    ) -> RawConn {
        Self::try_connect_tls(addr, config, name)
            .unwrap_or_else(|e| panic!("cannot connect over TLS to {addr}: {e}"))
    }

    /// Connects, or fails the test.
    pub(crate) fn connect(addr: SocketAddr) -> RawConn {
        Self::try_connect(addr).unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"))
    }

    /// Sends bytes.
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send to the server");
    }

    /// Sends bytes, reporting a failure instead of failing the test.
    pub(crate) fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads whatever arrives within `quiet` of the last byte (or of the
    /// call), up to EOF.
    pub(crate) fn read_for(&mut self, quiet: Duration) -> Vec<u8> {
        let _ = self.stream.set_read_timeout(Some(quiet));
        let mut buf = [0u8; 65536];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    break;
                }
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        std::mem::take(&mut self.pending)
    }

    /// Reads until the bytes read end with `suffix`, or the connection
    /// closes; returns everything read.
    ///
    /// # Panics
    ///
    /// After [`READ_TIMEOUT`] without the suffix.
    pub(crate) fn read_until_suffix(&mut self, suffix: &[u8]) -> Vec<u8> {
        let _ = self.stream.set_read_timeout(Some(READ_TIMEOUT));
        let mut buf = [0u8; 65536];
        while !self.pending.ends_with(suffix) && !self.closed {
            match self.stream.read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    panic!(
                        "no {:?} within {READ_TIMEOUT:?}; got {:?}",
                        String::from_utf8_lossy(suffix),
                        String::from_utf8_lossy(&self.pending)
                    )
                }
                Err(_) => self.closed = true,
            }
        }
        std::mem::take(&mut self.pending)
    }

    /// Reads until the connection closes; returns everything read.
    pub(crate) fn read_to_close(&mut self) -> Vec<u8> {
        self.read_until_suffix(b"\x00never\x00")
    }

    /// Whether the peer closed the connection.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }
}
