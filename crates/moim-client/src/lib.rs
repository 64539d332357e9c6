//! A LiveKit-protocol client built on str0m, for moim's integration tests and load generator.
//!
//! It speaks `/rtc` (dual PeerConnection) with protobuf or JSON frames, runs real ICE, DTLS and
//! SRTP through str0m over UDP, publishes synthetic Opus/VP8/H.264 (with simulcast) whose
//! payloads carry a send timestamp, and measures what it receives: loss, jitter and latency.
//!
//! ```no_run
//! # async fn demo() -> moim_client::Result<()> {
//! use moim_client::{token, Client, ClientEvent, ConnectOptions};
//! let t = token::dev_token("room", "alice")?;
//! let (client, mut events) = Client::connect("ws://127.0.0.1:7880", &t, ConnectOptions::default()).await?;
//! while let Some(ev) = events.recv().await {
//!     if let ClientEvent::TrackSubscribed { track_sid, .. } = ev {
//!         println!("subscribed to {track_sid}");
//!     }
//! }
//! # Ok(()) }
//! ```

mod client;
mod counters;
mod driver;
pub mod error;
mod event;
pub mod media;
mod options;
mod peer;
pub mod probe;
mod session;
pub mod signal;
pub mod stats;
pub mod token;

pub use client::{Client, ClientEvents, ClientStats, TrackStats};
pub use counters::SentStats;
pub use error::{Error, Result};
pub use event::{ClientEvent, LocalTrack, TrackKind};
pub use media::{AudioOptions, VideoCodec, VideoOptions};
pub use options::ConnectOptions;
pub use peer::Target;
pub use signal::FrameCodec;
