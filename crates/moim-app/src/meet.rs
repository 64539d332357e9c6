//! moim meet, the meeting web app, served at `/` from its built files
//! (`web/meet/dist`, made by `scripts/build-meet.sh`).
//!
//! The page paths (`/`, `/r/<room id>`) answer `index.html`, which the
//! browser must not cache: it names the current build's assets. The assets
//! have content hashes in their names and are cached for a year. Every page
//! carries a Content-Security-Policy that lets scripts, styles and
//! connections come only from this origin (and its WebSocket twin, where
//! livekit-client signals), so an injected `<script>` has nowhere to load
//! from or send to.

use std::path::{Path, PathBuf};

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// Where `cargo run` finds the app when nothing else is said: the build
/// beside this crate's sources.
pub const SOURCE_TREE_DIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/meet/dist");

/// The built app, found once at start.
#[derive(Debug, Clone)]
pub struct MeetFiles {
    dir: PathBuf,
    index: Bytes,
}

/// Why the app could not be served.
#[derive(Debug, thiserror::Error)]
pub enum MeetFilesError {
    #[error(
        "moim meet is not built: no index.html in {looked}. Build it with scripts/build-meet.sh \
         (needs Node.js 20 and npm), or point --meet-dir at a built copy"
    )]
    NotBuilt { looked: String },
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
}

impl MeetFiles {
    /// The first of `candidates` that holds a built app.
    pub fn find(candidates: &[PathBuf]) -> Result<Self, MeetFilesError> {
        for dir in candidates {
            let index = dir.join("index.html");
            if index.is_file() {
                let bytes = std::fs::read(&index).map_err(|source| MeetFilesError::Unreadable {
                    path: index.display().to_string(),
                    source,
                })?;
                return Ok(Self {
                    dir: dir.clone(),
                    index: bytes.into(),
                });
            }
        }
        Err(MeetFilesError::NotBuilt {
            looked: candidates
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The CSP for the app's pages, given the URL browsers reach the app at
/// and the media server's (the same one when `moim serve` hosts the app).
pub fn content_security_policy(public_url: &str, media_url: &str) -> String {
    let ws = crate::websocket_url(public_url);
    let media = crate::websocket_url(media_url);
    let connect = if media == ws {
        ws
    } else {
        format!("{ws} {media}")
    };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' {connect}; \
         img-src 'self' data: blob: https:; media-src 'self' blob: mediastream:; \
         worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
}

/// The routes that serve the app, or, when it is not built, a page that
/// says how to build it (and the same words in the log at start).
pub fn router(
    files: Result<MeetFiles, MeetFilesError>,
    public_url: &str,
    media_url: &str,
) -> Router {
    let csp = HeaderValue::from_str(&content_security_policy(public_url, media_url))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
    let pages = match files {
        Ok(files) => {
            let index = files.index.clone();
            let page = move || {
                let index = index.clone();
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                            (header::CACHE_CONTROL, "no-cache"),
                        ],
                        index,
                    )
                }
            };
            let assets = Router::new()
                .fallback_service(ServeDir::new(files.dir.join("assets")))
                .layer(SetResponseHeaderLayer::overriding(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ));
            Router::new()
                .route("/", get(page.clone()))
                .route("/r/{room}", get(page))
                .nest("/assets", assets)
        }
        Err(e) => {
            tracing::warn!("{e}; / answers a page that says so");
            let message = e.to_string();
            let page = move || {
                let message = message.clone();
                async move { not_built(&message) }
            };
            Router::new()
                .route("/", get(page.clone()))
                .route("/r/{room}", get(page))
        }
    };
    pages
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            csp,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
}

fn not_built(message: &str) -> Response {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(format!(
            "<!doctype html><meta charset=utf-8><title>moim meet is not built</title>\
             <h1>moim meet is not built</h1><p>{escaped}</p>\
             <p>The media server and the app API work without it: LiveKit clients \
             connect at this address, and the API is under /api/.</p>"
        )),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::content_security_policy;

    #[test]
    fn the_page_may_signal_to_its_own_origin_and_to_a_media_server_apart() {
        let one = content_security_policy("https://meet.example.com", "https://meet.example.com");
        assert!(
            one.contains("connect-src 'self' wss://meet.example.com;"),
            "{one}"
        );
        let apart =
            content_security_policy("https://meet.example.com", "https://media.example.com");
        assert!(
            apart.contains("connect-src 'self' wss://meet.example.com wss://media.example.com;"),
            "{apart}"
        );
    }
}
