//! The webhook events a room emits, as LiveKit names them.

use moim_proto::lk;
use moim_sfu::TrackKey;

use super::core::RoomCore;
use super::participant::{Participant, ParticipantKey};

impl RoomCore {
    fn hook(
        &mut self,
        event: &str,
        participant: Option<lk::ParticipantInfo>,
        track: Option<lk::TrackInfo>,
    ) {
        if !self.config.webhooks {
            return;
        }
        let room = self.room_info();
        self.out.webhook(lk::WebhookEvent {
            event: event.to_string(),
            room: Some(room),
            participant,
            track,
            created_at: self.unix_ms.div_euclid(1000),
            ..Default::default()
        });
    }

    pub(crate) fn hook_room(&mut self, event: &str) {
        self.hook(event, None, None);
    }

    pub(crate) fn hook_joined(&mut self, key: ParticipantKey) {
        if let Some(info) = self.participants.get(&key).map(Participant::info) {
            self.hook("participant_joined", Some(info), None);
        }
    }

    /// A participant left: its tracks went with it, then it did.
    pub(crate) fn hook_left(&mut self, p: &Participant) {
        let info = p.info();
        for t in p.tracks.iter().filter(|t| t.bound) {
            self.hook(
                "track_unpublished",
                Some(info.clone()),
                Some(t.info.clone()),
            );
        }
        self.hook("participant_left", Some(p.disconnected_info()), None);
    }

    pub(crate) fn hook_track_published(&mut self, owner: ParticipantKey, track: TrackKey) {
        let Some(p) = self.participants.get(&owner) else {
            return;
        };
        if let Some(t) = p.tracks.iter().find(|t| t.key == track) {
            let (info, track) = (p.info(), t.info.clone());
            self.hook("track_published", Some(info), Some(track));
        }
    }
}
