//! Rooms through the app API: Ada creates one and hosts it, Bob (logged in,
//! not a member) can see it and join it but not change it; each gets a
//! LiveKit token for that room alone, host powers for Ada only, and the
//! tokens get both into the same room on a real moim server.

mod common;

use common::media::media_server;
use common::{code, stores, Harness};
use moim_client::{Client, ConnectOptions};
use moim_proto::token::KeyStore;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn a_host_creates_a_room_and_both_people_join_it_with_their_own_powers() {
    let (livekit, shutdown) = media_server().await;
    for store in stores() {
        let h = Harness::start_with(store, Some(livekit.clone())).await;
        let (ada, bob) = (h.browser(), h.browser());
        ada.login("Ada").await;
        bob.login("Bob").await;

        let r = ada
            .post(
                "/api/rooms",
                json!({ "title": "  Standup ", "lobby": true }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let room: Value = r.json().await.expect("json");
        let id = room["id"].as_str().expect("id").to_string();
        assert_eq!(room["title"], "Standup");
        assert_eq!(room["role"], "host");
        assert_eq!(
            (room["lobby"].as_bool(), room["guestsAllowed"].as_bool()),
            (Some(true), Some(false))
        );

        // (Other runs on the same PostgreSQL database may have left rooms
        // of the same users: the room is looked for, not counted.)
        let listed = |v: &Value| {
            v["rooms"]
                .as_array()
                .is_some_and(|rooms| rooms.iter().any(|r| r["id"] == id.as_str()))
        };
        let mine: Value = ada.get("/api/rooms").await.json().await.expect("json");
        assert!(listed(&mine), "{mine}");
        let theirs: Value = bob.get("/api/rooms").await.json().await.expect("json");
        assert!(!listed(&theirs), "Bob is no member: {theirs}");
        let seen: Value = bob
            .get(&format!("/api/rooms/{id}"))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(seen["role"], "participant");

        // Only the host changes or deletes it.
        let r = bob
            .http
            .patch(format!("{}/api/rooms/{id}", h.base))
            .header("origin", &h.base)
            .header("x-csrf-token", bob.cookie("moim_csrf").expect("csrf"))
            .json(&json!({ "title": "Mine now" }))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(code(&r.json().await.expect("json")), "host_only");
        let r = ada
            .http
            .patch(format!("{}/api/rooms/{id}", h.base))
            .header("origin", &h.base)
            .header("x-csrf-token", ada.cookie("moim_csrf").expect("csrf"))
            .json(&json!({ "guestsAllowed": true, "e2eeRequired": true }))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::OK);
        let changed: Value = r.json().await.expect("json");
        assert_eq!(changed["title"], "Standup");
        assert_eq!(
            (
                changed["guestsAllowed"].as_bool(),
                changed["e2eeRequired"].as_bool()
            ),
            (Some(true), Some(true))
        );

        // Join: a token for this room only; roomAdmin for the host alone.
        let keys = KeyStore::new([("devkey".to_string(), "secret".to_string())]);
        let mut clients = Vec::new();
        for (who, admin) in [(&ada, true), (&bob, false)] {
            let r = who.post(&format!("/api/rooms/{id}/join"), json!({})).await;
            assert_eq!(r.status(), StatusCode::OK);
            let grant: Value = r.json().await.expect("json");
            assert_eq!(grant["serverUrl"], livekit.server_url.as_str());
            let token = grant["token"].as_str().expect("token");
            let claims = keys
                .verify(token)
                .expect("the media server's key signed it");
            assert_eq!(claims.video.room, id);
            assert!(claims.video.room_join);
            assert_eq!(claims.video.room_admin, admin);
            assert_eq!(claims.sub, who.me().await.1["id"].as_str().expect("id"));
            let (client, events) =
                Client::connect(&livekit.server_url, token, ConnectOptions::default())
                    .await
                    .expect("the token joins the room");
            assert_eq!(client.room_name(), id);
            clients.push((client, events));
        }
        let names: Vec<String> = clients[1]
            .0
            .join_response()
            .other_participants
            .iter()
            .map(|p| p.name.clone())
            .collect();
        assert_eq!(
            names,
            ["Ada"],
            "Bob sees Ada by the name she logged in with"
        );
        for (c, _) in &clients {
            let _ = c.leave().await;
        }

        // Deleted: gone for everyone.
        let r = ada
            .http
            .delete(format!("{}/api/rooms/{id}", h.base))
            .header("origin", &h.base)
            .header("x-csrf-token", ada.cookie("moim_csrf").expect("csrf"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let r = bob.post(&format!("/api/rooms/{id}/join"), json!({})).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(code(&r.json().await.expect("json")), "room_not_found");
    }
    shutdown.drain();
}

#[tokio::test]
async fn rooms_refuse_bad_input_and_strangers() {
    for store in stores() {
        let h = Harness::start(store).await;
        let ada = h.browser();
        // Not logged in.
        let r = ada.get("/api/rooms").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        ada.login("Rhea").await;
        for (body, want) in [
            (json!({ "title": "" }), "invalid_title"),
            (json!({ "title": "x".repeat(101) }), "invalid_title"),
            (json!({ "title": "ok", "owner": "someone" }), "invalid_json"),
            (json!({ "lobby": "yes" }), "invalid_json"),
        ] {
            let r = ada.post("/api/rooms", body.clone()).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(code(&r.json().await.expect("json")), want, "{body}");
        }
        let r = ada.get("/api/rooms/nope-nope-nop").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        // Without a media server configured, join says so.
        let room: Value = ada
            .post("/api/rooms", json!({}))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(room["title"], "Meeting");
        let r = ada
            .post(
                &format!("/api/rooms/{}/join", room["id"].as_str().expect("id")),
                json!({}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(code(&r.json().await.expect("json")), "no_media_server");
    }
}
