//! The language moim speaks: LiveKit's protobuf types, the ids moim mints,
//! the WebSocket frame codec and access tokens.
//!
//! Everything here is pure: no IO, no clocks except where a caller passes one.

pub mod frame;
pub mod ids;
pub mod token;

pub use livekit_protocol as lk;
