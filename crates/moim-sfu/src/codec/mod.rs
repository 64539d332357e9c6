//! Just enough of each video payload format to tell where a keyframe starts
//! and which layers a packet belongs to. The SFU never depacketizes; it only
//! peeks at the first bytes.

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
/// and temporal layers (SVC), VP8's temporal layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerInfo {
    pub spatial: u8,
    pub temporal: u8,
    /// The packet begins a layer frame (one spatial layer of a picture).
    pub frame_start: bool,
    /// The packet ends a layer frame. VP8 does not say; its marker bit does.
    pub frame_end: bool,
    /// Frames of higher temporal layers after this one do not refer to any
    /// before it: a higher frame rate can be taken up here.
    pub switch_up: bool,
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
                switch_up: true,
            })
        );
        // P=1 E=1, 7-bit picture id, TID=0 SID=2.
        let end = layer_info(VideoCodec::Vp9, &[0xe4, 0x05, 0x04]).expect("layers");
        assert_eq!((end.spatial, end.temporal), (2, 0));
        assert!(end.frame_end && !end.frame_start && !end.switch_up);
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
        assert!(info.frame_start && info.switch_up);
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
