//! `/api/rooms`: create, list, read, change and delete rooms, and join one.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::rooms::{Role, Room, RoomSettings};
use crate::App;

const MAX_TITLE_CHARS: usize = 100;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    id: String,
    title: String,
    guests_allowed: bool,
    lobby: bool,
    e2ee_required: bool,
    /// The caller's role: `host` or `participant`.
    role: &'static str,
    created_at: i64,
}

impl RoomView {
    fn new(room: Room, role: Role) -> Self {
        Self {
            id: room.id,
            title: room.title,
            guests_allowed: room.settings.guests_allowed,
            lobby: room.settings.lobby,
            e2ee_required: room.settings.e2ee_required,
            role: role.as_str(),
            created_at: room.created_at,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoomChange {
    title: Option<String>,
    guests_allowed: Option<bool>,
    lobby: Option<bool>,
    e2ee_required: Option<bool>,
}

fn title(raw: &str) -> Result<String, ApiError> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > MAX_TITLE_CHARS || t.chars().any(char::is_control) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_title",
            format!(
                "a room title is 1 to {MAX_TITLE_CHARS} characters, with no control characters"
            ),
        ));
    }
    Ok(t.to_string())
}

fn apply(settings: &mut RoomSettings, change: &RoomChange) {
    if let Some(v) = change.guests_allowed {
        settings.guests_allowed = v;
    }
    if let Some(v) = change.lobby {
        settings.lobby = v;
    }
    if let Some(v) = change.e2ee_required {
        settings.e2ee_required = v;
    }
}

pub(super) fn no_room() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "room_not_found",
        "no such room: check the link, or the room was deleted",
    )
}

impl App {
    /// The room and its host's id, when the caller is logged in and hosts
    /// it: every host-only endpoint starts here.
    pub(super) async fn hosted_room(
        &self,
        id: &str,
        jar: &CookieJar,
    ) -> Result<(Room, String), ApiError> {
        let who = self.authenticate(jar).await?;
        let room = self.store().room(id).await?.ok_or_else(no_room)?;
        if self.store().role(id, &who.sub).await? != Role::Host {
            return Err(hosts_only());
        }
        Ok((room, who.sub))
    }

    /// The media server join tokens are minted for and host actions go to.
    pub(super) fn media_server(&self) -> Result<&crate::LiveKitAccess, ApiError> {
        self.0.config.livekit.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_media_server",
                "this app is not connected to a moim server: give it one's URL, API key and \
                 secret (moim serve does so with its first API key)",
            )
        })
    }
}

fn hosts_only() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "host_only",
        "only the room's hosts may do this",
    )
}

pub async fn create(
    State(app): State<App>,
    headers: HeaderMap,
    jar: CookieJar,
    body: Result<Json<RoomChange>, JsonRejection>,
) -> Result<(StatusCode, Json<RoomView>), ApiError> {
    app.check_state_change(&headers, &jar)?;
    let who = app.authenticate(&jar).await?;
    let Json(change) = body.map_err(ApiError::bad_json)?;
    let title = match &change.title {
        Some(t) => title(t)?,
        None => "Meeting".to_string(),
    };
    let mut settings = RoomSettings::default();
    apply(&mut settings, &change);
    let room = app
        .store()
        .create_room(&title, settings, &who.sub, app.now())
        .await?;
    Ok((StatusCode::CREATED, Json(RoomView::new(room, Role::Host))))
}

#[derive(Serialize)]
pub struct RoomList {
    rooms: Vec<RoomView>,
}

pub async fn list(State(app): State<App>, jar: CookieJar) -> Result<Json<RoomList>, ApiError> {
    let who = app.authenticate(&jar).await?;
    let rooms = app.store().rooms_of(&who.sub).await?;
    Ok(Json(RoomList {
        rooms: rooms
            .into_iter()
            .map(|(r, role)| RoomView::new(r, role))
            .collect(),
    }))
}

pub async fn get(
    State(app): State<App>,
    Path(id): Path<String>,
    jar: CookieJar,
) -> Result<Json<RoomView>, ApiError> {
    let who = app.authenticate(&jar).await?;
    let room = app.store().room(&id).await?.ok_or_else(no_room)?;
    let role = app.store().role(&id, &who.sub).await?;
    Ok(Json(RoomView::new(room, role)))
}

pub async fn update(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    jar: CookieJar,
    body: Result<Json<RoomChange>, JsonRejection>,
) -> Result<Json<RoomView>, ApiError> {
    app.check_state_change(&headers, &jar)?;
    let (mut room, _) = app.hosted_room(&id, &jar).await?;
    let Json(change) = body.map_err(ApiError::bad_json)?;
    if let Some(t) = &change.title {
        room.title = title(t)?;
    }
    apply(&mut room.settings, &change);
    app.store().update_room(&room).await?;
    Ok(Json(RoomView::new(room, Role::Host)))
}

pub async fn delete(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<StatusCode, ApiError> {
    app.check_state_change(&headers, &jar)?;
    app.hosted_room(&id, &jar).await?;
    app.store().delete_room(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
