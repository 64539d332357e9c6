//! How long the server holds media: for each pass of a shard's loop that
//! read datagrams, the time from reading the first of them to handing the
//! pass's last send to the kernel. Every packet forwarded in that pass left
//! within that time, so it bounds the latency moim adds, from above. It does
//! not see time spent waiting in the socket's receive queue before the read.
//!
//! One histogram per shard, written only by that shard (relaxed atomics, no
//! shared cache line across shards), read by `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket upper bounds in microseconds; the last bucket takes the rest.
pub const BUCKET_BOUNDS_US: [u64; 13] = [
    10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
];
const BUCKETS: usize = BUCKET_BOUNDS_US.len() + 1;

#[derive(Default)]
pub struct PassLatency {
    counts: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl PassLatency {
    pub fn record(&self, held: Duration) {
        let us = u64::try_from(held.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKET_BOUNDS_US
            .iter()
            .position(|bound| us <= *bound)
            .unwrap_or(BUCKETS - 1);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// Counts per bucket (not cumulative) and the sum, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    pub counts: [u64; BUCKETS],
    pub sum_us: u64,
}

impl LatencySnapshot {
    pub fn merge(mut self, other: &LatencySnapshot) -> Self {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        self.sum_us += other.sum_us;
        self
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Prometheus histogram lines for metric `name` (seconds).
    pub fn prometheus(&self, name: &str, help: &str) -> String {
        let mut out = format!("# HELP {name} {help}\n# TYPE {name} histogram\n");
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count;
            let le = match BUCKET_BOUNDS_US.get(i) {
                Some(us) => format!("{}", *us as f64 / 1e6),
                None => "+Inf".to_string(),
            };
            out.push_str(&format!("{name}_bucket{{le=\"{le}\"}} {cumulative}\n"));
        }
        out.push_str(&format!("{name}_sum {}\n", self.sum_us as f64 / 1e6));
        out.push_str(&format!("{name}_count {cumulative}\n"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_their_bucket_and_export_cumulatively() {
        let h = PassLatency::default();
        h.record(Duration::from_micros(7));
        h.record(Duration::from_micros(10));
        h.record(Duration::from_micros(450));
        h.record(Duration::from_secs(3));
        let s = h.snapshot();
        assert_eq!(s.counts[0], 2);
        assert_eq!(s.counts[5], 1);
        assert_eq!(s.counts[BUCKETS - 1], 1);
        assert_eq!(s.count(), 4);
        let text = s.prometheus("x_seconds", "test");
        assert!(
            text.contains("x_seconds_bucket{le=\"0.00001\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{le=\"0.0005\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("x_seconds_bucket{le=\"+Inf\"} 4\n"), "{text}");
        assert!(text.contains("x_seconds_count 4\n"), "{text}");
        assert_eq!(s.merge(&s).count(), 8);
    }
}
