//! Joining a room: a fresh participant, a session resumed on a new signal
//! connection, an identity that joins again, and a room that is full.

use std::collections::HashMap;

use moim_proto::lk::{self, signal_response::Message as Resp};
use moim_proto::token::Claims;
use moim_sfu::{Command, PeerRole, PeerSpec, TrackKey};
use tracing::info;

use super::core::{enabled_codecs, RoomCore};
use super::error::JoinError;
use super::output::{Now, SignalClose};
use super::participant::{ConnectionId, Participant, ParticipantKey};
use super::tokens::TokenOrigin;
use crate::client_info::ClientProfile;
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

/// A join the room took: who the connection speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    pub participant: ParticipantKey,
    pub connection: ConnectionId,
}

impl RoomCore {
    /// A signal connection asks to join (or, with `params.reconnect`, to
    /// resume). On success the connection has been sent its JoinResponse or
    /// ReconnectResponse; on refusal it has been sent nothing, and the caller
    /// tells the client why (`wire::join_refusal_reason`).
    pub fn handle_join(
        &mut self,
        now: Now,
        connection: ConnectionId,
        claims: Claims,
        params: JoinParams,
    ) -> Result<Joined, JoinError> {
        self.set_clock(now);
        if self.is_closed() {
            return Err(JoinError::RoomClosed);
        }
        if params.reconnect {
            let existing = self
                .participants
                .values()
                .find(|p| p.sid == params.participant_sid && p.identity == claims.sub)
                .map(|p| p.key)
                .ok_or(JoinError::UnknownSession)?;
            return Ok(self.resume(existing, connection, params.ice_servers));
        }
        self.refuse_if_full(&claims.sub)?;
        if let Some(old) = self
            .participants
            .values()
            .find(|p| p.identity == claims.sub)
            .map(|p| p.key)
        {
            info!(identity = %claims.sub, "identity joined again; the older connection is replaced");
            self.remove_participant(now.at, old, lk::DisconnectReason::DuplicateIdentity);
        }
        Ok(self.admit(now, connection, claims, params))
    }

    /// A returning identity (resume or replacement) is never refused.
    fn refuse_if_full(&self, identity: &str) -> Result<(), JoinError> {
        let max = self.config.max_participants;
        if max == 0
            || self.participants.len() < max as usize
            || self.participants.values().any(|p| p.identity == identity)
        {
            return Ok(());
        }
        info!(room = %self.name, %identity, max, "join refused: the room is full");
        Err(JoinError::RoomFull { max })
    }

    fn admit(
        &mut self,
        now: Now,
        connection: ConnectionId,
        claims: Claims,
        params: JoinParams,
    ) -> Joined {
        let key = self.ids.participant_key();
        let sid = self.ids.participant_sid();
        let (publisher, receiver) = if params.single_pc {
            let k = self.ids.peer_key();
            (k, k)
        } else {
            (self.ids.peer_key(), self.ids.peer_key())
        };
        let mut attributes = claims.attributes.clone();
        attributes.extend(params.attributes.clone());
        let participant = Participant {
            key,
            sid: sid.clone(),
            identity: claims.sub.clone(),
            name: claims.name.clone(),
            metadata: params.metadata.clone().unwrap_or(claims.metadata.clone()),
            attributes,
            grant: claims.video.clone(),
            single_pc: params.single_pc,
            auto_subscribe: params.auto_subscribe,
            publisher,
            receiver,
            tracks: Vec::new(),
            subscriptions: Vec::new(),
            connection: Some(connection),
            disconnected_at: None,
            version: 1,
            joined_at: now.unix_secs(),
            active: false,
            client: params.client.clone(),
            token: TokenOrigin {
                api_key: claims.iss.clone(),
                expires_at: claims.exp,
            },
            token_refresh_due: None,
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
        };
        let peers = if params.single_pc {
            vec![spec(publisher, PeerRole::Single)]
        } else {
            vec![
                spec(publisher, PeerRole::Publisher),
                spec(receiver, PeerRole::Subscriber),
            ]
        };
        for peer in peers {
            self.out.media(Command::AddPeer(peer));
        }
        self.by_peer.insert(publisher, key);
        self.by_peer.insert(receiver, key);

        let others: Vec<lk::ParticipantInfo> = self
            .participants
            .values()
            .filter(|p| !p.hidden())
            .map(Participant::info)
            .collect();
        let join = lk::JoinResponse {
            room: Some(self.room_info()),
            participant: Some(participant.info()),
            other_participants: others,
            server_version: LIVEKIT_COMPATIBLE_VERSION.into(),
            server_info: Some(server_info(&self.config.node_id)),
            ice_servers: params.ice_servers.clone(),
            subscriber_primary: !params.single_pc && claims.video.can_subscribe(),
            ping_interval: 5,
            ping_timeout: 15,
            enabled_publish_codecs: enabled_codecs(),
            ..Default::default()
        };
        self.out.tell(&participant, Resp::Join(join));
        let hidden = participant.hidden();
        let info = participant.info();
        self.participants.insert(key, participant);
        self.refresh_token(key);
        self.empty_since = None;
        self.hook_joined(key);
        info!(room = %self.name, identity = %claims.sub, %sid, single_pc = params.single_pc, sdk = params.client.sdk_name(), protocol = params.client.protocol, "participant joined");

        if let Some(offer) = params.publisher_offer {
            self.out.media(Command::Offer {
                peer: publisher,
                sdp: offer.sdp,
                id: offer.id,
            });
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
        connection: ConnectionId,
        ice_servers: Vec<lk::IceServer>,
    ) -> Joined {
        let others: Vec<lk::ParticipantInfo> = self
            .participants
            .values()
            .filter(|p| p.key != key && !p.hidden())
            .map(Participant::info)
            .collect();
        let room = self.room_info();
        let mut resumed_tracks: Vec<TrackKey> = Vec::new();
        if let Some(p) = self.participants.get_mut(&key) {
            self.out.close(p, SignalClose::Replaced);
            p.connection = Some(connection);
            p.disconnected_at = None;
            info!(identity = %p.identity, "participant resumed its session");
            self.out.tell(
                p,
                Resp::Reconnect(lk::ReconnectResponse {
                    server_info: Some(server_info(&self.config.node_id)),
                    ice_servers,
                    ..Default::default()
                }),
            );
            if !others.is_empty() {
                self.out.tell(
                    p,
                    Resp::Update(lk::ParticipantUpdate {
                        participants: others,
                    }),
                );
            }
            self.out
                .tell(p, Resp::RoomUpdate(lk::RoomUpdate { room: Some(room) }));
            resumed_tracks = p.tracks.iter().map(|t| t.key).collect();
            if !p.single_pc {
                self.out.media(Command::RestartIce { peer: p.receiver });
            }
        }
        self.refresh_token(key);
        // Speakers, qualities and dynacast skip a participant that has no
        // connection; bring it up to date now that it has one.
        self.speakers.touch(self.at);
        self.qualities.touch(self.at);
        self.dynacast.resumed(resumed_tracks);
        self.decide_dynacast(self.at);
        Joined {
            participant: key,
            connection,
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
}
