//! Guests by invite: Ada hosts a room that lets guests in and makes an
//! invite link good for two people. Kim and Lee, who have no accounts,
//! join with it under the names they type and land in the room on a real
//! moim server, where Ada sees them by those names; a third guest finds
//! the invite used up. An expired invite, another room's invite, a room
//! for members only, a name no one could type: each is refused with its
//! own code, and nothing is let in.

mod common;

use common::media::media_server;
use common::{code, stores, Harness};
use moim_client::{Client, ConnectOptions};
use moim_proto::token::KeyStore;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn invite(host: &common::Browser, room: &str, ask: Value) -> (StatusCode, Value) {
    let r = host.post(&format!("/api/rooms/{room}/invites"), ask).await;
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn guests_with_an_invite_join_under_the_names_they_type_until_it_is_used_up() {
    let (livekit, shutdown) = media_server().await;
    let keys = KeyStore::new([("devkey".to_string(), "secret".to_string())]);
    for store in stores() {
        let h = Harness::start_with(store, Some(livekit.clone())).await;
        let ada = h.browser();
        ada.login("Ada").await;
        let id = ada
            .create_room(json!({ "title": "Open day", "guestsAllowed": true }))
            .await;
        let (status, inv) = invite(&ada, &id, json!({ "maxUses": 2 })).await;
        assert_eq!(status, StatusCode::CREATED, "{inv}");
        let token = inv["token"].as_str().expect("token").to_string();
        assert_eq!(inv["url"], format!("{}/r/{id}?invite={token}", h.base));
        assert_eq!(inv["maxUses"], 2);

        let r = ada.post(&format!("/api/rooms/{id}/join"), json!({})).await;
        let grant: Value = r.json().await.expect("json");
        let (host_client, _host_events) = Client::connect(
            &livekit.server_url,
            grant["token"].as_str().expect("token"),
            ConnectOptions::default(),
        )
        .await
        .expect("Ada joins");

        let mut guests = Vec::new();
        for name in ["Kim", " Lee "] {
            let g = h.browser();
            let r = g
                .post(
                    &format!("/api/rooms/{id}/join"),
                    json!({ "name": name, "invite": token }),
                )
                .await;
            assert_eq!(r.status(), StatusCode::OK);
            let grant: Value = r.json().await.expect("json");
            let t = grant["token"].as_str().expect("token");
            let claims = keys.verify(t).expect("signed by the media server's key");
            assert_eq!(claims.name, name.trim());
            assert!(claims.sub.starts_with("guest-"), "{}", claims.sub);
            assert_eq!(claims.video.room, id);
            assert!(!claims.video.room_admin, "a guest has no host powers");
            let (client, _events) =
                Client::connect(&livekit.server_url, t, ConnectOptions::default())
                    .await
                    .expect("the guest's token joins the room");
            let others: Vec<String> = client
                .join_response()
                .other_participants
                .iter()
                .map(|p| p.name.clone())
                .collect();
            assert!(others.contains(&"Ada".to_string()), "{others:?}");
            guests.push(client);
        }
        // Two uses were allowed.
        let late = h.browser();
        let r = late
            .post(
                &format!("/api/rooms/{id}/join"),
                json!({ "name": "Park", "invite": token }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::GONE);
        assert_eq!(code(&r.json().await.expect("json")), "invite_used_up");

        for c in guests {
            let _ = c.leave().await;
        }
        let _ = host_client.leave().await;
    }
    shutdown.drain();
}

#[tokio::test]
async fn an_invite_that_is_expired_foreign_or_for_a_closed_room_lets_nobody_in() {
    let (livekit, shutdown) = media_server().await;
    for store in stores() {
        let h = Harness::start_with(store, Some(livekit.clone())).await;
        let ada = h.browser();
        ada.login("Ada").await;
        let open = ada.create_room(json!({ "guestsAllowed": true })).await;
        let other = ada.create_room(json!({ "guestsAllowed": true })).await;
        let closed = ada.create_room(json!({})).await;
        let lobby = ada
            .create_room(json!({ "guestsAllowed": true, "lobby": true }))
            .await;
        let join = |room: &str, body: Value| {
            let g = h.browser();
            let path = format!("/api/rooms/{room}/join");
            async move {
                let r = g.post(&path, body).await;
                (
                    r.status(),
                    code(&r.json().await.unwrap_or(Value::Null)).to_string(),
                )
            }
        };

        let (_, short) = invite(&ada, &open, json!({ "expiresInSeconds": 60 })).await;
        let short = short["token"].as_str().expect("token").to_string();
        let (_, foreign) = invite(&ada, &other, json!({})).await;
        let foreign = foreign["token"].as_str().expect("token").to_string();
        let (_, closed_inv) = invite(&ada, &closed, json!({})).await;
        let closed_inv = closed_inv["token"].as_str().expect("token").to_string();
        let (_, lobby_inv) = invite(&ada, &lobby, json!({})).await;
        let lobby_inv = lobby_inv["token"].as_str().expect("token").to_string();

        assert_eq!(
            join(&open, json!({ "name": "Kim", "invite": foreign })).await,
            (StatusCode::NOT_FOUND, "invite_unknown".into())
        );
        assert_eq!(
            join(&closed, json!({ "name": "Kim", "invite": closed_inv })).await,
            (StatusCode::FORBIDDEN, "guests_not_allowed".into())
        );
        assert_eq!(
            join(&lobby, json!({ "name": "Kim", "invite": lobby_inv })).await,
            (StatusCode::ACCEPTED, String::new()),
            "a room with the lobby on holds the guest"
        );
        assert_eq!(
            join(&open, json!({ "name": "\u{7}", "invite": short })).await,
            (StatusCode::BAD_REQUEST, "invalid_name".into())
        );
        assert_eq!(
            join(
                &open,
                json!({ "name": "Kim", "invite": short, "admin": true })
            )
            .await,
            (StatusCode::BAD_REQUEST, "invalid_json".into())
        );
        // No invite and no session: a guest must log in or bring one.
        assert_eq!(
            join(&open, json!({ "name": "Kim" })).await,
            (StatusCode::FORBIDDEN, "csrf_failed".into())
        );
        h.advance(61);
        assert_eq!(
            join(&open, json!({ "name": "Kim", "invite": short })).await,
            (StatusCode::GONE, "invite_expired".into())
        );

        // Only a host makes invites, within bounds.
        let bob = h.browser();
        bob.login("Bob").await;
        let (status, body) = invite(&bob, &open, json!({})).await;
        assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "host_only"));
        let (status, body) = invite(&ada, &open, json!({ "maxUses": 0 })).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_invite")
        );
        let (status, body) = invite(&ada, &open, json!({ "expiresInSeconds": 10 })).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_invite")
        );
    }
    shutdown.drain();
}
