//! When only the WebSocket drops, the participant resumes with the same
//! identity and sid, its tracks keep flowing, and nobody sees it leave.
//! A resume after the departure timeout is told to rejoin.

mod common;

use std::time::Duration;

use moim_client::{Client, ClientEvent, ConnectOptions};
use moim_proto::lk;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_resumes_and_its_media_keeps_flowing() {
    let server = common::start().await;
    let common::AudioFlowing {
        alice,
        mut alice_ev,
        bob,
        mut bob_ev,
        track,
    } = common::audio_flowing(&server, "r").await;

    alice.close_ws_only().await.expect("drop the WebSocket");
    tokio::time::sleep(Duration::from_millis(300)).await;
    alice.reconnect().await.expect("resume");
    let resumed = alice_ev
        .wait_for(Duration::from_secs(5), |e| match e {
            ClientEvent::Reconnected(r) => Some(
                r.server_info
                    .as_ref()
                    .map(|s| s.version.clone())
                    .unwrap_or_default(),
            ),
            ClientEvent::Left { .. } => Some("left".into()),
            _ => None,
        })
        .await
        .expect("the server answers the resume");
    assert!(
        resumed == moim_server::LIVEKIT_COMPATIBLE_VERSION,
        "a ReconnectResponse, not a leave: {resumed}"
    );

    let before: u64 = bob.stats().track(&track.sid).map(|t| t.rx.packets).sum();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after: u64 = bob.stats().track(&track.sid).map(|t| t.rx.packets).sum();
    assert!(
        after >= before + 25,
        "alice's audio still reaches bob ({before} -> {after})"
    );
    assert!(
        !bob_ev.drain().iter().any(|e| matches!(e, ClientEvent::ParticipantDisconnected { identity, .. } if identity == "alice")),
        "bob never saw alice leave"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_after_the_departure_timeout_is_told_to_rejoin() {
    let server = common::start_with(|c| c.departure_timeout = Duration::from_millis(500)).await;
    let (alice, mut alice_ev) = Client::connect(
        &server.url,
        &common::token("late", "alice"),
        ConnectOptions::default(),
    )
    .await
    .expect("alice joins");
    let (_bob, mut bob_ev) = Client::connect(
        &server.url,
        &common::token("late", "bob"),
        ConnectOptions::default(),
    )
    .await
    .expect("bob joins");
    alice.close_ws_only().await.expect("drop the WebSocket");
    bob_ev
        .wait_for(Duration::from_secs(5), |e| match e {
            ClientEvent::ParticipantDisconnected { identity, .. } if identity == "alice" => {
                Some(())
            }
            _ => None,
        })
        .await
        .expect("after the departure timeout, alice is gone for bob");
    alice.reconnect().await.expect("try to resume");
    let action = alice_ev
        .wait_for(Duration::from_secs(5), |e| match e {
            ClientEvent::Left { action, .. } => Some(*action),
            _ => None,
        })
        .await
        .expect("the stale session gets a leave");
    assert_eq!(action, lk::leave_request::Action::Reconnect);
}
