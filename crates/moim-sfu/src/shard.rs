//! A media shard: one thread that owns a set of rooms, their str0m peers and
//! their tracks. Everything a packet touches lives here, so the packet path
//! takes no lock and never waits on the async runtime.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, trace, warn};

use crate::api::{Command, MediaEvent, PeerEvent, PeerKey, PeerRole, PeerSpec, RoomKey, TrackKey};
use crate::latency::PassLatency;
use crate::peer::{ExpectedTrack, Peer};
use crate::rtc_factory::RtcFactory;
use crate::stun;
use track::Track;

mod allocation;
mod data;
mod io;
mod negotiate;
mod reports;
mod run_loop;
#[cfg(test)]
mod tests;
mod track;

pub use allocation::INITIAL_ESTIMATE;
pub use io::ShardIo;
pub(crate) use io::SocketIo;

pub(crate) use crate::inbox::{
    shard_queues, PlaneCounters, ShardCommand, ShardGauges, ShardHandle, ShardInbox, ShardInput,
    DATAGRAM_QUEUE,
};

/// What every shard shares with the socket threads.
pub(crate) struct ShardContext {
    pub index: usize,
    /// The candidate addresses clients are told (the announced IP).
    pub udp_candidate: SocketAddr,
    pub tcp_candidate: Option<SocketAddr>,
    /// See `MediaConfig::downlink_bwe`.
    pub downlink_bwe: bool,
    pub recycle: Sender<Vec<u8>>,
    pub latency: Arc<PassLatency>,
    pub counters: Arc<PlaneCounters>,
    pub gauges: Arc<ShardGauges>,
}

/// A media shard's state and decisions. What it sends and which ufrags it
/// owns go to `io`; the time comes with every input (`now`).
pub(crate) struct Shard<Io = SocketIo> {
    pub ctx: ShardContext,
    pub io: Io,
    /// The time of the input being handled.
    pub now: Instant,
    pub peers: HashMap<PeerKey, Peer>,
    /// `/rtc` publisher PeerConnections that the client has not used yet. A
    /// participant who only watches never offers on it, so building its
    /// `Rtc` waits for the first offer, candidate or announced track.
    dormant: HashMap<PeerKey, PeerSpec>,
    factory: RtcFactory,
    /// When this pass read its first datagram (see `latency.rs`).
    first_read: Option<Instant>,
    by_ufrag: HashMap<String, PeerKey>,
    by_addr: HashMap<(Protocol, SocketAddr), PeerKey>,
    pub tracks: HashMap<TrackKey, Track>,
    pub rooms: HashMap<RoomKey, Vec<PeerKey>>,
    /// Each open room's event channel, for the peers it adds.
    room_events: HashMap<RoomKey, UnboundedSender<MediaEvent>>,
    timers: BinaryHeap<Reverse<(Instant, PeerKey)>>,
    /// When the audio tracks' levels are next worked out; `None` while the
    /// shard has no audio track, so an idle shard sleeps.
    level_tick: Option<Instant>,
    /// When the links' qualities are next worked out; `None` while the
    /// shard has no peer.
    quality_tick: Option<Instant>,
    /// When layer rates are next measured and downlinks re-shared; `None`
    /// while the shard has no peer.
    allocation_tick: Option<Instant>,
    /// When layer rates were last measured.
    last_rates: Option<Instant>,
    /// Peers that were written to and must be polled before sleeping.
    pub dirty: Vec<PeerKey>,
}

impl<Io: ShardIo> Shard<Io> {
    pub fn new(ctx: ShardContext, io: Io, now: Instant) -> Self {
        let factory = RtcFactory::new(ctx.udp_candidate, ctx.tcp_candidate, ctx.downlink_bwe);
        Self {
            ctx,
            io,
            now,
            peers: HashMap::new(),
            dormant: HashMap::new(),
            factory,
            first_read: None,
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            tracks: HashMap::new(),
            rooms: HashMap::new(),
            room_events: HashMap::new(),
            timers: BinaryHeap::new(),
            level_tick: None,
            quality_tick: None,
            allocation_tick: None,
            last_rates: None,
            dirty: Vec::new(),
        }
    }

    pub(crate) fn handle(&mut self, input: ShardInput) {
        match input {
            ShardInput::Datagram { at, source, buf } => {
                self.receive(Protocol::Udp, at, source, &buf);
                let _ = self.ctx.recycle.try_send(buf);
            }
            ShardInput::TcpFrame { at, source, buf } => {
                self.receive(Protocol::Tcp, at, source, &buf)
            }
            ShardInput::Wake => {}
        }
    }

    pub(crate) fn peer_count(&self) -> usize {
        self.peers.len() + self.dormant.len()
    }

    /// A room's command, carried out at `now`.
    pub(crate) fn command_at(&mut self, now: Instant, cmd: Command) {
        self.now = now;
        self.ctx.counters.commands.fetch_add(1, Ordering::Relaxed);
        self.command(cmd);
    }

    /// An ICE-TCP connection ended: packets from it are no longer anyone's.
    pub(crate) fn tcp_closed(&mut self, remote: SocketAddr) {
        if let Some(key) = self.by_addr.remove(&(Protocol::Tcp, remote)) {
            if let Some(p) = self.peers.get_mut(&key) {
                p.addrs.retain(|a| *a != (Protocol::Tcp, remote));
            }
        }
    }

    pub(crate) fn receive(&mut self, proto: Protocol, at: Instant, source: SocketAddr, buf: &[u8]) {
        self.now = at;
        self.first_read.get_or_insert(at);
        let from_stun = stun::local_ufrag(buf).and_then(|u| self.by_ufrag.get(u).copied());
        let Some(key) = from_stun.or_else(|| self.by_addr.get(&(proto, source)).copied()) else {
            trace!(%source, "packet from unknown address dropped");
            return;
        };
        let destination = match proto {
            Protocol::Udp => self.ctx.udp_candidate,
            _ => match self.ctx.tcp_candidate {
                Some(a) => a,
                None => return,
            },
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Ok(receive) = Receive::new(proto, source, destination, buf) else {
            trace!(%source, "unparseable packet dropped");
            return;
        };
        if let Err(e) = peer.rtc.handle_input(Input::Receive(at, receive)) {
            if matches!(e, str0m::RtcError::Dtls(_)) && !peer.dtls_warned {
                // Without DTLS there is no media at all: the operator must
                // hear of it, once per PeerConnection.
                peer.dtls_warned = true;
                warn!(
                    peer = %key, identity = %peer.spec.identity, %source,
                    "the DTLS handshake with this client failed ({e}), so it gets no media. \
                     moim takes ECDSA and RSA certificates over DTLS 1.2 with ECDHE AES \
                     cipher suites and SRTP AES-GCM or AES128_CM_SHA1_80; a client that \
                     fails here offers none of those, or its certificate does not match the \
                     fingerprint in its SDP. MOIM_LOG=info,str0m_openssl=debug shows \
                     OpenSSL's reason"
                );
            } else {
                debug!(peer = %key, %source, "packet rejected: {e}");
            }
            return;
        }
        if from_stun.is_some() && !peer.addrs.contains(&(proto, source)) {
            peer.addrs.push((proto, source));
            self.by_addr.insert((proto, source), key);
        }
        self.drive(key);
    }

    /// Polls a peer until it has nothing more to say.
    pub fn drive(&mut self, key: PeerKey) {
        loop {
            let Some(peer) = self.peers.get_mut(&key) else {
                return;
            };
            if !peer.rtc.is_alive() {
                self.close_peer(key, true);
                return;
            }
            match peer.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    let t =
                        crate::peer::wakeup_at(t, peer.rtc.last_timeout_reason(), peer.last_fired);
                    if peer.next_timeout != Some(t) {
                        peer.next_timeout = Some(t);
                        self.timers.push(Reverse((t, key)));
                    }
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    self.io
                        .transmit(t.proto, t.destination, Vec::from(t.contents))
                }
                Ok(Output::Event(e)) => self.on_event(key, e),
                Err(e) => {
                    warn!(peer = %key, "peer connection failed and is closed: {e}");
                    self.close_peer(key, true);
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, key: PeerKey, event: Event) {
        match event {
            Event::Connected => {
                if let Some(p) = self.peers.get_mut(&key) {
                    p.connected_at.get_or_insert(self.now);
                    p.emit(PeerEvent::Connected);
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                if let Some(p) = self.peers.get(&key) {
                    p.emit(PeerEvent::Disconnected);
                }
            }
            Event::RtpPacket(pkt) => self.forward(key, pkt),
            Event::PeerStats(stats) => {
                if let Some(p) = self.peers.get_mut(&key) {
                    let rtt = stats.rtt.or_else(|| {
                        stats
                            .selected_candidate_pair
                            .as_ref()
                            .and_then(|pair| pair.current_round_trip_time)
                    });
                    let congested = p.alloc.observe_link(stats.egress_loss_fraction, rtt);
                    p.link.observe(crate::quality::LinkSample {
                        ingress_loss: stats.ingress_loss_fraction,
                        egress_loss: stats.egress_loss_fraction,
                        rtt,
                        bytes_received: stats.peer_bytes_rx,
                        media_received: stats.bytes_rx,
                        media_sent: stats.bytes_tx,
                    });
                    if congested && p.spec.role.receives() {
                        tracing::debug!(
                            peer = %key,
                            loss = ?stats.egress_loss_fraction,
                            ?rtt,
                            "downlink congested (loss or a growing queue): tracks that do not fit may now be paused"
                        );
                        self.allocate(Some(key));
                    }
                }
            }
            Event::EgressBitrateEstimate(str0m::bwe::BweKind::Twcc { estimate, .. }) => {
                self.on_estimate(key, estimate)
            }
            Event::KeyframeRequest(req) => self.on_keyframe_request(key, req.mid),
            Event::ChannelOpen(id, label) => {
                if let Some(p) = self.peers.get_mut(&key) {
                    if p.spec.role.receives() {
                        match label.as_str() {
                            "_reliable" => p.reliable = Some(id),
                            "_lossy" => p.lossy = Some(id),
                            _ => {}
                        }
                    }
                    p.channel_labels.insert(id, label);
                    p.open_channels.push(id);
                    if !p.pending_data.is_empty() {
                        self.flush_pending_data(key);
                    }
                }
            }
            Event::ChannelData(data) => self.on_data(key, data),
            Event::Closed => self.close_peer(key, true),
            _ => {}
        }
    }

    fn command(&mut self, cmd: Command) {
        match &cmd {
            Command::Offer { peer, .. }
            | Command::Candidate { peer, .. }
            | Command::ExpectTrack { peer, .. } => self.wake(*peer),
            _ => {}
        }
        match cmd {
            Command::OpenRoom { room, events } => {
                self.room_events.insert(room, events);
            }
            Command::CloseRoom { room } => {
                self.room_events.remove(&room);
                shrink_when_sparse(&mut self.room_events);
            }
            Command::AddPeer(spec) => self.add_peer(spec),
            Command::RemovePeer { peer } => self.close_peer(peer, false),
            Command::Offer { peer, sdp, id } => self.on_offer(peer, &sdp, id),
            Command::Answer { peer, sdp, id } => self.on_answer(peer, &sdp, id),
            Command::Candidate { peer, candidate } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    match Candidate::from_sdp_string(&candidate) {
                        Ok(c) => p.rtc.add_remote_candidate(c),
                        Err(e) => debug!(%peer, "ignoring unparseable ICE candidate: {e}"),
                    }
                    self.dirty.push(peer);
                }
            }
            Command::ExpectTrack {
                peer,
                track,
                track_sid,
                cid,
                kind,
                codec,
                packet_trailer,
                screen_share,
            } => {
                let Some(p) = self.peers.get_mut(&peer) else {
                    return;
                };
                let participant_sid = p.spec.participant_sid.clone();
                p.expected.push(ExpectedTrack {
                    track,
                    cid,
                    kind,
                    codec,
                });
                let mut t = Track::new(track, peer, track_sid, participant_sid, kind);
                t.has_packet_trailer = packet_trailer;
                t.screen_share = screen_share;
                self.tracks.insert(track, t);
                if kind == crate::api::TrackKind::Audio {
                    self.start_level_tick();
                }
            }
            Command::RemoveTrack { track } => self.remove_track(track),
            Command::Subscribe { peer, track } => self.subscribe(peer, track),
            Command::Unsubscribe { peer, track } => self.unsubscribe(peer, track),
            Command::TrackSettings {
                peer,
                track,
                disabled,
                max_layer,
                max_fps,
            } => {
                if let Some(sub) = self
                    .tracks
                    .get_mut(&track)
                    .and_then(|t| t.subscription_mut(peer))
                {
                    sub.fwd.set_paused(disabled);
                    sub.fwd.set_max_layer(max_layer);
                    sub.fwd.set_max_fps(max_fps);
                }
            }
            Command::RestartIce { peer } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    if p.spec.role == PeerRole::Subscriber {
                        p.restart_ice();
                        self.register_ufrag(peer);
                        self.dirty.push(peer);
                    }
                }
            }
            Command::SetTrackMuted { track, muted } => {
                if let Some(t) = self.tracks.get_mut(&track) {
                    for sub in &mut t.subs {
                        sub.fwd.set_paused(muted);
                    }
                }
            }
            Command::SendData {
                room,
                packet,
                reliable,
                destination_identities,
            } => {
                self.deliver_data(room, None, &packet, reliable, &destination_identities);
            }
            Command::UpdateDataPermission {
                peer,
                can_publish_data,
            } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.spec.can_publish_data = can_publish_data;
                }
                if let Some(spec) = self.dormant.get_mut(&peer) {
                    spec.can_publish_data = can_publish_data;
                }
            }
        }
    }

    fn add_peer(&mut self, spec: PeerSpec) {
        if spec.role == PeerRole::Publisher {
            self.dormant.insert(spec.peer, spec);
            return;
        }
        self.build_peer(spec);
    }

    /// Builds a dormant publisher PeerConnection on its first use.
    fn wake(&mut self, key: PeerKey) {
        if let Some(spec) = self.dormant.remove(&key) {
            self.build_peer(spec);
        }
    }

    fn build_peer(&mut self, spec: PeerSpec) {
        let Some(events) = self.room_events.get(&spec.room).cloned() else {
            warn!(
                peer = %spec.peer,
                room = %spec.room,
                "internal error: a PeerConnection was added to a room its media shard was never \
                 told of (OpenRoom missing), so it is not built and that participant gets no \
                 media. This is a bug in moim; please report it with this log"
            );
            return;
        };
        let rtc = self.factory.build(spec.role, self.now);
        self.start_quality_tick();
        self.start_allocation_tick();
        let key = spec.peer;
        let role = spec.role;
        self.rooms.entry(spec.room).or_default().push(key);
        self.peers
            .insert(key, Peer::new(spec, events, rtc, String::new()));
        self.register_ufrag(key);
        if role == PeerRole::Subscriber {
            // The first server offer carries the data channels, so the
            // subscriber PeerConnection connects even before any track.
            if let Some(p) = self.peers.get_mut(&key) {
                p.negotiate(|_| None);
            }
        }
        self.dirty.push(key);
    }

    /// Keeps the packet demux pointed at this peer's current ICE ufrag,
    /// which changes on every ICE restart.
    pub fn register_ufrag(&mut self, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let ufrag = peer.rtc.direct_api().local_ice_credentials().ufrag;
        if ufrag == peer.local_ufrag {
            return;
        }
        let old = std::mem::replace(&mut peer.local_ufrag, ufrag.clone());
        if !old.is_empty() {
            self.io.route_ufrag(&old, false);
            self.by_ufrag.remove(&old);
        }
        self.io.route_ufrag(&ufrag, true);
        self.by_ufrag.insert(ufrag, key);
    }

    fn remove_track(&mut self, track_key: TrackKey) {
        let Some(track) = self.tracks.remove(&track_key) else {
            return;
        };
        if let Some(p) = self.peers.get_mut(&track.publisher) {
            p.unpublish(track_key);
            p.ssrc_routes.retain(|_, (t, _, _)| *t != track_key);
            p.expected.retain(|e| e.track != track_key);
        }
        for sub in track.subs {
            self.remember_stream(&sub);
            if let Some(peer) = sub.peer() {
                self.unsubscribe(peer, track_key);
            }
        }
    }

    /// Forgets a peer and everything that hangs off it.
    fn close_peer(&mut self, key: PeerKey, notify: bool) {
        self.dormant.remove(&key);
        let Some(peer) = self.peers.remove(&key) else {
            return;
        };
        if notify {
            peer.emit(PeerEvent::Closed);
        }
        self.by_ufrag.remove(&peer.local_ufrag);
        self.io.route_ufrag(&peer.local_ufrag, false);
        for a in &peer.addrs {
            self.by_addr.remove(a);
        }
        if let Some(list) = self.rooms.get_mut(&peer.spec.room) {
            list.retain(|k| *k != key);
            if list.is_empty() {
                self.rooms.remove(&peer.spec.room);
            }
        }
        let published: Vec<TrackKey> = self
            .tracks
            .values()
            .filter(|t| t.publisher == key)
            .map(|t| t.key)
            .collect();
        for t in published {
            self.remove_track(t);
        }
        for t in self.tracks.values_mut() {
            t.subs.retain(|s| s.peer() != Some(key));
        }
        shrink_when_sparse(&mut self.peers);
        shrink_when_sparse(&mut self.dormant);
        shrink_when_sparse(&mut self.by_ufrag);
        shrink_when_sparse(&mut self.by_addr);
        shrink_when_sparse(&mut self.rooms);
        shrink_when_sparse(&mut self.tracks);
        debug!(peer = %key, "peer closed");
    }
}

/// A map keeps the capacity its largest crowd needed; a `Peer` holds its
/// `Rtc` inline, so a shard that once held 1,000 peers kept megabytes after
/// they left. Give the room back once the map is mostly empty. Only on the
/// control path (a peer closing), never per packet.
fn shrink_when_sparse<K: Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 64 && map.len() * 4 < map.capacity() {
        let keep = map.len() * 2;
        map.shrink_to(keep);
    }
}
