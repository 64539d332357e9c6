//! Whatever a client or the network throws at moim — forged tokens, garbage
//! frames, oversized frames, requests out of order, random UDP — it answers
//! clearly and keeps serving everyone else.

mod common;

use std::time::{Duration, SystemTime};

use moim_client::{AudioOptions, Client, ClientEvent, ConnectOptions, Error};
use moim_proto::lk;
use moim_proto::token::{self, VideoGrant};
use prost::Message as _;
use tokio_tungstenite::tungstenite::Message;

fn grant(room: &str) -> VideoGrant {
    VideoGrant {
        room_join: true,
        room: room.into(),
        ..Default::default()
    }
}

async fn refusal(url: &str, token: &str) -> (u16, String) {
    match Client::connect(url, token, ConnectOptions::default()).await {
        Err(Error::SignalRejected { status, body, .. }) => (status, body),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected an HTTP refusal, the join succeeded"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_roomless_tokens_get_401_saying_which() {
    let server = common::start().await;
    let now = SystemTime::now();
    let forged = token::mint(
        "devkey",
        "not-the-secret",
        "eve",
        grant("r"),
        Duration::from_secs(60),
        now,
    );
    let (status, body) = refusal(&server.url, &forged).await;
    assert_eq!(status, 401);
    assert!(body.contains("signature is invalid"), "{body}");

    let expired = token::mint(
        "devkey",
        "secret",
        "eve",
        grant("r"),
        Duration::from_secs(60),
        now - Duration::from_secs(7200),
    );
    let (status, body) = refusal(&server.url, &expired).await;
    assert_eq!(status, 401);
    assert!(body.contains("expired"), "{body}");

    let no_join = token::mint(
        "devkey",
        "secret",
        "eve",
        VideoGrant {
            room: "r".into(),
            ..Default::default()
        },
        Duration::from_secs(60),
        now,
    );
    let (status, body) = refusal(&server.url, &no_join).await;
    assert_eq!(status, 401);
    assert!(body.contains("roomJoin"), "{body}");

    let unknown = token::mint(
        "otherkey",
        "secret",
        "eve",
        grant("r"),
        Duration::from_secs(60),
        now,
    );
    let (status, body) = refusal(&server.url, &unknown).await;
    assert_eq!(status, 401);
    assert!(body.contains("otherkey"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_frames_are_answered_and_the_session_goes_on() {
    let server = common::start().await;
    let opts = ConnectOptions {
        forward_signal: true,
        ..Default::default()
    };
    let (alice, mut ev) = Client::connect(&server.url, &common::token("g", "alice"), opts)
        .await
        .expect("join");
    alice
        .send_raw_ws(Message::Binary(vec![0xff, 0xff, 0xff, 0x01].into()))
        .await
        .expect("send");
    let reply = ev
        .wait_for(Duration::from_secs(3), |e| match e {
            ClientEvent::Signal(m) => match m.as_ref() {
                lk::signal_response::Message::RequestResponse(r) => Some(r.message.clone()),
                _ => None,
            },
            _ => None,
        })
        .await
        .expect("a malformed frame gets a RequestResponse");
    assert!(reply.contains("protobuf"), "{reply}");

    alice
        .send_raw_ws(Message::Text("{this is not json".into()))
        .await
        .expect("send");
    // An empty request (no message set) is an unknown request.
    let empty = lk::SignalRequest { message: None }.encode_to_vec();
    alice
        .send_raw_ws(Message::Binary(empty.into()))
        .await
        .expect("send");
    // Out of order: a trickle and an answer before any offer.
    alice
        .send_signal(lk::SignalRequest {
            message: Some(lk::signal_request::Message::Trickle(lk::TrickleRequest {
                candidate_init: r#"{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host"}"#
                    .into(),
                target: 0,
                r#final: false,
            })),
        })
        .await
        .expect("send");
    alice
        .send_signal(lk::SignalRequest {
            message: Some(lk::signal_request::Message::Answer(
                lk::SessionDescription {
                    r#type: "answer".into(),
                    sdp: "v=0 garbage".into(),
                    ..Default::default()
                },
            )),
        })
        .await
        .expect("send");
    // The session still works: publishing succeeds.
    let track = alice
        .publish_audio(AudioOptions::default())
        .await
        .expect("publishing still works");
    assert!(track.sid.starts_with("TR_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_only_that_connection() {
    let server = common::start().await;
    let (big, mut big_ev) = Client::connect(
        &server.url,
        &common::token("o", "big"),
        ConnectOptions::default(),
    )
    .await
    .expect("join");
    // The server may close the socket while the client is still writing the
    // frame; then the write itself fails. Either way the connection ends.
    let sent = big
        .send_raw_ws(Message::Binary(vec![0u8; 3 * 1024 * 1024].into()))
        .await;
    if sent.is_ok() {
        big_ev
            .wait_for(Duration::from_secs(5), |e| {
                matches!(e, ClientEvent::SignalClosed { .. }).then_some(())
            })
            .await
            .expect("the server closes a connection that sends a 3 MiB frame");
    }
    let (other, _ev) = Client::connect(
        &server.url,
        &common::token("o", "other"),
        ConnectOptions::default(),
    )
    .await
    .expect("the server still accepts joins");
    assert!(other.participant_sid().starts_with("PA_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_udp_on_the_media_port_does_not_disturb_media() {
    let server = common::start().await;
    // Everyone is bound, so the publisher and both event streams live on.
    let common::AudioFlowing {
        alice: _alice,
        alice_ev: _alice_ev,
        bob,
        bob_ev: _bob_ev,
        track,
    } = common::audio_flowing(&server, "u").await;
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut seed: u32 = 0x1234_5678;
    for i in 0..2000u32 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let len = (seed % 1400) as usize + 1;
        let mut pkt: Vec<u8> = (0..len)
            .map(|j| (seed.wrapping_mul(j as u32 + i)) as u8)
            .collect();
        // Some look like STUN, RTP and DTLS to reach deeper parsers.
        match i % 4 {
            0 => pkt[0] = 0x00,
            1 => pkt[0] = 0x80,
            2 => pkt[0] = 0x16,
            _ => {}
        }
        let _ = junk.send_to(&pkt, server.udp);
    }
    let before: u64 = bob.stats().track(&track.sid).map(|t| t.rx.packets).sum();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after: u64 = bob.stats().track(&track.sid).map(|t| t.rx.packets).sum();
    assert!(
        after >= before + 25,
        "audio keeps flowing after the junk ({before} -> {after})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_twice_with_one_identity_replaces_the_older_connection() {
    let server = common::start().await;
    let (_first, mut first_ev) = Client::connect(
        &server.url,
        &common::token("d", "alice"),
        ConnectOptions::default(),
    )
    .await
    .expect("join");
    let (second, _ev) = Client::connect(
        &server.url,
        &common::token("d", "alice"),
        ConnectOptions::default(),
    )
    .await
    .expect("join again");
    let reason = first_ev
        .wait_for(Duration::from_secs(3), |e| match e {
            ClientEvent::Left { reason, .. } => Some(*reason),
            _ => None,
        })
        .await
        .expect("the older connection is told to leave");
    assert_eq!(reason, lk::DisconnectReason::DuplicateIdentity);
    assert!(
        second.join_response().other_participants.is_empty(),
        "the old alice is not listed as another participant"
    );
}
