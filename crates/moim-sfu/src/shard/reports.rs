//! What a shard measures and reports to its rooms on a tick of its own:
//! audio levels every `LEVEL_WINDOW` (for active speakers) and link quality
//! every `QUALITY_WINDOW` (for `connection_quality`). The rooms decide what
//! the numbers mean to clients.

use std::time::{Duration, Instant};

use super::{Shard, ShardIo};
use crate::api::{PeerEvent, TrackKind};
use crate::audio_level::LEVEL_WINDOW;
use crate::quality::QUALITY_WINDOW;

impl<Io: ShardIo> Shard<Io> {
    /// Starts the level tick with the shard's first audio track.
    pub(super) fn start_level_tick(&mut self) {
        if self.level_tick.is_none() {
            self.level_tick = Some(self.now + LEVEL_WINDOW);
        }
    }

    /// Starts the quality tick with the shard's first PeerConnection.
    pub(super) fn start_quality_tick(&mut self) {
        if self.quality_tick.is_none() {
            self.quality_tick = Some(self.now + QUALITY_WINDOW);
        }
    }

    pub(super) fn report_levels(&mut self, now: Instant) {
        let mut audio = false;
        for track in self.tracks.values_mut() {
            if track.kind != TrackKind::Audio {
                continue;
            }
            audio = true;
            if let Some(level) = track.meter.close_window() {
                if let Some(publisher) = self.peers.get(&track.publisher) {
                    publisher.emit(PeerEvent::AudioLevel {
                        track: track.key,
                        level,
                    });
                }
            }
        }
        self.level_tick = audio.then(|| next_tick(self.level_tick, now, LEVEL_WINDOW));
    }

    pub(super) fn report_quality(&mut self, now: Instant) {
        // A PeerConnection that never came up has no link to judge yet;
        // the room reports it when it does.
        for peer in self.peers.values_mut().filter(|p| p.connected_at.is_some()) {
            if let Some((quality, score)) = peer.link.close_window() {
                peer.emit(PeerEvent::LinkQuality { quality, score });
            }
        }
        self.quality_tick =
            (!self.peers.is_empty()).then(|| next_tick(self.quality_tick, now, QUALITY_WINDOW));
    }
}

/// The tick after `last`. A shard that fell behind (a long pass) skips the
/// missed ticks rather than closing several empty windows at once.
pub(super) fn next_tick(last: Option<Instant>, now: Instant, every: Duration) -> Instant {
    let next = last.unwrap_or(now) + every;
    if next <= now {
        now + every
    } else {
        next
    }
}
