//! Active speakers. The media shard measures each audio track's level
//! (`moim_sfu::audio_level`) and reports changes; the room decides who is
//! speaking and tells each participant, as `speakers_changed`, only what
//! changed among the speakers it can hear (those whose microphone it
//! subscribes to, and itself): when anything did, every active speaker it
//! hears, and those that stopped.
//!
//! A participant's level is the loudest of its unmuted microphone tracks
//! (screen-share audio does not make anyone a speaker). Updates go out at
//! most every [`SPEAKER_INTERVAL`], gathered over [`GATHER`] so that one
//! shard tick's levels for several tracks become one message.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use moim_proto::lk::{self, signal_response::Message as Resp};
use moim_sfu::TrackKey;

use super::core::RoomCore;
use super::participant::{Participant, ParticipantKey};

/// The shortest time between two `speakers_changed` to one room.
pub(crate) const SPEAKER_INTERVAL: Duration = Duration::from_millis(200);
/// How long a first level change waits for the others of the same tick.
const GATHER: Duration = Duration::from_millis(20);

#[derive(Default)]
pub(crate) struct Speakers {
    /// The last level the shard reported per audio track; absent is 0.
    levels: HashMap<TrackKey, f32>,
    /// What each participant was last told: speaker sid → level, for the
    /// speakers it was told are active.
    told: HashMap<ParticipantKey, HashMap<String, f32>>,
    /// When to work out and send the next update.
    pub(crate) due: Option<Instant>,
    last_sent: Option<Instant>,
}

impl Speakers {
    pub(crate) fn set_level(&mut self, now: Instant, track: TrackKey, level: f32) {
        if level > 0.0 {
            self.levels.insert(track, level);
        } else {
            self.levels.remove(&track);
        }
        self.touch(now);
    }

    /// A participant left: if anyone was told it speaks, tell them it stopped.
    pub(crate) fn left(&mut self, now: Instant, sid: &str) {
        if self.told.values().any(|told| told.contains_key(sid)) {
            self.touch(now);
        }
    }

    /// Something that changes who speaks happened (a level, a mute, a
    /// departure): work it out soon.
    pub(crate) fn touch(&mut self, now: Instant) {
        if self.due.is_some() {
            return;
        }
        let earliest = self.last_sent.map_or(now, |t| t + SPEAKER_INTERVAL);
        self.due = Some(earliest.max(now + GATHER));
    }
}

/// A participant's level as a speaker: its loudest unmuted microphone.
fn speaker_level(p: &Participant, levels: &HashMap<TrackKey, f32>) -> f32 {
    p.tracks
        .iter()
        .filter(|t| t.bound && !t.info.muted && is_voice(&t.info))
        .filter_map(|t| levels.get(&t.key).copied())
        .fold(0.0, f32::max)
}

fn is_voice(info: &lk::TrackInfo) -> bool {
    info.r#type == lk::TrackType::Audio as i32
        && info.source != lk::TrackSource::ScreenShareAudio as i32
}

impl RoomCore {
    /// Sends each participant what changed among the speakers it hears.
    pub(super) fn send_speakers(&mut self, now: Instant) {
        self.speakers.due = None;
        self.speakers.last_sent = Some(now);
        let speaking: Vec<(ParticipantKey, String, f32, Vec<TrackKey>)> = self
            .participants
            .values()
            .filter(|p| !p.hidden())
            .filter_map(|p| {
                let level = speaker_level(p, &self.speakers.levels);
                let tracks = p.tracks.iter().map(|t| t.key).collect();
                (level > 0.0).then(|| (p.key, p.sid.clone(), level, tracks))
            })
            .collect();
        let Self {
            participants,
            speakers,
            out,
            ..
        } = self;
        speakers.told.retain(|k, _| participants.contains_key(k));
        speakers.levels.retain(|t, _| {
            participants
                .values()
                .any(|p| p.tracks.iter().any(|pt| pt.key == *t))
        });
        // A participant waiting to resume is told nothing now; it starts
        // from a fresh state when it comes back.
        for p in participants.values().filter(|p| p.connection.is_some()) {
            let hears: HashMap<String, f32> = speaking
                .iter()
                .filter(|(key, _, _, tracks)| {
                    *key == p.key || tracks.iter().any(|t| p.subscriptions.contains(t))
                })
                .map(|(_, sid, level, _)| (sid.clone(), *level))
                .collect();
            let told = speakers.told.entry(p.key).or_default();
            let dropped: Vec<&String> = told
                .keys()
                .filter(|sid| !hears.contains_key(*sid))
                .collect();
            let news = !dropped.is_empty()
                || hears
                    .iter()
                    .any(|(sid, level)| told.get(sid) != Some(level));
            if !news {
                continue;
            }
            // Every speaker it hears, not only the changed ones: livekit-client
            // merges an update into what it knows, the Rust SDK (Python,
            // Node, Unity) takes the update's active entries as the whole
            // list. The full list is right for both.
            let mut update: Vec<lk::SpeakerInfo> = hears
                .iter()
                .map(|(sid, level)| lk::SpeakerInfo {
                    sid: sid.clone(),
                    level: *level,
                    active: true,
                })
                .chain(dropped.into_iter().map(|sid| lk::SpeakerInfo {
                    sid: sid.clone(),
                    level: 0.0,
                    active: false,
                }))
                .collect();
            update.sort_by(|a, b| b.level.total_cmp(&a.level).then(a.sid.cmp(&b.sid)));
            *told = hears;
            out.tell(
                p,
                Resp::SpeakersChanged(lk::SpeakersChanged { speakers: update }),
            );
        }
    }
}
