//! Two participants meet in a room: one publishes audio and VP8 video and
//! sends data, the other receives all of it; when the publisher leaves, the
//! other sees it go.

mod common;

use std::time::Duration;

use moim_client::{
    AudioOptions, Client, ClientEvent, ConnectOptions, FrameCodec, TrackKind, VideoCodec,
    VideoOptions,
};

async fn meet(codec: FrameCodec, video_codec: VideoCodec, simulcast: bool) {
    let server = common::start().await;
    let opts = ConnectOptions {
        codec,
        ..Default::default()
    };
    let (alice, mut alice_ev) =
        Client::connect(&server.url, &common::token("meet", "alice"), opts.clone())
            .await
            .expect("alice joins");
    let (bob, mut bob_ev) = Client::connect(&server.url, &common::token("meet", "bob"), opts)
        .await
        .expect("bob joins");
    assert!(alice.participant_sid().starts_with("PA_"));
    assert!(bob
        .join_response()
        .room
        .as_ref()
        .is_some_and(|r| r.sid.starts_with("RM_")));
    assert_eq!(
        bob.join_response().other_participants.len(),
        1,
        "bob sees alice in his join response"
    );

    let audio = alice
        .publish_audio(AudioOptions::default())
        .await
        .expect("audio published");
    let video = alice
        .publish_video(VideoOptions {
            codec: video_codec,
            simulcast,
            ..Default::default()
        })
        .await
        .expect("video published");
    assert!(audio.sid.starts_with("TR_") && video.sid.starts_with("TR_"));

    let got_video = bob_ev
        .wait_for(Duration::from_secs(10), |ev| match ev {
            ClientEvent::MediaReceived { track_sid, .. } if *track_sid == video.sid => Some(()),
            _ => None,
        })
        .await;
    assert!(got_video.is_ok(), "bob receives alice's video");

    alice
        .send_data(b"hello bob".to_vec(), true, vec![], Some("chat".into()))
        .await
        .expect("data sent");
    let data = bob_ev
        .wait_for(Duration::from_secs(5), |ev| match ev {
            ClientEvent::DataReceived {
                from_identity,
                payload,
                ..
            } => Some((from_identity.clone(), payload.clone())),
            _ => None,
        })
        .await
        .expect("bob receives the data packet");
    assert_eq!(data, ("alice".to_string(), b"hello bob".to_vec()));

    // Let media run until a second's worth has arrived (bob's downlink
    // estimate starts at 300 kbit/s, so a simulcast track may come on its
    // lowest layer first), then check what arrived. Bounded; the asserts
    // below say what was missing.
    let video_packets_now = || -> u64 {
        bob.stats()
            .track(&video.sid)
            .filter(|t| t.kind == TrackKind::Video)
            .map(|t| t.rx.packets)
            .sum()
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    common::eventually(Duration::from_secs(10), || video_packets_now() >= 100).await;
    let stats = bob.stats();
    let audio_rx: u64 = stats.track(&audio.sid).map(|t| t.rx.packets).sum();
    let video_rx: Vec<_> = stats
        .track(&video.sid)
        .filter(|t| t.kind == TrackKind::Video)
        .collect();
    assert!(
        audio_rx >= 50,
        "bob got {audio_rx} audio packets in over a second (50/s sent)"
    );
    let video_packets: u64 = video_rx.iter().map(|t| t.rx.packets).sum();
    let video_lost: u64 = video_rx.iter().map(|t| t.rx.lost).sum();
    assert!(
        video_packets >= 100,
        "bob got {video_packets} video packets"
    );
    assert!(
        video_lost * 100 <= video_packets,
        "loss on loopback stays under 1%: {video_lost}/{video_packets}"
    );
    // One subscriber stream per track, whatever the publisher's layer count.
    assert_eq!(
        video_rx.len(),
        1,
        "a simulcast track reaches a subscriber as one stream"
    );

    // An operator scraping /metrics sees how long the media plane held packets.
    let metrics = reqwest::get(format!("http://{}/metrics", server.http))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body");
    let passes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("moim_media_pass_seconds_count "))
        .and_then(|v| v.parse().ok())
        .expect("moim_media_pass_seconds_count in /metrics");
    assert!(
        passes >= 100,
        "the media plane timed {passes} loop passes while video flowed:\n{metrics}"
    );

    alice.leave().await.expect("alice leaves");
    let gone = bob_ev
        .wait_for(Duration::from_secs(3), |ev| match ev {
            ClientEvent::ParticipantDisconnected { identity, .. } if identity == "alice" => {
                Some(())
            }
            _ => None,
        })
        .await;
    assert!(gone.is_ok(), "bob sees alice leave");
    drop(alice_ev.drain());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_and_opus_reach_the_other_participant_over_protobuf_signaling() {
    meet(FrameCodec::Protobuf, VideoCodec::Vp8, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_reaches_the_other_participant_over_json_signaling() {
    meet(FrameCodec::Json, VideoCodec::H264, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulcast_publisher_reaches_a_subscriber_as_one_stream() {
    meet(FrameCodec::Protobuf, VideoCodec::Vp8, true).await;
}
