//! Just enough of each video payload format to tell where a keyframe starts
//! and which layers a packet belongs to. The SFU never depacketizes; it only
//! peeks at the first bytes.

pub mod dd;
mod h264;
mod vp8;
mod vp9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    Vp9,
    H264,
    Av1,
    Other,
}

impl VideoCodec {
    /// From the codec names livekit-client puts in
    /// `AddTrackRequest.simulcast_codecs` ("vp8", "h264", …) or an SDP
    /// rtpmap encoding name ("H264"), in any case.
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.strip_prefix("video/").unwrap_or(name);
        match name.to_ascii_lowercase().as_str() {
            "vp8" => Some(Self::Vp8),
            "vp9" => Some(Self::Vp9),
            "h264" => Some(Self::H264),
            "av1" => Some(Self::Av1),
            _ => None,
        }
    }

    /// The encoding name in an SDP `a=rtpmap` line.
    pub fn sdp_name(self) -> Option<&'static str> {
        match self {
            Self::Vp8 => Some("VP8"),
            Self::Vp9 => Some("VP9"),
            Self::H264 => Some("H264"),
            Self::Av1 => Some("AV1"),
            Self::Other => None,
        }
    }

    /// The mime type LiveKit's `TrackInfo` uses.
    pub fn mime(self) -> Option<&'static str> {
        match self {
            Self::Vp8 => Some("video/VP8"),
            Self::Vp9 => Some("video/VP9"),
            Self::H264 => Some("video/H264"),
            Self::Av1 => Some("video/AV1"),
            Self::Other => None,
        }
    }
}

/// Where one packet sits in a stream with layers inside it: VP9's spatial
/// and temporal layers (SVC), VP8's temporal layers, and any codec's
/// layers as its dependency descriptor tells them (AV1 SVC; VP8 and H.264
/// once Chromium has negotiated the descriptor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerInfo {
    pub spatial: u8,
    pub temporal: u8,
    /// The packet begins a layer frame (one spatial layer of a picture).
    pub frame_start: bool,
    /// The packet ends a layer frame. VP8 does not say; its marker bit does.
    pub frame_end: bool,
    /// Bit `t` set: from this frame on, temporal layers up to `t` decode
    /// without any frame before it that a subscriber below `t` did not
    /// get, so a higher frame rate can be taken up here.
    pub switch_up: u8,
}

/// The `switch_up` mask of a payload descriptor's one switching-up flag
/// (VP9 `U`, VP8 `Y`), which opens the frame's own temporal layer.
pub(crate) fn switch_bit(flag: bool, temporal: u8) -> u8 {
    if flag {
        1 << temporal.min(7)
    } else {
        0
    }
}

/// What the SFU reads of one video packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketView {
    pub keyframe_start: bool,
    pub layers: Option<LayerInfo>,
    /// A subscriber may begin on this stream only at a keyframe. False
    /// where nothing says where one starts (AV1 without a dependency
    /// descriptor, unknown codecs): those pass from any packet.
    pub needs_keyframe: bool,
}

/// Reads the video packets of one RTP stream. The dependency descriptor,
/// when the publisher sends one, names layers and keyframes for every
/// codec but VP9 (whose payload descriptor says it all, and which
/// Chromium describes in both); it sends its template structure once per
/// keyframe, so the reader keeps the latest.
#[derive(Debug, Default)]
pub struct StreamReader {
    structure: Option<dd::Structure>,
    /// The structure's (spatial, temporal) layer count, worked out once.
    layer_count: (u8, u8),
}

impl StreamReader {
    /// `descriptor`: the packet's dependency descriptor value, if any.
    pub fn read(
        &mut self,
        codec: VideoCodec,
        payload: &[u8],
        descriptor: Option<&[u8]>,
    ) -> PacketView {
        if codec != VideoCodec::Vp9 {
            if let Some(view) = descriptor.and_then(|d| self.read_descriptor(codec, payload, d)) {
                return view;
            }
        }
        PacketView {
            keyframe_start: starts_keyframe(codec, payload),
            layers: layer_info(codec, payload),
            needs_keyframe: !matches!(codec, VideoCodec::Av1 | VideoCodec::Other),
        }
    }

    /// `None` when the descriptor cannot be read (its structure was lost,
    /// or it is malformed): the payload alone decides then.
    fn read_descriptor(
        &mut self,
        codec: VideoCodec,
        payload: &[u8],
        value: &[u8],
    ) -> Option<PacketView> {
        let mut d = dd::parse(value, self.structure.as_ref()).ok()?;
        if let Some(s) = d.structure.take() {
            self.layer_count = s.layer_count();
            self.structure = Some(s);
        }
        let s = self.structure.as_ref()?;
        // A frame that refers to no other, in the lowest spatial layer, is
        // where a decoder can begin.
        let intra = d.start_of_frame && d.spatial_id == 0 && d.fdiffs.is_empty();
        let keyframe_start = match codec {
            VideoCodec::Av1 | VideoCodec::Other => intra,
            _ => starts_keyframe(codec, payload),
        };
        let (spatial, temporal) = self.layer_count;
        let layers = (spatial > 1 || temporal > 1).then(|| {
            // Decode targets of the frame's own spatial layer: which of
            // them may be taken up from this frame.
            let mut switch_up = 0u8;
            for (dt, &(ds, dt_temporal)) in s.decode_target_layers.iter().enumerate() {
                if ds == d.spatial_id && dt_temporal < 8 && d.is_switch_for(dt) {
                    switch_up |= 1 << dt_temporal;
                }
            }
            LayerInfo {
                spatial: d.spatial_id,
                temporal: d.temporal_id,
                frame_start: d.start_of_frame,
                frame_end: d.end_of_frame,
                switch_up,
            }
        });
        Some(PacketView {
            keyframe_start,
            layers,
            needs_keyframe: true,
        })
    }
}

/// The layers of this RTP payload, or `None` when it carries no layer
/// indices (one layer) or is malformed.
pub fn layer_info(codec: VideoCodec, payload: &[u8]) -> Option<LayerInfo> {
    match codec {
        VideoCodec::Vp8 => vp8::layers(payload),
        VideoCodec::Vp9 => vp9::layers(payload),
        // H.264 says nothing in its payload; AV1 says it in the dependency
        // descriptor (`dd.rs`).
        VideoCodec::H264 | VideoCodec::Av1 | VideoCodec::Other => None,
    }
}

/// True when this RTP payload begins a keyframe. Malformed or short payloads
/// are "not a keyframe", never a panic.
pub fn starts_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8::keyframe(payload),
        VideoCodec::Vp9 => vp9::keyframe(payload),
        VideoCodec::H264 => h264::keyframe(payload),
        // AV1 and unknown codecs are forwarded without layer switching, so
        // the answer only gates the very first packet; let everything pass.
        VideoCodec::Av1 | VideoCodec::Other => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_is_found_behind_an_extended_descriptor() {
        // X=1,S=1,PID=0 | I=1,L=1 | 15-bit picture id | tl0 | P=0
        assert!(starts_keyframe(
            VideoCodec::Vp8,
            &[0x90, 0xc0, 0x81, 0x02, 0x05, 0x00]
        ));
        // Same, but P=1: a delta frame.
        assert!(!starts_keyframe(
            VideoCodec::Vp8,
            &[0x90, 0xc0, 0x81, 0x02, 0x05, 0x01]
        ));
        // Not the start of partition 0.
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x80, 0x00, 0x00]));
    }

    #[test]
    fn a_vp9_key_picture_starts_in_spatial_layer_0() {
        // I=1 L=1 B=1, P=0 | 15-bit picture id | TID=0 SID=0 | TL0PICIDX
        assert!(starts_keyframe(
            VideoCodec::Vp9,
            &[0xa8, 0x81, 0x02, 0x00, 0x05]
        ));
        // The same picture's spatial layer 1 (SID=1, D=1) is not a start.
        assert!(!starts_keyframe(
            VideoCodec::Vp9,
            &[0xa8, 0x81, 0x02, 0x03, 0x05]
        ));
        // 7-bit picture id, SID=0.
        assert!(starts_keyframe(VideoCodec::Vp9, &[0xa8, 0x05, 0x00, 0x01]));
        // No layer indices: a single-layer stream.
        assert!(starts_keyframe(VideoCodec::Vp9, &[0x88, 0x05]));
        // Inter-predicted, or not a frame start, or cut short.
        assert!(!starts_keyframe(VideoCodec::Vp9, &[0xe8, 0x05, 0x00]));
        assert!(!starts_keyframe(VideoCodec::Vp9, &[0xa0, 0x05, 0x00]));
        assert!(!starts_keyframe(VideoCodec::Vp9, &[0xa8, 0x81]));
        assert!(!starts_keyframe(VideoCodec::Vp9, &[]));
    }

    #[test]
    fn vp9_layer_indices_are_read_behind_the_picture_id() {
        // I=1 L=1 B=1 E=0 | 15-bit picture id | TID=2 U=1 SID=1 D=1
        assert_eq!(
            layer_info(VideoCodec::Vp9, &[0xa8, 0x81, 0x02, 0x53, 0x05]),
            Some(LayerInfo {
                spatial: 1,
                temporal: 2,
                frame_start: true,
                frame_end: false,
                switch_up: 0b100,
            })
        );
        // P=1 E=1, 7-bit picture id, TID=0 SID=2.
        let end = layer_info(VideoCodec::Vp9, &[0xe4, 0x05, 0x04]).expect("layers");
        assert_eq!((end.spatial, end.temporal), (2, 0));
        assert!(end.frame_end && !end.frame_start && end.switch_up == 0);
        // No layer indices, or cut short before them.
        assert_eq!(layer_info(VideoCodec::Vp9, &[0x88, 0x05]), None);
        assert_eq!(layer_info(VideoCodec::Vp9, &[0xa8, 0x81, 0x02]), None);
        assert_eq!(layer_info(VideoCodec::Vp9, &[]), None);
    }

    #[test]
    fn vp8_temporal_layers_come_from_the_tid_byte() {
        // X=1 S=1 | I=1 L=1 T=1 | 15-bit pid | TL0PICIDX | TID=2 Y=1 | header
        let info = layer_info(VideoCodec::Vp8, &[0x90, 0xe0, 0x81, 0x02, 0x05, 0xa0, 0x01])
            .expect("layers");
        assert_eq!((info.spatial, info.temporal), (0, 2));
        assert!(info.frame_start && info.switch_up == 0b100);
        // K without T: a KEYIDX but no temporal layer.
        assert_eq!(layer_info(VideoCodec::Vp8, &[0x90, 0x10, 0x05, 0x00]), None);
        // No extension at all, or cut short inside it.
        assert_eq!(layer_info(VideoCodec::Vp8, &[0x10, 0x00]), None);
        assert_eq!(layer_info(VideoCodec::Vp8, &[0x90, 0xe0, 0x81]), None);
    }

    #[test]
    fn h264_idr_stap_and_fu_starts_are_keyframes() {
        assert!(starts_keyframe(VideoCodec::H264, &[0x65, 0x88]));
        assert!(!starts_keyframe(VideoCodec::H264, &[0x41, 0x88]));
        // STAP-A carrying SPS (7).
        assert!(starts_keyframe(
            VideoCodec::H264,
            &[0x18, 0x00, 0x02, 0x67, 0x42]
        ));
        // FU-A start of an IDR.
        assert!(starts_keyframe(VideoCodec::H264, &[0x7c, 0x85, 0x00]));
        // FU-A middle of an IDR.
        assert!(!starts_keyframe(VideoCodec::H264, &[0x7c, 0x05, 0x00]));
    }

    #[test]
    fn short_or_empty_payloads_are_not_keyframes() {
        for codec in [VideoCodec::Vp8, VideoCodec::Vp9, VideoCodec::H264] {
            assert!(!starts_keyframe(codec, &[]));
        }
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x90, 0xc0]));
        assert!(!starts_keyframe(VideoCodec::H264, &[0x18, 0xff]));
    }
}
