//! Signal frames on the WebSocket: protobuf in binary frames, protojson in
//! text frames. A client is answered in the format it last spoke.

use livekit_protocol as lk;
use prost::Message;

/// The largest signal frame moim accepts, as LiveKit does (2 MiB).
pub const MAX_FRAME_BYTES: usize = 2 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameFormat {
    #[default]
    Protobuf,
    Json,
}

/// A frame that could not be understood. The text goes back to the client
/// and into the log, so it names what was wrong with the frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("signal frame of {len} bytes exceeds the {max} byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("binary signal frame is not a valid protobuf SignalRequest: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("text signal frame is not a valid JSON SignalRequest: {0}")]
    Json(#[from] serde_json::Error),
    #[error("SignalRequest carries no message (unknown or empty request)")]
    Empty,
}

/// Decodes one client frame. `Ok` always carries a message: an unknown or
/// empty request is an error, so callers never act on nothing.
pub fn decode_request(
    bytes: &[u8],
    format: FrameFormat,
) -> Result<lk::signal_request::Message, FrameError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len: bytes.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    let request: lk::SignalRequest = match format {
        FrameFormat::Protobuf => lk::SignalRequest::decode(bytes)?,
        FrameFormat::Json => serde_json::from_slice(bytes)?,
    };
    request.message.ok_or(FrameError::Empty)
}

/// Encodes one server frame in the given format.
pub fn encode_response(message: lk::signal_response::Message, format: FrameFormat) -> Vec<u8> {
    let response = lk::SignalResponse {
        message: Some(message),
    };
    match format {
        FrameFormat::Protobuf => response.encode_to_vec(),
        // Serializing a prost struct with pbjson cannot fail: no maps with
        // non-string keys, no floats that are NaN by construction.
        FrameFormat::Json => serde_json::to_vec(&response).unwrap_or_default(),
    }
}

/// Decodes the base64url `join_request` query parameter of `/rtc/v1`.
pub fn decode_wrapped_join_request(param: &str) -> Result<lk::JoinRequest, JoinRequestError> {
    use base64::Engine;
    let trimmed = param.trim_end_matches('=');
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
        .map_err(|_| JoinRequestError::Base64)?;
    let wrapped = lk::WrappedJoinRequest::decode(raw.as_slice())?;
    use lk::wrapped_join_request::Compression;
    match Compression::try_from(wrapped.compression) {
        Ok(Compression::None) => Ok(lk::JoinRequest::decode(wrapped.join_request.as_slice())?),
        Ok(Compression::Gzip) => {
            use std::io::Read;
            // Bounded: a small gzip bomb must not become a large allocation.
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(wrapped.join_request.as_slice())
                .take(MAX_FRAME_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|_| JoinRequestError::Gzip)?;
            if out.len() > MAX_FRAME_BYTES {
                return Err(JoinRequestError::Gzip);
            }
            Ok(lk::JoinRequest::decode(out.as_slice())?)
        }
        Err(_) => Err(JoinRequestError::Compressed),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JoinRequestError {
    #[error("join_request is not base64url")]
    Base64,
    #[error("join_request is not a valid WrappedJoinRequest/JoinRequest protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("join_request uses a compression moim does not know; send it uncompressed or gzip")]
    Compressed,
    #[error("join_request is not valid gzip or inflates past the 2 MiB frame limit")]
    Gzip,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_and_json_frames_carry_the_same_request() {
        let ping = lk::SignalRequest {
            message: Some(lk::signal_request::Message::Ping(42)),
        };
        let bin = ping.encode_to_vec();
        let json = serde_json::to_vec(&ping).expect("serialize");
        let a = decode_request(&bin, FrameFormat::Protobuf).expect("binary");
        let b = decode_request(&json, FrameFormat::Json).expect("json");
        assert_eq!(a, b);
        assert_eq!(a, lk::signal_request::Message::Ping(42));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_request(&[0xff, 0xff, 0xff], FrameFormat::Protobuf).is_err());
        assert!(decode_request(b"{not json", FrameFormat::Json).is_err());
        assert!(matches!(
            decode_request(&[], FrameFormat::Protobuf),
            Err(FrameError::Empty)
        ));
        let big = vec![0u8; MAX_FRAME_BYTES + 1];
        assert!(matches!(
            decode_request(&big, FrameFormat::Protobuf),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn responses_round_trip_in_both_formats() {
        let msg = lk::signal_response::Message::Pong(7);
        let bin = encode_response(msg.clone(), FrameFormat::Protobuf);
        let back = lk::SignalResponse::decode(bin.as_slice()).expect("decode");
        assert_eq!(back.message, Some(msg.clone()));
        let json = encode_response(msg.clone(), FrameFormat::Json);
        let back: lk::SignalResponse = serde_json::from_slice(&json).expect("json");
        assert_eq!(back.message, Some(msg));
    }

    #[test]
    fn wrapped_join_request_decodes_from_base64url() {
        use base64::Engine;
        let join = lk::JoinRequest {
            ..Default::default()
        };
        let wrapped = lk::WrappedJoinRequest {
            compression: 0,
            join_request: join.encode_to_vec(),
        };
        let param =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(wrapped.encode_to_vec());
        assert_eq!(decode_wrapped_join_request(&param).expect("decode"), join);
        assert!(decode_wrapped_join_request("!!!").is_err());
    }
}
