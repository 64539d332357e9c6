//! The session driven by hand: made-up time, no sockets, the server played by the test.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use livekit_protocol::{self as proto, signal_request, signal_response, SignalResponse};
use str0m::change::SdpOffer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output as RtcOutput, Rtc};

use super::{Config, Output, RequestId, Session};
use crate::counters::{self, Shared};
use crate::error::Error;
use crate::event::{ClientEvent, LocalTrack, TrackKind};
use crate::media::AudioOptions;
use crate::peer::Target;
use crate::signal::FrameCodec;

const CONFIG: Config = Config {
    eager_publisher: false,
    ice_restart_on_resume: true,
    forward_signal: false,
};

// Never bound: the session only writes these into its candidates.
fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn join(ping_interval: i32, ping_timeout: i32) -> proto::JoinResponse {
    proto::JoinResponse {
        participant: Some(proto::ParticipantInfo {
            sid: "PA_me".into(),
            identity: "me".into(),
            ..Default::default()
        }),
        other_participants: vec![proto::ParticipantInfo {
            sid: "PA_bob".into(),
            identity: "bob".into(),
            state: proto::participant_info::State::Active as i32,
            tracks: vec![proto::TrackInfo {
                sid: "TR_bob_mic".into(),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ping_interval,
        ping_timeout,
        ..Default::default()
    }
}

fn session(now: Instant, join: &proto::JoinResponse) -> (Session, Shared) {
    let shared = Shared::default();
    let s =
        Session::new(now, CONFIG, join, addr(40000), addr(40001), shared.clone()).expect("session");
    (s, shared)
}

fn drain(s: &mut Session) -> Vec<Output> {
    std::iter::from_fn(|| s.poll_output()).collect()
}

fn signals(outs: &[Output]) -> Vec<&signal_request::Message> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Signal(r) => r.message.as_ref(),
            _ => None,
        })
        .collect()
}

fn events(outs: &[Output]) -> Vec<&ClientEvent> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn server(m: signal_response::Message) -> SignalResponse {
    SignalResponse { message: Some(m) }
}

/// The `AddTrackRequest` a publish asked for.
fn add_track(outs: &[Output]) -> proto::AddTrackRequest {
    match signals(outs).as_slice() {
        [signal_request::Message::AddTrack(a)] => a.clone(),
        other => panic!("expected one AddTrack, got {other:?}"),
    }
}

#[test]
fn join_announces_the_others_tracks_and_a_publish_is_offered_then_answered() {
    let t0 = Instant::now();
    let (mut s, shared) = session(t0, &join(0, 0));

    let outs = drain(&mut s);
    assert!(
        signals(&outs).is_empty(),
        "nothing is negotiated before a publish"
    );
    match events(&outs).as_slice() {
        [ClientEvent::TrackPublished {
            participant_sid,
            participant_identity,
            track,
        }] => {
            assert_eq!(participant_sid, "PA_bob");
            assert_eq!(participant_identity, "bob");
            assert_eq!(track.sid, "TR_bob_mic");
        }
        other => panic!("expected bob's track, got {other:?}"),
    }

    s.publish_audio(t0, RequestId(7), &AudioOptions::default());
    let add = add_track(&drain(&mut s));
    assert_eq!(add.r#type, proto::TrackType::Audio as i32);

    s.handle_signal(
        t0,
        FrameCodec::Protobuf,
        server(signal_response::Message::TrackPublished(
            proto::TrackPublishedResponse {
                cid: add.cid.clone(),
                track: Some(proto::TrackInfo {
                    sid: "TR_mine".into(),
                    ..Default::default()
                }),
            },
        )),
    );
    let outs = drain(&mut s);
    let (offer, trickle) = match signals(&outs).as_slice() {
        [signal_request::Message::Offer(o), signal_request::Message::Trickle(t)] => {
            ((*o).clone(), (*t).clone())
        }
        other => panic!("expected an offer and our candidate, got {other:?}"),
    };
    assert_eq!(offer.r#type, "offer");
    assert!(offer.sdp.contains("m=audio"), "{}", offer.sdp);
    assert!(offer.sdp.contains("a=msid:PA_me|TR_mine"), "{}", offer.sdp);
    assert!(offer.sdp.contains("webrtc-datachannel"), "{}", offer.sdp);
    assert_eq!(
        offer.mid_to_track_id.values().collect::<Vec<_>>(),
        vec!["TR_mine"]
    );
    assert_eq!(trickle.target, Target::Publisher as i32);
    assert!(trickle.candidate_init.contains("127.0.0.1 40000"));
    assert_eq!(counters::lock(&shared).frames_binary, 1);

    // The server's side of the publisher PC.
    let mut srv = Rtc::builder()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .build(t0);
    srv.add_local_candidate(Candidate::host(addr(50000), "udp").expect("candidate"));
    let answer = srv
        .sdp_api()
        .accept_offer(SdpOffer::from_sdp_string(&offer.sdp).expect("our offer parses"))
        .expect("server accepts our offer");
    s.handle_signal(
        t0,
        FrameCodec::Protobuf,
        server(signal_response::Message::Answer(
            proto::SessionDescription {
                r#type: "answer".into(),
                sdp: answer.to_sdp_string(),
                id: offer.id,
                mid_to_track_id: Default::default(),
            },
        )),
    );
    let outs = drain(&mut s);
    let published: Vec<_> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Published(id, r) => Some((*id, r)),
            _ => None,
        })
        .collect();
    let [(RequestId(7), Ok(track))] = published.as_slice() else {
        panic!("expected publication 7 to succeed, got {published:?}");
    };
    assert_eq!(track.sid, "TR_mine");
    assert_eq!(track.kind, TrackKind::Audio);
    let [(None, ssrc)] = track.ssrcs.as_slice() else {
        panic!("one layer without rid: {:?}", track.ssrcs);
    };
    assert_ne!(*ssrc, 0);
    assert!(counters::lock(&shared).tx.contains_key(ssrc));
}

#[test]
fn pings_go_out_every_interval_and_a_silent_server_is_reported_once() {
    let t0 = Instant::now();
    let (mut s, _) = session(t0, &join(5, 15));
    drain(&mut s);

    let mut now = t0;
    let mut pings = Vec::new();
    let mut warnings = Vec::new();
    for _ in 0..10_000 {
        now = s.poll_timeout(now).max(now);
        if now > t0 + Duration::from_secs(26) {
            break;
        }
        s.handle_timeout(now);
        let outs = drain(&mut s);
        for m in signals(&outs) {
            match m {
                signal_request::Message::Ping(_) => pings.push(now - t0),
                signal_request::Message::PingReq(_) => {}
                other => panic!("only pings expected, got {other:?}"),
            }
        }
        for e in events(&outs) {
            if let ClientEvent::Error(msg) = e {
                warnings.push((now - t0, msg.clone()));
            }
        }
        // Nothing else is due before the next ping, so the clock jumps straight to it.
        if s.poll_timeout(now) <= now {
            now += Duration::from_millis(1);
        }
    }
    let secs = |n: u64| Duration::from_secs(n);
    assert_eq!(pings, [0, 5, 10, 15, 20, 25].map(secs));
    // At 15 s the server has been silent exactly ping_timeout, which is still fine.
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].0, secs(20));
    assert!(warnings[0]
        .1
        .contains("no signal message from the server for 20 s"));
}

#[test]
fn a_pong_sets_the_rtt_the_next_ping_carries() {
    let t0 = Instant::now();
    let (mut s, shared) = session(t0, &join(5, 0));
    s.handle_timeout(t0);
    let outs = drain(&mut s);
    let Some(signal_request::Message::PingReq(p)) = signals(&outs).get(1).copied() else {
        panic!("expected ping then ping_req, got {:?}", signals(&outs));
    };
    assert_eq!(p.rtt, 0);
    s.handle_signal(
        t0 + Duration::from_millis(30),
        FrameCodec::Json,
        server(signal_response::Message::PongResp(proto::Pong {
            last_ping_timestamp: p.timestamp - 40,
            timestamp: p.timestamp,
        })),
    );
    let rtt = counters::lock(&shared).signal_rtt.expect("rtt");
    assert!(rtt >= Duration::from_millis(40), "{rtt:?}");
    assert_eq!(counters::lock(&shared).frames_text, 1);
    s.handle_timeout(t0 + Duration::from_secs(5));
    let outs = drain(&mut s);
    let Some(signal_request::Message::PingReq(p)) = signals(&outs).get(1).copied() else {
        panic!("expected the second ping_req, got {:?}", signals(&outs));
    };
    assert_eq!(p.rtt, rtt.as_millis() as i64);
}

#[test]
fn leave_from_the_server_is_reported_as_left() {
    let t0 = Instant::now();
    let (mut s, _) = session(t0, &join(0, 0));
    drain(&mut s);
    s.handle_signal(
        t0,
        FrameCodec::Protobuf,
        server(signal_response::Message::Leave(proto::LeaveRequest {
            can_reconnect: true,
            reason: proto::DisconnectReason::ServerShutdown as i32,
            action: proto::leave_request::Action::Resume as i32,
            regions: None,
        })),
    );
    let outs = drain(&mut s);
    match events(&outs).as_slice() {
        [ClientEvent::Left {
            reason,
            action,
            can_reconnect,
        }] => {
            assert_eq!(*reason, proto::DisconnectReason::ServerShutdown);
            assert_eq!(*action, proto::leave_request::Action::Resume);
            assert!(can_reconnect);
        }
        other => panic!("expected Left, got {other:?}"),
    }
}

#[test]
fn without_a_websocket_nothing_is_sent_and_a_publish_fails_at_once() {
    let t0 = Instant::now();
    let (mut s, _) = session(t0, &join(5, 15));
    drain(&mut s);
    s.handle_signal_closed(t0, "closed by server (1000): bye".into());
    let outs = drain(&mut s);
    assert!(matches!(
        events(&outs).as_slice(),
        [ClientEvent::SignalClosed { reason }] if reason.contains("bye")
    ));

    s.handle_timeout(t0 + Duration::from_secs(30));
    let outs = drain(&mut s);
    assert!(signals(&outs).is_empty(), "no pings without a WebSocket");
    assert!(events(&outs).is_empty(), "no silence warning either");

    s.publish_audio(t0, RequestId(1), &AudioOptions::default());
    let outs = drain(&mut s);
    assert!(matches!(
        outs.as_slice(),
        [Output::Published(RequestId(1), Err(Error::InvalidState(_)))]
    ));
}

#[test]
fn an_add_track_that_could_not_be_sent_fails_its_publish_and_other_failures_are_events() {
    let t0 = Instant::now();
    let (mut s, _) = session(t0, &join(0, 0));
    drain(&mut s);
    s.publish_audio(t0, RequestId(3), &AudioOptions::default());
    let add = add_track(&drain(&mut s));
    let req = proto::SignalRequest {
        message: Some(signal_request::Message::AddTrack(add.clone())),
    };
    s.handle_signal_send_failed(req.clone(), Error::Closed("gone".into()));
    let outs = drain(&mut s);
    assert!(
        matches!(
            outs.as_slice(),
            [Output::Published(RequestId(3), Err(Error::Closed(_)))]
        ),
        "{outs:?}"
    );
    // The same request again: its publication is no longer pending.
    s.handle_signal_send_failed(req, Error::Closed("gone".into()));
    let outs = drain(&mut s);
    assert!(
        matches!(events(&outs).as_slice(), [ClientEvent::Error(e)] if e.contains("gone")),
        "{outs:?}"
    );
}

#[test]
fn a_server_offer_is_answered_and_its_tracks_are_known_by_mid() {
    let t0 = Instant::now();
    let (mut s, _) = session(t0, &join(0, 0));
    drain(&mut s);
    let mut srv = Rtc::builder()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .build(t0);
    let mut api = srv.sdp_api();
    let mid = api.add_media(
        MediaKind::Audio,
        Direction::SendOnly,
        Some("PA_bob|TR_bob_mic".into()),
        Some("TR_bob_mic".into()),
        None,
    );
    let Some((offer, _pending)) = api.apply() else {
        panic!("server offer");
    };
    s.handle_signal(
        t0,
        FrameCodec::Protobuf,
        server(signal_response::Message::Offer(proto::SessionDescription {
            r#type: "offer".into(),
            sdp: offer.to_sdp_string(),
            id: 4,
            mid_to_track_id: Default::default(),
        })),
    );
    let outs = drain(&mut s);
    match signals(&outs).as_slice() {
        [signal_request::Message::Answer(a), signal_request::Message::Trickle(t)] => {
            assert_eq!(a.id, 4);
            assert!(a.sdp.contains("a=recvonly"), "{}", a.sdp);
            assert_eq!(t.target, Target::Subscriber as i32);
            assert!(t.candidate_init.contains("127.0.0.1 40001"));
        }
        other => panic!("expected an answer and our candidate, got {other:?}"),
    }
    let track = s.remote.track_at(&mid.to_string());
    assert_eq!(track.participant_sid, "PA_bob");
    assert_eq!(track.track_sid, "TR_bob_mic");
    assert_eq!(s.remote.subscribed_track_sids(), ["TR_bob_mic"]);
}

#[test]
fn a_resume_is_settled_by_the_first_message_and_syncs_state() {
    let t0 = Instant::now();
    let (mut s, _) = session(t0, &join(0, 0));
    drain(&mut s);
    s.signal_detached(t0);
    s.signal_resumed(t0);
    assert!(drain(&mut s).is_empty(), "the resume waits for the server");
    s.handle_signal(
        t0,
        FrameCodec::Protobuf,
        server(signal_response::Message::Reconnect(
            proto::ReconnectResponse::default(),
        )),
    );
    let outs = drain(&mut s);
    assert!(matches!(
        events(&outs).as_slice(),
        [ClientEvent::Reconnected(_)]
    ));
    assert!(matches!(
        signals(&outs).as_slice(),
        [signal_request::Message::SyncState(_)]
    ));
    // Only the first message settles it.
    s.handle_signal(
        t0,
        FrameCodec::Protobuf,
        server(signal_response::Message::Reconnect(
            proto::ReconnectResponse::default(),
        )),
    );
    assert!(drain(&mut s).is_empty());
}

#[test]
fn closing_stops_the_session() {
    let t0 = Instant::now();
    let (mut s, _) = session(t0, &join(5, 15));
    drain(&mut s);
    assert!(!s.is_closed());
    s.close(t0);
    assert!(s.is_closed());
    drain(&mut s);
    s.handle_timeout(t0 + Duration::from_secs(5));
    assert!(signals(&drain(&mut s)).is_empty());
}

/// The whole publish path on an in-memory network: ICE, DTLS and SRTP run between the session
/// and a str0m peer standing in for the server, in virtual time.
#[test]
fn a_published_track_connects_and_sends_media_with_no_sockets() {
    let t0 = Instant::now();
    let (mut s, shared) = session(t0, &join(0, 0));
    drain(&mut s);
    s.publish_audio(t0, RequestId(1), &AudioOptions::default());
    let add = add_track(&drain(&mut s));
    s.handle_signal(
        t0,
        FrameCodec::Protobuf,
        server(signal_response::Message::TrackPublished(
            proto::TrackPublishedResponse {
                cid: add.cid,
                track: Some(proto::TrackInfo {
                    sid: "TR_mine".into(),
                    ..Default::default()
                }),
            },
        )),
    );
    let outs = drain(&mut s);
    let [signal_request::Message::Offer(offer), signal_request::Message::Trickle(trickle)] =
        signals(&outs).as_slice()
    else {
        panic!(
            "expected an offer and our candidate, got {:?}",
            signals(&outs)
        );
    };
    let srv_addr = addr(50000);
    let mut srv = Rtc::builder()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .build(t0);
    srv.add_local_candidate(Candidate::host(srv_addr, "udp").expect("candidate"));
    let init: serde_json::Value =
        serde_json::from_str(&trickle.candidate_init).expect("candidate_init");
    let line = init["candidate"].as_str().expect("candidate line");
    srv.add_remote_candidate(Candidate::from_sdp_string(line).expect("our candidate parses"));
    let answer = srv
        .sdp_api()
        .accept_offer(SdpOffer::from_sdp_string(&offer.sdp).expect("offer parses"))
        .expect("accept");
    s.handle_signal(
        t0,
        FrameCodec::Protobuf,
        server(signal_response::Message::Answer(
            proto::SessionDescription {
                r#type: "answer".into(),
                sdp: answer.to_sdp_string(),
                id: offer.id,
                mid_to_track_id: Default::default(),
            },
        )),
    );

    let mut now = t0;
    let mut srv_next;
    let mut connected = false;
    let mut track = None;
    let mut rtp = 0;
    while rtp < 10 && now < t0 + Duration::from_secs(10) {
        for o in drain(&mut s) {
            match o {
                Output::Transmit(Target::Publisher, t) => {
                    let rx = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)
                        .expect("a datagram str0m reads");
                    srv.handle_input(Input::Receive(now, rx))
                        .expect("server input");
                }
                Output::Event(ClientEvent::PeerConnected(Target::Publisher)) => connected = true,
                Output::Published(_, r) => track = Some(r.expect("published")),
                _ => {}
            }
        }
        loop {
            match srv.poll_output().expect("server output") {
                RtcOutput::Timeout(t) => {
                    srv_next = t;
                    break;
                }
                RtcOutput::Transmit(t) => {
                    s.handle_datagram(now, Target::Publisher, t.source, &t.contents)
                }
                RtcOutput::Event(Event::RtpPacket(p)) => {
                    let ssrcs = track.as_ref().map(|t: &LocalTrack| t.ssrcs.clone());
                    assert_eq!(ssrcs, Some(vec![(None, *p.header.ssrc)]));
                    rtp += 1;
                }
                RtcOutput::Event(_) => {}
            }
        }
        let next = s.poll_timeout(now).min(srv_next);
        now = next.max(now + Duration::from_micros(100));
        s.handle_timeout(now);
        if srv_next <= now {
            srv.handle_input(Input::Timeout(now))
                .expect("server timeout");
        }
    }
    assert!(connected, "the publisher PC never connected");
    assert_eq!(
        rtp,
        10,
        "the server got {rtp} RTP packets by {:?}",
        now - t0
    );
    let ssrc = track.expect("published").ssrcs[0].1;
    let sent = counters::lock(&shared).tx[&ssrc].packets;
    assert!(sent >= 10, "{sent} packets counted as sent");
}
