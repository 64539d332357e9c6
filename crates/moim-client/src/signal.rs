//! The signal WebSocket: URL, frame encoding (protobuf or JSON) and the handshake.

use livekit_protocol::{SignalRequest, SignalResponse};
use prost::Message as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::{Error, Result};

/// The WebSocket type the client uses.
pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How signal messages are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameCodec {
    /// Binary frames with protobuf, what every LiveKit SDK sends.
    #[default]
    Protobuf,
    /// Text frames with protobuf-JSON (pbjson), which the LiveKit server also accepts.
    Json,
}

impl FrameCodec {
    /// Encode a request as a WebSocket message.
    pub fn encode(self, req: &SignalRequest) -> Result<Message> {
        Ok(match self {
            FrameCodec::Protobuf => Message::Binary(req.encode_to_vec().into()),
            FrameCodec::Json => Message::Text(
                serde_json::to_string(req)
                    .map_err(|e| Error::Decode(format!("JSON encoding failed: {e}")))?
                    .into(),
            ),
        })
    }

    /// Encode a response; used by tests and by anyone faking a server.
    pub fn encode_response(self, resp: &SignalResponse) -> Result<Message> {
        Ok(match self {
            FrameCodec::Protobuf => Message::Binary(resp.encode_to_vec().into()),
            FrameCodec::Json => Message::Text(
                serde_json::to_string(resp)
                    .map_err(|e| Error::Decode(format!("JSON encoding failed: {e}")))?
                    .into(),
            ),
        })
    }
}

/// Decode a server frame. Binary frames are protobuf and text frames are JSON, whatever codec
/// the client sends with; `Ok(None)` for control frames.
pub fn decode_response(msg: &Message) -> Result<Option<(FrameCodec, SignalResponse)>> {
    match msg {
        Message::Binary(b) => SignalResponse::decode(b.as_ref())
            .map(|r| Some((FrameCodec::Protobuf, r)))
            .map_err(|e| {
                Error::Decode(format!("protobuf SignalResponse ({} bytes): {e}", b.len()))
            }),
        Message::Text(t) => serde_json::from_str::<SignalResponse>(t.as_str())
            .map(|r| Some((FrameCodec::Json, r)))
            .map_err(|e| Error::Decode(format!("JSON SignalResponse: {e}"))),
        _ => Ok(None),
    }
}

/// Decode a client frame (for tests and fake servers).
pub fn decode_request(msg: &Message) -> Result<Option<SignalRequest>> {
    match msg {
        Message::Binary(b) => SignalRequest::decode(b.as_ref())
            .map(Some)
            .map_err(|e| Error::Decode(format!("protobuf SignalRequest: {e}"))),
        Message::Text(t) => serde_json::from_str::<SignalRequest>(t.as_str())
            .map(Some)
            .map_err(|e| Error::Decode(format!("JSON SignalRequest: {e}"))),
        _ => Ok(None),
    }
}

/// Query parameters of a `/rtc` connection.
#[derive(Debug, Clone)]
pub struct RtcParams<'a> {
    pub token: &'a str,
    pub protocol: u32,
    pub auto_subscribe: bool,
    pub adaptive_stream: bool,
    /// `Some(sid)` for a resume (`reconnect=1&sid=…`).
    pub reconnect_sid: Option<&'a str>,
}

/// Build the `/rtc` URL from a server URL (`ws://host:7880`, `http://…`, or already `…/rtc`).
pub fn rtc_url(server: &str, p: &RtcParams<'_>) -> Result<url::Url> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: server.to_owned(),
        reason: reason.to_owned(),
    };
    let mut url = url::Url::parse(server).map_err(|e| invalid(&e.to_string()))?;
    let scheme = match url.scheme() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        other => {
            return Err(invalid(&format!(
                "scheme {other:?} is not ws, wss, http or https"
            )))
        }
    };
    url.set_scheme(scheme)
        .map_err(|()| invalid("cannot set scheme"))?;
    let path = url.path().trim_end_matches('/').to_owned();
    if !path.ends_with("/rtc") {
        url.set_path(&format!("{path}/rtc"));
    }
    {
        let mut q = url.query_pairs_mut();
        q.clear();
        q.append_pair("access_token", p.token);
        q.append_pair("protocol", &p.protocol.to_string());
        q.append_pair("auto_subscribe", if p.auto_subscribe { "1" } else { "0" });
        q.append_pair("adaptive_stream", if p.adaptive_stream { "1" } else { "0" });
        q.append_pair("sdk", "rust");
        q.append_pair("version", env!("CARGO_PKG_VERSION"));
        if let Some(sid) = p.reconnect_sid {
            q.append_pair("reconnect", "1");
            q.append_pair("sid", sid);
        }
    }
    Ok(url)
}

/// The URL with the token hidden, for error messages and logs.
pub fn redacted(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

/// Open the WebSocket, turning HTTP refusals into [`Error::SignalRejected`].
pub async fn open(url: &url::Url) -> Result<WsStream> {
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Ok((ws, _resp)) => Ok(ws),
        Err(tungstenite::Error::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).trim().to_owned())
                .filter(|b| !b.is_empty())
                .unwrap_or_else(|| {
                    resp.status()
                        .canonical_reason()
                        .unwrap_or("no body")
                        .to_owned()
                });
            Err(Error::SignalRejected {
                url: redacted(url),
                status,
                body,
            })
        }
        Err(e) => Err(Error::SignalConnect {
            url: redacted(url),
            source: Box::new(e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use livekit_protocol::{signal_request, signal_response, Ping, TrickleRequest};

    use super::*;

    fn trickle() -> SignalRequest {
        SignalRequest {
            message: Some(signal_request::Message::Trickle(TrickleRequest {
                candidate_init: r#"{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}"#.into(),
                target: 1,
                r#final: false,
            })),
        }
    }

    #[test]
    fn binary_and_json_frames_carry_the_same_request() {
        let req = trickle();
        let bin = FrameCodec::Protobuf.encode(&req).expect("encode");
        let json = FrameCodec::Json.encode(&req).expect("encode");
        assert!(matches!(bin, Message::Binary(_)));
        let Message::Text(text) = &json else {
            panic!("JSON mode must send text frames");
        };
        // pbjson: camelCase field names, oneof as a field, enum by name.
        let v: serde_json::Value = serde_json::from_str(text.as_str()).expect("json");
        assert_eq!(v["trickle"]["target"], "SUBSCRIBER");
        assert!(v["trickle"]["candidateInit"].is_string());
        assert_eq!(decode_request(&bin).expect("bin"), Some(req.clone()));
        assert_eq!(decode_request(&json).expect("json"), Some(req));
    }

    #[test]
    fn responses_decode_by_frame_type() {
        let resp = SignalResponse {
            message: Some(signal_response::Message::PongResp(livekit_protocol::Pong {
                last_ping_timestamp: 1_700_000_000_000,
                timestamp: 1_700_000_000_005,
            })),
        };
        for codec in [FrameCodec::Protobuf, FrameCodec::Json] {
            let msg = codec.encode_response(&resp).expect("encode");
            let (seen, back) = decode_response(&msg).expect("decode").expect("data frame");
            assert_eq!(seen, codec);
            assert_eq!(back, resp);
        }
        // int64 is a string in protobuf-JSON; pbjson accepts both.
        let text = r#"{"pingReq":{"timestamp":"5","rtt":"0"}}"#;
        let req = decode_request(&Message::Text(text.into())).expect("decode");
        assert_eq!(
            req.and_then(|r| r.message),
            Some(signal_request::Message::PingReq(Ping {
                timestamp: 5,
                rtt: 0
            }))
        );
        assert!(decode_response(&Message::Binary(vec![0xff, 0xff, 0xff].into())).is_err());
    }

    #[test]
    fn rtc_url_is_built_from_any_server_form() {
        let p = RtcParams {
            token: "t.o.k",
            protocol: 16,
            auto_subscribe: true,
            adaptive_stream: false,
            reconnect_sid: None,
        };
        for base in [
            "ws://127.0.0.1:7880",
            "http://127.0.0.1:7880/",
            "ws://127.0.0.1:7880/rtc",
        ] {
            let u = rtc_url(base, &p).expect("url");
            assert_eq!(u.path(), "/rtc");
            assert_eq!(u.scheme(), "ws");
            assert!(u
                .query()
                .unwrap_or("")
                .contains("access_token=t.o.k&protocol=16&auto_subscribe=1"));
        }
        let r = rtc_url(
            "wss://x.example/base",
            &RtcParams {
                reconnect_sid: Some("PA_1"),
                ..p.clone()
            },
        )
        .expect("url");
        assert_eq!(r.path(), "/base/rtc");
        assert!(r.query().unwrap_or("").ends_with("reconnect=1&sid=PA_1"));
        assert!(rtc_url("ftp://x", &p).is_err());
        assert_eq!(redacted(&r), "wss://x.example/base/rtc");
    }
}
