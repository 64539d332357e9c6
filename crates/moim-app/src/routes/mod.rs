//! The HTTP surface: `/auth/...` (login, refresh, logout) and `/api/...`.

use axum::routing::{get, post};
use axum::Router;

use crate::App;

mod auth;
mod chat;
mod host;
mod join;
mod lobby;
mod login;
mod me;
mod rooms;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/auth/providers", get(auth::providers))
        .route("/auth/dev-login", post(auth::dev_login))
        .route("/auth/login/{provider}", get(login::start))
        .route("/auth/callback/{provider}", get(login::callback))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/api/me", get(me::me))
        .route("/api/rooms", get(rooms::list).post(rooms::create))
        .route(
            "/api/rooms/{id}",
            get(rooms::get).patch(rooms::update).delete(rooms::delete),
        )
        .route("/api/rooms/{id}/join", post(join::join))
        .route("/api/rooms/{id}/invites", post(join::create_invite))
        .route(
            "/api/rooms/{id}/participants/{identity}/mute",
            post(host::mute),
        )
        .route(
            "/api/rooms/{id}/participants/{identity}/remove",
            post(host::remove),
        )
        .route("/api/rooms/{id}/end", post(host::end))
        .route("/api/rooms/{id}/chat", get(chat::history).post(chat::post))
        .route("/api/rooms/{id}/lobby", get(lobby::show))
        .route("/api/rooms/{id}/lobby/{ticket}/admit", post(lobby::admit))
        .route("/api/rooms/{id}/lobby/{ticket}/deny", post(lobby::deny))
        .with_state(app)
}
