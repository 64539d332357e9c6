//! A room: one tokio task that owns its participants and tracks. Signal
//! connections and the media plane talk to it through one channel, so room
//! state needs no lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moim_proto::lk::{self, signal_response::Message as Resp};
use moim_proto::{ids, token::Claims};
use moim_sfu::codec::VideoCodec;
use moim_sfu::{Command, MediaEvent, MediaPlane, PeerKey, PeerRole, PeerSpec, RoomKey, TrackKey};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;
use tracing::{debug, info};

use crate::client_info::ClientProfile;
use crate::config::ServerConfig;
use crate::participant::{unix_now, Outbound, Participant, ParticipantKey, SignalClose};
use crate::rooms::RoomRegistry;
use crate::server_info::{server_info, LIVEKIT_COMPATIBLE_VERSION};

/// How a client asked to join, from the URL or the v1 join request.
#[derive(Debug, Clone, Default)]
pub struct JoinParams {
    pub single_pc: bool,
    pub reconnect: bool,
    pub participant_sid: String,
    pub auto_subscribe: bool,
    pub publisher_offer: Option<lk::SessionDescription>,
    pub metadata: Option<String>,
    pub attributes: HashMap<String, String>,
    /// STUN/TURN servers for this client, with its own credentials.
    pub ice_servers: Vec<lk::IceServer>,
    pub client: ClientProfile,
}

#[derive(Debug)]
pub struct Joined {
    pub participant: ParticipantKey,
    pub connection: u64,
}

#[allow(clippy::large_enum_variant)]
pub enum RoomInput {
    Join {
        claims: Box<Claims>,
        params: Box<JoinParams>,
        out: UnboundedSender<Outbound>,
        reply: oneshot::Sender<Result<Joined, JoinRefused>>,
    },
    Signal {
        participant: ParticipantKey,
        connection: u64,
        message: lk::signal_request::Message,
    },
    SignalClosed {
        participant: ParticipantKey,
        connection: u64,
    },
    /// moim is shutting down: every participant is sent elsewhere and the
    /// room closes.
    Shutdown,
    /// A RoomService call (room_admin.rs).
    Admin(
        crate::room_admin::AdminRequest,
        oneshot::Sender<crate::room_admin::AdminResult>,
    ),
}

#[derive(Debug, thiserror::Error)]
pub enum JoinRefused {
    #[error("the room closed while joining; try again")]
    RoomClosed,
}

pub struct Room {
    pub(crate) key: RoomKey,
    pub(crate) name: String,
    pub(crate) sid: String,
    pub(crate) created_at: i64,
    pub(crate) metadata: String,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) media: Arc<MediaPlane>,
    pub(crate) participants: HashMap<ParticipantKey, Participant>,
    pub(crate) by_peer: HashMap<PeerKey, ParticipantKey>,
    pub(crate) media_events: UnboundedSender<MediaEvent>,
    next_connection: u64,
    empty_since: Option<Instant>,
    /// The registry's count of participants in all rooms.
    census: Arc<std::sync::atomic::AtomicUsize>,
    pub(crate) ext: crate::room_admin::RoomExt,
}

impl Room {
    pub fn spawn(
        name: String,
        config: Arc<ServerConfig>,
        media: Arc<MediaPlane>,
        registry: Arc<RoomRegistry>,
    ) -> UnboundedSender<RoomInput> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (media_tx, media_rx) = mpsc::unbounded_channel();
        let room = Room {
            key: media.next_key(),
            sid: ids::room_sid(),
            created_at: unix_now(),
            metadata: String::new(),
            name,
            config,
            media,
            participants: HashMap::new(),
            by_peer: HashMap::new(),
            media_events: media_tx,
            next_connection: 1,
            empty_since: Some(Instant::now()),
            census: registry.census(),
            ext: crate::room_admin::RoomExt::new(registry.webhooks()),
        };
        tokio::spawn(room.run(rx, media_rx, registry, tx.clone()));
        tx
    }

    async fn run(
        mut self,
        mut inputs: UnboundedReceiver<RoomInput>,
        mut media_rx: UnboundedReceiver<MediaEvent>,
        registry: Arc<RoomRegistry>,
        me: UnboundedSender<RoomInput>,
    ) {
        info!(room = %self.name, sid = %self.sid, "room started");
        self.hook_room("room_started");
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                Some(input) = inputs.recv() => self.handle(input),
                Some(ev) = media_rx.recv() => self.on_media(ev),
                _ = tick.tick() => {
                    self.expire_departed();
                    if self.should_close() {
                        registry.remove_if_same(&self.name, &me);
                        break;
                    }
                }
            }
        }
        // Joins that raced with closing are refused; the caller retries on a
        // fresh room.
        inputs.close();
        while let Ok(input) = inputs.try_recv() {
            if let RoomInput::Join { reply, .. } = input {
                let _ = reply.send(Err(JoinRefused::RoomClosed));
            }
        }
        info!(room = %self.name, sid = %self.sid, "room closed after its empty timeout");
        self.hook_room("room_finished");
    }

    fn should_close(&self) -> bool {
        self.participants.is_empty()
            && (self.ext.deleted
                || self
                    .empty_since
                    .is_some_and(|t| t.elapsed() >= self.empty_timeout()))
    }

    fn handle(&mut self, input: RoomInput) {
        match input {
            RoomInput::Join {
                claims,
                params,
                out,
                reply,
            } => {
                if let Some(refused) = self.refuse_if_full(&claims.sub, &out) {
                    let _ = reply.send(Ok(refused));
                    return;
                }
                let result = self.join(*claims, *params, out);
                let _ = reply.send(Ok(result));
            }
            RoomInput::Signal {
                participant,
                connection,
                message,
            } => {
                let current = self
                    .participants
                    .get(&participant)
                    .is_some_and(|p| p.connection == connection);
                if current {
                    self.on_signal(participant, message);
                } else {
                    debug!(participant, "signal from a replaced connection ignored");
                }
            }
            RoomInput::Admin(req, reply) => {
                let _ = reply.send(self.on_admin(req));
            }
            RoomInput::Shutdown => {
                let keys: Vec<ParticipantKey> = self.participants.keys().copied().collect();
                for key in keys {
                    self.remove_participant(key, lk::DisconnectReason::ServerShutdown);
                }
                self.ext.deleted = true;
            }
            RoomInput::SignalClosed {
                participant,
                connection,
            } => {
                if let Some(p) = self.participants.get_mut(&participant) {
                    if p.connection == connection {
                        debug!(identity = %p.identity, "signal connection lost; waiting for resume");
                        p.out = None;
                        p.disconnected_at = Some(Instant::now());
                    }
                }
            }
        }
    }

    pub(crate) fn room_info(&self) -> lk::Room {
        lk::Room {
            sid: self.sid.clone(),
            name: self.name.clone(),
            empty_timeout: self.config.empty_timeout.as_secs() as u32,
            departure_timeout: self.config.departure_timeout.as_secs() as u32,
            creation_time: self.created_at,
            creation_time_ms: self.created_at * 1000,
            metadata: self.metadata.clone(),
            num_participants: self.participants.values().filter(|p| !p.hidden()).count() as u32,
            num_publishers: self
                .participants
                .values()
                .filter(|p| !p.tracks.is_empty())
                .count() as u32,
            enabled_codecs: enabled_codecs(),
            ..Default::default()
        }
    }

    fn join(
        &mut self,
        claims: Claims,
        params: JoinParams,
        out: UnboundedSender<Outbound>,
    ) -> Joined {
        let connection = self.next_connection;
        self.next_connection += 1;
        if params.reconnect {
            let existing = self
                .participants
                .values()
                .find(|p| p.sid == params.participant_sid && p.identity == claims.sub)
                .map(|p| p.key);
            match existing {
                Some(key) => return self.resume(key, connection, out, params.ice_servers),
                None => {
                    // Unknown session: tell the client to start over.
                    let _ = out.send(Outbound::Signal(Box::new(Resp::Leave(lk::LeaveRequest {
                        can_reconnect: true,
                        reason: lk::DisconnectReason::StateMismatch as i32,
                        action: lk::leave_request::Action::Reconnect as i32,
                        ..Default::default()
                    }))));
                    let _ = out.send(Outbound::Close(SignalClose::Left(
                        lk::DisconnectReason::StateMismatch,
                    )));
                    return Joined {
                        participant: 0,
                        connection,
                    };
                }
            }
        }
        if let Some(old) = self
            .participants
            .values()
            .find(|p| p.identity == claims.sub)
            .map(|p| p.key)
        {
            info!(identity = %claims.sub, "identity joined again; the older connection is replaced");
            self.remove_participant(old, lk::DisconnectReason::DuplicateIdentity);
        }

        let key = self.media.next_key();
        let sid = ids::participant_sid();
        let (publisher, receiver) = if params.single_pc {
            let k = self.media.next_key();
            (k, k)
        } else {
            (self.media.next_key(), self.media.next_key())
        };
        let participant = Participant {
            key,
            sid: sid.clone(),
            identity: claims.sub.clone(),
            name: claims.name.clone(),
            metadata: params.metadata.clone().unwrap_or(claims.metadata.clone()),
            attributes: {
                let mut a = claims.attributes.clone();
                a.extend(params.attributes.clone());
                a
            },
            grant: claims.video.clone(),
            single_pc: params.single_pc,
            auto_subscribe: params.auto_subscribe,
            publisher,
            receiver,
            tracks: Vec::new(),
            subscriptions: Vec::new(),
            out: Some(out),
            connection,
            disconnected_at: None,
            version: 1,
            joined_at: unix_now(),
            active: false,
            client: params.client.clone(),
        };
        let spec = |peer, role| PeerSpec {
            room: self.key,
            peer,
            role,
            participant_sid: sid.clone(),
            identity: claims.sub.clone(),
            can_publish_data: claims.video.can_publish_data(),
            accepts_packet_trailer: params
                .client
                .has(lk::client_info::Capability::CapPacketTrailer),
            events: self.media_events.clone(),
        };
        if params.single_pc {
            self.media.send(
                self.key,
                Command::AddPeer(spec(publisher, PeerRole::Single)),
            );
        } else {
            self.media.send(
                self.key,
                Command::AddPeer(spec(publisher, PeerRole::Publisher)),
            );
            self.media.send(
                self.key,
                Command::AddPeer(spec(receiver, PeerRole::Subscriber)),
            );
        }
        self.by_peer.insert(publisher, key);
        self.by_peer.insert(receiver, key);

        let others: Vec<lk::ParticipantInfo> = self
            .participants
            .values()
            .filter(|p| !p.hidden())
            .map(|p| p.info())
            .collect();
        let join = lk::JoinResponse {
            room: Some(self.room_info()),
            participant: Some(participant.info()),
            other_participants: others,
            server_version: LIVEKIT_COMPATIBLE_VERSION.into(),
            server_info: Some(server_info()),
            ice_servers: params.ice_servers.clone(),
            subscriber_primary: !params.single_pc && claims.video.can_subscribe(),
            ping_interval: 5,
            ping_timeout: 15,
            enabled_publish_codecs: enabled_codecs(),
            ..Default::default()
        };
        participant.send(Resp::Join(Box::new(join).as_ref().clone()));
        let hidden = participant.hidden();
        let info = participant.info();
        self.participants.insert(key, participant);
        self.census
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.empty_since = None;
        self.hook_joined(key);
        info!(room = %self.name, identity = %claims.sub, %sid, single_pc = params.single_pc, sdk = params.client.sdk_name(), protocol = params.client.protocol, "participant joined");

        if let Some(offer) = params.publisher_offer {
            self.media.send(
                self.key,
                Command::Offer {
                    peer: publisher,
                    sdp: offer.sdp,
                    id: offer.id,
                },
            );
        }
        if !hidden {
            self.broadcast_update(vec![info], Some(key));
        }
        self.subscribe_to_existing(key);
        Joined {
            participant: key,
            connection,
        }
    }

    fn resume(
        &mut self,
        key: ParticipantKey,
        connection: u64,
        out: UnboundedSender<Outbound>,
        ice_servers: Vec<lk::IceServer>,
    ) -> Joined {
        let others: Vec<lk::ParticipantInfo> = self
            .participants
            .values()
            .filter(|p| p.key != key && !p.hidden())
            .map(|p| p.info())
            .collect();
        let room = self.room_info();
        let Some(p) = self.participants.get_mut(&key) else {
            return Joined {
                participant: 0,
                connection,
            };
        };
        p.close_signal(SignalClose::Replaced);
        p.out = Some(out);
        p.connection = connection;
        p.disconnected_at = None;
        info!(identity = %p.identity, "participant resumed its session");
        p.send(Resp::Reconnect(lk::ReconnectResponse {
            server_info: Some(server_info()),
            ice_servers,
            ..Default::default()
        }));
        if !others.is_empty() {
            p.send(Resp::Update(lk::ParticipantUpdate {
                participants: others,
            }));
        }
        p.send(Resp::RoomUpdate(lk::RoomUpdate { room: Some(room) }));
        if !p.single_pc {
            self.media
                .send(self.key, Command::RestartIce { peer: p.receiver });
        }
        Joined {
            participant: key,
            connection,
        }
    }

    /// Sends participant updates to everyone except `except`.
    pub(crate) fn broadcast_update(
        &self,
        infos: Vec<lk::ParticipantInfo>,
        except: Option<ParticipantKey>,
    ) {
        for p in self.participants.values() {
            if Some(p.key) != except {
                p.send(Resp::Update(lk::ParticipantUpdate {
                    participants: infos.clone(),
                }));
            }
        }
    }

    fn expire_departed(&mut self) {
        let timeout = self.config.departure_timeout;
        let gone: Vec<ParticipantKey> = self
            .participants
            .values()
            .filter(|p| p.disconnected_at.is_some_and(|t| t.elapsed() >= timeout))
            .map(|p| p.key)
            .collect();
        for key in gone {
            info!(
                participant = key,
                "participant did not resume within the departure timeout"
            );
            self.remove_participant(key, lk::DisconnectReason::ClientInitiated);
        }
    }

    /// Removes a participant everywhere: its peers, its tracks at every
    /// subscriber, and from everyone's participant list.
    pub(crate) fn remove_participant(&mut self, key: ParticipantKey, reason: lk::DisconnectReason) {
        let Some(mut p) = self.participants.remove(&key) else {
            return;
        };
        self.census
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        if reason != lk::DisconnectReason::ClientInitiated {
            // A server that shuts down sends its clients elsewhere: RECONNECT
            // makes an SDK join afresh at the same URL, which a load balancer
            // that saw /healthz turn 503 routes to another moim.
            let comes_back = reason == lk::DisconnectReason::ServerShutdown;
            let action = if comes_back {
                lk::leave_request::Action::Reconnect
            } else {
                lk::leave_request::Action::Disconnect
            };
            p.send(Resp::Leave(lk::LeaveRequest {
                can_reconnect: comes_back,
                reason: reason as i32,
                action: action as i32,
                ..Default::default()
            }));
        }
        p.close_signal(SignalClose::Left(reason));
        for t in &p.tracks {
            self.media
                .send(self.key, Command::RemoveTrack { track: t.key });
        }
        self.media
            .send(self.key, Command::RemovePeer { peer: p.publisher });
        if p.receiver != p.publisher {
            self.media
                .send(self.key, Command::RemovePeer { peer: p.receiver });
        }
        self.by_peer.remove(&p.publisher);
        self.by_peer.remove(&p.receiver);
        for other in self.participants.values_mut() {
            other
                .subscriptions
                .retain(|t| !p.tracks.iter().any(|pt| pt.key == *t));
        }
        if !p.hidden() {
            self.broadcast_update(vec![p.disconnected_info()], None);
        }
        info!(room = %self.name, identity = %p.identity, ?reason, "participant left");
        self.hook_left(&p);
        if self.participants.is_empty() {
            self.empty_since = Some(Instant::now());
        }
    }

    /// Subscribes `key` to every bound track of the others, if it wants them.
    fn subscribe_to_existing(&mut self, key: ParticipantKey) {
        let Some(p) = self.participants.get(&key) else {
            return;
        };
        if !p.auto_subscribe || !p.grant.can_subscribe() {
            return;
        }
        let tracks: Vec<TrackKey> = self
            .participants
            .values()
            .filter(|o| o.key != key)
            .flat_map(|o| o.tracks.iter().filter(|t| t.bound).map(|t| t.key))
            .collect();
        for t in tracks {
            self.subscribe(key, t);
        }
    }

    pub(crate) fn subscribe(&mut self, key: ParticipantKey, track: TrackKey) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        if !p.grant.can_subscribe() || p.subscriptions.contains(&track) {
            return;
        }
        p.subscriptions.push(track);
        self.media.send(
            self.key,
            Command::Subscribe {
                peer: p.receiver,
                track,
            },
        );
    }

    pub(crate) fn unsubscribe(&mut self, key: ParticipantKey, track: TrackKey) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        if let Some(pos) = p.subscriptions.iter().position(|t| *t == track) {
            p.subscriptions.remove(pos);
            self.media.send(
                self.key,
                Command::Unsubscribe {
                    peer: p.receiver,
                    track,
                },
            );
        }
    }

    /// A track's SDP section is known: tell the others, then forward it.
    pub(crate) fn track_bound(
        &mut self,
        owner: ParticipantKey,
        track: TrackKey,
        mid: String,
        codec: Option<VideoCodec>,
    ) {
        let Some(p) = self.participants.get_mut(&owner) else {
            return;
        };
        let Some(t) = p.tracks.iter_mut().find(|t| t.key == track) else {
            return;
        };
        t.bound = true;
        if let Some(codec) = codec {
            if t.set_video_codec(codec) {
                info!(
                    identity = %p.identity,
                    track = %t.info.sid,
                    mime = %t.info.mime_type,
                    "the client's offer lacks the codec it asked to publish with; \
                     announcing the codec the answer lists first, which it will send"
                );
            }
        }
        t.info.mid = mid.clone();
        if let Some(c) = t.info.codecs.first_mut() {
            c.mid = mid;
        }
        p.bump();
        let info = p.info();
        let hidden = p.hidden();
        if !hidden {
            self.broadcast_update(vec![info], Some(owner));
        }
        let subscribers: Vec<ParticipantKey> = self
            .participants
            .values()
            .filter(|o| o.key != owner && o.auto_subscribe)
            .map(|o| o.key)
            .collect();
        for s in subscribers {
            self.subscribe(s, track);
        }
        self.hook_track_published(owner, track);
    }
}

pub(crate) fn enabled_codecs() -> Vec<lk::Codec> {
    [
        "audio/opus",
        "audio/red",
        "video/VP8",
        "video/H264",
        "video/VP9",
        "video/AV1",
    ]
    .into_iter()
    .map(|m| lk::Codec {
        mime: m.into(),
        fmtp_line: String::new(),
    })
    .collect()
}
