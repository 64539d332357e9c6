//! `moim token`: access tokens.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Subcommand;
use moim_proto::token::{self, VideoGrant};

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Mint an access token for joining a room.
    Create {
        #[arg(long, env = "MOIM_API_KEY", default_value = "devkey")]
        api_key: String,
        #[arg(long, env = "MOIM_API_SECRET", default_value = "secret")]
        api_secret: String,
        #[arg(long)]
        room: String,
        #[arg(long)]
        identity: String,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, default_value = "")]
        metadata: String,
        /// Token lifetime in seconds.
        #[arg(long, default_value_t = 6 * 3600)]
        valid_for: u64,
    },
}

pub fn run(cmd: TokenCmd) -> ExitCode {
    match cmd {
        TokenCmd::Create {
            api_key,
            api_secret,
            room,
            identity,
            name,
            metadata,
            valid_for,
        } => {
            let grant = VideoGrant {
                room_join: true,
                room,
                ..Default::default()
            };
            let now = SystemTime::now();
            let secs = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let claims = token::Claims {
                iss: api_key,
                sub: identity,
                name,
                metadata,
                video: grant,
                nbf: secs.saturating_sub(1),
                exp: secs + Duration::from_secs(valid_for).as_secs(),
                ..Default::default()
            };
            println!("{}", token::mint_claims(&api_secret, &claims));
            ExitCode::SUCCESS
        }
    }
}
