//! What a room does with server-API (RoomService) requests. Every change
//! reaches connected clients through the same paths signaling uses.

use std::time::Duration;

use moim_proto::lk::{self, signal_response::Message as Resp};
use moim_sfu::Command;
use prost::Message as _;
use tracing::info;

use super::core::RoomCore;
use super::error::{check_metadata, RoomError};
use super::output::Now;
use super::participant::{source_name, Participant, ParticipantKey};

#[derive(Debug)]
pub enum AdminRequest {
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
pub enum AdminReply {
    Room(lk::Room),
    Participants(Vec<lk::ParticipantInfo>),
    Participant(lk::ParticipantInfo),
    Track(lk::TrackInfo),
    Done,
}

pub type AdminResult = Result<AdminReply, RoomError>;

impl RoomCore {
    pub fn handle_admin(&mut self, now: Now, req: AdminRequest) -> AdminResult {
        self.set_clock(now);
        let now = now.at;
        match req {
            AdminRequest::Configure {
                empty_timeout,
                max_participants,
                metadata,
            } => {
                if empty_timeout > 0 {
                    self.config.empty_timeout = Duration::from_secs(empty_timeout.into());
                }
                if max_participants > 0 {
                    self.config.max_participants = max_participants;
                }
                if !metadata.is_empty() {
                    check_metadata(&metadata)?;
                    self.set_room_metadata(metadata);
                }
                Ok(AdminReply::Room(self.room_info()))
            }
            AdminRequest::Info => Ok(AdminReply::Room(self.room_info())),
            AdminRequest::Delete => {
                self.remove_everyone(now, lk::DisconnectReason::RoomDeleted);
                self.deleted = true;
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
                self.remove_participant(now, key, lk::DisconnectReason::ParticipantRemoved);
                Ok(AdminReply::Done)
            }
            AdminRequest::Mute {
                identity,
                track_sid,
                muted,
            } => {
                self.speakers.touch(now);
                self.admin_mute(&identity, &track_sid, muted)
            }
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
                        return Err(RoomError::TrackNotFound {
                            room: self.name.clone(),
                            sid,
                        });
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
                Ok(AdminReply::Room(self.room_info()))
            }
        }
    }

    fn key_of(&self, identity: &str) -> Result<ParticipantKey, RoomError> {
        self.participants
            .values()
            .find(|p| p.identity == identity)
            .map(|p| p.key)
            .ok_or_else(|| self.not_found(identity))
    }

    fn not_found(&self, identity: &str) -> RoomError {
        RoomError::ParticipantNotFound {
            room: self.name.clone(),
            identity: identity.to_string(),
        }
    }

    fn set_room_metadata(&mut self, metadata: String) {
        self.metadata = metadata;
        let room = self.room_info();
        for p in self.participants.values() {
            self.out.tell(
                p,
                Resp::RoomUpdate(lk::RoomUpdate {
                    room: Some(room.clone()),
                }),
            );
        }
    }

    fn admin_mute(&mut self, identity: &str, track_sid: &str, muted: bool) -> AdminResult {
        let key = self.key_of(identity)?;
        let Some(p) = self.participants.get_mut(&key) else {
            return Err(self.not_found(identity));
        };
        let Some(t) = p.tracks.iter_mut().find(|t| t.info.sid == track_sid) else {
            return Err(RoomError::NotItsTrack {
                identity: identity.to_string(),
                sid: track_sid.to_string(),
            });
        };
        t.info.muted = muted;
        let track = t.key;
        let info = t.info.clone();
        p.bump();
        // The publisher's client mutes itself (and shows it); the media plane
        // stops forwarding at once either way.
        self.out.tell(
            p,
            Resp::Mute(lk::MuteTrackRequest {
                sid: track_sid.to_string(),
                muted,
            }),
        );
        let pinfo = p.info();
        self.out.media(Command::SetTrackMuted { track, muted });
        self.broadcast_update(vec![pinfo], None);
        info!(room = %self.name, %identity, track_sid, muted, "track mute set through the server API");
        Ok(AdminReply::Track(info))
    }

    fn admin_update_participant(&mut self, u: lk::UpdateParticipantRequest) -> AdminResult {
        let key = self.key_of(&u.identity)?;
        check_metadata(&u.metadata)?;
        let Some(p) = self.participants.get_mut(&key) else {
            return Err(self.not_found(&u.identity));
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
        self.out.tell(
            p,
            Resp::Update(lk::ParticipantUpdate {
                participants: vec![info.clone()],
            }),
        );
        if let Some(can_publish_data) = data_permission {
            self.out.media(Command::UpdateDataPermission {
                peer: publisher,
                can_publish_data,
            });
        }
        self.broadcast_update(vec![info.clone()], Some(key));
        // A reconnect must not bring back the grants the server API took.
        self.refresh_token(key);
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
            return Err(RoomError::NoDestination {
                room: self.name.clone(),
                sids: d.destination_sids,
            });
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
        self.out.media(Command::SendData {
            room: self.key,
            packet: packet.encode_to_vec(),
            reliable,
            destination_identities: identities,
        });
        Ok(AdminReply::Done)
    }
}
