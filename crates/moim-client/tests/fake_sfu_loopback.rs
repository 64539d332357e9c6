//! The client against a minimal in-process stand-in for the server: a WebSocket that speaks
//! just enough LiveKit signalling, and two ICE-lite str0m peers. This proves the client's real
//! WebRTC path (ICE, DTLS, SRTP, SCTP) in both directions without moim's server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use livekit_protocol::{self as proto, signal_request, signal_response, SignalResponse};
use moim_client::{
    probe, AudioOptions, Client, ClientEvent, ConnectOptions, FrameCodec, Target, VideoOptions,
};
use prost::Message as _;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::channel::ChannelConfig;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::{TcpListener, UdpSocket};
use tokio_tungstenite::tungstenite::Message;

#[derive(Default, Debug)]
struct Seen {
    rtp_by_ssrc: HashMap<u32, u64>,
    probes: u64,
    data: Vec<Vec<u8>>,
    offers: u32,
}

struct SrvPeer {
    rtc: Rtc,
    sock: Arc<UdpSocket>,
    local: SocketAddr,
    next: Instant,
}

impl SrvPeer {
    async fn new() -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let local = sock.local_addr().expect("addr");
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").expect("cand"));
        Self {
            rtc,
            sock: Arc::new(sock),
            local,
            next: Instant::now(),
        }
    }

    fn drive(&mut self, out: &mut Vec<Event>) {
        loop {
            match self.rtc.poll_output().expect("poll") {
                Output::Timeout(t) => {
                    self.next = t;
                    return;
                }
                Output::Transmit(t) => {
                    let _ = self.sock.try_send_to(&t.contents, t.destination);
                }
                Output::Event(e) => out.push(e),
            }
        }
    }
}

fn resp(m: signal_response::Message) -> SignalResponse {
    SignalResponse { message: Some(m) }
}

/// Serves one client connection until the socket closes.
async fn fake_server(listener: TcpListener, seen: Arc<Mutex<Seen>>) {
    let (tcp, _) = listener.accept().await.expect("accept");
    let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("ws");
    let mut json = false;
    let send = |json: bool, r: SignalResponse| {
        if json {
            FrameCodec::Json.encode_response(&r).expect("enc")
        } else {
            FrameCodec::Protobuf.encode_response(&r).expect("enc")
        }
    };
    let join = proto::JoinResponse {
        room: Some(proto::Room {
            name: "fake".into(),
            ..Default::default()
        }),
        participant: Some(proto::ParticipantInfo {
            sid: "PA_me".into(),
            identity: "alice".into(),
            ..Default::default()
        }),
        other_participants: vec![proto::ParticipantInfo {
            sid: "PA_other".into(),
            identity: "bob".into(),
            state: proto::participant_info::State::Active as i32,
            ..Default::default()
        }],
        server_info: Some(proto::ServerInfo {
            version: "0.0.0-fake".into(),
            ..Default::default()
        }),
        subscriber_primary: true,
        ping_interval: 1,
        ping_timeout: 5,
        ..Default::default()
    };
    ws.send(send(false, resp(signal_response::Message::Join(join))))
        .await
        .expect("send join");

    let mut publ = SrvPeer::new().await;
    let mut sub = SrvPeer::new().await;
    // Subscriber PC: one audio track from "bob" and the server-opened _reliable channel.
    let mut api = sub.rtc.sdp_api();
    let mid = api.add_media(
        MediaKind::Audio,
        Direction::SendOnly,
        Some("PA_other|TR_remote".into()),
        Some("TR_remote".into()),
        None,
    );
    let chan = api.add_channel_with_config(ChannelConfig {
        label: "_reliable".into(),
        ..Default::default()
    });
    let (offer, pending) = api.apply().expect("offer");
    let mut pending = Some(pending);
    ws.send(send(
        false,
        resp(signal_response::Message::Offer(proto::SessionDescription {
            r#type: "offer".into(),
            sdp: offer.to_sdp_string(),
            id: 1,
            mid_to_track_id: [(mid.to_string(), "TR_remote".to_string())].into(),
        })),
    ))
    .await
    .expect("offer");

    let (mut pb, mut sb) = (vec![0u8; 2000], vec![0u8; 2000]);
    let mut events = Vec::new();
    let mut seq: u64 = 1;
    let mut next_audio = Instant::now();
    let mut sent_data = false;
    let mut sub_connected = false;
    loop {
        let deadline = publ.next.min(sub.next).min(next_audio).max(Instant::now());
        let (ps, ss) = (publ.sock.clone(), sub.sock.clone());
        tokio::select! {
            m = ws.next() => {
                let Some(Ok(m)) = m else { return };
                if matches!(m, Message::Text(_)) { json = true; }
                let Ok(Some(req)) = moim_client::signal::decode_request(&m) else { continue };
                match req.message {
                    Some(signal_request::Message::AddTrack(a)) => {
                        let info = proto::TrackInfo { sid: format!("TR_{}", a.cid.len()), r#type: a.r#type, name: a.name, ..Default::default() };
                        let r = resp(signal_response::Message::TrackPublished(proto::TrackPublishedResponse { cid: a.cid, track: Some(info) }));
                        ws.send(send(json, r)).await.expect("send");
                    }
                    Some(signal_request::Message::Offer(o)) => {
                        seen.lock().expect("lock").offers += 1;
                        let offer = SdpOffer::from_sdp_string(&o.sdp).expect("client offer parses");
                        let answer = publ.rtc.sdp_api().accept_offer(offer).expect("accept");
                        let r = resp(signal_response::Message::Answer(proto::SessionDescription { r#type: "answer".into(), sdp: answer.to_sdp_string(), id: o.id, mid_to_track_id: HashMap::new() }));
                        ws.send(send(json, r)).await.expect("send");
                    }
                    Some(signal_request::Message::Answer(a)) => {
                        let answer = SdpAnswer::from_sdp_string(&a.sdp).expect("client answer parses");
                        if let Some(p) = pending.take() {
                            sub.rtc.sdp_api().accept_answer(p, answer).expect("accept answer");
                        }
                    }
                    Some(signal_request::Message::Trickle(t)) => {
                        let v: serde_json::Value = serde_json::from_str(&t.candidate_init).expect("candidateInit JSON");
                        let c = Candidate::from_sdp_string(v["candidate"].as_str().expect("candidate")).expect("parse");
                        if t.target == 0 { publ.rtc.add_remote_candidate(c) } else { sub.rtc.add_remote_candidate(c) }
                    }
                    Some(signal_request::Message::PingReq(p)) => {
                        let r = resp(signal_response::Message::PongResp(proto::Pong { last_ping_timestamp: p.timestamp, timestamp: p.timestamp }));
                        ws.send(send(json, r)).await.expect("send");
                    }
                    _ => {}
                }
            }
            r = ps.recv_from(&mut pb) => {
                let (n, from) = r.expect("udp");
                if let Ok(rx) = Receive::new(Protocol::Udp, from, publ.local, &pb[..n]) {
                    publ.rtc.handle_input(Input::Receive(Instant::now(), rx)).expect("input");
                }
            }
            r = ss.recv_from(&mut sb) => {
                let (n, from) = r.expect("udp");
                if let Ok(rx) = Receive::new(Protocol::Udp, from, sub.local, &sb[..n]) {
                    sub.rtc.handle_input(Input::Receive(Instant::now(), rx)).expect("input");
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
        let now = Instant::now();
        publ.rtc.handle_input(Input::Timeout(now)).expect("timeout");
        sub.rtc.handle_input(Input::Timeout(now)).expect("timeout");
        if sub_connected && now >= next_audio {
            next_audio = now + Duration::from_millis(20);
            let mut payload = vec![0x78];
            probe::write_block(&mut payload, probe::now_micros());
            payload.resize(100, 0);
            let pt = sub.rtc.media(mid).expect("media").remote_pts()[0];
            if let Some(tx) = sub.rtc.direct_api().stream_tx_by_mid(mid, None) {
                tx.write_rtp(RtpWrite::new(
                    pt,
                    seq.into(),
                    (seq * 960) as u32,
                    now,
                    payload,
                ));
                seq += 1;
            }
        } else if !sub_connected {
            next_audio = now + Duration::from_millis(20);
        }
        publ.drive(&mut events);
        for e in events.drain(..) {
            match e {
                Event::RtpPacket(p) => {
                    let mut s = seen.lock().expect("lock");
                    *s.rtp_by_ssrc.entry(*p.header.ssrc).or_default() += 1;
                    s.probes += u64::from(probe::read_block(&p.payload).is_some());
                }
                Event::ChannelData(d) => seen.lock().expect("lock").data.push(d.data),
                _ => {}
            }
        }
        sub.drive(&mut events);
        for e in events.drain(..) {
            match e {
                Event::Connected => sub_connected = true,
                Event::ChannelOpen(id, _) if id == chan && !sent_data => {
                    sent_data = true;
                    #[allow(deprecated)]
                    let pkt = proto::DataPacket {
                        participant_identity: "bob".into(),
                        participant_sid: "PA_other".into(),
                        value: Some(proto::data_packet::Value::User(proto::UserPacket {
                            payload: b"hello from bob".to_vec(),
                            topic: Some("chat".into()),
                            ..Default::default()
                        })),
                        ..Default::default()
                    };
                    sub.rtc
                        .channel(id)
                        .expect("chan")
                        .write(true, &pkt.encode_to_vec())
                        .expect("write");
                }
                _ => {}
            }
        }
        sub.drive(&mut events);
        events.clear();
    }
}

async fn run_session(codec: FrameCodec) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let server = tokio::spawn(fake_server(listener, seen.clone()));

    let opts = ConnectOptions {
        codec,
        ..ConnectOptions::default()
    };
    let (client, mut events) = Client::connect(&url, "not-checked", opts)
        .await
        .expect("connect");
    assert_eq!(client.participant_sid(), "PA_me");
    assert_eq!(client.room_name(), "fake");

    // The server-offered subscriber PC comes up and bob's audio flows to us.
    let t = Duration::from_secs(10);
    let (psid, tsid) = events
        .wait_for(t, |e| match e {
            ClientEvent::TrackSubscribed {
                participant_sid,
                track_sid,
                ..
            } => Some((participant_sid.clone(), track_sid.clone())),
            _ => None,
        })
        .await
        .expect("track subscribed");
    assert_eq!((psid.as_str(), tsid.as_str()), ("PA_other", "TR_remote"));
    let data = events
        .wait_for(t, |e| match e {
            ClientEvent::DataReceived {
                from_identity,
                payload,
                topic,
                via,
                ..
            } => Some((from_identity.clone(), payload.clone(), topic.clone(), *via)),
            _ => None,
        })
        .await
        .expect("data from the server's subscriber channel");
    assert_eq!(
        data,
        (
            "bob".into(),
            b"hello from bob".to_vec(),
            Some("chat".into()),
            Target::Subscriber
        )
    );

    // Publish audio and VP8 simulcast; send data over the publisher channel.
    let audio = client
        .publish_audio(AudioOptions::default())
        .await
        .expect("audio");
    let video = client
        .publish_video(VideoOptions {
            simulcast: true,
            ..VideoOptions::default()
        })
        .await
        .expect("video");
    assert_eq!(
        video.ssrcs.len(),
        3,
        "q, h, f each get an SSRC: {:?}",
        video.ssrcs
    );
    client
        .send_data(b"hi from alice".to_vec(), true, vec![], Some("chat".into()))
        .await
        .expect("data");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let stats = client.stats();
    let rx = stats.track("TR_remote").next().expect("rx stats").rx;
    assert!(rx.packets >= 30, "received {rx:?}");
    assert_eq!(rx.lost, 0);
    let lat = rx.latency.expect("latency measured");
    assert!(lat.max < Duration::from_millis(200), "{lat:?}");
    assert!(stats.signal_rtt.is_some(), "ping_req/pong_resp round trip");
    if codec == FrameCodec::Json {
        assert!(
            stats.signal_frames_text > 0,
            "server answered JSON with JSON"
        );
    }

    let sent = client.stats().sent;
    let got = {
        let s = seen.lock().expect("lock");
        let audio_ssrc = audio.ssrcs[0].1;
        assert!(
            s.rtp_by_ssrc.get(&audio_ssrc).copied().unwrap_or(0) >= 40,
            "{s:?}"
        );
        for (_, ssrc) in &video.ssrcs {
            assert!(
                s.rtp_by_ssrc.get(ssrc).copied().unwrap_or(0) >= 20,
                "layer {ssrc}: {s:?}"
            );
        }
        assert_eq!(
            s.probes,
            s.rtp_by_ssrc.values().sum::<u64>(),
            "every packet carries a probe"
        );
        assert!(sent.iter().all(|x| x.packets > 0), "{sent:?}");
        s.data
            .iter()
            .filter_map(|d| proto::DataPacket::decode(d.as_slice()).ok())
            .find_map(|p| match p.value {
                Some(proto::data_packet::Value::User(u)) => {
                    Some((p.participant_identity, u.payload))
                }
                _ => None,
            })
    };
    assert_eq!(got, Some(("alice".into(), b"hi from alice".to_vec())));

    client.leave().await.expect("leave");
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_and_subscribes_through_a_fake_sfu_with_protobuf_frames() {
    run_session(FrameCodec::Protobuf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_mode_gets_json_answers() {
    run_session(FrameCodec::Json).await;
}
