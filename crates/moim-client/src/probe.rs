//! The measurement block that synthetic media carries after its codec header.
//!
//! Layout: 4-byte magic `MoIm`, then the send time as big-endian microseconds since the Unix
//! epoch. Publisher and subscriber on one machine share that clock, so the difference is the
//! end-to-end latency through the SFU. The receiver finds the block by scanning the first bytes
//! of the payload, which makes it independent of the codec header's length.

use std::time::{SystemTime, UNIX_EPOCH};

/// Marks the start of the measurement block.
pub const MAGIC: [u8; 4] = *b"MoIm";
/// Length of the block: magic plus timestamp.
pub const BLOCK_LEN: usize = 12;
/// How far into a payload the receiver looks for [`MAGIC`].
const SCAN_LIMIT: usize = 64;

/// Microseconds since the Unix epoch, the clock the block uses.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Append the block for `send_micros` to `buf`.
pub fn write_block(buf: &mut Vec<u8>, send_micros: u64) {
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&send_micros.to_be_bytes());
}

/// Find the block in `payload` and return its send time.
pub fn read_block(payload: &[u8]) -> Option<u64> {
    let window = &payload[..payload.len().min(SCAN_LIMIT + BLOCK_LEN)];
    let pos = window.windows(MAGIC.len()).position(|w| w == MAGIC)?;
    let ts = payload.get(pos + MAGIC.len()..pos + BLOCK_LEN)?;
    Some(u64::from_be_bytes(ts.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_round_trips_after_any_codec_header() {
        for header_len in [0usize, 1, 6, 9, 16, 40] {
            let mut p = vec![0xAB; header_len];
            write_block(&mut p, 1_700_000_000_123_456);
            p.extend_from_slice(&[0u8; 900]);
            assert_eq!(
                read_block(&p),
                Some(1_700_000_000_123_456),
                "header {header_len}"
            );
        }
    }

    #[test]
    fn missing_or_truncated_block_reads_as_none() {
        assert_eq!(read_block(&[0u8; 200]), None);
        let mut p = vec![1, 2, 3];
        p.extend_from_slice(&MAGIC);
        p.extend_from_slice(&[0, 0, 1]);
        assert_eq!(read_block(&p), None);
    }
}
