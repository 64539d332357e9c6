//! The GitHub and Naver presets, which speak plain OAuth 2.0. Their real
//! servers cannot be reached from here, so a local stub serves what each
//! one's documentation shows: the authorize redirect, the token answer
//! (both send failures as HTTP 200 with an `error` field; Naver sends
//! `expires_in` as a string), and the user endpoint. The stub checks what
//! moim sends: PKCE S256, the client secret, the exact redirect URI.
//! These two presets are verified only this way (docs/API.md says so).

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use common::{code, stores, Harness};
use moim_app::login::{OAuthEndpoints, ProviderConfig, ProviderKind};
use parking_lot::Mutex;
use serde_json::json;
use sha2::{Digest, Sha256};

const SECRET: &str = "stub-secret";

/// What the stub saw and handed out.
#[derive(Default)]
struct Stub {
    /// code → (code_challenge, redirect_uri)
    codes: HashMap<String, (String, String)>,
    /// Every problem found in what moim sent.
    complaints: Vec<String>,
}

type Shared = Arc<Mutex<Stub>>;

async fn authorize(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut stub = s.lock();
    if q.get("code_challenge_method").map(String::as_str) != Some("S256") {
        stub.complaints.push("no S256 code challenge".into());
    }
    let code = format!("code-{}", stub.codes.len());
    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
    stub.codes.insert(
        code.clone(),
        (
            q.get("code_challenge").cloned().unwrap_or_default(),
            redirect.clone(),
        ),
    );
    let state = q.get("state").cloned().unwrap_or_default();
    Redirect::to(&format!("{redirect}?code={code}&state={state}")).into_response()
}

/// Checks the exchange as the real server would; the error shape is each
/// provider's own.
fn exchange(s: &Shared, f: &HashMap<String, String>) -> Result<(), (&'static str, String)> {
    let mut stub = s.lock();
    let Some((challenge, redirect)) = stub.codes.remove(f.get("code").map_or("", |c| c.as_str()))
    else {
        return Err((
            "bad_verification_code",
            "The code passed is incorrect or expired.".into(),
        ));
    };
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    if computed != challenge {
        stub.complaints
            .push("the PKCE verifier does not match".into());
        return Err(("invalid_grant", "code_verifier".into()));
    }
    if f.get("client_secret").map(String::as_str) != Some(SECRET) {
        stub.complaints.push("wrong client secret".into());
        return Err(("incorrect_client_credentials", "secret".into()));
    }
    if f.get("redirect_uri") != Some(&redirect) {
        stub.complaints.push("the redirect URI changed".into());
        return Err(("redirect_uri_mismatch", "redirect".into()));
    }
    Ok(())
}

async fn github_token(
    State(s): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if headers.get("accept").and_then(|v| v.to_str().ok()) != Some("application/json") {
        s.lock()
            .complaints
            .push("GitHub answers JSON only when asked".into());
    }
    match exchange(&s, &f) {
        // GitHub's failures are HTTP 200 too.
        Err((error, description)) => Json(json!({ "error": error, "error_description": description })).into_response(),
        Ok(()) => Json(json!({ "access_token": "gho_16C7e42F292c6912E7710c838347Ae178B4a", "token_type": "bearer", "scope": "read:user,user:email" })).into_response(),
    }
}

async fn github_user(headers: HeaderMap) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some("Bearer gho_16C7e42F292c6912E7710c838347Ae178B4a")
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "message": "Requires authentication" })),
        )
            .into_response();
    }
    Json(json!({
        "login": "octocat", "id": 583231, "node_id": "MDQ6VXNlcjU4MzIzMQ==",
        "avatar_url": "https://avatars.githubusercontent.com/u/583231?v=4",
        "name": "The Octocat", "company": "@github", "email": null, "type": "User"
    }))
    .into_response()
}

async fn naver_token(State(s): State<Shared>, Form(f): Form<HashMap<String, String>>) -> Response {
    if f.get("state").is_none_or(|st| st.len() < 32) {
        s.lock()
            .complaints
            .push("Naver's token request needs the state".into());
    }
    match exchange(&s, &f) {
        Err((error, description)) => Json(json!({ "error": error, "error_description": description })).into_response(),
        Ok(()) => Json(json!({ "access_token": "AAAAQosjWDJieBiQZc3to9YQp6HDLvrmyKC+6+iZ3gq7qrkqf50ljZC+Lgoqrg", "refresh_token": "c8ceMEJisO4Se7uGisHoX0f5JEii7JnipglQipkOn5Zp3tyP7dHQoP0zNKHUq2gY", "token_type": "bearer", "expires_in": "3600" })).into_response(),
    }
}

async fn naver_me(headers: HeaderMap) -> Response {
    if !headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer AAAAQosj"))
    {
        return Json(json!({ "resultcode": "024", "message": "Authentication failed" }))
            .into_response();
    }
    Json(json!({
        "resultcode": "00", "message": "success",
        "response": {
            "id": "32742776", "nickname": "OpenAPI",
            "profile_image": "https://ssl.pstatic.net/static/pwe/address/nodata_33x33.gif",
            "email": "openapi@naver.com", "name": "오픈 API"
        }
    }))
    .into_response()
}

async fn stub() -> (String, Shared) {
    let shared: Shared = Default::default();
    let router = Router::new()
        .route("/login/oauth/authorize", get(authorize))
        .route("/login/oauth/access_token", post(github_token))
        .route("/api/user", get(github_user))
        .route("/oauth2.0/authorize", get(authorize))
        .route("/oauth2.0/token", post(naver_token))
        .route("/v1/nid/me", get(naver_me))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!(
        "http://127.0.0.1:{}",
        listener.local_addr().expect("addr").port()
    );
    tokio::spawn(async move { axum::serve(listener, router).await.expect("stub serves") });
    (base, shared)
}

async fn app_with(store: common::Store, stub: &str) -> Harness {
    let (listener, _) = Harness::listener().await;
    let stub = stub.to_string();
    Harness::start_on(listener, store, move |c| {
        let mut github = ProviderConfig::new("github", ProviderKind::GitHub, "Iv1.stubclient");
        github.client_secret = Some(SECRET.into());
        github.endpoints = Some(OAuthEndpoints {
            authorize: format!("{stub}/login/oauth/authorize"),
            token: format!("{stub}/login/oauth/access_token"),
            user: format!("{stub}/api/user"),
        });
        let mut naver = ProviderConfig::new("naver", ProviderKind::Naver, "naver-stub-client");
        naver.client_secret = Some(SECRET.into());
        naver.endpoints = Some(OAuthEndpoints {
            authorize: format!("{stub}/oauth2.0/authorize"),
            token: format!("{stub}/oauth2.0/token"),
            user: format!("{stub}/v1/nid/me"),
        });
        c.providers = vec![github, naver];
    })
    .await
}

#[tokio::test]
async fn github_and_naver_logins_make_users_keyed_by_their_stable_ids() {
    for store in stores() {
        let (base, shared) = stub().await;
        let h = app_with(store, &base).await;

        let b = h.browser();
        let at = b.sign_in_at_provider("github", "", "/after").await;
        assert!(
            at.authorize_url.contains("scope=read%3Auser+user%3Aemail"),
            "{}",
            at.authorize_url
        );
        let r = b.arrive(&at.url).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let me = b.me().await.1;
        assert_eq!(me["displayName"], "The Octocat");
        assert_eq!(
            me["avatarUrl"],
            "https://avatars.githubusercontent.com/u/583231?v=4"
        );
        assert!(me["email"].is_null(), "GitHub gave no public e-mail");

        let n = h.browser();
        let at = n.sign_in_at_provider("naver", "", "/").await;
        assert_eq!(n.arrive(&at.url).await.status(), StatusCode::SEE_OTHER);
        let naver_me = n.me().await.1;
        assert_eq!(naver_me["displayName"], "OpenAPI");
        assert_eq!(naver_me["email"], "openapi@naver.com");
        assert_ne!(naver_me["id"], me["id"]);

        // GitHub again: the same user, found by its numeric id.
        let again = h.browser();
        let at = again.sign_in_at_provider("github", "", "/").await;
        again.arrive(&at.url).await;
        assert_eq!(again.me().await.1["id"], me["id"]);
        assert!(
            shared.lock().complaints.is_empty(),
            "{:?}",
            shared.lock().complaints
        );
    }
}

#[tokio::test]
async fn a_code_the_provider_refuses_with_http_200_is_still_a_refusal() {
    let store = stores().into_iter().next().expect("sqlite");
    let (base, shared) = stub().await;
    let h = app_with(store, &base).await;
    let b = h.browser();
    let at = b.sign_in_at_provider("github", "", "/").await;
    // The code is spent at the stub before moim exchanges it.
    shared.lock().codes.clear();
    let r = b.arrive(&at.url).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(code(&r.json().await.expect("json")), "provider_refused");
    assert_eq!(b.me().await.0, StatusCode::UNAUTHORIZED);
}
