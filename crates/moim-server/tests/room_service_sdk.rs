//! LiveKit's Rust server SDK (`livekit-api`'s `RoomClient`, protobuf bodies)
//! drives moim's RoomService while real clients sit in the room, and every
//! call shows up at those clients at once.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use livekit_api::services::room::{
    CreateRoomOptions, RoomClient, SendDataOptions, UpdateParticipantOptions,
};
use livekit_api::services::{ServerError, ServiceError};
use moim_client::{AudioOptions, Client, ClientEvent, ConnectOptions};
use moim_proto::lk;

fn sdk(server: &common::TestServer) -> RoomClient {
    RoomClient::with_api_key(&format!("http://{}", server.http), "devkey", "secret")
        .with_failover(false)
}

fn twirp_code(e: &ServiceError) -> String {
    match e {
        ServiceError::Twirp(ServerError::Twirp(c)) => c.code.clone(),
        other => format!("not a twirp error: {other}"),
    }
}

async fn join(
    server: &common::TestServer,
    room: &str,
    identity: &str,
) -> (Client, moim_client::ClientEvents) {
    let opts = ConnectOptions {
        forward_signal: true,
        ..Default::default()
    };
    Client::connect(&server.url, &common::token(room, identity), opts)
        .await
        .expect("client joins")
}

/// Waits for a forwarded signal message that `f` accepts.
async fn signal<T>(
    ev: &mut moim_client::ClientEvents,
    what: &str,
    mut f: impl FnMut(&lk::signal_response::Message) -> Option<T>,
) -> T {
    ev.wait_for(Duration::from_secs(5), |e| match e {
        ClientEvent::Signal(m) => f(m),
        _ => None,
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within 5 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_sdk_moderates_a_live_room() {
    let server = common::start().await;
    let api = sdk(&server);
    let (alice, mut alice_ev) = join(&server, "live", "alice").await;
    let (_bob, mut bob_ev) = join(&server, "live", "bob").await;
    let audio = alice
        .publish_audio(AudioOptions::default())
        .await
        .expect("alice publishes audio");

    // Rooms and participants as the API sees them.
    let rooms = api.list_rooms(vec![]).await.expect("ListRooms");
    let live = rooms
        .iter()
        .find(|r| r.name == "live")
        .expect("room listed");
    assert_eq!(live.num_participants, 2);
    assert!(live.sid.starts_with("RM_"));
    let people = api
        .list_participants("live")
        .await
        .expect("ListParticipants");
    let mut names: Vec<_> = people.iter().map(|p| p.identity.as_str()).collect();
    names.sort();
    assert_eq!(names, ["alice", "bob"]);
    let got = api
        .get_participant("live", "alice")
        .await
        .expect("GetParticipant");
    assert!(got.sid.starts_with("PA_"));

    // Wait until bob receives alice's audio, then mute it from the API.
    bob_ev
        .wait_for(Duration::from_secs(10), |e| match e {
            ClientEvent::MediaReceived { track_sid, .. } if *track_sid == audio.sid => Some(()),
            _ => None,
        })
        .await
        .expect("bob receives alice's audio");
    let muted = api
        .mute_published_track("live", "alice", &audio.sid, true)
        .await
        .expect("MutePublishedTrack");
    assert!(muted.muted, "the reply shows the track muted");
    signal(&mut alice_ev, "mute request at alice", |m| match m {
        lk::signal_response::Message::Mute(r) if r.sid == audio.sid && r.muted => Some(()),
        _ => None,
    })
    .await;
    let after = api
        .get_participant("live", "alice")
        .await
        .expect("GetParticipant");
    assert!(
        after.tracks.iter().any(|t| t.sid == audio.sid && t.muted),
        "GetParticipant shows the track muted"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rx = |c: &Client| -> u64 { c.stats().track(&audio.sid).map(|t| t.rx.packets).sum() };
    let before = rx(&_bob);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = rx(&_bob) - before;
    assert!(
        during <= 2,
        "a muted track stops: bob got {during} packets in 1 s"
    );
    api.mute_published_track("live", "alice", &audio.sid, false)
        .await
        .expect("unmute");
    let before = rx(&_bob);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let resumed = rx(&_bob) - before;
    assert!(
        resumed >= 30,
        "unmuted audio flows again: {resumed} packets in 1 s"
    );

    // Metadata, name and attributes reach bob.
    let updated = api
        .update_participant(
            "live",
            "alice",
            UpdateParticipantOptions {
                metadata: "{\"role\":\"host\"}".into(),
                name: "Alice A.".into(),
                attributes: HashMap::from([("desk".to_string(), "7".to_string())]),
                permission: None,
            },
        )
        .await
        .expect("UpdateParticipant");
    assert_eq!(updated.metadata, "{\"role\":\"host\"}");
    let seen = signal(&mut bob_ev, "alice's new metadata at bob", |m| match m {
        lk::signal_response::Message::Update(u) => u
            .participants
            .iter()
            .find(|p| p.identity == "alice" && p.metadata == "{\"role\":\"host\"}")
            .cloned(),
        _ => None,
    })
    .await;
    assert_eq!(seen.name, "Alice A.");
    assert_eq!(seen.attributes.get("desk").map(String::as_str), Some("7"));

    // Room metadata reaches everyone.
    let room = api
        .update_room_metadata("live", "agenda: demo")
        .await
        .expect("UpdateRoomMetadata");
    assert_eq!(room.metadata, "agenda: demo");
    signal(&mut bob_ev, "room update at bob", |m| match m {
        lk::signal_response::Message::RoomUpdate(u)
            if u.room
                .as_ref()
                .is_some_and(|r| r.metadata == "agenda: demo") =>
        {
            Some(())
        }
        _ => None,
    })
    .await;

    // Data from the server reaches the one it is addressed to.
    api.send_data(
        "live",
        b"from the server".to_vec(),
        SendDataOptions {
            kind: lk::data_packet::Kind::Reliable,
            destination_identities: vec!["bob".into()],
            topic: Some("ops".into()),
            ..Default::default()
        },
    )
    .await
    .expect("SendData");
    let (payload, topic) = bob_ev
        .wait_for(Duration::from_secs(5), |e| match e {
            ClientEvent::DataReceived { payload, topic, .. } => {
                Some((payload.clone(), topic.clone()))
            }
            _ => None,
        })
        .await
        .expect("bob receives the server's data");
    assert_eq!(payload, b"from the server");
    assert_eq!(topic.as_deref(), Some("ops"));

    // Subscriptions: unsubscribe bob from alice's audio.
    api.update_subscriptions("live", "bob", vec![audio.sid.clone()], false)
        .await
        .expect("UpdateSubscriptions");

    // A removed participant is disconnected, and the others see it go.
    api.remove_participant("live", "bob")
        .await
        .expect("RemoveParticipant");
    let reason = bob_ev
        .wait_for(Duration::from_secs(5), |e| match e {
            ClientEvent::Left { reason, .. } => Some(*reason),
            _ => None,
        })
        .await
        .expect("bob is told to leave");
    assert_eq!(reason, lk::DisconnectReason::ParticipantRemoved);
    alice_ev
        .wait_for(Duration::from_secs(5), |e| match e {
            ClientEvent::ParticipantDisconnected { identity, .. } if identity == "bob" => Some(()),
            _ => None,
        })
        .await
        .expect("alice sees bob go");
    let err = api
        .get_participant("live", "bob")
        .await
        .expect_err("bob is gone");
    assert_eq!(twirp_code(&err), "not_found");

    // DeleteRoom disconnects everyone with ROOM_DELETED.
    api.delete_room("live").await.expect("DeleteRoom");
    let reason = alice_ev
        .wait_for(Duration::from_secs(5), |e| match e {
            ClientEvent::Left { reason, .. } => Some(*reason),
            _ => None,
        })
        .await
        .expect("alice is told the room is gone");
    assert_eq!(reason, lk::DisconnectReason::RoomDeleted);
    let err = api.list_participants("live").await.expect_err("room gone");
    assert_eq!(twirp_code(&err), "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_room_makes_an_empty_room_with_its_settings() {
    let server = common::start().await;
    let api = sdk(&server);
    let room = api
        .create_room(
            "planned",
            CreateRoomOptions {
                empty_timeout: 600,
                max_participants: 1,
                metadata: "standup".into(),
                ..Default::default()
            },
        )
        .await
        .expect("CreateRoom");
    assert_eq!(room.name, "planned");
    assert_eq!(room.metadata, "standup");
    assert_eq!(room.max_participants, 1);
    assert_eq!(room.empty_timeout, 600);
    let listed = api
        .list_rooms(vec!["planned".into()])
        .await
        .expect("ListRooms");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].num_participants, 0);
    assert_eq!(listed[0].sid, room.sid, "the same room, not a new one");

    // The first joiner sees the room's metadata; the second finds it full.
    let (first, _ev) = join(&server, "planned", "first").await;
    assert_eq!(
        first
            .join_response()
            .room
            .as_ref()
            .map(|r| r.metadata.as_str()),
        Some("standup")
    );
    let second = Client::connect(
        &server.url,
        &common::token("planned", "second"),
        ConnectOptions::default(),
    )
    .await;
    assert!(second.is_err(), "a full room refuses the next participant");
    api.delete_room("planned").await.expect("DeleteRoom");
    let rooms = api.list_rooms(vec![]).await.expect("ListRooms");
    assert!(
        rooms.iter().all(|r| r.name != "planned"),
        "deleted room is not listed"
    );
}
