//! RFC 7741: the VP8 payload descriptor and the first byte of the payload
//! header.

use super::{switch_bit, LayerInfo};

const X: u8 = 0x80; // extension byte follows
const S: u8 = 0x10; // start of a partition
const PID: u8 = 0x07; // partition index

/// Where the optional fields start, and the extension byte.
struct Descriptor {
    first: u8,
    /// `TID Y KEYIDX`, when the T or K bit is set.
    tid_byte: Option<(u8, bool)>,
    /// Index of the payload header's first byte.
    header_at: usize,
}

fn read(p: &[u8]) -> Option<Descriptor> {
    let first = *p.first()?;
    let mut i = 1;
    let mut tid_byte = None;
    if first & X != 0 {
        let ext = *p.get(i)?;
        i += 1;
        if ext & 0x80 != 0 {
            // PictureID, 7 or 15 bits.
            let pid = *p.get(i)?;
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if ext & 0x30 != 0 {
            tid_byte = Some((*p.get(i)?, ext & 0x20 != 0));
            i += 1;
        }
    }
    Some(Descriptor {
        first,
        tid_byte,
        header_at: i,
    })
}

/// The VP8 payload header's P bit is 0 on a keyframe; it is only there at
/// the start of partition 0.
pub(super) fn keyframe(p: &[u8]) -> bool {
    let Some(d) = read(p) else {
        return false;
    };
    if d.first & S == 0 || d.first & PID != 0 {
        return false;
    }
    p.get(d.header_at).is_some_and(|b| b & 0x01 == 0)
}

/// The temporal layer (TID, with Y: a frame that only refers to the base
/// layer, so a higher frame rate can be taken up from it). `None` without
/// a TID: the encoder sends one temporal layer.
pub(super) fn layers(p: &[u8]) -> Option<LayerInfo> {
    let d = read(p)?;
    let (tid_byte, has_tid) = d.tid_byte?;
    if !has_tid {
        return None;
    }
    Some(LayerInfo {
        spatial: 0,
        temporal: tid_byte >> 6,
        frame_start: d.first & S != 0 && d.first & PID == 0,
        // VP8 marks the end of a frame only with the RTP marker bit.
        frame_end: false,
        switch_up: switch_bit(tid_byte & 0x20 != 0, tid_byte >> 6),
    })
}
