//! TLS for HTTPS/WSS and TURN/TLS: one certificate, from PEM files (read
//! again when they change), from an ACME CA, or made up on the spot for a
//! LAN or a dev machine. Every handshake asks [`LiveCert`] for it, so a new
//! one takes effect without a restart.

pub mod acme;
mod live;
mod reload;
pub mod renewal;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tracing::warn;

pub use acme::{AcmeSettings, ChallengeKind};
pub use live::{certified_key, LiveCert, ACME_TLS_ALPN};
pub use reload::CHECK_EVERY as RELOAD_CHECK_EVERY;

#[derive(Debug, Clone)]
pub enum TlsSettings {
    /// A certificate chain (leaf first, then intermediates) and its key.
    Files { cert: PathBuf, key: PathBuf },
    /// A self-signed certificate for these names. Browsers warn until the
    /// user accepts it; fine on a LAN, never on the internet.
    SelfSigned { names: Vec<String> },
    /// Certificates from an ACME CA (Let's Encrypt by default), renewed
    /// while moim runs.
    Acme(AcmeSettings),
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(
        "TLS certificate file {0} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)"
    )]
    NoCertificate(String),
    #[error("TLS key file {0} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey(String),
    #[error("the TLS key does not match the certificate, or is unsupported: {0}")]
    Mismatch(rustls::Error),
    #[error("cannot make a self-signed certificate: {0}")]
    SelfSigned(rcgen::Error),
    #[error(transparent)]
    Acme(#[from] acme::AcmeError),
}

/// The TLS configurations of a running server. Both answer with the same
/// [`LiveCert`].
#[derive(Clone)]
pub struct Tls {
    /// HTTPS and WSS: HTTP/1.1, and ACME's TLS-ALPN-01 validations.
    pub https: Arc<rustls::ServerConfig>,
    /// TURN over TLS: no ALPN, so TURN clients that offer `stun.turn` or
    /// nothing are both served.
    pub turn: Arc<rustls::ServerConfig>,
    pub live: Arc<LiveCert>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads or makes the certificate and starts what keeps it fresh (the file
/// watcher, the ACME task), on the current tokio runtime.
pub async fn start(settings: &TlsSettings) -> Result<Tls, TlsError> {
    let live = LiveCert::new();
    match settings {
        TlsSettings::Files { cert, key } => {
            live.install(load_files(cert, key)?);
            reload::watch(cert.clone(), key.clone(), live.clone());
        }
        TlsSettings::SelfSigned { names } => {
            let certified =
                rcgen::generate_simple_self_signed(names.clone()).map_err(TlsError::SelfSigned)?;
            let key = PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
            live.install(
                certified_key(vec![certified.cert.der().clone()], key)
                    .map_err(TlsError::Mismatch)?,
            );
        }
        TlsSettings::Acme(acme) => acme::start(acme, live.clone()).await?,
    }
    let base = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Mismatch)?
        .with_no_client_auth()
        .with_cert_resolver(live.clone());
    let turn = Arc::new(base.clone());
    let mut https = base;
    // TURN clients that offer stun.turn (RFC 7443) must find it, or rustls
    // refuses the handshake; it matters on one port for everything.
    https.alpn_protocols = vec![
        b"http/1.1".to_vec(),
        ACME_TLS_ALPN.to_vec(),
        crate::port_mux::TURN_ALPN.to_vec(),
    ];
    Ok(Tls {
        https: Arc::new(https),
        turn,
        live,
    })
}

/// A chain file and its key, checked to match.
pub(crate) fn load_files(
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
    let chain = read_chain(cert)?;
    if chain.len() == 1 {
        warn!(
            "TLS certificate {} has no intermediate certificates. If it was issued by a public CA, browsers \
             on some platforms will refuse it: use the full chain file (fullchain.pem with Let's Encrypt)",
            cert.display()
        );
    }
    certified_key(chain, read_key(key)?).map_err(TlsError::Mismatch)
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        what: "certificate",
        path: path.display().to_string(),
        source,
    })?;
    let chain: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(path.display().to_string()));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        what: "key",
        path: path.display().to_string(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsError::NoKey(path.display().to_string()))
}

/// Names for a self-signed certificate: localhost plus the announced IP.
pub fn default_names(announce: IpAddr) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let ip = announce.to_string();
    if !names.contains(&ip) {
        names.push(ip);
    }
    names
}
