//! What can go wrong in a room, as one type. Each wire maps it in one place:
//! the Twirp API in `twirp.rs`, the signal connection in `wire.rs`.

/// LiveKit caps metadata at 512 KiB; so does moim.
pub const MAX_METADATA: usize = 512 * 1024;

/// A join the room did not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("the room is full (max_participants {max})")]
    RoomFull { max: u32 },
    /// A resume for a session the room does not know (it expired, or the
    /// server restarted): the client must join afresh.
    #[error("the server does not know this session; join again")]
    UnknownSession,
    #[error("the room closed while joining; try again")]
    RoomClosed,
}

/// A request to a room that it refused, from a participant or the server API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    #[error("participant \"{identity}\" is not in room \"{room}\"; ListParticipants shows who is")]
    ParticipantNotFound { room: String, identity: String },
    #[error("track \"{sid}\" is not published in room \"{room}\"")]
    TrackNotFound { room: String, sid: String },
    #[error("participant \"{identity}\" has no track \"{sid}\"; GetParticipant lists its tracks")]
    NotItsTrack { identity: String, sid: String },
    #[error("none of destination_sids {sids:?} is in room \"{room}\"")]
    NoDestination { room: String, sids: Vec<String> },
    #[error("metadata is {len} bytes; the limit is {MAX_METADATA}")]
    MetadataTooLarge { len: usize },
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    LimitExceeded(String),
}

/// Metadata (a participant's or the room's) within LiveKit's limit.
pub(super) fn check_metadata(m: &str) -> Result<(), RoomError> {
    if m.len() > MAX_METADATA {
        return Err(RoomError::MetadataTooLarge { len: m.len() });
    }
    Ok(())
}
