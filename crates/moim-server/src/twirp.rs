//! Twirp plumbing for the server API: errors in Twirp's `{"code","msg"}`
//! shape, JSON (protojson) and protobuf bodies, and bearer-token checks.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use moim_proto::token::{Claims, KeyStore};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::room::RoomError;

/// A Twirp error. Each message tells the caller what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwirpError {
    #[error("{0}")]
    BadRoute(String),
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Internal(String),
}

impl TwirpError {
    pub fn code(&self) -> &'static str {
        match self {
            TwirpError::BadRoute(_) => "bad_route",
            TwirpError::Malformed(_) => "malformed",
            TwirpError::InvalidArgument(_) => "invalid_argument",
            TwirpError::Unauthenticated(_) => "unauthenticated",
            TwirpError::PermissionDenied(_) => "permission_denied",
            TwirpError::NotFound(_) => "not_found",
            TwirpError::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            TwirpError::BadRoute(_) | TwirpError::NotFound(_) => StatusCode::NOT_FOUND,
            TwirpError::Malformed(_) | TwirpError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            TwirpError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            TwirpError::PermissionDenied(_) => StatusCode::FORBIDDEN,
            TwirpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn room_not_found(room: &str) -> Self {
        TwirpError::NotFound(format!(
            "room \"{room}\" does not exist (rooms are created by CreateRoom or by the first join, and close when empty)"
        ))
    }
}

/// A room's refusal, as the server API reports it.
impl From<RoomError> for TwirpError {
    fn from(e: RoomError) -> Self {
        let text = e.to_string();
        match e {
            RoomError::ParticipantNotFound { .. }
            | RoomError::TrackNotFound { .. }
            | RoomError::NotItsTrack { .. }
            | RoomError::NoDestination { .. } => TwirpError::NotFound(text),
            RoomError::MetadataTooLarge { .. } | RoomError::LimitExceeded(_) => {
                TwirpError::InvalidArgument(text)
            }
            RoomError::NotAllowed(_) => TwirpError::PermissionDenied(text),
        }
    }
}

impl IntoResponse for TwirpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.code(), "msg": self.to_string() });
        (
            self.status(),
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body.to_string(),
        )
            .into_response()
    }
}

/// The body format of a request, which is also the format of its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Protobuf,
}

impl BodyFormat {
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, TwirpError> {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        match mime {
            "application/json" => Ok(BodyFormat::Json),
            "application/protobuf" | "application/x-protobuf" => Ok(BodyFormat::Protobuf),
            other => Err(TwirpError::BadRoute(format!(
                "unexpected Content-Type \"{other}\"; send application/json or application/protobuf"
            ))),
        }
    }

    pub fn decode<T>(self, body: &[u8]) -> Result<T, TwirpError>
    where
        T: prost::Message + Default + DeserializeOwned,
    {
        match self {
            BodyFormat::Json => {
                let body = if body.iter().all(u8::is_ascii_whitespace) {
                    b"{}".as_slice()
                } else {
                    body
                };
                serde_json::from_slice(body).map_err(|e| {
                    TwirpError::Malformed(format!(
                        "the JSON body is not a valid {}: {e}",
                        short_type_name::<T>()
                    ))
                })
            }
            BodyFormat::Protobuf => T::decode(body).map_err(|e| {
                TwirpError::Malformed(format!(
                    "the protobuf body is not a valid {}: {e}",
                    short_type_name::<T>()
                ))
            }),
        }
    }

    pub fn encode<T>(self, msg: &T) -> Response
    where
        T: prost::Message + Serialize,
    {
        match self {
            BodyFormat::Json => match serde_json::to_vec(msg) {
                Ok(bytes) => (
                    StatusCode::OK,
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    bytes,
                )
                    .into_response(),
                Err(e) => {
                    TwirpError::Internal(format!("cannot encode the reply: {e}")).into_response()
                }
            },
            BodyFormat::Protobuf => (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/protobuf"),
                )],
                msg.encode_to_vec(),
            )
                .into_response(),
        }
    }
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// Verifies `Authorization: Bearer <token>`.
pub fn authenticate(keys: &KeyStore, headers: &HeaderMap) -> Result<Claims, TwirpError> {
    let token = crate::bearer::from_header(headers)
        .map_err(|e| TwirpError::Unauthenticated(e.to_string()))?
        .ok_or_else(|| {
            TwirpError::Unauthenticated(
                "no Authorization header; send \"Authorization: Bearer <token>\" with a token signed by your API key and secret".into(),
            )
        })?;
    keys.verify(token)
        .map_err(|e| TwirpError::Unauthenticated(e.to_string()))
}

/// The grant a RoomService method needs, as LiveKit checks it.
pub enum Need<'a> {
    /// `roomCreate`.
    Create,
    /// `roomList`.
    List,
    /// `roomAdmin` for this room.
    Admin(&'a str),
}

pub fn authorize(claims: &Claims, need: Need<'_>) -> Result<(), TwirpError> {
    let v = &claims.video;
    match need {
        Need::Create if !v.room_create => Err(TwirpError::PermissionDenied(
            "this token lacks the roomCreate grant, which creating and deleting rooms needs".into(),
        )),
        Need::List if !v.room_list => Err(TwirpError::PermissionDenied(
            "this token lacks the roomList grant, which listing rooms needs".into(),
        )),
        Need::Admin(_) if !v.room_admin => Err(TwirpError::PermissionDenied(
            "this token lacks the roomAdmin grant, which managing a room's participants needs".into(),
        )),
        Need::Admin(room) if v.room != room => Err(TwirpError::PermissionDenied(format!(
            "this token's room grant is \"{}\" but the request is for room \"{room}\"; mint a token with room \"{room}\"",
            v.room
        ))),
        _ => Ok(()),
    }
}
