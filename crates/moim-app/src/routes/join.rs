//! Coming into a room: invite links (`POST /api/rooms/{id}/invites`) and
//! the join endpoint, which answers a LiveKit access token for that room.
//!
//! A logged-in user joins any room whose link they have (the id is not
//! guessable), as host if they host it. Someone without an account joins
//! as a guest: with an invite, in a room that allows guests, under the
//! name they typed. A guest has no session, so the join checks `Origin`
//! and is rate-limited per address instead of carrying a CSRF token.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};

use super::auth::person_name;
use super::rooms::no_room;
use crate::error::ApiError;
use crate::guard::ClientIp;
use crate::invites::{Invite, Spent};
use crate::rooms::Role;
use crate::{random_token, token_hash, App};

/// How long a join token is good for. livekit-client reconnects with the
/// token it joined with, so it must outlast a call's reconnects; moim does
/// not yet send LiveKit's refreshed tokens during a call.
pub const JOIN_TOKEN_TTL_SECS: u64 = 3600;
/// An invite lives a week unless its host says otherwise, 30 days at most.
const INVITE_TTL_DEFAULT: i64 = 7 * 24 * 3600;
const INVITE_TTL_MAX: i64 = 30 * 24 * 3600;
const INVITE_USES_MAX: i64 = 10_000;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewInvite {
    expires_in_seconds: Option<i64>,
    max_uses: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InviteView {
    /// Shown once: only its hash is kept.
    token: String,
    /// The meet app's link for it.
    url: String,
    expires_at: i64,
    max_uses: Option<i64>,
}

pub async fn create_invite(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    jar: CookieJar,
    body: Bytes,
) -> Result<(StatusCode, Json<InviteView>), ApiError> {
    app.check_state_change(&headers, &jar)?;
    let (_, host) = app.hosted_room(&id, &jar).await?;
    let ask: NewInvite = optional_json(&body)?;
    let ttl = ask.expires_in_seconds.unwrap_or(INVITE_TTL_DEFAULT);
    if !(60..=INVITE_TTL_MAX).contains(&ttl) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_invite",
            format!("expiresInSeconds is 60 to {INVITE_TTL_MAX} (30 days)"),
        ));
    }
    if ask
        .max_uses
        .is_some_and(|n| !(1..=INVITE_USES_MAX).contains(&n))
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_invite",
            format!("maxUses is 1 to {INVITE_USES_MAX}, or left out for no limit"),
        ));
    }
    let token = random_token(24);
    let now = app.now();
    let invite = Invite {
        room_id: id.clone(),
        expires_at: now + ttl,
        max_uses: ask.max_uses,
    };
    app.store()
        .create_invite(&token_hash(&token), &invite, &host, now)
        .await?;
    let url = format!("{}/r/{id}?invite={token}", app.0.config.public_origin);
    Ok((
        StatusCode::CREATED,
        Json(InviteView {
            token,
            url,
            expires_at: invite.expires_at,
            max_uses: invite.max_uses,
        }),
    ))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinAsk {
    /// A guest's display name.
    name: Option<String>,
    /// A guest's invite token.
    invite: Option<String>,
    /// A guest waiting in the lobby: the ticket a first join answered.
    ticket: Option<String>,
}

/// A guest held in the lobby: `202` with what to ask again with.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Waiting {
    ticket: String,
    status: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinGrant {
    server_url: String,
    token: String,
}

/// Who the LiveKit token is for.
pub(super) struct Joiner {
    pub identity: String,
    pub name: String,
    pub host: bool,
}

pub async fn join(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    headers: HeaderMap,
    jar: CookieJar,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ask: JoinAsk = optional_json(&body)?;
    let livekit = app.media_server()?.clone();
    let has_session = jar
        .get(&app.0.cookies.name(crate::cookies::ACCESS))
        .is_some();
    let guest_ask = ask.invite.is_some() || ask.ticket.is_some();
    let joiner = if has_session || !guest_ask {
        app.check_state_change(&headers, &jar)?;
        let who = app.authenticate(&jar).await?;
        app.store().room(&id).await?.ok_or_else(no_room)?;
        let role = app.store().role(&id, &who.sub).await?;
        let user = app
            .store()
            .user(&who.sub)
            .await?
            .ok_or_else(ApiError::unauthenticated)?;
        Joiner {
            identity: user.id,
            name: user.display_name,
            host: role == Role::Host,
        }
    } else {
        match guest(&app, &ip, &id, &headers, &ask).await? {
            Guest::In(j) => j,
            Guest::Waiting(ticket) => {
                let body = Waiting {
                    ticket,
                    status: "waiting",
                };
                return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
            }
        }
    };
    let grant = moim_proto::token::VideoGrant {
        room_join: true,
        room: id.clone(),
        room_admin: joiner.host,
        can_publish: Some(true),
        can_subscribe: Some(true),
        can_publish_data: Some(true),
        // A raised hand is a participant attribute the participant sets
        // (moim meet's `hand`); the same grant lets them change their own
        // name and metadata, which LiveKit does not grant apart.
        can_update_own_metadata: Some(true),
        ..Default::default()
    };
    let now = app.now().max(0) as u64;
    let claims = moim_proto::token::Claims {
        iss: livekit.api_key.clone(),
        sub: joiner.identity,
        name: joiner.name,
        nbf: now.saturating_sub(1),
        exp: now + JOIN_TOKEN_TTL_SECS,
        video: grant,
        ..Default::default()
    };
    let token = moim_proto::token::mint_claims(&livekit.api_secret, &claims);
    Ok(Json(JoinGrant {
        server_url: livekit.server_url,
        token,
    })
    .into_response())
}

/// Where a guest's join came to.
pub(super) enum Guest {
    In(Joiner),
    /// In the lobby, holding this ticket.
    Waiting(String),
}

/// A body that may be left out (`{}` then), or must be the JSON asked for.
pub(super) fn optional_json<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(ApiError::bad_json)
}

/// A guest with an invite: the room must allow guests, the invite must
/// have a use left, and the name must be one a person could have typed.
async fn guest(
    app: &App,
    ip: &str,
    room_id: &str,
    headers: &HeaderMap,
    ask: &JoinAsk,
) -> Result<Guest, ApiError> {
    app.check_origin(headers)?;
    if let Some(ticket) = &ask.ticket {
        return super::lobby::wait(app, room_id, ticket).await;
    }
    app.limit_login(ip)?;
    let name = person_name(ask.name.as_deref().unwrap_or_default())?;
    let room = app.store().room(room_id).await?.ok_or_else(no_room)?;
    if !room.settings.guests_allowed {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "guests_not_allowed",
            "this room lets in only people who are logged in: log in, or ask its host to allow guests",
        ));
    }
    let invite = ask.invite.as_deref().unwrap_or_default();
    match app
        .store()
        .spend_invite(room_id, &token_hash(invite), app.now())
        .await?
    {
        Spent::Admitted => {}
        Spent::Unknown => return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invite_unknown",
            "this invite is not for this room, or was never issued: ask the host for a new link",
        )),
        Spent::Expired => {
            return Err(ApiError::new(
                StatusCode::GONE,
                "invite_expired",
                "this invite has expired: ask the host for a new link",
            ))
        }
        Spent::UsedUp => {
            return Err(ApiError::new(
                StatusCode::GONE,
                "invite_used_up",
                "this invite has been used as many times as its host allowed: ask for a new link",
            ))
        }
    }
    let identity = format!("guest-{}", random_token(9));
    if room.settings.lobby {
        let secret = super::lobby::enter(app, room_id, &name, &identity).await?;
        return Ok(Guest::Waiting(secret));
    }
    Ok(Guest::In(Joiner {
        identity,
        name,
        host: false,
    }))
}
