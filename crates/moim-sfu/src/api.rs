//! The contract between the control plane and the media plane: commands in,
//! events out. Commands are never dropped: a room waits for room in its
//! shard's command queue. Events go to the room's own channel.

use std::collections::HashMap;

use tokio::sync::mpsc::UnboundedSender;

use crate::codec::VideoCodec;

macro_rules! key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

key!(
    /// A room, as the media plane knows it: all its peers live on one shard.
    RoomKey
);
key!(
    /// One PeerConnection.
    PeerKey
);
key!(
    /// One published track.
    TrackKey
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRole {
    /// `/rtc` publisher PeerConnection: the client offers.
    Publisher,
    /// `/rtc` subscriber PeerConnection: the server offers.
    Subscriber,
    /// `/rtc/v1`: one PeerConnection, the client always offers.
    Single,
}

impl PeerRole {
    /// The PeerConnection that delivers media and data to the participant.
    pub fn receives(self) -> bool {
        matches!(self, PeerRole::Subscriber | PeerRole::Single)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    Audio,
    Video,
}

#[derive(Debug, Clone)]
pub struct PeerSpec {
    pub room: RoomKey,
    pub peer: PeerKey,
    pub role: PeerRole,
    pub participant_sid: String,
    pub identity: String,
    pub can_publish_data: bool,
    /// The client takes LiveKit packet trailers off itself
    /// (`CAP_PACKET_TRAILER`); others get frames without them.
    pub accepts_packet_trailer: bool,
}

#[derive(Debug)]
pub enum Command {
    /// A room starts: its peers' events go to `events`. Comes before any
    /// other command for the room.
    OpenRoom {
        room: RoomKey,
        events: UnboundedSender<MediaEvent>,
    },
    /// The room has closed (its peers were removed before).
    CloseRoom {
        room: RoomKey,
    },
    AddPeer(PeerSpec),
    RemovePeer {
        peer: PeerKey,
    },
    /// A client offer. Answered with [`PeerEvent::Answer`].
    Offer {
        peer: PeerKey,
        sdp: String,
        id: u32,
    },
    /// The client's answer to a server offer.
    Answer {
        peer: PeerKey,
        sdp: String,
        id: u32,
    },
    Candidate {
        peer: PeerKey,
        candidate: String,
    },
    /// A track announced by `AddTrackRequest`; bound to an SDP section when
    /// the client's offer carries a media line with this cid (or, failing
    /// that, the first unbound line of the same kind).
    ExpectTrack {
        peer: PeerKey,
        track: TrackKey,
        track_sid: String,
        cid: String,
        kind: TrackKind,
        /// The video codec the client asked for (`simulcast_codecs`); the
        /// answer lists it first in the track's section.
        codec: Option<VideoCodec>,
        /// The publisher declared packet-trailer features: its frames end
        /// with a LiveKit packet trailer.
        packet_trailer: bool,
        /// A screen share: served before cameras when a subscriber's
        /// downlink is short (see `allocate.rs`).
        screen_share: bool,
    },
    RemoveTrack {
        track: TrackKey,
    },
    Subscribe {
        peer: PeerKey,
        track: TrackKey,
    },
    Unsubscribe {
        peer: PeerKey,
        track: TrackKey,
    },
    /// Adaptive stream and explicit settings: disabled pauses, max_layer
    /// caps, max_fps leaves out temporal layers above that frame rate.
    TrackSettings {
        peer: PeerKey,
        track: TrackKey,
        disabled: bool,
        max_layer: usize,
        max_fps: Option<u32>,
    },
    /// Server-side ICE restart of a subscriber PeerConnection (resume).
    RestartIce {
        peer: PeerKey,
    },
    /// Server-side mute (RoomService MutePublishedTrack): every subscriber's
    /// forwarder of the track pauses, or resumes.
    SetTrackMuted {
        track: TrackKey,
        muted: bool,
    },
    /// Data from the server API, delivered to the room's participants.
    SendData {
        room: RoomKey,
        packet: Vec<u8>,
        reliable: bool,
        destination_identities: Vec<String>,
    },
    UpdateDataPermission {
        peer: PeerKey,
        can_publish_data: bool,
    },
}

#[derive(Debug)]
pub struct MediaEvent {
    pub peer: PeerKey,
    pub event: PeerEvent,
}

#[derive(Debug)]
pub enum PeerEvent {
    Answer {
        sdp: String,
        id: u32,
        mid_to_track_id: HashMap<String, String>,
    },
    Offer {
        sdp: String,
        id: u32,
        mid_to_track_id: HashMap<String, String>,
    },
    /// Single-PC mode: ask the client to add receive sections and re-offer.
    NeedMediaSections {
        audio: u32,
        video: u32,
    },
    /// A client SDP could not be applied.
    NegotiationFailed(NegotiationError),
    TrackBound {
        track: TrackKey,
        mid: String,
        /// For video, the codec the answer lists first for the section: the
        /// one the client will send.
        codec: Option<VideoCodec>,
    },
    /// A published video track's RTP carries another codec than the one
    /// last reported (the client ignored the answer's order, or changed).
    TrackCodec {
        track: TrackKey,
        codec: VideoCodec,
    },
    /// A subscriber's answer accepted none of the formats moim offered for
    /// this track (its codec), so nothing can be forwarded to it.
    SubscriptionUnusable {
        track: TrackKey,
        reason: String,
    },
    /// A published audio track's level changed (see `audio_level.rs`): 0
    /// for no voice, else the linear amplitude of its voice, in (0, 1].
    /// Reported at most every `audio_level::LEVEL_WINDOW`.
    AudioLevel {
        track: TrackKey,
        level: f32,
    },
    /// A subscriber's downlink has no room for even the lowest layer of
    /// this video track (`active: false`), or has room again (see
    /// `allocate.rs`). For `stream_state_update`.
    StreamState {
        track: TrackKey,
        active: bool,
    },
    /// The link's quality changed (see `quality.rs`); worked out every
    /// `quality::QUALITY_WINDOW` once the PeerConnection is up.
    LinkQuality {
        quality: crate::quality::LinkQuality,
        score: f32,
    },
    Connected,
    Disconnected,
    /// Keyframes were requested from this publisher's track (for logs/metrics).
    Closed,
}

/// Why a client's SDP was not applied. The peer connection stays as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error("client offer is not valid SDP: {0}")]
    OfferNotSdp(String),
    #[error("client offer cannot be applied: {0}")]
    OfferRefused(String),
    #[error("client answer is not valid SDP: {0}")]
    AnswerNotSdp(String),
    #[error("client answer cannot be applied: {0}")]
    AnswerRefused(String),
    #[error("answer id {got} does not match the outstanding offer {expected}; ignored")]
    StaleAnswer { got: u32, expected: u32 },
    #[error("answer without an outstanding server offer; ignored")]
    NoOfferOutstanding,
}
