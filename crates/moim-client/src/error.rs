//! One error type for the client, with messages an operator can act on.

use std::io;

/// Everything that can go wrong while talking to a LiveKit-protocol server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL given to [`crate::Client::connect`] is not a usable `ws://`/`wss://` URL.
    #[error("invalid signal URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// TCP connect or the WebSocket handshake failed before any HTTP status was seen.
    #[error("could not open the signal connection to {url}: {source} (is the server running and listening there?)")]
    SignalConnect {
        url: String,
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },

    /// The server answered the WebSocket upgrade with an HTTP error.
    #[error("signal connection to {url} was refused with HTTP {status}: {body}")]
    SignalRejected {
        url: String,
        status: u16,
        body: String,
    },

    /// The WebSocket broke while in use.
    #[error("signal connection failed: {0}")]
    SignalIo(#[from] Box<tokio_tungstenite::tungstenite::Error>),

    /// The server sent something that is not a valid `SignalResponse`.
    #[error("could not decode a signal frame from the server: {0}")]
    Decode(String),

    /// The server broke the protocol (e.g. first message was not `join`).
    #[error("protocol violation by the server: {0}")]
    Protocol(String),

    /// The server did not answer in time.
    #[error("timed out after {after_ms} ms waiting for {what}")]
    Timeout { what: String, after_ms: u64 },

    /// The server closed the signal connection or asked us to leave.
    #[error("the signal connection is closed ({0})")]
    Closed(String),

    /// str0m rejected an SDP, a candidate or an operation.
    #[error("WebRTC error: {0}")]
    Rtc(String),

    /// Local UDP socket trouble.
    #[error("UDP socket error: {0}")]
    Io(#[from] io::Error),

    /// Minting or verifying an access token failed.
    #[error("access token error: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),

    /// The request is not valid in the client's current state.
    #[error("{0}")]
    InvalidState(String),
}

impl Error {
    /// A signal request made while the client has no WebSocket.
    pub(crate) fn signal_closed() -> Self {
        Error::InvalidState("the signal WebSocket is closed; call reconnect() first".into())
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for Error {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        Error::SignalIo(Box::new(e))
    }
}

impl From<str0m::RtcError> for Error {
    fn from(e: str0m::RtcError) -> Self {
        Error::Rtc(e.to_string())
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
