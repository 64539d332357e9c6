//! Connection quality. The media shard judges each PeerConnection's link
//! (`moim_sfu::quality`); a participant's quality is the worst of its
//! PeerConnections' (publisher and subscriber on `/rtc`, the one on
//! `/rtc/v1`). Each participant is told, as `connection_quality`, its own
//! and that of everyone whose tracks it subscribes to, each time one of
//! them changes or it starts hearing of someone new.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use moim_proto::lk::{self, signal_response::Message as Resp};
use moim_sfu::quality::LinkQuality;
use moim_sfu::PeerKey;

use super::core::RoomCore;
use super::participant::{Participant, ParticipantKey};

/// How long a change waits for others (the shard judges all its links on
/// one tick; a burst of subscriptions comes with one publish).
const GATHER: Duration = Duration::from_millis(50);

#[derive(Default)]
pub(crate) struct Qualities {
    links: HashMap<PeerKey, (LinkQuality, f32)>,
    /// What each participant was last told: participant sid → quality.
    told: HashMap<ParticipantKey, HashMap<String, lk::ConnectionQuality>>,
    pub(crate) due: Option<Instant>,
}

impl Qualities {
    pub(crate) fn set(&mut self, now: Instant, peer: PeerKey, quality: LinkQuality, score: f32) {
        self.links.insert(peer, (quality, score));
        self.touch(now);
    }

    pub(crate) fn touch(&mut self, now: Instant) {
        self.due.get_or_insert(now + GATHER);
    }

    pub(crate) fn forget_peers(&mut self, peers: &[PeerKey]) {
        for p in peers {
            self.links.remove(p);
        }
    }

    /// The worst of the participant's links that have been judged.
    fn of(&self, p: &Participant) -> Option<(LinkQuality, f32)> {
        [p.publisher, p.receiver]
            .iter()
            .filter_map(|peer| self.links.get(peer).copied())
            .min_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
    }
}

fn to_wire(q: LinkQuality) -> lk::ConnectionQuality {
    match q {
        LinkQuality::Lost => lk::ConnectionQuality::Lost,
        LinkQuality::Poor => lk::ConnectionQuality::Poor,
        LinkQuality::Good => lk::ConnectionQuality::Good,
        LinkQuality::Excellent => lk::ConnectionQuality::Excellent,
    }
}

impl RoomCore {
    pub(super) fn send_qualities(&mut self) {
        self.qualities.due = None;
        let judged: Vec<(ParticipantKey, String, lk::ConnectionQuality, f32)> = self
            .participants
            .values()
            .filter_map(|p| {
                let (q, score) = self.qualities.of(p)?;
                Some((p.key, p.sid.clone(), to_wire(q), score))
            })
            .collect();
        let Self {
            participants,
            qualities,
            out,
            ..
        } = self;
        qualities.told.retain(|k, _| participants.contains_key(k));
        for told in qualities.told.values_mut() {
            told.retain(|sid, _| judged.iter().any(|j| j.1 == *sid));
        }
        for p in participants.values().filter(|p| p.connection.is_some()) {
            let told = qualities.told.entry(p.key).or_default();
            let mut updates = Vec::new();
            for (key, sid, quality, score) in &judged {
                let hears = *key == p.key
                    || participants.get(key).is_some_and(|o| {
                        !o.hidden() && o.tracks.iter().any(|t| p.subscriptions.contains(&t.key))
                    });
                if hears && told.get(sid) != Some(quality) {
                    told.insert(sid.clone(), *quality);
                    updates.push(lk::ConnectionQualityInfo {
                        participant_sid: sid.clone(),
                        quality: *quality as i32,
                        score: *score,
                    });
                }
            }
            if !updates.is_empty() {
                out.tell(
                    p,
                    Resp::ConnectionQuality(lk::ConnectionQualityUpdate { updates }),
                );
            }
        }
    }
}
