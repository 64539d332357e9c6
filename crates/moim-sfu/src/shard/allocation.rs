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
/// libwebrtc's default start, 300 kbit/s: at 1 Mbit/s the probes reached
/// 6 Mbit/s, which on a 400 kbit/s downlink overran the queue for seconds,
/// starved the signalling WebSocket behind it (livekit-client reconnected)
/// and crashed the estimate below what the screen share needs. From here a
/// good link still reaches the probes' 1.8 Mbit/s within a second.
pub const INITIAL_ESTIMATE: Bitrate = Bitrate::kbps(300);

/// livekit-client drops a stream state for a track it has not created yet,
/// and it creates a track only once its room is connected: on a busy
/// machine that is seconds after the subscription got its SDP section. A
/// pause is therefore told again every `RETELL_AFTER` until one tell has
/// gone out `RETELL_WINDOW` after both the section and the PeerConnection
/// were up; the client cannot say it has the track, so this is bounded by
/// time, and each tell is a few bytes.
pub const RETELL_AFTER: Duration = Duration::from_secs(2);
pub const RETELL_WINDOW: Duration = Duration::from_secs(10);

/// Whether a pause told at `told` should be told again at `now`, for a
/// subscription that got its section at `bound` on a PeerConnection that
/// connected at `connected` (`None`: not yet).
pub fn should_retell_pause(
    told: Instant,
    bound: Instant,
    connected: Option<Instant>,
    now: Instant,
) -> bool {
    if now < told + RETELL_AFTER {
        return false;
    }
    match connected {
        None => true,
        Some(c) => told < bound.max(c) + RETELL_WINDOW,
    }
}

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
                let Some(peer) = sub.peer().and_then(|p| self.peers.get(&p)) else {
                    continue;
                };
                if sub.fwd.allowance() != Allowance::Nothing
                    || !should_retell_pause(told, bound, peer.connected_at, now)
                {
                    continue;
                }
                sub.pause_told = Some(now);
                peer.emit(PeerEvent::StreamState {
                    track: track.key,
                    active: false,
                });
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

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_pause_is_told_again_until_the_client_has_surely_made_the_track() {
        let t0 = Instant::now();
        let bound = t0;
        // Paused at once; the PeerConnection connects 5 s later.
        assert!(!should_retell_pause(t0, bound, None, t0 + S));
        assert!(should_retell_pause(t0, bound, None, t0 + 2 * S));
        assert!(should_retell_pause(
            t0 + 4 * S,
            bound,
            Some(t0 + 5 * S),
            t0 + 6 * S
        ));
        // Told 14 s in, still inside 10 s of connecting: once more.
        assert!(should_retell_pause(
            t0 + 14 * S,
            bound,
            Some(t0 + 5 * S),
            t0 + 16 * S
        ));
        // A tell 16 s in came after the window: that was the last.
        assert!(!should_retell_pause(
            t0 + 16 * S,
            bound,
            Some(t0 + 5 * S),
            t0 + 60 * S
        ));
    }

    #[test]
    fn a_pause_told_long_after_the_subscription_began_is_told_once() {
        let t0 = Instant::now();
        let told = t0 + 30 * S;
        assert!(!should_retell_pause(told, t0, Some(t0), told + 2 * S));
    }
}
