//! The app served on loopback with the test's clock, and browsers: HTTP
//! clients that keep cookies and send what the meet app sends.

#![allow(dead_code)]

pub mod media;
pub mod oidc_provider;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use moim_app::{App, AppConfig};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

pub struct Harness {
    pub livekit: Option<moim_app::LiveKitAccess>,
    pub app: App,
    pub base: String,
    pub clock: Arc<AtomicI64>,
    _dir: tempfile::TempDir,
}

/// A browser: a client with its own cookie jar.
pub struct Browser {
    pub http: Client,
    pub jar: Arc<Jar>,
    pub base: String,
}

impl Harness {
    pub async fn start(store: Store) -> Self {
        Self::start_with(store, None).await
    }

    /// With `livekit`, join tokens are minted for that media server.
    pub async fn start_with(store: Store, livekit: Option<moim_app::LiveKitAccess>) -> Self {
        let (listener, _) = Self::listener().await;
        Self::start_on(listener, store, |c| c.livekit = livekit).await
    }

    /// A loopback listener for the app, and the origin it will answer at
    /// (for registering redirect URIs before the app starts).
    pub async fn listener() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        (listener, format!("http://127.0.0.1:{}", addr.port()))
    }

    /// The app on `listener`, its configuration finished by `configure`.
    pub async fn start_on(
        listener: tokio::net::TcpListener,
        store: Store,
        configure: impl FnOnce(&mut AppConfig),
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        );
        // Real time to start with: join tokens minted here are checked by a
        // real server's clock.
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let clock = Arc::new(AtomicI64::new(start));
        let mut config = AppConfig::new(&base);
        config.dev_login = true;
        let c = clock.clone();
        config.clock = Arc::new(move || c.load(Ordering::SeqCst));
        configure(&mut config);
        let livekit = config.livekit.clone();
        let url = match store {
            Store::Sqlite => format!("sqlite://{}", dir.path().join("app.db").display()),
            Store::Postgres(url) => url,
        };
        let app = App::open(config, &url).await.expect("app opens");
        let router = app.router();
        tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("serve");
        });
        Self {
            livekit,
            app,
            base,
            clock,
            _dir: dir,
        }
    }

    pub fn advance(&self, seconds: i64) {
        self.clock.fetch_add(seconds, Ordering::SeqCst);
    }

    pub fn browser(&self) -> Browser {
        let jar = Arc::new(Jar::default());
        Browser {
            http: Client::builder()
                .cookie_provider(jar.clone())
                .build()
                .expect("client"),
            jar,
            base: self.base.clone(),
        }
    }
}

pub enum Store {
    Sqlite,
    Postgres(String),
}

/// Every store the tests run against here.
pub fn stores() -> Vec<Store> {
    let mut s = vec![Store::Sqlite];
    if let Ok(url) = std::env::var("MOIM_TEST_POSTGRES_URL") {
        s.push(Store::Postgres(url));
    }
    s
}

impl Browser {
    pub fn cookie(&self, name: &str) -> Option<String> {
        let url = self.base.parse().expect("url");
        let header = self.jar.cookies(&url)?;
        header.to_str().ok()?.split("; ").find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| v.to_string())
        })
    }

    /// A state-changing request as the meet app sends it: same Origin,
    /// and the CSRF cookie echoed in the header.
    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("origin", &self.base)
            .json(&body);
        if let Some(csrf) = self.cookie("moim_csrf") {
            req = req.header("x-csrf-token", csrf);
        }
        req.send().await.expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request")
    }

    pub async fn login(&self, name: &str) -> reqwest::Response {
        self.post("/auth/dev-login", json!({ "name": name })).await
    }

    /// Creates a room with `settings`, as its host: the room's id.
    pub async fn create_room(&self, settings: Value) -> String {
        let r = self.post("/api/rooms", settings).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let room: Value = r.json().await.expect("json");
        room["id"].as_str().expect("id").to_string()
    }

    /// A new invite to `room`, which this browser's user hosts: its token.
    pub async fn invite(&self, room: &str) -> String {
        let r = self
            .post(&format!("/api/rooms/{room}/invites"), json!({}))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let inv: Value = r.json().await.expect("json");
        inv["token"].as_str().expect("token").to_string()
    }

    pub async fn me(&self) -> (StatusCode, Value) {
        let r = self.get("/api/me").await;
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }
}

pub fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("")
}
