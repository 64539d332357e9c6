//! Pure aggregation: percentiles, per-stream window deltas and the report the load test prints.

use serde::Serialize;

/// The `q` quantile (0..=1) of `values` by nearest rank; `None` when empty. Sorts a copy.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((v.len() as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as usize;
    v.get(rank - 1).copied()
}

/// p50 / p99 / max of a sample set, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spread {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Spread {
    pub fn of(values_ms: &[f64]) -> Spread {
        Spread {
            count: values_ms.len(),
            p50_ms: percentile(values_ms, 0.5).unwrap_or(0.0),
            p99_ms: percentile(values_ms, 0.99).unwrap_or(0.0),
            max_ms: percentile(values_ms, 1.0).unwrap_or(0.0),
        }
    }
}

/// Counters of one received stream (one SSRC at one participant) at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StreamCounters {
    pub packets: u64,
    pub bytes: u64,
    pub expected: u64,
    pub lost: u64,
    pub jitter_ms: f64,
}

/// Totals over the measurement window: `end - start` per stream, summed. A stream that
/// appeared during the window counts from zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct WindowTotals {
    pub streams: usize,
    pub packets: u64,
    pub bytes: u64,
    pub expected: u64,
    pub lost: u64,
    /// Mean and worst RFC 3550 jitter over streams at the end of the window.
    pub jitter_mean_ms: f64,
    pub jitter_max_ms: f64,
}

impl WindowTotals {
    /// Sum per-stream deltas. `start` and `end` are keyed by any stable stream key.
    pub fn between<K: Ord + Clone>(
        start: &std::collections::BTreeMap<K, StreamCounters>,
        end: &std::collections::BTreeMap<K, StreamCounters>,
    ) -> WindowTotals {
        let mut t = WindowTotals::default();
        let mut jitter_sum = 0.0;
        for (k, e) in end {
            let s = start.get(k).copied().unwrap_or_default();
            t.streams += 1;
            t.packets += e.packets.saturating_sub(s.packets);
            t.bytes += e.bytes.saturating_sub(s.bytes);
            t.expected += e.expected.saturating_sub(s.expected);
            t.lost += e.lost.saturating_sub(s.lost);
            jitter_sum += e.jitter_ms;
            t.jitter_max_ms = t.jitter_max_ms.max(e.jitter_ms);
        }
        if t.streams > 0 {
            t.jitter_mean_ms = jitter_sum / t.streams as f64;
        }
        t
    }

    /// Lost over expected, 0 when nothing was expected.
    pub fn loss_fraction(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            self.lost as f64 / self.expected as f64
        }
    }
}

/// End-to-end latency (publisher send time to subscriber receive, both in this process).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// What `moim load-test` reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub room: String,
    pub publishers: usize,
    pub subscribers: usize,
    pub audio_only: bool,
    pub video_bitrate_bps: u32,
    pub fps: u32,
    pub simulcast: bool,
    /// Participants that failed to join or publish.
    pub join_failures: usize,
    pub first_error: Option<String>,
    /// WebSocket open to `join` response.
    pub join: Spread,
    /// Connect start to the first RTP packet, for subscribers that received one.
    pub first_media: Spread,
    /// Subscribers that received no media at all.
    pub subscribers_without_media: usize,
    pub window_secs: f64,
    /// Received by all participants during the window (= forwarded by the server).
    pub received: WindowTotals,
    /// Sent by the publishers during the window (all simulcast layers).
    pub sent_packets: u64,
    pub received_packets_per_sec: f64,
    pub received_mbps: f64,
    pub latency: Latency,
    /// Participants whose connection ended before the test let them go (the
    /// server went away, or sent them a Leave).
    pub disconnects: usize,
    pub first_disconnect: Option<String>,
    /// Stalls of at least `max_gap_ms` on received streams during the window.
    pub media_gaps: usize,
    /// The longest any received stream went without a packet in the window.
    pub longest_gap_ms: f64,
    /// Streams stalled when the window ended.
    pub streams_stalled_at_end: usize,
    pub max_gap_ms: f64,
    /// CPU time of this process (the load generator) over the window, in cores (1.0 = one
    /// core busy). Near the machine's core count means the tester, not the server, limits.
    pub tester_cpu_cores: f64,
}

impl Report {
    /// What went wrong in the run, one sentence each; empty when it passed.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.join_failures > 0 {
            p.push(format!(
                "{} participants could not join or publish (first: {})",
                self.join_failures,
                self.first_error.as_deref().unwrap_or("?")
            ));
        }
        if self.disconnects > 0 {
            p.push(format!(
                "{} participants were disconnected during the run (first: {})",
                self.disconnects,
                self.first_disconnect.as_deref().unwrap_or("?")
            ));
        }
        if self.subscribers_without_media > 0 {
            p.push(format!(
                "{} subscribers received no media",
                self.subscribers_without_media
            ));
        }
        if self.media_gaps > 0 {
            p.push(format!(
                "{} media gaps of {:.0} ms or more (longest {:.0} ms; {} streams stalled at the end)",
                self.media_gaps, self.max_gap_ms, self.longest_gap_ms, self.streams_stalled_at_end
            ));
        }
        if self.received.packets == 0 {
            p.push("no media was received".into());
        }
        p
    }

    /// A human-readable two-column table.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut row = |k: &str, v: String| rows.push((k.to_owned(), v));
        row("room", self.room.clone());
        row(
            "participants",
            format!(
                "{} publishers, {} subscribers",
                self.publishers, self.subscribers
            ),
        );
        row(
            "media",
            if self.audio_only {
                "audio only (Opus-sized, 50 pkt/s)".into()
            } else {
                format!(
                    "audio + VP8 {} kb/s @ {} fps{}",
                    self.video_bitrate_bps / 1000,
                    self.fps,
                    if self.simulcast { ", simulcast" } else { "" }
                )
            },
        );
        row(
            "join failures",
            match &self.first_error {
                Some(e) => format!("{} (first: {e})", self.join_failures),
                None => self.join_failures.to_string(),
            },
        );
        row("join time", spread(&self.join));
        row("join to first media", spread(&self.first_media));
        row(
            "subscribers without media",
            self.subscribers_without_media.to_string(),
        );
        row("window", format!("{:.1} s", self.window_secs));
        row(
            "received",
            format!(
                "{} pkts over {} streams ({:.0} pkt/s, {:.2} Mb/s)",
                self.received.packets,
                self.received.streams,
                self.received_packets_per_sec,
                self.received_mbps
            ),
        );
        row("sent by publishers", format!("{} pkts", self.sent_packets));
        row(
            "loss",
            format!(
                "{} of {} ({:.3}%)",
                self.received.lost,
                self.received.expected,
                self.received.loss_fraction() * 100.0
            ),
        );
        row(
            "jitter",
            format!(
                "mean {:.2} ms, max {:.2} ms",
                self.received.jitter_mean_ms, self.received.jitter_max_ms
            ),
        );
        row(
            "latency (end to end)",
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
                self.latency.p50_ms, self.latency.p99_ms, self.latency.max_ms, self.latency.samples
            ),
        );
        row(
            "disconnects",
            match &self.first_disconnect {
                Some(e) => format!("{} (first: {e})", self.disconnects),
                None => self.disconnects.to_string(),
            },
        );
        row(
            "media gaps",
            format!(
                "{} of {:.0} ms or more (longest stall {:.0} ms)",
                self.media_gaps, self.max_gap_ms, self.longest_gap_ms
            ),
        );
        row("tester CPU", format!("{:.2} cores", self.tester_cpu_cores));
        let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<w$}  {v}\n"))
            .collect()
    }
}

fn spread(s: &Spread) -> String {
    if s.count == 0 {
        "-".into()
    } else {
        format!(
            "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (n={})",
            s.p50_ms, s.p99_ms, s.max_ms, s.count
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&v, 1.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
        let s = Spread::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.count, s.p50_ms, s.max_ms), (3, 2.0, 3.0));
    }

    #[test]
    fn window_totals_subtract_per_stream_and_count_new_streams_from_zero() {
        let c = |packets, expected, lost, jitter_ms| StreamCounters {
            packets,
            bytes: packets * 100,
            expected,
            lost,
            jitter_ms,
        };
        let start = BTreeMap::from([(1u32, c(100, 100, 0, 1.0)), (2, c(50, 52, 2, 1.0))]);
        let end = BTreeMap::from([
            (1u32, c(200, 201, 1, 1.0)),
            (2, c(150, 152, 2, 3.0)),
            (3, c(10, 10, 0, 2.0)),
        ]);
        let t = WindowTotals::between(&start, &end);
        assert_eq!(t.streams, 3);
        assert_eq!(t.packets, 100 + 100 + 10);
        assert_eq!(t.bytes, t.packets * 100);
        assert_eq!(t.expected, 101 + 100 + 10);
        assert_eq!(t.lost, 1);
        assert!((t.jitter_mean_ms - 2.0).abs() < 1e-9);
        assert_eq!(t.jitter_max_ms, 3.0);
        assert!((t.loss_fraction() - 1.0 / 211.0).abs() < 1e-12);
        assert_eq!(WindowTotals::default().loss_fraction(), 0.0);
    }
}
