//! A token's grants decide what its holder may do in the room.

mod common;

use std::time::{Duration, SystemTime};

use moim_client::{AudioOptions, Client, ClientEvent, ConnectOptions};
use moim_proto::token::{self, VideoGrant};

fn token_with(room: &str, identity: &str, grant: impl FnOnce(&mut VideoGrant)) -> String {
    let mut g = VideoGrant {
        room_join: true,
        room: room.into(),
        ..Default::default()
    };
    grant(&mut g);
    token::mint(
        "devkey",
        "secret",
        identity,
        g,
        Duration::from_secs(600),
        SystemTime::now(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_token_cannot_publish() {
    let server = common::start().await;
    let opts = ConnectOptions {
        publish_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let (viewer, _ev) = Client::connect(
        &server.url,
        &token_with("g", "viewer", |g| g.can_publish = Some(false)),
        opts,
    )
    .await
    .expect("join");
    assert!(
        viewer.publish_audio(AudioOptions::default()).await.is_err(),
        "publishing is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_sources_limit_what_may_be_published() {
    let server = common::start().await;
    let opts = ConnectOptions {
        publish_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let t = token_with("g", "cam-only", |g| {
        g.can_publish_sources = vec!["camera".into()]
    });
    let (c, _ev) = Client::connect(&server.url, &t, opts).await.expect("join");
    assert!(
        c.publish_audio(AudioOptions::default()).await.is_err(),
        "the microphone is not an allowed source"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_from_a_participant_without_can_publish_data_is_dropped() {
    let server = common::start().await;
    let (muted, _m) = Client::connect(
        &server.url,
        &token_with("g", "quiet", |g| g.can_publish_data = Some(false)),
        ConnectOptions::default(),
    )
    .await
    .expect("join");
    let (talker, _t) = Client::connect(
        &server.url,
        &common::token("g", "talker"),
        ConnectOptions::default(),
    )
    .await
    .expect("join");
    let (_listener, mut ev) = Client::connect(
        &server.url,
        &common::token("g", "listener"),
        ConnectOptions::default(),
    )
    .await
    .expect("join");
    muted
        .send_data(b"from quiet".to_vec(), true, vec![], None)
        .await
        .expect("send");
    talker
        .send_data(b"from talker".to_vec(), true, vec![], None)
        .await
        .expect("send");
    let first = ev
        .wait_for(Duration::from_secs(5), |e| match e {
            ClientEvent::DataReceived { from_identity, .. } => Some(from_identity.clone()),
            _ => None,
        })
        .await
        .expect("the allowed message arrives");
    assert_eq!(first, "talker");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !ev.drain().iter().any(|e| matches!(e, ClientEvent::DataReceived { from_identity, .. } if from_identity == "quiet")),
        "the participant without canPublishData was not heard"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_identities_limit_who_receives_data() {
    let server = common::start().await;
    let (alice, _a) = Client::connect(
        &server.url,
        &common::token("g", "alice"),
        ConnectOptions::default(),
    )
    .await
    .expect("join");
    let (_bob, mut bob_ev) = Client::connect(
        &server.url,
        &common::token("g", "bob"),
        ConnectOptions::default(),
    )
    .await
    .expect("join");
    let (_carol, mut carol_ev) = Client::connect(
        &server.url,
        &common::token("g", "carol"),
        ConnectOptions::default(),
    )
    .await
    .expect("join");
    alice
        .send_data(b"for carol".to_vec(), true, vec!["carol".into()], None)
        .await
        .expect("send");
    carol_ev
        .wait_for(Duration::from_secs(5), |e| {
            matches!(e, ClientEvent::DataReceived { .. }).then_some(())
        })
        .await
        .expect("carol receives");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !bob_ev
            .drain()
            .iter()
            .any(|e| matches!(e, ClientEvent::DataReceived { .. })),
        "bob does not"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_participant_is_not_listed() {
    let server = common::start().await;
    let (_ghost, _g) = Client::connect(
        &server.url,
        &token_with("g", "ghost", |g| g.hidden = true),
        ConnectOptions::default(),
    )
    .await
    .expect("join");
    let (bob, _b) = Client::connect(
        &server.url,
        &common::token("g", "bob"),
        ConnectOptions::default(),
    )
    .await
    .expect("join");
    assert!(bob
        .join_response()
        .other_participants
        .iter()
        .all(|p| p.identity != "ghost"));
}
