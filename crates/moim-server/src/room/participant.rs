//! A participant as the control plane sees it: identity, grants, tracks and
//! which signal connection is current.

use std::time::Instant;

use moim_proto::lk;
use moim_proto::token::VideoGrant;
use moim_sfu::codec::VideoCodec;
use moim_sfu::{PeerKey, TrackKey};

use super::tokens::TokenOrigin;
use crate::client_info::ClientProfile;

/// One signal connection (WebSocket) of a participant. A participant that
/// resumes gets a new one; messages for the old one are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// A participant, within its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantKey(pub u64);

impl std::fmt::Display for ParticipantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

pub struct PublishedTrack {
    pub key: TrackKey,
    pub info: lk::TrackInfo,
    /// Set once the client's SDP carried the track.
    pub bound: bool,
    pub layers: Vec<lk::VideoLayer>,
    /// The video codec as the client named it when publishing ("vp8"):
    /// livekit-client matches dynacast updates by this name, even when the
    /// codec announced to others became another one.
    pub client_codec: String,
}

impl PublishedTrack {
    /// Announces the codec that flows, wherever `TrackInfo` names it.
    /// Returns whether anything changed.
    pub fn set_video_codec(&mut self, codec: VideoCodec) -> bool {
        let Some(mime) = codec.mime() else {
            return false;
        };
        if self.info.mime_type == mime {
            return false;
        }
        self.info.mime_type = mime.to_string();
        if let Some(c) = self.info.codecs.first_mut() {
            c.mime_type = mime.to_string();
        }
        true
    }
}

pub struct Participant {
    pub key: ParticipantKey,
    pub sid: String,
    pub identity: String,
    pub name: String,
    pub metadata: String,
    pub attributes: std::collections::HashMap<String, String>,
    pub grant: VideoGrant,
    pub single_pc: bool,
    pub auto_subscribe: bool,
    /// The PeerConnection the client publishes on (the only one in v1).
    pub publisher: PeerKey,
    /// The PeerConnection the client receives on.
    pub receiver: PeerKey,
    pub tracks: Vec<PublishedTrack>,
    pub subscriptions: Vec<TrackKey>,
    /// The signal connection that is current; `None` while the participant
    /// may still resume. Input from any other connection is ignored.
    pub connection: Option<ConnectionId>,
    pub disconnected_at: Option<Instant>,
    pub version: u32,
    pub joined_at: i64,
    pub active: bool,
    /// What the client said about itself; mirrored to the other clients.
    pub client: ClientProfile,
    /// The token it joined with, for the fresh ones it is sent.
    pub token: TokenOrigin,
    /// When it is next sent a fresh token; `None` without a connection.
    pub token_refresh_due: Option<Instant>,
}

impl Participant {
    pub fn hidden(&self) -> bool {
        self.grant.hidden
    }

    /// A metadata/name/attributes update, from the participant itself or the
    /// server API: empty metadata or name leave the old value, an attribute
    /// set to "" is removed (LiveKit's semantics).
    pub fn apply_profile(
        &mut self,
        metadata: String,
        name: String,
        attributes: std::collections::HashMap<String, String>,
    ) {
        if !metadata.is_empty() {
            self.metadata = metadata;
        }
        if !name.is_empty() {
            self.name = name;
        }
        self.attributes.extend(attributes);
        self.attributes.retain(|_, v| !v.is_empty());
    }

    pub fn bump(&mut self) {
        self.version += 1;
    }

    pub fn info(&self) -> lk::ParticipantInfo {
        let state = if self.active {
            lk::participant_info::State::Active
        } else {
            lk::participant_info::State::Joined
        };
        lk::ParticipantInfo {
            sid: self.sid.clone(),
            identity: self.identity.clone(),
            name: self.name.clone(),
            metadata: self.metadata.clone(),
            attributes: self.attributes.clone(),
            state: state as i32,
            tracks: self
                .tracks
                .iter()
                .filter(|t| t.bound)
                .map(|t| t.info.clone())
                .collect(),
            joined_at: self.joined_at,
            joined_at_ms: self.joined_at * 1000,
            version: self.version,
            permission: Some(self.permission()),
            is_publisher: self.tracks.iter().any(|t| t.bound),
            kind: lk::participant_info::Kind::Standard as i32,
            client_protocol: self.client.client_protocol,
            capabilities: self.client.capabilities.clone(),
            ..Default::default()
        }
    }

    pub fn disconnected_info(&self) -> lk::ParticipantInfo {
        let mut info = self.info();
        info.state = lk::participant_info::State::Disconnected as i32;
        info.tracks.clear();
        info.version = self.version + 1;
        info
    }

    pub fn permission(&self) -> lk::ParticipantPermission {
        let g = &self.grant;
        lk::ParticipantPermission {
            can_subscribe: g.can_subscribe(),
            can_publish: g.can_publish(),
            can_publish_data: g.can_publish_data(),
            can_publish_sources: g
                .can_publish_sources
                .iter()
                .filter_map(|s| source_from_name(s))
                .map(|s| s as i32)
                .collect(),
            hidden: g.hidden,
            can_update_metadata: g.can_update_own_metadata(),
            ..Default::default()
        }
    }
}

/// Grant source names as LiveKit tokens spell them.
pub fn source_from_name(name: &str) -> Option<lk::TrackSource> {
    Some(match name {
        "camera" => lk::TrackSource::Camera,
        "microphone" => lk::TrackSource::Microphone,
        "screen_share" => lk::TrackSource::ScreenShare,
        "screen_share_audio" => lk::TrackSource::ScreenShareAudio,
        _ => return None,
    })
}

pub fn source_name(source: lk::TrackSource) -> &'static str {
    match source {
        lk::TrackSource::Camera => "camera",
        lk::TrackSource::Microphone => "microphone",
        lk::TrackSource::ScreenShare => "screen_share",
        lk::TrackSource::ScreenShareAudio => "screen_share_audio",
        _ => "unknown",
    }
}
