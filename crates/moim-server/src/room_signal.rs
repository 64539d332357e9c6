//! What a room does with each signal request and each media-plane event.

use moim_proto::ids;
use moim_proto::lk::{self, signal_request::Message as Req, signal_response::Message as Resp};
use moim_sfu::codec::VideoCodec;
use moim_sfu::{Command, MediaEvent, PeerEvent, TrackKey, TrackKind};
use tracing::{debug, info, warn};

use crate::participant::{source_name, ParticipantKey, PublishedTrack};
use crate::room::Room;

/// LiveKit caps participant metadata at 512 KiB; so does moim.
const MAX_METADATA: usize = 512 * 1024;

impl Room {
    pub(crate) fn on_signal(&mut self, key: ParticipantKey, message: Req) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        match message {
            Req::Offer(sd) => {
                let peer = p.publisher;
                self.media.send(
                    self.key,
                    Command::Offer {
                        peer,
                        sdp: sd.sdp,
                        id: sd.id,
                    },
                );
            }
            Req::Answer(sd) => {
                let peer = p.receiver;
                self.media.send(
                    self.key,
                    Command::Answer {
                        peer,
                        sdp: sd.sdp,
                        id: sd.id,
                    },
                );
            }
            Req::Trickle(t) => {
                let peer = if t.target == lk::SignalTarget::Subscriber as i32 {
                    p.receiver
                } else {
                    p.publisher
                };
                match serde_json::from_str::<serde_json::Value>(&t.candidate_init) {
                    Ok(v) => {
                        if let Some(c) = v
                            .get("candidate")
                            .and_then(|c| c.as_str())
                            .filter(|c| !c.is_empty())
                        {
                            self.media.send(
                                self.key,
                                Command::Candidate {
                                    peer,
                                    candidate: c.to_string(),
                                },
                            );
                        }
                    }
                    Err(e) => {
                        debug!(identity = %p.identity, "trickle candidate is not JSON, ignored: {e}")
                    }
                }
            }
            Req::AddTrack(req) => self.add_track(key, req),
            Req::Mute(m) => {
                if let Some(t) = p.tracks.iter_mut().find(|t| t.info.sid == m.sid) {
                    t.info.muted = m.muted;
                    p.bump();
                    let info = p.info();
                    self.broadcast_update(vec![info], Some(key));
                }
            }
            Req::Subscription(s) => {
                let mut sids = s.track_sids.clone();
                sids.extend(
                    s.participant_tracks
                        .iter()
                        .flat_map(|pt| pt.track_sids.iter().cloned()),
                );
                for sid in sids {
                    if let Some(track) = self.track_by_sid(&sid) {
                        if s.subscribe {
                            self.subscribe(key, track);
                        } else {
                            self.unsubscribe(key, track);
                        }
                    }
                }
            }
            Req::TrackSetting(s) => self.track_settings(key, s),
            Req::Leave(_) => {
                info!(identity = %p.identity, "participant asked to leave");
                self.remove_participant(key, lk::DisconnectReason::ClientInitiated);
            }
            Req::UpdateMetadata(u) => {
                if !p.grant.can_update_own_metadata() {
                    p.send(Resp::RequestResponse(lk::RequestResponse {
                        request_id: u.request_id,
                        reason: lk::request_response::Reason::NotAllowed as i32,
                        message: "this token does not grant canUpdateOwnMetadata".into(),
                        ..Default::default()
                    }));
                    return;
                }
                if u.metadata.len() > MAX_METADATA {
                    p.send(Resp::RequestResponse(lk::RequestResponse {
                        request_id: u.request_id,
                        reason: lk::request_response::Reason::LimitExceeded as i32,
                        message: format!("metadata exceeds {MAX_METADATA} bytes"),
                        ..Default::default()
                    }));
                    return;
                }
                p.apply_profile(u.metadata, u.name, u.attributes);
                p.bump();
                let info = p.info();
                p.send(Resp::Update(lk::ParticipantUpdate {
                    participants: vec![info.clone()],
                }));
                self.broadcast_update(vec![info], Some(key));
            }
            Req::Ping(_) | Req::PingReq(_) => {} // answered by the connection itself
            Req::SyncState(_) => {
                debug!(identity = %p.identity, "sync_state received; moim keeps server-side state")
            }
            other => {
                debug!(identity = %p.identity, "signal request not handled: {:?}", std::mem::discriminant(&other))
            }
        }
    }

    fn track_by_sid(&self, sid: &str) -> Option<moim_sfu::TrackKey> {
        self.participants
            .values()
            .flat_map(|p| p.tracks.iter())
            .find(|t| t.info.sid == sid && t.bound)
            .map(|t| t.key)
    }

    // TrackInfo still carries fields livekit-client reads though the proto
    // marks them deprecated (simulcast, layers, stereo, disable_dtx).
    #[allow(deprecated)]
    fn add_track(&mut self, key: ParticipantKey, req: lk::AddTrackRequest) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let source = lk::TrackSource::try_from(req.source).unwrap_or(lk::TrackSource::Unknown);
        let allowed = match source {
            lk::TrackSource::Unknown => p.grant.can_publish(),
            s => p.grant.can_publish_source(source_name(s)),
        };
        if !allowed {
            warn!(identity = %p.identity, source = source_name(source), "publish refused by the token's grants");
            p.send(Resp::RequestResponse(lk::RequestResponse {
                reason: lk::request_response::Reason::NotAllowed as i32,
                message: format!(
                    "this token does not allow publishing {}",
                    source_name(source)
                ),
                ..Default::default()
            }));
            return;
        }
        if p.tracks.len() >= 16 {
            p.send(Resp::RequestResponse(lk::RequestResponse {
                reason: lk::request_response::Reason::LimitExceeded as i32,
                message: "a participant may publish at most 16 tracks".into(),
                ..Default::default()
            }));
            return;
        }
        let kind = if req.r#type == lk::TrackType::Video as i32 {
            TrackKind::Video
        } else {
            TrackKind::Audio
        };
        let track = self.media.next_key();
        let sid = ids::track_sid();
        // The first simulcast codec is the primary one; a second is a backup
        // the client publishes only when asked to, which moim never does.
        let codec = match kind {
            TrackKind::Audio => None,
            TrackKind::Video => req
                .simulcast_codecs
                .iter()
                .find(|c| !c.codec.is_empty())
                .and_then(|c| VideoCodec::from_name(&c.codec)),
        };
        // What the client asked for; once the answer is written, the
        // section's leading codec replaces it (`track_bound`).
        let mime = match kind {
            TrackKind::Audio => "audio/opus",
            TrackKind::Video => codec
                .unwrap_or(VideoCodec::Vp8)
                .mime()
                .unwrap_or("video/VP8"),
        }
        .to_string();
        let info = lk::TrackInfo {
            sid: sid.clone(),
            r#type: req.r#type,
            name: req.name.clone(),
            muted: req.muted,
            width: req.width,
            height: req.height,
            simulcast: req.layers.len() > 1,
            disable_dtx: req.disable_dtx,
            source: req.source,
            layers: req.layers.clone(),
            mime_type: mime.clone(),
            codecs: vec![lk::SimulcastCodecInfo {
                mime_type: mime,
                cid: req.cid.clone(),
                layers: req.layers.clone(),
                ..Default::default()
            }],
            stereo: req.stereo,
            disable_red: req.disable_red,
            encryption: req.encryption,
            stream: req.stream.clone(),
            audio_features: req.audio_features.clone(),
            backup_codec_policy: req.backup_codec_policy,
            // Subscribers look here to know the frames carry a trailer to
            // take off before decoding.
            packet_trailer_features: dedup(&req.packet_trailer_features),
            ..Default::default()
        };
        p.tracks.push(PublishedTrack {
            key: track,
            info: info.clone(),
            bound: false,
            layers: req.layers.clone(),
        });
        let peer = p.publisher;
        p.send(Resp::TrackPublished(lk::TrackPublishedResponse {
            cid: req.cid.clone(),
            track: Some(info),
        }));
        self.media.send(
            self.key,
            Command::ExpectTrack {
                peer,
                track,
                track_sid: sid,
                cid: req.cid,
                kind,
                codec,
                packet_trailer: !req.packet_trailer_features.is_empty(),
            },
        );
    }

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

    fn track_settings(&mut self, key: ParticipantKey, s: lk::UpdateTrackSettings) {
        for sid in &s.track_sids {
            let Some((track, layers)) = self
                .participants
                .values()
                .flat_map(|p| p.tracks.iter())
                .find(|t| t.info.sid == *sid)
                .map(|t| (t.key, t.layers.clone()))
            else {
                continue;
            };
            let max_layer = max_layer_for(&s, &layers);
            if let Some(p) = self.participants.get(&key) {
                self.media.send(
                    self.key,
                    Command::TrackSettings {
                        peer: p.receiver,
                        track,
                        disabled: s.disabled,
                        max_layer,
                    },
                );
            }
        }
    }

    pub(crate) fn on_media(&mut self, ev: MediaEvent) {
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
            } => {
                p.send(Resp::Answer(lk::SessionDescription {
                    r#type: "answer".into(),
                    sdp,
                    id,
                    mid_to_track_id,
                }));
            }
            PeerEvent::Offer {
                sdp,
                id,
                mid_to_track_id,
            } => {
                p.send(Resp::Offer(lk::SessionDescription {
                    r#type: "offer".into(),
                    sdp,
                    id,
                    mid_to_track_id,
                }));
            }
            PeerEvent::NeedMediaSections { audio, video } => {
                p.send(Resp::MediaSectionsRequirement(
                    lk::MediaSectionsRequirement {
                        num_audios: audio,
                        num_videos: video,
                    },
                ));
            }
            PeerEvent::NegotiationFailed(reason) => {
                warn!(identity = %p.identity, "negotiation failed: {reason}");
            }
            PeerEvent::TrackBound { track, mid, codec } => self.track_bound(key, track, mid, codec),
            PeerEvent::TrackCodec { track, codec } => self.track_codec(key, track, codec),
            PeerEvent::SubscriptionUnusable { track, reason } => {
                self.subscription_unusable(key, track, &reason)
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
        let Some(p) = self.participants.get(&key) else {
            return;
        };
        warn!(
            subscriber = %p.identity, %publisher, track = %track_sid,
            "the subscriber cannot receive this {mime} track: {reason}. It gets no media for \
             it; the subscribing client must accept the codec the publisher sends (told with \
             SubscriptionResponse CODEC_UNSUPPORTED)"
        );
        p.send(Resp::SubscriptionResponse(lk::SubscriptionResponse {
            track_sid,
            err: lk::SubscriptionError::SeCodecUnsupported as i32,
        }));
    }
}

/// `values` without repeats, in their first order.
fn dedup(values: &[i32]) -> Vec<i32> {
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        if !out.contains(v) {
            out.push(*v);
        }
    }
    out
}

/// Adaptive stream asks for a size; explicit settings ask for a quality.
fn max_layer_for(s: &lk::UpdateTrackSettings, layers: &[lk::VideoLayer]) -> usize {
    if s.width > 0 && !layers.is_empty() {
        let mut sorted: Vec<&lk::VideoLayer> = layers.iter().collect();
        sorted.sort_by_key(|l| l.width);
        return sorted
            .iter()
            .position(|l| l.width >= s.width)
            .unwrap_or(sorted.len() - 1);
    }
    match lk::VideoQuality::try_from(s.quality) {
        Ok(lk::VideoQuality::Low) => 0,
        Ok(lk::VideoQuality::Medium) => 1,
        _ => 2,
    }
}
