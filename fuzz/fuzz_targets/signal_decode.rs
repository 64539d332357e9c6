//! The signaling decoder must never panic on what a WebSocket client sends:
//! binary frames, text frames and the /rtc/v1 join_request parameter.
//! Whatever decodes must re-encode to something that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moim_proto::frame::{self, FrameFormat};
use moim_proto::lk;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = frame::decode_request(data, FrameFormat::Protobuf) {
        let req = lk::SignalRequest { message: Some(msg) };
        let bytes = req.encode_to_vec();
        let again = frame::decode_request(&bytes, FrameFormat::Protobuf).expect("re-encoded frame");
        assert_eq!(Some(again), req.message);
    }
    if let Ok(msg) = frame::decode_request(data, FrameFormat::Json) {
        // Compared as JSON text: a float may be NaN, which is not equal to itself.
        let req = lk::SignalRequest { message: Some(msg) };
        let json = serde_json::to_vec(&req).expect("serialize a decoded request");
        let again = frame::decode_request(&json, FrameFormat::Json).expect("re-encoded JSON frame");
        let req2 = lk::SignalRequest { message: Some(again) };
        assert_eq!(serde_json::to_vec(&req2).expect("serialize"), json);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = frame::decode_wrapped_join_request(text);
    }
});
