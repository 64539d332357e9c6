//! ICE-TCP (RFC 4571): the media plane's `Framer` on an arbitrary byte
//! stream cut into arbitrary pieces, and the first frame's STUN USERNAME
//! lookup that routes the connection to a shard (`stun::local_ufrag`, also
//! used on every UDP datagram from an unknown address).
#![no_main]

use libfuzzer_sys::fuzz_target;
use moim_sfu::fuzzing::Framer;
use moim_sfu::stun;

fn check_ufrag(frame: &[u8]) {
    if let Some(ufrag) = stun::local_ufrag(frame) {
        assert!(stun::is_stun(frame));
        assert!(!ufrag.contains(':'));
        // Borrowed from inside the frame's attributes.
        let start = ufrag.as_ptr() as usize - frame.as_ptr() as usize;
        assert!(start >= 24 && start + ufrag.len() <= frame.len());
    }
}

fuzz_target!(|input: &[u8]| {
    // The first byte picks how the stream is cut into reads.
    let Some((&cut, data)) = input.split_first() else {
        return;
    };
    let piece = usize::from(cut % 31) + 1;
    check_ufrag(data);
    let mut framer = Framer::new(usize::from(u16::MAX));
    let mut frames = Vec::new();
    for chunk in data.chunks(piece) {
        let mut rest = chunk;
        while !rest.is_empty() {
            let (used, frame) = framer.feed(rest).expect("a u16 length always fits");
            assert!(used <= rest.len());
            if let Some(f) = frame {
                frames.push(f);
            } else {
                assert_eq!(used, rest.len(), "an incomplete frame takes every byte offered");
            }
            rest = &rest[used..];
        }
    }
    // The frames are exactly the length-prefixed pieces of the stream.
    let mut at = 0;
    for f in &frames {
        let len = usize::from(u16::from_be_bytes([data[at], data[at + 1]]));
        assert_eq!(len, f.len());
        assert_eq!(&data[at + 2..at + 2 + len], f.as_slice());
        at += 2 + len;
        check_ufrag(f);
    }
    assert!(at <= data.len());
});
