//! A meeting's chat history: Ada hosts, Kim comes in as a guest; each
//! hands the app what they say under their own join token, and Lee, who
//! joins late, reads both messages in order, under the names the tokens
//! carry. A message handed in twice (a retry) is kept once. Without a join
//! token for this room (none, another room's, a forged one) nobody reads
//! or writes, and a message that is empty or has a strange id is refused.

mod common;

use common::{code, stores, Browser, Harness};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn access() -> moim_app::LiveKitAccess {
    moim_app::LiveKitAccess {
        // Nobody connects in this story: the tokens only prove membership.
        server_url: "ws://127.0.0.1:9".into(),
        api_key: "devkey".into(),
        api_secret: "secret".into(),
    }
}

async fn join_token(b: &Browser, room: &str, body: Value) -> String {
    let r = b.post(&format!("/api/rooms/{room}/join"), body).await;
    assert_eq!(r.status(), StatusCode::OK);
    let grant: Value = r.json().await.expect("json");
    grant["token"].as_str().expect("token").to_string()
}

async fn say(h: &Harness, room: &str, token: &str, body: Value) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/rooms/{room}/chat", h.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn read(h: &Harness, room: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().get(format!("{}/api/rooms/{room}/chat", h.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("request");
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn someone_who_joins_late_reads_what_was_said_once_each_in_order() {
    for store in stores() {
        let h = Harness::start_with(store, Some(access())).await;
        let ada = h.browser();
        ada.login("Ada").await;
        let room = ada
            .create_room(json!({ "title": "Standup", "guestsAllowed": true }))
            .await;
        let invite = ada.invite(&room).await;
        let ada_token = join_token(&ada, &room, json!({})).await;
        let kim_token = join_token(
            &h.browser(),
            &room,
            json!({ "name": "Kim", "invite": invite }),
        )
        .await;

        let (status, first) = say(
            &h,
            &room,
            &ada_token,
            json!({ "id": "a-1", "text": " Welcome! " }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{first}");
        assert_eq!(first["name"], "Ada");
        assert_eq!(first["text"], "Welcome!");
        let (status, _) = say(
            &h,
            &room,
            &kim_token,
            json!({ "id": "k-1", "text": "안녕하세요" }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        // Ada's page retries a message whose answer it lost: kept once, as first sent.
        let (status, again) = say(
            &h,
            &room,
            &ada_token,
            json!({ "id": "a-1", "text": "Welcome!" }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(again["sentAt"], first["sentAt"]);

        let lee_token = join_token(
            &h.browser(),
            &room,
            json!({ "name": "Lee", "invite": invite }),
        )
        .await;
        let (status, history) = read(&h, &room, Some(&lee_token)).await;
        assert_eq!(status, StatusCode::OK, "{history}");
        let said: Vec<(String, String)> = history["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap_or("").into(),
                    m["text"].as_str().unwrap_or("").into(),
                )
            })
            .collect();
        assert_eq!(
            said,
            vec![
                ("Ada".into(), "Welcome!".into()),
                ("Kim".into(), "안녕하세요".into())
            ]
        );
        assert!(history["messages"][1]["identity"]
            .as_str()
            .unwrap_or("")
            .starts_with("guest-"));
    }
}

#[tokio::test]
async fn without_a_join_token_for_the_room_the_chat_is_closed_and_bad_messages_are_refused() {
    let h = Harness::start_with(common::Store::Sqlite, Some(access())).await;
    let ada = h.browser();
    ada.login("Ada").await;
    let room = ada.create_room(json!({ "title": "Private" })).await;
    let other = ada.create_room(json!({ "title": "Other" })).await;
    let token = join_token(&ada, &room, json!({})).await;
    let other_token = join_token(&ada, &other, json!({})).await;
    let grant = moim_proto::token::VideoGrant {
        room_join: true,
        room: room.clone(),
        ..Default::default()
    };
    let forged = moim_proto::token::mint(
        "devkey",
        "not-the-secret",
        "mallory",
        grant,
        std::time::Duration::from_secs(600),
        std::time::SystemTime::now(),
    );

    let (status, body) = read(&h, &room, None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "chat_token_invalid")
    );
    let (status, body) = read(&h, &room, Some(&other_token)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "chat_token_invalid"),
        "{body}"
    );
    let (status, body) = say(&h, &room, &forged, json!({ "id": "m", "text": "hi" })).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "chat_token_invalid"),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap_or("").contains("signature"),
        "{body}"
    );

    for bad in [
        json!({ "id": "m", "text": "   " }),
        json!({ "id": "no spaces", "text": "hi" }),
    ] {
        let (status, body) = say(&h, &room, &token, bad).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_message"),
            "{body}"
        );
    }
    let (status, body) = say(
        &h,
        &room,
        &token,
        json!({ "id": "m", "text": "hi", "admin": true }),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_json")
    );
    let (_, history) = read(&h, &room, Some(&token)).await;
    assert_eq!(history["messages"], json!([]), "nothing refused was kept");
}
