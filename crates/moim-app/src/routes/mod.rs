//! The HTTP surface: `/auth/...` (login, refresh, logout) and `/api/...`.

use axum::routing::{get, post};
use axum::Router;

use crate::App;

mod auth;
mod me;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/auth/providers", get(auth::providers))
        .route("/auth/dev-login", post(auth::dev_login))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/api/me", get(me::me))
        .with_state(app)
}
