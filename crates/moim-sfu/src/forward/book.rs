//! What a publisher's layers look like, kept once per track.

use std::time::{Duration, Instant};

use super::{ALL_TEMPORAL, LAYER_TIMEOUT, MAX_LAYERS};

/// Temporal layers counted for frame rates; higher ones count as the top.
pub const MAX_TEMPORAL: usize = 4;

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
    /// Spatial layers travel inside one stream, each adding to the ones
    /// below (SVC): a subscriber on layer `l` is sent layers `0..=l`.
    nested: bool,
    /// Frames started per stream and temporal layer since the last window,
    /// and what that made per second.
    frames: [[u32; MAX_TEMPORAL]; MAX_LAYERS],
    frame_rates: [[f32; MAX_TEMPORAL]; MAX_LAYERS],
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

    /// The track's spatial layers are inside one stream (see `nested`).
    pub fn set_nested(&mut self) {
        self.nested = true;
    }

    /// The stream that carries `layer`: its own simulcast stream, or for
    /// SVC the one stream that carries them all (keyframe requests go there).
    pub fn stream_of(&self, layer: usize) -> usize {
        if self.nested {
            0
        } else {
            layer
        }
    }

    /// A frame of temporal layer `temporal` began on simulcast `stream`.
    pub fn frame_started(&mut self, stream: usize, temporal: u8) {
        let t = (temporal as usize).min(MAX_TEMPORAL - 1);
        if let Some(frames) = self.frames.get_mut(stream) {
            frames[t] += 1;
        }
    }

    /// Turns the bytes counted over the last `elapsed` into rates.
    pub fn close_rate_window(&mut self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f32().max(1e-3);
        for (rates, frames) in self.frame_rates.iter_mut().zip(self.frames.iter_mut()) {
            for (rate, n) in rates.iter_mut().zip(frames.iter_mut()) {
                *rate = std::mem::take(n) as f32 / seconds;
            }
        }
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

    /// What a subscriber on `layer` is sent, in bits per second, once it
    /// has been measured.
    pub fn rate(&self, layer: usize) -> Option<u64> {
        let own = self.rates.get(layer).copied().filter(|r| *r > 0)?;
        if self.nested {
            return Some(self.rates[..layer].iter().sum::<u64>() + own);
        }
        Some(own)
    }

    /// The lowest temporal layer of `stream` whose frames, with those of
    /// the layers below, come at `fps` or more; every layer when none does
    /// or the rates are not known yet.
    pub fn temporal_for_fps(&self, stream: usize, fps: u32) -> u8 {
        let Some(rates) = self.frame_rates.get(stream) else {
            return ALL_TEMPORAL;
        };
        let Some(top) = rates.iter().rposition(|r| *r > 0.0) else {
            return ALL_TEMPORAL;
        };
        let mut sum = 0.0;
        for (t, rate) in rates[..top].iter().enumerate() {
            sum += rate;
            // A little under what was asked counts: 29.7 fps is "30".
            if sum >= fps as f32 * 0.9 {
                return t as u8;
            }
        }
        ALL_TEMPORAL
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_nested_layer_costs_the_layers_below_it_too() {
        let mut book = LayerBook::default();
        book.carried(0, 10_000);
        book.carried(1, 20_000);
        book.close_rate_window(Duration::from_secs(1));
        assert_eq!(book.rate(1), Some(160_000), "simulcast: its own stream");
        book.set_nested();
        assert_eq!(book.rate(1), Some(240_000), "SVC: layers 0 and 1");
        assert_eq!(book.rate(2), None, "layer 2 sends nothing");
    }

    #[test]
    fn a_frame_rate_picks_the_temporal_layers_that_make_it() {
        let mut book = LayerBook::default();
        assert_eq!(book.temporal_for_fps(0, 15), ALL_TEMPORAL, "unmeasured");
        // L1T3 at 30 fps: 7.5 + 7.5 + 15 frames a second.
        for (t, n) in [(0u8, 15), (1, 15), (2, 30)] {
            for _ in 0..n {
                book.frame_started(0, t);
            }
        }
        book.close_rate_window(Duration::from_secs(2));
        assert_eq!(book.temporal_for_fps(0, 5), 0);
        assert_eq!(book.temporal_for_fps(0, 15), 1);
        assert_eq!(book.temporal_for_fps(0, 20), ALL_TEMPORAL);
        assert_eq!(book.temporal_for_fps(0, 60), ALL_TEMPORAL);
        assert_eq!(
            book.temporal_for_fps(1, 15),
            ALL_TEMPORAL,
            "stream 1 unmeasured"
        );
    }
}
