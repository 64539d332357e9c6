//! Dynacast: a publisher encodes only the video layers someone watches.
//!
//! For each published video track the room knows what each subscriber asked
//! for (subscribing means the top layer; `UpdateTrackSettings` lowers it or
//! pauses it). The highest layer anyone needs goes to the publisher as
//! `subscribed_quality_update`, so its encoder stops the layers above.
//! More goes out at once, so that a subscriber who enlarges a tile or a
//! newcomer gets its layer started; less only after [`LOWER_AFTER`] of
//! wanting less, so that a tile being resized does not make the publisher's
//! encoder flap. A track nobody watches is paused entirely.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use moim_proto::lk::{self, signal_response::Message as Resp};
use moim_sfu::TrackKey;

use super::core::RoomCore;
use super::participant::ParticipantKey;

/// How long the layers needed must stay lower before the publisher hears.
pub(crate) const LOWER_AFTER: Duration = Duration::from_secs(3);

/// The highest simulcast layer index (`f`, HIGH).
const TOP: usize = 2;

/// What the subscribers of one video track want, and what its publisher
/// was told. `None` as a layer means nothing at all.
#[derive(Debug, Default)]
pub(crate) struct Demand {
    wants: HashMap<ParticipantKey, Option<usize>>,
    /// The publisher encodes every layer until told otherwise.
    told: Option<Option<usize>>,
    /// Since when less than `told` has been needed.
    lower_since: Option<Instant>,
    /// The publisher's encoder state is unknown (it resumed): say what is
    /// needed at once, whichever way.
    tell_now: bool,
}

impl Demand {
    /// The highest layer any subscriber wants.
    fn needed(&self) -> Option<usize> {
        self.wants.values().copied().flatten().max()
    }

    /// What to tell the publisher now, if anything; and when to look again.
    fn decide(&mut self, now: Instant) -> (Option<Option<usize>>, Option<Instant>) {
        let needed = self.needed();
        if std::mem::take(&mut self.tell_now) {
            self.lower_since = None;
            self.told = Some(needed);
            return (Some(needed), None);
        }
        let told = self.told.unwrap_or(Some(TOP));
        if needed == told && self.told.is_some() {
            self.lower_since = None;
            return (None, None);
        }
        if needed > told || (needed == told && self.told.is_none()) {
            self.lower_since = None;
            self.told = Some(needed);
            return (Some(needed), None);
        }
        let since = *self.lower_since.get_or_insert(now);
        if now >= since + LOWER_AFTER {
            self.lower_since = None;
            self.told = Some(needed);
            (Some(needed), None)
        } else {
            (None, Some(since + LOWER_AFTER))
        }
    }
}

#[derive(Default)]
pub(crate) struct Dynacast {
    tracks: HashMap<TrackKey, Demand>,
    /// When a lowering falls due.
    pub(crate) due: Option<Instant>,
    /// Tracks whose demand changed since they were last decided.
    changed: Vec<TrackKey>,
}

impl Dynacast {
    /// A video track was published: nobody watches it yet.
    pub(crate) fn published(&mut self, track: TrackKey) {
        self.tracks.entry(track).or_default();
        self.changed.push(track);
    }

    pub(crate) fn unpublished(&mut self, track: TrackKey) {
        self.tracks.remove(&track);
    }

    /// `layer`: what `who` wants of `track`; `None` to forget it.
    pub(crate) fn want(
        &mut self,
        track: TrackKey,
        who: ParticipantKey,
        layer: Option<Option<usize>>,
    ) {
        let Some(demand) = self.tracks.get_mut(&track) else {
            return;
        };
        match layer {
            Some(l) => demand.wants.insert(who, l),
            None => demand.wants.remove(&who),
        };
        self.changed.push(track);
    }

    /// `tracks`' publisher is back on a new signal connection and may have
    /// missed updates: tell it again what its tracks need.
    pub(crate) fn resumed(&mut self, tracks: impl IntoIterator<Item = TrackKey>) {
        for track in tracks {
            if let Some(demand) = self.tracks.get_mut(&track) {
                demand.tell_now = true;
                self.changed.push(track);
            }
        }
    }

    /// `who` left: it watches nothing any more.
    pub(crate) fn forget(&mut self, who: ParticipantKey) {
        for (track, demand) in &mut self.tracks {
            if demand.wants.remove(&who).is_some() {
                self.changed.push(*track);
            }
        }
    }
}

fn qualities(max: Option<usize>) -> Vec<lk::SubscribedQuality> {
    [
        lk::VideoQuality::Low,
        lk::VideoQuality::Medium,
        lk::VideoQuality::High,
    ]
    .into_iter()
    .enumerate()
    .map(|(layer, quality)| lk::SubscribedQuality {
        quality: quality as i32,
        enabled: max.is_some_and(|m| layer <= m),
    })
    .collect()
}

impl RoomCore {
    /// Tells publishers what changed demand for their tracks calls for.
    pub(super) fn decide_dynacast(&mut self, now: Instant) {
        let mut look: Vec<TrackKey> = std::mem::take(&mut self.dynacast.changed);
        if self.dynacast.due.is_some_and(|t| t <= now) {
            look.extend(self.dynacast.tracks.keys().copied());
        }
        look.sort_unstable();
        look.dedup();
        for track in look {
            let Some(demand) = self.dynacast.tracks.get_mut(&track) else {
                continue;
            };
            let Some((owner, published)) = self.participants.values().find_map(|p| {
                let t = p.tracks.iter().find(|t| t.key == track)?;
                Some((p, t))
            }) else {
                continue;
            };
            if owner.connection.is_none() {
                // A publisher waiting to resume would never get the update;
                // it is decided again when it is back (`resumed`).
                continue;
            }
            let (tell, _) = demand.decide(now);
            let Some(max) = tell else {
                continue;
            };
            let info = &published.info;
            // livekit-client matches the codec by the name it published
            // with; a client that named none gets the announced one.
            let codec = if published.client_codec.is_empty() {
                info.mime_type
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            } else {
                published.client_codec.clone()
            };
            #[allow(deprecated)] // older clients read only the per-quality list
            let update = lk::SubscribedQualityUpdate {
                track_sid: info.sid.clone(),
                subscribed_qualities: qualities(max),
                subscribed_codecs: vec![lk::SubscribedCodec {
                    codec,
                    qualities: qualities(max),
                }],
            };
            self.out.tell(owner, Resp::SubscribedQualityUpdate(update));
        }
        self.dynacast.due = self
            .dynacast
            .tracks
            .values()
            .filter_map(|d| d.lower_since.map(|t| t + LOWER_AFTER))
            .min();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(wants: &[Option<usize>]) -> Demand {
        let mut d = Demand::default();
        for (i, w) in wants.iter().enumerate() {
            d.wants.insert(ParticipantKey(i as u64), *w);
        }
        d
    }

    #[test]
    fn the_highest_wish_counts_and_a_paused_subscriber_wants_nothing() {
        assert_eq!(demand(&[Some(0), Some(1), None]).needed(), Some(1));
        assert_eq!(demand(&[None, None]).needed(), None);
        assert_eq!(demand(&[]).needed(), None);
    }

    #[test]
    fn more_goes_out_at_once_less_after_the_delay() {
        let t0 = Instant::now();
        let mut d = demand(&[Some(2)]);
        assert_eq!(
            d.decide(t0),
            (Some(Some(2)), None),
            "the first word is said at once"
        );
        d.wants.insert(ParticipantKey(0), Some(0));
        assert_eq!(d.decide(t0), (None, Some(t0 + LOWER_AFTER)));
        assert_eq!(d.decide(t0 + Duration::from_secs(1)).0, None);
        assert_eq!(d.decide(t0 + LOWER_AFTER).0, Some(Some(0)));
        d.wants.insert(ParticipantKey(0), Some(2));
        assert_eq!(
            d.decide(t0 + LOWER_AFTER).0,
            Some(Some(2)),
            "up again at once"
        );
    }

    #[test]
    fn a_dip_shorter_than_the_delay_is_never_told() {
        let t0 = Instant::now();
        let mut d = demand(&[Some(2)]);
        d.decide(t0);
        d.wants.insert(ParticipantKey(0), Some(1));
        d.decide(t0);
        d.wants.insert(ParticipantKey(0), Some(2));
        assert_eq!(d.decide(t0 + Duration::from_secs(1)), (None, None));
        assert_eq!(
            d.decide(t0 + LOWER_AFTER),
            (None, None),
            "the timer was cancelled"
        );
    }
}
