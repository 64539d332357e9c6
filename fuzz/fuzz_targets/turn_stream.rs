//! TURN over TCP/TLS (RFC 8656 §11, §12.5): the framing of the byte stream
//! into STUN messages and ChannelData, as `server/stream.rs` does it, fed in
//! chunks of a size the input picks. Every frame handed on is exactly the
//! bytes of the stream, in order, and is one frame by `frame_len`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moim_turn::fuzzing::take_frame;
use moim_turn::proto::message::frame_len;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    let mut buf = Vec::new();
    let mut taken: Vec<u8> = Vec::new();
    let mut failed = false;
    'read: for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match take_frame(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(!frame.is_empty(), "empty frame");
                    assert_eq!(frame_len(&frame), Ok(Some(frame.len())));
                    taken.extend_from_slice(&frame);
                }
                Ok(None) => {
                    // Incomplete: fewer bytes than the frame needs.
                    if let Ok(Some(n)) = frame_len(&buf) {
                        assert!(buf.len() < n);
                    }
                    break;
                }
                Err(_) => {
                    failed = true;
                    break 'read;
                }
            }
        }
    }
    // Frames, then what is still buffered, are the stream's prefix.
    taken.extend_from_slice(&buf);
    assert_eq!(&stream[..taken.len()], taken.as_slice());
    if !failed {
        assert_eq!(taken.len(), stream.len());
    }
    // Each frame also goes to the TURN core's decoders.
    let _ = moim_turn::proto::message::Message::decode(stream);
});
