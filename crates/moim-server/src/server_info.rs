//! How moim introduces itself to clients.
//!
//! LiveKit's client SDKs read `ServerInfo.version` as a LiveKit server
//! release and switch features on by comparing it (livekit-client refuses
//! `performRpc` below 1.8.0, and sends VP9/AV1 as rid simulcast only above
//! 1.13.6). A version string such as `moim-0.1.0` compares as 0.0.0 and
//! turns those features off, so `version` carries the LiveKit release whose
//! client-visible behaviour moim implements, and moim's own name and version
//! travel in `debug_info`, the HTTP `Server` header and `moim --version`.

use moim_proto::lk;

/// moim's own name and version.
pub const SERVER_VERSION: &str = concat!("moim/", env!("CARGO_PKG_VERSION"));

/// The LiveKit server release moim answers as: strict semver (LiveKit's Rust
/// SDK parses it as such), at least 1.8.0 so RPC works, and not above
/// 1.13.6, because above it livekit-client publishes VP9 and AV1 as
/// rid-based simulcast, which moim does not forward yet (as SVC they reach
/// subscribers as one stream). 1.13.5 is the release current clients are
/// tested against.
pub const LIVEKIT_COMPATIBLE_VERSION: &str = "1.13.5";

/// The signalling protocol version moim speaks (`ServerInfo.protocol`).
/// LiveKit's server gates nothing past 16 (room moves, which moim does not
/// do, are refused to older clients); 17 added packet-trailer stripping,
/// which moim does by the client's `CAP_PACKET_TRAILER` like LiveKit.
pub const PROTOCOL_VERSION: i32 = 17;

pub(crate) fn server_info(node_id: &str) -> lk::ServerInfo {
    lk::ServerInfo {
        version: LIVEKIT_COMPATIBLE_VERSION.into(),
        protocol: PROTOCOL_VERSION,
        node_id: node_id.into(),
        debug_info: SERVER_VERSION.into(),
        ..Default::default()
    }
}
