//! Errors as the app API answers them: an HTTP status and JSON
//! `{"code": "...", "message": "..."}`, where `code` is stable for clients
//! to match on and `message` says what to do. None says whether an
//! account exists.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "not logged in, or the session ended: log in again",
        )
    }

    pub fn bad_json(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the request body is not the JSON this endpoint takes: {detail}"),
        )
    }

    pub fn internal(what: impl std::fmt::Display) -> Self {
        // The detail goes to the operator's log, not to the client.
        tracing::error!("app API: {what}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to answer; its log says why",
        )
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(Body {
            code: self.code,
            message: &self.message,
        });
        (self.status, body).into_response()
    }
}
