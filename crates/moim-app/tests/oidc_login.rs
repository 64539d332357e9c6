//! Logging in at a real OpenID Connect provider: npm `oidc-provider` on
//! loopback, its own login and consent pages posted by an HTTP client that
//! keeps cookies, the code exchanged with PKCE, the ID token checked, and a
//! session made. Also what must fail: a replayed callback, a callback in
//! another browser, a refusal at the provider, a provider that is down.
//! The provider rotates its signing key between two logins, and the second
//! login still works.
//!
//! Runs against SQLite, and PostgreSQL when MOIM_TEST_POSTGRES_URL is set;
//! needs tests/oidc's npm packages (scripts/install-deps.sh).

mod common;

use common::oidc_provider::{available, OidcProvider, CLIENT_ID, CLIENT_SECRET};
use common::{code, stores, Harness, Store};
use moim_app::login::{ProviderConfig, ProviderKind};
use reqwest::StatusCode;
use serde_json::Value;

struct World {
    h: Harness,
    op: OidcProvider,
    _keys: tempfile::TempDir,
}

/// The app with one OIDC provider `corp` of `kind`, and the provider.
async fn world(store: Store, kind: ProviderKind, auth: &str) -> World {
    let keys = tempfile::tempdir().expect("keys dir");
    let (listener, base) = Harness::listener().await;
    let op = OidcProvider::start(
        keys.path(),
        &["a"],
        &format!("{base}/auth/callback/corp"),
        auth,
        0,
    )
    .await;
    let issuer = op.issuer.clone();
    let h = Harness::start_on(listener, store, |c| {
        let mut p = ProviderConfig::new("corp", kind, CLIENT_ID);
        p.client_secret = Some(CLIENT_SECRET.into());
        p.issuer = Some(issuer);
        c.providers.push(p);
    })
    .await;
    World { h, op, _keys: keys }
}

fn query(url: &str, key: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn a_person_logs_in_at_an_openid_provider_and_lands_where_they_were_going() {
    if !available() {
        return;
    }
    for store in stores() {
        let w = world(store, ProviderKind::Oidc, "client_secret_basic").await;
        let b = w.h.browser();

        let listed: Value = b.get("/auth/providers").await.json().await.expect("json");
        let corp = listed["providers"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["id"] == "corp"))
            .expect("the provider is listed")
            .clone();
        assert_eq!(corp["loginUrl"], "/auth/login/corp");
        assert_eq!(corp["kind"], "oidc");

        let at = b
            .sign_in_at_provider("corp", "alice", "/r/abc-defg-hij")
            .await;
        // What moim asked the provider for: a code, PKCE S256, state and nonce.
        let ask = |k| query(&at.authorize_url, k);
        assert_eq!(ask("response_type").as_deref(), Some("code"));
        assert_eq!(ask("code_challenge_method").as_deref(), Some("S256"));
        assert!(ask("code_challenge").is_some_and(|c| c.len() == 43));
        assert!(ask("state").is_some_and(|s| s.len() >= 32));
        assert!(ask("nonce").is_some_and(|s| s.len() >= 32));
        assert_eq!(
            ask("redirect_uri").as_deref(),
            Some(format!("{}/auth/callback/corp", w.h.base).as_str())
        );
        assert!(ask("scope").is_some_and(|s| s.split(' ').any(|x| x == "openid")));

        let back = b.arrive(&at.url).await;
        assert_eq!(back.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            back.headers().get("location").and_then(|v| v.to_str().ok()),
            Some("/r/abc-defg-hij")
        );
        assert!(b.cookie("moim_access").is_some() && b.cookie("moim_refresh").is_some());
        assert!(
            b.cookie("moim_login").is_none(),
            "the login cookie is spent"
        );
        let (status, me) = b.me().await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(me["displayName"], "Alice Example");
        assert_eq!(me["email"], "alice@example.test");
        assert_eq!(
            me["avatarUrl"],
            format!("{}/pictures/alice.png", w.op.issuer)
        );

        // The same person again is the same user; another person is not.
        let again = w.h.browser();
        let at = again.sign_in_at_provider("corp", "alice", "/").await;
        assert_eq!(again.arrive(&at.url).await.status(), StatusCode::SEE_OTHER);
        assert_eq!(again.me().await.1["id"], me["id"]);
        let bob = w.h.browser();
        let at = bob.sign_in_at_provider("corp", "bob", "/").await;
        bob.arrive(&at.url).await;
        let bob_me = bob.me().await.1;
        assert_eq!(bob_me["displayName"], "Bob Example");
        assert_ne!(bob_me["id"], me["id"]);
        w.op.stop().await;
    }
}

#[tokio::test]
async fn a_callback_is_good_once_and_only_in_the_browser_that_started_it() {
    if !available() {
        return;
    }
    for store in stores() {
        let w = world(store, ProviderKind::Oidc, "client_secret_basic").await;
        // Carried to another browser (a login CSRF): refused, nobody logged in.
        let victim = w.h.browser();
        let attacker = w.h.browser();
        let at = attacker.sign_in_at_provider("corp", "mallory", "/").await;
        let r = victim.arrive(&at.url).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(code(&r.json().await.expect("json")), "login_other_browser");
        assert_eq!(victim.me().await.0, StatusCode::UNAUTHORIZED);

        // Used once, then replayed: the replay finds nothing.
        let b = w.h.browser();
        let at = b.sign_in_at_provider("corp", "alice", "/").await;
        assert_eq!(b.arrive(&at.url).await.status(), StatusCode::SEE_OTHER);
        let replay = b.arrive(&at.url).await;
        assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            code(&replay.json().await.expect("json")),
            "login_state_unknown"
        );

        // A made-up state, and no state at all.
        let forged = format!("{}/auth/callback/corp?code=x&state=forged", w.h.base);
        let r = b.arrive(&forged).await;
        assert_eq!(code(&r.json().await.expect("json")), "login_state_unknown");
        w.op.stop().await;
    }
}

#[tokio::test]
async fn a_login_refused_at_the_provider_or_sent_back_from_another_issuer_makes_no_session() {
    if !available() {
        return;
    }
    for store in stores() {
        let w = world(store, ProviderKind::Oidc, "client_secret_basic").await;
        let b = w.h.browser();
        let at = b.sign_in_at_provider("corp", "alice", "/").await;
        let state = query(&at.url, "state").expect("state");
        // The person said no: the provider sends an error instead of a code.
        let denied = format!(
            "{}/auth/callback/corp?error=access_denied&error_description=no&state={state}",
            w.h.base
        );
        let r = b.arrive(&denied).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(code(&r.json().await.expect("json")), "login_denied");
        assert_eq!(b.me().await.0, StatusCode::UNAUTHORIZED);

        // RFC 9207: a callback naming another issuer is a mix-up, refused.
        let at = b.sign_in_at_provider("corp", "alice", "/").await;
        let state = query(&at.url, "state").expect("state");
        let c = query(&at.url, "code").expect("code");
        let mixed = format!(
            "{}/auth/callback/corp?code={c}&state={state}&iss=https%3A%2F%2Fevil.example",
            w.h.base
        );
        let r = b.arrive(&mixed).await;
        assert_eq!(code(&r.json().await.expect("json")), "id_token_invalid");
        assert_eq!(b.me().await.0, StatusCode::UNAUTHORIZED);
        w.op.stop().await;
    }
}

#[tokio::test]
async fn logins_go_on_when_the_provider_rotates_its_signing_key() {
    if !available() {
        return;
    }
    let store = stores().into_iter().next().expect("sqlite");
    let w = world(store, ProviderKind::Oidc, "client_secret_basic").await;
    let b = w.h.browser();
    let at = b.sign_in_at_provider("corp", "alice", "/").await;
    assert_eq!(b.arrive(&at.url).await.status(), StatusCode::SEE_OTHER);

    // The provider comes back on the same address signing with a new key,
    // which moim's cached key set does not hold.
    let port = w.op.port;
    let redirect = format!("{}/auth/callback/corp", w.h.base);
    w.op.stop().await;
    let op = OidcProvider::start(
        w._keys.path(),
        &["b", "a"],
        &redirect,
        "client_secret_basic",
        port,
    )
    .await;
    let again = w.h.browser();
    let at = again.sign_in_at_provider("corp", "alice", "/").await;
    let r = again.arrive(&at.url).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    assert_eq!(again.me().await.1["displayName"], "Alice Example");
    op.stop().await;
}

#[tokio::test]
async fn the_kakao_preset_sends_its_secret_in_the_form_body() {
    if !available() {
        return;
    }
    // Kakao is OpenID Connect with client_secret_post; a provider that
    // accepts only that method proves moim sends it so.
    let store = stores().into_iter().next().expect("sqlite");
    let w = world(store, ProviderKind::Kakao, "client_secret_post").await;
    let b = w.h.browser();
    let at = b.sign_in_at_provider("corp", "minji", "/").await;
    let scope = query(&at.authorize_url, "scope").expect("scope");
    assert!(scope.contains("profile_nickname"), "{scope}");
    let r = b.arrive(&at.url).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    assert_eq!(b.me().await.1["displayName"], "minji-nick");
    w.op.stop().await;
}

#[tokio::test]
async fn a_provider_that_is_down_gets_an_error_that_names_the_layer() {
    let store = stores().into_iter().next().expect("sqlite");
    let (listener, _) = Harness::listener().await;
    let h = Harness::start_on(listener, store, |c| {
        let mut p = ProviderConfig::new("corp", ProviderKind::Oidc, CLIENT_ID);
        // Nothing listens on port 9 of loopback.
        p.issuer = Some("http://127.0.0.1:9".into());
        c.providers.push(p);
    })
    .await;
    let b = h.browser();
    let r = b.get("/auth/login/corp").await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(code(&r.json().await.expect("json")), "provider_unreachable");
    let r = b.get("/auth/login/nope").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(code(&r.json().await.expect("json")), "unknown_provider");
}
