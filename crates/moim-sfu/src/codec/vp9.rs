//! RFC 9628: the VP9 payload descriptor, up to its layer indices.

use super::{switch_bit, LayerInfo};

const I: u8 = 0x80; // a picture ID follows
const P: u8 = 0x40; // inter-picture predicted
const L: u8 = 0x20; // layer indices follow
const B: u8 = 0x08; // a layer frame starts
const E: u8 = 0x04; // a layer frame ends

/// The first descriptor byte and the layer-index byte, if any.
fn read(p: &[u8]) -> Option<(u8, Option<u8>)> {
    let first = *p.first()?;
    if first & L == 0 {
        return Some((first, None));
    }
    // The picture ID, 7 or 15 bits, comes before the layer indices.
    let at = match (first & I != 0, p.get(1)) {
        (false, _) => 1,
        (true, Some(&pid)) if pid & 0x80 != 0 => 3,
        (true, Some(_)) => 2,
        (true, None) => return None,
    };
    Some((first, Some(*p.get(at)?)))
}

/// 4.2: P=0 (not inter-picture predicted) and B=1 (a layer frame starts),
/// in spatial layer 0. The upper layers of a key picture are P=0 too, but
/// a stream started there lacks the layer they build on.
pub(super) fn keyframe(p: &[u8]) -> bool {
    match read(p) {
        Some((first, _)) if first & P != 0 || first & B == 0 => false,
        Some((_, None)) => true, // no layer indices: one layer
        Some((_, Some(layer))) => (layer >> 1) & 0x07 == 0,
        None => false,
    }
}

/// The layer indices (`TID U SID D`), or `None` when the packet carries
/// none (a stream of one layer) or is cut short.
pub(super) fn layers(p: &[u8]) -> Option<LayerInfo> {
    let (first, layer) = read(p)?;
    let layer = layer?;
    Some(LayerInfo {
        spatial: (layer >> 1) & 0x07,
        temporal: layer >> 5,
        frame_start: first & B != 0,
        frame_end: first & E != 0,
        switch_up: switch_bit(layer & 0x10 != 0, layer >> 5),
    })
}
