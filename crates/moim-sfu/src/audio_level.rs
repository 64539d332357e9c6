//! How loud a published audio track is, from the RFC 6464 audio-level
//! header extension its packets carry: the input to active-speaker
//! detection. The shard feeds every packet's level in (no allocation, a few
//! additions) and closes a window every [`LEVEL_WINDOW`]; the room decides
//! who is speaking from what the windows report.
//!
//! Pure state machine: levels in, a number out, tested with plain numbers.

use std::time::Duration;

/// How often each audio track's level is worked out and, if it changed,
/// reported to the room. Ten Opus packets at 20 ms.
pub const LEVEL_WINDOW: Duration = Duration::from_millis(200);

/// A packet at least this loud (in -dBov, RFC 6464: 0 is the loudest, 127
/// silence) counts as voice. Speech into a headset sits around 20–30;
/// background noise and comfort noise are quieter than 40.
const VOICE_DBOV: u8 = 35;

/// A window is "speaking" when at least this share of its packets is
/// voice, so a click or a short beep does not make someone a speaker.
const VOICE_SHARE_PERCENT: u32 = 40;

/// Windows without voice before a speaker drops out: the pauses between
/// words are shorter than this, a finished sentence is longer.
const HANGOVER_WINDOWS: u8 = 2;

/// Levels are reported in steps of 1/100, so that small wobbles in a steady
/// voice do not become messages.
const STEPS: f32 = 100.0;

#[derive(Debug, Default, Clone)]
pub struct LevelMeter {
    packets: u32,
    voice_packets: u32,
    /// Sum of the voice packets' linear amplitude (1.0 at 0 dBov).
    voice_amplitude: f32,
    /// Smoothed level while speaking; 0 when not.
    smoothed: f32,
    quiet_windows: u8,
    /// What the last closed window reported.
    reported: f32,
}

impl LevelMeter {
    /// One packet's audio level: str0m gives it as `-dBov` negated, so
    /// 0 is the loudest and -127 silence.
    pub fn observe(&mut self, level: i8) {
        let dbov = level.unsigned_abs().min(127);
        self.packets += 1;
        if dbov <= VOICE_DBOV {
            self.voice_packets += 1;
            self.voice_amplitude += amplitude(dbov);
        }
    }

    /// Ends the window. Returns the new level (0 for not speaking, else in
    /// (0, 1], linear amplitude) if it differs from the last one reported.
    pub fn close_window(&mut self) -> Option<f32> {
        let speaking =
            self.packets > 0 && self.voice_packets * 100 >= self.packets * VOICE_SHARE_PERCENT;
        if speaking {
            let window = self.voice_amplitude / self.voice_packets as f32;
            self.smoothed = if self.smoothed == 0.0 {
                window
            } else {
                (self.smoothed + window) / 2.0
            };
            self.quiet_windows = 0;
        } else if self.smoothed > 0.0 {
            self.quiet_windows += 1;
            if self.quiet_windows > HANGOVER_WINDOWS {
                self.smoothed = 0.0;
            }
        }
        self.packets = 0;
        self.voice_packets = 0;
        self.voice_amplitude = 0.0;
        let level = if self.smoothed > 0.0 {
            ((self.smoothed * STEPS).round() / STEPS).max(1.0 / STEPS)
        } else {
            0.0
        };
        if level == self.reported {
            return None;
        }
        self.reported = level;
        Some(level)
    }

    /// The level the last window reported.
    pub fn level(&self) -> f32 {
        self.reported
    }
}

/// 10^(-dBov/20), the linear amplitude LiveKit clients expect in
/// `SpeakerInfo.level`, for the levels that count as voice: a table, so the
/// packet path does a lookup and no `powf`.
fn amplitude(dbov: u8) -> f32 {
    static TABLE: std::sync::LazyLock<[f32; VOICE_DBOV as usize + 1]> =
        std::sync::LazyLock::new(|| std::array::from_fn(|dbov| 10f32.powf(-(dbov as f32) / 20.0)));
    TABLE.get(usize::from(dbov)).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 200 ms window of ten packets, `voice` of them at `dbov`, the rest silent.
    fn window(meter: &mut LevelMeter, voice: usize, dbov: i8) -> Option<f32> {
        for i in 0..10 {
            meter.observe(if i < voice { -dbov } else { -127 });
        }
        meter.close_window()
    }

    #[test]
    fn a_steady_voice_is_reported_once_until_it_changes() {
        let mut m = LevelMeter::default();
        let first = window(&mut m, 10, 20).expect("speaking is news");
        assert!((first - 0.1).abs() < 0.01, "-20 dBov is 0.1: {first}");
        assert_eq!(
            window(&mut m, 10, 20),
            None,
            "the same level again is not news"
        );
        let louder = window(&mut m, 10, 6).expect("louder");
        assert!(louder > first);
    }

    #[test]
    fn pauses_between_words_keep_the_speaker_but_silence_drops_them() {
        let mut m = LevelMeter::default();
        assert!(window(&mut m, 10, 20).is_some());
        // Two quiet windows (400 ms) are a pause: still speaking.
        assert_eq!(window(&mut m, 0, 0), None);
        assert_eq!(window(&mut m, 0, 0), None);
        assert!(m.level() > 0.0);
        // The third is silence: dropped, reported once.
        assert_eq!(window(&mut m, 0, 0), Some(0.0));
        assert_eq!(window(&mut m, 0, 0), None);
    }

    #[test]
    fn a_click_or_background_noise_is_not_speech() {
        let mut m = LevelMeter::default();
        assert_eq!(window(&mut m, 1, 3), None, "one loud packet in ten");
        assert_eq!(window(&mut m, 10, 45), None, "steady noise below -35 dBov");
    }

    #[test]
    fn a_muted_track_that_sends_nothing_drops_out_too() {
        let mut m = LevelMeter::default();
        assert!(window(&mut m, 10, 10).is_some());
        for _ in 0..HANGOVER_WINDOWS {
            assert_eq!(m.close_window(), None);
        }
        assert_eq!(m.close_window(), Some(0.0));
    }

    #[test]
    fn the_amplitude_table_is_ten_to_the_minus_dbov_over_twenty() {
        for dbov in 0..=VOICE_DBOV {
            let exact = 10f32.powf(-(dbov as f32) / 20.0);
            assert!((amplitude(dbov) - exact).abs() < 1e-6, "{dbov} dBov");
        }
        assert_eq!(
            amplitude(VOICE_DBOV + 1),
            0.0,
            "quieter than voice is never summed"
        );
    }

    #[test]
    fn levels_stay_in_range_at_the_extremes() {
        let mut m = LevelMeter::default();
        let loudest = window(&mut m, 10, 0).expect("0 dBov");
        assert!(loudest <= 1.0);
        let mut quiet = LevelMeter::default();
        let level = window(&mut quiet, 10, 35).expect("just voice");
        assert!(level >= 0.01, "a speaker never reports 0: {level}");
        let mut garbage = LevelMeter::default();
        garbage.observe(i8::MIN);
        assert_eq!(garbage.close_window(), None);
    }
}
