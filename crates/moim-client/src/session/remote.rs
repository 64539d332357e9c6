//! The other participants, and the remote tracks the subscriber PeerConnection carries: which
//! participant and track sid each m-line (and each SSRC) belongs to, and the receive counters.

use std::collections::HashMap;
use std::time::Instant;

use livekit_protocol as proto;
use str0m::media::{MediaAdded, MediaKind};
use str0m::rtp::RtpPacket;
use str0m::Rtc;

use super::outbox::Outbox;
use crate::counters::{self, RxEntry, Shared};
use crate::event::{ClientEvent, TrackKind};
use crate::peer::msids_by_mid;
use crate::probe;
use crate::stats::RtpReceiveStats;

struct Participant {
    identity: String,
    tracks: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RemoteTrack {
    pub participant_sid: String,
    pub track_sid: String,
}

pub(crate) struct Remote {
    /// Our own participant sid, which `update`s include and we skip.
    own_sid: String,
    participants: HashMap<String, Participant>,
    by_mid: HashMap<String, RemoteTrack>,
    /// `SessionDescription.mid_to_track_id` of every offer so far; the fallback when an msid
    /// does not name the track.
    mid_to_track_id: HashMap<String, String>,
    /// (mid, rid) of every SSRC seen, so each packet costs one lookup.
    ssrc_mid: HashMap<u32, (String, Option<String>)>,
}

impl Remote {
    pub fn new(own_sid: String) -> Self {
        Self {
            own_sid,
            participants: HashMap::new(),
            by_mid: HashMap::new(),
            mid_to_track_id: HashMap::new(),
            ssrc_mid: HashMap::new(),
        }
    }

    /// A participant from `join` (already announced by `Joined`, so only its tracks are news)
    /// or from an `update`.
    pub fn on_participant(&mut self, p: proto::ParticipantInfo, from_join: bool, out: &mut Outbox) {
        if p.sid == self.own_sid {
            return;
        }
        if p.state == proto::participant_info::State::Disconnected as i32 {
            if self.participants.remove(&p.sid).is_some() {
                out.emit(ClientEvent::ParticipantDisconnected {
                    identity: p.identity,
                    sid: p.sid,
                });
            }
            return;
        }
        let known = self.participants.contains_key(&p.sid);
        if !from_join {
            out.emit(if known {
                ClientEvent::ParticipantUpdated {
                    identity: p.identity.clone(),
                    sid: p.sid.clone(),
                }
            } else {
                ClientEvent::ParticipantJoined {
                    identity: p.identity.clone(),
                    sid: p.sid.clone(),
                }
            });
        }
        let entry = self
            .participants
            .entry(p.sid.clone())
            .or_insert_with(|| Participant {
                identity: p.identity.clone(),
                tracks: Vec::new(),
            });
        entry.identity = p.identity.clone();
        for t in &p.tracks {
            if !entry.tracks.contains(&t.sid) {
                entry.tracks.push(t.sid.clone());
                out.emit(ClientEvent::TrackPublished {
                    participant_sid: p.sid.clone(),
                    participant_identity: p.identity.clone(),
                    track: Box::new(t.clone()),
                });
            }
        }
    }

    /// Learn from the server's subscriber offer whose track each m-line carries: the msid is
    /// `participant_sid|track_sid track_id`, and the track sid is whichever part looks like one.
    pub fn learn_offer(&mut self, sd: &proto::SessionDescription) {
        for (mid, track) in &sd.mid_to_track_id {
            self.mid_to_track_id.insert(mid.clone(), track.clone());
        }
        for (mid, stream, track) in msids_by_mid(&sd.sdp) {
            let (psid, tsid) = match stream.split_once('|') {
                Some((p, t)) => (p.to_owned(), t.to_owned()),
                None => (String::new(), track.clone()),
            };
            let tsid = if tsid.starts_with("TR") {
                tsid
            } else if track.starts_with("TR") {
                track
            } else {
                self.mid_to_track_id.get(&mid).cloned().unwrap_or(tsid)
            };
            self.by_mid.insert(
                mid,
                RemoteTrack {
                    participant_sid: psid,
                    track_sid: tsid,
                },
            );
        }
    }

    /// Whose track the subscriber m-line `mid` carries; empty sids if no offer said.
    pub fn track_at(&self, mid: &str) -> RemoteTrack {
        self.by_mid.get(mid).cloned().unwrap_or_default()
    }

    /// What `SyncState` tells the server we are subscribed to, after a resume.
    pub fn subscribed_track_sids(&self) -> Vec<String> {
        self.by_mid.values().map(|r| r.track_sid.clone()).collect()
    }

    pub fn on_media_added(&self, m: &MediaAdded, out: &mut Outbox) {
        let mid = m.mid.to_string();
        let RemoteTrack {
            participant_sid,
            track_sid,
        } = self.track_at(&mid);
        out.emit(ClientEvent::TrackSubscribed {
            participant_sid,
            track_sid,
            mid,
            kind: if m.kind == MediaKind::Audio {
                TrackKind::Audio
            } else {
                TrackKind::Video
            },
        });
    }

    /// Count a received packet; the first of each stream is announced as `MediaReceived`.
    /// Latency compares the sender's wall-clock stamp with ours, so it means something only
    /// when both run on one clock (one machine).
    pub fn on_rtp(
        &mut self,
        p: RtpPacket,
        subscriber: &mut Rtc,
        epoch: Instant,
        shared: &Shared,
        out: &mut Outbox,
    ) {
        let ssrc = *p.header.ssrc;
        let arrival_us = p.timestamp.saturating_duration_since(epoch).as_micros() as u64;
        let latency =
            probe::read_block(&p.payload).map(|sent| probe::now_micros().saturating_sub(sent));
        let (mid, rid) = match self.ssrc_mid.get(&ssrc) {
            Some(known) => known.clone(),
            None => {
                let found = subscriber
                    .direct_api()
                    .stream_rx(&p.header.ssrc)
                    .map(|s| (s.mid().to_string(), s.rid().map(|r| r.to_string())));
                let Some(found) = found else {
                    return;
                };
                self.ssrc_mid.insert(ssrc, found.clone());
                found
            }
        };
        let mut first = None;
        {
            let mut s = counters::lock(shared);
            let entry = s.rx.entry(ssrc).or_insert_with(|| {
                let kind = subscriber
                    .media(mid.as_str().into())
                    .map(|m| m.kind())
                    .unwrap_or(MediaKind::Video);
                let RemoteTrack {
                    participant_sid,
                    track_sid,
                } = self.track_at(&mid);
                first = Some(track_sid.clone());
                let (kind, clock) = if kind == MediaKind::Audio {
                    (TrackKind::Audio, 48_000)
                } else {
                    (TrackKind::Video, 90_000)
                };
                RxEntry {
                    track_sid,
                    participant_sid,
                    mid: mid.clone(),
                    rid: rid.clone(),
                    kind,
                    stats: RtpReceiveStats::new(clock),
                }
            });
            entry.stats.on_packet(
                p.header.sequence_number,
                p.header.timestamp,
                p.payload.len(),
                arrival_us,
                latency,
            );
        }
        if let Some(track_sid) = first {
            out.emit(ClientEvent::MediaReceived {
                track_sid,
                mid,
                ssrc,
                rid,
            });
        }
    }
}
