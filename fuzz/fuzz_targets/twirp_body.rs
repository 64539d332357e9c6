//! Twirp request bodies of the RoomService (`room_service.rs`): the
//! Content-Type that picks the format, then each method's request message
//! in JSON (protojson) and protobuf, decoded by `twirp::BodyFormat::decode`.
//! What decodes must re-encode to the same message.
#![no_main]

use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use moim_proto::lk;
use moim_server::fuzzing::BodyFormat;
use prost::Message;

fn check<T>(fmt: BodyFormat, body: &[u8])
where
    T: Message + Default + serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    let Ok(req) = fmt.decode::<T>(body) else { return };
    match fmt {
        BodyFormat::Protobuf => {
            let again: T = fmt.decode(&req.encode_to_vec()).expect("re-encoded protobuf");
            assert_eq!(again, req);
        }
        BodyFormat::Json => {
            let json = serde_json::to_vec(&req).expect("serialize a decoded request");
            let again: T = fmt.decode(&json).expect("re-encoded JSON");
            assert_eq!(serde_json::to_vec(&again).expect("serialize"), json);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    // High bit: the body is preceded by a Content-Type line; else the
    // low bit picks the format.
    let (fmt, body) = if sel & 0x80 != 0 {
        let (ct, body) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        let Ok(value) = HeaderValue::from_bytes(ct) else { return };
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, value);
        match BodyFormat::from_headers(&headers) {
            Ok(f) => (f, body),
            Err(_) => return,
        }
    } else if sel & 1 == 0 {
        (BodyFormat::Json, rest)
    } else {
        (BodyFormat::Protobuf, rest)
    };
    // Every request type `room_service::call` decodes.
    match (sel >> 1) % 10 {
        0 => check::<lk::CreateRoomRequest>(fmt, body),
        1 => check::<lk::ListRoomsRequest>(fmt, body),
        2 => check::<lk::DeleteRoomRequest>(fmt, body),
        3 => check::<lk::ListParticipantsRequest>(fmt, body),
        4 => check::<lk::RoomParticipantIdentity>(fmt, body),
        5 => check::<lk::MuteRoomTrackRequest>(fmt, body),
        6 => check::<lk::UpdateParticipantRequest>(fmt, body),
        7 => check::<lk::UpdateSubscriptionsRequest>(fmt, body),
        8 => check::<lk::SendDataRequest>(fmt, body),
        _ => check::<lk::UpdateRoomMetadataRequest>(fmt, body),
    }
});
