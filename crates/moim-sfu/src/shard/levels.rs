//! The audio level tick: every `LEVEL_WINDOW` each audio track's meter
//! closes its window, and levels that changed go to the room, which
//! decides who is speaking.

use std::time::Instant;

use super::{Shard, ShardIo};
use crate::api::{PeerEvent, TrackKind};
use crate::audio_level::LEVEL_WINDOW;

impl<Io: ShardIo> Shard<Io> {
    /// Starts the tick with the shard's first audio track.
    pub(super) fn start_level_tick(&mut self) {
        if self.level_tick.is_none() {
            self.level_tick = Some(self.now + LEVEL_WINDOW);
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
        // A shard that fell behind (a long pass) skips the missed ticks
        // rather than closing several empty windows at once.
        self.level_tick = audio.then(|| {
            let next = self.level_tick.unwrap_or(now) + LEVEL_WINDOW;
            if next <= now {
                now + LEVEL_WINDOW
            } else {
                next
            }
        });
    }
}
