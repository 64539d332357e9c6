//! Sessions as a browser lives them, through a real HTTP client that keeps
//! cookies, against the app served on loopback: log in, stay logged in
//! across access-token expiry, get logged out when a refresh token is
//! replayed, log out. The clock is the test's, so nothing waits.
//!
//! Runs against SQLite, and against PostgreSQL when MOIM_TEST_POSTGRES_URL
//! names a server (scripts/test.sh starts one).

mod common;

use common::{code, stores, Harness};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn a_dev_login_sets_three_cookies_and_the_page_can_read_only_the_csrf_one() {
    for store in stores() {
        let h = Harness::start(store).await;
        let b = h.browser();
        let r = b.login("Ada").await;
        assert_eq!(r.status(), StatusCode::OK);
        let set: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        let find = |name: &str| {
            set.iter()
                .find(|c| c.starts_with(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} cookie in {set:?}"))
                .clone()
        };
        for name in ["moim_access", "moim_refresh"] {
            let c = find(name);
            assert!(c.contains("HttpOnly"), "{c}");
            assert!(c.contains("SameSite=Lax") && c.contains("Path=/"), "{c}");
            assert!(!c.contains("Secure"), "plain http on 127.0.0.1: {c}");
        }
        assert!(find("moim_access").contains("Max-Age=600"));
        let csrf = find("moim_csrf");
        assert!(!csrf.contains("HttpOnly"), "the page reads it: {csrf}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["user"]["displayName"], "Ada");

        let (status, me) = b.me().await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(me["displayName"], "Ada");
        // The same name logs into the same user.
        let again = h.browser();
        again.login("Ada").await;
        assert_eq!(again.me().await.1["id"], me["id"]);
    }
}

#[tokio::test]
async fn a_session_outlives_its_access_token_by_refreshing_and_every_refresh_rotates() {
    for store in stores() {
        let h = Harness::start(store).await;
        let b = h.browser();
        b.login("Grace").await;
        let first = b.cookie("moim_refresh").expect("refresh cookie");
        h.advance(601);
        let (status, body) = b.me().await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(code(&body), "access_expired");

        let r = b.post("/auth/refresh", json!({})).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let second = b.cookie("moim_refresh").expect("refresh cookie");
        assert_ne!(first, second, "a refresh issues a new refresh token");
        assert_eq!(b.me().await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn a_replayed_refresh_token_ends_the_whole_session() {
    for store in stores() {
        let h = Harness::start(store).await;
        let b = h.browser();
        b.login("Mallory's victim").await;
        let stolen = b.cookie("moim_refresh").expect("refresh cookie");
        let csrf = b.cookie("moim_csrf").expect("csrf cookie");
        assert_eq!(
            b.post("/auth/refresh", json!({})).await.status(),
            StatusCode::NO_CONTENT
        );
        h.advance(30); // past the grace

        // The thief presents the copied, spent token.
        let thief = Client::new();
        let r = thief
            .post(format!("{}/auth/refresh", h.base))
            .header("cookie", format!("moim_refresh={stolen}; moim_csrf={csrf}"))
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let cleared = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|c| c.starts_with("moim_refresh=;") && c.contains("Max-Age=0"));
        assert!(cleared, "the answer deletes the session's cookies");
        let body: Value = r.json().await.expect("json");
        assert_eq!(code(&body), "session_revoked");

        // The victim's current tokens are dead too: access at once, and
        // the refresh token of the same family.
        let (status, _) = b.me().await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let r = b.post("/auth/refresh", json!({})).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn a_refresh_whose_answer_was_lost_can_be_retried_within_the_grace() {
    for store in stores() {
        let h = Harness::start(store).await;
        let b = h.browser();
        b.login("Lin").await;
        let spent = b.cookie("moim_refresh").expect("refresh cookie");
        let csrf = b.cookie("moim_csrf").expect("csrf cookie");
        // The first refresh's answer never reaches the browser.
        let lost = Client::new()
            .post(format!("{}/auth/refresh", h.base))
            .header("cookie", format!("moim_refresh={spent}; moim_csrf={csrf}"))
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .expect("request");
        assert_eq!(lost.status(), StatusCode::NO_CONTENT);
        h.advance(3);
        // The browser still holds the spent token and tries again.
        let r = b.post("/auth/refresh", json!({})).await;
        assert_eq!(
            r.status(),
            StatusCode::NO_CONTENT,
            "a retry within the grace"
        );
        assert_ne!(b.cookie("moim_refresh").as_deref(), Some(spent.as_str()));
        assert_eq!(b.me().await.0, StatusCode::OK);
        // And the session goes on rotating normally.
        h.advance(60);
        assert_eq!(
            b.post("/auth/refresh", json!({})).await.status(),
            StatusCode::NO_CONTENT
        );
    }
}

#[tokio::test]
async fn logout_revokes_the_session_at_once() {
    for store in stores() {
        let h = Harness::start(store).await;
        let b = h.browser();
        b.login("Kim").await;
        let access = b.cookie("moim_access").expect("access cookie");
        let r = b.post("/auth/logout", json!({})).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(b.cookie("moim_access"), None, "the cookies are deleted");
        // A copy of the access token, still unexpired, no longer works.
        let r = Client::new()
            .get(format!("{}/api/me", h.base))
            .header("cookie", format!("moim_access={access}"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn an_admin_ends_every_session_of_a_user() {
    for store in stores() {
        let h = Harness::start(store).await;
        let (laptop, phone) = (h.browser(), h.browser());
        laptop.login("Noor").await;
        phone.login("Noor").await;
        let id = laptop.me().await.1["id"].as_str().expect("id").to_string();
        assert_eq!(h.app.revoke_user_sessions(&id).await.expect("revoke"), 2);
        for b in [&laptop, &phone] {
            assert_eq!(b.me().await.0, StatusCode::UNAUTHORIZED);
            assert_eq!(
                b.post("/auth/refresh", json!({})).await.status(),
                StatusCode::UNAUTHORIZED
            );
        }
    }
}

#[tokio::test]
async fn a_rotated_signing_key_logs_nobody_out() {
    for store in stores() {
        let h = Harness::start(store).await;
        let b = h.browser();
        b.login("Ola").await;
        let before = b.cookie("moim_access").expect("access");
        let kid = h.app.rotate_signing_key().await.expect("rotate");
        assert_eq!(b.me().await.0, StatusCode::OK, "the old key still verifies");
        assert_eq!(
            b.post("/auth/refresh", json!({})).await.status(),
            StatusCode::NO_CONTENT
        );
        let after = b.cookie("moim_access").expect("access");
        assert_ne!(before, after);
        let header = after.split('.').next().expect("jwt header");
        use base64::Engine;
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .expect("base64");
        let header: Value = serde_json::from_slice(&header).expect("json");
        assert_eq!(header["kid"], kid, "the new key signs");
        assert_eq!(b.me().await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn requests_from_another_origin_or_without_the_csrf_token_change_nothing() {
    for store in stores() {
        let h = Harness::start(store).await;
        let b = h.browser();
        b.login("Sam").await;
        let before = b.cookie("moim_refresh");
        // A page on another site makes the browser post, cookies and all.
        let r = b
            .http
            .post(format!("{}/auth/refresh", h.base))
            .header("origin", "https://evil.example")
            .header("x-csrf-token", b.cookie("moim_csrf").expect("csrf"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(code(&r.json().await.expect("json")), "foreign_origin");
        // Same origin, but no header (a form cannot set one).
        let r = b
            .http
            .post(format!("{}/auth/logout", h.base))
            .header("origin", &h.base)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(code(&r.json().await.expect("json")), "csrf_failed");
        assert_eq!(b.cookie("moim_refresh"), before, "nothing rotated");
        assert_eq!(b.me().await.0, StatusCode::OK, "not logged out");
    }
}

#[tokio::test]
async fn logins_from_one_address_are_rate_limited() {
    for store in stores() {
        let h = Harness::start(store).await;
        let b = h.browser();
        let mut statuses = Vec::new();
        for i in 0..12 {
            statuses.push(b.login(&format!("user{i}")).await.status());
        }
        assert!(
            statuses[..10].iter().all(|s| *s == StatusCode::OK),
            "{statuses:?}"
        );
        assert_eq!(statuses[10], StatusCode::TOO_MANY_REQUESTS);
        h.advance(60);
        assert_eq!(
            b.login("later").await.status(),
            StatusCode::OK,
            "a minute on"
        );
    }
}

#[tokio::test]
async fn bad_input_gets_a_clear_json_error() {
    for store in stores() {
        let h = Harness::start(store).await;
        let b = h.browser();
        let r = b
            .http
            .post(format!("{}/auth/dev-login", h.base))
            .header("content-type", "application/json")
            .body("{\"name\": ")
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(code(&r.json().await.expect("json")), "invalid_json");
        for name in ["", "   ", "a\u{7}b", &"x".repeat(65)] {
            let r = b.login(name).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{name:?}");
            assert_eq!(code(&r.json().await.expect("json")), "invalid_name");
        }
        // A forged or garbage access cookie is simply not a session.
        for forged in ["garbage", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."] {
            let r = Client::new()
                .get(format!("{}/api/me", h.base))
                .header("cookie", format!("moim_access={forged}"))
                .send()
                .await
                .expect("request");
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(code(&r.json().await.expect("json")), "unauthenticated");
        }
    }
}
