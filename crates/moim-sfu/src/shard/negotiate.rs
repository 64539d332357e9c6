//! SDP negotiation and subscriptions: client offers and answers, server
//! offers to subscribers, and the sections that carry each subscription.

use tracing::warn;

use super::track::Subscription;
use super::{Shard, ShardIo};
use crate::api::{PeerEvent, PeerKey, PeerRole, TrackKey};
use crate::codec::VideoCodec;
use crate::peer::{Answered, SectionLabel};

impl<Io: ShardIo> Shard<Io> {
    pub(super) fn on_offer(&mut self, key: PeerKey, sdp: &str, id: u32) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        match peer.accept_offer(sdp, id) {
            Ok(outcome) => {
                for (track, codec) in outcome.codecs {
                    if let Some(t) = self.tracks.get_mut(&track) {
                        t.send_codec = Some(codec);
                    }
                }
                for (track, mid) in outcome.published {
                    if let Some(t) = self.tracks.get_mut(&track) {
                        t.mid = Some(mid);
                        peer.emit(PeerEvent::TrackBound {
                            track,
                            mid: mid.to_string(),
                            codec: t.announced(),
                        });
                    }
                }
                let bound: Vec<_> = outcome
                    .subscribed
                    .into_iter()
                    .map(|(track, mid)| (track, mid, peer.left_streams.remove(&mid)))
                    .collect();
                for (track, mid, left) in bound {
                    if let Some(sub) = self
                        .tracks
                        .get_mut(&track)
                        .and_then(|t| t.subscription_mut(key))
                    {
                        sub.mid = Some(mid);
                        sub.bound_at = Some(self.now);
                        if let Some(left) = left {
                            sub.fwd.continue_stream(left);
                        }
                    }
                    self.request_keyframe(track);
                }
                self.allocate(Some(key));
            }
            Err(reason) => {
                warn!(peer = %key, "{reason}");
                peer.emit(PeerEvent::NegotiationFailed(reason));
            }
        }
        self.register_ufrag(key);
        self.dirty.push(key);
    }

    pub(super) fn on_answer(&mut self, key: PeerKey, sdp: &str, id: u32) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        match peer.accept_answer(sdp, id) {
            Ok(Answered { again, unusable }) => {
                let tracks: Vec<TrackKey> = peer.sending.values().copied().collect();
                for (track, reason) in unusable {
                    // The room names the subscriber and the track in its
                    // WARN and tells the client; here, only what happened.
                    peer.emit(PeerEvent::SubscriptionUnusable { track, reason });
                }
                if again {
                    self.renegotiate(key);
                }
                for t in tracks {
                    self.request_keyframe(t);
                }
            }
            Err(reason) => {
                warn!(peer = %key, "{reason}");
                peer.emit(PeerEvent::NegotiationFailed(reason));
            }
        }
        // A server-initiated ICE restart (the subscriber's, on a resume) takes
        // its new local credentials only now, with the answer: until the demux
        // knows the new ufrag it drops the client's checks, and a client that
        // checks from a new address never reconnects.
        self.register_ufrag(key);
        self.dirty.push(key);
    }

    /// Starts the next negotiation in whatever way the peer's protocol wants.
    pub fn renegotiate(&mut self, key: PeerKey) {
        let Shard { peers, tracks, .. } = self;
        let Some(peer) = peers.get_mut(&key) else {
            return;
        };
        match peer.spec.role {
            PeerRole::Subscriber => {
                let bound = peer.negotiate(|t| tracks.get(&t).and_then(|t| t.send_codec));
                for (track, mid) in bound {
                    if let Some(sub) = tracks.get_mut(&track).and_then(|t| t.subscription_mut(key))
                    {
                        sub.mid = Some(mid);
                        sub.bound_at = Some(self.now);
                    }
                }
                self.allocate(Some(key));
            }
            PeerRole::Single => peer.request_sections(),
            PeerRole::Publisher => {}
        }
        self.dirty.push(key);
    }

    pub(super) fn subscribe(&mut self, key: PeerKey, track_key: TrackKey) {
        let Some(track) = self.tracks.get_mut(&track_key) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if track.subscription_mut(key).is_some() || !peer.spec.role.receives() {
            return;
        }
        let mut sub = Subscription::new(key);
        sub.strip_trailer = track.has_packet_trailer && !peer.spec.accepts_packet_trailer;
        track.subs.push(sub);
        let label = SectionLabel {
            participant_sid: track.participant_sid.clone(),
            track_sid: track.sid.clone(),
            wants_dd: track.announced() == Some(VideoCodec::Av1),
        };
        peer.waiting.push((track_key, track.kind, label));
        self.renegotiate(key);
    }

    pub(super) fn unsubscribe(&mut self, key: PeerKey, track_key: TrackKey) {
        if let Some(track) = self.tracks.get_mut(&track_key) {
            if let Some(i) = track.subs.iter().position(|s| s.peer() == Some(key)) {
                let sub = track.subs.remove(i);
                self.remember_stream(&sub);
            }
        }
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        peer.waiting.retain(|w| w.0 != track_key);
        let mids: Vec<_> = peer
            .sending
            .iter()
            .filter(|(_, t)| **t == track_key)
            .map(|(m, _)| *m)
            .collect();
        if mids.is_empty() {
            return;
        }
        for mid in mids {
            peer.sending.remove(&mid);
            peer.labels.remove(&mid);
            if peer.spec.role == PeerRole::Subscriber {
                peer.to_stop.push(mid);
            }
        }
        self.renegotiate(key);
    }

    /// Keeps where a subscription's outgoing stream stopped, for the track
    /// that may take its section over.
    pub(super) fn remember_stream(&mut self, sub: &Subscription) {
        let (Some(mid), Some(position)) = (sub.mid, sub.fwd.position()) else {
            return;
        };
        // Only `/rtc/v1` reuses sections; a dual-PC subscriber's are stopped.
        if let Some(peer) = sub
            .peer()
            .and_then(|key| self.peers.get_mut(&key))
            .filter(|p| p.spec.role == PeerRole::Single)
        {
            peer.left_streams.insert(mid, position);
        }
    }
}
