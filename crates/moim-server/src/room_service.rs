//! `POST /twirp/livekit.RoomService/<Method>`: LiveKit's server API. Each
//! call is checked here (auth, grants, body), then handed to the room actor
//! as a [`RoomInput::Admin`], which applies it to connected clients at once.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use moim_proto::lk;
use tokio::sync::oneshot;
use tracing::debug;

use crate::room::{AdminReply, AdminRequest, RoomHandle, RoomInput};
use crate::twirp::{authenticate, authorize, BodyFormat, Need, TwirpError};
use crate::AppState;

const SERVICE: &str = "livekit.RoomService";
/// A room actor answers within microseconds; this only guards against a
/// room that closes while the call is queued.
const ROOM_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn handle(
    State(state): State<AppState>,
    Path(path): Path<String>,
    http_method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (service, method) = path.split_once('/').unwrap_or((path.as_str(), ""));
    if http_method != Method::POST {
        return TwirpError::BadRoute(format!(
            "Twirp methods are called with POST, not {http_method}"
        ))
        .into_response();
    }
    match call(&state, service, method, &headers, &body).await {
        Ok(r) => r,
        Err(e) => {
            debug!(%service, %method, code = e.code(), "twirp call refused: {e}");
            e.into_response()
        }
    }
}

async fn call(
    state: &AppState,
    service: &str,
    method: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, TwirpError> {
    if service != SERVICE || !METHODS.contains(&method) {
        return Err(TwirpError::BadRoute(format!(
            "no such method \"{service}/{method}\"; {SERVICE} has {}",
            METHODS.join(", ")
        )));
    }
    let fmt = BodyFormat::from_headers(headers)?;
    let claims = authenticate(&state.config.keys, headers)?;
    macro_rules! rpc {
        ($req:ident : $ty:ty => $body:expr) => {{
            let $req: $ty = fmt.decode(body)?;
            let reply = $body;
            Ok(fmt.encode(&reply))
        }};
    }
    match method {
        "CreateRoom" => rpc!(req: lk::CreateRoomRequest => {
            authorize(&claims, Need::Create)?;
            if req.name.is_empty() {
                return Err(TwirpError::InvalidArgument("CreateRoom needs a room name".into()));
            }
            let room = state.rooms.get_or_create(&req.name);
            let reply = ask(&room, &req.name, AdminRequest::Configure {
                empty_timeout: req.empty_timeout,
                max_participants: req.max_participants,
                metadata: req.metadata,
            }).await?;
            room_of(reply)?
        }),
        "ListRooms" => rpc!(req: lk::ListRoomsRequest => {
            authorize(&claims, Need::List)?;
            let mut rooms = Vec::new();
            for (name, tx) in state.rooms.list() {
                if !req.names.is_empty() && !req.names.contains(&name) {
                    continue;
                }
                // A room that closed meanwhile is simply not listed.
                if let Ok(AdminReply::Room(r)) = ask(&tx, &name, AdminRequest::Info).await {
                    rooms.push(r);
                }
            }
            rooms.sort_by(|a, b| a.name.cmp(&b.name));
            lk::ListRoomsResponse { rooms }
        }),
        "DeleteRoom" => rpc!(req: lk::DeleteRoomRequest => {
            authorize(&claims, Need::Create)?;
            let tx = state.rooms.remove(&req.room).ok_or_else(|| TwirpError::room_not_found(&req.room))?;
            ask(&tx, &req.room, AdminRequest::Delete).await?;
            lk::DeleteRoomResponse {}
        }),
        "ListParticipants" => rpc!(req: lk::ListParticipantsRequest => {
            authorize(&claims, Need::Admin(&req.room))?;
            match admin(state, &req.room, AdminRequest::ListParticipants).await? {
                AdminReply::Participants(participants) => lk::ListParticipantsResponse { participants },
                other => return Err(unexpected(other)),
            }
        }),
        "GetParticipant" => rpc!(req: lk::RoomParticipantIdentity => {
            authorize(&claims, Need::Admin(&req.room))?;
            participant_of(admin(state, &req.room, AdminRequest::GetParticipant(req.identity)).await?)?
        }),
        "RemoveParticipant" => rpc!(req: lk::RoomParticipantIdentity => {
            authorize(&claims, Need::Admin(&req.room))?;
            admin(state, &req.room, AdminRequest::RemoveParticipant(req.identity)).await?;
            lk::RemoveParticipantResponse {}
        }),
        "MutePublishedTrack" => rpc!(req: lk::MuteRoomTrackRequest => {
            authorize(&claims, Need::Admin(&req.room))?;
            let request = AdminRequest::Mute { identity: req.identity, track_sid: req.track_sid, muted: req.muted };
            match admin(state, &req.room, request).await? {
                AdminReply::Track(t) => lk::MuteRoomTrackResponse { track: Some(t) },
                other => return Err(unexpected(other)),
            }
        }),
        "UpdateParticipant" => rpc!(req: lk::UpdateParticipantRequest => {
            authorize(&claims, Need::Admin(&req.room))?;
            let room = req.room.clone();
            participant_of(admin(state, &room, AdminRequest::UpdateParticipant(req)).await?)?
        }),
        "UpdateSubscriptions" => rpc!(req: lk::UpdateSubscriptionsRequest => {
            authorize(&claims, Need::Admin(&req.room))?;
            let room = req.room.clone();
            admin(state, &room, AdminRequest::UpdateSubscriptions(req)).await?;
            lk::UpdateSubscriptionsResponse {}
        }),
        "SendData" => rpc!(req: lk::SendDataRequest => {
            authorize(&claims, Need::Admin(&req.room))?;
            let room = req.room.clone();
            admin(state, &room, AdminRequest::SendData(req)).await?;
            lk::SendDataResponse {}
        }),
        "UpdateRoomMetadata" => rpc!(req: lk::UpdateRoomMetadataRequest => {
            authorize(&claims, Need::Admin(&req.room))?;
            room_of(admin(state, &req.room, AdminRequest::UpdateRoomMetadata(req.metadata)).await?)?
        }),
        _ => Err(TwirpError::BadRoute(format!(
            "method \"{method}\" is not served"
        ))),
    }
}

const METHODS: &[&str] = &[
    "CreateRoom",
    "ListRooms",
    "DeleteRoom",
    "ListParticipants",
    "GetParticipant",
    "RemoveParticipant",
    "MutePublishedTrack",
    "UpdateParticipant",
    "UpdateSubscriptions",
    "SendData",
    "UpdateRoomMetadata",
];

/// Sends a request to an existing room.
async fn admin(state: &AppState, room: &str, req: AdminRequest) -> Result<AdminReply, TwirpError> {
    let tx = state
        .rooms
        .get(room)
        .ok_or_else(|| TwirpError::room_not_found(room))?;
    ask(&tx, room, req).await
}

async fn ask(tx: &RoomHandle, room: &str, req: AdminRequest) -> Result<AdminReply, TwirpError> {
    let (reply_tx, reply_rx) = oneshot::channel();
    tx.send(RoomInput::Admin(req, reply_tx))
        .map_err(|_| TwirpError::room_not_found(room))?;
    match tokio::time::timeout(ROOM_ANSWER_TIMEOUT, reply_rx).await {
        Ok(Ok(result)) => result.map_err(TwirpError::from),
        Ok(Err(_)) => Err(TwirpError::room_not_found(room)),
        Err(_) => Err(TwirpError::Internal(format!(
            "room \"{room}\" did not answer within {ROOM_ANSWER_TIMEOUT:?}"
        ))),
    }
}

fn room_of(reply: AdminReply) -> Result<lk::Room, TwirpError> {
    match reply {
        AdminReply::Room(r) => Ok(r),
        other => Err(unexpected(other)),
    }
}

fn participant_of(reply: AdminReply) -> Result<lk::ParticipantInfo, TwirpError> {
    match reply {
        AdminReply::Participant(p) => Ok(p),
        other => Err(unexpected(other)),
    }
}

fn unexpected(reply: AdminReply) -> TwirpError {
    TwirpError::Internal(format!("the room answered unexpectedly: {reply:?}"))
}
