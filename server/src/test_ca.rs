//! A throwaway certificate authority for [`TestServer::start_tls`]
//! (feature `test-tls`): a fresh CA and a server certificate it signs for
//! `localhost`, `127.0.0.1` and `::1`, generated with rcgen for each test
//! server, so tests need no certificate files and trust nothing beyond
//! their own server.
//!
//! [`TestServer::start_tls`]: crate::TestServer::start_tls

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::tls::TlsConfig;

/// The names the server certificate is valid for: every way a test
/// reaches a loopback server.
const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A generated CA, its PEM in memory and in a file that lives as long as
/// this value.
#[derive(Debug)]
pub(crate) struct TestCa {
    /// The CA certificate, PEM.
    pem: String,
    /// The private directory holding `ca.crt`.
    dir: PathBuf,
    /// `ca.crt` in it.
    path: PathBuf,
}

/// Turns an rcgen failure into an I/O error (it cannot happen with the
/// fixed parameters used here, short of the system's randomness failing).
fn rcgen_error(error: rcgen::Error) -> io::Error {
    io::Error::other(format!("cannot generate test certificates: {error}"))
}

impl TestCa {
    /// A new CA, with the CA file written, and a server configuration
    /// whose certificate it signed.
    ///
    /// # Errors
    ///
    /// When the file cannot be written or generation fails.
    pub(crate) fn generate() -> io::Result<(TestCa, TlsConfig)> {
        let ca_key = KeyPair::generate().map_err(rcgen_error)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "tannoy-server test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(rcgen_error)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().map_err(rcgen_error)?;
        let mut server_params = CertificateParams::new(SERVER_NAMES.map(str::to_owned).to_vec())
            .map_err(rcgen_error)?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .map_err(rcgen_error)?;

        let config = TlsConfig::from_pem(server_cert.pem(), server_key.serialize_pem())
            .map_err(io::Error::from)?;
        let ca = Self::write(ca_cert.pem())?;
        Ok((ca, config))
    }

    /// Writes `pem` to `ca.crt` in a new private directory.
    fn write(pem: String) -> io::Result<TestCa> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tannoy-test-ca-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("ca.crt");
        std::fs::write(&path, &pem)?;
        Ok(TestCa { pem, dir, path })
    }

    /// The CA certificate, PEM.
    pub(crate) fn pem(&self) -> &str {
        &self.pem
    }

    /// The CA certificate's file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TestCa {
    /// Removes the CA file and its directory.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
