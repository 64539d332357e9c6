//! LiveKit's packet trailer: per-frame metadata (a user timestamp, a frame
//! id, user data) that LiveKit's Rust-core SDKs append to each encoded video
//! frame, so it ends the frame's last RTP packet:
//!
//! ```text
//! [TLVs, each byte ^ 0xFF][trailer length ^ 0xFF]["LKTS"]
//! ```
//!
//! The length counts the whole trailer, envelope included (5..=255 bytes).
//! Clients that announce `CAP_PACKET_TRAILER` take it off before decoding;
//! for the others (browsers without frame metadata or E2EE) the SFU does,
//! as LiveKit's server does, because VP9 decoders reject bytes after a frame
//! and an E2EE receiver would read the trailer as its own.

const MAGIC: &[u8; 4] = b"LKTS";
const ENVELOPE: usize = 5;

/// How many bytes at the end of `payload` are a packet trailer; 0 if none.
/// Only the last packet of a frame (`end_of_frame`, the RTP marker) can
/// carry one.
pub fn trailer_len(payload: &[u8], end_of_frame: bool) -> usize {
    if !end_of_frame || payload.len() < ENVELOPE || !payload.ends_with(MAGIC) {
        return 0;
    }
    let len = usize::from(payload[payload.len() - ENVELOPE] ^ 0xFF);
    if len < ENVELOPE || len > payload.len() {
        return 0;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame tail with a user timestamp and a frame id, as the SDK writes it.
    fn with_trailer(frame: &[u8]) -> Vec<u8> {
        let mut tlvs = vec![0x01, 8];
        tlvs.extend_from_slice(&1_700_000_000_000_000u64.to_be_bytes());
        tlvs.extend_from_slice(&[0x02, 4]);
        tlvs.extend_from_slice(&42u32.to_be_bytes());
        let mut out = frame.to_vec();
        out.extend(tlvs.iter().map(|b| b ^ 0xFF));
        let len = (tlvs.len() + ENVELOPE) as u8;
        out.push(len ^ 0xFF);
        out.extend_from_slice(MAGIC);
        out
    }

    #[test]
    fn the_trailer_at_the_end_of_a_frame_is_found_whole() {
        let frame = [0x90u8, 0x80, 0x12, 0x34, 0x56];
        let p = with_trailer(&frame);
        assert_eq!(trailer_len(&p, true), p.len() - frame.len());
        assert_eq!(&p[..p.len() - trailer_len(&p, true)], &frame);
    }

    #[test]
    fn packets_without_a_trailer_or_mid_frame_are_left_alone() {
        let p = with_trailer(&[1, 2, 3]);
        assert_eq!(trailer_len(&p, false), 0, "not the frame's last packet");
        assert_eq!(trailer_len(&[1, 2, 3, 4, 5, 6], true), 0);
        assert_eq!(trailer_len(b"LKTS", true), 0, "too short");
    }

    #[test]
    fn a_length_that_does_not_fit_is_not_a_trailer() {
        // Length byte claims 200 bytes in a 9-byte payload.
        let p = [1, 2, 3, 4, 200 ^ 0xFF, b'L', b'K', b'T', b'S'];
        assert_eq!(trailer_len(&p, true), 0);
        // Length below the envelope's own size.
        let p = [1, 2, 3, 4, 3 ^ 0xFF, b'L', b'K', b'T', b'S'];
        assert_eq!(trailer_len(&p, true), 0);
        // Exactly the envelope: a trailer with no fields.
        let p = [9, 9, 5 ^ 0xFF, b'L', b'K', b'T', b'S'];
        assert_eq!(trailer_len(&p, true), 5);
    }
}
