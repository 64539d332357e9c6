//! The certificate every TLS handshake is answered with, swappable while
//! connections come in: a renewed ACME certificate or a `certbot renew`d
//! file takes effect on the next handshake, with no restart and no
//! connection dropped. It also answers ACME's TLS-ALPN-01 validations
//! (RFC 8737) and holds the HTTP-01 tokens (RFC 8555 §8.3) while an order
//! is open.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The ALPN protocol of TLS-ALPN-01 validations. A connection that
/// negotiated it carries no application data and is closed after the
/// handshake.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

#[derive(Debug, Default)]
pub struct LiveCert {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    /// Host name (lower case) → the self-signed certificate carrying the
    /// acmeIdentifier extension for it.
    alpn_challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// HTTP-01 token → key authorization.
    http_challenges: RwLock<HashMap<String, String>>,
}

impl LiveCert {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    pub fn install(&self, key: Arc<CertifiedKey>) {
        *self.current.write() = Some(key);
    }

    pub fn has_certificate(&self) -> bool {
        self.current.read().is_some()
    }

    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current.read().clone()
    }

    pub fn set_alpn_challenge(&self, host: &str, key: Arc<CertifiedKey>) {
        self.alpn_challenges
            .write()
            .insert(host.to_ascii_lowercase(), key);
    }

    pub fn set_http_challenge(&self, token: &str, key_authorization: &str) {
        self.http_challenges
            .write()
            .insert(token.to_string(), key_authorization.to_string());
    }

    /// The key authorization for an HTTP-01 token of an open order.
    pub fn http_challenge(&self, token: &str) -> Option<String> {
        self.http_challenges.read().get(token).cloned()
    }

    /// Forgets every challenge answer once an order is done.
    pub fn clear_challenges(&self) {
        self.alpn_challenges.write().clear();
        self.http_challenges.write().clear();
    }
}

impl ResolvesServerCert for LiveCert {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let validation = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if validation {
            let host = hello.server_name()?.to_ascii_lowercase();
            return self.alpn_challenges.read().get(&host).cloned();
        }
        self.current.read().clone()
    }
}

/// A chain and key as rustls serves them, checked to belong together.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, rustls::Error> {
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider.key_provider.load_private_key(key)?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match()?;
    Ok(Arc::new(certified))
}
