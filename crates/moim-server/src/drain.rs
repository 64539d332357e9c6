//! Shutting down without dropping calls: on the first signal moim stops
//! taking new participants and tells load balancers (`/healthz` turns 503),
//! lets the calls in progress go on until they end or the drain timeout
//! passes, then sends every participant a `Leave` that makes its SDK join
//! again elsewhere. A second signal skips the wait.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{info, warn};

use crate::directory::RoomDirectory;
use crate::room::RoomInput;

/// How long the signal connections get to write their `Leave` and close
/// frame once the rooms have sent them.
const FLUSH_LIMIT: Duration = Duration::from_secs(3);

/// Shared between the HTTP routes, the signal connections and the server's
/// run loop.
#[derive(Default)]
pub struct Drain {
    draining: AtomicBool,
    now: AtomicBool,
    signal_connections: AtomicUsize,
    changed: Notify,
}

impl Drain {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Counts a signal connection until the guard drops.
    pub fn connection(self: &Arc<Self>) -> ConnectionGuard {
        self.signal_connections.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard(self.clone())
    }

    fn connections(&self) -> usize {
        self.signal_connections.load(Ordering::Acquire)
    }

    fn begin(&self) {
        self.draining.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    fn end_now(&self) {
        self.draining.store(true, Ordering::Release);
        self.now.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Waits until `done` holds, re-checking whenever the state changes.
    async fn until(&self, done: impl Fn(&Self) -> bool) {
        loop {
            let changed = self.changed.notified();
            if done(self) {
                return;
            }
            changed.await;
        }
    }
}

pub struct ConnectionGuard(Arc<Drain>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.signal_connections.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

/// What the process holds to shut moim down; cloned into signal handlers.
#[derive(Clone)]
pub struct Shutdown(pub(crate) Arc<Drain>);

impl Shutdown {
    /// Starts draining (the first SIGTERM or Ctrl-C).
    pub fn drain(&self) {
        self.0.begin();
    }

    /// Ends the drain at once (the second signal): everyone gets the
    /// `Leave` now.
    pub fn now(&self) {
        self.0.end_now();
    }

    pub fn is_draining(&self) -> bool {
        self.0.is_draining()
    }
}

/// Runs the drain once it has begun; returns when the server may exit.
pub async fn run(drain: Arc<Drain>, rooms: Arc<dyn RoomDirectory>, timeout: Duration) {
    drain.until(Drain::is_draining).await;
    let in_calls = rooms.participant_count();
    if in_calls > 0 && !drain.now.load(Ordering::Acquire) {
        info!(
            participants = in_calls,
            rooms = rooms.list().len(),
            "draining: /healthz answers 503 and new participants are refused; calls in progress \
             go on for up to {timeout:?} (shutdown.drain_timeout_secs). Send SIGTERM or Ctrl-C \
             again to end them now"
        );
        // Rooms count their participants without telling the drain; a
        // tenth of a second late is soon enough.
        let calls_end = async {
            while rooms.participant_count() > 0 && !drain.now.load(Ordering::Acquire) {
                let changed = drain.changed.notified();
                tokio::select! {
                    () = changed => {}
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        };
        let waited = tokio::time::timeout(timeout, calls_end).await;
        if waited.is_err() {
            info!("drain timeout passed; sending the remaining participants to another server");
        }
    }
    let rooms_open = rooms.list();
    let left = drain.connections();
    for (_, room) in &rooms_open {
        let _ = room.send(RoomInput::Shutdown);
    }
    if left > 0 {
        info!(
            connections = left,
            rooms = rooms_open.len(),
            "sending Leave (SERVER_SHUTDOWN, reconnect) to every participant"
        );
        let flushed =
            tokio::time::timeout(FLUSH_LIMIT, drain.until(|d| d.connections() == 0)).await;
        if flushed.is_err() {
            warn!(
                connections = drain.connections(),
                "some signal connections did not close within {FLUSH_LIMIT:?}; exiting anyway"
            );
        }
    }
    info!("drained; moim stops");
}
