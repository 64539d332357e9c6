//! moim's app back end: login, cookie sessions with refresh rotation, and
//! (growing) the rooms API that moim meet stands on.
//!
//! The pattern is the backend-for-frontend of RFC 9700: the browser holds
//! no token its JavaScript can read. A login ends in three cookies (see
//! `cookies.rs`): a short-lived access JWT, a refresh token that is spent
//! on every refresh (`refresh.rs`), and a CSRF token the page echoes in a
//! header. Served under `/auth/` and `/api/` by `moim serve`, or on its
//! own.
//!
//! Layout: `access.rs` (the access JWT and its key ring), `refresh.rs`
//! (the rotation verdict, pure), `ratelimit.rs` (pure), `store.rs`
//! (SQLite or PostgreSQL), `cookies.rs`, `guard.rs` (Origin, CSRF, who is
//! asking), `routes/` (the HTTP surface), `error.rs` (JSON errors).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use base64::Engine;
use parking_lot::{Mutex, RwLock};
use rand::RngCore;

pub mod access;
pub mod chat;
pub mod cookies;
pub mod error;
mod guard;
pub mod invites;
pub mod lobby;
pub mod login;
pub mod meet;
pub mod ratelimit;
pub mod refresh;
pub mod rooms;
mod routes;
pub mod store;

use access::{KeyRing, SigningKey};
use cookies::CookiePolicy;
use ratelimit::{Rate, RateLimiter};
use store::{Store, StoreError};

/// Seconds since the Unix epoch; tests pass their own.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    })
}

#[derive(Clone)]
pub struct AppConfig {
    /// Where browsers reach the app, `scheme://host[:port]`: cookies and
    /// the Origin check follow it.
    pub public_origin: String,
    /// Other origins the same server answers on (`http://localhost:7880`
    /// beside `http://127.0.0.1:7880`).
    pub also_origins: Vec<String>,
    /// Offer the local dev login (a name, no password).
    pub dev_login: bool,
    /// Seconds an access token lives.
    pub access_ttl: i64,
    /// Seconds a session lives without a refresh.
    pub refresh_ttl: i64,
    /// Seconds a spent refresh token may still be retried.
    pub refresh_grace: i64,
    pub login_rate: Rate,
    pub refresh_rate: Rate,
    pub clock: Clock,
    /// The moim server rooms are joined on, for minting join tokens.
    pub livekit: Option<LiveKitAccess>,
    /// Where people log in (OpenID Connect issuers, GitHub, Naver...).
    pub providers: Vec<login::ProviderConfig>,
}

/// How the app reaches the media server: the URL clients connect to, and
/// an API key and secret of that server.
#[derive(Clone)]
pub struct LiveKitAccess {
    /// `ws://` or `wss://`, as livekit-client's `connect` takes it.
    pub server_url: String,
    pub api_key: String,
    pub api_secret: String,
}

impl std::fmt::Debug for LiveKitAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveKitAccess")
            .field("server_url", &self.server_url)
            .field("api_key", &self.api_key)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "the app's public URL {0} is plain http on a host other than localhost or 127.0.0.1: \
         browsers keep session cookies there only over https. Serve moim with TLS (--tls-cert \
         and --tls-key, or behind a proxy that terminates TLS) and give its https URL"
    )]
    InsecureOrigin(String),
    #[error("the app's public URL {0} is not scheme://host[:port] (http or https, no path)")]
    BadOrigin(String),
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Login(#[from] login::ConfigError),
}

impl AppConfig {
    /// Defaults for `public_origin`: 10-minute access tokens, 30-day
    /// sessions, a 10-second retry grace.
    pub fn new(public_origin: &str) -> Self {
        Self {
            public_origin: public_origin.trim_end_matches('/').to_string(),
            also_origins: Vec::new(),
            dev_login: false,
            access_ttl: 600,
            refresh_ttl: 30 * 24 * 3600,
            refresh_grace: 10,
            login_rate: Rate {
                burst: 10.0,
                per_second: 10.0 / 60.0,
            },
            refresh_rate: Rate {
                burst: 20.0,
                per_second: 1.0,
            },
            clock: system_clock(),
            livekit: None,
            providers: Vec::new(),
        }
    }

    /// Whether cookies are `Secure` with the `__Host-` prefix; an error
    /// for plain http anywhere but loopback.
    fn cookie_policy(&self) -> Result<CookiePolicy, ConfigError> {
        let bad = || ConfigError::BadOrigin(self.public_origin.clone());
        let (scheme, rest) = self.public_origin.split_once("://").ok_or_else(bad)?;
        if rest.is_empty() || rest.contains('/') {
            return Err(bad());
        }
        let host = match rest.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => rest,
        };
        match scheme {
            "https" => Ok(CookiePolicy::new(true)),
            "http" if matches!(host, "localhost" | "127.0.0.1" | "[::1]") => {
                Ok(CookiePolicy::new(false))
            }
            "http" => Err(ConfigError::InsecureOrigin(self.public_origin.clone())),
            _ => Err(bad()),
        }
    }
}

/// The app: its configuration, store, keys and limits. Cheap to clone.
#[derive(Clone)]
pub struct App(Arc<Inner>);

struct Inner {
    config: AppConfig,
    cookies: CookiePolicy,
    store: Store,
    keys: RwLock<KeyRing>,
    login_limit: Mutex<RateLimiter>,
    refresh_limit: Mutex<RateLimiter>,
    providers: Vec<login::Provider>,
    lobby_bell: lobby::LobbyBell,
}

/// Rate-limit buckets kept per limiter (addresses and users).
const RATE_KEYS: usize = 10_000;

impl App {
    /// Opens the store at `database_url` (migrating it) and loads the
    /// signing keys, generating the first one if there is none.
    pub async fn open(config: AppConfig, database_url: &str) -> Result<Self, AppError> {
        let cookies = config.cookie_policy()?;
        let http = login::http::ProviderHttp::new();
        let mut providers: Vec<login::Provider> = Vec::new();
        for p in &config.providers {
            if providers.iter().any(|q| q.config.id == p.id) {
                return Err(login::ConfigError::Duplicate(p.id.clone()).into());
            }
            providers.push(login::Provider::new(
                p.clone(),
                &config.public_origin,
                http.clone(),
            )?);
        }
        let store = Store::open(database_url).await?;
        let mut ring = KeyRing::default();
        for key in store.signing_keys().await? {
            ring.insert(key);
        }
        if ring.is_empty() {
            let key = SigningKey::generate((config.clock)());
            store.add_signing_key(&key).await?;
            ring.insert(key);
        }
        Ok(Self(Arc::new(Inner {
            login_limit: Mutex::new(RateLimiter::new(config.login_rate, RATE_KEYS)),
            refresh_limit: Mutex::new(RateLimiter::new(config.refresh_rate, RATE_KEYS)),
            config,
            cookies,
            store,
            keys: RwLock::new(ring),
            providers,
            lobby_bell: Default::default(),
        })))
    }

    /// `/auth/...` and `/api/...`, to merge into a server's router.
    pub fn router(&self) -> Router {
        routes::router(self.clone())
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// Adds a new signing key; tokens signed with the older ones keep
    /// verifying until they expire, so nobody is logged out.
    pub async fn rotate_signing_key(&self) -> Result<String, StoreError> {
        let key = SigningKey::generate(self.now());
        self.0.store.add_signing_key(&key).await?;
        let kid = key.kid.clone();
        self.0.keys.write().insert(key);
        Ok(kid)
    }

    /// Ends every session of a user (an admin's action): their next
    /// request or refresh is refused.
    pub async fn revoke_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        self.0
            .store
            .revoke_user_sessions(user_id, "revoked by an admin", self.now())
            .await
    }

    pub(crate) fn now(&self) -> i64 {
        (self.0.config.clock)()
    }
}

/// The WebSocket URL on the same origin as `http_url` (`https://` becomes
/// `wss://`, `http://` `ws://`): where livekit-client signals, and what the
/// meet app's CSP lets it connect to.
pub fn websocket_url(http_url: &str) -> String {
    http_url
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1)
}

/// A random identifier: `prefix` and 16 random bytes in base64url.
pub(crate) fn random_id(prefix: &str) -> String {
    format!("{prefix}{}", random_token(16))
}

/// `bytes` random bytes in base64url, no padding.
pub(crate) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// How a refresh token is stored: its SHA-256, so a leaked database holds
/// no token that works.
pub(crate) fn token_hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_secure_except_on_plain_http_loopback() {
        let policy = |o: &str| AppConfig::new(o).cookie_policy();
        assert_eq!(
            policy("https://meet.example.com").ok(),
            Some(CookiePolicy::new(true))
        );
        assert_eq!(
            policy("http://127.0.0.1:7880").ok(),
            Some(CookiePolicy::new(false))
        );
        assert_eq!(
            policy("http://localhost").ok(),
            Some(CookiePolicy::new(false))
        );
        assert!(matches!(
            policy("http://meet.example.com"),
            Err(ConfigError::InsecureOrigin(_))
        ));
        assert!(matches!(
            policy("http://localhost.evil.com"),
            Err(ConfigError::InsecureOrigin(_))
        ));
        assert!(matches!(policy("ftp://x"), Err(ConfigError::BadOrigin(_))));
        assert!(matches!(
            policy("https://x/app"),
            Err(ConfigError::BadOrigin(_))
        ));
    }
}
