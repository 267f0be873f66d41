//! Certificates for the TLS tests, made with rcgen at run time (CAs,
//! server certificates for the loopback names, expired ones, client
//! certificates), and rustls client configurations that trust them.

#![allow(
    dead_code,
    reason = "shared by several test files, each using a subset"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The names a server certificate covers: every way a test reaches a
/// loopback server.
pub(crate) const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A certificate and its private key, PEM.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    /// The certificate.
    pub(crate) cert_pem: String,
    /// Its private key.
    pub(crate) key_pem: String,
}

/// A certificate authority made for one test.
pub(crate) struct Ca {
    /// Its certificate, PEM.
    pem: String,
    /// What signs with it.
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A new CA called `name`.
    pub(crate) fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("generate a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-sign the CA");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM.
    pub(crate) fn pem(&self) -> &str {
        &self.pem
    }

    /// A certificate signed by this CA, as `params` describe it.
    fn sign(&self, mut params: CertificateParams, name: &str) -> Identity {
        let key = KeyPair::generate().expect("generate a key");
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server certificate for the loopback names.
    pub(crate) fn server(&self) -> Identity {
        let mut params =
            CertificateParams::new(LOOPBACK_NAMES.map(str::to_owned).to_vec()).expect("names");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, "localhost")
    }

    /// A server certificate for the loopback names that expired in 2001.
    pub(crate) fn expired_server(&self) -> Identity {
        let mut params =
            CertificateParams::new(LOOPBACK_NAMES.map(str::to_owned).to_vec()).expect("names");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        self.sign(params, "localhost")
    }

    /// A client certificate (for mutual TLS) called `name`.
    pub(crate) fn client(&self, name: &str) -> Identity {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("parameters");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, name)
    }

    /// A client certificate called `name` that expired in 2001.
    pub(crate) fn expired_client(&self, name: &str) -> Identity {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("parameters");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        self.sign(params, name)
    }
}

/// A private directory for certificate files, removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir {
    /// The directory.
    path: PathBuf,
}

impl TempDir {
    /// A new directory named after `what`.
    pub(crate) fn new(what: &str) -> TempDir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "tannoy-tls-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir { path }
    }

    /// Writes `contents` to `name` in the directory; returns its path.
    pub(crate) fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path.join(name);
        std::fs::write(&path, contents).expect("write a certificate file");
        path
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// rustls's ring provider, as the server uses.
#[allow(
    deprecated,
    reason = "the ring provider, deprecated for lacking post-quantum key exchange, is the \
              one the server uses"
)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration that trusts `ca_pem` only, presenting
/// `identity` when given.
pub(crate) fn client_config(
    ca_pem: &str,
    identity: Option<&Identity>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("trust the CA");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .expect("client certificate"),
                PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).expect("client key"),
            )
            .expect("client identity"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// A clock stopped at one moment, for a client that must verify a
/// certificate as of that moment (one that has since expired, say).
#[derive(Debug)]
struct StoppedClock(rustls::pki_types::UnixTime);

impl rustls::time_provider::TimeProvider for StoppedClock {
    fn current_time(&self) -> Option<rustls::pki_types::UnixTime> {
        Some(self.0)
    }
}

/// A client configuration that trusts `ca_pem` only and verifies the
/// server's certificate fully, as of the Unix time `seconds` rather than
/// now: a client whose clock says a certificate is still valid.
pub(crate) fn client_config_at(ca_pem: &str, seconds: u64) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("trust the CA");
    }
    let clock = Arc::new(StoppedClock(rustls::pki_types::UnixTime::since_unix_epoch(
        std::time::Duration::from_secs(seconds),
    )));
    Arc::new(
        rustls::ClientConfig::builder_with_details(provider(), clock)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Mid-2000, when [`Ca::expired_server`]'s certificates were valid.
pub(crate) const IN_2000: u64 = 962_000_000;

/// The name a client checks the server's certificate against.
pub(crate) fn loopback_name() -> ServerName<'static> {
    ServerName::try_from("127.0.0.1").expect("an IP address name")
}
