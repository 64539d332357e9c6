//! What a room does with each signal request from a participant.

use std::time::Instant;

use moim_proto::lk::{self, signal_request::Message as Req, signal_response::Message as Resp};
use moim_sfu::Command;
use tracing::{debug, info};

use super::core::RoomCore;
use super::error::{check_metadata, RoomError};
use super::participant::ParticipantKey;
use super::wire;

impl RoomCore {
    pub(super) fn on_signal(&mut self, now: Instant, key: ParticipantKey, message: Req) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        match message {
            Req::Offer(sd) => self.out.media(Command::Offer {
                peer: p.publisher,
                sdp: sd.sdp,
                id: sd.id,
            }),
            Req::Answer(sd) => self.out.media(Command::Answer {
                peer: p.receiver,
                sdp: sd.sdp,
                id: sd.id,
            }),
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
                            self.out.media(Command::Candidate {
                                peer,
                                candidate: c.to_string(),
                            });
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
                    self.speakers.touch(now);
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
                    if let Some(track) = self.bound_track(&sid) {
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
                self.remove_participant(now, key, lk::DisconnectReason::ClientInitiated);
            }
            Req::UpdateMetadata(u) => {
                let request_id = u.request_id;
                if let Err(e) = self.update_own_metadata(key, u) {
                    if let Some(p) = self.participants.get(&key) {
                        self.out.tell(p, wire::refused(request_id, &e));
                    }
                }
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

    fn update_own_metadata(
        &mut self,
        key: ParticipantKey,
        u: lk::UpdateParticipantMetadata,
    ) -> Result<(), RoomError> {
        let Some(p) = self.participants.get_mut(&key) else {
            return Ok(());
        };
        if !p.grant.can_update_own_metadata() {
            return Err(RoomError::NotAllowed(
                "this token does not grant canUpdateOwnMetadata".into(),
            ));
        }
        check_metadata(&u.metadata)?;
        p.apply_profile(u.metadata, u.name, u.attributes);
        p.bump();
        let info = p.info();
        self.out.tell(
            p,
            Resp::Update(lk::ParticipantUpdate {
                participants: vec![info.clone()],
            }),
        );
        self.broadcast_update(vec![info], Some(key));
        self.refresh_token(key);
        Ok(())
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
            tracing::debug!(
                track = %sid,
                disabled = s.disabled,
                width = s.width,
                height = s.height,
                quality = s.quality,
                fps = s.fps,
                max_layer,
                "subscriber's track settings"
            );
            if let Some(p) = self.participants.get(&key) {
                self.out.media(Command::TrackSettings {
                    peer: p.receiver,
                    track,
                    disabled: s.disabled,
                    max_layer,
                    max_fps: (s.fps > 0).then_some(s.fps),
                });
                if p.subscriptions.contains(&track) {
                    let wants = (!s.disabled).then_some(max_layer);
                    self.dynacast.want(track, key, Some(wants));
                }
            }
        }
        self.decide_dynacast(self.at);
    }
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
