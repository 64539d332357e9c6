//! Published tracks and the RTP forwarding from a publisher to its
//! subscribers: the media hot path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::{Codec, PayloadParams};
use str0m::media::{KeyframeRequestKind, Mid, Pt, Rid};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, SeqNo, Ssrc};
use tracing::{info, warn};

use super::{Shard, ShardIo};
use crate::api::{PeerEvent, PeerKey, TrackKey, TrackKind};
use crate::audio_level::LevelMeter;
use crate::codec::{PacketView, StreamReader, VideoCodec};
use crate::dd::DependencyDescriptor;
use crate::forward::{Forwarder, InPacket, LayerBook, Verdict, MAX_LAYERS};
use crate::packet_trailer;
use crate::send_codec::{find_params, SendCodec};

/// Keyframe requests to a publisher, at most this often per layer.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);

/// Where a subscription's packets go. Today a subscriber's PeerConnection;
/// a recorder will be another target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubscriberTarget {
    Peer(PeerKey),
}

pub(crate) struct Subscription {
    pub target: SubscriberTarget,
    pub mid: Option<Mid>,
    pub fwd: Forwarder,
    /// Publisher payload type → this subscriber's payload type.
    pt_map: Option<(Pt, Pt)>,
    /// Said once that this subscriber cannot take the track's codec.
    warned_unsendable: bool,
    /// Frames reach this subscriber without their packet trailer.
    pub strip_trailer: bool,
    /// When the subscription got its SDP section.
    pub bound_at: Option<Instant>,
    /// When the subscriber was last told the track is paused for lack of
    /// room (see `allocation.rs`).
    pub pause_told: Option<Instant>,
}

impl Subscription {
    pub fn new(peer: PeerKey) -> Self {
        Self {
            target: SubscriberTarget::Peer(peer),
            mid: None,
            fwd: Forwarder::new(),
            pt_map: None,
            warned_unsendable: false,
            strip_trailer: false,
            bound_at: None,
            pause_told: None,
        }
    }

    /// The PeerConnection this subscription feeds, if it feeds one.
    pub fn peer(&self) -> Option<PeerKey> {
        match self.target {
            SubscriberTarget::Peer(p) => Some(p),
        }
    }
}

#[derive(Clone, Copy)]
struct TrackCodec {
    pt: Pt,
    params: PayloadParams,
    is_red: bool,
    video: VideoCodec,
    clock_rate: u32,
}

pub(crate) struct Track {
    pub key: TrackKey,
    pub publisher: PeerKey,
    pub sid: String,
    pub participant_sid: String,
    pub kind: TrackKind,
    pub mid: Option<Mid>,
    /// The codec subscribers are offered, and told of (see `announced`):
    /// first of moim's answer to the publisher, then whatever its packets
    /// turn out to carry.
    pub send_codec: Option<SendCodec>,
    /// The publisher's frames end with a LiveKit packet trailer.
    pub has_packet_trailer: bool,
    pub screen_share: bool,
    /// What the last payload type resolved to, so a packet of the same
    /// type skips the codec table.
    codec: Option<TrackCodec>,
    pub book: LayerBook,
    layer_ssrc: [Option<Ssrc>; MAX_LAYERS],
    /// What each simulcast stream's dependency descriptors said last.
    readers: [StreamReader; MAX_LAYERS],
    last_keyframe_request: [Option<Instant>; MAX_LAYERS],
    /// How loud an audio track is (see `audio_level.rs`).
    pub meter: LevelMeter,
    pub subs: Vec<Subscription>,
}

impl Track {
    pub fn new(
        key: TrackKey,
        publisher: PeerKey,
        sid: String,
        participant_sid: String,
        kind: TrackKind,
    ) -> Self {
        Self {
            key,
            publisher,
            sid,
            participant_sid,
            kind,
            mid: None,
            send_codec: None,
            has_packet_trailer: false,
            screen_share: false,
            codec: None,
            book: LayerBook::default(),
            layer_ssrc: [None; MAX_LAYERS],
            readers: Default::default(),
            last_keyframe_request: [None; MAX_LAYERS],
            meter: LevelMeter::default(),
            subs: Vec::new(),
        }
    }

    /// The video codec subscribers are told of (`TrackInfo.mime_type`): the
    /// one they are offered, so the two never disagree.
    pub fn announced(&self) -> Option<VideoCodec> {
        if self.kind != TrackKind::Video {
            return None;
        }
        self.send_codec
            .map(|s| video_codec(s.params.spec().codec))
            .filter(|c| *c != VideoCodec::Other)
    }

    pub fn subscription_mut(&mut self, peer: PeerKey) -> Option<&mut Subscription> {
        self.subs.iter_mut().find(|s| s.peer() == Some(peer))
    }
}

/// livekit-client names its simulcast encodings `q`, `h`, `f`, low to high.
fn layer_of(rid: Option<Rid>) -> usize {
    match rid.as_deref() {
        Some("h") => 1,
        Some("f") => 2,
        _ => 0,
    }
}

fn spec_name(params: PayloadParams, red: bool) -> String {
    SendCodec { params, red }.describe()
}

fn video_codec(codec: Codec) -> VideoCodec {
    match codec {
        Codec::Vp8 => VideoCodec::Vp8,
        Codec::Vp9 => VideoCodec::Vp9,
        Codec::H264 => VideoCodec::H264,
        Codec::Av1 => VideoCodec::Av1,
        _ => VideoCodec::Other,
    }
}

impl<Io: ShardIo> Shard<Io> {
    /// One publisher packet out to every subscriber that should get it.
    pub(crate) fn forward(&mut self, from: PeerKey, mut pkt: RtpPacket) {
        let Shard {
            peers,
            tracks,
            dirty,
            ..
        } = self;
        let Some(publisher) = peers.get_mut(&from) else {
            return;
        };
        let ssrc = pkt.header.ssrc;
        let route = match publisher.ssrc_routes.get(&ssrc) {
            Some(r) => *r,
            None => {
                let Some(rx) = publisher
                    .rtc
                    .direct_api()
                    .stream_rx(&ssrc)
                    .map(|s| (s.mid(), s.rid()))
                else {
                    return;
                };
                let Some(&track) = publisher.published.get(&rx.0) else {
                    return;
                };
                let route = (track, layer_of(rx.1), rx.1.is_some());
                publisher.ssrc_routes.insert(ssrc, route);
                route
            }
        };
        let (track_key, layer, simulcast) = route;
        let Some(track) = tracks.get_mut(&track_key) else {
            return;
        };
        let pt = pkt.header.payload_type;
        let cached = track.codec.filter(|c| c.pt == pt);
        let TrackCodec {
            params: in_params,
            is_red: in_is_red,
            video: codec,
            clock_rate,
            ..
        } = match cached {
            Some(c) => c,
            None => {
                let Some((params, is_red)) = find_params(&publisher.rtc, pt) else {
                    return;
                };
                let spec = params.spec();
                let differs = track
                    .send_codec
                    .is_none_or(|s| s.params.spec().codec != spec.codec || s.red != is_red);
                if differs {
                    // Subscribers negotiated from now on get what flows, and
                    // are never told one codec while another flows: the
                    // control plane re-announces the track.
                    let was = track.announced();
                    track.send_codec = Some(SendCodec {
                        params,
                        red: is_red,
                    });
                    if let Some(now) = track.announced().filter(|now| Some(*now) != was) {
                        info!(
                            track = %track.sid,
                            ?was,
                            ?now,
                            "the publisher's RTP carries another codec than announced; \
                             updating the track's mime type"
                        );
                        publisher.emit(PeerEvent::TrackCodec {
                            track: track_key,
                            codec: now,
                        });
                    }
                }
                let c = TrackCodec {
                    pt,
                    params,
                    is_red,
                    video: video_codec(spec.codec),
                    clock_rate: spec.clock_rate.get(),
                };
                track.codec = Some(c);
                c
            }
        };
        // The publisher's borrow ends here; subscribers live in the same map.
        track.layer_ssrc[layer] = Some(ssrc);
        let now = pkt.timestamp;
        let is_video = track.kind == TrackKind::Video;
        let descriptor = pkt
            .header
            .ext_vals
            .user_values
            .get::<DependencyDescriptor>()
            .map(|d| Arc::clone(&d.0));
        let view = if is_video {
            track.readers[layer].read(codec, &pkt.payload, descriptor.as_deref())
        } else {
            PacketView {
                keyframe_start: false,
                layers: None,
                needs_keyframe: false,
            }
        };
        let layers = view.layers;
        // One stream with layers inside: its spatial layers are the
        // track's layers, measured and chosen like simulcast streams.
        let svc = !simulcast && layers.is_some();
        if svc {
            track.book.set_nested();
        }
        let book_layer = match layers {
            Some(l) if svc => (l.spatial as usize).min(MAX_LAYERS - 1),
            _ => layer,
        };
        track.book.saw(book_layer, now);
        track.book.carried(book_layer, pkt.payload.len());
        if let Some(l) = layers.filter(|l| l.frame_start && l.spatial == 0) {
            track.book.frame_started(layer, l.temporal);
        }
        if let (false, Some(level)) = (is_video, pkt.header.ext_vals.audio_level) {
            track.meter.observe(level);
        }
        let input = InPacket {
            layer,
            layers,
            svc,
            marker: pkt.header.marker,
            seq: *pkt.seq_no,
            timestamp: pkt.header.timestamp,
            keyframe_start: view.keyframe_start,
            needs_keyframe: view.needs_keyframe,
            clock_rate,
        };
        let mut ext = ExtensionValues {
            audio_level: pkt.header.ext_vals.audio_level,
            voice_activity: pkt.header.ext_vals.voice_activity,
            video_orientation: pkt.header.ext_vals.video_orientation,
            ..Default::default()
        };
        // A stream with a dependency descriptor keeps it on the way out
        // (`dd.rs`): AV1 does not decode without it, and a receiver that
        // gets VP8 or H.264 with some temporal layers left out follows the
        // frames by it. Streams without one keep `user_values` empty, so
        // the per-subscriber clone below allocates nothing for them.
        if descriptor.is_some() {
            ext.user_values = std::mem::take(&mut pkt.header.ext_vals.user_values);
        }
        let payload: Arc<[u8]> = pkt.payload;
        // Subscribers that do not take packet trailers off themselves get the
        // frame's last packet without one: a copy per frame, shared by all
        // of them, and only for publishers that declared trailers.
        let untrailed: Option<Arc<[u8]>> =
            if track.has_packet_trailer && track.subs.iter().any(|s| s.strip_trailer) {
                match packet_trailer::trailer_len(&payload, pkt.header.marker) {
                    0 => None,
                    n => Some(Arc::from(&payload[..payload.len() - n])),
                }
            } else {
                None
            };
        let mut wanted = [false; MAX_LAYERS];
        for sub in &mut track.subs {
            let Some(mid) = sub.mid else {
                continue;
            };
            if let Verdict::Forward {
                seq,
                timestamp,
                marker,
            } = sub.fwd.on_packet(input, &track.book, now)
            {
                let subscriber = match sub.target {
                    SubscriberTarget::Peer(p) => peers.get_mut(&p),
                };
                let Some(subscriber) = subscriber else {
                    continue;
                };
                let out_pt = match sub.pt_map {
                    Some((i, o)) if i == pt => o,
                    _ => {
                        // RED-wrapped audio stays RED: the subscriber's own
                        // RED payload type for the matching codec.
                        let matched = subscriber.rtc.codec_config().match_params(in_params);
                        let out =
                            matched.and_then(|p| if in_is_red { p.red() } else { Some(p.pt()) });
                        let Some(o) = out else {
                            if !sub.warned_unsendable {
                                sub.warned_unsendable = true;
                                warn!(
                                    track = %track.sid,
                                    publisher = %track.participant_sid,
                                    subscriber = %subscriber.spec.identity,
                                    "{}'s PeerConnection did not negotiate {}, the codec this \
                                     track carries, so its packets are not forwarded to them. \
                                     The subscriber's client cannot decode it (or its answer \
                                     dropped it); publish with a codec every subscriber decodes \
                                     (VP8 and Opus are safe), or enable a backup codec",
                                    subscriber.spec.identity,
                                    spec_name(in_params, in_is_red)
                                );
                            }
                            continue;
                        };
                        sub.pt_map = Some((pt, o));
                        o
                    }
                };
                let mut api = subscriber.rtc.direct_api();
                let Some(tx) = api.stream_tx_by_mid(mid, None) else {
                    continue;
                };
                let body = match &untrailed {
                    Some(b) if sub.strip_trailer => b.clone(),
                    _ => payload.clone(),
                };
                tx.write_rtp(
                    RtpWrite::new(out_pt, SeqNo::from(seq), timestamp, now, body)
                        .marker(marker)
                        .ext_vals(ext.clone())
                        .nackable(is_video),
                );
                subscriber.queue_drive(dirty);
            }
            if is_video {
                if let Some(l) = sub.fwd.wants_keyframe(&track.book, now) {
                    wanted[track.book.stream_of(l)] = true;
                }
            }
        }
        if wanted.iter().any(|w| *w) {
            let Some(publisher) = peers.get_mut(&from) else {
                return;
            };
            for (l, want) in wanted.into_iter().enumerate() {
                if want {
                    request_layer_keyframe(track, publisher, l, now, dirty);
                }
            }
        }
    }

    /// A subscriber lost a picture: ask the publisher for a keyframe.
    pub(crate) fn on_keyframe_request(&mut self, subscriber: PeerKey, mid: Mid) {
        let Some(track) = self
            .peers
            .get(&subscriber)
            .and_then(|p| p.sending.get(&mid).copied())
        else {
            return;
        };
        self.request_keyframe(track);
    }

    /// Asks the publisher for a keyframe on every layer someone forwards or
    /// waits for, rate-limited per layer.
    pub(crate) fn request_keyframe(&mut self, track_key: TrackKey) {
        let Shard {
            peers,
            tracks,
            dirty,
            now,
            ..
        } = self;
        let Some(track) = tracks.get_mut(&track_key) else {
            return;
        };
        if track.kind != TrackKind::Video {
            return;
        }
        let Some(publisher) = peers.get_mut(&track.publisher) else {
            return;
        };
        let now = *now;
        let mut layers = [false; MAX_LAYERS];
        for sub in &track.subs {
            if let Some(l) = sub
                .fwd
                .current_layer()
                .or_else(|| sub.fwd.target_layer(&track.book, now))
            {
                layers[track.book.stream_of(l)] = true;
            }
        }
        for (l, want) in layers.into_iter().enumerate() {
            if want {
                request_layer_keyframe(track, publisher, l, now, dirty);
            }
        }
    }
}

fn request_layer_keyframe(
    track: &mut Track,
    publisher: &mut crate::peer::Peer,
    layer: usize,
    now: Instant,
    dirty: &mut Vec<PeerKey>,
) {
    let recent = track.last_keyframe_request[layer]
        .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_REQUEST_INTERVAL);
    let Some(ssrc) = track.layer_ssrc[layer] else {
        tracing::debug!(
            track = %track.key,
            layer,
            "keyframe wanted, but the layer has sent nothing yet"
        );
        return;
    };
    if recent {
        tracing::debug!(track = %track.key, layer, "keyframe wanted, rate-limited");
        return;
    }
    if let Some(rx) = publisher.rtc.direct_api().stream_rx(&ssrc) {
        tracing::debug!(track = %track.key, layer, "keyframe requested (PLI)");
        rx.request_keyframe(KeyframeRequestKind::Pli);
        track.last_keyframe_request[layer] = Some(now);
        publisher.queue_drive(dirty);
    }
}
