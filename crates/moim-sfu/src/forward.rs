//! Per-subscription RTP rewriting: which simulcast layer a subscriber gets,
//! and the sequence numbers and timestamps that make the switch invisible.
//!
//! Pure state machine: packets and `now` in, a verdict out. No str0m types,
//! so it is unit-tested with plain numbers.

use std::time::{Duration, Instant};

/// Simulcast layers, low to high (`q`, `h`, `f`). Non-simulcast tracks use 0.
pub const MAX_LAYERS: usize = 3;

/// A layer that sent nothing for this long is considered gone.
pub const LAYER_TIMEOUT: Duration = Duration::from_millis(1000);

/// What a publisher's layers look like right now, kept once per track:
/// which are live, and how many bits per second each carries.
#[derive(Debug, Default, Clone)]
pub struct LayerBook {
    last_seen: [Option<Instant>; MAX_LAYERS],
    /// Payload bytes per layer since the last `close_rate_window`.
    bytes: [u64; MAX_LAYERS],
    /// Bits per second per layer: up at once, down by half the difference
    /// per window, so a keyframe's burst and a quiet second do not make the
    /// allocator flap.
    rates: [u64; MAX_LAYERS],
}

impl LayerBook {
    pub fn saw(&mut self, layer: usize, now: Instant) {
        if let Some(slot) = self.last_seen.get_mut(layer) {
            *slot = Some(now);
        }
    }

    /// A packet of `bytes` arrived on `layer`.
    pub fn carried(&mut self, layer: usize, bytes: usize) {
        if let Some(b) = self.bytes.get_mut(layer) {
            *b += bytes as u64;
        }
    }

    /// Turns the bytes counted over the last `elapsed` into rates.
    pub fn close_rate_window(&mut self, elapsed: Duration) {
        let micros = elapsed.as_micros().max(1) as u64;
        for (rate, bytes) in self.rates.iter_mut().zip(self.bytes.iter_mut()) {
            let measured = std::mem::take(bytes).saturating_mul(8_000_000) / micros;
            *rate = if measured >= *rate {
                measured
            } else {
                (*rate + measured) / 2
            };
        }
    }

    /// What `layer` carries, in bits per second, once it has been measured.
    pub fn rate(&self, layer: usize) -> Option<u64> {
        self.rates.get(layer).copied().filter(|r| *r > 0)
    }

    pub fn is_live(&self, layer: usize, now: Instant) -> bool {
        self.last_seen
            .get(layer)
            .copied()
            .flatten()
            .is_some_and(|t| now.saturating_duration_since(t) < LAYER_TIMEOUT)
    }

    /// The highest live layer not above `cap`.
    pub fn best(&self, cap: usize, now: Instant) -> Option<usize> {
        (0..=cap.min(MAX_LAYERS - 1))
            .rev()
            .find(|&l| self.is_live(l, now))
    }
}

/// The packet fields the forwarder needs.
#[derive(Debug, Clone, Copy)]
pub struct InPacket {
    pub layer: usize,
    /// Extended (rollover-free) sequence number of the publisher's stream.
    pub seq: u64,
    pub timestamp: u32,
    pub keyframe_start: bool,
    /// Audio and AV1/SVC video do not wait for keyframes.
    pub needs_keyframe: bool,
    /// RTP clock rate, to turn wall time into timestamp ticks on a switch.
    pub clock_rate: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Forward { seq: u64, timestamp: u32 },
    Drop,
}

/// Where an outgoing stream stands: the last sequence number and timestamp
/// written to it, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPosition {
    pub seq: u64,
    pub timestamp: u32,
    pub at: Instant,
}

/// Rewrites one publisher track for one subscriber.
#[derive(Debug)]
pub struct Forwarder {
    current: Option<usize>,
    /// Offsets that map the current layer onto the outgoing stream.
    seq_offset: i64,
    ts_offset: u32,
    last_out: Option<StreamPosition>,
    /// Highest layer this subscriber wants (adaptive stream may lower it).
    max_layer: usize,
    paused: bool,
    /// What the subscriber's downlink has room for (see `allocate.rs`).
    allowance: Allowance,
}

/// How much of a track a subscriber's downlink has room for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowance {
    /// No estimate limits it.
    Any,
    /// Layers up to this one.
    UpTo(usize),
    /// Not even the lowest layer fits: nothing is forwarded.
    Nothing,
}

impl Default for Forwarder {
    fn default() -> Self {
        Self::new()
    }
}

impl Forwarder {
    pub fn new() -> Self {
        Self {
            current: None,
            seq_offset: 0,
            ts_offset: 0,
            last_out: None,
            max_layer: MAX_LAYERS - 1,
            paused: false,
            allowance: Allowance::Any,
        }
    }

    /// A forwarder onto a stream that already carried another track (an
    /// `/rtc/v1` section reused for a new subscription keeps its SSRC). The
    /// stream goes on from `position`: starting its sequence numbers over
    /// would put every packet behind the receiver's SRTP replay window,
    /// which drops them until the new numbers pass the old ones.
    pub fn continue_stream(&mut self, position: StreamPosition) {
        if self.last_out.is_none() {
            self.last_out = Some(position);
        }
    }

    /// The last packet this forwarder sent, if any.
    pub fn position(&self) -> Option<StreamPosition> {
        self.last_out
    }

    pub fn set_max_layer(&mut self, layer: usize) {
        self.max_layer = layer.min(MAX_LAYERS - 1);
    }

    /// The highest layer the subscriber asked for.
    pub fn max_layer(&self) -> usize {
        self.max_layer
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// What the downlink has room for. Going from nothing to something
    /// waits for a keyframe, like a fresh subscriber.
    pub fn set_allowance(&mut self, allowance: Allowance) {
        if allowance == Allowance::Nothing {
            self.current = None;
        }
        self.allowance = allowance;
    }

    pub fn allowance(&self) -> Allowance {
        self.allowance
    }

    /// The highest layer that may be forwarded, or `None` for nothing.
    fn cap(&self) -> Option<usize> {
        if self.paused {
            return None;
        }
        match self.allowance {
            Allowance::Any => Some(self.max_layer),
            Allowance::UpTo(l) => Some(l.min(self.max_layer)),
            Allowance::Nothing => None,
        }
    }

    /// A paused subscription forwards nothing (track disabled, or muted).
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        if paused {
            // Resuming needs a keyframe, exactly like a fresh subscriber.
            self.current = None;
        }
    }

    pub fn current_layer(&self) -> Option<usize> {
        self.current
    }

    /// The layer this subscriber should be on, given what the publisher sends.
    pub fn target_layer(&self, book: &LayerBook, now: Instant) -> Option<usize> {
        book.best(self.cap()?, now)
    }

    /// Whether a keyframe on `layer` would help this subscriber now.
    pub fn wants_keyframe(&self, book: &LayerBook, now: Instant) -> Option<usize> {
        let target = self.target_layer(book, now)?;
        (self.current != Some(target)).then_some(target)
    }

    pub fn on_packet(&mut self, p: InPacket, book: &LayerBook, now: Instant) -> Verdict {
        let Some(cap) = self.cap() else {
            return Verdict::Drop;
        };
        let target = book.best(cap, now).unwrap_or(p.layer);
        if self.current != Some(p.layer) {
            // Switch only onto the target layer, and (for video) only at a
            // keyframe, so the decoder never sees a frame it cannot decode.
            // A layer that went quiet is left for any live one within the
            // cap; a subscriber that has nothing yet starts on the target.
            let current_dead = self.current.is_some_and(|c| !book.is_live(c, now));
            let switch_wanted = p.layer == target || (current_dead && p.layer <= cap);
            if !switch_wanted || (p.needs_keyframe && !p.keyframe_start) {
                return Verdict::Drop;
            }
            self.switch_to(p, now);
        }
        let seq = p.seq as i64 + self.seq_offset;
        if seq < 0 {
            return Verdict::Drop; // older than where this subscriber started
        }
        let seq = seq as u64;
        let timestamp = p.timestamp.wrapping_add(self.ts_offset);
        let newer = self.last_out.is_none_or(|l| seq > l.seq);
        if newer {
            self.last_out = Some(StreamPosition {
                seq,
                timestamp,
                at: now,
            });
        }
        Verdict::Forward { seq, timestamp }
    }

    fn switch_to(&mut self, p: InPacket, now: Instant) {
        match self.last_out {
            None => {
                // Start low so the SRTP rollover counter begins at 0 on the
                // subscriber's side.
                self.seq_offset = 1 - p.seq as i64;
                self.ts_offset = 0;
            }
            Some(last) => {
                self.seq_offset = (last.seq + 1) as i64 - p.seq as i64;
                let elapsed = now.saturating_duration_since(last.at);
                let ticks =
                    (elapsed.as_micros() as u64 * p.clock_rate as u64 / 1_000_000).max(1) as u32;
                let out_ts = last.timestamp.wrapping_add(ticks);
                self.ts_offset = out_ts.wrapping_sub(p.timestamp);
            }
        }
        self.current = Some(p.layer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(layer: usize, seq: u64, ts: u32, key: bool) -> InPacket {
        InPacket {
            layer,
            seq,
            timestamp: ts,
            keyframe_start: key,
            needs_keyframe: true,
            clock_rate: 90_000,
        }
    }

    #[test]
    fn a_reused_stream_goes_on_from_where_the_last_track_stopped() {
        let t0 = Instant::now();
        let mut book = LayerBook::default();
        book.saw(0, t0);
        let mut old = Forwarder::new();
        for i in 0..500u64 {
            old.on_packet(video(0, 9000 + i, 3000 * i as u32, i == 0), &book, t0);
        }
        let left = old.position().expect("the old track sent packets");
        assert_eq!(left.seq, 500);

        // A different publisher's track, with its own random numbering,
        // arrives on the same section 2 s later.
        let t1 = t0 + Duration::from_secs(2);
        book.saw(0, t1);
        let mut new = Forwarder::new();
        new.continue_stream(left);
        let Verdict::Forward { seq, timestamp } =
            new.on_packet(video(0, 40, 7_000_000, true), &book, t1)
        else {
            panic!("the new track's keyframe is forwarded");
        };
        assert_eq!(seq, 501, "no step back into the receiver's replay window");
        assert_eq!(
            timestamp,
            left.timestamp.wrapping_add(2 * 90_000),
            "the timestamp moves on by the time that passed"
        );
        assert_eq!(
            new.on_packet(video(0, 41, 7_000_000, false), &book, t1),
            Verdict::Forward {
                seq: 502,
                timestamp
            }
        );
    }

    #[test]
    fn a_new_subscriber_waits_for_a_keyframe_then_gets_contiguous_sequence_numbers() {
        let now = Instant::now();
        let mut book = LayerBook::default();
        book.saw(0, now);
        let mut f = Forwarder::new();
        assert_eq!(
            f.on_packet(video(0, 5000, 100, false), &book, now),
            Verdict::Drop
        );
        assert_eq!(
            f.on_packet(video(0, 5001, 3100, true), &book, now),
            Verdict::Forward {
                seq: 1,
                timestamp: 3100
            }
        );
        assert_eq!(
            f.on_packet(video(0, 5002, 3100, false), &book, now),
            Verdict::Forward {
                seq: 2,
                timestamp: 3100
            }
        );
    }

    #[test]
    fn the_best_live_layer_wins_and_the_switch_happens_on_its_keyframe() {
        let t0 = Instant::now();
        let mut book = LayerBook::default();
        book.saw(0, t0);
        let mut f = Forwarder::new();
        assert!(matches!(
            f.on_packet(video(0, 10, 0, true), &book, t0),
            Verdict::Forward { .. }
        ));
        // The high layer appears: low keeps flowing until high has a keyframe.
        book.saw(2, t0);
        assert_eq!(f.wants_keyframe(&book, t0), Some(2));
        assert!(matches!(
            f.on_packet(video(0, 11, 0, false), &book, t0),
            Verdict::Forward { .. }
        ));
        assert_eq!(
            f.on_packet(video(2, 900, 50_000, false), &book, t0),
            Verdict::Drop
        );
        let t1 = t0 + Duration::from_millis(33);
        let v = f.on_packet(video(2, 901, 50_000, true), &book, t1);
        // Sequence continues after 2 forwarded packets, time advances ~33 ms.
        assert_eq!(
            v,
            Verdict::Forward {
                seq: 3,
                timestamp: 2970
            }
        );
        assert_eq!(f.current_layer(), Some(2));
        // Low-layer packets are now dropped.
        assert_eq!(
            f.on_packet(video(0, 12, 3000, false), &book, t1),
            Verdict::Drop
        );
    }

    #[test]
    fn when_the_current_layer_dies_a_lower_one_takes_over() {
        let t0 = Instant::now();
        let mut book = LayerBook::default();
        book.saw(1, t0);
        let mut f = Forwarder::new();
        assert!(matches!(
            f.on_packet(video(1, 1, 0, true), &book, t0),
            Verdict::Forward { .. }
        ));
        let later = t0 + LAYER_TIMEOUT + Duration::from_millis(1);
        book.saw(0, later);
        assert_eq!(f.target_layer(&book, later), Some(0));
        assert!(matches!(
            f.on_packet(video(0, 77, 9, true), &book, later),
            Verdict::Forward { seq: 2, .. }
        ));
    }

    #[test]
    fn audio_passes_without_keyframes_and_pausing_stops_it() {
        let now = Instant::now();
        let mut book = LayerBook::default();
        book.saw(0, now);
        let mut f = Forwarder::new();
        let audio = InPacket {
            layer: 0,
            seq: 300,
            timestamp: 960,
            keyframe_start: false,
            needs_keyframe: false,
            clock_rate: 48_000,
        };
        assert!(matches!(
            f.on_packet(audio, &book, now),
            Verdict::Forward { seq: 1, .. }
        ));
        f.set_paused(true);
        assert_eq!(f.on_packet(audio, &book, now), Verdict::Drop);
    }

    #[test]
    fn an_allowance_caps_the_layer_and_nothing_waits_for_a_keyframe_to_come_back() {
        let now = Instant::now();
        let mut book = LayerBook::default();
        book.saw(0, now);
        book.saw(2, now);
        let mut f = Forwarder::new();
        f.set_allowance(Allowance::UpTo(0));
        assert_eq!(f.target_layer(&book, now), Some(0));
        assert_eq!(f.on_packet(video(2, 5, 0, true), &book, now), Verdict::Drop);
        assert!(matches!(
            f.on_packet(video(0, 5, 0, true), &book, now),
            Verdict::Forward { .. }
        ));
        f.set_allowance(Allowance::Nothing);
        assert_eq!(f.wants_keyframe(&book, now), None, "nothing to ask for");
        assert_eq!(
            f.on_packet(video(0, 6, 0, false), &book, now),
            Verdict::Drop
        );
        f.set_allowance(Allowance::Any);
        assert_eq!(f.wants_keyframe(&book, now), Some(2));
        assert_eq!(
            f.on_packet(video(0, 7, 0, false), &book, now),
            Verdict::Drop
        );
    }

    #[test]
    fn layer_rates_rise_at_once_and_fall_by_halves() {
        let mut book = LayerBook::default();
        assert_eq!(book.rate(0), None, "unmeasured");
        book.carried(0, 12_500);
        book.close_rate_window(Duration::from_millis(500));
        assert_eq!(book.rate(0), Some(200_000));
        book.close_rate_window(Duration::from_millis(500));
        assert_eq!(book.rate(0), Some(100_000), "a quiet window halves it");
    }

    #[test]
    fn a_max_layer_cap_keeps_the_subscriber_low() {
        let now = Instant::now();
        let mut book = LayerBook::default();
        book.saw(0, now);
        book.saw(2, now);
        let mut f = Forwarder::new();
        f.set_max_layer(0);
        assert_eq!(f.target_layer(&book, now), Some(0));
        assert_eq!(f.on_packet(video(2, 5, 0, true), &book, now), Verdict::Drop);
        assert!(matches!(
            f.on_packet(video(0, 5, 0, true), &book, now),
            Verdict::Forward { .. }
        ));
    }
}
