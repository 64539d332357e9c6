//! One module per `moim` subcommand.

pub mod serve;
pub mod token;
