//! What the client tells its user: [`ClientEvent`], and the [`LocalTrack`] a publish returns.

use livekit_protocol::{self as proto, signal_response, JoinResponse};

use crate::peer::Target;

/// Kind of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    Audio,
    Video,
}

/// What the client tells the test.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The `join` response; always the first event.
    Joined(Box<JoinResponse>),
    /// The server accepted a resume (`reconnect` response, or any first frame that is not
    /// `leave`).
    Reconnected(Box<proto::ReconnectResponse>),
    ParticipantJoined {
        identity: String,
        sid: String,
    },
    ParticipantUpdated {
        identity: String,
        sid: String,
    },
    ParticipantDisconnected {
        identity: String,
        sid: String,
    },
    /// A remote participant published a track (from `join` or `update`).
    TrackPublished {
        participant_sid: String,
        participant_identity: String,
        track: Box<proto::TrackInfo>,
    },
    TrackUnpublished {
        track_sid: String,
    },
    /// The subscriber PC gained a media section for a remote track.
    TrackSubscribed {
        participant_sid: String,
        track_sid: String,
        mid: String,
        kind: TrackKind,
    },
    /// The first RTP packet of a subscribed track arrived.
    MediaReceived {
        track_sid: String,
        mid: String,
        ssrc: u32,
        rid: Option<String>,
    },
    /// ICE and DTLS completed on a PeerConnection.
    PeerConnected(Target),
    PeerDisconnected(Target),
    /// ICE found a working pair: on the first connect, and again after each ICE
    /// restart (unlike [`ClientEvent::PeerConnected`], which DTLS sends once).
    IceConnected(Target),
    DataReceived {
        from_identity: String,
        from_sid: String,
        payload: Vec<u8>,
        topic: Option<String>,
        reliable: bool,
        /// Which PC's channel carried it.
        via: Target,
    },
    /// The server sent `leave`.
    Left {
        reason: proto::DisconnectReason,
        action: proto::leave_request::Action,
        can_reconnect: bool,
    },
    /// The WebSocket closed (by the server, by [`crate::Client::close_ws_only`], or broke).
    SignalClosed {
        reason: String,
    },
    /// Every server message, when [`crate::ConnectOptions::forward_signal`] is set.
    Signal(Box<signal_response::Message>),
    /// Something went wrong that does not end the session.
    Error(String),
}

/// A track this client published.
#[derive(Debug, Clone)]
pub struct LocalTrack {
    pub cid: String,
    pub sid: String,
    pub mid: String,
    pub kind: TrackKind,
    /// SSRC per layer (`rid`, `ssrc`), lowest layer first.
    pub ssrcs: Vec<(Option<String>, u32)>,
    pub info: proto::TrackInfo,
}
