//! The signaling decoder must never panic on what a WebSocket client sends:
//! binary frames, text frames and the /rtc/v1 join_request parameter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moim_proto::frame::{self, FrameFormat};

fuzz_target!(|data: &[u8]| {
    let _ = frame::decode_request(data, FrameFormat::Protobuf);
    let _ = frame::decode_request(data, FrameFormat::Json);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = frame::decode_wrapped_join_request(text);
    }
});
