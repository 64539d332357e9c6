//! Login, refresh and logout.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};

use super::me::UserView;
use crate::access::{AccessClaims, ISSUER};
use crate::cookies::{ACCESS, CSRF, REFRESH};
use crate::error::ApiError;
use crate::guard::ClientIp;
use crate::refresh::{judge, Policy, Verdict};
use crate::store::{Profile, User};
use crate::{random_token, token_hash, App};

/// The issuer recorded for dev-login users.
pub const DEV_ISSUER: &str = "moim-dev";
const MAX_NAME_CHARS: usize = 64;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Provider {
    id: String,
    name: String,
    kind: &'static str,
    /// Where the page sends the browser to log in with it.
    login_url: String,
}

#[derive(Serialize)]
pub struct Providers {
    providers: Vec<Provider>,
}

pub async fn providers(State(app): State<App>) -> Json<Providers> {
    let mut providers = Vec::new();
    if app.0.config.dev_login {
        providers.push(Provider {
            id: "dev".into(),
            name: "Dev login (a name, no password; moim runs with --dev)".into(),
            kind: "dev",
            login_url: "/auth/dev-login".into(),
        });
    }
    for p in &app.0.providers {
        providers.push(Provider {
            id: p.config.id.clone(),
            name: p.config.label().to_string(),
            kind: p.config.kind.as_str(),
            login_url: format!("/auth/login/{}", p.config.id),
        });
    }
    Json(Providers { providers })
}

/// A name a person typed (dev login, guests): trimmed, 1 to
/// `MAX_NAME_CHARS` characters, no control characters.
pub(super) fn person_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_name",
            format!("a name is 1 to {MAX_NAME_CHARS} characters, with no control characters"),
        ));
    }
    Ok(name.to_string())
}

#[derive(Deserialize)]
pub struct DevLogin {
    name: String,
}

#[derive(Serialize)]
pub struct LoggedIn {
    user: UserView,
}

pub async fn dev_login(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    jar: CookieJar,
    body: Result<Json<DevLogin>, JsonRejection>,
) -> Result<(CookieJar, Json<LoggedIn>), ApiError> {
    if !app.0.config.dev_login {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "dev_login_disabled",
            "the dev login is offered only when moim runs with --dev",
        ));
    }
    app.check_origin(&headers)?;
    app.limit_login(&ip)?;
    let Json(body) = body.map_err(ApiError::bad_json)?;
    let name = person_name(&body.name)?;
    let name = name.as_str();
    let profile = Profile {
        display_name: name.to_string(),
        email: None,
        avatar_url: None,
    };
    let user = app
        .store()
        .login(DEV_ISSUER, name, &profile, app.now())
        .await?;
    let jar = app.start_session(jar, &user).await?;
    Ok((jar, Json(LoggedIn { user: user.into() })))
}

pub async fn refresh(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<(CookieJar, StatusCode), Ended> {
    app.check_state_change(&headers, &jar)?;
    app.limit_refresh(&format!("ip {ip}"))?;
    let Some(presented) = jar
        .get(&app.0.cookies.name(REFRESH))
        .map(|c| c.value().to_string())
    else {
        return Err(ApiError::unauthenticated().into());
    };
    let hash = token_hash(&presented);
    // Two rounds at most: a concurrent refresh may spend the token between
    // reading and spending it, and then the verdict is taken again.
    for _ in 0..2 {
        let Some(record) = app.store().refresh_record(&hash).await? else {
            return Err(app.ended(jar, ApiError::unauthenticated()));
        };
        app.limit_refresh(&format!("user {}", record.user_id))?;
        let now = app.now();
        let policy = Policy {
            grace: app.0.config.refresh_grace,
        };
        let first = match judge(&record.token, record.session, now, policy) {
            Verdict::Rotate => true,
            Verdict::Retry => false,
            Verdict::Reused => {
                app.store()
                    .revoke_session(
                        &record.session_id,
                        "a spent refresh token was presented again",
                        now,
                    )
                    .await?;
                tracing::warn!(
                    session = %record.session_id,
                    user = %record.user_id,
                    "a spent refresh token was presented again: the session is revoked (a copied \
                     cookie, or a client that replays old requests); the user logs in again"
                );
                return Err(app.ended(
                    jar,
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "session_revoked",
                        "this session was ended because its refresh token was used twice: log in again",
                    ),
                ));
            }
            Verdict::Expired => {
                return Err(app.ended(
                    jar,
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "session_expired",
                        "the session has ended: log in again",
                    ),
                ))
            }
        };
        let successor = random_token(32);
        let expires = now + app.0.config.refresh_ttl;
        if app
            .store()
            .rotate(
                &hash,
                &record.session_id,
                &token_hash(&successor),
                now,
                expires,
                first,
            )
            .await?
        {
            let jar = app.session_cookies(jar, &record.user_id, &record.session_id, successor)?;
            return Ok((jar, StatusCode::NO_CONTENT));
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "refresh_conflict",
        "another refresh of this session is under way: try again",
    )
    .into())
}

pub async fn logout(
    State(app): State<App>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<(CookieJar, StatusCode), ApiError> {
    app.check_state_change(&headers, &jar)?;
    // The session is found by the refresh token, so logout works with an
    // expired access token too.
    let by_refresh = match jar.get(&app.0.cookies.name(REFRESH)) {
        Some(c) => app.store().refresh_record(&token_hash(c.value())).await?,
        None => None,
    };
    let session = match by_refresh {
        Some(r) => Some(r.session_id),
        None => app.authenticate(&jar).await.ok().map(|c| c.sid),
    };
    if let Some(id) = session {
        app.store()
            .revoke_session(&id, "logged out", app.now())
            .await?;
    }
    Ok((app.clear_cookies(jar), StatusCode::NO_CONTENT))
}

impl App {
    pub(super) fn limit_login(&self, ip: &str) -> Result<(), ApiError> {
        if self.0.login_limit.lock().allow(ip, self.now() as f64) {
            Ok(())
        } else {
            Err(rate_limited())
        }
    }

    fn limit_refresh(&self, key: &str) -> Result<(), ApiError> {
        if self.0.refresh_limit.lock().allow(key, self.now() as f64) {
            Ok(())
        } else {
            Err(rate_limited())
        }
    }

    /// A new session for `user`, and its cookies.
    pub(super) async fn start_session(
        &self,
        jar: CookieJar,
        user: &User,
    ) -> Result<CookieJar, ApiError> {
        let refresh = random_token(32);
        let now = self.now();
        let session = self
            .store()
            .create_session(
                &user.id,
                &token_hash(&refresh),
                now,
                now + self.0.config.refresh_ttl,
            )
            .await?;
        self.session_cookies(jar, &user.id, &session, refresh)
    }

    fn session_cookies(
        &self,
        jar: CookieJar,
        user_id: &str,
        session_id: &str,
        refresh: String,
    ) -> Result<CookieJar, ApiError> {
        let now = self.now();
        let config = &self.0.config;
        let claims = AccessClaims {
            iss: ISSUER.into(),
            aud: ISSUER.into(),
            sub: user_id.into(),
            sid: session_id.into(),
            iat: now,
            exp: now + config.access_ttl,
        };
        let access = self
            .0
            .keys
            .read()
            .mint(&claims)
            .ok_or_else(|| ApiError::internal("no signing key to mint an access token"))?;
        let c = &self.0.cookies;
        Ok(jar
            .add(c.cookie(ACCESS, access, config.access_ttl))
            .add(c.cookie(REFRESH, refresh, config.refresh_ttl))
            .add(c.cookie(CSRF, random_token(24), config.refresh_ttl)))
    }

    fn clear_cookies(&self, jar: CookieJar) -> CookieJar {
        let c = &self.0.cookies;
        jar.add(c.removal(ACCESS))
            .add(c.removal(REFRESH))
            .add(c.removal(CSRF))
    }

    /// An error that ends the session in the browser too.
    fn ended(&self, jar: CookieJar, error: ApiError) -> Ended {
        Ended {
            jar: Some(self.clear_cookies(jar)),
            error,
        }
    }
}

/// An error from a refresh; when the session is over, the answer also
/// deletes its cookies, so the page sees at once that it must log in.
pub struct Ended {
    jar: Option<CookieJar>,
    error: ApiError,
}

impl From<crate::store::StoreError> for Ended {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<ApiError> for Ended {
    fn from(error: ApiError) -> Self {
        Self { jar: None, error }
    }
}

impl IntoResponse for Ended {
    fn into_response(self) -> Response {
        match self.jar {
            Some(jar) => (jar, self.error).into_response(),
            None => self.error.into_response(),
        }
    }
}

fn rate_limited() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many attempts in a short time: wait a minute and try again",
    )
}
