//! One track we publish: the `AddTrackRequest` that announces it, the generators of its
//! synthetic media, and how far its negotiation got (sid, then mid, then payload type).

use std::time::Instant;

use livekit_protocol as proto;
use str0m::change::DirectApi;
use str0m::format::Codec;
use str0m::media::{MediaKind, Mid, Pt, Rid, Simulcast, SimulcastLayer};
use str0m::rtp::RtpWrite;

use super::outbox::RequestId;
use crate::event::TrackKind;
use crate::media::{AudioOptions, LayerGen, PayloadKind, VideoCodec, VideoOptions};
use crate::probe;

pub(crate) struct Layer {
    pub rid: Option<Rid>,
    pub gen: LayerGen,
    pub ssrc: Option<u32>,
}

pub(crate) struct Publication {
    pub cid: String,
    /// From `TrackPublishedResponse`.
    pub info: Option<proto::TrackInfo>,
    pub kind: PayloadKind,
    pub simulcast: bool,
    pub layers: Vec<Layer>,
    /// Set when the track's m-line goes into an offer.
    pub mid: Option<Mid>,
    /// Set when the server's answer accepted our codec; media flows from then on.
    pub pt: Option<Pt>,
    /// Who waits for the [`crate::LocalTrack`]; `None` once answered.
    pub answer_to: Option<RequestId>,
}

/// One sent packet, for the send counters: (ssrc, payload bytes, starts a keyframe).
pub(crate) type SentPacket = (u32, usize, bool);

fn random_cid() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Publication {
    pub fn audio(o: &AudioOptions, answer_to: RequestId) -> (proto::AddTrackRequest, Self) {
        let cid = random_cid();
        let req = proto::AddTrackRequest {
            cid: cid.clone(),
            name: o.name.clone(),
            r#type: proto::TrackType::Audio as i32,
            source: proto::TrackSource::Microphone as i32,
            ..Default::default()
        };
        let publication = Self {
            cid,
            info: None,
            kind: PayloadKind::Opus,
            simulcast: false,
            layers: vec![Layer {
                rid: None,
                gen: LayerGen::audio(o.packet_bytes),
                ssrc: None,
            }],
            mid: None,
            pt: None,
            answer_to: Some(answer_to),
        };
        (req, publication)
    }

    pub fn video(o: &VideoOptions, answer_to: RequestId) -> (proto::AddTrackRequest, Self) {
        let cid = random_cid();
        let layers = o.layers();
        let req = proto::AddTrackRequest {
            cid: cid.clone(),
            name: o.name.clone(),
            r#type: proto::TrackType::Video as i32,
            source: proto::TrackSource::Camera as i32,
            width: o.width,
            height: o.height,
            layers: layers
                .iter()
                .map(|l| proto::VideoLayer {
                    quality: l.quality,
                    width: l.width,
                    height: l.height,
                    bitrate: l.bitrate_bps,
                    rid: l.rid.unwrap_or("").to_owned(),
                    ..Default::default()
                })
                .collect(),
            simulcast_codecs: vec![proto::SimulcastCodec {
                codec: o.codec.name().into(),
                cid: cid.clone(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let publication = Self {
            cid,
            info: None,
            kind: PayloadKind::Video(o.codec),
            simulcast: o.simulcast,
            layers: layers
                .iter()
                .map(|l| Layer {
                    rid: l.rid.map(Rid::from),
                    gen: LayerGen::video(o.codec, l, o),
                    ssrc: None,
                })
                .collect(),
            mid: None,
            pt: None,
            answer_to: Some(answer_to),
        };
        (req, publication)
    }

    pub fn sid(&self) -> String {
        self.info
            .as_ref()
            .map(|i| i.sid.clone())
            .unwrap_or_default()
    }

    pub fn track_kind(&self) -> TrackKind {
        match self.kind {
            PayloadKind::Opus => TrackKind::Audio,
            PayloadKind::Video(_) => TrackKind::Video,
        }
    }

    pub fn media_kind(&self) -> MediaKind {
        match self.kind {
            PayloadKind::Opus => MediaKind::Audio,
            PayloadKind::Video(_) => MediaKind::Video,
        }
    }

    pub fn codec(&self) -> Codec {
        match self.kind {
            PayloadKind::Opus => Codec::Opus,
            PayloadKind::Video(VideoCodec::Vp8) => Codec::Vp8,
            PayloadKind::Video(VideoCodec::H264) => Codec::H264,
        }
    }

    /// The send layers for the offer's `a=simulcast`, if the track has several.
    pub fn simulcast_layers(&self) -> Option<Simulcast> {
        self.simulcast.then(|| {
            let mut s = Simulcast::new();
            for l in &self.layers {
                if let Some(rid) = &l.rid {
                    s.add_send_layer(SimulcastLayer::new(rid));
                }
            }
            s
        })
    }

    /// When the next frame of any layer is due, once media may flow; a layer that never sent
    /// is due at `now`.
    pub fn next_frame_due(&self, now: Instant) -> Option<Instant> {
        self.pt?;
        self.layers
            .iter()
            .map(|l| l.gen.next_due().unwrap_or(now))
            .min()
    }

    /// On PLI/FIR: `rid` `None` asks every layer.
    pub fn request_keyframe(&mut self, rid: Option<Rid>) {
        for l in &mut self.layers {
            if rid.is_none() || l.rid == rid {
                l.gen.request_keyframe();
            }
        }
    }

    /// Write the frames due at `now` of every layer, stamped with the wall clock the
    /// receiver compares against.
    pub fn write_due_frames(
        &mut self,
        now: Instant,
        api: &mut DirectApi,
        sent: &mut Vec<SentPacket>,
    ) {
        let (Some(mid), Some(pt)) = (self.mid, self.pt) else {
            return;
        };
        let video = matches!(self.kind, PayloadKind::Video(_));
        for l in &mut self.layers {
            if !l.gen.is_due(now) {
                continue;
            }
            let pkts = l.gen.next_frame(now, probe::now_micros());
            let Some(tx) = api.stream_tx_by_mid(mid, l.rid) else {
                continue;
            };
            for p in pkts {
                sent.push((*tx.ssrc(), p.payload.len(), p.keyframe && p.marker));
                tx.write_rtp(
                    RtpWrite::new(pt, p.seq.into(), p.rtp_time, now, p.payload)
                        .marker(p.marker)
                        .nackable(video),
                );
            }
        }
    }
}
