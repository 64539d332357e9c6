//! What a host does to a meeting in progress: mute someone, remove
//! someone, end it for everyone. Each goes to the media server through its
//! RoomService (Twirp, with LiveKit's own Rust server SDK), signed with the
//! server's API key, exactly as any server SDK would; so these work the
//! same whether the app runs inside `moim serve` or on its own.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use axum_extra::extract::CookieJar;
use livekit_api::services::room::RoomClient;
use livekit_api::services::{ServerError, ServiceError};
use serde::{Deserialize, Serialize};

use super::join::optional_json;
use crate::error::ApiError;
use crate::App;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MuteAsk {
    /// One track; by default every microphone track of the participant.
    track_sid: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Muted {
    muted: Vec<String>,
}

impl App {
    /// Checks the caller hosts `room` and gives a RoomService client for
    /// the media server.
    async fn as_host(
        &self,
        room: &str,
        headers: &HeaderMap,
        jar: &CookieJar,
    ) -> Result<RoomClient, ApiError> {
        self.check_state_change(headers, jar)?;
        self.hosted_room(room, jar).await?;
        let livekit = self.media_server()?;
        let http_url = livekit
            .server_url
            .replacen("wss://", "https://", 1)
            .replacen("ws://", "http://", 1);
        Ok(RoomClient::with_api_key(
            &http_url,
            &livekit.api_key,
            &livekit.api_secret,
        ))
    }
}

/// The media server's answer as the app API says it.
fn media_failed(what: &str, e: ServiceError) -> ApiError {
    match e {
        ServiceError::Twirp(ServerError::Twirp(t)) if t.code == "not_found" => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_in_meeting",
            format!(
                "{what}: nobody by that identity is in the meeting, or the meeting is not running"
            ),
        ),
        other => {
            tracing::warn!(
                "{what}: the media server's RoomService failed: {other}. Check that the app's \
                 server URL reaches the moim server and that its API key and secret are that \
                 server's"
            );
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "media_server_failed",
                "the media server did not do it; the app's log says why",
            )
        }
    }
}

pub async fn mute(
    State(app): State<App>,
    Path((room, identity)): Path<(String, String)>,
    headers: HeaderMap,
    jar: CookieJar,
    body: Bytes,
) -> Result<Json<Muted>, ApiError> {
    let ask: MuteAsk = optional_json(&body)?;
    let client = app.as_host(&room, &headers, &jar).await?;
    let sids = match ask.track_sid {
        Some(sid) => vec![sid],
        None => {
            let p = client
                .get_participant(&room, &identity)
                .await
                .map_err(|e| media_failed("mute", e))?;
            p.tracks
                .iter()
                .filter(|t| t.r#type == moim_proto::lk::TrackType::Audio as i32)
                .filter(|t| !t.muted)
                .map(|t| t.sid.clone())
                .collect()
        }
    };
    for sid in &sids {
        client
            .mute_published_track(&room, &identity, sid, true)
            .await
            .map_err(|e| media_failed("mute", e))?;
    }
    tracing::info!(room = %room, identity = %identity, tracks = sids.len(), "a host muted a participant");
    Ok(Json(Muted { muted: sids }))
}

pub async fn remove(
    State(app): State<App>,
    Path((room, identity)): Path<(String, String)>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<StatusCode, ApiError> {
    let client = app.as_host(&room, &headers, &jar).await?;
    client
        .remove_participant(&room, &identity)
        .await
        .map_err(|e| media_failed("remove", e))?;
    tracing::info!(room = %room, identity = %identity, "a host removed a participant");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn end(
    State(app): State<App>,
    Path(room): Path<String>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<StatusCode, ApiError> {
    let client = app.as_host(&room, &headers, &jar).await?;
    client
        .delete_room(&room)
        .await
        .map_err(|e| media_failed("end the meeting", e))?;
    tracing::info!(room = %room, "a host ended the meeting for everyone");
    Ok(StatusCode::NO_CONTENT)
}
