//! The `moim` command. Each subcommand lives in its own module under `cli/`.

mod cli;
mod settings;

use std::process::ExitCode;

// The global allocator (jemalloc) is moim-alloc's; `moim serve` starts its
// memory-returning threads.
use moim_alloc as _;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "moim",
    version,
    about = "A self-hostable, LiveKit-compatible video server"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (signaling, SFU).
    Serve(Box<cli::serve::ServeArgs>),
    /// The app back end and moim meet on their own port, beside a moim
    /// server elsewhere (`moim serve` hosts them on its own port).
    Auth(cli::auth::AuthArgs),
    /// The app's signing keys and sessions, in its store.
    App {
        #[command(flatten)]
        store: cli::app_admin::StoreArgs,
        #[command(subcommand)]
        command: cli::app_admin::AppCmd,
    },
    /// Synthetic publishers and measuring subscribers against a running server.
    LoadTest(cli::loadtest::LoadTestArgs),
    /// Access tokens.
    Token {
        #[command(subcommand)]
        command: cli::token::TokenCmd,
    },
    /// Rooms on a running server (RoomService API).
    Rooms {
        #[command(flatten)]
        api: cli::api::ApiArgs,
        #[command(subcommand)]
        command: cli::rooms::RoomsCmd,
    },
    /// Participants of a room on a running server.
    Participants {
        #[command(flatten)]
        api: cli::api::ApiArgs,
        #[command(subcommand)]
        command: cli::participants::ParticipantsCmd,
    },
    /// Data packets from the server to a room.
    Data {
        #[command(flatten)]
        api: cli::api::ApiArgs,
        #[command(subcommand)]
        command: cli::data::DataCmd,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::Serve(args) => cli::serve::run(*args),
        Cmd::Auth(args) => cli::auth::run(args),
        Cmd::App { store, command } => cli::app_admin::run(store, command),
        Cmd::LoadTest(args) => cli::loadtest::run(args),
        Cmd::Token { command } => cli::token::run(command),
        Cmd::Rooms { api, command } => cli::rooms::run(api, command),
        Cmd::Participants { api, command } => cli::participants::run(api, command),
        Cmd::Data { api, command } => cli::data::run(api, command),
    }
}

/// Prints an error for the operator and fails the command.
pub(crate) fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("moim: {e}");
    ExitCode::FAILURE
}
