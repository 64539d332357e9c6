//! The client's state machine, with no IO: one LiveKit session (signalling plus the
//! publisher and subscriber PeerConnections) that is fed time and inputs and queues what to do.
//!
//! Inputs are the `handle_*` methods (a decoded server message, a datagram, a timeout, the
//! WebSocket going away) and the commands of the public API (`publish_*`, `send_data`); each
//! takes `now`. Outputs come from [`Session::poll_output`] (signal requests, datagrams, events,
//! answers to commands) and [`Session::poll_timeout`]. The driver (`driver.rs`) owns the sockets and
//! performs them; tests drive a session with made-up time and no sockets at all.
//!
//! Two things read the wall clock rather than `now`: the timestamps in pings and in media
//! probe blocks, because other hosts and processes compare them with their own clocks.

mod data;
mod keepalive;
mod outbox;
mod publication;
mod publishing;
mod remote;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::Instant;

use livekit_protocol::{self as proto, signal_request, signal_response, SignalRequest};
use str0m::net::Transmit;
use str0m::Event;

use self::data::DataChannels;
use self::keepalive::Keepalive;
use self::outbox::Outbox;
pub(crate) use self::outbox::{Output, RequestId};
use self::publication::Publication;
use self::publishing::Publishing;
use self::remote::Remote;
use crate::counters::{self, Shared};
use crate::error::{Error, Result};
use crate::event::ClientEvent;
use crate::media::{AudioOptions, VideoOptions};
use crate::options::ConnectOptions;
use crate::peer::{Peer, Target};
use crate::signal::FrameCodec;

/// The parts of [`ConnectOptions`] that change what the session does (the rest is the IO
/// loop's business).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub eager_publisher: bool,
    pub ice_restart_on_resume: bool,
    pub forward_signal: bool,
}

impl From<&ConnectOptions> for Config {
    fn from(o: &ConnectOptions) -> Self {
        Self {
            eager_publisher: o.eager_publisher,
            ice_restart_on_resume: o.ice_restart_on_resume,
            forward_signal: o.forward_signal,
        }
    }
}

/// The `leave` a client sends when it hangs up.
pub(crate) fn leave_request() -> SignalRequest {
    SignalRequest {
        message: Some(signal_request::Message::Leave(proto::LeaveRequest {
            can_reconnect: false,
            reason: proto::DisconnectReason::ClientInitiated as i32,
            action: proto::leave_request::Action::Disconnect as i32,
            regions: None,
        })),
    }
}

pub(crate) struct Session {
    config: Config,
    publisher: Peer,
    subscriber: Peer,
    out: Outbox,
    shared: Shared,
    /// Receive statistics count arrival times from here.
    epoch: Instant,
    remote: Remote,
    publishing: Publishing,
    data: DataChannels,
    keepalive: Keepalive,
    /// A resumed WebSocket is open and its first message is still to come.
    awaiting_resume: bool,
    closed: bool,
    transmits: Vec<Transmit>,
    rtc_events: Vec<Event>,
}

impl Session {
    /// A session the server has just answered with `join`; `publisher` and `subscriber` are
    /// the local addresses of the UDP sockets the caller will read and write for each PC.
    pub fn new(
        now: Instant,
        config: Config,
        join: &proto::JoinResponse,
        publisher: SocketAddr,
        subscriber: SocketAddr,
        shared: Shared,
    ) -> Result<Self> {
        let (identity, sid) = join
            .participant
            .as_ref()
            .map(|p| (p.identity.clone(), p.sid.clone()))
            .unwrap_or_default();
        let mut s = Self {
            config,
            publisher: Peer::new(Target::Publisher, publisher, now)?,
            subscriber: Peer::new(Target::Subscriber, subscriber, now)?,
            out: Outbox::new(),
            shared,
            epoch: now,
            remote: Remote::new(sid.clone()),
            publishing: Publishing::new(sid.clone()),
            data: DataChannels::new(identity, sid),
            keepalive: Keepalive::new(now, join),
            awaiting_resume: false,
            closed: false,
            transmits: Vec::new(),
            rtc_events: Vec::new(),
        };
        for p in join.other_participants.iter().cloned() {
            s.remote.on_participant(p, true, &mut s.out);
        }
        if config.eager_publisher {
            if let Err(e) = s.publishing.negotiate(&mut s.publisher, &mut s.out) {
                s.out
                    .emit(ClientEvent::Error(format!("publisher negotiation: {e}")));
            }
        }
        Ok(s)
    }

    // ------------------------------------------------------------------ outputs

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop()
    }

    /// When [`Session::handle_timeout`] is next due: a PeerConnection's timer, a ping, or a
    /// media frame.
    pub fn poll_timeout(&self, now: Instant) -> Instant {
        let mut due = self
            .publisher
            .next_timeout
            .min(self.subscriber.next_timeout);
        if let Some(ping) = self.keepalive.next_ping() {
            due = due.min(ping);
        }
        if self.publisher.connected {
            if let Some(frame) = self.publishing.next_frame_due(now) {
                due = due.min(frame);
            }
        }
        due
    }

    /// After [`Session::close`]: the IO loop may end once it has drained the outputs.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    // ------------------------------------------------------------------ inputs

    /// A message from the server (`codec` is how it was framed).
    pub fn handle_signal(&mut self, now: Instant, codec: FrameCodec, resp: proto::SignalResponse) {
        self.keepalive.heard(now);
        {
            let mut s = counters::lock(&self.shared);
            match codec {
                FrameCodec::Protobuf => s.frames_binary += 1,
                FrameCodec::Json => s.frames_text += 1,
            }
        }
        if let Some(m) = resp.message {
            let r = self.on_message(m);
            self.report(r);
        }
        self.drive(now);
    }

    /// The WebSocket ended without us asking (closed by the server, or broken).
    pub fn handle_signal_closed(&mut self, now: Instant, reason: String) {
        self.out.set_signal_open(false);
        self.out.emit(ClientEvent::SignalClosed { reason });
        self.drive(now);
    }

    /// We dropped the WebSocket ourselves (`close_ws_only`, or before a resume).
    pub fn signal_detached(&mut self, now: Instant) {
        self.out.set_signal_open(false);
        self.drive(now);
    }

    /// A resumed WebSocket is open; the server's first message on it settles the resume.
    pub fn signal_resumed(&mut self, now: Instant) {
        self.out.set_signal_open(true);
        self.awaiting_resume = true;
        self.keepalive.restart(now);
        self.drive(now);
    }

    /// An [`Output::Signal`] could not be sent.
    pub fn handle_signal_send_failed(&mut self, req: SignalRequest, e: Error) {
        match &req.message {
            // The caller of publish_* is told instead, as its publication cannot go on.
            Some(signal_request::Message::AddTrack(add))
                if self.publishing.is_pending(&add.cid) =>
            {
                self.publishing.fail_pending(&add.cid, e, &mut self.out);
            }
            _ => self.out.emit(ClientEvent::Error(e.to_string())),
        }
    }

    /// A datagram arrived on `target`'s UDP socket.
    pub fn handle_datagram(&mut self, now: Instant, target: Target, from: SocketAddr, data: &[u8]) {
        let r = self.peer(target).handle_datagram(now, from, data);
        self.report(r);
        self.drive(now);
    }

    /// The time from [`Session::poll_timeout`] has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        let rtt = counters::lock(&self.shared).signal_rtt;
        let r = self.keepalive.on_timeout(now, rtt, &mut self.out);
        if r.is_ok() {
            self.publishing
                .send_media(now, &mut self.publisher, &self.shared);
        }
        self.report(r);
        self.drive(now);
    }

    pub fn publish_audio(&mut self, now: Instant, id: RequestId, opts: &AudioOptions) {
        let (req, p) = Publication::audio(opts, id);
        self.publishing.add(req, p, &mut self.out);
        self.drive(now);
    }

    pub fn publish_video(&mut self, now: Instant, id: RequestId, opts: &VideoOptions) {
        let (req, p) = Publication::video(opts, id);
        self.publishing.add(req, p, &mut self.out);
        self.drive(now);
    }

    /// Send user data; answered with [`Output::DataSent`] once written to its channel, which
    /// may first need the publisher PC negotiated.
    pub fn send_data(
        &mut self,
        now: Instant,
        id: RequestId,
        payload: Vec<u8>,
        reliable: bool,
        destination_identities: Vec<String>,
        topic: Option<String>,
    ) {
        self.data
            .queue_user_packet(id, payload, reliable, destination_identities, topic);
        self.data.flush(&mut self.publisher.rtc, &mut self.out);
        if self.data.has_queued() && !self.publishing.channels_added() {
            let r = self
                .publishing
                .negotiate(&mut self.publisher, &mut self.out);
            self.report(r);
        }
        self.drive(now);
    }

    /// End the session: both PeerConnections close and no signal request goes out any more.
    pub fn close(&mut self, now: Instant) {
        self.publisher.rtc.disconnect();
        self.subscriber.rtc.disconnect();
        self.out.set_signal_open(false);
        self.closed = true;
        self.drive(now);
    }

    // ------------------------------------------------------------------ internals

    fn peer(&mut self, t: Target) -> &mut Peer {
        match t {
            Target::Publisher => &mut self.publisher,
            Target::Subscriber => &mut self.subscriber,
        }
    }

    /// What went wrong handling an input is the user's to know; the session carries on.
    fn report(&mut self, r: Result<()>) {
        if let Err(e) = r {
            self.out.emit(ClientEvent::Error(e.to_string()));
        }
    }

    /// After every input: let both `Rtc`s act on it and on their timers, and take their output.
    fn drive(&mut self, now: Instant) {
        for target in [Target::Publisher, Target::Subscriber] {
            let peer = match target {
                Target::Publisher => &mut self.publisher,
                Target::Subscriber => &mut self.subscriber,
            };
            let r = peer
                .handle_timeout(now)
                .and_then(|()| peer.drive(&mut self.transmits, &mut self.rtc_events));
            for t in self.transmits.drain(..) {
                self.out.push(Output::Transmit(target, t));
            }
            if let Err(e) = r {
                self.out
                    .emit(ClientEvent::Error(format!("{target:?} PC: {e}")));
            }
            let mut events = std::mem::take(&mut self.rtc_events);
            for ev in events.drain(..) {
                self.on_rtc_event(target, ev);
            }
            self.rtc_events = events;
        }
    }

    fn on_message(&mut self, m: signal_response::Message) -> Result<()> {
        use signal_response::Message as M;
        if self.config.forward_signal {
            self.out.emit(ClientEvent::Signal(Box::new(m.clone())));
        }
        if std::mem::take(&mut self.awaiting_resume) {
            // Any first message but `leave` means the server took the resume.
            match &m {
                M::Leave(_) => {}
                M::Reconnect(r) => {
                    self.out.emit(ClientEvent::Reconnected(Box::new(r.clone())));
                    self.after_resume()?;
                }
                _ => {
                    self.out.emit(ClientEvent::Reconnected(Box::default()));
                    self.after_resume()?;
                }
            }
        }
        match m {
            M::Join(_) => {
                self.out
                    .emit(ClientEvent::Error("unexpected second join response".into()));
            }
            M::Offer(sd) => {
                self.remote.learn_offer(&sd);
                let answer = self.subscriber.accept_offer(&sd.sdp)?;
                self.out
                    .send(signal_request::Message::Answer(proto::SessionDescription {
                        r#type: "answer".into(),
                        sdp: answer,
                        id: sd.id,
                        mid_to_track_id: Default::default(),
                    }))?;
                self.out.trickle(&mut self.subscriber)?;
            }
            M::Answer(sd) => {
                self.publishing.on_answer(
                    &sd.sdp,
                    &mut self.publisher,
                    &self.shared,
                    &mut self.out,
                )?;
            }
            M::Trickle(t) => {
                let (target, candidate) = trickled_candidate(&t)?;
                self.peer(target).add_remote_candidate(&candidate)?;
            }
            M::Update(u) => {
                for p in u.participants {
                    self.remote.on_participant(p, false, &mut self.out);
                }
            }
            M::TrackPublished(tp) => {
                self.publishing
                    .on_track_published(tp, &mut self.publisher, &mut self.out)?;
            }
            M::TrackUnpublished(tu) => self.out.emit(ClientEvent::TrackUnpublished {
                track_sid: tu.track_sid,
            }),
            M::Leave(l) => self.out.emit(ClientEvent::Left {
                reason: proto::DisconnectReason::try_from(l.reason)
                    .unwrap_or(proto::DisconnectReason::UnknownReason),
                action: proto::leave_request::Action::try_from(l.action)
                    .unwrap_or(proto::leave_request::Action::Disconnect),
                can_reconnect: l.can_reconnect,
            }),
            M::PongResp(p) => {
                counters::lock(&self.shared).signal_rtt = Some(Keepalive::rtt(&p));
            }
            _ => {}
        }
        Ok(())
    }

    /// What livekit-client does once resumed: tell the server what we publish and receive,
    /// then restart ICE on the publisher.
    fn after_resume(&mut self) -> Result<()> {
        let answer =
            self.subscriber
                .last_local_sdp
                .clone()
                .map(|(ty, sdp)| proto::SessionDescription {
                    r#type: ty,
                    sdp,
                    id: 0,
                    mid_to_track_id: Default::default(),
                });
        self.out
            .send(signal_request::Message::SyncState(proto::SyncState {
                answer,
                subscription: Some(proto::UpdateSubscription {
                    track_sids: self.remote.subscribed_track_sids(),
                    subscribe: true,
                    participant_tracks: vec![],
                }),
                publish_tracks: self.publishing.published(),
                ..Default::default()
            }))?;
        self.subscriber.trickled = false;
        self.publisher.trickled = false;
        if self.config.ice_restart_on_resume {
            self.publishing
                .restart_ice(&mut self.publisher, &mut self.out)?;
        }
        Ok(())
    }

    fn on_rtc_event(&mut self, target: Target, ev: Event) {
        match ev {
            Event::Connected => self.out.emit(ClientEvent::PeerConnected(target)),
            Event::IceConnectionStateChange(str0m::IceConnectionState::Disconnected) => {
                self.out.emit(ClientEvent::PeerDisconnected(target))
            }
            Event::IceConnectionStateChange(
                str0m::IceConnectionState::Connected | str0m::IceConnectionState::Completed,
            ) => self.out.emit(ClientEvent::IceConnected(target)),
            Event::MediaAdded(m) if target == Target::Subscriber => {
                self.remote.on_media_added(&m, &mut self.out)
            }
            Event::RtpPacket(p) if target == Target::Subscriber => self.remote.on_rtp(
                p,
                &mut self.subscriber.rtc,
                self.epoch,
                &self.shared,
                &mut self.out,
            ),
            Event::KeyframeRequest(k) if target == Target::Publisher => {
                self.publishing.on_keyframe_request(&k)
            }
            Event::ChannelOpen(id, label) => {
                self.data
                    .on_open(target, id, label, &mut self.publisher.rtc, &mut self.out)
            }
            Event::ChannelData(d) => self.data.on_data(target, d, &self.shared, &mut self.out),
            _ => {}
        }
    }
}

/// The PC and the candidate line of a trickled `RTCIceCandidateInit`.
fn trickled_candidate(t: &proto::TrickleRequest) -> Result<(Target, String)> {
    let target = Target::from_i32(t.target)
        .ok_or_else(|| Error::Protocol(format!("trickle with unknown target {}", t.target)))?;
    let init: serde_json::Value = serde_json::from_str(&t.candidate_init).map_err(|e| {
        Error::Protocol(format!(
            "trickle candidateInit is not JSON ({e}): {:?}",
            t.candidate_init
        ))
    })?;
    let candidate = init
        .get("candidate")
        .and_then(|c| c.as_str())
        .unwrap_or("")
        .to_owned();
    Ok((target, candidate))
}
