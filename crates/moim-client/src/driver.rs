//! The task behind a [`crate::Client`]: one loop that owns the WebSocket and both `Rtc`s.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use livekit_protocol::{self as proto, signal_request, signal_response, SignalRequest};
use prost::Message as _;
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt, Rid, Simulcast, SimulcastLayer};
use str0m::rtp::RtpWrite;
use str0m::Event;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::counters::{RxEntry, SentStats, Shared, SharedStats};
use crate::error::{Error, Result};
use crate::event::{ClientEvent, LocalTrack, TrackKind};
use crate::media::{AudioOptions, LayerGen, PayloadKind, VideoCodec, VideoOptions};
use crate::options::ConnectOptions;
use crate::peer::{msids_by_mid, Peer, Target};
use crate::probe;
use crate::signal::{self, FrameCodec, RtcParams, WsStream};
use crate::stats::RtpReceiveStats;

type Reply<T> = oneshot::Sender<Result<T>>;

#[allow(clippy::large_enum_variant)] // one command at a time; boxing buys nothing
pub(crate) enum Command {
    PublishAudio(AudioOptions, Reply<LocalTrack>),
    PublishVideo(VideoOptions, Reply<LocalTrack>),
    SendData {
        payload: Vec<u8>,
        reliable: bool,
        destination_identities: Vec<String>,
        topic: Option<String>,
        reply: Reply<()>,
    },
    Signal(SignalRequest, Reply<()>),
    RawWs(Message, Reply<()>),
    Leave(Reply<()>),
    CloseWs(Reply<()>),
    Reconnect(Reply<()>),
}

struct Layer {
    rid: Option<Rid>,
    gen: LayerGen,
    ssrc: Option<u32>,
}

struct LocalTrackState {
    cid: String,
    info: Option<proto::TrackInfo>,
    kind: PayloadKind,
    simulcast: bool,
    layers: Vec<Layer>,
    mid: Option<Mid>,
    pt: Option<Pt>,
    reply: Option<Reply<LocalTrack>>,
}

impl LocalTrackState {
    fn track_kind(&self) -> TrackKind {
        match self.kind {
            PayloadKind::Opus => TrackKind::Audio,
            PayloadKind::Video(_) => TrackKind::Video,
        }
    }
}

struct RemoteTrack {
    participant_sid: String,
    track_sid: String,
}

struct Participant {
    identity: String,
    tracks: Vec<String>,
}

#[allow(clippy::large_enum_variant)] // lives on the stack for one loop turn
enum Wake {
    Ws(Option<std::result::Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Cmd(Option<Command>),
    Udp(Target, std::io::Result<(usize, std::net::SocketAddr)>),
    Timer,
}

pub(crate) struct Driver {
    url: String,
    token: String,
    opts: ConnectOptions,
    ws: Option<WsStream>,
    awaiting_resume: bool,
    join: proto::JoinResponse,
    publisher: Peer,
    subscriber: Peer,
    publisher_socket: UdpSocket,
    subscriber_socket: UdpSocket,
    cmds: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<ClientEvent>,
    shared: Shared,
    epoch: Instant,

    participants: HashMap<String, Participant>,
    pending_add: HashMap<String, LocalTrackState>,
    tracks: Vec<LocalTrackState>,
    renegotiate: bool,
    channels_added: bool,
    pub_channels: HashMap<String, ChannelId>,
    channel_labels: HashMap<(Target, ChannelId), String>,
    pending_data: Vec<(bool, Vec<u8>, Reply<()>)>,
    data_seq: u32,

    remote_by_mid: HashMap<String, RemoteTrack>,
    mid_to_track_id: HashMap<String, String>,
    ssrc_mid: HashMap<u32, (String, Option<String>)>,

    next_ping: Option<Instant>,
    last_rx: Instant,
    ping_timeout_reported: bool,
    done: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn random_cid() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        url: String,
        token: String,
        opts: ConnectOptions,
        ws: WsStream,
        join: proto::JoinResponse,
        publisher: Peer,
        subscriber: Peer,
        sockets: (UdpSocket, UdpSocket),
        cmds: mpsc::UnboundedReceiver<Command>,
        events: mpsc::UnboundedSender<ClientEvent>,
        shared: Shared,
    ) -> Self {
        let now = Instant::now();
        let mut d = Self {
            url,
            token,
            opts,
            ws: Some(ws),
            awaiting_resume: false,
            join,
            publisher,
            subscriber,
            publisher_socket: sockets.0,
            subscriber_socket: sockets.1,
            cmds,
            events,
            shared,
            epoch: now,
            participants: HashMap::new(),
            pending_add: HashMap::new(),
            tracks: Vec::new(),
            renegotiate: false,
            channels_added: false,
            pub_channels: HashMap::new(),
            channel_labels: HashMap::new(),
            pending_data: Vec::new(),
            data_seq: 0,
            remote_by_mid: HashMap::new(),
            mid_to_track_id: HashMap::new(),
            ssrc_mid: HashMap::new(),
            next_ping: None,
            last_rx: now,
            ping_timeout_reported: false,
            done: false,
        };
        let others = d.join.other_participants.clone();
        for p in others {
            d.on_participant(p, true);
        }
        if d.join.ping_interval > 0 {
            d.next_ping = Some(now); // first ping right away: gives an RTT and sets JSON mode
        }
        d
    }

    fn emit(&self, ev: ClientEvent) {
        let _ = self.events.send(ev);
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, SharedStats> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub async fn run(mut self) {
        if self.opts.eager_publisher {
            if let Err(e) = self.negotiate_publisher().await {
                self.emit(ClientEvent::Error(format!("publisher negotiation: {e}")));
            }
        }
        let mut pub_buf = vec![0u8; 2048];
        let mut sub_buf = vec![0u8; 2048];
        let mut rtc_events = Vec::new();
        let mut transmits = Vec::new();
        while !self.done {
            let deadline = self.next_deadline();
            let wake = {
                let ws = &mut self.ws;
                let cmds = &mut self.cmds;
                let pub_sock = &self.publisher_socket;
                let sub_sock = &self.subscriber_socket;
                let ws_next = async {
                    match ws.as_mut() {
                        Some(w) => w.next().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    m = ws_next => Wake::Ws(m),
                    c = cmds.recv() => Wake::Cmd(c),
                    r = pub_sock.recv_from(&mut pub_buf) => Wake::Udp(Target::Publisher, r),
                    r = sub_sock.recv_from(&mut sub_buf) => Wake::Udp(Target::Subscriber, r),
                    _ = tokio::time::sleep_until(deadline.into()) => Wake::Timer,
                }
            };
            let res = match wake {
                Wake::Ws(m) => self.on_ws(m).await,
                Wake::Cmd(None) => {
                    self.shutdown().await;
                    Ok(())
                }
                Wake::Cmd(Some(c)) => self.on_command(c).await,
                Wake::Udp(t, Ok((n, from))) => {
                    let (peer, buf) = match t {
                        Target::Publisher => (&mut self.publisher, &pub_buf),
                        Target::Subscriber => (&mut self.subscriber, &sub_buf),
                    };
                    peer.handle_datagram(Instant::now(), from, &buf[..n])
                }
                Wake::Udp(t, Err(e)) => {
                    tracing::debug!(?t, error = %e, "UDP receive error");
                    Ok(())
                }
                Wake::Timer => self.on_timer().await,
            };
            if let Err(e) = res {
                self.emit(ClientEvent::Error(e.to_string()));
            }
            // Drain both Rtcs after every input.
            for target in [Target::Publisher, Target::Subscriber] {
                let now = Instant::now();
                let (peer, socket) = match target {
                    Target::Publisher => (&mut self.publisher, &self.publisher_socket),
                    Target::Subscriber => (&mut self.subscriber, &self.subscriber_socket),
                };
                let r = peer
                    .handle_timeout(now)
                    .and_then(|()| peer.drive(&mut transmits, &mut rtc_events));
                for t in transmits.drain(..) {
                    if let Err(e) = socket.try_send_to(&t.contents, t.destination) {
                        tracing::trace!(error = %e, "UDP send dropped");
                    }
                }
                if let Err(e) = r {
                    self.emit(ClientEvent::Error(format!("{target:?} PC: {e}")));
                }
                for ev in rtc_events.drain(..) {
                    self.on_rtc_event(target, ev).await;
                }
            }
        }
    }

    fn peer(&mut self, t: Target) -> &mut Peer {
        match t {
            Target::Publisher => &mut self.publisher,
            Target::Subscriber => &mut self.subscriber,
        }
    }

    fn next_deadline(&self) -> Instant {
        let mut d = self
            .publisher
            .next_timeout
            .min(self.subscriber.next_timeout);
        if let Some(p) = self.next_ping {
            d = d.min(p);
        }
        if self.publisher.connected {
            for t in &self.tracks {
                if t.pt.is_some() {
                    for l in &t.layers {
                        d = d.min(l.gen.next_due().unwrap_or_else(Instant::now));
                    }
                }
            }
        }
        d.max(Instant::now())
            .min(Instant::now() + Duration::from_millis(500))
    }

    async fn send(&mut self, msg: signal_request::Message) -> Result<()> {
        let req = SignalRequest { message: Some(msg) };
        let frame = self.opts.codec.encode(&req)?;
        self.send_ws(frame).await
    }

    async fn send_ws(&mut self, frame: Message) -> Result<()> {
        match self.ws.as_mut() {
            Some(ws) => Ok(ws.send(frame).await?),
            None => Err(Error::InvalidState(
                "the signal WebSocket is closed; call reconnect() first".into(),
            )),
        }
    }

    async fn shutdown(&mut self) {
        if let Some(mut ws) = self.ws.take() {
            let _ = ws.close(None).await;
        }
        self.publisher.rtc.disconnect();
        self.subscriber.rtc.disconnect();
        self.done = true;
    }

    // ---------------------------------------------------------------- signalling

    async fn on_ws(
        &mut self,
        m: Option<std::result::Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Result<()> {
        let msg = match m {
            None => {
                self.ws = None;
                self.emit(ClientEvent::SignalClosed {
                    reason: "WebSocket ended".into(),
                });
                return Ok(());
            }
            Some(Err(e)) => {
                self.ws = None;
                self.emit(ClientEvent::SignalClosed {
                    reason: format!("WebSocket error: {e}"),
                });
                return Ok(());
            }
            Some(Ok(m)) => m,
        };
        if let Message::Close(frame) = &msg {
            self.ws = None;
            self.emit(ClientEvent::SignalClosed {
                reason: frame.as_ref().map_or("closed by server".into(), |f| {
                    format!("closed by server ({}): {}", u16::from(f.code), f.reason)
                }),
            });
            return Ok(());
        }
        let Some((codec, resp)) = signal::decode_response(&msg)? else {
            return Ok(());
        };
        self.last_rx = Instant::now();
        self.ping_timeout_reported = false;
        {
            let mut s = self.stats();
            match codec {
                FrameCodec::Protobuf => s.frames_binary += 1,
                FrameCodec::Json => s.frames_text += 1,
            }
        }
        let Some(m) = resp.message else {
            return Ok(());
        };
        if self.opts.forward_signal {
            self.emit(ClientEvent::Signal(Box::new(m.clone())));
        }
        if self.awaiting_resume {
            self.awaiting_resume = false;
            match &m {
                signal_response::Message::Leave(_) => {}
                signal_response::Message::Reconnect(r) => {
                    self.emit(ClientEvent::Reconnected(Box::new(r.clone())));
                    self.after_resume().await?;
                }
                _ => {
                    self.emit(ClientEvent::Reconnected(Box::default()));
                    self.after_resume().await?;
                }
            }
        }
        self.on_signal(m).await
    }

    async fn on_signal(&mut self, m: signal_response::Message) -> Result<()> {
        use signal_response::Message as M;
        match m {
            M::Join(_) => {
                self.emit(ClientEvent::Error("unexpected second join response".into()));
            }
            M::Offer(sd) => {
                for (mid, track) in &sd.mid_to_track_id {
                    self.mid_to_track_id.insert(mid.clone(), track.clone());
                }
                for (mid, stream, track) in msids_by_mid(&sd.sdp) {
                    let (psid, tsid) = match stream.split_once('|') {
                        Some((p, t)) => (p.to_owned(), t.to_owned()),
                        None => (String::new(), track.clone()),
                    };
                    let tsid = if tsid.starts_with("TR") {
                        tsid
                    } else if track.starts_with("TR") {
                        track
                    } else {
                        self.mid_to_track_id.get(&mid).cloned().unwrap_or(tsid)
                    };
                    self.remote_by_mid.insert(
                        mid,
                        RemoteTrack {
                            participant_sid: psid,
                            track_sid: tsid,
                        },
                    );
                }
                let answer = self.subscriber.accept_offer(&sd.sdp)?;
                self.send(signal_request::Message::Answer(proto::SessionDescription {
                    r#type: "answer".into(),
                    sdp: answer,
                    id: sd.id,
                    mid_to_track_id: HashMap::new(),
                }))
                .await?;
                self.trickle_local(Target::Subscriber).await?;
            }
            M::Answer(sd) => {
                self.publisher.accept_answer(&sd.sdp)?;
                self.on_publisher_answered().await?;
            }
            M::Trickle(t) => {
                let Some(target) = Target::from_i32(t.target) else {
                    return Err(Error::Protocol(format!(
                        "trickle with unknown target {}",
                        t.target
                    )));
                };
                let init: serde_json::Value =
                    serde_json::from_str(&t.candidate_init).map_err(|e| {
                        Error::Protocol(format!(
                            "trickle candidateInit is not JSON ({e}): {:?}",
                            t.candidate_init
                        ))
                    })?;
                let cand = init.get("candidate").and_then(|c| c.as_str()).unwrap_or("");
                self.peer(target).add_remote_candidate(cand)?;
            }
            M::Update(u) => {
                for p in u.participants {
                    self.on_participant(p, false);
                }
            }
            M::TrackPublished(tp) => self.on_track_published(tp).await?,
            M::TrackUnpublished(tu) => self.emit(ClientEvent::TrackUnpublished {
                track_sid: tu.track_sid,
            }),
            M::Leave(l) => self.emit(ClientEvent::Left {
                reason: proto::DisconnectReason::try_from(l.reason)
                    .unwrap_or(proto::DisconnectReason::UnknownReason),
                action: proto::leave_request::Action::try_from(l.action)
                    .unwrap_or(proto::leave_request::Action::Disconnect),
                can_reconnect: l.can_reconnect,
            }),
            M::PongResp(p) => {
                let rtt = (now_ms() - p.last_ping_timestamp).max(0) as u64;
                self.stats().signal_rtt = Some(Duration::from_millis(rtt));
            }
            M::Reconnect(_) => {}
            _ => {}
        }
        Ok(())
    }

    fn on_participant(&mut self, p: proto::ParticipantInfo, from_join: bool) {
        let own = self.join.participant.as_ref().map(|x| x.sid.as_str());
        if own == Some(p.sid.as_str()) {
            return;
        }
        if p.state == proto::participant_info::State::Disconnected as i32 {
            if self.participants.remove(&p.sid).is_some() {
                self.emit(ClientEvent::ParticipantDisconnected {
                    identity: p.identity,
                    sid: p.sid,
                });
            }
            return;
        }
        let known = self.participants.contains_key(&p.sid);
        if !from_join {
            self.emit(if known {
                ClientEvent::ParticipantUpdated {
                    identity: p.identity.clone(),
                    sid: p.sid.clone(),
                }
            } else {
                ClientEvent::ParticipantJoined {
                    identity: p.identity.clone(),
                    sid: p.sid.clone(),
                }
            });
        }
        let entry = self
            .participants
            .entry(p.sid.clone())
            .or_insert_with(|| Participant {
                identity: p.identity.clone(),
                tracks: Vec::new(),
            });
        entry.identity = p.identity.clone();
        let mut new_tracks = Vec::new();
        for t in &p.tracks {
            if !entry.tracks.contains(&t.sid) {
                entry.tracks.push(t.sid.clone());
                new_tracks.push(t.clone());
            }
        }
        for t in new_tracks {
            self.emit(ClientEvent::TrackPublished {
                participant_sid: p.sid.clone(),
                participant_identity: p.identity.clone(),
                track: Box::new(t),
            });
        }
    }

    async fn trickle_local(&mut self, target: Target) -> Result<()> {
        match self.peer(target).take_trickle() {
            Some(t) => self.send(signal_request::Message::Trickle(t)).await,
            None => Ok(()),
        }
    }

    async fn on_timer(&mut self) -> Result<()> {
        let now = Instant::now();
        if let Some(at) = self.next_ping {
            if now >= at {
                self.next_ping = Some(now + Duration::from_secs(self.join.ping_interval as u64));
                if self.ws.is_some() {
                    let ts = now_ms();
                    let rtt = self.stats().signal_rtt.map_or(0, |d| d.as_millis() as i64);
                    self.send(signal_request::Message::Ping(ts)).await?;
                    self.send(signal_request::Message::PingReq(proto::Ping {
                        timestamp: ts,
                        rtt,
                    }))
                    .await?;
                }
                let timeout = Duration::from_secs(self.join.ping_timeout.max(0) as u64);
                if self.ws.is_some()
                    && !timeout.is_zero()
                    && now.duration_since(self.last_rx) > timeout
                    && !self.ping_timeout_reported
                {
                    self.ping_timeout_reported = true;
                    self.emit(ClientEvent::Error(format!(
                        "no signal message from the server for {} s (ping_timeout {} s)",
                        now.duration_since(self.last_rx).as_secs(),
                        timeout.as_secs()
                    )));
                }
            }
        }
        self.send_media(now);
        Ok(())
    }

    // ---------------------------------------------------------------- commands

    // Legacy DataPacket/UserPacket fields are filled on purpose: older peers still read them.
    #[allow(deprecated)]
    async fn on_command(&mut self, c: Command) -> Result<()> {
        match c {
            Command::PublishAudio(o, reply) => {
                let cid = random_cid();
                let req = proto::AddTrackRequest {
                    cid: cid.clone(),
                    name: o.name.clone(),
                    r#type: proto::TrackType::Audio as i32,
                    source: proto::TrackSource::Microphone as i32,
                    ..Default::default()
                };
                let state = LocalTrackState {
                    cid: cid.clone(),
                    info: None,
                    kind: PayloadKind::Opus,
                    simulcast: false,
                    layers: vec![Layer {
                        rid: None,
                        gen: LayerGen::audio(o.packet_bytes),
                        ssrc: None,
                    }],
                    mid: None,
                    pt: None,
                    reply: Some(reply),
                };
                self.add_track(cid, req, state).await;
            }
            Command::PublishVideo(o, reply) => {
                let cid = random_cid();
                let layers = o.layers();
                let req = proto::AddTrackRequest {
                    cid: cid.clone(),
                    name: o.name.clone(),
                    r#type: proto::TrackType::Video as i32,
                    source: proto::TrackSource::Camera as i32,
                    width: o.width,
                    height: o.height,
                    layers: layers
                        .iter()
                        .map(|l| proto::VideoLayer {
                            quality: l.quality,
                            width: l.width,
                            height: l.height,
                            bitrate: l.bitrate_bps,
                            rid: l.rid.unwrap_or("").to_owned(),
                            ..Default::default()
                        })
                        .collect(),
                    simulcast_codecs: vec![proto::SimulcastCodec {
                        codec: o.codec.name().into(),
                        cid: cid.clone(),
                        ..Default::default()
                    }],
                    ..Default::default()
                };
                let state = LocalTrackState {
                    cid: cid.clone(),
                    info: None,
                    kind: PayloadKind::Video(o.codec),
                    simulcast: o.simulcast,
                    layers: layers
                        .iter()
                        .map(|l| Layer {
                            rid: l.rid.map(Rid::from),
                            gen: LayerGen::video(o.codec, l, &o),
                            ssrc: None,
                        })
                        .collect(),
                    mid: None,
                    pt: None,
                    reply: Some(reply),
                };
                self.add_track(cid, req, state).await;
            }
            Command::SendData {
                payload,
                reliable,
                destination_identities,
                topic,
                reply,
            } => {
                self.data_seq += 1;
                let identity = self
                    .join
                    .participant
                    .as_ref()
                    .map(|p| p.identity.clone())
                    .unwrap_or_default();
                let sid = self
                    .join
                    .participant
                    .as_ref()
                    .map(|p| p.sid.clone())
                    .unwrap_or_default();
                let kind = if reliable {
                    proto::data_packet::Kind::Reliable
                } else {
                    proto::data_packet::Kind::Lossy
                };
                let pkt = proto::DataPacket {
                    kind: kind as i32,
                    participant_identity: identity.clone(),
                    participant_sid: sid,
                    destination_identities: destination_identities.clone(),
                    sequence: self.data_seq,
                    value: Some(proto::data_packet::Value::User(proto::UserPacket {
                        participant_identity: identity,
                        payload,
                        destination_identities,
                        topic,
                        ..Default::default()
                    })),
                };
                self.pending_data
                    .push((reliable, pkt.encode_to_vec(), reply));
                self.flush_data();
                if !self.pending_data.is_empty() && !self.channels_added {
                    self.negotiate_publisher().await?;
                }
            }
            Command::Signal(req, reply) => {
                let r = match self.opts.codec.encode(&req) {
                    Ok(f) => self.send_ws(f).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            Command::RawWs(msg, reply) => {
                let r = self.send_ws(msg).await;
                let _ = reply.send(r);
            }
            Command::Leave(reply) => {
                let r = self
                    .send(signal_request::Message::Leave(proto::LeaveRequest {
                        can_reconnect: false,
                        reason: proto::DisconnectReason::ClientInitiated as i32,
                        action: proto::leave_request::Action::Disconnect as i32,
                        regions: None,
                    }))
                    .await;
                self.shutdown().await;
                let _ = reply.send(r);
            }
            Command::CloseWs(reply) => {
                if let Some(mut ws) = self.ws.take() {
                    // Drop the TCP connection without a close handshake where possible.
                    let _ = ws.close(None).await;
                }
                let _ = reply.send(Ok(()));
            }
            Command::Reconnect(reply) => {
                if let Some(mut ws) = self.ws.take() {
                    let _ = ws.close(None).await;
                }
                let sid = self
                    .join
                    .participant
                    .as_ref()
                    .map(|p| p.sid.clone())
                    .unwrap_or_default();
                let params = RtcParams {
                    token: &self.token,
                    protocol: self.opts.protocol,
                    auto_subscribe: self.opts.auto_subscribe,
                    adaptive_stream: self.opts.adaptive_stream,
                    reconnect_sid: Some(&sid),
                };
                let r = match signal::rtc_url(&self.url, &params) {
                    Ok(u) => signal::open(&u).await,
                    Err(e) => Err(e),
                };
                match r {
                    Ok(ws) => {
                        self.ws = Some(ws);
                        self.awaiting_resume = true;
                        self.last_rx = Instant::now();
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
        }
        Ok(())
    }

    async fn add_track(
        &mut self,
        cid: String,
        req: proto::AddTrackRequest,
        state: LocalTrackState,
    ) {
        self.pending_add.insert(cid.clone(), state);
        if let Err(e) = self.send(signal_request::Message::AddTrack(req)).await {
            if let Some(mut s) = self.pending_add.remove(&cid) {
                if let Some(r) = s.reply.take() {
                    let _ = r.send(Err(e));
                }
            }
        }
    }

    async fn after_resume(&mut self) -> Result<()> {
        // What livekit-client does: sync state, then ICE restart the publisher if it is in use.
        let publish_tracks = self
            .tracks
            .iter()
            .filter_map(|t| {
                t.info.clone().map(|info| proto::TrackPublishedResponse {
                    cid: t.cid.clone(),
                    track: Some(info),
                })
            })
            .collect();
        let answer =
            self.subscriber
                .last_local_sdp
                .clone()
                .map(|(ty, sdp)| proto::SessionDescription {
                    r#type: ty,
                    sdp,
                    id: 0,
                    mid_to_track_id: HashMap::new(),
                });
        let subscribed: Vec<String> = self
            .remote_by_mid
            .values()
            .map(|r| r.track_sid.clone())
            .collect();
        self.send(signal_request::Message::SyncState(proto::SyncState {
            answer,
            subscription: Some(proto::UpdateSubscription {
                track_sids: subscribed,
                subscribe: true,
                participant_tracks: vec![],
            }),
            publish_tracks,
            ..Default::default()
        }))
        .await?;
        self.subscriber.trickled = false;
        self.publisher.trickled = false;
        if self.opts.ice_restart_on_resume && self.channels_added {
            if self.publisher.pending_offer.is_some() {
                self.renegotiate = true;
                return Ok(());
            }
            let mut api = self.publisher.rtc.sdp_api();
            api.ice_restart(true);
            if let Some((offer, pending)) = api.apply() {
                self.send_publisher_offer(offer.to_sdp_string(), pending)
                    .await?;
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- publishing

    async fn on_track_published(&mut self, tp: proto::TrackPublishedResponse) -> Result<()> {
        let Some(mut state) = self.pending_add.remove(&tp.cid) else {
            self.emit(ClientEvent::Error(format!(
                "track_published for unknown cid {:?}",
                tp.cid
            )));
            return Ok(());
        };
        let Some(info) = tp.track else {
            if let Some(r) = state.reply.take() {
                let _ = r.send(Err(Error::Protocol(
                    "track_published without a TrackInfo".into(),
                )));
            }
            return Ok(());
        };
        state.info = Some(info);
        self.tracks.push(state);
        self.negotiate_publisher().await
    }

    async fn negotiate_publisher(&mut self) -> Result<()> {
        if self.publisher.pending_offer.is_some() {
            self.renegotiate = true;
            return Ok(());
        }
        let needs: Vec<usize> = (0..self.tracks.len())
            .filter(|i| self.tracks[*i].mid.is_none())
            .collect();
        if needs.is_empty() && self.channels_added {
            return Ok(());
        }
        let own_sid = self
            .join
            .participant
            .as_ref()
            .map(|p| p.sid.clone())
            .unwrap_or_default();
        let mut mid_map = HashMap::new();
        let mut api = self.publisher.rtc.sdp_api();
        if !self.channels_added {
            self.channels_added = true;
            api.add_channel_with_config(ChannelConfig {
                label: "_reliable".into(),
                ordered: true,
                reliability: Reliability::Reliable,
                ..Default::default()
            });
            api.add_channel_with_config(ChannelConfig {
                label: "_lossy".into(),
                ordered: false,
                reliability: Reliability::MaxRetransmits { retransmits: 0 },
                ..Default::default()
            });
        }
        for i in needs {
            let t = &mut self.tracks[i];
            let kind = match t.kind {
                PayloadKind::Opus => MediaKind::Audio,
                PayloadKind::Video(_) => MediaKind::Video,
            };
            let simulcast = t.simulcast.then(|| {
                let mut s = Simulcast::new();
                for l in &t.layers {
                    if let Some(rid) = &l.rid {
                        s.add_send_layer(SimulcastLayer::new(rid));
                    }
                }
                s
            });
            let sid = t.info.as_ref().map(|i| i.sid.clone()).unwrap_or_default();
            let mid = api.add_media(
                kind,
                Direction::SendOnly,
                Some(format!("{own_sid}|{sid}")),
                Some(t.cid.clone()),
                simulcast,
            );
            mid_map.insert(mid.to_string(), sid);
            t.mid = Some(mid);
        }
        if let Some((offer, pending)) = api.apply() {
            self.publisher.pending_offer = Some(pending);
            let sdp = offer.to_sdp_string();
            self.publisher.last_sdp_id += 1;
            self.publisher.last_local_sdp = Some(("offer".into(), sdp.clone()));
            let id = self.publisher.last_sdp_id;
            self.send(signal_request::Message::Offer(proto::SessionDescription {
                r#type: "offer".into(),
                sdp,
                id,
                mid_to_track_id: mid_map,
            }))
            .await?;
            self.trickle_local(Target::Publisher).await?;
        }
        Ok(())
    }

    async fn send_publisher_offer(
        &mut self,
        sdp: String,
        pending: str0m::change::SdpPendingOffer,
    ) -> Result<()> {
        self.publisher.pending_offer = Some(pending);
        self.publisher.last_sdp_id += 1;
        self.publisher.last_local_sdp = Some(("offer".into(), sdp.clone()));
        let id = self.publisher.last_sdp_id;
        self.send(signal_request::Message::Offer(proto::SessionDescription {
            r#type: "offer".into(),
            sdp,
            id,
            mid_to_track_id: HashMap::new(),
        }))
        .await?;
        self.trickle_local(Target::Publisher).await
    }

    async fn on_publisher_answered(&mut self) -> Result<()> {
        let rtc = &mut self.publisher.rtc;
        for t in &mut self.tracks {
            let (Some(mid), None) = (t.mid, t.pt) else {
                continue;
            };
            let wanted = match t.kind {
                PayloadKind::Opus => Codec::Opus,
                PayloadKind::Video(VideoCodec::Vp8) => Codec::Vp8,
                PayloadKind::Video(VideoCodec::H264) => Codec::H264,
            };
            let remote_pts: Vec<Pt> = rtc
                .media(mid)
                .map(|m| m.remote_pts().to_vec())
                .unwrap_or_default();
            let pt = rtc
                .codec_config()
                .params()
                .iter()
                .find(|p| p.spec().codec == wanted && remote_pts.contains(&p.pt()))
                .map(|p| p.pt());
            let result = match pt {
                None => Err(Error::Protocol(format!(
                    "the server's answer did not accept {wanted:?} on mid {mid} (accepted payload types {remote_pts:?})"
                ))),
                Some(pt) => {
                    t.pt = Some(pt);
                    let mut api = rtc.direct_api();
                    let mut ssrcs = Vec::new();
                    for l in &mut t.layers {
                        let ssrc = api.stream_tx_by_mid(mid, l.rid).map(|s| *s.ssrc());
                        l.ssrc = ssrc;
                        ssrcs.push((l.rid.map(|r| r.to_string()), ssrc.unwrap_or(0)));
                    }
                    let info = t.info.clone().unwrap_or_default();
                    {
                        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
                        for (rid, ssrc) in &ssrcs {
                            s.tx.insert(
                                *ssrc,
                                SentStats {
                                    track_sid: info.sid.clone(),
                                    rid: rid.clone(),
                                    ssrc: *ssrc,
                                    ..Default::default()
                                },
                            );
                        }
                    }
                    Ok(LocalTrack {
                        cid: t.cid.clone(),
                        sid: info.sid.clone(),
                        mid: mid.to_string(),
                        kind: t.track_kind(),
                        ssrcs,
                        info,
                    })
                }
            };
            if let Some(r) = t.reply.take() {
                let _ = r.send(result);
            }
        }
        if std::mem::take(&mut self.renegotiate) {
            self.negotiate_publisher().await?;
        }
        Ok(())
    }

    fn send_media(&mut self, now: Instant) {
        if !self.publisher.connected {
            return;
        }
        let mut sent: Vec<(u32, usize, bool)> = Vec::new();
        let mut api = self.publisher.rtc.direct_api();
        for t in &mut self.tracks {
            let (Some(mid), Some(pt)) = (t.mid, t.pt) else {
                continue;
            };
            let video = matches!(t.kind, PayloadKind::Video(_));
            for l in &mut t.layers {
                if !l.gen.is_due(now) {
                    continue;
                }
                let pkts = l.gen.next_frame(now, probe::now_micros());
                let Some(tx) = api.stream_tx_by_mid(mid, l.rid) else {
                    continue;
                };
                for p in pkts {
                    sent.push((*tx.ssrc(), p.payload.len(), p.keyframe && p.marker));
                    tx.write_rtp(
                        RtpWrite::new(pt, p.seq.into(), p.rtp_time, now, p.payload)
                            .marker(p.marker)
                            .nackable(video),
                    );
                }
            }
        }
        if !sent.is_empty() {
            let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            for (ssrc, len, key) in sent {
                if let Some(e) = s.tx.get_mut(&ssrc) {
                    e.packets += 1;
                    e.bytes += len as u64;
                    e.keyframes += u64::from(key);
                }
            }
        }
    }

    // ---------------------------------------------------------------- data

    fn flush_data(&mut self) {
        let pending = std::mem::take(&mut self.pending_data);
        for (reliable, bytes, reply) in pending {
            let label = if reliable { "_reliable" } else { "_lossy" };
            let Some(id) = self.pub_channels.get(label).copied() else {
                self.pending_data.push((reliable, bytes, reply));
                continue;
            };
            let r = match self.publisher.rtc.channel(id) {
                Some(mut ch) => ch.write(true, &bytes).map(|_| ()).map_err(Error::from),
                None => Err(Error::InvalidState(format!("data channel {label} is gone"))),
            };
            let _ = reply.send(r);
        }
    }

    // ---------------------------------------------------------------- str0m events

    #[allow(deprecated)] // falls back to the legacy UserPacket sender fields
    async fn on_rtc_event(&mut self, target: Target, ev: Event) {
        match ev {
            Event::Connected => self.emit(ClientEvent::PeerConnected(target)),
            Event::IceConnectionStateChange(str0m::IceConnectionState::Disconnected) => {
                self.emit(ClientEvent::PeerDisconnected(target))
            }
            Event::IceConnectionStateChange(
                str0m::IceConnectionState::Connected | str0m::IceConnectionState::Completed,
            ) => self.emit(ClientEvent::IceConnected(target)),
            Event::MediaAdded(m) if target == Target::Subscriber => {
                let mid = m.mid.to_string();
                let (psid, tsid) = self
                    .remote_by_mid
                    .get(&mid)
                    .map(|r| (r.participant_sid.clone(), r.track_sid.clone()))
                    .unwrap_or_default();
                self.emit(ClientEvent::TrackSubscribed {
                    participant_sid: psid,
                    track_sid: tsid,
                    mid,
                    kind: if m.kind == MediaKind::Audio {
                        TrackKind::Audio
                    } else {
                        TrackKind::Video
                    },
                });
            }
            Event::RtpPacket(p) if target == Target::Subscriber => self.on_rtp(p),
            Event::KeyframeRequest(k) if target == Target::Publisher => {
                for t in &mut self.tracks {
                    if t.mid == Some(k.mid) {
                        for l in &mut t.layers {
                            if k.rid.is_none() || l.rid == k.rid {
                                l.gen.request_keyframe();
                            }
                        }
                    }
                }
            }
            Event::ChannelOpen(id, label) => {
                self.channel_labels.insert((target, id), label.clone());
                if target == Target::Publisher {
                    self.pub_channels.insert(label, id);
                    self.flush_data();
                }
            }
            Event::ChannelData(d) => {
                let reliable = self
                    .channel_labels
                    .get(&(target, d.id))
                    .is_none_or(|l| l != "_lossy");
                match proto::DataPacket::decode(d.data.as_slice()) {
                    Err(e) => self.emit(ClientEvent::Error(format!(
                        "undecodable DataPacket ({} bytes) on {target:?} PC: {e}",
                        d.data.len()
                    ))),
                    Ok(pkt) => {
                        self.stats().data_packets += 1;
                        if let Some(proto::data_packet::Value::User(u)) = pkt.value {
                            let from_identity = if pkt.participant_identity.is_empty() {
                                u.participant_identity
                            } else {
                                pkt.participant_identity
                            };
                            let from_sid = if pkt.participant_sid.is_empty() {
                                u.participant_sid
                            } else {
                                pkt.participant_sid
                            };
                            self.emit(ClientEvent::DataReceived {
                                from_identity,
                                from_sid,
                                payload: u.payload,
                                topic: u.topic,
                                reliable,
                                via: target,
                            });
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn on_rtp(&mut self, p: str0m::rtp::RtpPacket) {
        let ssrc = *p.header.ssrc;
        let arrival_us = p
            .timestamp
            .saturating_duration_since(self.epoch)
            .as_micros() as u64;
        let latency =
            probe::read_block(&p.payload).map(|sent| probe::now_micros().saturating_sub(sent));
        if !self.ssrc_mid.contains_key(&ssrc) {
            let found = self
                .subscriber
                .rtc
                .direct_api()
                .stream_rx(&p.header.ssrc)
                .map(|s| (s.mid().to_string(), s.rid().map(|r| r.to_string())));
            let Some((mid, rid)) = found else {
                return;
            };
            self.ssrc_mid.insert(ssrc, (mid, rid));
        }
        let Some((mid, rid)) = self.ssrc_mid.get(&ssrc).cloned() else {
            return;
        };
        let mut first = None;
        {
            let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            let entry = s.rx.entry(ssrc).or_insert_with(|| {
                let kind = self
                    .subscriber
                    .rtc
                    .media(mid.as_str().into())
                    .map(|m| m.kind())
                    .unwrap_or(MediaKind::Video);
                let (psid, tsid) = self
                    .remote_by_mid
                    .get(&mid)
                    .map(|r| (r.participant_sid.clone(), r.track_sid.clone()))
                    .unwrap_or_default();
                first = Some(tsid.clone());
                let (kind, clock) = if kind == MediaKind::Audio {
                    (TrackKind::Audio, 48_000)
                } else {
                    (TrackKind::Video, 90_000)
                };
                RxEntry {
                    track_sid: tsid,
                    participant_sid: psid,
                    mid: mid.clone(),
                    rid: rid.clone(),
                    kind,
                    stats: RtpReceiveStats::new(clock),
                }
            });
            entry.stats.on_packet(
                p.header.sequence_number,
                p.header.timestamp,
                p.payload.len(),
                arrival_us,
                latency,
            );
        }
        if let Some(track_sid) = first {
            self.emit(ClientEvent::MediaReceived {
                track_sid,
                mid,
                ssrc,
                rid,
            });
        }
    }
}
