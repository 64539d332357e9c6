//! The one-port listener's first look at a connection: any bytes get a
//! verdict, and a verdict never changes as more bytes arrive, except from
//! "need more".
#![no_main]

use libfuzzer_sys::fuzz_target;
use moim_server::port_mux::{classify, is_turn_inside_tls, Kind, DECIDING_BYTES};

fuzz_target!(|data: &[u8]| {
    let full = classify(&data[..data.len().min(DECIDING_BYTES)]);
    for n in 0..data.len().min(DECIDING_BYTES) {
        let early = classify(&data[..n]);
        assert!(early == Kind::NeedMore || early == full, "{n}: {early:?} then {full:?}");
    }
    if data.len() >= DECIDING_BYTES {
        assert_ne!(full, Kind::NeedMore);
    }
    let _ = is_turn_inside_tls(data.get(1..), data.first().copied());
});
