//! One PeerConnection: a str0m `Rtc` plus what moim knows about its SDP
//! sections (which carry published tracks, which carry subscriptions).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::Protocol;
use str0m::rtp::Ssrc;
use str0m::{Reason, Rtc};
use tokio::sync::mpsc::UnboundedSender;

use crate::api::{
    MediaEvent, NegotiationError, PeerEvent, PeerKey, PeerRole, PeerSpec, TrackKey, TrackKind,
};
use crate::codec::VideoCodec;
use crate::forward::StreamPosition;
use crate::sdp_munge::{self, BoundSection};
use crate::send_codec::SendCodec;

/// A track announced by `AddTrackRequest`, waiting for its SDP section.
#[derive(Debug)]
pub(crate) struct ExpectedTrack {
    pub track: TrackKey,
    pub cid: String,
    pub kind: TrackKind,
    /// The video codec the client asked to publish with.
    pub codec: Option<VideoCodec>,
}

/// What the receiving side needs to write a subscription's msid.
pub(crate) struct SectionLabel {
    pub participant_sid: String,
    pub track_sid: String,
    /// AV1 decodes only in a section that negotiated the dependency
    /// descriptor (see `dd.rs`).
    pub wants_dd: bool,
}

/// str0m 0.25's delay-based estimator, once TWCC feedback stops (nothing
/// is being sent on the PeerConnection), asks to be woken again after one
/// round trip: tens of microseconds on loopback or a LAN, zero on virtual
/// time, so a quiet subscriber would keep its shard spinning. It decides
/// nothing new in between, so its wakeups are spaced at least this far
/// apart (its own interval while feedback flows).
pub const BWE_WAKEUP_SPACING: Duration = Duration::from_millis(25);

/// When to wake a PeerConnection whose str0m asked for `wanted`, for
/// `reason`, having last been woken at `last_fired`.
pub fn wakeup_at(wanted: Instant, reason: Reason, last_fired: Option<Instant>) -> Instant {
    match (reason, last_fired) {
        (Reason::BweDelayControl, Some(fired)) => wanted.max(fired + BWE_WAKEUP_SPACING),
        _ => wanted,
    }
}

pub(crate) struct Peer {
    pub spec: PeerSpec,
    /// The room's event channel.
    events: UnboundedSender<MediaEvent>,
    pub rtc: Rtc,
    pub local_ufrag: String,
    pub addrs: Vec<(Protocol, SocketAddr)>,
    pub next_timeout: Option<Instant>,
    /// When str0m was last handed a timeout (see `BWE_WAKEUP_SPACING`).
    pub last_fired: Option<Instant>,
    /// When DTLS completed; `None` before.
    pub connected_at: Option<Instant>,
    /// How good the link is (see `quality.rs`).
    pub link: crate::quality::LinkMeter,
    /// How this PeerConnection's downlink is shared out (see
    /// `allocate.rs`); idle on a publisher PeerConnection, which has no
    /// estimator.
    pub alloc: crate::allocate::Allocator,
    /// A failed DTLS handshake was logged at WARN; later failures are DEBUG.
    pub dtls_warned: bool,
    /// Already on the shard's dirty list; saves a scan of the list for
    /// every packet written to every subscriber.
    drive_queued: bool,

    mids: Vec<Mid>,
    /// Sections whose latest offer lists the dependency descriptor.
    dd_mids: HashSet<Mid>,
    pub expected: Vec<ExpectedTrack>,
    /// Sections on which the client publishes, by mid.
    pub published: HashMap<Mid, TrackKey>,
    /// The codec each publishing video section asked for; every answer,
    /// not just the first, must list it first, or the browser switches.
    publish_codecs: HashMap<Mid, Option<VideoCodec>>,
    /// Incoming SSRC → (track, simulcast layer, whether the track is
    /// simulcast at all); filled on first sight.
    pub ssrc_routes: HashMap<Ssrc, (TrackKey, usize, bool)>,

    /// Sections on which moim forwards a track to this client.
    pub sending: HashMap<Mid, TrackKey>,
    pub labels: HashMap<Mid, SectionLabel>,
    /// Subscriptions with no section yet.
    pub waiting: Vec<(TrackKey, TrackKind, SectionLabel)>,
    /// Where each section's outgoing stream stopped when its track went, so
    /// a track that takes the section over continues it (`/rtc/v1` reuses
    /// sections, and with them their SSRCs).
    pub left_streams: HashMap<Mid, StreamPosition>,
    /// Sections to stop at the next server offer (dual-PC only).
    pub to_stop: Vec<Mid>,
    /// What each sending section offers (dual-PC only): the track's codec's
    /// payload types, preferred first, and the codec itself.
    offer_formats: HashMap<Mid, (Vec<Pt>, SendCodec)>,
    /// Sending sections already reported as answered with nothing usable.
    reported_unusable: Vec<Mid>,

    pending_offer: Option<SdpPendingOffer>,
    pending_offer_id: u32,
    renegotiate: bool,
    next_offer_id: u32,
    offered_channels: bool,

    /// Data channels by label, for delivering data to this client.
    pub reliable: Option<ChannelId>,
    pub lossy: Option<ChannelId>,
    pub channel_labels: HashMap<ChannelId, String>,
    pub open_channels: Vec<ChannelId>,
    /// Data for this client that arrived before its channel opened.
    pub pending_data: Vec<(bool, Vec<u8>)>,
}

impl Peer {
    pub fn new(
        spec: PeerSpec,
        events: UnboundedSender<MediaEvent>,
        rtc: Rtc,
        local_ufrag: String,
    ) -> Self {
        Self {
            spec,
            events,
            rtc,
            local_ufrag,
            addrs: Vec::new(),
            next_timeout: None,
            last_fired: None,
            connected_at: None,
            link: Default::default(),
            alloc: Default::default(),
            dtls_warned: false,
            drive_queued: false,
            mids: Vec::new(),
            dd_mids: HashSet::new(),
            expected: Vec::new(),
            published: HashMap::new(),
            publish_codecs: HashMap::new(),
            ssrc_routes: HashMap::new(),
            sending: HashMap::new(),
            labels: HashMap::new(),
            waiting: Vec::new(),
            left_streams: HashMap::new(),
            to_stop: Vec::new(),
            offer_formats: HashMap::new(),
            reported_unusable: Vec::new(),
            pending_offer: None,
            pending_offer_id: 0,
            renegotiate: false,
            next_offer_id: 1,
            offered_channels: false,
            reliable: None,
            lossy: None,
            channel_labels: HashMap::new(),
            open_channels: Vec::new(),
            pending_data: Vec::new(),
        }
    }

    /// Puts this peer on `dirty` (polled before the shard sleeps), once.
    pub fn queue_drive(&mut self, dirty: &mut Vec<PeerKey>) {
        if !self.drive_queued {
            self.drive_queued = true;
            dirty.push(self.spec.peer);
        }
    }

    /// Called as the peer is taken off the dirty list.
    pub fn drive_dequeued(&mut self) {
        self.drive_queued = false;
    }

    pub fn emit(&self, event: PeerEvent) {
        // The control plane may already have dropped the room; nothing to do.
        let _ = self.events.send(MediaEvent {
            peer: self.spec.peer,
            event,
        });
    }

    /// Applies a client offer and answers it. Returns the tracks newly bound
    /// to publishing sections and the subscriptions bound to receive sections.
    pub fn accept_offer(&mut self, sdp: &str, id: u32) -> Result<OfferOutcome, NegotiationError> {
        let offer = SdpOffer::from_sdp_string(sdp)
            .map_err(|e| NegotiationError::OfferNotSdp(e.to_string()))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| NegotiationError::OfferRefused(e.to_string()))?;
        self.learn_mids(sdp);
        let mut outcome = OfferOutcome::default();
        self.bind_published_sections(&mut outcome);
        if self.spec.role == PeerRole::Single {
            self.bind_waiting_to_spare_sections(&mut outcome);
        }
        let sdp = self.render_answer(answer);
        // The answer already has the asked-for codec first, so its first
        // format is what the publisher will send.
        let first = sdp_munge::first_formats(&sdp);
        for (track, mid) in &outcome.published {
            let sends = first
                .get(&mid.to_string())
                .and_then(|pt| SendCodec::behind_pt(&self.rtc, Pt::from(*pt)));
            if let Some(sends) = sends {
                outcome.codecs.push((*track, sends));
            }
        }
        let mid_to_track_id = self.mid_to_track_id();
        self.emit(PeerEvent::Answer {
            sdp,
            id,
            mid_to_track_id,
        });
        if self.spec.role == PeerRole::Single && !self.waiting.is_empty() {
            self.request_sections();
        }
        Ok(outcome)
    }

    /// Media the client sends, matched to the tracks it announced.
    fn bind_published_sections(&mut self, outcome: &mut OfferOutcome) {
        let receiving: Vec<(Mid, MediaKind, String)> = self
            .rtc_medias()
            .into_iter()
            .filter(|(mid, _, dir, _)| dir.is_receiving() && !self.published.contains_key(mid))
            .map(|(mid, kind, _, track_id)| (mid, kind, track_id))
            .collect();
        for (mid, kind, msid_track) in receiving {
            let kind = to_track_kind(kind);
            let pos = self
                .expected
                .iter()
                .position(|e| e.cid == msid_track)
                .or_else(|| self.expected.iter().position(|e| e.kind == kind));
            if let Some(pos) = pos {
                let e = self.expected.remove(pos);
                self.published.insert(mid, e.track);
                if kind == TrackKind::Video {
                    self.publish_codecs.insert(mid, e.codec);
                }
                outcome.published.push((e.track, mid));
            }
        }
    }

    /// Forgets the sections a removed track was published on; the client
    /// may reuse them for another track, with another codec.
    pub fn unpublish(&mut self, track: TrackKey) {
        let mids: Vec<Mid> = self
            .published
            .iter()
            .filter(|(_, t)| **t == track)
            .map(|(m, _)| *m)
            .collect();
        for mid in mids {
            self.published.remove(&mid);
            self.publish_codecs.remove(&mid);
        }
    }

    fn bind_waiting_to_spare_sections(&mut self, outcome: &mut OfferOutcome) {
        let mut spare = self.spare_sections();
        let mut still_waiting = Vec::new();
        for (track, kind, label) in std::mem::take(&mut self.waiting) {
            // An AV1 track waits for a section with the dependency
            // descriptor, which livekit-client adds to the sections it
            // creates on request; it takes any section only from a client
            // that never offers the descriptor.
            let fits = |mid: &Mid, k: &TrackKind| {
                *k == kind
                    && (!label.wants_dd || self.dd_mids.is_empty() || self.dd_mids.contains(mid))
            };
            if let Some(pos) = spare.iter().position(|(m, k)| fits(m, k)) {
                let (mid, _) = spare.remove(pos);
                self.sending.insert(mid, track);
                self.labels.insert(mid, label);
                outcome.subscribed.push((track, mid));
            } else {
                still_waiting.push((track, kind, label));
            }
        }
        self.waiting = still_waiting;
    }

    /// Sections the client offered for receiving that carry nothing yet.
    fn spare_sections(&self) -> Vec<(Mid, TrackKind)> {
        self.rtc_medias()
            .into_iter()
            .filter(|(mid, _, dir, _)| dir.is_sending() && !self.sending.contains_key(mid))
            .map(|(mid, kind, _, _)| (mid, to_track_kind(kind)))
            .collect()
    }

    fn rtc_medias(&self) -> Vec<(Mid, MediaKind, Direction, String)> {
        // str0m exposes medias by mid only; mids are "0".."n" for browsers,
        // but a client may use any token, so probe the ones SDP told us of.
        self.known_mids()
            .into_iter()
            .filter_map(|mid| {
                let m = self.rtc.media(mid)?;
                Some((mid, m.kind(), m.direction(), m.track_id().to_string()))
            })
            .collect()
    }

    fn known_mids(&self) -> Vec<Mid> {
        self.mids.clone()
    }

    /// str0m has no list of medias, so moim keeps the mids the SDP named,
    /// and which of them offer the dependency descriptor.
    fn learn_mids(&mut self, sdp: &str) {
        fn finish(dd_mids: &mut HashSet<Mid>, mid: Option<Mid>, dd: bool) {
            match mid {
                Some(mid) if dd => dd_mids.insert(mid),
                Some(mid) => dd_mids.remove(&mid),
                None => false,
            };
        }
        let mut section_mid: Option<Mid> = None;
        let mut section_dd = false;
        for line in sdp.lines().map(str::trim_end) {
            if line.starts_with("m=") {
                finish(&mut self.dd_mids, section_mid.take(), section_dd);
                section_dd = false;
            } else if let Some(mid) = line.strip_prefix("a=mid:") {
                let mid = Mid::from(mid);
                if !self.mids.contains(&mid) {
                    self.mids.push(mid);
                }
                section_mid = Some(mid);
            } else if line.starts_with("a=extmap:") && line.contains(crate::dd::URI) {
                section_dd = true;
            }
        }
        finish(&mut self.dd_mids, section_mid, section_dd);
    }

    /// The answer as the client must see it.
    fn render_answer(&self, answer: SdpAnswer) -> String {
        let wanted: HashMap<String, Option<VideoCodec>> = self
            .publish_codecs
            .iter()
            .map(|(mid, c)| (mid.to_string(), *c))
            .collect();
        let (sdp, _) = sdp_munge::put_codec_first(&answer.to_sdp_string(), &wanted);
        if self.spec.role != PeerRole::Single {
            return sdp;
        }
        let bound: HashMap<String, BoundSection<'_>> = self
            .labels
            .iter()
            .filter(|(mid, _)| self.sending.contains_key(*mid))
            .map(|(mid, l)| {
                (
                    mid.to_string(),
                    BoundSection {
                        participant_sid: &l.participant_sid,
                        track_sid: &l.track_sid,
                    },
                )
            })
            .collect();
        let spare: Vec<String> = self
            .spare_sections()
            .into_iter()
            .map(|(m, _)| m.to_string())
            .collect();
        sdp_munge::rewrite_answer(&sdp, &bound, &spare)
    }

    pub fn mid_to_track_id(&self) -> HashMap<String, String> {
        self.labels
            .iter()
            .filter(|(mid, _)| self.sending.contains_key(*mid))
            .map(|(mid, l)| (mid.to_string(), l.track_sid.clone()))
            .collect()
    }

    /// Single-PC mode: ask for as many receive sections as subscriptions wait.
    pub fn request_sections(&mut self) {
        let audio = self
            .waiting
            .iter()
            .filter(|w| w.1 == TrackKind::Audio)
            .count() as u32;
        let video = self
            .waiting
            .iter()
            .filter(|w| w.1 == TrackKind::Video)
            .count() as u32;
        self.emit(PeerEvent::NeedMediaSections { audio, video });
    }

    /// Starts a server offer if one is needed and none is outstanding.
    /// `codec_of` tells what each track carries, so its section offers only
    /// that. Returns subscriptions bound to new sections.
    pub fn negotiate(
        &mut self,
        codec_of: impl Fn(TrackKey) -> Option<SendCodec>,
    ) -> Vec<(TrackKey, Mid)> {
        debug_assert_eq!(self.spec.role, PeerRole::Subscriber);
        if self.pending_offer.is_some() {
            self.renegotiate = true;
            return Vec::new();
        }
        // Worked out before the SDP API borrows the Rtc. A track whose codec
        // is not known yet (no answer to its publisher parsed) is offered
        // every codec, as str0m would.
        let formats: Vec<Option<(Vec<Pt>, SendCodec)>> = self
            .waiting
            .iter()
            .map(|(track, _, _)| {
                let codec = codec_of(*track)?;
                Some((codec.offer_formats(&self.rtc)?, codec))
            })
            .collect();
        let mut bound = Vec::new();
        let mut api = self.rtc.sdp_api();
        if !self.offered_channels {
            // livekit-client receives data on channels the server opens on
            // the subscriber PeerConnection.
            let reliable = api.add_channel_with_config(ChannelConfig {
                label: "_reliable".into(),
                ..Default::default()
            });
            let lossy = api.add_channel_with_config(ChannelConfig {
                label: "_lossy".into(),
                ordered: false,
                reliability: Reliability::MaxRetransmits { retransmits: 0 },
                ..Default::default()
            });
            self.reliable = Some(reliable);
            self.lossy = Some(lossy);
            self.channel_labels.insert(reliable, "_reliable".into());
            self.channel_labels.insert(lossy, "_lossy".into());
            self.offered_channels = true;
        }
        for mid in self.to_stop.drain(..) {
            api.stop_media(mid);
            self.offer_formats.remove(&mid);
        }
        for ((track, kind, label), formats) in self.waiting.drain(..).zip(formats) {
            let stream_id = format!("{}|{}", label.participant_sid, label.track_sid);
            let mid = api.add_media(
                to_media_kind(kind),
                Direction::SendOnly,
                Some(stream_id),
                Some(label.track_sid.clone()),
                None,
            );
            self.sending.insert(mid, track);
            self.labels.insert(mid, label);
            if let Some(f) = formats {
                self.offer_formats.insert(mid, f);
            }
            bound.push((track, mid));
        }
        if let Some((offer, pending)) = api.apply() {
            let id = self.next_offer_id;
            self.next_offer_id += 1;
            self.pending_offer = Some(pending);
            self.pending_offer_id = id;
            let sdp = self.restrict_formats(&offer.to_sdp_string());
            let mid_to_track_id = self.mid_to_track_id();
            self.emit(PeerEvent::Offer {
                sdp,
                id,
                mid_to_track_id,
            });
        }
        bound
    }

    /// Every offer, new sections or not, lists only each track's formats:
    /// str0m writes its whole codec table into each section it renders.
    fn restrict_formats(&self, sdp: &str) -> String {
        let keep: HashMap<String, Vec<u8>> = self
            .offer_formats
            .iter()
            .map(|(mid, (pts, _))| (mid.to_string(), pts.iter().map(|pt| **pt).collect()))
            .collect();
        sdp_munge::keep_formats(sdp, &keep)
    }

    /// Sending sections whose answer accepted none of the track's formats,
    /// each once, with what was offered and answered.
    fn unusable_sections(&mut self) -> Vec<(TrackKey, String)> {
        let mut out = Vec::new();
        let mut reported = Vec::new();
        for (mid, (pts, codec)) in &self.offer_formats {
            let (Some(track), Some(media)) = (self.sending.get(mid), self.rtc.media(*mid)) else {
                continue;
            };
            let answered = media.remote_pts();
            if codec.answered_with(pts, answered) || self.reported_unusable.contains(mid) {
                continue;
            }
            let names: Vec<String> = answered
                .iter()
                .filter_map(|pt| SendCodec::behind_pt(&self.rtc, *pt).map(|c| c.describe()))
                .collect();
            let answered = if names.is_empty() {
                "no format moim offered".to_string()
            } else {
                names.join(", ")
            };
            out.push((
                *track,
                format!(
                    "moim offered {} (what the publisher sends) and the subscriber answered {}",
                    codec.describe(),
                    answered
                ),
            ));
            reported.push(*mid);
        }
        self.reported_unusable.extend(reported);
        out
    }

    /// Applies the client's answer to the outstanding server offer.
    pub fn accept_answer(&mut self, sdp: &str, id: u32) -> Result<Answered, NegotiationError> {
        if id != 0 && id != self.pending_offer_id {
            return Err(NegotiationError::StaleAnswer {
                got: id,
                expected: self.pending_offer_id,
            });
        }
        let Some(pending) = self.pending_offer.take() else {
            return Err(NegotiationError::NoOfferOutstanding);
        };
        let answer = SdpAnswer::from_sdp_string(sdp)
            .map_err(|e| NegotiationError::AnswerNotSdp(e.to_string()))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| NegotiationError::AnswerRefused(e.to_string()))?;
        let again = std::mem::take(&mut self.renegotiate)
            || !self.waiting.is_empty()
            || !self.to_stop.is_empty();
        Ok(Answered {
            again,
            unusable: self.unusable_sections(),
        })
    }

    pub fn restart_ice(&mut self) {
        if self.pending_offer.is_some() {
            self.renegotiate = true;
        }
        let mut api = self.rtc.sdp_api();
        api.ice_restart(true);
        if let Some((offer, pending)) = api.apply() {
            let id = self.next_offer_id;
            self.next_offer_id += 1;
            self.pending_offer = Some(pending);
            self.pending_offer_id = id;
            let mid_to_track_id = self.mid_to_track_id();
            self.emit(PeerEvent::Offer {
                sdp: self.restrict_formats(&offer.to_sdp_string()),
                id,
                mid_to_track_id,
            });
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct OfferOutcome {
    pub published: Vec<(TrackKey, Mid)>,
    pub subscribed: Vec<(TrackKey, Mid)>,
    /// What each newly published track will carry: the first format of
    /// moim's answer for its section.
    pub codecs: Vec<(TrackKey, SendCodec)>,
}

#[derive(Debug)]
pub(crate) struct Answered {
    /// Another negotiation is due.
    pub again: bool,
    /// Subscriptions whose section was answered with nothing moim can send,
    /// and why.
    pub unusable: Vec<(TrackKey, String)>,
}

pub(crate) fn to_track_kind(kind: MediaKind) -> TrackKind {
    if kind.is_audio() {
        TrackKind::Audio
    } else {
        TrackKind::Video
    }
}

pub(crate) fn to_media_kind(kind: TrackKind) -> MediaKind {
    match kind {
        TrackKind::Audio => MediaKind::Audio,
        TrackKind::Video => MediaKind::Video,
    }
}

#[cfg(test)]
mod wakeup_tests {
    use super::*;

    #[test]
    fn the_estimator_alone_is_woken_at_most_every_spacing() {
        let fired = Instant::now();
        let asked = fired; // one round trip of zero
        assert_eq!(
            wakeup_at(asked, Reason::BweDelayControl, Some(fired)),
            fired + BWE_WAKEUP_SPACING
        );
        // Later than the spacing is left alone, and so is anything else.
        let later = fired + Duration::from_millis(40);
        assert_eq!(
            wakeup_at(later, Reason::BweDelayControl, Some(fired)),
            later
        );
        assert_eq!(wakeup_at(asked, Reason::Twcc, Some(fired)), asked);
        // Never woken yet: at once, so the first estimate is not late.
        assert_eq!(wakeup_at(asked, Reason::BweDelayControl, None), asked);
    }
}
