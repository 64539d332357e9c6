//! One module per `moim` subcommand.

pub mod api;
pub mod app_admin;
pub mod app_host;
pub mod auth;
pub mod data;
pub mod loadtest;
pub mod participants;
mod print_config;
pub mod rooms;
pub mod serve;
pub mod token;
