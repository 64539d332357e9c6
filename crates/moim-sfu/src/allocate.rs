//! Sharing one subscriber's downlink out over the tracks it receives.
//!
//! The shard hands in what the subscriber's send-side estimate (str0m's
//! TWCC bandwidth estimator) says the link carries, and for each video
//! track what its layers cost and what the subscriber asked for. Out come
//! the layers each track may use, and the rates to tell the estimator:
//! what would be sent if everything fitted (it probes towards that) and
//! what the next step up needs (padding keeps the link warm at that rate).
//!
//! The order of who gets room first: audio always (it is taken off the
//! top), then screen shares, then the video the subscriber shows largest,
//! then the rest. First every track gets its lowest layer, in that order;
//! then, in the same order, each goes up as far as what is left allows.
//! A track pauses when its lowest layer does not fit in what the tracks
//! before it left, and so does every track after it. The first track is
//! never paused for lack of room: a viewer on the thinnest link still sees
//! the screen share or the speaker, at its lowest layer, as LiveKit's
//! default (no pausing at all) would show every track. Pausing it too
//! saved little (a lowest layer is 30 to 150 kbit/s) and cost much: a
//! screen share's rate swings with what is on the screen, and each resume
//! needs a keyframe whose burst read as congestion and paused it again.
//!
//! Going down happens at once: over the estimate, packets queue in the
//! pacer and arrive late. Going up waits until the estimate has a margin
//! over what the new layers cost and the last change is `UP_AFTER` old, so
//! that an estimate on the edge does not make the picture step up and down.
//!
//! Pausing a track needs more than a low estimate: the link must have
//! shown congestion, as loss in the subscriber's feedback or a round trip
//! grown well above the lowest seen (a queue). Loss counts only in two
//! reports running: a receiver report covers about a second of packets,
//! so 10% random loss reads 15% in one report in every dozen or so, while
//! an overrun link loses report after report. A queue counts at once: it
//! is what an overrun link shows first. A delay-based estimate also
//! dips when the receiver's own timing is uneven (a busy machine, a debug
//! build), with neither loss nor queue; such a dip lowers layers but
//! leaves every track its lowest one. Once congestion is seen, pausing
//! stays allowed until the estimate again covers everything asked for.
//!
//! Pure: numbers and `now` in, decisions out.

use std::time::{Duration, Instant};

use crate::api::TrackKey;
use crate::forward::{Allowance, MAX_LAYERS};

/// An estimate must exceed what a step up costs by this factor.
pub const UP_MARGIN: f64 = 1.15;
/// At most one step up this often.
pub const UP_AFTER: Duration = Duration::from_millis(1500);
/// Downlink loss (from the subscriber's TWCC feedback) that shows congestion.
/// Random loss up to 10 % is what NACK and RTX repair (a lossy radio
/// link, not a full one), and pausing the only video there froze it for
/// 9.5 s of 25; a link overrun by what it is sent loses far more, and
/// queues first.
pub const CONGESTED_LOSS: f32 = 0.15;
/// A round trip this much above the lowest seen shows a queue building.
pub const CONGESTED_QUEUE: Duration = Duration::from_millis(100);
/// What an audio track is taken to cost before it has been measured.
pub const AUDIO_GUESS_BPS: u64 = 40_000;
/// What a live video layer is taken to cost before it has been measured
/// (low to high; livekit-client's defaults for a 720p camera are near).
pub const LAYER_GUESS_BPS: [u64; MAX_LAYERS] = [150_000, 500_000, 1_700_000];

/// One video track a subscriber receives, as the allocator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoWant {
    pub track: TrackKey,
    pub screen_share: bool,
    /// The highest layer the subscriber asked for (a larger tile asks for
    /// more, so this also ranks cameras).
    pub max_layer: usize,
    /// What each layer the publisher sends costs, in bits per second;
    /// `None` for a layer that is not being sent.
    pub layers: [Option<u64>; MAX_LAYERS],
    /// What the track may use now (the forwarder's allowance).
    pub granted: Allowance,
}

impl VideoWant {
    /// The live layers up to what the subscriber asked for, low to high.
    fn usable(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.layers
            .iter()
            .enumerate()
            .take(self.max_layer + 1)
            .filter_map(|(l, r)| r.map(|r| (l, r)))
    }

    fn cost(&self, grant: Allowance) -> u64 {
        match grant {
            Allowance::UpTo(l) => self.layers.get(l).copied().flatten().unwrap_or(0),
            Allowance::Any | Allowance::Nothing => 0,
        }
    }
}

/// What one allocation decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// One grant per want, in the wants' order: `UpTo(layer)` or `Nothing`.
    pub grants: Vec<Allowance>,
    /// What the grants send, audio included.
    pub used: u64,
    /// What would be sent if every track had what it asked for.
    pub wanted: u64,
    /// What the cheapest next step up would send in all, if one is left.
    pub next_step: Option<u64>,
}

impl Plan {
    /// Some track gets less than it asked for.
    pub fn is_short(&self) -> bool {
        self.next_step.is_some()
    }
}

/// The best grants that fit `budget`, ignoring what was granted before.
///
/// Without `may_pause`, a track whose lowest layer does not fit gets it
/// anyway; so does the first track in priority order, always.
pub fn plan(budget: u64, audio: u64, wants: &[VideoWant], may_pause: bool) -> Plan {
    let mut order: Vec<usize> = (0..wants.len()).collect();
    order.sort_by_key(|&i| {
        let w = &wants[i];
        (!w.screen_share, std::cmp::Reverse(w.max_layer), w.track)
    });
    // A track with no layer being sent costs nothing and keeps what it
    // has: it is not paused for lack of room, it is only quiet.
    let mut grants: Vec<Allowance> = wants
        .iter()
        .map(|w| match w.usable().next() {
            Some(_) => Allowance::Nothing,
            None => w.granted,
        })
        .collect();
    let mut left = budget.saturating_sub(audio);
    // Everyone's lowest layer first, by priority. Once one does not fit,
    // the tracks after it pause too: room a higher track was refused is
    // not given to a lower one, or two tracks whose measured rates wobble
    // would take turns.
    let mut refused = false;
    let mut first = true;
    for &i in &order {
        if let Some((layer, rate)) = wants[i].usable().next() {
            let floor = std::mem::take(&mut first);
            if !may_pause || floor || (!refused && rate <= left) {
                left = left.saturating_sub(rate);
                grants[i] = Allowance::UpTo(layer);
            } else {
                refused = true;
            }
        }
    }
    // Then as high as what is left allows, by priority.
    for &i in &order {
        let Allowance::UpTo(low) = grants[i] else {
            continue;
        };
        let held = wants[i].cost(grants[i]);
        let best = wants[i]
            .usable()
            .filter(|&(l, rate)| l > low && rate <= left + held)
            .last();
        if let Some((layer, rate)) = best {
            left = left + held - rate;
            grants[i] = Allowance::UpTo(layer);
        }
    }
    summarize(audio, wants, grants)
}

/// The rates that `grants` send, want and would send one step up.
fn summarize(audio: u64, wants: &[VideoWant], grants: Vec<Allowance>) -> Plan {
    let video_used: u64 = wants.iter().zip(&grants).map(|(w, g)| w.cost(*g)).sum();
    let wanted_video: u64 = wants
        .iter()
        .filter_map(|w| w.usable().last())
        .map(|(_, r)| r)
        .sum();
    let used = audio + video_used;
    let next_step = wants
        .iter()
        .zip(&grants)
        .filter_map(|(w, g)| {
            let held = w.cost(*g);
            let above = match g {
                Allowance::UpTo(l) => l + 1,
                _ => 0,
            };
            w.usable()
                .find(|&(l, _)| l >= above)
                .map(|(_, rate)| used - held + rate)
        })
        .min();
    Plan {
        grants,
        used,
        wanted: audio + wanted_video,
        next_step,
    }
}

/// One subscriber's allocation over time: the estimate, what the last
/// allocation sends, when it last went up, and whether the estimate is
/// believed. What each track has is kept by its forwarder, the one place
/// the packet path reads it.
#[derive(Debug, Default)]
pub struct Allocator {
    estimate: Option<u64>,
    used: u64,
    last_up: Option<Instant>,
    /// The link showed congestion since everything last fitted.
    congested: bool,
    rtt_floor: Option<Duration>,
    /// Reports in a row that showed congestive loss.
    lossy_reports: u8,
    /// The desired rate last told to the estimator (see `DESIRED_STEP`).
    told_desired: Option<u64>,
}

/// Reports in a row that must show loss before it counts as congestion.
pub const LOSSY_REPORTS: u8 = 2;

/// On a link that has shown congestion, tracks are planned into this share
/// of the estimate. An encoder smooths its own output to its target; an SFU
/// forwards another's keyframes and a screen share's bursts as they come,
/// and on a link planned full each burst queued in front of the screen
/// share: on 400 kbit/s it froze for 8.5 s of 25 with a camera planned in
/// beside it, and not at all with the camera paused.
pub const CONGESTED_HEADROOM: f64 = 0.85;

/// On a congested link, the desired rate told to the estimator moves only
/// when it changes by more than this factor. str0m sends a probe each time
/// the desired rate rises above the estimate, and measured layer rates
/// wobble by a few percent every window: unheld, a full link was probed
/// every second. (On a link that has shown no congestion those probes are
/// welcome: they are how a new subscriber's estimate climbs from its
/// 300 kbit/s start within a second or two.)
pub const DESIRED_STEP: f64 = 1.2;

/// On a congested link that cannot carry everything, the estimator probes
/// for at most this many times the next step up, not for everything asked
/// for: its periodic probes go to twice the desired rate, and on a
/// 400 kbit/s link with 2.3 Mbit/s asked for, a probe at 4.6 Mbit/s every
/// five seconds overran the queue and knocked the estimate down each time.
pub const SHORT_PROBE_FACTOR: u64 = 2;

/// What changed for one track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub track: TrackKey,
    pub allowance: Allowance,
}

/// What the shard applies after an allocation.
#[derive(Debug, Default, PartialEq)]
pub struct Decision {
    pub changes: Vec<Change>,
    /// For the estimator: the rate to keep the link at (`minimum`) and the
    /// rate to probe towards (`desired`), bits per second.
    pub minimum: u64,
    pub desired: u64,
}

impl Allocator {
    /// A new estimate. True when it no longer covers what is granted, so
    /// the shard should allocate now rather than at its next tick.
    pub fn set_estimate(&mut self, bps: u64) -> bool {
        self.estimate = Some(bps);
        self.budget(bps) < self.used
    }

    /// What of `estimate` the tracks are planned into (see `CONGESTED_HEADROOM`).
    fn budget(&self, estimate: u64) -> u64 {
        if self.congested {
            (estimate as f64 * CONGESTED_HEADROOM) as u64
        } else {
            estimate
        }
    }

    /// A report on the link: downlink loss and round-trip time. True when
    /// congestion shows for the first time since everything fitted (a
    /// queue, or the second report running with loss), so the shard should
    /// allocate now (tracks may now be paused).
    pub fn observe_link(&mut self, loss: Option<f32>, rtt: Option<Duration>) -> bool {
        if let Some(rtt) = rtt {
            self.rtt_floor = Some(self.rtt_floor.map_or(rtt, |f| f.min(rtt)));
        }
        let queued = rtt
            .zip(self.rtt_floor)
            .is_some_and(|(rtt, floor)| rtt > floor + CONGESTED_QUEUE);
        let lossy = loss.is_some_and(|l| l >= CONGESTED_LOSS);
        self.lossy_reports = if lossy {
            self.lossy_reports.saturating_add(1)
        } else {
            0
        };
        let shows = queued || self.lossy_reports >= LOSSY_REPORTS;
        let newly = shows && !self.congested;
        self.congested |= shows;
        newly
    }

    /// Whether a track may be paused for lack of room.
    pub fn is_congested(&self) -> bool {
        self.congested
    }

    pub fn estimate(&self) -> Option<u64> {
        self.estimate
    }

    /// Re-shares the estimate. Without an estimate nothing is limited.
    pub fn allocate(&mut self, now: Instant, audio: u64, wants: &[VideoWant]) -> Decision {
        let Some(estimate) = self.estimate else {
            return Decision::default();
        };
        let may_pause = self.congested;
        let budget = self.budget(estimate);
        let current: Vec<Allowance> = wants.iter().map(|w| w.granted).collect();
        let current_cost = audio
            + wants
                .iter()
                .zip(&current)
                .map(|(w, g)| match g {
                    // A track never limited is taken at what it asks for.
                    Allowance::Any => w.usable().last().map_or(0, |(_, r)| r),
                    g => w.cost(*g),
                })
                .sum::<u64>();
        let full = plan(budget, audio, wants, may_pause);
        // A first allocation: some sending track has never been limited.
        let unlimited = wants
            .iter()
            .any(|w| w.granted == Allowance::Any && w.usable().next().is_some());
        let chosen = if current_cost > budget || unlimited {
            // Down at once (and a first allocation takes what fits).
            full
        } else {
            let careful = plan((budget as f64 / UP_MARGIN) as u64, audio, wants, may_pause);
            let rises = careful
                .grants
                .iter()
                .zip(&current)
                .any(|(new, old)| rank(*new) > rank(*old));
            let settled = self
                .last_up
                .is_none_or(|t| now.saturating_duration_since(t) >= UP_AFTER);
            let grants = if rises && settled {
                // Only the rises: a track the careful plan would lower
                // keeps what it has, since it still fits.
                careful
                    .grants
                    .iter()
                    .zip(&current)
                    .map(|(new, old)| if rank(*new) > rank(*old) { *new } else { *old })
                    .collect()
            } else {
                current.clone()
            };
            let kept = summarize(audio, wants, grants);
            if kept.used > budget {
                // Rises on top of what is kept no longer fit together.
                full
            } else {
                kept
            }
        };
        let mut changes = Vec::new();
        let mut rose = false;
        for ((w, old), new) in wants.iter().zip(&current).zip(&chosen.grants) {
            if old != new {
                rose |= rank(*new) > rank(*old) && *old != Allowance::Any;
                changes.push(Change {
                    track: w.track,
                    allowance: *new,
                });
            }
        }
        if rose {
            self.last_up = Some(now);
        }
        let sending = wants.iter().any(|w| w.usable().next().is_some());
        if self.congested
            && sending
            && !chosen.is_short()
            && estimate as f64 >= chosen.wanted as f64 * UP_MARGIN
        {
            // Everything fits with room to spare: the next pause needs new
            // evidence of congestion.
            self.congested = false;
        }
        self.used = chosen.used;
        let minimum = chosen.next_step.unwrap_or(chosen.used).max(chosen.used);
        let desired = match chosen.next_step {
            Some(next) if self.congested => chosen.wanted.min(next * SHORT_PROBE_FACTOR),
            _ => chosen.wanted,
        };
        Decision {
            changes,
            minimum,
            desired: self.hold_desired(desired),
        }
    }

    /// `desired`, unless the link is congested and it is within
    /// `DESIRED_STEP` of what was last told.
    fn hold_desired(&mut self, desired: u64) -> u64 {
        let held = self.told_desired.filter(|&told| {
            self.congested
                && (desired as f64) < told as f64 * DESIRED_STEP
                && desired as f64 * DESIRED_STEP > told as f64
        });
        let told = held.unwrap_or(desired);
        self.told_desired = Some(told);
        told
    }
}

/// Orders grants: nothing < layer 0 < layer 1 < ... < unlimited.
fn rank(a: Allowance) -> usize {
    match a {
        Allowance::Nothing => 0,
        Allowance::UpTo(l) => l + 1,
        Allowance::Any => MAX_LAYERS + 1,
    }
}

#[cfg(test)]
mod tests;
