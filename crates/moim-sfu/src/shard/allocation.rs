//! Each subscriber's downlink shared out over what it receives: the shard
//! measures (layer rates from the publishers' packets, the estimate from
//! str0m's TWCC estimator) and applies what `allocate.rs` decides to the
//! forwarders. A track paused or resumed for lack of room is told to the
//! room, which tells the subscriber (`stream_state_update`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;

use super::{Shard, ShardIo};
use crate::allocate::{VideoWant, AUDIO_GUESS_BPS, LAYER_GUESS_BPS};
use crate::api::{PeerEvent, PeerKey, TrackKind};
use crate::forward::{Allowance, MAX_LAYERS};

/// How often layer rates are measured and every downlink re-shared. An
/// estimate that falls below what is sent is acted on at once.
pub const ALLOCATION_INTERVAL: Duration = Duration::from_millis(500);

/// What a subscriber's downlink starts at, before its first feedback;
/// str0m's first probes go to three and six times this within a second.
pub const INITIAL_ESTIMATE: Bitrate = Bitrate::kbps(1_000);

/// livekit-client drops a stream state for a track it has not created yet
/// (before its `ontrack`), so a pause told this soon after a subscription
/// got its section is told once more when this has passed.
pub const RETELL_AFTER: Duration = Duration::from_secs(2);

/// What one subscriber receives, gathered for one allocation.
#[derive(Default)]
struct Received {
    audio: u64,
    video: Vec<VideoWant>,
}

impl<Io: ShardIo> Shard<Io> {
    /// Starts the allocation tick with the shard's first PeerConnection.
    pub(super) fn start_allocation_tick(&mut self) {
        if self.allocation_tick.is_none() {
            self.allocation_tick = Some(self.now + ALLOCATION_INTERVAL);
        }
    }

    /// The subscriber's estimator has a new estimate.
    pub(super) fn on_estimate(&mut self, key: PeerKey, estimate: Bitrate) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let first = peer.alloc.estimate().is_none();
        if peer.alloc.set_estimate(estimate.as_u64()) || first {
            self.allocate(Some(key));
        }
    }

    pub(super) fn allocation_tick(&mut self, now: Instant) {
        let elapsed = self
            .last_rates
            .map_or(ALLOCATION_INTERVAL, |t| now.saturating_duration_since(t));
        self.last_rates = Some(now);
        for track in self.tracks.values_mut() {
            track.book.close_rate_window(elapsed);
        }
        self.allocate(None);
        self.retell_pauses(now);
        self.allocation_tick = (!self.peers.is_empty())
            .then(|| super::reports::next_tick(self.allocation_tick, now, ALLOCATION_INTERVAL));
    }

    /// Tells a pause again that the client may have dropped.
    fn retell_pauses(&mut self, now: Instant) {
        for track in self.tracks.values_mut() {
            for sub in &mut track.subs {
                let (Some(bound), Some(told)) = (sub.bound_at, sub.pause_told) else {
                    continue;
                };
                let early = told < bound + RETELL_AFTER;
                if sub.fwd.allowance() != Allowance::Nothing || !early || now < bound + RETELL_AFTER
                {
                    continue;
                }
                sub.pause_told = Some(now);
                if let Some(peer) = sub.peer().and_then(|p| self.peers.get(&p)) {
                    peer.emit(PeerEvent::StreamState {
                        track: track.key,
                        active: false,
                    });
                }
            }
        }
    }

    /// Re-shares the downlink of `only` one subscriber, or of all. Without
    /// an estimate yet, nothing is limited.
    pub(super) fn allocate(&mut self, only: Option<PeerKey>) {
        let now = self.now;
        // Every downlink with an estimate is re-shared, also one that
        // receives nothing now (its tracks hidden or gone): its padding
        // target must fall with what it is sent.
        let mut received: HashMap<PeerKey, Received> = self
            .peers
            .iter()
            .filter(|(k, p)| only.is_none_or(|o| o == **k) && p.alloc.estimate().is_some())
            .map(|(k, _)| (*k, Received::default()))
            .collect();
        for track in self.tracks.values() {
            for sub in &track.subs {
                let Some(peer) = sub.peer() else {
                    continue;
                };
                if only.is_some_and(|o| o != peer) || sub.mid.is_none() || sub.fwd.is_paused() {
                    continue;
                }
                let r = received.entry(peer).or_default();
                match track.kind {
                    TrackKind::Audio => {
                        r.audio += track.book.rate(0).unwrap_or(AUDIO_GUESS_BPS);
                    }
                    TrackKind::Video => {
                        let mut layers = [None; MAX_LAYERS];
                        for (l, slot) in layers.iter_mut().enumerate() {
                            if track.book.is_live(l, now) {
                                *slot = Some(track.book.rate(l).unwrap_or(LAYER_GUESS_BPS[l]));
                            }
                        }
                        r.video.push(VideoWant {
                            track: track.key,
                            screen_share: track.screen_share,
                            max_layer: sub.fwd.max_layer(),
                            layers,
                            granted: sub.fwd.allowance(),
                        });
                    }
                }
            }
        }
        for (key, r) in received {
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            if peer.alloc.estimate().is_none() {
                continue;
            }
            let decision = peer.alloc.allocate(now, r.audio, &r.video);
            if !decision.changes.is_empty() {
                tracing::debug!(
                    peer = %key,
                    estimate = peer.alloc.estimate(),
                    audio = r.audio,
                    minimum = decision.minimum,
                    desired = decision.desired,
                    video = ?r.video,
                    changes = ?decision.changes,
                    "downlink re-shared"
                );
            }
            peer.rtc.bwe().set_bitrate(
                Bitrate::bps(decision.minimum),
                Bitrate::bps(decision.desired),
            );
            peer.queue_drive(&mut self.dirty);
            for change in decision.changes {
                let Some(sub) = self
                    .tracks
                    .get_mut(&change.track)
                    .and_then(|t| t.subscription_mut(key))
                else {
                    continue;
                };
                let was_paused = sub.fwd.allowance() == Allowance::Nothing;
                sub.fwd.set_allowance(change.allowance);
                let paused = change.allowance == Allowance::Nothing;
                sub.pause_told = paused.then_some(now);
                if was_paused != paused {
                    peer.emit(PeerEvent::StreamState {
                        track: change.track,
                        active: !paused,
                    });
                }
            }
        }
    }
}
