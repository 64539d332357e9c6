//! A LiveKit-protocol client built on str0m, for moim's integration tests and load generator.
#![allow(dead_code)]
pub mod error;
pub mod media;
pub mod probe;
pub mod signal;
pub mod stats;
pub mod token;

pub use error::{Error, Result};
