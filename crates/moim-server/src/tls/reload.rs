//! Certificate files given on disk are read again when they change, so a
//! `certbot renew` (which points `live/` symlinks at new files) or a
//! Kubernetes Secret update takes effect without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use super::{load_files, LiveCert};

/// How often the files' metadata is looked at: two `stat` calls.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// What identifies a version of the two files: modification times and
/// sizes, through symlinks.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Stamp {
    cert: (Option<SystemTime>, u64),
    key: (Option<SystemTime>, u64),
}

fn stamp(cert: &Path, key: &Path) -> Option<Stamp> {
    let of = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.modified().ok(), m.len()))
    };
    Some(Stamp {
        cert: of(cert)?,
        key: of(key)?,
    })
}

/// Watches `cert` and `key` for as long as the runtime runs.
pub fn watch(cert: PathBuf, key: PathBuf, live: Arc<LiveCert>) {
    let mut last = stamp(&cert, &key);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = stamp(&cert, &key);
            if now.is_none() || now == last {
                continue;
            }
            // A writer may have replaced one file and not yet the other;
            // a key that does not match is retried at the next change.
            match load_files(&cert, &key) {
                Ok(certified) => {
                    live.install(certified);
                    last = now;
                    info!(
                        "TLS certificate {} changed on disk; new connections get the new one",
                        cert.display()
                    );
                }
                Err(e) => {
                    last = now;
                    warn!(
                        "TLS certificate {} changed on disk but cannot be used ({e}); still \
                         serving the previous one. If both files are being replaced, this \
                         clears when the second one is written",
                        cert.display()
                    );
                }
            }
        }
    });
}
