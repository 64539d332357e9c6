//! An operator stops moim during a call (SIGTERM, a rolling deploy). The
//! call goes on while the server drains; load balancers see `/healthz` turn
//! 503 and newcomers are turned away with a reason. When the drain timeout
//! passes, or the last call ends, or the operator insists, every participant
//! is told `SERVER_SHUTDOWN` with the action that makes its SDK join again
//! elsewhere, and the server stops.

mod common;

use std::time::Duration;

use moim_client::{Client, ClientEvent, ClientEvents, ConnectOptions, Error};
use moim_proto::lk;

async fn health(server: &common::TestServer) -> (u16, String) {
    let r = reqwest::get(format!("http://{}/healthz", server.http))
        .await
        .expect("healthz answers");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// Waits for the `Leave` a shutting-down server sends, then for the close.
async fn sent_elsewhere(events: &mut ClientEvents, who: &str) -> String {
    let leave = events
        .wait_for(Duration::from_secs(10), |e| match e {
            ClientEvent::Left {
                reason,
                action,
                can_reconnect,
            } => Some((*reason, *action, *can_reconnect)),
            _ => None,
        })
        .await
        .unwrap_or_else(|e| panic!("{who} is told the server shuts down: {e:?}"));
    assert_eq!(
        leave,
        (
            lk::DisconnectReason::ServerShutdown,
            lk::leave_request::Action::Reconnect,
            true
        ),
        "{who}'s Leave says SERVER_SHUTDOWN and to reconnect"
    );
    events
        .wait_for(Duration::from_secs(5), |e| match e {
            ClientEvent::SignalClosed { reason } => Some(reason.clone()),
            _ => None,
        })
        .await
        .unwrap_or_else(|e| panic!("{who}'s signal connection is closed: {e:?}"))
}

async fn stops_within(server: common::TestServer, limit: Duration) {
    let stopped = tokio::time::timeout(limit, server.stopped)
        .await
        .expect("the server stops")
        .expect("the server task ends cleanly");
    assert!(
        stopped.is_ok(),
        "the server stops without error: {stopped:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_goes_on_through_the_drain_and_then_everyone_is_sent_elsewhere() {
    let server = common::start_with(|c| c.drain_timeout = Duration::from_secs(2)).await;
    let common::AudioFlowing {
        alice: _alice,
        alice_ev: mut alice_events,
        bob,
        bob_ev: mut bob_events,
        track,
    } = common::audio_flowing(&server, "standup").await;
    assert_eq!(health(&server).await.0, 200);

    server.shutdown.drain();

    let (status, text) = health(&server).await;
    assert_eq!(status, 503, "a draining server fails its health check");
    assert!(text.contains("draining"), "{text}");
    match Client::connect(
        &server.url,
        &common::token("standup", "carol"),
        ConnectOptions::default(),
    )
    .await
    {
        Err(Error::SignalRejected { status, body, .. }) => {
            assert_eq!(status, 503);
            assert!(body.contains("shutting down"), "{body}");
        }
        Err(e) => panic!("carol should get a 503, got {e}"),
        Ok(_) => panic!("a draining server took a new participant"),
    }
    // livekit-client asks the validate endpoint why a WebSocket failed; it
    // must hear the same.
    let validate = reqwest::get(format!(
        "http://{}/rtc/validate?access_token={}",
        server.http,
        common::token("standup", "carol")
    ))
    .await
    .expect("validate answers");
    assert_eq!(validate.status().as_u16(), 503);
    let why = validate.text().await.unwrap_or_default();
    assert!(why.contains("shutting down"), "{why}");

    let before: u64 = bob.stats().track(&track.sid).map(|t| t.rx.packets).sum();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after: u64 = bob.stats().track(&track.sid).map(|t| t.rx.packets).sum();
    assert!(
        after >= before + 10,
        "alice's audio still reaches bob while draining ({before} -> {after})"
    );

    for (who, events) in [("alice", &mut alice_events), ("bob", &mut bob_events)] {
        let closed = sent_elsewhere(events, who).await;
        assert!(
            closed.contains("1001") && closed.contains("shutting down"),
            "{who}'s close frame says going away and why: {closed}"
        );
    }
    stops_within(server, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_that_drops_during_the_drain_may_resume() {
    let server = common::start_with(|c| c.drain_timeout = Duration::from_secs(30)).await;
    let (alice, mut events) = common::join(&server, "r", "alice").await;
    server.shutdown.drain();
    alice.close_ws_only().await.expect("drop the WebSocket");
    alice.reconnect().await.expect("resume");
    events
        .wait_for(Duration::from_secs(5), |e| {
            matches!(e, ClientEvent::Reconnected(_)).then_some(())
        })
        .await
        .expect("a draining server takes back its own participant");
    alice.leave().await.expect("leave");
    stops_within(server, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_ends_when_the_last_call_ends() {
    // The timeout is far beyond the test's patience: only the call ending
    // can stop the server in time.
    let server = common::start_with(|c| c.drain_timeout = Duration::from_secs(600)).await;
    let (alice, _events) = common::join(&server, "r", "alice").await;
    let (bob, _bob_events) = common::join(&server, "r", "bob").await;
    server.shutdown.drain();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!server.stopped.is_finished(), "the call is still going on");
    alice.leave().await.expect("alice leaves");
    bob.leave().await.expect("bob leaves");
    stops_within(server, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_ends_the_drain_at_once() {
    let server = common::start_with(|c| c.drain_timeout = Duration::from_secs(600)).await;
    let (_alice, mut events) = common::join(&server, "r", "alice").await;
    server.shutdown.drain();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !server.stopped.is_finished(),
        "the first signal only drains"
    );
    server.shutdown.now();
    sent_elsewhere(&mut events, "alice").await;
    stops_within(server, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_server_stops_at_once() {
    let server = common::start_with(|c| c.drain_timeout = Duration::from_secs(600)).await;
    server.shutdown.drain();
    stops_within(server, Duration::from_secs(5)).await;
}
