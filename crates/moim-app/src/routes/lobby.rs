//! The lobby over HTTP. A guest's first join in a room with the lobby on
//! answers `202` and a ticket (`enter`); asking again with the ticket
//! holds the request until a host decides, up to `LONG_POLL`, and then
//! answers the LiveKit token, `403 lobby_denied`, or `202` again (`wait`).
//! Hosts watch who waits as server-sent events, or read it as JSON, and
//! admit or deny each ticket.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_extra::extract::CookieJar;
use serde::Serialize;

use super::join::{Guest, Joiner};
use crate::error::ApiError;
use crate::lobby::{Ticket, TicketState, LOBBY_TTL};
use crate::{random_id, random_token, token_hash, App};

/// How long a guest's request waits for a host's decision before it
/// answers `202` again (under the 60 s idle timeout of common proxies).
const LONG_POLL: Duration = Duration::from_secs(25);
/// Hosts' streams are sent the list this often anyway, so lapsed tickets
/// drop out and a proxy sees traffic.
const RESEND: Duration = Duration::from_secs(15);

/// A guest enters the lobby: the ticket's secret, for asking again.
pub(super) async fn enter(
    app: &App,
    room: &str,
    name: &str,
    identity: &str,
) -> Result<String, ApiError> {
    let secret = random_token(24);
    let now = app.now();
    let ticket = Ticket {
        id: random_id("LT_"),
        room_id: room.to_string(),
        name: name.to_string(),
        identity: identity.to_string(),
        state: TicketState::Waiting,
        created_at: now,
        expires_at: now + LOBBY_TTL,
    };
    app.store()
        .add_ticket(&ticket, &token_hash(&secret))
        .await?;
    app.0.lobby_bell.ring(room);
    tracing::info!(room, ticket = %ticket.id, "a guest waits in the lobby");
    Ok(secret)
}

/// A guest asks again with their ticket.
pub(super) async fn wait(app: &App, room: &str, secret: &str) -> Result<Guest, ApiError> {
    let mut bell = app.0.lobby_bell.watch(room);
    let deadline = tokio::time::Instant::now() + LONG_POLL;
    loop {
        let ticket = app
            .store()
            .ticket_by_secret(room, &token_hash(secret))
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "ticket_unknown",
                    "this lobby ticket is not for this room: join again with the invite",
                )
            })?;
        match ticket.state {
            TicketState::Admitted => {
                return Ok(Guest::In(Joiner {
                    identity: ticket.identity,
                    name: ticket.name,
                    host: false,
                }))
            }
            TicketState::Denied => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "lobby_denied",
                    "the host did not let you in",
                ))
            }
            TicketState::Waiting if ticket.expires_at <= app.now() => {
                return Err(ApiError::new(
                    StatusCode::GONE,
                    "lobby_lapsed",
                    "no host let you in in time: join again with the invite to wait once more",
                ))
            }
            TicketState::Waiting => {}
        }
        let rang = tokio::time::timeout_at(deadline, bell.changed()).await;
        if !matches!(rang, Ok(Ok(()))) {
            return Ok(Guest::Waiting(secret.to_string()));
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WaitingGuest {
    id: String,
    name: String,
    since: i64,
}

#[derive(Serialize)]
struct LobbyView {
    waiting: Vec<WaitingGuest>,
}

async fn lobby_view(app: &App, room: &str) -> Result<LobbyView, ApiError> {
    let waiting = app.store().waiting(room, app.now()).await?;
    Ok(LobbyView {
        waiting: waiting
            .into_iter()
            .map(|t| WaitingGuest {
                id: t.id,
                name: t.name,
                since: t.created_at,
            })
            .collect(),
    })
}

/// `GET /api/rooms/{id}/lobby`: who waits, as JSON, or with `Accept:
/// text/event-stream` as a stream of `lobby` events, one at once and one
/// on every change.
pub async fn show(
    State(app): State<App>,
    Path(room): Path<String>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<Response, ApiError> {
    app.hosted_room(&room, &jar).await?;
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if !wants_stream {
        return Ok(Json(lobby_view(&app, &room).await?).into_response());
    }
    let bell = app.0.lobby_bell.watch(&room);
    let stream = futures_util::stream::unfold(
        (app, room, bell, true),
        |(app, room, mut bell, first)| async move {
            if !first {
                // A change, or the resend tick; a closed bell ends nothing.
                let _ = tokio::time::timeout(RESEND, bell.changed()).await;
            }
            let event = match lobby_view(&app, &room).await {
                Ok(view) => Event::default()
                    .event("lobby")
                    .json_data(&view)
                    .unwrap_or_else(|_| Event::default().event("lobby")),
                Err(e) => Event::default().event("error").data(e.code),
            };
            Some((Ok::<_, Infallible>(event), (app, room, bell, false)))
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

async fn decide(
    app: App,
    room: String,
    ticket: String,
    headers: HeaderMap,
    jar: CookieJar,
    state: TicketState,
) -> Result<StatusCode, ApiError> {
    app.check_state_change(&headers, &jar)?;
    app.hosted_room(&room, &jar).await?;
    if !app
        .store()
        .decide_ticket(&room, &ticket, state, app.now())
        .await?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ticket_unknown",
            "nobody waits with that ticket: already let in or turned away, or they left",
        ));
    }
    app.0.lobby_bell.ring(&room);
    tracing::info!(room = %room, ticket = %ticket, ?state, "a host decided on a guest in the lobby");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn admit(
    State(app): State<App>,
    Path((room, ticket)): Path<(String, String)>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<StatusCode, ApiError> {
    decide(app, room, ticket, headers, jar, TicketState::Admitted).await
}

pub async fn deny(
    State(app): State<App>,
    Path((room, ticket)): Path<(String, String)>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<StatusCode, ApiError> {
    decide(app, room, ticket, headers, jar, TicketState::Denied).await
}
