//! A host runs the meeting: Ada hosts, Bob (logged in) and Kim (a guest)
//! are in the call on a real moim server. Ada mutes Bob's microphone and
//! Bob's client is told to mute it; Ada removes Kim and Kim's client is
//! told she was removed; Ada ends the meeting and Bob's client is told the
//! room is gone. Bob, who is no host, can do none of it. Each action goes
//! through the media server's RoomService with LiveKit's Rust server SDK.

mod common;

use std::time::Duration;

use common::media::media_server;
use common::{code, stores, Browser, Harness};
use moim_client::{AudioOptions, Client, ClientEvent, ClientEvents, ConnectOptions};
use moim_proto::lk;
use reqwest::StatusCode;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

async fn in_call(b: &Browser, room: &str, body: Value, server_url: &str) -> (Client, ClientEvents) {
    let r = b.post(&format!("/api/rooms/{room}/join"), body).await;
    assert_eq!(r.status(), StatusCode::OK);
    let grant: Value = r.json().await.expect("json");
    let opts = ConnectOptions {
        forward_signal: true,
        ..Default::default()
    };
    Client::connect(server_url, grant["token"].as_str().expect("token"), opts)
        .await
        .expect("joins the call")
}

#[tokio::test]
async fn a_host_mutes_removes_and_ends_and_the_people_in_the_call_see_it() {
    let (livekit, shutdown) = media_server().await;
    for store in stores() {
        let h = Harness::start_with(store, Some(livekit.clone())).await;
        let (ada, bob, kim) = (h.browser(), h.browser(), h.browser());
        ada.login("Ada").await;
        bob.login("Bob").await;
        let id = ada.create_room(json!({ "guestsAllowed": true })).await;
        let invite = ada.invite(&id).await;

        let (_ada_c, _ada_e) = in_call(&ada, &id, json!({}), &livekit.server_url).await;
        let (bob_c, mut bob_e) = in_call(&bob, &id, json!({}), &livekit.server_url).await;
        let (kim_c, mut kim_e) = in_call(
            &kim,
            &id,
            json!({ "name": "Kim", "invite": invite }),
            &livekit.server_url,
        )
        .await;
        let mic = bob_c
            .publish_audio(AudioOptions::default())
            .await
            .expect("Bob publishes his microphone");

        // Bob is no host: refused, and nothing happens to Kim.
        let r = bob
            .post(
                &format!("/api/rooms/{id}/participants/{}/remove", kim_c.identity()),
                json!({}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(code(&r.json().await.expect("json")), "host_only");

        // Mute: every microphone track of Bob's, and Bob's client is told.
        let r = ada
            .post(
                &format!("/api/rooms/{id}/participants/{}/mute", bob_c.identity()),
                json!({}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let muted: Value = r.json().await.expect("json");
        assert_eq!(muted["muted"], json!([mic.sid]));
        bob_e
            .wait_for(WAIT, |e| match e {
                ClientEvent::Signal(m) => match m.as_ref() {
                    lk::signal_response::Message::Mute(m) if m.sid == mic.sid && m.muted => {
                        Some(())
                    }
                    _ => None,
                },
                _ => None,
            })
            .await
            .expect("Bob's client is told to mute his microphone");

        // Remove: Kim's client is told why she left.
        let r = ada
            .post(
                &format!("/api/rooms/{id}/participants/{}/remove", kim_c.identity()),
                json!({}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let reason = kim_e
            .wait_for(WAIT, |e| match e {
                ClientEvent::Left { reason, .. } => Some(reason.to_owned()),
                _ => None,
            })
            .await
            .expect("Kim is told");
        assert_eq!(reason, lk::DisconnectReason::ParticipantRemoved);
        // Removing someone who is not there says so.
        let r = ada
            .post(
                &format!("/api/rooms/{id}/participants/nobody/remove"),
                json!({}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(code(&r.json().await.expect("json")), "not_in_meeting");

        // End: everyone left is sent away, the room is gone.
        let r = ada.post(&format!("/api/rooms/{id}/end"), json!({})).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let reason = bob_e
            .wait_for(WAIT, |e| match e {
                ClientEvent::Left { reason, .. } => Some(reason.to_owned()),
                _ => None,
            })
            .await
            .expect("Bob is told the meeting ended");
        assert_eq!(reason, lk::DisconnectReason::RoomDeleted);
    }
    shutdown.drain();
}
