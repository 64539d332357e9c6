//! The lobby: Ada hosts a room with the lobby on. Kim, a guest with an
//! invite, is told to wait; Ada's event stream shows her waiting; Kim asks
//! again and her request is held until Ada admits her, then answers a
//! token that gets her into the call on a real moim server. Lee is turned
//! away. Bob, who is no host, can neither see the lobby nor decide. A
//! ticket nobody decides lapses.

mod common;

use std::time::Duration;

use common::media::media_server;
use common::{code, stores, Browser, Harness};
use moim_client::{Client, ConnectOptions};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Reads a host's lobby event stream until a `lobby` event whose list
/// satisfies `want`.
async fn until_lobby(stream: &mut reqwest::Response, want: impl Fn(&Value) -> bool) -> Value {
    let mut buf = String::new();
    let read = async {
        loop {
            let chunk = stream
                .chunk()
                .await
                .expect("stream")
                .expect("stream stays open");
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
                    continue;
                };
                let v: Value = serde_json::from_str(data).expect("json event");
                if event.contains("event: lobby") && want(&v) {
                    return v;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the lobby event arrives")
}

fn names(v: &Value) -> Vec<String> {
    v["waiting"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|g| g["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

async fn guest_join(b: &Browser, room: &str, body: Value) -> (StatusCode, Value) {
    let r = b.post(&format!("/api/rooms/{room}/join"), body).await;
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_guest_waits_until_the_host_admits_her_and_another_is_turned_away() {
    let (livekit, shutdown) = media_server().await;
    for store in stores() {
        let h = Harness::start_with(store, Some(livekit.clone())).await;
        let (ada, bob) = (h.browser(), h.browser());
        ada.login("Ada").await;
        bob.login("Bob").await;
        let id = ada
            .create_room(json!({ "guestsAllowed": true, "lobby": true }))
            .await;
        let invite = ada.invite(&id).await;

        let mut stream = ada
            .http
            .get(format!("{}/api/rooms/{id}/lobby", h.base))
            .header("accept", "text/event-stream")
            .send()
            .await
            .expect("stream");
        assert_eq!(stream.status(), StatusCode::OK);
        let first = until_lobby(&mut stream, |_| true).await;
        assert_eq!(names(&first), Vec::<String>::new(), "nobody waits yet");

        // Kim comes in by invite and is told to wait.
        let kim = h.browser();
        let (status, waiting) =
            guest_join(&kim, &id, json!({ "name": "Kim", "invite": invite })).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(waiting["status"], "waiting");
        let ticket = waiting["ticket"].as_str().expect("ticket").to_string();
        let seen = until_lobby(&mut stream, |v| names(v) == ["Kim"]).await;
        let kim_id = seen["waiting"][0]["id"].as_str().expect("id").to_string();

        // Bob is no host.
        let r = bob.get(&format!("/api/rooms/{id}/lobby")).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = bob
            .post(&format!("/api/rooms/{id}/lobby/{kim_id}/admit"), json!({}))
            .await;
        assert_eq!(code(&r.json().await.expect("json")), "host_only");

        // Kim asks again; her request is held until Ada admits her.
        let held = {
            let kim = h.browser();
            let (id, ticket) = (id.clone(), ticket.clone());
            tokio::spawn(async move { guest_join(&kim, &id, json!({ "ticket": ticket })).await })
        };
        let listed: Value = ada
            .get(&format!("/api/rooms/{id}/lobby"))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(names(&listed), ["Kim"]);
        let r = ada
            .post(&format!("/api/rooms/{id}/lobby/{kim_id}/admit"), json!({}))
            .await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let (status, grant) = tokio::time::timeout(Duration::from_secs(10), held)
            .await
            .expect("the held request answers once she is admitted")
            .expect("task");
        assert_eq!(status, StatusCode::OK, "{grant}");
        let (client, _events) = Client::connect(
            &livekit.server_url,
            grant["token"].as_str().expect("token"),
            ConnectOptions::default(),
        )
        .await
        .expect("Kim's token joins the call");
        assert!(client.identity().starts_with("guest-"));
        until_lobby(&mut stream, |v| names(v).is_empty()).await;
        // Deciding twice finds nobody.
        let r = ada
            .post(&format!("/api/rooms/{id}/lobby/{kim_id}/deny"), json!({}))
            .await;
        assert_eq!(code(&r.json().await.expect("json")), "ticket_unknown");

        // Lee is turned away.
        let lee = h.browser();
        let (_, waiting) = guest_join(&lee, &id, json!({ "name": "Lee", "invite": invite })).await;
        let lee_ticket = waiting["ticket"].as_str().expect("ticket").to_string();
        let seen = until_lobby(&mut stream, |v| names(v) == ["Lee"]).await;
        let lee_id = seen["waiting"][0]["id"].as_str().expect("id").to_string();
        let r = ada
            .post(&format!("/api/rooms/{id}/lobby/{lee_id}/deny"), json!({}))
            .await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let (status, body) = guest_join(&lee, &id, json!({ "ticket": lee_ticket })).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "lobby_denied")
        );

        // Park waits too long.
        let park = h.browser();
        let (_, waiting) =
            guest_join(&park, &id, json!({ "name": "Park", "invite": invite })).await;
        h.advance(601);
        let (status, body) = guest_join(&park, &id, json!({ "ticket": waiting["ticket"] })).await;
        assert_eq!((status, code(&body)), (StatusCode::GONE, "lobby_lapsed"));
        let (status, body) = guest_join(&park, &id, json!({ "ticket": "forged" })).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "ticket_unknown")
        );
        let _ = client.leave().await;
    }
    shutdown.drain();
}
