//! TLS for HTTPS/WSS and TURN/TLS: one certificate, from PEM files or made
//! up on the spot for a LAN or a dev machine.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tracing::warn;

#[derive(Debug, Clone)]
pub enum TlsSettings {
    /// A certificate chain (leaf first, then intermediates) and its key.
    Files { cert: PathBuf, key: PathBuf },
    /// A self-signed certificate for these names. Browsers warn until the
    /// user accepts it; fine on a LAN, never on the internet.
    SelfSigned { names: Vec<String> },
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
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration shared by HTTPS and TURN/TLS.
pub fn server_config(settings: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (chain, key) = match settings {
        TlsSettings::Files { cert, key } => (read_chain(cert)?, read_key(key)?),
        TlsSettings::SelfSigned { names } => {
            let certified =
                rcgen::generate_simple_self_signed(names.clone()).map_err(TlsError::SelfSigned)?;
            let key = PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
            (vec![certified.cert.der().clone()], key)
        }
    };
    if let TlsSettings::Files { cert, .. } = settings {
        if chain.len() == 1 {
            warn!(
                "TLS certificate {} has no intermediate certificates. If it was issued by a public CA, browsers \
                 on some platforms will refuse it: use the full chain file (fullchain.pem with Let's Encrypt)",
                cert.display()
            );
        }
    }
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Mismatch)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Mismatch)?;
    Ok(Arc::new(config))
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
