//! `GET` and `POST /api/rooms/{id}/chat`: a meeting's chat history.
//!
//! Both take the caller's LiveKit join token for that room as
//! `Authorization: Bearer`: whoever is in the meeting (a guest too, who has
//! no session) may read and add to its chat, under the identity and name
//! the token carries, and nobody else. A bearer token is not sent by the
//! browser on its own, so no CSRF check is needed.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::chat::{check, ChatMessage, HISTORY_WINDOW_MS};
use crate::error::ApiError;
use crate::App;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewMessage {
    id: String,
    text: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    id: String,
    identity: String,
    name: String,
    text: String,
    sent_at: i64,
}

impl From<ChatMessage> for MessageView {
    fn from(m: ChatMessage) -> Self {
        Self {
            id: m.id,
            identity: m.identity,
            name: m.name,
            text: m.body,
            sent_at: m.sent_ms,
        }
    }
}

#[derive(Serialize)]
pub struct History {
    messages: Vec<MessageView>,
}

/// Who is in the meeting, by their join token.
struct Member {
    identity: String,
    name: String,
}

fn member(app: &App, room: &str, headers: &HeaderMap) -> Result<Member, ApiError> {
    let refused = |why: &str| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "chat_token_invalid",
            format!("the chat takes the meeting's join token as Authorization: Bearer: {why}"),
        )
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| refused("none was sent"))?;
    let media = app.media_server()?;
    let keys =
        moim_proto::token::KeyStore::new([(media.api_key.clone(), media.api_secret.clone())]);
    let claims = keys.verify(token).map_err(|e| refused(&e.to_string()))?;
    if !claims.video.room_join || claims.video.room != room {
        return Err(refused("it is not a join token for this room"));
    }
    Ok(Member {
        name: if claims.name.is_empty() {
            claims.sub.clone()
        } else {
            claims.name
        },
        identity: claims.sub,
    })
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub async fn history(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<History>, ApiError> {
    member(&app, &id, &headers)?;
    let messages = app
        .store()
        .chat_history(&id, wall_ms() - HISTORY_WINDOW_MS)
        .await?;
    Ok(Json(History {
        messages: messages.into_iter().map(MessageView::from).collect(),
    }))
}

pub async fn post(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<MessageView>), ApiError> {
    let who = member(&app, &id, &headers)?;
    let ask: NewMessage = serde_json::from_slice(&body).map_err(ApiError::bad_json)?;
    let text = check(&ask.id, &ask.text)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_message", e.to_string()))?;
    app.store()
        .room(&id)
        .await?
        .ok_or_else(super::rooms::no_room)?;
    let kept = app
        .store()
        .add_chat(
            &id,
            &ChatMessage {
                id: ask.id,
                identity: who.identity,
                name: who.name,
                body: text,
                sent_ms: wall_ms(),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(kept.into())))
}
