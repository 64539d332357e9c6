//! How good a PeerConnection's link is, from what str0m measures on it:
//! packet loss in each direction (transport-wide congestion control
//! sequence numbers), round-trip time, and whether anything arrives at all.
//! The shard feeds each 1 s `PeerStats` sample in and closes a window every
//! [`QUALITY_WINDOW`]; the room turns peers' qualities into participants'
//! `connection_quality`.
//!
//! The model (also in docs/ARCHITECTURE.md): a score from 5 down,
//!
//! ```text
//! score = 5 − 0.2 × loss% − max(0, rtt − 150 ms) / 200 ms     (clamped to 1..5)
//! ```
//!
//! where `loss%` is the worse direction's average over the window. At or
//! above 4.1 the link is excellent, at or above 3.6 good, else poor: 1 %
//! loss is excellent, 5 % good, 10 % poor; 400 ms of round trip alone is
//! good, 700 ms poor. Only links that carry media are judged: a window in
//! which no media went either way leaves the verdict as it was. A window in
//! which moim sent media, or which follows one where media flowed, and in
//! which nothing at all arrived (no media, no RTCP, no ICE check) is lost.
//! A link gets worse at once and better only after two windows agree, so a
//! single good second does not flap the icon.
//!
//! Pure state machine: samples in, a verdict out.

use std::time::Duration;

/// How often each link's quality is worked out.
pub const QUALITY_WINDOW: Duration = Duration::from_secs(3);

/// How often str0m reports `PeerStats` (see `rtc_factory.rs`).
pub const STATS_INTERVAL: Duration = Duration::from_secs(1);

const EXCELLENT: f32 = 4.1;
const GOOD: f32 = 3.6;
/// Round trips shorter than this cost nothing.
const RTT_FREE_MS: f32 = 150.0;
/// Windows that must agree before a link is called better.
const UPGRADE_AFTER: u8 = 2;

/// LiveKit's four levels, best last but one, as `ConnectionQuality` has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LinkQuality {
    Lost,
    Poor,
    Good,
    Excellent,
}

impl LinkQuality {
    fn of_score(score: f32) -> Self {
        if score >= EXCELLENT {
            Self::Excellent
        } else if score >= GOOD {
            Self::Good
        } else {
            Self::Poor
        }
    }
}

/// One `PeerStats` sample, as the scorer needs it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkSample {
    /// Fraction (0..1) of the client's packets that did not arrive.
    pub ingress_loss: Option<f32>,
    /// Fraction (0..1) of moim's packets the client reported missing.
    pub egress_loss: Option<f32>,
    pub rtt: Option<Duration>,
    /// Bytes received from the client so far, everything counted.
    pub bytes_received: u64,
    /// RTP payload bytes received and sent so far.
    pub media_received: u64,
    pub media_sent: u64,
}

#[derive(Debug, Default, Clone)]
pub struct LinkMeter {
    loss_sum: f32,
    loss_samples: u32,
    rtt_max: Option<Duration>,
    /// The first and the latest sample of the window.
    first: Option<LinkSample>,
    latest: LinkSample,
    /// Media flowed in the window before this one.
    carried_media: bool,
    /// What was last reported, and the better verdict waiting to be confirmed.
    reported: Option<LinkQuality>,
    better: Option<(LinkQuality, u8)>,
    score: f32,
}

impl LinkMeter {
    pub fn observe(&mut self, sample: LinkSample) {
        let worse = match (sample.ingress_loss, sample.egress_loss) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some(loss) = worse.filter(|l| l.is_finite()) {
            self.loss_sum += loss.clamp(0.0, 1.0);
            self.loss_samples += 1;
        }
        if let Some(rtt) = sample.rtt {
            self.rtt_max = Some(self.rtt_max.map_or(rtt, |m| m.max(rtt)));
        }
        self.first.get_or_insert(self.latest);
        self.latest = sample;
    }

    /// Ends the window. Returns the quality and score if the quality
    /// differs from what was last reported.
    pub fn close_window(&mut self) -> Option<(LinkQuality, f32)> {
        // No sample at all: str0m's timers did not run, nothing came in.
        let first = self.first.take().unwrap_or(self.latest);
        let last = self.latest;
        let arrived = last.bytes_received > first.bytes_received;
        let sent_media = last.media_sent > first.media_sent;
        let media = sent_media || last.media_received > first.media_received;
        let judged = if arrived && media {
            let loss_pct = if self.loss_samples > 0 {
                100.0 * self.loss_sum / self.loss_samples as f32
            } else {
                0.0
            };
            let rtt_ms = self.rtt_max.map_or(0.0, |r| r.as_secs_f32() * 1000.0);
            let score =
                (5.0 - 0.2 * loss_pct - (rtt_ms - RTT_FREE_MS).max(0.0) / 200.0).clamp(1.0, 5.0);
            Some((LinkQuality::of_score(score), score))
        } else if !arrived && (sent_media || self.carried_media) {
            Some((LinkQuality::Lost, 0.0))
        } else {
            None
        };
        self.carried_media = media;
        self.loss_sum = 0.0;
        self.loss_samples = 0;
        self.rtt_max = None;
        let (quality, score) = judged?;
        self.score = score;
        let verdict = match self.reported {
            Some(was) if quality > was => {
                let agreed = match self.better {
                    Some((q, n)) if q == quality => n + 1,
                    _ => 1,
                };
                self.better = Some((quality, agreed));
                (agreed >= UPGRADE_AFTER).then_some(quality)
            }
            Some(was) if quality == was => {
                self.better = None;
                None
            }
            _ => Some(quality),
        };
        let verdict = verdict?;
        self.better = None;
        self.reported = Some(verdict);
        Some((verdict, score))
    }

    pub fn quality(&self) -> Option<LinkQuality> {
        self.reported
    }

    /// The last window's score (0 when lost).
    pub fn score(&self) -> f32 {
        self.score
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3 s window of 1 s samples at this loss and round trip; `bytes`
    /// counts up so something arrived.
    fn window(m: &mut LinkMeter, bytes: &mut u64, loss: f32, rtt_ms: u64) -> Option<LinkQuality> {
        for _ in 0..3 {
            *bytes += 10_000;
            m.observe(LinkSample {
                ingress_loss: Some(loss),
                egress_loss: Some(loss / 2.0),
                rtt: Some(Duration::from_millis(rtt_ms)),
                bytes_received: *bytes,
                media_received: *bytes,
                media_sent: 0,
            });
        }
        m.close_window().map(|(q, _)| q)
    }

    #[test]
    fn loopback_is_excellent_and_said_once() {
        let (mut m, mut b) = (LinkMeter::default(), 0);
        assert_eq!(window(&mut m, &mut b, 0.0, 1), Some(LinkQuality::Excellent));
        assert_eq!(window(&mut m, &mut b, 0.005, 2), None);
        assert!(m.score() > 4.8);
    }

    #[test]
    fn loss_and_delay_lower_the_score_in_steps() {
        let first = |loss, rtt| window(&mut LinkMeter::default(), &mut 0, loss, rtt);
        assert_eq!(first(0.01, 50), Some(LinkQuality::Excellent));
        assert_eq!(first(0.05, 50), Some(LinkQuality::Good));
        assert_eq!(first(0.10, 50), Some(LinkQuality::Poor));
        assert_eq!(first(0.20, 50), Some(LinkQuality::Poor));
        assert_eq!(first(0.0, 400), Some(LinkQuality::Good));
        assert_eq!(first(0.0, 700), Some(LinkQuality::Poor));
    }

    #[test]
    fn worse_is_said_at_once_better_only_when_two_windows_agree() {
        let (mut m, mut b) = (LinkMeter::default(), 0);
        assert_eq!(
            window(&mut m, &mut b, 0.0, 10),
            Some(LinkQuality::Excellent)
        );
        assert_eq!(window(&mut m, &mut b, 0.2, 10), Some(LinkQuality::Poor));
        assert_eq!(window(&mut m, &mut b, 0.0, 10), None, "one good window");
        assert_eq!(window(&mut m, &mut b, 0.2, 10), None, "still poor");
        assert_eq!(window(&mut m, &mut b, 0.0, 10), None);
        assert_eq!(
            window(&mut m, &mut b, 0.0, 10),
            Some(LinkQuality::Excellent)
        );
    }

    #[test]
    fn a_link_where_nothing_arrives_any_more_is_lost() {
        let (mut m, mut b) = (LinkMeter::default(), 0);
        assert_eq!(
            window(&mut m, &mut b, 0.0, 10),
            Some(LinkQuality::Excellent)
        );
        // Samples keep coming (str0m's timers run) but no byte arrives.
        let stalled = LinkSample {
            bytes_received: b,
            media_received: b,
            ..Default::default()
        };
        for _ in 0..3 {
            m.observe(stalled);
        }
        assert_eq!(m.close_window(), Some((LinkQuality::Lost, 0.0)));
        assert_eq!(m.close_window(), None, "said once");
        assert_eq!(m.quality(), Some(LinkQuality::Lost));
    }

    #[test]
    fn a_subscriber_that_sends_no_feedback_while_moim_sends_media_is_lost() {
        let mut m = LinkMeter::default();
        let sample = |received, sent| LinkSample {
            bytes_received: received,
            media_sent: sent,
            ..Default::default()
        };
        for (rx, tx) in [(100, 1_000), (200, 2_000), (300, 3_000)] {
            m.observe(sample(rx, tx));
        }
        assert_eq!(m.close_window().map(|v| v.0), Some(LinkQuality::Excellent));
        for tx in [4_000, 5_000, 6_000] {
            m.observe(sample(300, tx));
        }
        assert_eq!(m.close_window().map(|v| v.0), Some(LinkQuality::Lost));
    }

    #[test]
    fn an_idle_link_is_not_judged() {
        let mut m = LinkMeter::default();
        for rx in [100, 200, 300] {
            // ICE checks arrive, no media either way.
            m.observe(LinkSample {
                bytes_received: rx,
                ..Default::default()
            });
        }
        assert_eq!(m.close_window(), None);
        assert_eq!(m.close_window(), None, "nothing at all is not lost either");
        assert_eq!(m.quality(), None);
    }

    #[test]
    fn nonsense_from_the_wire_stays_in_range() {
        let mut m = LinkMeter::default();
        m.observe(LinkSample {
            ingress_loss: Some(f32::NAN),
            egress_loss: Some(7.0),
            rtt: Some(Duration::from_secs(3600)),
            bytes_received: 1,
            media_received: 1,
            media_sent: 0,
        });
        let (q, score) = m.close_window().expect("a verdict");
        assert_eq!(q, LinkQuality::Poor);
        assert!((1.0..=5.0).contains(&score));
    }
}
