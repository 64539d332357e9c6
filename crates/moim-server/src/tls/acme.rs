//! Certificates from an ACME CA (RFC 8555; Let's Encrypt by default),
//! ordered at start when none is cached and renewed while moim runs.
//! Validation is TLS-ALPN-01 (RFC 8737) on the HTTPS port or HTTP-01 on a
//! plain-HTTP port (80), both answered by moim itself. The account and the
//! certificate are kept in the data directory, so a restart does not order
//! again (Let's Encrypt allows 5 certificates per name a week).
//!
//! When to order is decided by [`super::renewal`]; this is the shell that
//! talks to the CA.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Digest;
use tracing::{error, info, warn};

use super::renewal::{self, Next, Validity};
use super::{certified_key, LiveCert};

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The names on the certificate; the first is the one clients use.
    pub domains: Vec<String>,
    /// Where the CA sends expiry warnings (`mailto:` is added).
    pub email: Option<String>,
    pub directory: String,
    /// Holds the account key and the certificates (`<data-dir>/acme`).
    pub cache_dir: PathBuf,
    pub challenge: ChallengeKind,
    /// The plain-HTTP listener: answers HTTP-01 and sends every other
    /// request to HTTPS. `None` opens none.
    pub http_listen: Option<SocketAddr>,
    /// CA certificates (PEM) trusted for the directory's own HTTPS, for a
    /// private or test CA (pebble); `None` trusts the system's roots.
    pub directory_ca: Option<PathBuf>,
}

/// How the CA checks that this server answers for the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// A TLS handshake on port 443 with ALPN `acme-tls/1`.
    TlsAlpn01,
    /// `GET http://<name>/.well-known/acme-challenge/<token>` on port 80.
    Http01,
}

impl ChallengeKind {
    /// The CA validates on ports 443 and 80 only. TLS-ALPN-01 needs nothing
    /// but the HTTPS port, so it is the choice when that is 443; otherwise
    /// HTTP-01 if port 80 is served, since a server on another port can be
    /// reached on 443 only through a port forward.
    pub fn auto(https_port: u16, http_listen: Option<SocketAddr>) -> Self {
        match (https_port, http_listen) {
            (443, _) | (_, None) => Self::TlsAlpn01,
            _ => Self::Http01,
        }
    }

    fn acme_type(self) -> ChallengeType {
        match self {
            Self::TlsAlpn01 => ChallengeType::TlsAlpn01,
            Self::Http01 => ChallengeType::Http01,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::TlsAlpn01 => "tls-alpn-01",
            Self::Http01 => "http-01",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("--acme needs at least one domain (--domain meet.example.com)")]
    NoDomain,
    #[error(
        "cannot create the ACME cache directory {path}: {source}. moim keeps the ACME account \
         and certificates there; point --data-dir at a writable directory"
    )]
    CacheDir {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "cannot listen for plain HTTP on {addr} for ACME's HTTP-01 check: {source}. Another \
         process (a web server?) holds the port, or moim may not bind it (ports under 1024 need \
         CAP_NET_BIND_SERVICE); free it, or use --acme-challenge tls-alpn-01"
    )]
    HttpListen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "cannot read the ACME directory's CA certificate {path}: {detail}. --acme-directory-ca \
         must name a PEM file holding the certificate of the CA that signed the directory's own \
         HTTPS certificate (for pebble, its minica root); leave it unset for Let's Encrypt"
    )]
    DirectoryCa { path: String, detail: String },
}

/// Starts what keeps `live` holding a valid certificate. Returns once the
/// cached certificate (if any) is installed; the first order, when one is
/// needed, runs in the background, and until it succeeds TLS handshakes
/// fail.
pub async fn start(settings: &AcmeSettings, live: Arc<LiveCert>) -> Result<(), AcmeError> {
    if settings.domains.is_empty() {
        return Err(AcmeError::NoDomain);
    }
    // Two crypto back ends are linked in (str0m brings aws-lc-rs);
    // instant-acme's HTTP client asks rustls for the process default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = cache_dir(settings);
    std::fs::create_dir_all(&dir).map_err(|source| AcmeError::CacheDir {
        path: dir.display().to_string(),
        source,
    })?;
    restrict(&dir);
    if let Some(addr) = settings.http_listen {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                tokio::spawn(crate::http_listener::serve(
                    listener,
                    challenge_router(live.clone()),
                    None,
                    Arc::from([]),
                    None,
                ));
            }
            // HTTP-01 cannot work without it; TLS-ALPN-01 needs only the
            // HTTPS port, and the plain port then only redirects.
            Err(source) if settings.challenge == ChallengeKind::Http01 => {
                return Err(AcmeError::HttpListen { addr, source });
            }
            Err(e) => warn!(
                "cannot listen for plain HTTP on {addr} ({e}); ACME validates on the HTTPS port \
                 (tls-alpn-01), so only the redirect from http:// to https:// is missing"
            ),
        }
    }
    if let Some(ca) = &settings.directory_ca {
        // Read now, so a wrong path fails at start and not at the first order.
        CertificateDer::from_pem_file(ca).map_err(|e| AcmeError::DirectoryCa {
            path: ca.display().to_string(),
            detail: e.to_string(),
        })?;
    }
    let mut held = None;
    match read_cached(&dir, &settings.domains) {
        Ok(Some((key, validity))) => {
            live.install(key);
            held = Some(validity);
            info!(
                domain = %settings.domains[0],
                expires = %humantime(validity.not_after),
                "ACME certificate loaded from {}", dir.display()
            );
        }
        Ok(None) => info!(
            domain = %settings.domains[0],
            directory = %settings.directory,
            challenge = settings.challenge.name(),
            "no ACME certificate cached yet; ordering one. Until it arrives, TLS handshakes fail"
        ),
        Err(e) => warn!("the cached ACME certificate cannot be used ({e}); ordering a new one"),
    }
    tokio::spawn(keep_fresh(settings.clone(), dir, live, held));
    Ok(())
}

/// Orders whenever [`renewal::next`] says so, forever.
async fn keep_fresh(
    settings: AcmeSettings,
    dir: PathBuf,
    live: Arc<LiveCert>,
    mut held: Option<Validity>,
) {
    let mut failures = 0u32;
    let mut last_failure = None;
    loop {
        match renewal::next(held, failures, last_failure, SystemTime::now()) {
            Next::WaitUntil(at) => {
                let wait = at
                    .duration_since(SystemTime::now())
                    .unwrap_or_default()
                    // The clock may jump (suspend, NTP); look again hourly.
                    .min(Duration::from_secs(3600));
                tokio::time::sleep(wait).await;
            }
            Next::Order => match order(&settings, &dir, &live)
                .await
                .map_err(|e| as_validation(e, &settings))
            {
                Ok(validity) => {
                    info!(
                        domain = %settings.domains[0],
                        expires = %humantime(validity.not_after),
                        renews = %humantime(validity.renew_at()),
                        "ACME certificate issued; new TLS connections (HTTPS, TURN/TLS) use it"
                    );
                    held = Some(validity);
                    failures = 0;
                    last_failure = None;
                }
                Err(e) => {
                    failures += 1;
                    last_failure = Some(SystemTime::now());
                    let left = held
                        .and_then(|v| v.not_after.duration_since(SystemTime::now()).ok())
                        .unwrap_or_default();
                    let advice = advice(&settings, &e);
                    if held.is_some() && left > Duration::from_secs(7 * 86400) {
                        warn!("ACME order failed ({failures} in a row): {e}. {advice} The current certificate is good for {} more days", left.as_secs() / 86400);
                    } else {
                        error!("ACME order failed ({failures} in a row): {e}. {advice} Without a valid certificate, browsers cannot connect");
                    }
                }
            },
        }
    }
}

/// RFC 8555 §6.7's problem types that mean "the CA's check of this server
/// failed", wherever instant-acme reported them (the challenge's answer or
/// the order's state): said as a failed validation, with its advice.
fn as_validation(e: OrderError, settings: &AcmeSettings) -> OrderError {
    const VALIDATION: [&str; 6] = [
        "connection",
        "dns",
        "tls",
        "unauthorized",
        "incorrectResponse",
        "caa",
    ];
    match e {
        OrderError::Acme(instant_acme::Error::Api(p))
            if p.r#type.as_deref().is_some_and(|t| {
                VALIDATION
                    .iter()
                    .any(|v| t.strip_prefix("urn:ietf:params:acme:error:") == Some(v))
            }) =>
        {
            OrderError::Validation {
                domain: settings.domains.join(", "),
                kind: settings.challenge.name(),
                detail: p.detail.unwrap_or_else(|| p.r#type.unwrap_or_default()),
            }
        }
        other => other,
    }
}

/// What an operator should check, by what failed.
fn advice(settings: &AcmeSettings, e: &OrderError) -> String {
    let domain = &settings.domains[0];
    match e {
        OrderError::Acme(instant_acme::Error::Api(p))
            if p.r#type
                .as_deref()
                .is_some_and(|t| t.ends_with("rateLimited")) =>
        {
            "The CA is rate-limiting this account or name; moim retries with a growing delay \
             (up to an hour). Keep the data directory between restarts so certificates are reused."
                .to_string()
        }
        OrderError::Validation { .. } => match settings.challenge {
            ChallengeKind::TlsAlpn01 => format!(
                "The CA connects to {domain} on TCP port 443: check that {domain} resolves to \
                 this machine's public address, that port 443 is open to the internet (cloud \
                 firewall, security group) and reaches moim's HTTPS port, and that no proxy in \
                 front of moim ends TLS (then let the proxy get the certificate)."
            ),
            ChallengeKind::Http01 => format!(
                "The CA connects to http://{domain}/ on TCP port 80: check that {domain} \
                 resolves to this machine's public address and that port 80 is open and reaches \
                 moim's --acme-http-port."
            ),
        },
        OrderError::Acme(instant_acme::Error::Hyper(_) | instant_acme::Error::Http(_)) => format!(
            "Check that this machine reaches {} over HTTPS (outbound TCP 443, DNS).",
            settings.directory
        ),
        _ => String::new(),
    }
}

#[derive(Debug, thiserror::Error)]
enum OrderError {
    #[error("{0}")]
    Acme(#[from] instant_acme::Error),
    #[error(
        "the CA offers no {kind} challenge for {domain}; choose one it offers with \
         --acme-challenge (tls-alpn-01 or http-01)"
    )]
    NoChallenge { kind: &'static str, domain: String },
    #[error("the CA could not validate {domain} with {kind}: {detail}")]
    Validation {
        domain: String,
        kind: &'static str,
        detail: String,
    },
    #[error(
        "the CA left the order {0:?} instead of ready, without naming a failed check; moim \
         orders again later. If this repeats, look the account up at the CA"
    )]
    NotReady(OrderStatus),
    #[error("cannot make a key or a request: {0}")]
    Key(#[from] rcgen::Error),
    #[error("cannot load the TLS-ALPN-01 challenge key: {0}")]
    ChallengeKey(rustls::Error),
    #[error("the CA sent a certificate that cannot be used: {0}")]
    BadCertificate(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// One order, from account to installed certificate.
async fn order(
    settings: &AcmeSettings,
    dir: &Path,
    live: &LiveCert,
) -> Result<Validity, OrderError> {
    let account = account(settings, dir).await?;
    let identifiers: Vec<Identifier> = settings
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let kind = settings.challenge;
    let mut pending = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        if authz.status == AuthorizationStatus::Valid {
            continue;
        }
        let domain = authz.identifier().to_string();
        let mut challenge =
            authz
                .challenge(kind.acme_type())
                .ok_or_else(|| OrderError::NoChallenge {
                    kind: kind.name(),
                    domain: domain.clone(),
                })?;
        let key_authorization = challenge.key_authorization();
        match kind {
            ChallengeKind::TlsAlpn01 => {
                live.set_alpn_challenge(&domain, alpn_certificate(&domain, &key_authorization)?)
            }
            ChallengeKind::Http01 => {
                live.set_http_challenge(&challenge.token, key_authorization.as_str())
            }
        }
        challenge.set_ready().await?;
        pending.push(domain);
    }
    let status = order
        .poll_ready(&RetryPolicy::new().timeout(Duration::from_secs(90)))
        .await;
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            live.clear_challenges();
            return Err(e.into());
        }
    };
    if status != OrderStatus::Ready {
        let detail = failed_validation(&mut order).await;
        live.clear_challenges();
        return Err(match detail {
            Some((domain, detail)) => OrderError::Validation {
                domain,
                kind: kind.name(),
                detail,
            },
            None => OrderError::NotReady(status),
        });
    }
    live.clear_challenges();
    let key = rcgen::KeyPair::generate()?;
    let csr = rcgen::CertificateParams::new(settings.domains.clone())?.serialize_request(&key)?;
    order.finalize_csr(csr.der()).await?;
    let chain_pem = order
        .poll_certificate(&RetryPolicy::new().timeout(Duration::from_secs(60)))
        .await?;
    let key_pem = key.serialize_pem();
    let (certified, validity) = parse_bundle(&chain_pem, &key_pem)
        .ok_or_else(|| OrderError::BadCertificate("no usable certificate in the PEM".into()))?;
    let path = cert_path(dir, &settings.domains);
    write_private(&path, &format!("{key_pem}{chain_pem}"))?;
    live.install(certified);
    Ok(validity)
}

/// The first failed challenge's problem, for the operator.
async fn failed_validation(order: &mut instant_acme::Order) -> Option<(String, String)> {
    let mut authorizations = order.authorizations();
    while let Some(Ok(authz)) = authorizations.next().await {
        for c in &authz.challenges {
            if let Some(p) = &c.error {
                let detail = p.detail.clone().unwrap_or_else(|| format!("{p:?}"));
                return Some((authz.identifier().to_string(), detail));
            }
        }
    }
    None
}

/// The self-signed certificate a TLS-ALPN-01 validation must see: the
/// name, and the key authorization's SHA-256 in the critical acmeIdentifier
/// extension.
fn alpn_certificate(
    domain: &str,
    key_authorization: &instant_acme::KeyAuthorization,
) -> Result<Arc<rustls::sign::CertifiedKey>, OrderError> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()])?;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(
            key_authorization.digest().as_ref(),
        ));
    let cert = params.self_signed(&key)?;
    // Not `certified_key`: its check parses the certificate with webpki,
    // which refuses the critical acmeIdentifier extension this one must have.
    let signing = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(key.serialize_der().into()))
        .map_err(OrderError::ChallengeKey)?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

/// The cached account for this directory, or a new one.
async fn account(settings: &AcmeSettings, dir: &Path) -> Result<Account, OrderError> {
    let path = dir.join("account.json");
    let builder = || match &settings.directory_ca {
        Some(ca) => Account::builder_with_root(ca),
        None => Account::builder(),
    };
    if let Some(credentials) = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<AccountCredentials>(&b).ok())
    {
        return Ok(builder()?.from_credentials(credentials).await?);
    }
    let contact: Vec<String> = settings
        .email
        .iter()
        .map(|e| format!("mailto:{e}"))
        .collect();
    let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder()?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            settings.directory.clone(),
            None,
        )
        .await?;
    let json = serde_json::to_string(&credentials).map_err(instant_acme::Error::Json)?;
    write_private(&path, &json)?;
    info!("ACME account created at {}", settings.directory);
    Ok(account)
}

/// One directory per CA: an account belongs to the directory it was made at.
fn cache_dir(settings: &AcmeSettings) -> PathBuf {
    let digest = sha2::Sha256::digest(settings.directory.as_bytes());
    let tag: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    settings.cache_dir.join(tag)
}

fn cert_path(dir: &Path, domains: &[String]) -> PathBuf {
    let digest = sha2::Sha256::digest(domains.join(",").as_bytes());
    let tag: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let name: String = domains[0]
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{name}-{tag}.pem"))
}

fn read_cached(
    dir: &Path,
    domains: &[String],
) -> Result<Option<(Arc<rustls::sign::CertifiedKey>, Validity)>, String> {
    let path = cert_path(dir, domains);
    let pem = match std::fs::read_to_string(&path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let found = parse_bundle(&pem, &pem).ok_or_else(|| format!("{} is damaged", path.display()))?;
    if found.1.not_after <= SystemTime::now() {
        return Err(format!("{} has expired", path.display()));
    }
    Ok(Some(found))
}

/// A certificate chain and key from PEM text.
fn parse_bundle(
    chain_pem: &str,
    key_pem: &str,
) -> Option<(Arc<rustls::sign::CertifiedKey>, Validity)> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .filter_map(Result::ok)
        .collect();
    let validity = Validity::of(chain.first()?)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).ok()?;
    Some((certified_key(chain, key).ok()?, validity))
}

/// Writes a file only its owner can read: it holds a private key.
fn write_private(path: &Path, text: &str) -> Result<(), OrderError> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        std::fs::write(&tmp, text)?;
        restrict(&tmp);
        std::fs::rename(&tmp, path)
    };
    write().map_err(|source| OrderError::Write {
        path: path.display().to_string(),
        source,
    })
}

fn restrict(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if path.is_dir() { 0o700 } else { 0o600 };
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    }
}

/// Seconds since the epoch as RFC 3339, for logs.
fn humantime(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    x509_parser::time::ASN1Time::from_timestamp(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| secs.to_string())
}

/// The plain-HTTP port: HTTP-01 answers, and a redirect to HTTPS for
/// everyone else (someone typed the name without https://).
fn challenge_router(live: Arc<LiveCert>) -> axum::Router {
    use axum::extract::{Path as UrlPath, State};
    use axum::http::{header, HeaderMap, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    async fn answer(
        State(live): State<Arc<LiveCert>>,
        UrlPath(token): UrlPath<String>,
    ) -> Response {
        match live.http_challenge(&token) {
            Some(key_authorization) => key_authorization.into_response(),
            None => (StatusCode::NOT_FOUND, "no such ACME challenge\n").into_response(),
        }
    }
    async fn to_https(headers: HeaderMap, uri: Uri) -> Response {
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
            return (
                StatusCode::BAD_REQUEST,
                "this port serves HTTPS redirects and needs a Host header\n",
            )
                .into_response();
        };
        let host = host.split(':').next().unwrap_or(host);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, format!("https://{host}{path}"))],
        )
            .into_response()
    }
    axum::Router::new()
        .route(
            "/.well-known/acme-challenge/{token}",
            axum::routing::get(answer),
        )
        .fallback(to_https)
        .with_state(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_alpn_is_chosen_on_443_and_http_elsewhere_when_port_80_is_served() {
        let port80: SocketAddr = "0.0.0.0:80".parse().expect("addr");
        assert_eq!(
            ChallengeKind::auto(443, Some(port80)),
            ChallengeKind::TlsAlpn01
        );
        assert_eq!(ChallengeKind::auto(443, None), ChallengeKind::TlsAlpn01);
        assert_eq!(
            ChallengeKind::auto(8443, Some(port80)),
            ChallengeKind::Http01
        );
        assert_eq!(ChallengeKind::auto(8443, None), ChallengeKind::TlsAlpn01);
    }

    #[test]
    fn cached_files_are_named_by_directory_and_names() {
        let base = AcmeSettings {
            domains: vec!["meet.example.com".into()],
            email: None,
            directory: LETS_ENCRYPT.into(),
            cache_dir: "/var/lib/moim/acme".into(),
            challenge: ChallengeKind::TlsAlpn01,
            http_listen: None,
            directory_ca: None,
        };
        let staging = AcmeSettings {
            directory: "https://acme-staging-v02.api.letsencrypt.org/directory".into(),
            ..base.clone()
        };
        assert_ne!(cache_dir(&base), cache_dir(&staging));
        let one = cert_path(Path::new("/x"), &base.domains);
        let two = cert_path(
            Path::new("/x"),
            &["meet.example.com".into(), "b.example.com".into()],
        );
        assert_ne!(one, two);
        assert!(one.to_string_lossy().contains("meet.example.com-"));
        let odd = cert_path(Path::new("/x"), &["../../etc/x".into()]);
        assert_eq!(odd.parent(), Some(Path::new("/x")));
    }
}
