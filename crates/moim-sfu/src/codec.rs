//! Just enough of each video payload format to tell where a keyframe starts.
//! The SFU never depacketizes; it only peeks at the first bytes.

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

/// True when this RTP payload begins a keyframe. Malformed or short payloads
/// are "not a keyframe", never a panic.
pub fn starts_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8_keyframe(payload),
        VideoCodec::Vp9 => vp9_keyframe(payload),
        VideoCodec::H264 => h264_keyframe(payload),
        // AV1 and unknown codecs are forwarded without layer switching, so
        // the answer only gates the very first packet; let everything pass.
        VideoCodec::Av1 | VideoCodec::Other => true,
    }
}

/// RFC 7741: payload descriptor, then the VP8 payload header whose P bit is 0
/// on a keyframe.
fn vp8_keyframe(p: &[u8]) -> bool {
    let Some(&first) = p.first() else {
        return false;
    };
    let start_of_partition = first & 0x10 != 0;
    let partition_index = first & 0x07;
    if !start_of_partition || partition_index != 0 {
        return false;
    }
    let mut i = 1;
    if first & 0x80 != 0 {
        let Some(&ext) = p.get(i) else {
            return false;
        };
        i += 1;
        if ext & 0x80 != 0 {
            // PictureID, 7 or 15 bits.
            let Some(&pid) = p.get(i) else {
                return false;
            };
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if ext & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    p.get(i).is_some_and(|b| b & 0x01 == 0)
}

/// RFC 9628 4.2: P=0 (not inter-picture predicted) and B=1 (a layer frame
/// starts), in spatial layer 0. The upper layers of a key picture are P=0
/// too, but a stream started there lacks the layer they build on.
fn vp9_keyframe(p: &[u8]) -> bool {
    let Some(&first) = p.first() else {
        return false;
    };
    if first & 0x40 != 0 || first & 0x08 == 0 {
        return false;
    }
    if first & 0x20 == 0 {
        return true; // no layer indices: one layer
    }
    // The picture ID (I), 7 or 15 bits, comes before the layer indices.
    let at = match (first & 0x80 != 0, p.get(1)) {
        (false, _) => 1,
        (true, Some(&pid)) if pid & 0x80 != 0 => 3,
        (true, Some(_)) => 2,
        (true, None) => return false,
    };
    p.get(at).is_some_and(|&layer| (layer >> 1) & 0x07 == 0)
}

/// RFC 6184: an IDR or SPS in a single NAL, a STAP-A, or the start of an FU-A.
fn h264_keyframe(p: &[u8]) -> bool {
    let Some(&first) = p.first() else {
        return false;
    };
    let is_key = |t: u8| t == 5 || t == 7;
    match first & 0x1f {
        24 => {
            let mut i = 1;
            while i + 2 < p.len() {
                let len = u16::from_be_bytes([p[i], p[i + 1]]) as usize;
                if is_key(p[i + 2] & 0x1f) {
                    return true;
                }
                i += 2 + len;
            }
            false
        }
        28 => p
            .get(1)
            .is_some_and(|&fu| fu & 0x80 != 0 && is_key(fu & 0x1f)),
        t => is_key(t),
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
