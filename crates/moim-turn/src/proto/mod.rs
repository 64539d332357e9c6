//! The sans-IO TURN core: no sockets, no clocks. Feed it packets with the
//! current `Instant`, drain [`Command`]s, and call
//! [`TurnServer::handle_timeout`] at [`TurnServer::poll_timeout`].

mod allocation;
mod auth;
mod error;
pub mod message;
mod peer_filter;
mod reservation;
mod turn;

pub use allocation::{ClientAddr, RelayId, TokenBucket, Transport};
pub use auth::{long_term_key, rest_credentials};
pub use error::ErrorCode;
pub use peer_filter::{canonical, DangerousPeerPolicy, PeerPolicy, Refusal};
pub use reservation::RESERVATION_LIFETIME;
pub use turn::{Command, Config, PortRequest, TurnServer};
