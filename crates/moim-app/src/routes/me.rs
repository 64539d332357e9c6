//! `GET /api/me`: who the session belongs to.

use axum::extract::State;
use axum::Json;
use axum_extra::extract::CookieJar;
use serde::Serialize;

use crate::error::ApiError;
use crate::store::User;
use crate::App;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: String,
    pub display_name: String,
    pub email: Option<String>,
    pub avatar_url: Option<String>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            display_name: u.display_name,
            email: u.email,
            avatar_url: u.avatar_url,
        }
    }
}

pub async fn me(State(app): State<App>, jar: CookieJar) -> Result<Json<UserView>, ApiError> {
    let claims = app.authenticate(&jar).await?;
    let user = app
        .store()
        .user(&claims.sub)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    Ok(Json(user.into()))
}
