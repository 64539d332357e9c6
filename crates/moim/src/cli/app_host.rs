//! What `moim serve` and `moim auth` share: their log, where the built
//! meeting app is, and opening the app's store.

use std::path::{Path, PathBuf};

/// The log of a long-running command, filtered by `MOIM_LOG` (default
/// `info`). Colour only on a terminal: escape codes in a log file or the
/// journal make it hard to read and to grep.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            EnvFilter::try_from_env("MOIM_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
}

/// Where the built meeting app may be, in the order looked at.
pub fn meet_dirs(meet_dir: Option<&Path>) -> Vec<PathBuf> {
    if let Some(dir) = meet_dir {
        return vec![dir.to_path_buf()];
    }
    let mut dirs = Vec::new();
    if let Some(bin_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(PathBuf::from))
    {
        dirs.push(bin_dir.join("../share/moim/meet"));
        dirs.push(bin_dir.join("meet"));
    }
    dirs.push(PathBuf::from(moim_app::meet::SOURCE_TREE_DIST));
    dirs
}

/// Opens the app on `database_url`, or on a SQLite file in `data_dir`
/// (created if missing).
pub async fn open_app(
    config: moim_app::AppConfig,
    database_url: Option<&str>,
    data_dir: &Path,
) -> Result<moim_app::App, String> {
    let url = match database_url {
        Some(u) => u.to_string(),
        None => {
            std::fs::create_dir_all(data_dir).map_err(|e| {
                format!(
                    "cannot create the data directory {}: {e}. Pass --data-dir (or MOIM_DATA_DIR) \
                     with a directory moim may write to",
                    data_dir.display()
                )
            })?;
            format!("sqlite://{}", data_dir.join("app.db").display())
        }
    };
    let public = config.public_origin.clone();
    let app = moim_app::App::open(config, &url)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(public_url = %public, "the app's login and API are served under /auth/ and /api/");
    Ok(app)
}
