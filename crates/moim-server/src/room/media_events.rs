//! What a room does with events from its media shard: SDP to relay, tracks
//! whose SDP section is now known, connections that came up.

use std::time::Instant;

use moim_proto::lk::{self, signal_response::Message as Resp};
use moim_sfu::codec::VideoCodec;
use moim_sfu::{MediaEvent, PeerEvent, TrackKey};
use tracing::{debug, info, warn};

use super::core::RoomCore;
use super::participant::ParticipantKey;

impl RoomCore {
    /// The publisher's RTP shows another codec than `TrackInfo` names: tell
    /// everyone, so no subscriber is told one codec while another flows.
    fn track_codec(&mut self, owner: ParticipantKey, track: TrackKey, codec: VideoCodec) {
        let Some(p) = self.participants.get_mut(&owner) else {
            return;
        };
        let Some(t) = p.tracks.iter_mut().find(|t| t.key == track) else {
            return;
        };
        if !t.set_video_codec(codec) || !t.bound {
            return;
        }
        p.bump();
        let info = p.info();
        if !p.hidden() {
            self.broadcast_update(vec![info], Some(owner));
        }
    }

    pub(super) fn on_media(&mut self, now: Instant, ev: MediaEvent) {
        let Some(&key) = self.by_peer.get(&ev.peer) else {
            return;
        };
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        match ev.event {
            PeerEvent::Answer {
                sdp,
                id,
                mid_to_track_id,
            } => self.out.tell(
                p,
                Resp::Answer(description("answer", sdp, id, mid_to_track_id)),
            ),
            PeerEvent::Offer {
                sdp,
                id,
                mid_to_track_id,
            } => self.out.tell(
                p,
                Resp::Offer(description("offer", sdp, id, mid_to_track_id)),
            ),
            PeerEvent::NeedMediaSections { audio, video } => {
                self.out.tell(
                    p,
                    Resp::MediaSectionsRequirement(lk::MediaSectionsRequirement {
                        num_audios: audio,
                        num_videos: video,
                    }),
                );
            }
            PeerEvent::NegotiationFailed(reason) => {
                warn!(identity = %p.identity, "negotiation failed: {reason}");
            }
            PeerEvent::TrackBound { track, mid, codec } => self.track_bound(key, track, mid, codec),
            PeerEvent::TrackCodec { track, codec } => self.track_codec(key, track, codec),
            PeerEvent::SubscriptionUnusable { track, reason } => {
                self.subscription_unusable(key, track, &reason)
            }
            PeerEvent::AudioLevel { track, level } => self.speakers.set_level(now, track, level),
            PeerEvent::StreamState { track, active } => self.stream_state(key, track, active),
            PeerEvent::LinkQuality { quality, score } => {
                self.qualities.set(now, ev.peer, quality, score)
            }
            PeerEvent::Connected => {
                if !p.active {
                    p.active = true;
                    p.bump();
                    let info = p.info();
                    if !p.hidden() {
                        self.broadcast_update(vec![info], Some(key));
                    }
                }
            }
            PeerEvent::Disconnected => {
                debug!(identity = %p.identity, "media connection interrupted")
            }
            PeerEvent::Closed => debug!(identity = %p.identity, "media connection closed"),
        }
    }

    /// The subscriber's downlink paused a track it receives, or has room
    /// for it again: livekit-client shows it as `TrackStreamStateChanged`.
    fn stream_state(&mut self, key: ParticipantKey, track: TrackKey, active: bool) {
        let Some((participant_sid, track_sid)) = self.participants.values().find_map(|o| {
            let t = o.tracks.iter().find(|t| t.key == track)?;
            Some((o.sid.clone(), t.info.sid.clone()))
        }) else {
            return;
        };
        let Some(p) = self.participants.get(&key) else {
            return;
        };
        debug!(
            subscriber = %p.identity, track = %track_sid, active,
            "the subscriber's downlink {} this track",
            if active { "has room again for" } else { "has no room for" }
        );
        let state = if active {
            lk::StreamState::Active
        } else {
            lk::StreamState::Paused
        };
        self.out.tell(
            p,
            Resp::StreamStateUpdate(lk::StreamStateUpdate {
                stream_states: vec![lk::StreamStateInfo {
                    participant_sid,
                    track_sid,
                    state: state as i32,
                }],
            }),
        );
    }

    /// A subscriber answered a track's section with no codec moim can send:
    /// say so to the operator, and to the client the way LiveKit's server
    /// does, rather than leave the track silently black.
    fn subscription_unusable(&mut self, key: ParticipantKey, track: TrackKey, reason: &str) {
        let Some((publisher, track_sid, mime)) = self.participants.values().find_map(|o| {
            let t = o.tracks.iter().find(|t| t.key == track)?;
            Some((
                o.identity.clone(),
                t.info.sid.clone(),
                t.info.mime_type.clone(),
            ))
        }) else {
            return;
        };
        // It gets nothing of this track: its wish must not keep layers alive.
        self.dynacast.want(track, key, None);
        self.decide_dynacast(self.at);
        let Some(p) = self.participants.get(&key) else {
            return;
        };
        warn!(
            subscriber = %p.identity, %publisher, track = %track_sid,
            "the subscriber cannot receive this {mime} track: {reason}. It gets no media for \
             it; the subscribing client must accept the codec the publisher sends (told with \
             SubscriptionResponse CODEC_UNSUPPORTED)"
        );
        self.out.tell(
            p,
            Resp::SubscriptionResponse(lk::SubscriptionResponse {
                track_sid,
                err: lk::SubscriptionError::SeCodecUnsupported as i32,
            }),
        );
    }

    /// A track's SDP section is known: tell the others, then forward it.
    pub(crate) fn track_bound(
        &mut self,
        owner: ParticipantKey,
        track: TrackKey,
        mid: String,
        codec: Option<VideoCodec>,
    ) {
        let Some(p) = self.participants.get_mut(&owner) else {
            return;
        };
        let Some(t) = p.tracks.iter_mut().find(|t| t.key == track) else {
            return;
        };
        t.bound = true;
        let is_video = t.info.r#type == lk::TrackType::Video as i32;
        if let Some(codec) = codec {
            if t.set_video_codec(codec) {
                info!(
                    identity = %p.identity,
                    track = %t.info.sid,
                    mime = %t.info.mime_type,
                    "the client's offer lacks the codec it asked to publish with; \
                     announcing the codec the answer lists first, which it will send"
                );
            }
        }
        t.info.mid = mid.clone();
        if let Some(c) = t.info.codecs.first_mut() {
            c.mid = mid;
        }
        p.bump();
        let info = p.info();
        let hidden = p.hidden();
        if !hidden {
            self.broadcast_update(vec![info], Some(owner));
        }
        let subscribers: Vec<ParticipantKey> = self
            .participants
            .values()
            .filter(|o| o.key != owner && o.auto_subscribe)
            .map(|o| o.key)
            .collect();
        if is_video {
            self.dynacast.published(track);
        }
        for s in subscribers {
            self.subscribe(s, track);
        }
        self.decide_dynacast(self.at);
        self.hook_track_published(owner, track);
    }
}

fn description(
    kind: &str,
    sdp: String,
    id: u32,
    mid_to_track_id: std::collections::HashMap<String, String>,
) -> lk::SessionDescription {
    lk::SessionDescription {
        r#type: kind.into(),
        sdp,
        id,
        mid_to_track_id,
    }
}
