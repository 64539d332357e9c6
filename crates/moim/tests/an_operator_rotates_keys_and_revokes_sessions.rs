//! The operator's hand on the app, through the real binary: Ada's laptop is
//! stolen, so `moim app revoke-sessions` ends her sessions and her very
//! next request is refused while Bob's goes on; then `moim app
//! rotate-signing-key` adds a key, and after a restart new logins are
//! signed with it while Bob, signed in under the old key, stays logged in.

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine;
use common::{Moim, MOIM};
use serde_json::{json, Value};

/// One person's browser: a cookie jar, and the headers moim meet sends.
struct Person {
    http: reqwest::Client,
    jar: std::sync::Arc<reqwest::cookie::Jar>,
}

impl Person {
    fn new() -> Self {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .build()
            .expect("client");
        Self { http, jar }
    }

    async fn dev_login(&self, moim: &Moim, name: &str) -> Value {
        let origin = format!("http://{}", moim.http);
        let res = self
            .http
            .post(format!("{origin}/auth/dev-login"))
            .header("origin", &origin)
            .json(&json!({ "name": name }))
            .send()
            .await
            .expect("dev login answers");
        assert_eq!(res.status(), 200, "{name} logs in");
        res.json().await.expect("json")
    }

    /// GET /api/me: the status and the JSON body.
    async fn me(&self, moim: &Moim) -> (u16, Value) {
        let res = self
            .http
            .get(format!("http://{}/api/me", moim.http))
            .send()
            .await
            .expect("/api/me answers");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// The `kid` in the header of the access token this browser holds.
    fn access_kid(&self, moim: &Moim) -> String {
        use reqwest::cookie::CookieStore;
        let url = format!("http://{}/", moim.http).parse().expect("url");
        let cookies = self.jar.cookies(&url).expect("cookies");
        let cookies = cookies.to_str().expect("ascii");
        let token = cookies
            .split("; ")
            .find_map(|c| c.strip_prefix("moim_access="))
            .expect("an access cookie");
        let header = token.split('.').next().expect("a JWT header");
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .expect("base64url");
        let header: Value = serde_json::from_slice(&header).expect("json");
        header["kid"].as_str().expect("a kid").to_string()
    }
}

fn moim_app(data_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(MOIM)
        .arg("app")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("moim app runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "moim app {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn serve(data_dir: &Path) -> Moim {
    Moim::serve(&[("MOIM_DATA_DIR", data_dir.to_str().expect("utf-8 path"))])
}

#[tokio::test]
async fn sessions_end_at_once_and_a_new_key_logs_nobody_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let moim = serve(dir.path());
    let (ada, bob) = (Person::new(), Person::new());
    let ada_id = ada.dev_login(&moim, "Ada").await["user"]["id"]
        .as_str()
        .expect("Ada's id")
        .to_string();
    bob.dev_login(&moim, "Bob").await;
    assert_eq!(ada.me(&moim).await.0, 200);

    let said = moim_app(dir.path(), &["revoke-sessions", "--user", &ada_id]);
    assert!(said.contains("revoked 1 session"), "{said}");
    let (status, body) = ada.me(&moim).await;
    assert_eq!(status, 401, "Ada's next request is refused: {body}");
    assert_eq!(bob.me(&moim).await.0, 200, "Bob is still logged in");
    let said = moim_app(dir.path(), &["revoke-sessions", "--user", "no-such-user"]);
    assert!(said.contains("no live session"), "{said}");

    let old_kid = bob.access_kid(&moim);
    let said = moim_app(dir.path(), &["rotate-signing-key"]);
    let new_kid = said
        .split_whitespace()
        .nth(3)
        .map(|k| k.trim_end_matches('.'))
        .expect("the new key's id")
        .to_string();
    assert_ne!(new_kid, old_kid, "{said}");

    drop(moim);
    let moim = serve(dir.path());
    let (status, me) = bob.me(&moim).await;
    assert_eq!(status, 200, "Bob's old-key token still verifies: {me}");
    let carol = Person::new();
    carol.dev_login(&moim, "Carol").await;
    assert_eq!(
        carol.access_kid(&moim),
        new_kid,
        "new logins are signed with the new key"
    );

    let missing = Command::new(MOIM)
        .args(["app", "rotate-signing-key", "--data-dir"])
        .arg(dir.path().join("elsewhere"))
        .output()
        .expect("moim app runs");
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no app database at"),
        "a wrong data directory is named, not created"
    );
}
