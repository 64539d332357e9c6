//! moim's media plane.
//!
//! The control plane talks to it only through [`MediaPlane::send`] and the
//! per-room event channel in [`PeerSpec`]. Inside, each room lives on one
//! shard thread that owns its str0m peers and tracks (see `shard`), so the
//! packet path needs no locks.

pub mod allocate;
pub mod api;
pub mod audio_level;
pub mod codec;
pub mod dd;
mod demux;
mod doorbell;
mod dtls_openssl;
pub mod forward;
mod ice_tcp;
mod inbox;
pub mod latency;
pub mod packet_trailer;
mod peer;
mod plane;
pub mod quality;
pub mod rtc_factory;
pub mod sdp_munge;
mod send_codec;
mod shard;
pub mod shard_core;
pub mod stun;
mod udp_batch;

pub use api::*;
pub use ice_tcp::{IceTcpCounts, IceTcpDoor, IceTcpLimits};
pub use plane::{MediaConfig, MediaCounts, MediaError, MediaPlane};

/// Parsers of network input that are not otherwise public, for the fuzz
/// targets in `fuzz/`. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// RFC 4571 framing of one ICE-TCP connection.
    pub use crate::ice_tcp::framing::{Framer, TooLong};
}
