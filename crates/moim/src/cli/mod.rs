//! One module per `moim` subcommand.

pub mod api;
pub mod data;
pub mod participants;
pub mod rooms;
pub mod loadtest;
pub mod serve;
pub mod token;
