//! Publishing: a participant announces a track (`AddTrackRequest`), and the
//! room answers with its `TrackInfo` and tells the media plane to expect it.

use moim_proto::lk::{self, signal_response::Message as Resp};
use moim_sfu::codec::VideoCodec;
use moim_sfu::{Command, TrackKind};
use tracing::warn;

use super::core::RoomCore;
use super::error::RoomError;
use super::participant::{source_name, ParticipantKey, PublishedTrack};
use super::wire;

/// Tracks one participant may publish at once.
const MAX_TRACKS: usize = 16;

impl RoomCore {
    pub(super) fn add_track(&mut self, key: ParticipantKey, req: lk::AddTrackRequest) {
        if let Err(e) = self.try_add_track(key, req) {
            if let Some(p) = self.participants.get(&key) {
                self.out.tell(p, wire::refused(0, &e));
            }
        }
    }

    // TrackInfo still carries fields livekit-client reads though the proto
    // marks them deprecated (simulcast, layers, stereo, disable_dtx).
    #[allow(deprecated)]
    fn try_add_track(
        &mut self,
        key: ParticipantKey,
        req: lk::AddTrackRequest,
    ) -> Result<(), RoomError> {
        let Some(p) = self.participants.get_mut(&key) else {
            return Ok(());
        };
        let source = lk::TrackSource::try_from(req.source).unwrap_or(lk::TrackSource::Unknown);
        let allowed = match source {
            lk::TrackSource::Unknown => p.grant.can_publish(),
            s => p.grant.can_publish_source(source_name(s)),
        };
        if !allowed {
            warn!(identity = %p.identity, source = source_name(source), "publish refused by the token's grants");
            return Err(RoomError::NotAllowed(format!(
                "this token does not allow publishing {}",
                source_name(source)
            )));
        }
        if p.tracks.len() >= MAX_TRACKS {
            return Err(RoomError::LimitExceeded(format!(
                "a participant may publish at most {MAX_TRACKS} tracks"
            )));
        }
        let kind = if req.r#type == lk::TrackType::Video as i32 {
            TrackKind::Video
        } else {
            TrackKind::Audio
        };
        let track = self.ids.track_key();
        let sid = self.ids.track_sid();
        // The first simulcast codec is the primary one; a second is a backup
        // the client publishes only when asked to, which moim never does.
        let codec = match kind {
            TrackKind::Audio => None,
            TrackKind::Video => req
                .simulcast_codecs
                .iter()
                .find(|c| !c.codec.is_empty())
                .and_then(|c| VideoCodec::from_name(&c.codec)),
        };
        // What the client asked for; once the answer is written, the
        // section's leading codec replaces it (`track_bound`).
        let mime = match kind {
            TrackKind::Audio => "audio/opus",
            TrackKind::Video => codec
                .unwrap_or(VideoCodec::Vp8)
                .mime()
                .unwrap_or("video/VP8"),
        }
        .to_string();
        let info = lk::TrackInfo {
            sid: sid.clone(),
            r#type: req.r#type,
            name: req.name.clone(),
            muted: req.muted,
            width: req.width,
            height: req.height,
            simulcast: req.layers.len() > 1,
            disable_dtx: req.disable_dtx,
            source: req.source,
            layers: req.layers.clone(),
            mime_type: mime.clone(),
            codecs: vec![lk::SimulcastCodecInfo {
                mime_type: mime,
                cid: req.cid.clone(),
                layers: req.layers.clone(),
                ..Default::default()
            }],
            stereo: req.stereo,
            disable_red: req.disable_red,
            encryption: req.encryption,
            stream: req.stream.clone(),
            audio_features: req.audio_features.clone(),
            backup_codec_policy: req.backup_codec_policy,
            // Subscribers look here to know the frames carry a trailer to
            // take off before decoding.
            packet_trailer_features: dedup(&req.packet_trailer_features),
            ..Default::default()
        };
        p.tracks.push(PublishedTrack {
            key: track,
            info: info.clone(),
            bound: false,
            layers: req.layers.clone(),
            client_codec: req
                .simulcast_codecs
                .iter()
                .map(|c| c.codec.to_ascii_lowercase())
                .find(|c| !c.is_empty())
                .unwrap_or_default(),
        });
        let peer = p.publisher;
        self.out.tell(
            p,
            Resp::TrackPublished(lk::TrackPublishedResponse {
                cid: req.cid.clone(),
                track: Some(info),
            }),
        );
        self.out.media(Command::ExpectTrack {
            peer,
            track,
            track_sid: sid,
            cid: req.cid,
            kind,
            codec,
            packet_trailer: !req.packet_trailer_features.is_empty(),
            screen_share: source == lk::TrackSource::ScreenShare,
        });
        Ok(())
    }
}

/// `values` without repeats, in their first order.
fn dedup(values: &[i32]) -> Vec<i32> {
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        if !out.contains(v) {
            out.push(*v);
        }
    }
    out
}
