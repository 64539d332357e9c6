//! A room: participants, their tracks and who receives what.
//!
//! [`RoomCore`] holds the room's state and decides everything, with no IO
//! and no clock: each input comes with [`Now`], each effect is a
//! [`RoomOutput`]. The tokio task in `shell.rs` feeds it and carries the
//! outputs out. Tests drive the core on virtual time (`tests.rs`).

mod admin;
mod core;
mod dynacast;
mod error;
mod hooks;
mod ids;
mod join;
mod media_events;
mod output;
mod participant;
mod publish;
mod quality;
mod shell;
mod signal_requests;
mod speakers;
mod tokens;
pub mod wire;

#[cfg(test)]
mod tests;

pub use admin::{AdminReply, AdminRequest, AdminResult};
pub use core::{RoomConfig, RoomCore};
pub use error::{JoinError, RoomError, MAX_METADATA};
pub use ids::{Ids, PlaneIds, SequentialIds};
pub use join::{JoinParams, Joined};
pub use output::{Now, RoomOutput, SignalClose};
pub use participant::{ConnectionId, ParticipantKey};
pub use shell::{spawn, Outbound, RoomEnv, RoomGone, RoomHandle, RoomInput};
pub use tokens::TokenOrigin;
