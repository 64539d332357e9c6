//! `moim app ...`: an operator's hand on the app's store, for what has no
//! HTTP endpoint on purpose: rotating the key that signs access tokens, and
//! ending every session of a user (a stolen laptop, a person who left).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::fail;

#[derive(Args)]
pub struct StoreArgs {
    /// The data directory `moim serve` or `moim auth` runs with. Default:
    /// ./moim-data if it holds the app's database (`moim serve --dev`),
    /// else /var/lib/moim.
    #[arg(long, env = "MOIM_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// The app's `postgres://` URL, when it does not use the SQLite file.
    #[arg(long, env = "MOIM_DATABASE_URL", global = true)]
    database_url: Option<String>,
}

#[derive(Subcommand)]
pub enum AppCmd {
    /// Adds a new key for signing access tokens. Servers sign with it from
    /// their next start; tokens signed with the older keys keep verifying
    /// until they expire, so nobody is logged out.
    RotateSigningKey,
    /// Ends every session of a user at once: their next request is refused
    /// and they must log in again. The user id is what GET /api/me shows.
    RevokeSessions {
        #[arg(long)]
        user: String,
    },
}

pub fn run(store: StoreArgs, command: AppCmd) -> ExitCode {
    let url = match &store.database_url {
        Some(u) => u.clone(),
        None => {
            let dir = store.data_dir.clone().unwrap_or_else(|| {
                let dev = PathBuf::from("moim-data");
                if dev.join("app.db").exists() {
                    dev
                } else {
                    PathBuf::from("/var/lib/moim")
                }
            });
            let file = dir.join("app.db");
            if !file.exists() {
                return fail(format!(
                    "no app database at {}: pass the --data-dir (or MOIM_DATA_DIR) that moim \
                     serve runs with, or --database-url for PostgreSQL",
                    file.display()
                ));
            }
            format!("sqlite://{}", file.display())
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(async move {
        // The origin only shapes cookies, which these commands never set.
        let config = moim_app::AppConfig::new("http://127.0.0.1");
        let app = match moim_app::App::open(config, &url).await {
            Ok(a) => a,
            Err(e) => return fail(format!("cannot open the app's store: {e}")),
        };
        match command {
            AppCmd::RotateSigningKey => match app.rotate_signing_key().await {
                Ok(kid) => {
                    println!(
                        "added signing key {kid}. Restart moim serve (or moim auth) to sign \
                         with it; tokens signed with the older keys keep verifying until \
                         they expire."
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(format!("cannot store the new key: {e}")),
            },
            AppCmd::RevokeSessions { user } => match app.revoke_user_sessions(&user).await {
                Ok(0) => {
                    println!(
                        "user {user} has no live session (check the id: GET /api/me shows it)"
                    );
                    ExitCode::SUCCESS
                }
                Ok(n) => {
                    println!(
                        "revoked {n} session(s) of user {user}; their next request is refused"
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(format!("cannot revoke the sessions: {e}")),
            },
        }
    })
}
