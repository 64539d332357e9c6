//! What a room does with server-API (RoomService) requests, and the webhook
//! events it emits. Every change reaches connected clients through the same
//! paths signaling uses.

use std::time::Duration;

use moim_proto::lk::{self, signal_response::Message as Resp};
use moim_sfu::{Command, TrackKey};
use prost::Message as _;
use tracing::info;

use crate::participant::{source_name, unix_now, Participant, ParticipantKey};
use crate::room::{Joined, Room};
use crate::twirp::TwirpError;
use crate::webhook::Notifier;

/// LiveKit caps metadata at 512 KiB; so does moim.
const MAX_METADATA: usize = 512 * 1024;

#[derive(Debug)]
pub(crate) enum AdminRequest {
    /// CreateRoom on a room that now exists (new or not).
    Configure {
        empty_timeout: u32,
        max_participants: u32,
        metadata: String,
    },
    Info,
    Delete,
    ListParticipants,
    GetParticipant(String),
    RemoveParticipant(String),
    Mute {
        identity: String,
        track_sid: String,
        muted: bool,
    },
    UpdateParticipant(lk::UpdateParticipantRequest),
    UpdateSubscriptions(lk::UpdateSubscriptionsRequest),
    SendData(lk::SendDataRequest),
    UpdateRoomMetadata(String),
}

#[derive(Debug)]
pub(crate) enum AdminReply {
    Room(lk::Room),
    Participants(Vec<lk::ParticipantInfo>),
    Participant(lk::ParticipantInfo),
    Track(lk::TrackInfo),
    Done,
}

pub(crate) type AdminResult = Result<AdminReply, TwirpError>;

/// Room state the server API and webhooks add to a room.
pub(crate) struct RoomExt {
    pub hooks: Notifier,
    pub empty_timeout: Option<Duration>,
    pub max_participants: u32,
    /// DeleteRoom ran: the room closes at its next tick.
    pub deleted: bool,
}

impl RoomExt {
    pub fn new(hooks: Notifier) -> Self {
        Self {
            hooks,
            empty_timeout: None,
            max_participants: 0,
            deleted: false,
        }
    }
}

impl Room {
    pub(crate) fn on_admin(&mut self, req: AdminRequest) -> AdminResult {
        match req {
            AdminRequest::Configure {
                empty_timeout,
                max_participants,
                metadata,
            } => {
                if empty_timeout > 0 {
                    self.ext.empty_timeout = Some(Duration::from_secs(empty_timeout.into()));
                }
                if max_participants > 0 {
                    self.ext.max_participants = max_participants;
                }
                if !metadata.is_empty() {
                    check_metadata(&metadata)?;
                    self.set_room_metadata(metadata);
                }
                Ok(AdminReply::Room(self.admin_room_info()))
            }
            AdminRequest::Info => Ok(AdminReply::Room(self.admin_room_info())),
            AdminRequest::Delete => {
                let keys: Vec<ParticipantKey> = self.participants.keys().copied().collect();
                for key in keys {
                    self.remove_participant(key, lk::DisconnectReason::RoomDeleted);
                }
                self.ext.deleted = true;
                info!(room = %self.name, "room deleted through the server API");
                Ok(AdminReply::Done)
            }
            AdminRequest::ListParticipants => Ok(AdminReply::Participants(
                self.participants.values().map(Participant::info).collect(),
            )),
            AdminRequest::GetParticipant(identity) => {
                let key = self.key_of(&identity)?;
                Ok(AdminReply::Participant(self.participants[&key].info()))
            }
            AdminRequest::RemoveParticipant(identity) => {
                let key = self.key_of(&identity)?;
                info!(room = %self.name, %identity, "participant removed through the server API");
                self.remove_participant(key, lk::DisconnectReason::ParticipantRemoved);
                Ok(AdminReply::Done)
            }
            AdminRequest::Mute {
                identity,
                track_sid,
                muted,
            } => self.admin_mute(&identity, &track_sid, muted),
            AdminRequest::UpdateParticipant(u) => self.admin_update_participant(u),
            AdminRequest::UpdateSubscriptions(u) => {
                let key = self.key_of(&u.identity)?;
                let mut sids = u.track_sids;
                sids.extend(
                    u.participant_tracks
                        .into_iter()
                        .flat_map(|pt| pt.track_sids),
                );
                for sid in sids {
                    let Some(track) = self.bound_track(&sid) else {
                        return Err(TwirpError::NotFound(format!(
                            "track \"{sid}\" is not published in room \"{}\"",
                            self.name
                        )));
                    };
                    if u.subscribe {
                        self.subscribe(key, track);
                    } else {
                        self.unsubscribe(key, track);
                    }
                }
                Ok(AdminReply::Done)
            }
            AdminRequest::SendData(d) => self.admin_send_data(d),
            AdminRequest::UpdateRoomMetadata(metadata) => {
                check_metadata(&metadata)?;
                self.set_room_metadata(metadata);
                Ok(AdminReply::Room(self.admin_room_info()))
            }
        }
    }

    pub(crate) fn admin_room_info(&self) -> lk::Room {
        let mut r = self.room_info();
        if let Some(t) = self.ext.empty_timeout {
            r.empty_timeout = t.as_secs() as u32;
        }
        r.max_participants = self.ext.max_participants;
        r
    }

    /// How long this room stays open with nobody in it.
    pub(crate) fn empty_timeout(&self) -> Duration {
        self.ext.empty_timeout.unwrap_or(self.config.empty_timeout)
    }

    /// Refuses a join into a full room: the client gets a leave that says so.
    /// A returning identity (resume or replacement) is never refused.
    pub(crate) fn refuse_if_full(
        &self,
        identity: &str,
        out: &tokio::sync::mpsc::UnboundedSender<crate::participant::Outbound>,
    ) -> Option<Joined> {
        let max = self.ext.max_participants as usize;
        if max == 0
            || self.participants.len() < max
            || self.participants.values().any(|p| p.identity == identity)
        {
            return None;
        }
        info!(room = %self.name, %identity, max, "join refused: the room is full");
        use crate::participant::Outbound;
        let _ = out.send(Outbound::Signal(Box::new(Resp::Leave(lk::LeaveRequest {
            reason: lk::DisconnectReason::JoinFailure as i32,
            action: lk::leave_request::Action::Disconnect as i32,
            ..Default::default()
        }))));
        let _ = out.send(Outbound::Close(crate::participant::SignalClose::Left(
            lk::DisconnectReason::JoinFailure,
        )));
        Some(Joined {
            participant: 0,
            connection: 0,
        })
    }

    fn key_of(&self, identity: &str) -> Result<ParticipantKey, TwirpError> {
        self.participants
            .values()
            .find(|p| p.identity == identity)
            .map(|p| p.key)
            .ok_or_else(|| TwirpError::participant_not_found(&self.name, identity))
    }

    fn bound_track(&self, sid: &str) -> Option<TrackKey> {
        self.participants
            .values()
            .flat_map(|p| p.tracks.iter())
            .find(|t| t.info.sid == sid && t.bound)
            .map(|t| t.key)
    }

    fn set_room_metadata(&mut self, metadata: String) {
        self.metadata = metadata;
        let room = self.admin_room_info();
        for p in self.participants.values() {
            p.send(Resp::RoomUpdate(lk::RoomUpdate {
                room: Some(room.clone()),
            }));
        }
    }

    fn admin_mute(&mut self, identity: &str, track_sid: &str, muted: bool) -> AdminResult {
        let key = self.key_of(identity)?;
        let name = self.name.clone();
        let Some(p) = self.participants.get_mut(&key) else {
            return Err(TwirpError::participant_not_found(&name, identity));
        };
        let Some(t) = p.tracks.iter_mut().find(|t| t.info.sid == track_sid) else {
            return Err(TwirpError::NotFound(format!(
                "participant \"{identity}\" has no track \"{track_sid}\"; GetParticipant lists its tracks"
            )));
        };
        t.info.muted = muted;
        let track = t.key;
        let info = t.info.clone();
        p.bump();
        // The publisher's client mutes itself (and shows it); the media plane
        // stops forwarding at once either way.
        p.send(Resp::Mute(lk::MuteTrackRequest {
            sid: track_sid.to_string(),
            muted,
        }));
        let pinfo = p.info();
        self.media
            .send(self.key, Command::SetTrackMuted { track, muted });
        self.broadcast_update(vec![pinfo], None);
        info!(room = %self.name, %identity, track_sid, muted, "track mute set through the server API");
        Ok(AdminReply::Track(info))
    }

    fn admin_update_participant(&mut self, u: lk::UpdateParticipantRequest) -> AdminResult {
        let key = self.key_of(&u.identity)?;
        check_metadata(&u.metadata)?;
        let Some(p) = self.participants.get_mut(&key) else {
            return Err(TwirpError::participant_not_found(&self.name, &u.identity));
        };
        p.apply_profile(u.metadata, u.name, u.attributes);
        let mut data_permission = None;
        if let Some(perm) = u.permission {
            let g = &mut p.grant;
            if g.can_publish_data() != perm.can_publish_data {
                data_permission = Some(perm.can_publish_data);
            }
            g.can_subscribe = Some(perm.can_subscribe);
            g.can_publish = Some(perm.can_publish);
            g.can_publish_data = Some(perm.can_publish_data);
            g.can_publish_sources = perm
                .can_publish_sources
                .iter()
                .filter_map(|s| lk::TrackSource::try_from(*s).ok())
                .map(|s| source_name(s).to_string())
                .collect();
            g.hidden = perm.hidden;
            g.can_update_own_metadata = Some(perm.can_update_metadata);
        }
        p.bump();
        let info = p.info();
        let publisher = p.publisher;
        p.send(Resp::Update(lk::ParticipantUpdate {
            participants: vec![info.clone()],
        }));
        if let Some(can_publish_data) = data_permission {
            self.media.send(
                self.key,
                Command::UpdateDataPermission {
                    peer: publisher,
                    can_publish_data,
                },
            );
        }
        self.broadcast_update(vec![info.clone()], Some(key));
        Ok(AdminReply::Participant(info))
    }

    #[allow(deprecated)] // destination_sids: older SDKs still send it
    fn admin_send_data(&mut self, d: lk::SendDataRequest) -> AdminResult {
        let mut identities = d.destination_identities;
        for sid in &d.destination_sids {
            if let Some(p) = self.participants.values().find(|p| p.sid == *sid) {
                identities.push(p.identity.clone());
            }
        }
        if identities.is_empty() && !d.destination_sids.is_empty() {
            return Err(TwirpError::NotFound(format!(
                "none of destination_sids {:?} is in room \"{}\"",
                d.destination_sids, self.name
            )));
        }
        let reliable = d.kind != lk::data_packet::Kind::Lossy as i32;
        #[allow(deprecated)]
        let packet = lk::DataPacket {
            kind: d.kind,
            destination_identities: identities.clone(),
            value: Some(lk::data_packet::Value::User(lk::UserPacket {
                payload: d.data,
                destination_identities: identities.clone(),
                topic: d.topic,
                nonce: d.nonce,
                ..Default::default()
            })),
            ..Default::default()
        };
        self.media.send(
            self.key,
            Command::SendData {
                room: self.key,
                packet: packet.encode_to_vec(),
                reliable,
                destination_identities: identities,
            },
        );
        Ok(AdminReply::Done)
    }

    // ---- webhooks -------------------------------------------------------

    fn hook(
        &self,
        event: &str,
        participant: Option<lk::ParticipantInfo>,
        track: Option<lk::TrackInfo>,
    ) {
        if !self.ext.hooks.enabled() {
            return;
        }
        self.ext.hooks.emit(
            &self.name,
            lk::WebhookEvent {
                event: event.to_string(),
                room: Some(self.admin_room_info()),
                participant,
                track,
                created_at: unix_now(),
                ..Default::default()
            },
        );
    }

    pub(crate) fn hook_room(&self, event: &str) {
        self.hook(event, None, None);
    }

    pub(crate) fn hook_joined(&self, key: ParticipantKey) {
        if let Some(p) = self.participants.get(&key) {
            self.hook("participant_joined", Some(p.info()), None);
        }
    }

    /// A participant left: its tracks went with it, then it did.
    pub(crate) fn hook_left(&self, p: &Participant) {
        let info = p.info();
        for t in p.tracks.iter().filter(|t| t.bound) {
            self.hook(
                "track_unpublished",
                Some(info.clone()),
                Some(t.info.clone()),
            );
        }
        self.hook("participant_left", Some(p.disconnected_info()), None);
    }

    pub(crate) fn hook_track_published(&self, owner: ParticipantKey, track: TrackKey) {
        let Some(p) = self.participants.get(&owner) else {
            return;
        };
        if let Some(t) = p.tracks.iter().find(|t| t.key == track) {
            self.hook("track_published", Some(p.info()), Some(t.info.clone()));
        }
    }
}

fn check_metadata(m: &str) -> Result<(), TwirpError> {
    if m.len() > MAX_METADATA {
        return Err(TwirpError::InvalidArgument(format!(
            "metadata is {} bytes; the limit is {MAX_METADATA}",
            m.len()
        )));
    }
    Ok(())
}
