//! TLS listeners: [`TlsConfig`] (the server's certificate and key, the CA
//! that client certificates are checked against, `tls-auth-clients`, the
//! handshake timeout), and the handshake that turns an accepted TCP stream
//! into the stream the connection loop serves.
//!
//! # Handshakes
//!
//! Each connection accepted on a TLS listener gets its own handshake task,
//! so one client that is slow, silent or hostile during its handshake
//! holds up nobody else. A handshake is bounded:
//!
//! * in time, by [`TlsConfig::handshake_timeout`] (default
//!   [`DEFAULT_HANDSHAKE_TIMEOUT`]): a client that stalls half-way is
//!   disconnected when it runs out;
//! * in memory, by rustls, which holds at most one handshake message (at
//!   most 64 KiB) and one TLS record of a connection at a time;
//! * in number: at most `maxclients` handshakes run at once, and a
//!   connection accepted beyond that is closed at once.
//!
//! A handshake that fails (plaintext on the TLS port, garbage, a client
//! that rejects the server's certificate, a client certificate that does
//! not verify) closes that connection and nothing else; rustls sends the
//! client a TLS alert where the protocol has one. Only a connection whose
//! handshake succeeded is admitted, and from then on it is served exactly
//! as a TCP connection is: `maxclients`, `requirepass`, `AUTH` and `HELLO`
//! behave identically on both.

use std::fmt;
use std::io;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;

use crate::config::ParseSettingError;

/// How long a TLS handshake may take before the connection is closed,
/// unless [`TlsConfig::handshake_timeout`] says otherwise: 10 seconds, far
/// beyond the few round trips a real client needs even on a slow network,
/// and short enough that connections which stall mid-handshake do not pile
/// up. (Redis itself has no such limit.)
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether clients must present a certificate (Redis's
/// `tls-auth-clients`), checked against the CA of
/// [`TlsConfig::client_ca_pem`].
///
/// # Examples
///
/// ```
/// use tannoy_server::AuthClients;
///
/// assert_eq!("optional".parse::<AuthClients>()?, AuthClients::Optional);
/// assert_eq!(AuthClients::Yes.to_string(), "yes");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthClients {
    /// No client certificate is asked for (any client may connect, and
    /// `requirepass` is what keeps strangers out, as with Azure's access
    /// keys).
    No,
    /// Mutual TLS: a client without a certificate signed by the CA is
    /// refused during the handshake.
    Yes,
    /// A client may present a certificate, which must then verify; one
    /// without a certificate is accepted.
    Optional,
}

impl FromStr for AuthClients {
    type Err = ParseSettingError;

    /// `no`, `yes` or `optional` (any case), as Redis's configuration.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "no" => Ok(Self::No),
            "yes" => Ok(Self::Yes),
            "optional" => Ok(Self::Optional),
            _ => Err(ParseSettingError::new(format!(
                "expected 'no', 'yes' or 'optional', got '{text}'"
            ))),
        }
    }
}

impl fmt::Display for AuthClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::No => "no",
            Self::Yes => "yes",
            Self::Optional => "optional",
        })
    }
}

/// What went wrong with a TLS setting; see [`TlsError::kind`].
///
/// # Examples
///
/// ```
/// use tannoy_server::{TlsConfig, TlsErrorKind};
///
/// let err = TlsConfig::from_pem("not a certificate", "not a key").unwrap_err();
/// assert_eq!(err.kind(), TlsErrorKind::Pem);
/// assert_eq!(err.to_string(), "no certificate found in the certificate PEM");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// A file could not be read.
    Read,
    /// PEM text held no certificate or key of the kind needed, or a
    /// malformed one.
    Pem,
    /// The TLS stack refused the certificates or key (a key that does not
    /// match the certificate, an unsupported key type, an unusable CA).
    Rejected,
    /// Client certificates were required (`tls-auth-clients yes` or
    /// `optional`) with no CA to check them against.
    NoClientCa,
}

/// A TLS setting that could not be used: which one, and why.
///
/// Converts into an [`io::Error`] of kind `InvalidInput`, which is how
/// [`ServerBuilder::start`](crate::ServerBuilder::start) reports it.
///
/// # Examples
///
/// ```
/// use tannoy_server::{TlsConfig, TlsErrorKind};
///
/// let err = TlsConfig::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem")
///     .unwrap_err();
/// assert_eq!(err.kind(), TlsErrorKind::Read);
/// assert!(err.to_string().starts_with("cannot read '/nonexistent/cert.pem'"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsError {
    /// What kind of failure.
    kind: TlsErrorKind,
    /// What failed and why, as a lowercase fragment.
    message: String,
}

impl TlsError {
    /// An error of `kind`, described by `message`.
    fn new(kind: TlsErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// What kind of failure this is.
    ///
    /// # Examples
    ///
    /// See [`TlsError`].
    pub fn kind(&self) -> TlsErrorKind {
        self.kind
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TlsError {}

impl From<TlsError> for io::Error {
    fn from(error: TlsError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, error)
    }
}

/// The TLS settings of a server: its certificate chain and private key,
/// and optionally a CA for client certificates (Redis's `tls-cert-file`,
/// `tls-key-file`, `tls-ca-cert-file` and `tls-auth-clients`).
///
/// Give it to [`ServerBuilder::tls`](crate::ServerBuilder::tls). Clients
/// verify the server's certificate against whatever CA they trust, as they
/// would in production; nothing here weakens that. The TLS stack is rustls
/// (TLS 1.2 and 1.3, its safe default cipher suites).
///
/// For tests, `TestServer::start_tls` (feature `test-tls`) generates a
/// throwaway CA and server certificate instead.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tannoy_server::{Server, TlsConfig};
///
/// let tls = TlsConfig::from_pem_files("server.crt", "server.key")?;
/// let server = Server::builder()
///     .bind("127.0.0.1:6380") // TLS only, as Azure Cache for Redis
///     .tls(tls)
///     .requirepass("access-key")
///     .start()
///     .await?;
/// assert!(server.url().starts_with("rediss://"));
/// # Ok(())
/// # }
/// ```
pub struct TlsConfig {
    /// The server's certificate, then any intermediates.
    cert_chain: Vec<CertificateDer<'static>>,
    /// The certificate's private key.
    key: PrivateKeyDer<'static>,
    /// CA certificates that client certificates must chain to.
    client_ca: Vec<CertificateDer<'static>>,
    /// `tls-auth-clients`; `None`: `yes` with a CA (Redis's default), `no`
    /// without one.
    auth_clients: Option<AuthClients>,
    /// How long a handshake may take.
    handshake_timeout: Duration,
}

impl Clone for TlsConfig {
    fn clone(&self) -> Self {
        Self {
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
            client_ca: self.client_ca.clone(),
            auth_clients: self.auth_clients,
            handshake_timeout: self.handshake_timeout,
        }
    }
}

impl fmt::Debug for TlsConfig {
    /// Shows the settings, never the private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("certificates", &self.cert_chain.len())
            .field("client_ca_certificates", &self.client_ca.len())
            .field("auth_clients", &self.auth_clients_setting())
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

/// The crypto provider: rustls's `ring` one, named rather than taken from
/// the process default, so that another crate enabling a second provider
/// cannot make the server fail to start.
#[allow(
    deprecated,
    reason = "rustls 0.23.48 deprecates its ring provider for lacking post-quantum key \
              exchange; the alternative, aws-lc-rs, is a large C build, and the OpenSSL 3.0 \
              clients tested here (redis-cli, redis-py) do not offer post-quantum groups"
)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(tokio_rustls::rustls::crypto::ring::default_provider())
}

/// Reads a PEM file, naming it in the error.
fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| {
        TlsError::new(
            TlsErrorKind::Read,
            format!("cannot read '{}': {e}", path.display()),
        )
    })
}

/// Every certificate in `pem`; `what` names it in errors.
fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(TlsErrorKind::Pem, format!("invalid {what} PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::new(
            TlsErrorKind::Pem,
            format!("no certificate found in the {what} PEM"),
        ));
    }
    Ok(certs)
}

impl TlsConfig {
    /// A configuration from PEM text: `cert_chain` holds the server's
    /// certificate first, then any intermediates; `key` its private key
    /// (PKCS#8, PKCS#1 or SEC1). No client certificate is asked for.
    ///
    /// # Errors
    ///
    /// [`TlsErrorKind::Pem`] when either holds no certificate or key,
    /// [`TlsErrorKind::Rejected`] when the key does not match the
    /// certificate or is of an unsupported type.
    ///
    /// # Examples
    ///
    /// ```
    /// let cert = std::fs::read("tests/data/tls/server.crt")?;
    /// let key = std::fs::read("tests/data/tls/server.key")?;
    /// let _tls = tannoy_server::TlsConfig::from_pem(&cert, &key)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_pem(cert_chain: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> Result<Self, TlsError> {
        let cert_chain = certificates(cert_chain.as_ref(), "certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key.as_ref()).map_err(|e| {
            TlsError::new(
                TlsErrorKind::Pem,
                format!("no private key found in the key PEM: {e}"),
            )
        })?;
        let config = Self {
            cert_chain,
            key,
            client_ca: Vec::new(),
            auth_clients: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        };
        // Fail now, not at start, on a key that does not fit.
        config.server_config()?;
        Ok(config)
    }

    /// A configuration from PEM files (Redis's `tls-cert-file` and
    /// `tls-key-file`); see [`from_pem`](Self::from_pem).
    ///
    /// # Errors
    ///
    /// [`TlsErrorKind::Read`] when a file cannot be read, otherwise as
    /// [`from_pem`](Self::from_pem).
    ///
    /// # Examples
    ///
    /// ```
    /// let _tls = tannoy_server::TlsConfig::from_pem_files(
    ///     "tests/data/tls/server.crt",
    ///     "tests/data/tls/server.key",
    /// )?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        let cert_chain = read(cert_chain.as_ref())?;
        let key = read(key.as_ref())?;
        Self::from_pem(cert_chain, key)
    }

    /// Checks client certificates against the CA certificates in `ca`
    /// (Redis's `tls-ca-cert-file`). With a CA and no
    /// [`auth_clients`](Self::auth_clients), clients must present a
    /// certificate, as Redis's default `tls-auth-clients yes` requires.
    ///
    /// # Errors
    ///
    /// [`TlsErrorKind::Pem`] when `ca` holds no certificate,
    /// [`TlsErrorKind::Rejected`] when one cannot serve as a trust anchor.
    ///
    /// # Examples
    ///
    /// ```
    /// let ca = std::fs::read("tests/data/tls/ca.crt")?;
    /// let _tls = tannoy_server::TlsConfig::from_pem_files(
    ///     "tests/data/tls/server.crt",
    ///     "tests/data/tls/server.key",
    /// )?
    /// .client_ca_pem(&ca)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn client_ca_pem(mut self, ca: impl AsRef<[u8]>) -> Result<Self, TlsError> {
        let ca = certificates(ca.as_ref(), "CA certificate")?;
        let mut roots = RootCertStore::empty();
        for cert in &ca {
            roots.add(cert.clone()).map_err(|e| {
                TlsError::new(
                    TlsErrorKind::Rejected,
                    format!("unusable CA certificate: {e}"),
                )
            })?;
        }
        self.client_ca = ca;
        Ok(self)
    }

    /// [`client_ca_pem`](Self::client_ca_pem) from a file.
    ///
    /// # Errors
    ///
    /// [`TlsErrorKind::Read`] when the file cannot be read, otherwise as
    /// [`client_ca_pem`](Self::client_ca_pem).
    ///
    /// # Examples
    ///
    /// ```
    /// let _tls = tannoy_server::TlsConfig::from_pem_files(
    ///     "tests/data/tls/server.crt",
    ///     "tests/data/tls/server.key",
    /// )?
    /// .client_ca_pem_file("tests/data/tls/ca.crt")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn client_ca_pem_file(self, ca: impl AsRef<Path>) -> Result<Self, TlsError> {
        let ca = read(ca.as_ref())?;
        self.client_ca_pem(ca)
    }

    /// Whether clients must present a certificate (Redis's
    /// `tls-auth-clients`). Default: [`AuthClients::Yes`] when a client CA
    /// is set, as Redis; [`AuthClients::No`] without one.
    /// [`AuthClients::Yes`] and [`AuthClients::Optional`] need a CA:
    /// starting a server without one fails with
    /// [`TlsErrorKind::NoClientCa`].
    ///
    /// # Examples
    ///
    /// ```
    /// use tannoy_server::{AuthClients, TlsConfig};
    ///
    /// let tls = TlsConfig::from_pem_files("tests/data/tls/server.crt", "tests/data/tls/server.key")?
    ///     .client_ca_pem_file("tests/data/tls/ca.crt")?
    ///     .auth_clients(AuthClients::Optional);
    /// assert_eq!(tls.auth_clients_setting(), AuthClients::Optional);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn auth_clients(mut self, auth_clients: AuthClients) -> Self {
        self.auth_clients = Some(auth_clients);
        self
    }

    /// The `tls-auth-clients` in force (see
    /// [`auth_clients`](Self::auth_clients) for the default).
    ///
    /// # Examples
    ///
    /// ```
    /// use tannoy_server::{AuthClients, TlsConfig};
    ///
    /// let tls = TlsConfig::from_pem_files("tests/data/tls/server.crt", "tests/data/tls/server.key")?;
    /// assert_eq!(tls.auth_clients_setting(), AuthClients::No);
    /// let tls = tls.client_ca_pem_file("tests/data/tls/ca.crt")?;
    /// assert_eq!(tls.auth_clients_setting(), AuthClients::Yes);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn auth_clients_setting(&self) -> AuthClients {
        self.auth_clients.unwrap_or(if self.client_ca.is_empty() {
            AuthClients::No
        } else {
            AuthClients::Yes
        })
    }

    /// How long a client's TLS handshake may take before its connection is
    /// closed. Default: [`DEFAULT_HANDSHAKE_TIMEOUT`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let _tls = tannoy_server::TlsConfig::from_pem_files(
    ///     "tests/data/tls/server.crt",
    ///     "tests/data/tls/server.key",
    /// )?
    /// .handshake_timeout(Duration::from_secs(2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The rustls configuration these settings make.
    fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let rejected = |e: &dyn fmt::Display| TlsError::new(TlsErrorKind::Rejected, e.to_string());
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| rejected(&e))?;
        let auth = self.auth_clients_setting();
        let builder = if auth == AuthClients::No {
            builder.with_no_client_auth()
        } else {
            if self.client_ca.is_empty() {
                return Err(TlsError::new(
                    TlsErrorKind::NoClientCa,
                    format!("tls-auth-clients {auth} needs a CA certificate to check clients with"),
                ));
            }
            let mut roots = RootCertStore::empty();
            for cert in &self.client_ca {
                roots.add(cert.clone()).map_err(|e| rejected(&e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == AuthClients::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| rejected(&e))?)
        };
        let config = builder
            .with_single_cert(self.cert_chain.clone(), self.key.clone_key())
            .map_err(|e| {
                TlsError::new(
                    TlsErrorKind::Rejected,
                    format!("certificate and key rejected: {e}"),
                )
            })?;
        Ok(Arc::new(config))
    }
}

/// A TLS listener's handshake: the acceptor and its time limit.
pub(crate) struct Handshaker {
    /// Runs handshakes with the server configuration.
    acceptor: TlsAcceptor,
    /// How long one may take.
    timeout: Duration,
}

impl fmt::Debug for Handshaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshaker")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Handshaker {
    /// The handshake `config` asks for.
    ///
    /// # Errors
    ///
    /// When the settings cannot be used (see [`TlsErrorKind`]).
    pub(crate) fn new(config: &TlsConfig) -> Result<Self, TlsError> {
        Ok(Self {
            acceptor: TlsAcceptor::from(config.server_config()?),
            timeout: config.handshake_timeout,
        })
    }

    /// Runs the server side of a handshake on `stream`; `None` when it
    /// fails or takes longer than the timeout (the stream is then closed).
    pub(crate) async fn handshake(&self, stream: TcpStream) -> Option<TlsStream<TcpStream>> {
        match tokio::time::timeout(self.timeout, self.acceptor.accept(stream)).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(_)) | Err(_) => None,
        }
    }
}
