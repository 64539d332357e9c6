/// RFC 6184: an IDR or SPS in a single NAL, a STAP-A, or the start of an FU-A.
pub(super) fn keyframe(p: &[u8]) -> bool {
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
