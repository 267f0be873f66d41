//! The [`Bridge`] handle and its builder.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::{ClientTlsConfig, IntoConnectionInfo, RedisError, TlsCertificates};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tannoy::Broker;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::{Error, ErrorKind};
use crate::names::Names;
use crate::status::{State, Status};
use crate::task::{Shared, SyncRequest, Task, Timing};
use crate::upstream::{Dial, Link, resp3};

/// Sync requests that may wait at once; more wait for room.
const SYNC_QUEUE: usize = 64;

/// Configures and starts a [`Bridge`]; made by [`Bridge::builder`].
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tannoy_redis::Error> {
/// use std::time::Duration;
///
/// let broker = tannoy::Broker::new();
/// let bridge = tannoy_redis::Bridge::builder()
///     .url("redis://127.0.0.1:6379")
///     .password("s3cret")
///     .reconnect_backoff(Duration::from_millis(50), Duration::from_secs(5))
///     .broker(broker.clone())
///     .start()
///     .await?;
/// println!("{:?}", bridge.status());
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "a BridgeBuilder does nothing until started"]
pub struct BridgeBuilder {
    /// The server's URL, or the cluster's seed nodes' URLs.
    urls: Vec<String>,
    /// Whether `urls` are nodes of a Redis Cluster.
    cluster: bool,
    /// Overrides the URL's user.
    username: Option<String>,
    /// Overrides the URL's password.
    password: Option<String>,
    /// PEM certificates to trust instead of the system's roots.
    tls_ca: Option<Vec<u8>>,
    /// PEM client certificate chain and private key, for mutual TLS.
    tls_client: Option<(Vec<u8>, Vec<u8>)>,
    /// The local broker.
    broker: Option<Broker>,
    /// Connection attempt timeout.
    connect_timeout: Duration,
    /// Command reply timeout.
    response_timeout: Duration,
    /// Reconnection and health checks.
    timing: Timing,
}

impl fmt::Debug for BridgeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BridgeBuilder")
            .field("urls", &self.urls)
            .field("cluster", &self.cluster)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls_ca_certificate", &self.tls_ca.is_some())
            .field("tls_client_certificate", &self.tls_client.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("timing", &self.timing)
            .finish_non_exhaustive()
    }
}

impl Default for BridgeBuilder {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            cluster: false,
            username: None,
            password: None,
            tls_ca: None,
            tls_client: None,
            broker: None,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(5),
            timing: Timing {
                backoff_min: Duration::from_millis(100),
                backoff_max: Duration::from_secs(10),
                health_check: Duration::from_secs(5),
            },
        }
    }
}

impl BridgeBuilder {
    /// The server: `redis://[user[:password]@]host[:port][/db]`, or
    /// `redis+unix:///path`. No default; this or
    /// [`cluster_nodes`](Self::cluster_nodes) is required, and the last
    /// one called wins.
    ///
    /// The bridge always speaks RESP3 (Redis 6 or later, any Valkey): its
    /// pushes carry subscription confirmations in order with messages,
    /// which exact relaying needs (see the crate docs). A `protocol`
    /// parameter in the URL is overridden.
    ///
    /// # Examples
    ///
    /// ```
    /// let _builder = tannoy_redis::Bridge::builder().url("redis://127.0.0.1:6379/0");
    /// ```
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.urls = vec![url.into()];
        self.cluster = false;
        self
    }

    /// Seed nodes of a Redis Cluster (`redis://host:port` each; one
    /// reachable node is enough, more survive a node being down). The
    /// bridge then holds channels and patterns on one connection to one
    /// node (the cluster propagates every `PUBLISH` to all nodes), trying
    /// the seeds in turn when it reconnects, and shard channels on a
    /// cluster connection that sends each `SSUBSCRIBE` and `SPUBLISH` to
    /// the node owning the channel's slot, and follows slots that move.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = tannoy_redis::Bridge::builder().cluster_nodes([
    ///     "redis://10.0.0.1:7000",
    ///     "redis://10.0.0.2:7000",
    /// ]);
    /// assert!(format!("{builder:?}").contains("cluster: true"));
    /// ```
    pub fn cluster_nodes<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.urls = urls.into_iter().map(Into::into).collect();
        self.cluster = true;
        self
    }

    /// The ACL user to authenticate as, instead of the URL's. Default: the
    /// URL's, or none.
    ///
    /// # Examples
    ///
    /// ```
    /// let _builder = tannoy_redis::Bridge::builder().username("bridge");
    /// ```
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// The password, instead of the URL's. Default: the URL's, or none.
    ///
    /// # Examples
    ///
    /// ```
    /// let _builder = tannoy_redis::Bridge::builder().password("s3cret");
    /// ```
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Trusts the certificate authorities in `pem` (one or more PEM
    /// `CERTIFICATE` blocks) instead of the system's roots, for a server
    /// reached by a `rediss://` URL whose certificate a private CA signed
    /// (a managed Redis with its own CA, a test deployment). Verification
    /// stays on: the server's certificate must chain to one of them and
    /// name the URL's host. Default: the system's roots.
    ///
    /// TLS itself comes from the URL: `rediss://[user[:password]@]host[:port]`
    /// connects with TLS (rustls) whether or not this is called.
    ///
    /// # Errors
    ///
    /// [`start`](Self::start) fails with [`ErrorKind::InvalidConfig`]
    /// when `pem` holds no certificate or a malformed one, or when a URL
    /// is not `rediss://`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = std::fs::read("/etc/redis/ca.crt")?;
    /// let bridge = tannoy_redis::Bridge::builder()
    ///     .url("rediss://:s3cret@redis.internal:6380")
    ///     .tls_ca_certificate(ca)
    ///     .broker(tannoy::Broker::new())
    ///     .start()
    ///     .await?;
    /// # drop(bridge);
    /// # Ok(()) }
    /// ```
    pub fn tls_ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_ca = Some(pem.into());
        self
    }

    /// Presents a client certificate to the server (mutual TLS, as Redis's
    /// `tls-auth-clients yes` requires): `cert_pem` the certificate chain,
    /// `key_pem` its private key, both PEM. `rediss://` URLs only. Default:
    /// none.
    ///
    /// # Errors
    ///
    /// [`start`](Self::start) fails with [`ErrorKind::InvalidConfig`]
    /// when either PEM is malformed, or a URL is not `rediss://`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> std::io::Result<()> {
    /// let _builder = tannoy_redis::Bridge::builder()
    ///     .url("rediss://redis.internal:6380")
    ///     .tls_ca_certificate(std::fs::read("ca.crt")?)
    ///     .tls_client_certificate(std::fs::read("client.crt")?, std::fs::read("client.key")?);
    /// # Ok(()) }
    /// ```
    pub fn tls_client_certificate(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls_client = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// The certificates given to [`tls_ca_certificate`](Self::tls_ca_certificate)
    /// and [`tls_client_certificate`](Self::tls_client_certificate), if
    /// any, once the CA PEM is known to hold a certificate.
    fn tls_certificates(&self) -> Result<Option<TlsCertificates>, RedisError> {
        if self.tls_ca.is_none() && self.tls_client.is_none() {
            return Ok(None);
        }
        if let Some(pem) = &self.tls_ca {
            let mut certs = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                cert.map_err(|e| {
                    RedisError::from((
                        redis::ErrorKind::InvalidClientConfig,
                        "malformed TLS CA certificate PEM",
                        e.to_string(),
                    ))
                })?;
                certs += 1;
            }
            if certs == 0 {
                return Err(RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "the TLS CA PEM holds no CERTIFICATE block",
                )));
            }
        }
        Ok(Some(TlsCertificates {
            client_tls: self.tls_client.as_ref().map(|(cert, key)| ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
            root_cert: self.tls_ca.clone(),
        }))
    }

    /// The local broker whose interest the bridge follows and into which it
    /// publishes what arrives from upstream. Required.
    ///
    /// # Examples
    ///
    /// ```
    /// let broker = tannoy::Broker::new();
    /// let _builder = tannoy_redis::Bridge::builder().broker(broker.clone());
    /// ```
    pub fn broker(mut self, broker: Broker) -> Self {
        self.broker = Some(broker);
        self
    }

    /// How long one connection attempt may take. Default: 5 s.
    ///
    /// # Examples
    ///
    /// ```
    /// let _builder = tannoy_redis::Bridge::builder()
    ///     .connect_timeout(std::time::Duration::from_secs(1));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a command (a publish, a subscription, a health check) may
    /// wait for its reply before it fails; a subscription or health check
    /// that fails counts as a lost connection. Default: 5 s.
    ///
    /// # Examples
    ///
    /// ```
    /// let _builder = tannoy_redis::Bridge::builder()
    ///     .response_timeout(std::time::Duration::from_secs(2));
    /// ```
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Delays between reconnection attempts: `min` after a loss, doubling
    /// up to `max`, each with up to a quarter more at random. Default:
    /// 100 ms to 10 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let _builder = tannoy_redis::Bridge::builder()
    ///     .reconnect_backoff(Duration::from_millis(10), Duration::from_secs(1));
    /// ```
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.timing.backoff_min = min;
        self.timing.backoff_max = max.max(min);
        self
    }

    /// How often the bridge sends `PING` to find out that a quiet
    /// connection is gone (a closed socket is noticed at once; a silent
    /// network is noticed by this). Default: 5 s.
    ///
    /// # Panics
    ///
    /// When `interval` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// let _builder = tannoy_redis::Bridge::builder()
    ///     .health_check_interval(std::time::Duration::from_secs(1));
    /// ```
    #[track_caller]
    pub fn health_check_interval(mut self, interval: Duration) -> Self {
        assert!(
            !interval.is_zero(),
            "health_check_interval must not be zero"
        );
        self.timing.health_check = interval;
        self
    }

    /// Connects, subscribes upstream to every name the broker's
    /// subscribers hold, and starts following local interest on a task
    /// of the current Tokio runtime.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NoBroker`] or [`ErrorKind::InvalidConfig`] (no URL, an
    /// unparsable one, TLS certificates that cannot be read or a URL
    /// without TLS given them, or no Tokio runtime) for a builder that
    /// cannot work; [`ErrorKind::Connect`] when the first connection, its
    /// authentication or its first subscriptions fail. Later losses are
    /// retried, never returned.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tannoy_redis::{Bridge, ErrorKind};
    ///
    /// // Port 1 on loopback has no server: the first connection fails.
    /// let err = Bridge::builder()
    ///     .url("redis://127.0.0.1:1")
    ///     .broker(tannoy::Broker::new())
    ///     .start()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Connect);
    /// # }
    /// ```
    pub async fn start(mut self) -> Result<Bridge, Error> {
        let broker = self
            .broker
            .take()
            .ok_or(Error::from_kind(ErrorKind::NoBroker))?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::from_kind(ErrorKind::InvalidConfig))?;
        if self.urls.is_empty() {
            return Err(Error::from_kind(ErrorKind::InvalidConfig));
        }
        let tls = self
            .tls_certificates()
            .map_err(|e| Error::with_source(ErrorKind::InvalidConfig, e))?;
        let mut nodes = Vec::with_capacity(self.urls.len());
        for url in &self.urls {
            let info = url
                .as_str()
                .into_connection_info()
                .map_err(|e| Error::with_source(ErrorKind::InvalidConfig, e))?;
            let mut redis = info.redis_settings().clone();
            if let Some(username) = &self.username {
                redis = redis.set_username(username);
            }
            if let Some(password) = &self.password {
                redis = redis.set_password(password);
            }
            let mut info = resp3(info.set_redis_settings(redis));
            if let Some(certs) = &tls {
                // Parses the PEMs into the address, once for every connection.
                info = redis::Client::build_with_tls(info, certs.clone())
                    .map_err(|e| Error::with_source(ErrorKind::InvalidConfig, e))?
                    .get_connection_info()
                    .clone();
            }
            nodes.push(info);
        }
        let dial = Dial {
            nodes,
            tls,
            cluster: self.cluster,
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
        };

        // Watch before connecting, so no change of interest is missed.
        let watch = broker.watch_interest();
        let mut wanted = Names::default();
        while let Some(change) = watch.try_next() {
            wanted.apply(change);
        }
        let mut link = Link::connect(&dial, &broker, 0)
            .await
            .map_err(|e| Error::with_source(ErrorKind::Connect, e))?;
        let mut have = Names::default();
        link.reconcile(&wanted, &mut have)
            .await
            .map_err(|e| Error::with_source(ErrorKind::Connect, e))?;

        let (status, _) = watch::channel(Status {
            state: State::Connected,
            outages: 0,
        });
        let shared = Arc::new(Shared {
            broker,
            conn: Mutex::new(Some(link.conns.clone())),
            status,
        });
        let (sync_tx, syncs) = mpsc::channel(SYNC_QUEUE);
        let (stop, shutdown) = watch::channel(false);
        let task = Task {
            shared: Arc::clone(&shared),
            dial,
            timing: self.timing,
            watch,
            syncs,
            shutdown,
            wanted,
            attempts: 0,
        };
        let handle = runtime.spawn(task.run(link, have));
        Ok(Bridge {
            shared,
            syncs: sync_tx,
            stop,
            task: Some(handle),
        })
    }
}

/// Joins a local [`Broker`] to a Redis-protocol server; made by
/// [`Bridge::builder`].
///
/// While it runs, the bridge holds one upstream subscription per channel,
/// pattern and shard channel that some local subscriber holds, and
/// publishes what arrives into the broker. [`publish`](Self::publish) and
/// [`spublish`](Self::spublish) go to the server, so every bridged process
/// (this one too) receives the message once, in the server's order.
/// Dropping the bridge stops it, as [`shutdown`](Self::shutdown) does
/// without waiting.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tannoy_redis::Bridge;
///
/// let broker = tannoy::Broker::new();
/// let bridge = Bridge::builder()
///     .url("redis://127.0.0.1:6379")
///     .broker(broker.clone())
///     .start()
///     .await?;
/// let mut sub = broker.subscriber();
/// sub.subscribe(["ai:predictions:ready"]);
/// bridge.sync().await?; // subscribed upstream
/// bridge.publish("ai:predictions:ready", "p-1").await?;
/// assert_eq!(sub.recv_async().await?.payload(), "p-1");
/// bridge.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "dropping the Bridge stops it"]
pub struct Bridge {
    /// Shared with the task.
    shared: Arc<Shared>,
    /// Sync requests to the task.
    syncs: mpsc::Sender<SyncRequest>,
    /// Tells the task to stop.
    stop: watch::Sender<bool>,
    /// The task.
    task: Option<JoinHandle<()>>,
}

impl Bridge {
    /// A builder with the defaults each setter names.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = tannoy_redis::Bridge::builder().url("redis://127.0.0.1");
    /// assert!(format!("{builder:?}").contains("127.0.0.1"));
    /// ```
    pub fn builder() -> BridgeBuilder {
        BridgeBuilder::default()
    }

    /// The local broker.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tannoy_redis::Error> {
    /// # let bridge = tannoy_redis::Bridge::builder()
    /// #     .url("redis://127.0.0.1:6379")
    /// #     .broker(tannoy::Broker::new())
    /// #     .start()
    /// #     .await?;
    /// let sub = bridge.broker().subscriber();
    /// sub.subscribe(["news"]);
    /// # Ok(()) }
    /// ```
    pub fn broker(&self) -> &Broker {
        &self.shared.broker
    }

    /// Publishes `payload` to `channel` on the server, and returns the
    /// server's reply: how many upstream **connections** received it
    /// (each bridged process counts once per subscription or matching
    /// pattern it holds upstream, whatever its number of local
    /// subscribers; a direct Redis subscriber counts as itself). In a
    /// Redis Cluster the count covers only the node that received the
    /// publish, as Redis documents, while delivery reaches every node.
    ///
    /// The message reaches local subscribers only through the server, as
    /// it reaches every other bridged process: once, in the server's
    /// order, after a round trip. To reach only this process, use
    /// [`Broker::publish`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] at once while the bridge is between
    /// connections (nothing is queued); [`ErrorKind::Upstream`] when the
    /// server fails the command or does not answer within the response
    /// timeout (the message may or may not have been published);
    /// [`ErrorKind::Closed`] after shutdown.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tannoy_redis::Error> {
    /// # let bridge = tannoy_redis::Bridge::builder()
    /// #     .url("redis://127.0.0.1:6379")
    /// #     .broker(tannoy::Broker::new())
    /// #     .start()
    /// #     .await?;
    /// let receivers = bridge.publish("conversations:new", "Where is my order?").await?;
    /// println!("{receivers} upstream connections received it");
    /// # Ok(()) }
    /// ```
    pub async fn publish(
        &self,
        channel: impl AsRef<[u8]>,
        payload: impl AsRef<[u8]>,
    ) -> Result<usize, Error> {
        self.command(false, channel.as_ref(), payload.as_ref())
            .await
    }

    /// Publishes `payload` to the shard channel `channel` on the server,
    /// and returns the server's reply: how many upstream connections hold
    /// the shard channel (one per bridged process that holds it locally).
    /// As [`publish`](Self::publish), otherwise.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tannoy_redis::Error> {
    /// # let bridge = tannoy_redis::Bridge::builder()
    /// #     .url("redis://127.0.0.1:6379")
    /// #     .broker(tannoy::Broker::new())
    /// #     .start()
    /// #     .await?;
    /// bridge.spublish("orders:{42}", "shipped").await?;
    /// # Ok(()) }
    /// ```
    pub async fn spublish(
        &self,
        channel: impl AsRef<[u8]>,
        payload: impl AsRef<[u8]>,
    ) -> Result<usize, Error> {
        self.command(true, channel.as_ref(), payload.as_ref()).await
    }

    /// Sends `PUBLISH` (or, for `shard`, `SPUBLISH`) and reads the count.
    async fn command(&self, shard: bool, channel: &[u8], payload: &[u8]) -> Result<usize, Error> {
        let Some(conns) = self.shared.conn() else {
            let kind = if self.status().state() == State::Closed {
                ErrorKind::Closed
            } else {
                ErrorKind::Disconnected
            };
            return Err(Error::from_kind(kind));
        };
        let mut cmd = redis::cmd(if shard { "SPUBLISH" } else { "PUBLISH" });
        cmd.arg(channel).arg(payload);
        let count: i64 = match conns.shards {
            Some(mut shards) if shard => cmd.query_async(&mut shards).await,
            _ => {
                let mut node = conns.node;
                cmd.query_async(&mut node).await
            }
        }
        .map_err(|e| Error::with_source(ErrorKind::Upstream, e))?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// Waits until the server has confirmed an upstream subscription for
    /// every name local subscribers held when this was called, and
    /// dropped those no longer held: after it returns, a message published
    /// to the server by anyone reaches them. While the bridge is between
    /// connections, waits for the next one.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] when the connection failed while
    /// subscribing (the bridge reconnects and resubscribes; call again),
    /// [`ErrorKind::Closed`] after shutdown or once the broker closed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tannoy_redis::Error> {
    /// # let bridge = tannoy_redis::Bridge::builder()
    /// #     .url("redis://127.0.0.1:6379")
    /// #     .broker(tannoy::Broker::new())
    /// #     .start()
    /// #     .await?;
    /// let sub = bridge.broker().subscriber();
    /// sub.subscribe(["news"]);
    /// sub.psubscribe(["orders:*"]);
    /// bridge.sync().await?;
    /// // Every order published anywhere from now on reaches `sub`.
    /// # Ok(()) }
    /// ```
    pub async fn sync(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.syncs
            .send(tx)
            .await
            .map_err(|_| Error::from_kind(ErrorKind::Closed))?;
        rx.await
            .unwrap_or_else(|_| Err(Error::from_kind(ErrorKind::Closed)))
    }

    /// The connection's state and outage count now.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tannoy_redis::Error> {
    /// # let bridge = tannoy_redis::Bridge::builder()
    /// #     .url("redis://127.0.0.1:6379")
    /// #     .broker(tannoy::Broker::new())
    /// #     .start()
    /// #     .await?;
    /// if bridge.status().state() != tannoy_redis::State::Connected {
    ///     eprintln!("Redis is away; {} outages so far", bridge.status().outages());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn status(&self) -> Status {
        self.shared.status.borrow().clone()
    }

    /// A receiver that sees each change of [`status`](Self::status): to
    /// wait for `Connected`, alert on `Connecting`, or count outages.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tannoy_redis::Error> {
    /// # let bridge = tannoy_redis::Bridge::builder()
    /// #     .url("redis://127.0.0.1:6379")
    /// #     .broker(tannoy::Broker::new())
    /// #     .start()
    /// #     .await?;
    /// let mut status = bridge.status_watch();
    /// let _ = status.wait_for(|s| s.state() == tannoy_redis::State::Connected).await;
    /// # Ok(()) }
    /// ```
    pub fn status_watch(&self) -> watch::Receiver<Status> {
        self.shared.status.subscribe()
    }

    /// Stops the bridge: drops the upstream connection (the server drops
    /// its subscriptions), and waits for the task to end. Local
    /// subscribers and the broker are untouched.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tannoy_redis::Error> {
    /// # let bridge = tannoy_redis::Bridge::builder()
    /// #     .url("redis://127.0.0.1:6379")
    /// #     .broker(tannoy::Broker::new())
    /// #     .start()
    /// #     .await?;
    /// bridge.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
