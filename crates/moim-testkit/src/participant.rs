//! A LiveKit participant as the simulation plays it: two str0m
//! PeerConnections (`/rtc`: one to publish, one to receive) and just enough
//! of the signal protocol to publish a microphone and hear others.

use std::net::SocketAddr;
use std::time::Instant;

use moim_proto::lk::{self, signal_request::Message as Req, signal_response::Message as Resp};
use moim_server::room::{ConnectionId, ParticipantKey, SignalClose};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// The cid (client track id) the simulated microphone is announced with.
pub const MIC_CID: &str = "mic";
/// The cid of the simulated simulcast camera.
pub const CAMERA_CID: &str = "cam";
/// The camera's simulcast layers, low to high, as livekit-client names them.
pub const LAYERS: [&str; 3] = ["q", "h", "f"];
/// The camera sends a keyframe on each layer this often, unless asked sooner.
const KEYFRAME_EVERY: u64 = 100;

/// A video frame as a subscriber received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFrame {
    /// Which simulcast layer (index into [`LAYERS`]) it was sent on.
    pub layer: usize,
    pub keyframe: bool,
}

/// A VP8 frame that says which layer it belongs to. The SFU reads only the
/// payload header's P bit (0: keyframe); the rest is for the subscriber.
fn vp8_frame(layer: usize, keyframe: bool) -> Vec<u8> {
    let tag = if keyframe { 0x10 } else { 0x11 };
    vec![
        tag,
        0x00,
        0x00,
        0x9d,
        0x01,
        0x2a,
        0x40,
        0x01,
        0xf0,
        0x00,
        b'L',
        layer as u8,
    ]
}

fn read_vp8_frame(data: &[u8]) -> Option<VideoFrame> {
    match data {
        [tag, .., b'L', layer] if data.len() == 12 => Some(VideoFrame {
            layer: usize::from(*layer),
            keyframe: tag & 0x01 == 0,
        }),
        _ => None,
    }
}

pub struct Participant {
    pub identity: String,
    pub key: Option<ParticipantKey>,
    /// The signal connection in use; `None` once it closed or dropped.
    pub connection: Option<ConnectionId>,
    pub sid: String,
    /// Every signal message received, in order.
    pub received: Vec<Resp>,
    /// Why the server closed the signal connection, if it did.
    pub closed: Option<SignalClose>,
    /// Audio frames received on the subscriber PeerConnection.
    pub audio_heard: usize,
    /// Video frames received on the subscriber PeerConnection, in order.
    pub video_seen: Vec<VideoFrame>,
    pub publisher_connected: bool,
    pub subscriber_connected: bool,
    /// How loud the microphone is, in -dBov (RFC 6464: 0 is the loudest);
    /// `None` sends silence (127).
    pub voice: Option<u8>,
    /// Every this many datagrams to or from this participant, one is lost.
    pub lose_one_in: Option<u32>,
    datagrams: u64,
    publisher: Rtc,
    subscriber: Rtc,
    publisher_addr: SocketAddr,
    subscriber_addr: SocketAddr,
    pending_offer: Option<SdpPendingOffer>,
    mic: Option<Mid>,
    camera: Option<Mid>,
    /// Keyframes asked for by the SFU, per layer.
    keyframe_wanted: [bool; 3],
    /// Keyframe requests (PLI/FIR) the SFU sent this publisher, in all.
    pub keyframe_requests: usize,
    /// Subscriber sections video arrived on.
    video_mids: Vec<Mid>,
    offers_sent: u32,
    frames_sent: u64,
    video_frames_sent: u64,
}

impl Participant {
    /// `n` keeps the participant's addresses apart from everyone else's.
    pub fn new(identity: &str, n: u16, now: Instant) -> Self {
        let publisher_addr = SocketAddr::from(([10, 1, 0, 1], 10_000 + 2 * n));
        let subscriber_addr = SocketAddr::from(([10, 1, 0, 1], 10_001 + 2 * n));
        let pc = |addr| {
            let mut rtc = Rtc::builder().build(now);
            if let Ok(c) = Candidate::host(addr, "udp") {
                rtc.add_local_candidate(c);
            }
            rtc
        };
        Self {
            identity: identity.to_string(),
            key: None,
            connection: None,
            sid: String::new(),
            received: Vec::new(),
            closed: None,
            audio_heard: 0,
            video_seen: Vec::new(),
            publisher_connected: false,
            subscriber_connected: false,
            voice: None,
            lose_one_in: None,
            datagrams: 0,
            publisher: pc(publisher_addr),
            subscriber: pc(subscriber_addr),
            publisher_addr,
            subscriber_addr,
            pending_offer: None,
            mic: None,
            camera: None,
            keyframe_wanted: [false; 3],
            keyframe_requests: 0,
            video_mids: Vec::new(),
            offers_sent: 0,
            frames_sent: 0,
            video_frames_sent: 0,
        }
    }

    /// Counts a datagram on this participant's link; true if the link
    /// loses it.
    pub fn link_loses(&mut self) -> bool {
        self.datagrams += 1;
        self.lose_one_in
            .is_some_and(|n| n > 0 && self.datagrams.is_multiple_of(u64::from(n)))
    }

    pub fn owns(&self, addr: SocketAddr) -> bool {
        addr == self.publisher_addr || addr == self.subscriber_addr
    }

    /// What the client answers to a signal message, if anything.
    pub fn on_signal(&mut self, now: Instant, message: Resp) -> Option<Req> {
        let reply = match &message {
            Resp::Join(j) => {
                self.sid = j
                    .participant
                    .as_ref()
                    .map(|p| p.sid.clone())
                    .unwrap_or_default();
                None
            }
            Resp::Offer(sd) => {
                let offer = SdpOffer::from_sdp_string(&sd.sdp).ok()?;
                let answer = self.subscriber.sdp_api().accept_offer(offer).ok()?;
                Some(Req::Answer(lk::SessionDescription {
                    r#type: "answer".into(),
                    sdp: answer.to_sdp_string(),
                    id: sd.id,
                    ..Default::default()
                }))
            }
            Resp::Answer(sd) => {
                let answer = SdpAnswer::from_sdp_string(&sd.sdp).ok()?;
                let pending = self.pending_offer.take()?;
                let _ = self.publisher.sdp_api().accept_answer(pending, answer);
                None
            }
            Resp::TrackPublished(t) if t.cid == MIC_CID || t.cid == CAMERA_CID => {
                let camera = t.cid == CAMERA_CID;
                let mut api = self.publisher.sdp_api();
                let (kind, simulcast) = if camera {
                    let mut s = Simulcast::new();
                    for rid in LAYERS {
                        s.add_send_layer(SimulcastLayer::new(rid));
                    }
                    (MediaKind::Video, Some(s))
                } else {
                    (MediaKind::Audio, None)
                };
                let mid = api.add_media(
                    kind,
                    Direction::SendOnly,
                    Some("stream".into()),
                    Some(t.cid.clone()),
                    simulcast,
                );
                let (offer, pending) = api.apply()?;
                if camera {
                    self.camera = Some(mid);
                } else {
                    self.mic = Some(mid);
                }
                self.pending_offer = Some(pending);
                self.offers_sent += 1;
                Some(Req::Offer(lk::SessionDescription {
                    r#type: "offer".into(),
                    sdp: offer.to_sdp_string(),
                    id: self.offers_sent,
                    ..Default::default()
                }))
            }
            _ => None,
        };
        self.received.push(message);
        // str0m plans from the last time it was told.
        self.tick(now);
        reply
    }

    /// A datagram from the server to one of this participant's addresses.
    pub fn deliver(&mut self, now: Instant, server: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        let rtc = if to == self.publisher_addr {
            &mut self.publisher
        } else {
            &mut self.subscriber
        };
        if let Ok(r) = Receive::new(Protocol::Udp, server, to, bytes) {
            let _ = rtc.handle_input(Input::Receive(now, r));
        }
    }

    pub fn tick(&mut self, now: Instant) {
        let _ = self.publisher.handle_input(Input::Timeout(now));
        let _ = self.subscriber.handle_input(Input::Timeout(now));
    }

    /// Drains both PeerConnections: datagrams for the server (from, bytes),
    /// and the earliest time either wants to be woken.
    pub fn poll(&mut self, sent: &mut Vec<(SocketAddr, Vec<u8>)>) -> Option<Instant> {
        let mut next = None::<Instant>;
        for publishing in [true, false] {
            let rtc = if publishing {
                &mut self.publisher
            } else {
                &mut self.subscriber
            };
            loop {
                match rtc.poll_output() {
                    Ok(Output::Timeout(t)) => {
                        next = Some(next.map_or(t, |n| n.min(t)));
                        break;
                    }
                    Ok(Output::Transmit(t)) => sent.push((t.source, t.contents.to_vec())),
                    Ok(Output::Event(Event::Connected)) => {
                        if publishing {
                            self.publisher_connected = true;
                        } else {
                            self.subscriber_connected = true;
                        }
                    }
                    Ok(Output::Event(Event::MediaData(d))) => match read_vp8_frame(&d.data) {
                        Some(frame) => {
                            self.video_seen.push(frame);
                            if !self.video_mids.contains(&d.mid) {
                                self.video_mids.push(d.mid);
                            }
                        }
                        None => self.audio_heard += 1,
                    },
                    Ok(Output::Event(Event::KeyframeRequest(r))) => {
                        let layer = LAYERS
                            .iter()
                            .position(|l| r.rid.as_deref() == Some(*l))
                            .unwrap_or(0);
                        self.keyframe_wanted[layer] = true;
                        self.keyframe_requests += 1;
                    }
                    Ok(Output::Event(_)) => {}
                    Err(_) => break,
                }
            }
        }
        next
    }

    /// The subscriber lost a picture: a PLI on every video it receives.
    pub fn ask_for_keyframes(&mut self) {
        for mid in self.video_mids.clone() {
            if let Some(rx) = self.subscriber.direct_api().stream_rx_by_mid(mid, None) {
                rx.request_keyframe(str0m::media::KeyframeRequestKind::Pli);
            }
        }
    }

    /// Sends one 20 ms Opus frame, once the microphone's PeerConnection is up.
    pub fn speak(&mut self, now: Instant) {
        let Some(mid) = self.mic.filter(|_| self.publisher_connected) else {
            return;
        };
        let Some(writer) = self.publisher.writer(mid) else {
            return;
        };
        let Some(pt) = writer.payload_params().next().map(|p| p.pt()) else {
            return;
        };
        self.frames_sent += 1;
        let time = MediaTime::new(self.frames_sent * 960, Frequency::FORTY_EIGHT_KHZ);
        let writer = match self.voice {
            Some(dbov) => writer.audio_level(-(dbov.min(127) as i8), true),
            None => writer.audio_level(-127, false),
        };
        // The SFU never decodes Opus; any bytes will do.
        let _ = writer.write(pt, now, time, vec![0xf8, 0xff, 0xfe]);
    }

    /// Sends one frame on every camera layer: a keyframe when the SFU asked
    /// for one on that layer, or every [`KEYFRAME_EVERY`] frames.
    pub fn film(&mut self, now: Instant) {
        let Some(mid) = self.camera.filter(|_| self.publisher_connected) else {
            return;
        };
        self.video_frames_sent += 1;
        let n = self.video_frames_sent;
        let time = MediaTime::new(n * 3000, Frequency::NINETY_KHZ);
        for (layer, rid) in LAYERS.iter().enumerate() {
            let Some(writer) = self.publisher.writer(mid) else {
                return;
            };
            let Some(pt) = writer.payload_params().next().map(|p| p.pt()) else {
                return;
            };
            let keyframe =
                n % KEYFRAME_EVERY == 1 || std::mem::take(&mut self.keyframe_wanted[layer]);
            let _ = writer
                .rid((*rid).into())
                .write(pt, now, time, vp8_frame(layer, keyframe));
        }
    }

    /// The participant updates received about `identity`, in order.
    pub fn updates_about(&self, identity: &str) -> Vec<&lk::ParticipantInfo> {
        self.received
            .iter()
            .filter_map(|m| match m {
                Resp::Update(u) => Some(u.participants.iter()),
                _ => None,
            })
            .flatten()
            .filter(|p| p.identity == identity)
            .collect()
    }
}
