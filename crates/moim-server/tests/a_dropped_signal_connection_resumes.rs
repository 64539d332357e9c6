//! When only the WebSocket drops, the participant resumes with the same
//! identity and sid, its tracks keep flowing, and nobody sees it leave.
//! A resume after the departure timeout is told to rejoin.

mod common;

use std::time::Duration;

use moim_client::{Client, ClientEvent, ConnectOptions, Target};
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

/// On a resume moim restarts ICE on the subscriber PeerConnection. The client's
/// checks carry moim's new ufrag, which the media plane must route from the moment
/// the client's answer is accepted, or the restart never completes (LiveKit's
/// Rust-core SDKs then give up on the resume after 15 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_subscriber_completes_its_ice_restart() {
    let server = common::start().await;
    // Media after the restart is checked with real SDKs in tests/rust-core-sdks;
    // this test pins the ICE part, which str0m's client shows as an event.
    let common::AudioFlowing {
        bob, mut bob_ev, ..
    } = common::audio_flowing(&server, "restart").await;
    bob_ev.drain();

    bob.close_ws_only().await.expect("drop the WebSocket");
    bob.reconnect().await.expect("resume");
    bob_ev
        .wait_for(Duration::from_secs(5), |e| {
            matches!(e, ClientEvent::Reconnected(_)).then_some(())
        })
        .await
        .expect("the server answers the resume");
    let started = std::time::Instant::now();
    let completed = bob_ev
        .wait_for(Duration::from_secs(20), |e| match e {
            ClientEvent::IceConnected(Target::Subscriber) => Some(true),
            ClientEvent::PeerDisconnected(Target::Subscriber) => Some(false),
            _ => None,
        })
        .await
        .expect("the subscriber's ICE restart ends one way or the other");
    println!(
        "subscriber ICE restart after the resume: {} in {:?}",
        if completed { "completed" } else { "failed" },
        started.elapsed()
    );
    assert!(
        completed,
        "the subscriber PeerConnection lost ICE after its restart"
    );
}
