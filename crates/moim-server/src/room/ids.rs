//! Where a room gets its ids. The media plane needs peer and track keys that
//! no other room uses; tests want ids they can predict.

use std::sync::Arc;

use moim_sfu::{MediaPlane, PeerKey, RoomKey, TrackKey};

use super::participant::ParticipantKey;

pub trait Ids: Send {
    fn room_key(&mut self) -> RoomKey;
    fn peer_key(&mut self) -> PeerKey;
    fn track_key(&mut self) -> TrackKey;
    fn participant_key(&mut self) -> ParticipantKey;
    /// LiveKit-style session ids, shown to clients: `RM_…`, `PA_…`, `TR_…`.
    fn room_sid(&mut self) -> String;
    fn participant_sid(&mut self) -> String;
    fn track_sid(&mut self) -> String;
}

/// Keys from the media plane's counter, random sids: what a server uses.
pub struct PlaneIds(pub Arc<MediaPlane>);

impl Ids for PlaneIds {
    fn room_key(&mut self) -> RoomKey {
        RoomKey(self.0.next_key())
    }
    fn peer_key(&mut self) -> PeerKey {
        PeerKey(self.0.next_key())
    }
    fn track_key(&mut self) -> TrackKey {
        TrackKey(self.0.next_key())
    }
    fn participant_key(&mut self) -> ParticipantKey {
        ParticipantKey(self.0.next_key())
    }
    fn room_sid(&mut self) -> String {
        moim_proto::ids::room_sid()
    }
    fn participant_sid(&mut self) -> String {
        moim_proto::ids::participant_sid()
    }
    fn track_sid(&mut self) -> String {
        moim_proto::ids::track_sid()
    }
}

/// Counting ids (`PA_1`, `TR_2`, …): deterministic, for tests.
#[derive(Debug, Default)]
pub struct SequentialIds(u64);

impl SequentialIds {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

impl Ids for SequentialIds {
    fn room_key(&mut self) -> RoomKey {
        RoomKey(self.next())
    }
    fn peer_key(&mut self) -> PeerKey {
        PeerKey(self.next())
    }
    fn track_key(&mut self) -> TrackKey {
        TrackKey(self.next())
    }
    fn participant_key(&mut self) -> ParticipantKey {
        ParticipantKey(self.next())
    }
    fn room_sid(&mut self) -> String {
        format!("RM_{}", self.next())
    }
    fn participant_sid(&mut self) -> String {
        format!("PA_{}", self.next())
    }
    fn track_sid(&mut self) -> String {
        format!("TR_{}", self.next())
    }
}
