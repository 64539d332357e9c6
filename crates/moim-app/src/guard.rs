//! Checks every request passes before it changes anything, and who is
//! asking.
//!
//! A state-changing request must come from the app's own origin (the
//! `Origin` header, which browsers send on every cross-origin and every
//! POST request; a client without one, like curl, is let through on the
//! CSRF token alone) and carry the CSRF cookie's value in `x-csrf-token`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum_extra::extract::CookieJar;

use crate::access::{AccessClaims, AccessError};
use crate::cookies;
use crate::error::ApiError;
use crate::App;

pub const CSRF_HEADER: &str = "x-csrf-token";

impl App {
    pub(crate) fn check_origin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
            return Ok(());
        };
        let config = &self.0.config;
        let ok = origin
            .to_str()
            .is_ok_and(|o| o == config.public_origin || config.also_origins.iter().any(|a| a == o));
        if ok {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "foreign_origin",
                format!(
                    "this request came from a page on another origin; only {} may change things here",
                    config.public_origin
                ),
            ))
        }
    }

    /// Origin, then the double-submitted CSRF token.
    pub(crate) fn check_state_change(
        &self,
        headers: &HeaderMap,
        jar: &CookieJar,
    ) -> Result<(), ApiError> {
        self.check_origin(headers)?;
        let cookie = jar
            .get(&self.0.cookies.name(cookies::CSRF))
            .map(|c| c.value());
        let header = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        match (cookie, header) {
            (Some(c), Some(h)) if !c.is_empty() && constant_time_eq(c.as_bytes(), h.as_bytes()) => Ok(()),
            _ => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                format!(
                    "a state-changing request must carry the {} cookie's value in the {CSRF_HEADER} header",
                    self.0.cookies.name(cookies::CSRF)
                ),
            )),
        }
    }

    /// The caller's live session, from the access cookie.
    pub(crate) async fn authenticate(&self, jar: &CookieJar) -> Result<AccessClaims, ApiError> {
        let Some(token) = jar.get(&self.0.cookies.name(cookies::ACCESS)) else {
            return Err(ApiError::unauthenticated());
        };
        let claims = match self.0.keys.read().verify(token.value(), self.now()) {
            Ok(c) => c,
            Err(AccessError::Expired) => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "access_expired",
                    "the access token expired: POST /auth/refresh, then try again",
                ))
            }
            Err(_) => return Err(ApiError::unauthenticated()),
        };
        // Logout and revocation take effect at once, not when the access
        // token runs out.
        if !self.store().session_live(&claims.sid).await? {
            return Err(ApiError::unauthenticated());
        }
        Ok(claims)
    }
}

/// The client's address, when the server that runs the router provides
/// it (as axum's `ConnectInfo`); "unknown" otherwise, which then shares
/// one rate-limit bucket.
pub(crate) struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string()),
        ))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
