//! Receive-side accounting: packets, bytes, loss from sequence gaps, RFC 3550 jitter and
//! end-to-end latency from the embedded send time.

use std::time::Duration;

/// Extends 16-bit RTP sequence numbers into a monotonic 64-bit space (RFC 3550 A.1 style).
#[derive(Debug, Clone, Default)]
pub struct SeqExtender {
    last: Option<u64>,
}

impl SeqExtender {
    /// The extended value for `seq`, chosen as the one closest to the last extended value.
    pub fn extend(&mut self, seq: u16) -> u64 {
        let ext = match self.last {
            None => u64::from(seq) + (1 << 16), // leave room for early reordering below 0
            Some(last) => {
                let roc = last >> 16;
                let cands =
                    [roc.saturating_sub(1), roc, roc + 1].map(|r| (r << 16) | u64::from(seq));
                // Closest candidate to `last`.
                cands
                    .into_iter()
                    .min_by_key(|c| c.abs_diff(last))
                    .unwrap_or(u64::from(seq))
            }
        };
        if self.last.is_none_or(|l| ext > l) {
            self.last = Some(ext);
        }
        ext
    }
}

const HIST_BUCKET_US: u64 = 100;
const HIST_BUCKETS: usize = 2000; // 0..200 ms in 100 µs steps, last bucket is overflow

/// Latency histogram with 100 µs buckets up to 200 ms.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    buckets: Vec<u32>,
    count: u64,
    sum_us: u64,
    min_us: u64,
    max_us: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; HIST_BUCKETS],
            count: 0,
            sum_us: 0,
            min_us: u64::MAX,
            max_us: 0,
        }
    }
}

impl LatencyHistogram {
    /// Record one sample.
    pub fn record(&mut self, us: u64) {
        let idx = ((us / HIST_BUCKET_US) as usize).min(HIST_BUCKETS - 1);
        self.buckets[idx] += 1;
        self.count += 1;
        self.sum_us += us;
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Add another histogram's samples to this one (to aggregate over streams or clients).
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += *b;
        }
        self.count += other.count;
        self.sum_us += other.sum_us;
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
    }

    /// The samples recorded after `earlier` was taken from this same histogram (bucket-wise
    /// difference). Min and max become bucket bounds, since exact values cannot be subtracted.
    pub fn since(&self, earlier: &LatencyHistogram) -> LatencyHistogram {
        let mut h = LatencyHistogram::default();
        for (i, (a, b)) in self.buckets.iter().zip(&earlier.buckets).enumerate() {
            let n = a.saturating_sub(*b);
            if n == 0 {
                continue;
            }
            h.buckets[i] = n;
            h.count += u64::from(n);
            let lo = i as u64 * HIST_BUCKET_US;
            h.min_us = h.min_us.min(lo.max(self.min_us));
            h.max_us = h
                .max_us
                .max(((i as u64 + 1) * HIST_BUCKET_US).min(self.max_us));
        }
        h.sum_us = self.sum_us.saturating_sub(earlier.sum_us);
        h
    }

    /// Value below which `q` (0..=1) of the samples fall, to bucket precision.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let target = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= target {
                let upper = (i as u64 + 1) * HIST_BUCKET_US;
                return Some(Duration::from_micros(upper.min(self.max_us)));
            }
        }
        Some(Duration::from_micros(self.max_us))
    }

    /// Count, min, mean, p50, p99 and max; `None` without samples.
    pub fn summary(&self) -> Option<LatencySummary> {
        (self.count > 0).then(|| LatencySummary {
            samples: self.count,
            min: Duration::from_micros(self.min_us),
            mean: Duration::from_micros(self.sum_us / self.count),
            p50: self.quantile(0.5).unwrap_or_default(),
            p99: self.quantile(0.99).unwrap_or_default(),
            max: Duration::from_micros(self.max_us),
        })
    }
}

/// Latency figures of one track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySummary {
    pub samples: u64,
    pub min: Duration,
    pub mean: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// Receive accounting for one RTP stream (one SSRC).
#[derive(Debug, Clone)]
pub struct RtpReceiveStats {
    clock_rate: u32,
    seq: SeqExtender,
    base_seq: Option<u64>,
    max_seq: u64,
    packets: u64,
    bytes: u64,
    duplicates: u64,
    seen: std::collections::VecDeque<u64>,
    /// RFC 3550 jitter estimate in RTP timestamp units (scaled by 16 as in A.8).
    jitter_q4: u64,
    last_transit: Option<i64>,
    latency: LatencyHistogram,
}

impl RtpReceiveStats {
    /// A stream with the given RTP clock rate (48000 for Opus, 90000 for video).
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            seq: SeqExtender::default(),
            base_seq: None,
            max_seq: 0,
            packets: 0,
            bytes: 0,
            duplicates: 0,
            seen: std::collections::VecDeque::new(),
            jitter_q4: 0,
            last_transit: None,
            latency: LatencyHistogram::default(),
        }
    }

    /// Account one packet: its 16-bit sequence number, RTP timestamp, payload size, arrival
    /// time (any monotonic clock in microseconds) and the latency carried in the payload.
    pub fn on_packet(
        &mut self,
        seq: u16,
        rtp_ts: u32,
        payload_len: usize,
        arrival_us: u64,
        latency_us: Option<u64>,
    ) {
        let ext = self.seq.extend(seq);
        if self.seen.contains(&ext) {
            self.duplicates += 1;
            return;
        }
        self.seen.push_back(ext);
        if self.seen.len() > 512 {
            self.seen.pop_front();
        }
        self.packets += 1;
        self.bytes += payload_len as u64;
        self.base_seq = Some(self.base_seq.map_or(ext, |b| b.min(ext)));
        self.max_seq = self.max_seq.max(ext);

        // RFC 3550 A.8: transit = arrival (in RTP units) - RTP timestamp.
        let arrival_rtp = (arrival_us as u128 * self.clock_rate as u128 / 1_000_000) as i64;
        let transit = arrival_rtp.wrapping_sub(i64::from(rtp_ts));
        if let Some(last) = self.last_transit {
            let d = transit.wrapping_sub(last).unsigned_abs();
            // J += (|D| - J) / 16, kept in Q4 fixed point.
            let j = self.jitter_q4 as i64;
            self.jitter_q4 = (j + d as i64 - ((j + 8) >> 4)).max(0) as u64;
        }
        self.last_transit = Some(transit);

        if let Some(l) = latency_us {
            self.latency.record(l);
        }
    }

    /// The end-to-end latency samples of this stream.
    pub fn latency_histogram(&self) -> &LatencyHistogram {
        &self.latency
    }

    /// Snapshot.
    pub fn snapshot(&self) -> ReceiveSnapshot {
        let expected = self.base_seq.map_or(0, |b| self.max_seq - b + 1);
        let jitter_units = self.jitter_q4 as f64 / 16.0;
        ReceiveSnapshot {
            packets: self.packets,
            bytes: self.bytes,
            expected,
            lost: expected.saturating_sub(self.packets),
            duplicates: self.duplicates,
            jitter: Duration::from_secs_f64(jitter_units / f64::from(self.clock_rate)),
            latency: self.latency.summary(),
        }
    }
}

/// Counters of one received stream at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReceiveSnapshot {
    pub packets: u64,
    pub bytes: u64,
    /// Packets the sequence range says were sent.
    pub expected: u64,
    /// `expected - packets`, never negative.
    pub lost: u64,
    pub duplicates: u64,
    /// RFC 3550 interarrival jitter.
    pub jitter: Duration,
    pub latency: Option<LatencySummary>,
}

impl ReceiveSnapshot {
    /// Fraction lost, 0.0 when nothing was expected.
    pub fn loss_fraction(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            self.lost as f64 / self.expected as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_extension_survives_wrap_and_reordering() {
        let mut x = SeqExtender::default();
        let a = x.extend(65534);
        assert_eq!(x.extend(65535), a + 1);
        assert_eq!(x.extend(0), a + 2);
        assert_eq!(x.extend(65535), a + 1, "late packet from before the wrap");
        assert_eq!(x.extend(1), a + 3);
    }

    #[test]
    fn gaps_count_as_loss_and_reordering_does_not() {
        let mut s = RtpReceiveStats::new(90_000);
        let seqs: Vec<u16> = (65530..=65535).chain(0..10).collect();
        for (i, seq) in seqs.iter().enumerate() {
            if *seq == 2 || *seq == 3 {
                continue; // two lost
            }
            s.on_packet(*seq, i as u32 * 3000, 1000, i as u64 * 33_333, None);
        }
        // Reordered and duplicated packets.
        let mut r = RtpReceiveStats::new(90_000);
        for seq in [10u16, 12, 11, 13, 13, 14] {
            r.on_packet(seq, 0, 100, 0, None);
        }
        let snap = s.snapshot();
        assert_eq!(snap.expected, 16);
        assert_eq!(snap.lost, 2);
        assert_eq!(snap.packets, 14);
        let snap = r.snapshot();
        assert_eq!(snap.lost, 0);
        assert_eq!(snap.duplicates, 1);
        assert_eq!(snap.expected, 5);
    }

    #[test]
    fn jitter_is_zero_for_perfect_pacing_and_tracks_constant_deviation() {
        let mut perfect = RtpReceiveStats::new(48_000);
        for i in 0..500u64 {
            perfect.on_packet(i as u16, (i * 960) as u32, 100, i * 20_000, None);
        }
        assert!(perfect.snapshot().jitter < Duration::from_micros(50));

        // Alternate arrivals 0 and +4 ms around nominal: |D| = 4 ms each step, so J -> 4 ms.
        let mut wobbly = RtpReceiveStats::new(48_000);
        for i in 0..2000u64 {
            let wobble = if i % 2 == 0 { 0 } else { 4_000 };
            wobbly.on_packet(i as u16, (i * 960) as u32, 100, i * 20_000 + wobble, None);
        }
        let j = wobbly.snapshot().jitter.as_secs_f64() * 1000.0;
        assert!((3.8..=4.2).contains(&j), "jitter {j} ms");
    }

    #[test]
    fn histograms_merge_and_subtract() {
        let mut a = LatencyHistogram::default();
        let mut b = LatencyHistogram::default();
        for us in [150, 250, 350] {
            a.record(us);
        }
        b.record(5_000);
        let before = a.clone();
        a.record(1_050);
        a.merge(&b);
        assert_eq!(a.count(), 5);
        let d = a.since(&before);
        assert_eq!(d.count(), 2);
        assert_eq!(d.quantile(0.5), Some(Duration::from_micros(1_100)));
        assert_eq!(d.quantile(1.0), Some(Duration::from_micros(5_000)));
    }

    #[test]
    fn latency_summary_reports_quantiles() {
        let mut h = LatencyHistogram::default();
        for us in 1..=1000u64 {
            h.record(us * 10); // 10 µs .. 10 ms
        }
        let s = h.summary().expect("samples");
        assert_eq!(s.samples, 1000);
        assert_eq!(s.min, Duration::from_micros(10));
        assert_eq!(s.max, Duration::from_millis(10));
        let p50 = s.p50.as_micros();
        assert!((4900..=5100).contains(&p50), "p50 {p50}");
    }
}
