//! [`TestServer`]: a server with its own runtime, for tests that are not
//! async, like Go's `miniredis.Run()`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use tannoy::Broker;
use tokio::runtime::Runtime;

use crate::clients::ClientInfo;
use crate::server::{Inner, Server, ServerBuilder};

/// A [`Server`] on its own tokio runtime, stopped when dropped.
///
/// Made for tests: `TestServer::start()` gives a server on a free loopback
/// port with Redis's defaults, and [`url`](Self::url) is what an unmodified
/// client connects to. Every method blocks until done and works from any
/// thread, inside an async runtime or not (the server never runs on the
/// caller's runtime).
///
/// With the `test-tls` feature, `start_tls` serves TLS instead, with a
/// certificate from a throwaway CA that the test's client is told to
/// trust (`ca_pem`, `ca_path`).
///
/// # Examples
///
/// ```
/// use std::io::{BufRead, BufReader, Write};
///
/// let redis = tannoy_server::TestServer::start();
/// let mut conn = std::net::TcpStream::connect(redis.local_addr())?;
/// conn.write_all(b"PUBLISH news hello\r\n")?;
/// let mut reply = String::new();
/// BufReader::new(&conn).read_line(&mut reply)?;
/// assert_eq!(reply, ":0\r\n"); // nobody listens yet
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TestServer {
    /// The server.
    server: Option<Server>,
    /// The runtime it runs on.
    runtime: Option<Runtime>,
    /// The CA that signed its certificate, when it serves TLS.
    #[cfg(feature = "test-tls")]
    ca: Option<crate::test_ca::TestCa>,
}

/// Worker threads of a test server's runtime: two, so the server keeps up
/// with a test's clients without taking a core per client.
const WORKERS: usize = 2;

impl TestServer {
    /// Starts a server with Redis's defaults on a free loopback port.
    ///
    /// # Panics
    ///
    /// If no runtime can be built or no loopback port bound (the machine
    /// is out of threads, descriptors or ports).
    ///
    /// # Examples
    ///
    /// See [`TestServer`].
    #[track_caller]
    pub fn start() -> Self {
        Self::with(Server::builder())
    }

    /// Starts a server configured by `builder`.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start), and when the builder's address cannot be
    /// bound.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let redis = tannoy_server::TestServer::with(
    ///     tannoy_server::Server::builder().broker(broker.clone()).requirepass("pw"),
    /// );
    /// assert!(redis.url().starts_with("redis://:pw@127.0.0.1:"));
    /// ```
    #[track_caller]
    pub fn with(builder: ServerBuilder) -> Self {
        match Self::try_with(builder) {
            Ok(server) => server,
            Err(e) => panic!("cannot start a test server: {e}"),
        }
    }

    /// Starts a server configured by `builder`.
    ///
    /// # Errors
    ///
    /// When no runtime can be built or the address cannot be bound.
    ///
    /// # Examples
    ///
    /// ```
    /// let redis = tannoy_server::TestServer::try_with(tannoy_server::Server::builder())?;
    /// assert_eq!(redis.clients().len(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn try_with(builder: ServerBuilder) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name("tannoy-test-server")
            .enable_all()
            .build()?;
        let (tx, rx) = mpsc::channel();
        runtime.spawn(async move {
            let _ = tx.send(builder.start().await);
        });
        let server = rx
            .recv()
            .map_err(|_| io::Error::other("the server's runtime stopped"))??;
        Ok(Self {
            server: Some(server),
            runtime: Some(runtime),
            #[cfg(feature = "test-tls")]
            ca: None,
        })
    }

    /// Starts a server with Redis's defaults that serves TLS only, on a
    /// free loopback port, with a certificate for `localhost`, `127.0.0.1`
    /// and `::1` signed by a CA generated for it alone. Its
    /// [`url`](Self::url) is `rediss://127.0.0.1:PORT`; clients trust
    /// [`ca_pem`](Self::ca_pem) (or the file at [`ca_path`](Self::ca_path))
    /// and verify the server as they would in production.
    ///
    /// Needs the `test-tls` feature (which compiles `rcgen`).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start), and if the CA file cannot be written to
    /// the temporary directory.
    ///
    /// # Examples
    ///
    /// ```
    /// let redis = tannoy_server::TestServer::start_tls();
    /// let client = redis::Client::build_with_tls(
    ///     redis.url(), // "rediss://127.0.0.1:PORT"
    ///     redis::TlsCertificates {
    ///         client_tls: None,
    ///         root_cert: Some(redis.ca_pem().as_bytes().to_vec()),
    ///     },
    /// )?;
    /// let mut con = client.get_connection()?;
    /// let receivers: i64 = redis::cmd("PUBLISH").arg("news").arg("hi").query(&mut con)?;
    /// assert_eq!(receivers, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "test-tls")]
    #[track_caller]
    pub fn start_tls() -> Self {
        Self::with_tls(Server::builder())
    }

    /// As [`start_tls`](Self::start_tls), with the rest of the
    /// configuration from `builder` (a password, say). Its TLS settings
    /// are replaced by the generated ones; with
    /// [`tls_bind`](ServerBuilder::tls_bind), TLS is served there and
    /// plaintext on the `bind` address.
    ///
    /// Needs the `test-tls` feature.
    ///
    /// # Panics
    ///
    /// As [`start_tls`](Self::start_tls).
    ///
    /// # Examples
    ///
    /// ```
    /// let redis = tannoy_server::TestServer::with_tls(
    ///     tannoy_server::Server::builder().requirepass("access-key"),
    /// );
    /// assert!(redis.url().starts_with("rediss://:access-key@127.0.0.1:"));
    /// ```
    #[cfg(feature = "test-tls")]
    #[track_caller]
    pub fn with_tls(builder: ServerBuilder) -> Self {
        match Self::try_with_tls(builder) {
            Ok(server) => server,
            Err(e) => panic!("cannot start a TLS test server: {e}"),
        }
    }

    /// As [`with_tls`](Self::with_tls), returning failures.
    ///
    /// Needs the `test-tls` feature.
    ///
    /// # Errors
    ///
    /// When no runtime can be built, the address cannot be bound or the
    /// CA file cannot be written.
    ///
    /// # Examples
    ///
    /// ```
    /// let redis = tannoy_server::TestServer::try_with_tls(tannoy_server::Server::builder())?;
    /// assert!(redis.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(feature = "test-tls")]
    pub fn try_with_tls(builder: ServerBuilder) -> io::Result<Self> {
        let (ca, config) = crate::test_ca::TestCa::generate()?;
        let mut server = Self::try_with(builder.tls(config))?;
        server.ca = Some(ca);
        Ok(server)
    }

    /// The generated CA.
    #[cfg(feature = "test-tls")]
    #[track_caller]
    fn ca(&self) -> &crate::test_ca::TestCa {
        match &self.ca {
            Some(ca) => ca,
            None => panic!("not a TLS test server: start it with TestServer::start_tls"),
        }
    }

    /// The PEM of the CA that signed the server's certificate: what the
    /// test's client trusts.
    ///
    /// Needs the `test-tls` feature.
    ///
    /// # Panics
    ///
    /// If the server was not started with [`start_tls`](Self::start_tls)
    /// or its siblings.
    ///
    /// # Examples
    ///
    /// See [`start_tls`](Self::start_tls).
    #[cfg(feature = "test-tls")]
    #[track_caller]
    pub fn ca_pem(&self) -> &str {
        self.ca().pem()
    }

    /// A file holding [`ca_pem`](Self::ca_pem), for clients that take a
    /// path (redis-py's `ssl_ca_certs`, `redis-cli --cacert`). It is
    /// removed when the server is dropped.
    ///
    /// Needs the `test-tls` feature.
    ///
    /// # Panics
    ///
    /// As [`ca_pem`](Self::ca_pem).
    ///
    /// # Examples
    ///
    /// ```
    /// let redis = tannoy_server::TestServer::start_tls();
    /// let pem = std::fs::read_to_string(redis.ca_path())?;
    /// assert_eq!(pem, redis.ca_pem());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(feature = "test-tls")]
    #[track_caller]
    pub fn ca_path(&self) -> &std::path::Path {
        self.ca().path()
    }

    /// The running server.
    fn server(&self) -> &Server {
        // Only `drop` takes it.
        self.server
            .as_ref()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
    }

    /// Runs `task` on the server's runtime and waits for its result.
    fn run<T, F>(&self, task: impl FnOnce(Arc<Inner>) -> F) -> T
    where
        F: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let future = task(Arc::clone(self.server().inner()));
        if let Some(runtime) = &self.runtime {
            runtime.spawn(async move {
                let _ = tx.send(future.await);
            });
        }
        match rx.recv() {
            Ok(value) => value,
            Err(_) => unreachable!("the runtime lives as long as the test server"),
        }
    }

    /// The URL to give a Redis client (see [`Server::url`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let redis = tannoy_server::TestServer::start();
    /// assert!(redis.url().starts_with("redis://127.0.0.1:"));
    /// ```
    pub fn url(&self) -> String {
        self.server().url()
    }

    /// The address the server listens on (see [`Server::local_addr`]).
    ///
    /// # Examples
    ///
    /// See [`TestServer`].
    pub fn local_addr(&self) -> SocketAddr {
        self.server().local_addr()
    }

    /// The TLS listener's URL, if the server has one (see
    /// [`Server::tls_url`]).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tannoy_server::TestServer::start().tls_url(), None);
    /// ```
    pub fn tls_url(&self) -> Option<String> {
        self.server().tls_url()
    }

    /// The TLS listener's address, if the server has one (see
    /// [`Server::tls_local_addr`]).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tannoy_server::TestServer::start().tls_local_addr(), None);
    /// ```
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.server().tls_local_addr()
    }

    /// The broker served; publish or subscribe in-process through it.
    ///
    /// # Examples
    ///
    /// ```
    /// let redis = tannoy_server::TestServer::start();
    /// assert_eq!(redis.broker().publish("news", "nobody listens"), 0);
    /// ```
    pub fn broker(&self) -> &Broker {
        self.server().broker()
    }

    /// A snapshot of every connected client (see [`Server::clients`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let redis = tannoy_server::TestServer::start();
    /// assert!(redis.clients().is_empty());
    /// ```
    pub fn clients(&self) -> Vec<ClientInfo> {
        self.server().clients()
    }

    /// Closes the connections `filter` selects (see
    /// [`Server::kill_clients`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let redis = tannoy_server::TestServer::start();
    /// assert_eq!(redis.kill_clients(|_| true), 0);
    /// ```
    pub fn kill_clients(&self, filter: impl Fn(&ClientInfo) -> bool + Send + 'static) -> usize {
        self.run(|inner| async move { inner.kill_clients(filter).await })
    }

    /// Holds back output to the clients `filter` selects (see
    /// [`Server::stall_clients`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let redis = tannoy_server::TestServer::start();
    /// assert_eq!(redis.stall_clients(|_| true, std::time::Duration::from_secs(1)), 0);
    /// ```
    pub fn stall_clients(&self, filter: impl Fn(&ClientInfo) -> bool, duration: Duration) -> usize {
        self.server().stall_clients(filter, duration)
    }

    /// Stops accepting and closes every connection (see [`Server::stop`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let redis = tannoy_server::TestServer::start();
    /// redis.stop();
    /// assert!(std::net::TcpStream::connect(redis.local_addr()).is_err());
    /// redis.resume()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stop(&self) {
        self.run(|inner| async move { inner.stop().await });
    }

    /// Listens again after [`stop`](Self::stop) (see [`Server::resume`]).
    ///
    /// # Errors
    ///
    /// When the port cannot be bound again.
    ///
    /// # Examples
    ///
    /// See [`stop`](Self::stop).
    pub fn resume(&self) -> io::Result<()> {
        self.run(|inner| async move { inner.resume().await })
    }

    /// Drops every connection and subscription and listens again on the
    /// same port (see [`Server::restart`]).
    ///
    /// # Errors
    ///
    /// When the port cannot be bound again.
    ///
    /// # Examples
    ///
    /// ```
    /// let redis = tannoy_server::TestServer::start();
    /// let url = redis.url();
    /// redis.restart()?;
    /// assert_eq!(redis.url(), url);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn restart(&self) -> io::Result<()> {
        self.run(|inner| async move {
            inner.stop().await;
            inner.resume().await
        })
    }
}

impl Drop for TestServer {
    /// Shuts the server down (every connection closed), then its runtime.
    fn drop(&mut self) {
        if let (Some(server), Some(runtime)) = (self.server.take(), self.runtime.as_ref()) {
            let (tx, rx) = mpsc::channel();
            runtime.spawn(async move {
                server.shutdown().await;
                let _ = tx.send(());
            });
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
        if let Some(runtime) = self.runtime.take() {
            // Not `drop`: that blocks, which panics inside an async test.
            runtime.shutdown_background();
        }
    }
}
