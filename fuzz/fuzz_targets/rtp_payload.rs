//! What the media plane reads out of a publisher's RTP packets itself
//! (str0m parses the rest): LiveKit's packet trailer at the end of a frame's
//! last payload, and the AV1 dependency descriptor extension's value, which
//! is kept and written back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moim_sfu::{dd, packet_trailer};
use str0m::rtp::{Extension, ExtensionValues};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, payload)) = data.split_first() else { return };

    let marker = sel & 1 == 1;
    let n = packet_trailer::trailer_len(payload, marker);
    if n != 0 {
        assert!(marker, "a trailer only on a frame's last packet");
        assert!((5..=255).contains(&n) && n <= payload.len(), "trailer of {n} bytes in {}", payload.len());
        assert!(payload.ends_with(b"LKTS"));
    }

    let Extension::UnknownUri(uri, serializer) = dd::extension() else {
        panic!("the dependency descriptor is a user extension");
    };
    assert_eq!(uri, dd::URI);
    let mut ev = ExtensionValues::default();
    if serializer.parse_value(payload, &mut ev) {
        let _ = serializer.requires_two_byte_form(&ev);
        let room = usize::from(sel >> 1) * 2;
        let mut out = vec![0u8; room];
        let w = serializer.write_to(&mut out, &ev);
        assert!(w <= room);
        if payload.len() <= 255 && payload.len() <= room {
            assert_eq!(&out[..w], payload, "written back byte for byte");
        } else {
            assert_eq!(w, 0);
        }
    }
});
