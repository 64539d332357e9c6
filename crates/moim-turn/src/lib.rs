//! moim's embedded STUN/TURN server (RFC 8489, RFC 8656).
//!
//! - [`proto`]: the sans-IO core, driven with explicit time.
//! - [`server`]: the tokio shell with UDP, TCP and TLS listeners and UDP relays.
//! - [`rest_credentials`]: mint the time-limited credentials handed to clients.
#![forbid(unsafe_code)]

pub mod proto;
pub mod server;

pub use proto::rest_credentials;
pub use proto::Transport;
pub use server::stream::StreamDoor;
pub use server::{spawn, TurnConfig, TurnError, TurnHandle};

/// Parsers of network input that are not otherwise public, for the fuzz
/// targets in `fuzz/`. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::server::stream::take_frame;
}
