//! How a room's decisions look on the signal connection: the one place that
//! builds LiveKit `LeaveRequest`s and `RequestResponse`s. (Close frames are
//! the connection's business, in `signal.rs`.)

use moim_proto::lk::{self, signal_response::Message as Resp};

use super::error::{JoinError, RoomError};

/// The leave a participant is sent when the server ends its session.
///
/// A server that shuts down sends its clients elsewhere: RECONNECT makes an
/// SDK join afresh at the same URL, which a load balancer that saw /healthz
/// turn 503 routes to another moim. A resume the server cannot honour also
/// asks for a fresh join. Every other reason is final.
pub fn leave(reason: lk::DisconnectReason) -> Resp {
    use lk::DisconnectReason as R;
    let comes_back = matches!(reason, R::ServerShutdown | R::StateMismatch);
    let action = if comes_back {
        lk::leave_request::Action::Reconnect
    } else {
        lk::leave_request::Action::Disconnect
    };
    Resp::Leave(lk::LeaveRequest {
        can_reconnect: comes_back,
        reason: reason as i32,
        action: action as i32,
        ..Default::default()
    })
}

/// Why a join was refused, as LiveKit says it.
pub fn join_refusal_reason(e: &JoinError) -> lk::DisconnectReason {
    match e {
        JoinError::RoomFull { .. } => lk::DisconnectReason::JoinFailure,
        JoinError::UnknownSession => lk::DisconnectReason::StateMismatch,
        JoinError::RoomClosed => lk::DisconnectReason::RoomClosed,
    }
}

/// A signal request the room refused. `request_id` is the client's, when
/// the request carried one.
pub fn refused(request_id: u32, e: &RoomError) -> Resp {
    use lk::request_response::Reason;
    let reason = match e {
        RoomError::NotAllowed(_) => Reason::NotAllowed,
        RoomError::LimitExceeded(_) | RoomError::MetadataTooLarge { .. } => Reason::LimitExceeded,
        RoomError::ParticipantNotFound { .. }
        | RoomError::TrackNotFound { .. }
        | RoomError::NotItsTrack { .. }
        | RoomError::NoDestination { .. } => Reason::NotFound,
    };
    Resp::RequestResponse(lk::RequestResponse {
        request_id,
        reason: reason as i32,
        message: e.to_string(),
        ..Default::default()
    })
}
