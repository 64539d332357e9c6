//! Media gaps: a stream that was flowing and then delivered nothing for a
//! while. Pure: fed packet counters and the time they were read at.

use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
struct StreamState {
    packets: u64,
    /// When the counter last moved.
    advanced_at: Duration,
    /// Whether the current stall was already counted as a gap.
    counted: bool,
}

/// Watches every received stream for stalls of at least `threshold`.
#[derive(Debug, Clone)]
pub struct GapTracker<K> {
    threshold: Duration,
    streams: BTreeMap<K, StreamState>,
    gaps: usize,
    longest: Duration,
}

impl<K: Ord + Clone> GapTracker<K> {
    pub fn new(threshold: Duration) -> Self {
        Self {
            threshold,
            streams: BTreeMap::new(),
            gaps: 0,
            longest: Duration::ZERO,
        }
    }

    /// One reading of every stream's packet counter at `now` (any monotonic
    /// origin). A stream missing from a reading is treated as not advancing:
    /// a participant whose connection died stops reporting it.
    pub fn observe(&mut self, now: Duration, counters: impl IntoIterator<Item = (K, u64)>) {
        for (key, packets) in counters {
            let s = self.streams.entry(key).or_insert(StreamState {
                packets,
                advanced_at: now,
                counted: false,
            });
            if packets != s.packets {
                s.packets = packets;
                s.advanced_at = now;
                s.counted = false;
            }
        }
        for s in self.streams.values_mut() {
            let stalled = now.saturating_sub(s.advanced_at);
            self.longest = self.longest.max(stalled);
            if stalled >= self.threshold && !s.counted {
                s.counted = true;
                self.gaps += 1;
            }
        }
    }

    /// Stalls of at least the threshold, each counted once however long.
    pub fn gaps(&self) -> usize {
        self.gaps
    }

    /// The longest time any stream went without a packet.
    pub fn longest(&self) -> Duration {
        self.longest
    }

    /// Streams stalled for at least the threshold at the last reading.
    pub fn stalled_now(&self, now: Duration) -> usize {
        self.streams
            .values()
            .filter(|s| now.saturating_sub(s.advanced_at) >= self.threshold)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_flowing_stream_has_no_gap() {
        let mut g = GapTracker::new(ms(1000));
        for i in 0..50u64 {
            g.observe(ms(i * 200), [(1u32, i * 10)]);
        }
        assert_eq!(g.gaps(), 0);
        assert_eq!(g.longest(), Duration::ZERO);
    }

    #[test]
    fn a_stall_is_counted_once_and_again_after_media_returns() {
        let mut g = GapTracker::new(ms(1000));
        let readings = [
            (0, 10),
            (200, 20),
            (400, 20),
            (1400, 20), // stalled 1.2 s: one gap
            (3000, 20), // still the same gap
            (3200, 30), // flowing again
            (3400, 40),
            (4600, 40), // stalled 1.2 s: a second gap
        ];
        for (t, p) in readings {
            g.observe(ms(t), [(7u32, p)]);
        }
        assert_eq!(g.gaps(), 2);
        assert_eq!(g.longest(), ms(2800));
        assert_eq!(g.stalled_now(ms(4600)), 1);
    }

    #[test]
    fn a_short_pause_is_not_a_gap() {
        let mut g = GapTracker::new(ms(1000));
        g.observe(ms(0), [(1u32, 1)]);
        g.observe(ms(900), [(1u32, 1)]);
        g.observe(ms(1000 - 1), [(1u32, 2)]);
        assert_eq!(g.gaps(), 0);
        assert_eq!(g.longest(), ms(900));
    }

    #[test]
    fn a_stream_that_stops_being_reported_stalls() {
        let mut g = GapTracker::new(ms(1000));
        g.observe(ms(0), [(1u32, 5), (2, 5)]);
        g.observe(ms(500), [(1u32, 6), (2, 6)]);
        g.observe(ms(2000), [(1u32, 9)]);
        assert_eq!(g.gaps(), 1);
        assert_eq!(g.stalled_now(ms(2000)), 1);
    }
}
