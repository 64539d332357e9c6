//! `moim load-test` and the benchmark harness.
//!
//! - [`run`]: synthetic publishers (Opus-sized audio, VP8-shaped video with optional simulcast,
//!   payloads carrying a send timestamp) and subscribers over real WebRTC (moim-client on str0m),
//!   measuring join time, join to first media, packets, loss, jitter and end-to-end latency.
//! - [`run_signal_only`]: thousands of WebSocket-only participants, for signaling scale.
//! - [`procfs`]: CPU and memory of a process from `/proc`, for the harness (`moim-bench`).

pub mod gaps;
pub mod load;
pub mod procfs;
pub mod report;
pub mod signal_only;

pub use load::{run, run_with_hook, Error, Options, Phase};
pub use report::Report;
pub use signal_only::{run_signal_only, SignalOptions, SignalPhase, SignalReport};
