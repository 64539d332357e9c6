//! `GET /auth/login/{provider}` sends the browser to the provider;
//! `GET /auth/callback/{provider}` finishes the login there and then.
//!
//! Between the two, the login's secrets wait in the store under the hash of
//! its `state`, and a `moim_login` cookie binds them to the browser that
//! started: a callback URL carried to another browser (login CSRF: logging
//! a victim into the attacker's account) finds no cookie and is refused.
//! Each `state` is taken by its first callback, so a replay finds nothing.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Redirect;
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::error::ApiError;
use crate::guard::ClientIp;
use crate::login::attempts::Attempt;
use crate::login::LoginError;
use crate::{random_token, token_hash, App};

/// The cookie that binds a login under way to its browser.
pub const LOGIN: &str = "moim_login";
/// Seconds a login may take at the provider.
pub const LOGIN_TTL: i64 = 600;
const MAX_RETURN_TO: usize = 2048;

#[derive(Deserialize)]
pub struct Start {
    return_to: Option<String>,
}

pub async fn start(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    Path(provider): Path<String>,
    Query(q): Query<Start>,
    jar: CookieJar,
) -> Result<(CookieJar, Redirect), ApiError> {
    let p = app.provider(&provider)?;
    app.limit_login(&ip)?;
    let return_to = safe_return_to(q.return_to.as_deref());
    let begun = p.begin().await.map_err(|e| login_failed(&provider, e))?;
    let browser = random_token(24);
    let now = app.now();
    let attempt = Attempt {
        provider: provider.clone(),
        browser_hash: token_hash(&browser),
        pkce_verifier: begun.pkce_verifier,
        nonce: begun.nonce,
        return_to,
        expires_at: now + LOGIN_TTL,
    };
    app.store()
        .put_login_attempt(&token_hash(&begun.state), &attempt, now)
        .await?;
    let jar = jar.add(app.0.cookies.cookie(LOGIN, browser, LOGIN_TTL));
    Ok((jar, Redirect::to(&begun.url)))
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    /// RFC 9207: the issuer that sent the browser back.
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

pub async fn callback(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    Path(provider): Path<String>,
    Query(q): Query<Callback>,
    jar: CookieJar,
) -> Result<(CookieJar, Redirect), ApiError> {
    let p = app.provider(&provider)?;
    app.limit_login(&ip)?;
    let attempt = match q.state.as_deref() {
        Some(state) => app.store().take_login_attempt(&token_hash(state)).await?,
        None => None,
    };
    let jar_without = jar.clone().add(app.0.cookies.removal(LOGIN));
    let Some(attempt) = attempt.filter(|a| a.provider == provider) else {
        return Err(state_unknown());
    };
    if let Some(error) = q.error {
        let detail = q.error_description.unwrap_or_default();
        return Err(login_failed(
            &provider,
            LoginError::Denied(format!("{error} {detail}").trim().to_string()),
        ));
    }
    if attempt.expires_at < app.now() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "login_expired",
            "the login took too long at the provider: start it again",
        ));
    }
    let browser = app.0.cookies.name(LOGIN);
    if jar.get(&browser).map(|c| token_hash(c.value())) != Some(attempt.browser_hash.clone()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "login_other_browser",
            "this login was started in another browser, or the browser did not keep its \
             cookie: start the login again here",
        ));
    }
    if let (Some(expected), Some(got)) = (p.issuer(), q.iss.as_deref()) {
        if expected.trim_end_matches('/') != got.trim_end_matches('/') {
            return Err(login_failed(
                &provider,
                LoginError::IdToken(format!(
                    "the callback names issuer {got}, not {expected} (a mix-up attack, or a \
                     misconfigured issuer URL)"
                )),
            ));
        }
    }
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "login_no_code",
            "the provider sent the browser back without a code: start the login again",
        ));
    };
    let identity = p
        .finish(
            &code,
            q.state.as_deref().unwrap_or_default(),
            &attempt.pkce_verifier,
            &attempt.nonce,
        )
        .await
        .map_err(|e| login_failed(&provider, e))?;
    let user = app
        .store()
        .login(
            &identity.issuer,
            &identity.subject,
            &identity.profile,
            app.now(),
        )
        .await?;
    tracing::info!(provider = %provider, user = %user.id, "logged in");
    let jar = app.start_session(jar_without, &user).await?;
    Ok((jar, Redirect::to(&attempt.return_to)))
}

/// Only a path on this origin: `//evil.example` or `https://…` would make
/// the login an open redirect.
fn safe_return_to(r: Option<&str>) -> String {
    match r {
        Some(r)
            if r.starts_with('/')
                && !r.starts_with("//")
                && !r.starts_with("/\\")
                && r.len() <= MAX_RETURN_TO
                && !r.chars().any(|c| c.is_control()) =>
        {
            r.to_string()
        }
        _ => "/".to_string(),
    }
}

fn state_unknown() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "login_state_unknown",
        "this login link was already used, has expired, or was not started here: start the \
         login again",
    )
}

/// The operator reads why in the log; the client gets a stable code.
fn login_failed(provider: &str, e: LoginError) -> ApiError {
    tracing::warn!(provider, "login failed: {e}");
    let (status, code, message) = match &e {
        LoginError::Unreachable { .. } => (
            StatusCode::BAD_GATEWAY,
            "provider_unreachable",
            "the login provider cannot be reached right now; the server's log says why",
        ),
        LoginError::BadAnswer(_) => (
            StatusCode::BAD_GATEWAY,
            "provider_error",
            "the login provider answered in a way the server does not understand; its log says why",
        ),
        LoginError::Refused(_) => (
            StatusCode::BAD_GATEWAY,
            "provider_refused",
            "the login provider refused to finish the login; the server's log says why",
        ),
        LoginError::IdToken(_) => (
            StatusCode::UNAUTHORIZED,
            "id_token_invalid",
            "the login provider's answer did not pass moim's checks: start the login again",
        ),
        LoginError::Denied(_) => (
            StatusCode::UNAUTHORIZED,
            "login_denied",
            "the login was cancelled or not allowed at the provider",
        ),
    };
    ApiError::new(status, code, message)
}

impl App {
    fn provider(&self, id: &str) -> Result<&crate::login::Provider, ApiError> {
        self.0
            .providers
            .iter()
            .find(|p| p.config.id == id)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_provider",
                    format!(
                        "no login provider is called {id:?} here; GET /auth/providers lists them"
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::safe_return_to;

    #[test]
    fn only_a_path_on_this_origin_is_returned_to() {
        assert_eq!(
            safe_return_to(Some("/r/abc-defg-hij?x=1")),
            "/r/abc-defg-hij?x=1"
        );
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "javascript:x",
            "/a\nb",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_return_to(None), "/");
    }
}
