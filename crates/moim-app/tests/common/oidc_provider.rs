//! npm `oidc-provider` on loopback (`tests/oidc/provider.mjs`), and a
//! person who logs in there through its own login and consent pages.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use reqwest::{Client, Response, StatusCode};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::Browser;

pub struct OidcProvider {
    pub issuer: String,
    pub port: u16,
    child: Child,
}

pub const CLIENT_ID: &str = "moim-test";
pub const CLIENT_SECRET: &str = "moim-test-secret-0123456789";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc/provider.mjs")
}

/// Whether the provider can run here. CI sets `MOIM_TEST_OIDC=1` after
/// installing it, and there its absence fails the test.
pub fn available() -> bool {
    let installed = script()
        .parent()
        .is_some_and(|d| d.join("node_modules/oidc-provider").exists());
    if !installed && std::env::var("MOIM_TEST_OIDC").is_ok_and(|v| v == "1") {
        panic!("MOIM_TEST_OIDC=1 but tests/oidc has no node_modules: run scripts/install-deps.sh");
    }
    if !installed {
        eprintln!(
            "skipped: tests/oidc/node_modules is missing (scripts/install-deps.sh installs it)"
        );
    }
    installed
}

impl OidcProvider {
    /// Starts the provider publishing `keys` (the first signs), with one
    /// client whose only redirect URI is `redirect_uri`. `port` 0 picks one.
    pub async fn start(
        keys_dir: &std::path::Path,
        keys: &[&str],
        redirect_uri: &str,
        auth: &str,
        port: u16,
    ) -> Self {
        let opts = serde_json::json!({
            "port": port,
            "keysDir": keys_dir,
            "keys": keys,
            "clients": [{
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [redirect_uri],
                "auth": auth,
            }],
        });
        let mut child = Command::new("node")
            .arg(script())
            .arg(opts.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs tests/oidc/provider.mjs");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let issuer = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(issuer) = line.strip_prefix("LISTENING ") {
                    return issuer.to_string();
                }
            }
            panic!("the OIDC provider exited before listening");
        })
        .await
        .expect("the OIDC provider listens within 20 s");
        // Keep reading: the provider prints notices later, and a closed
        // pipe would kill it mid-login.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let port = issuer
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("issuer has a port");
        Self {
            issuer,
            port,
            child,
        }
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }
}

/// How far a login through the provider got.
pub struct AtCallback {
    /// The callback URL the provider sent the browser to.
    pub url: String,
    /// The URL moim sent the browser to first, at the provider.
    pub authorize_url: String,
}

impl Browser {
    /// A client that shares this browser's cookies but stops at every
    /// redirect, so the test sees each hop.
    fn stepper(&self) -> Client {
        Client::builder()
            .cookie_provider(self.jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    /// Starts a login with `provider` and signs in at the provider's own
    /// pages as `login`, up to (not into) moim's callback.
    pub async fn sign_in_at_provider(
        &self,
        provider: &str,
        login: &str,
        return_to: &str,
    ) -> AtCallback {
        let http = self.stepper();
        let start = http
            .get(format!("{}/auth/login/{provider}", self.base))
            .query(&[("return_to", return_to)])
            .send()
            .await
            .expect("login starts");
        assert_eq!(
            start.status(),
            StatusCode::SEE_OTHER,
            "moim sends the browser to the provider"
        );
        let authorize_url = location(&start, &self.base);
        let callback = format!("{}/auth/callback/{provider}", self.base);
        let mut url = authorize_url.clone();
        for _ in 0..12 {
            if url.starts_with(&callback) {
                return AtCallback { url, authorize_url };
            }
            let res = http.get(&url).send().await.expect("provider answers");
            if res.status().is_redirection() {
                url = location(&res, &url);
                continue;
            }
            assert_eq!(res.status(), StatusCode::OK, "provider page {url}");
            // The provider's login or consent form: post it as a person would.
            let page = res.text().await.expect("page");
            let action = between(&page, "action=\"", "\"").expect("a form on the provider's page");
            let prompt =
                between(&page, "name=\"prompt\" value=\"", "\"").expect("the form's prompt");
            let form: Vec<(&str, &str)> = match prompt {
                "login" => vec![("prompt", "login"), ("login", login), ("password", "any")],
                other => vec![("prompt", other)],
            };
            let posted = http
                .post(join(&url, action))
                .form(&form)
                .send()
                .await
                .expect("form posts");
            assert!(
                posted.status().is_redirection(),
                "the provider takes its form: {}",
                posted.status()
            );
            url = location(&posted, &url);
        }
        panic!("the provider never sent the browser back to {callback}");
    }

    /// Follows the provider's redirect back into moim, without following
    /// moim's own redirect after it.
    pub async fn arrive(&self, callback_url: &str) -> Response {
        self.stepper()
            .get(callback_url)
            .send()
            .await
            .expect("callback answers")
    }
}

fn location(res: &Response, base: &str) -> String {
    let loc = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a Location header");
    join(base, loc)
}

fn join(base: &str, reference: &str) -> String {
    let base = reqwest::Url::parse(base).expect("base url");
    base.join(reference).expect("resolvable").to_string()
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let len = s[from..].find(end)?;
    Some(&s[from..from + len])
}
