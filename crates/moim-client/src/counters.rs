//! The counters the session writes and [`crate::Client::stats`] reads, behind one mutex so
//! the handle can read them without a round trip through the task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::event::TrackKind;
use crate::stats::RtpReceiveStats;

/// Send counters of one local RTP stream.
#[derive(Debug, Clone, Default)]
pub struct SentStats {
    pub track_sid: String,
    pub rid: Option<String>,
    pub ssrc: u32,
    pub packets: u64,
    pub bytes: u64,
    pub keyframes: u64,
}

pub(crate) struct RxEntry {
    pub track_sid: String,
    pub participant_sid: String,
    pub mid: String,
    pub rid: Option<String>,
    pub kind: TrackKind,
    pub stats: RtpReceiveStats,
}

#[derive(Default)]
pub(crate) struct SharedStats {
    pub rx: HashMap<u32, RxEntry>,
    pub tx: HashMap<u32, SentStats>,
    pub signal_rtt: Option<Duration>,
    pub frames_binary: u64,
    pub frames_text: u64,
    pub data_packets: u64,
}

pub(crate) type Shared = Arc<Mutex<SharedStats>>;

/// The counters, even if a thread panicked holding them: they are plain numbers, never left
/// half written in a way that matters.
pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, SharedStats> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}
