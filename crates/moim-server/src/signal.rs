//! One signal connection: WebSocket frames in and out, pings answered here,
//! everything else handed to the room.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use moim_proto::frame::{self, FrameFormat};
use moim_proto::lk::{self, signal_request::Message as Req, signal_response::Message as Resp};
use moim_proto::token::Claims;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::participant::{unix_now_ms, Outbound};
use crate::room::{JoinParams, RoomInput};
use crate::AppState;

/// A client that says nothing for this long is gone (ping_timeout is 15 s).
const SILENCE_LIMIT: Duration = Duration::from_secs(20);

/// WebSocket close code for "message too big" (RFC 6455 §7.4.1).
const CLOSE_TOO_BIG: u16 = 1009;

pub async fn run(socket: WebSocket, state: AppState, claims: Claims, mut params: JoinParams) {
    if let Some(turn) = &state.turn {
        params.ice_servers = turn.ice_servers(&claims.sub);
    }
    let room_name = claims.video.room.clone();
    let identity = claims.sub.clone();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Outbound>();
    // A room that is closing refuses the join; one retry lands on a new room.
    let mut joined = None;
    for _ in 0..2 {
        let room = state
            .rooms
            .get_or_create(&room_name, &state.config, &state.media);
        let (reply_tx, reply_rx) = oneshot::channel();
        let input = RoomInput::Join {
            claims: Box::new(claims.clone()),
            params: Box::new(params.clone()),
            out: out_tx.clone(),
            reply: reply_tx,
        };
        if room.send(input).is_err() {
            continue;
        }
        if let Ok(Ok(j)) = reply_rx.await {
            joined = Some((room, j));
            break;
        }
    }
    drop(out_tx);
    let Some((room, joined)) = joined else {
        warn!(room = %room_name, %identity, "join failed: the room kept closing");
        return;
    };

    let (mut sink, mut stream) = socket.split();
    let mut format = FrameFormat::Protobuf;
    loop {
        tokio::select! {
            out = out_rx.recv() => match out {
                Some(Outbound::Signal(msg)) => {
                    if sink.send(encode(*msg, format)).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Close) | None => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            },
            incoming = tokio::time::timeout(SILENCE_LIMIT, stream.next()) => {
                let msg = match incoming {
                    Err(_) => {
                        info!(%identity, "signal connection silent for {SILENCE_LIMIT:?}; closing it");
                        break;
                    }
                    Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        let text = e.to_string();
                        if text.contains("too long") || text.contains("Space limit") || text.contains("too big") {
                            warn!(%identity, "signal frame exceeds {} bytes; closing with 1009", frame::MAX_FRAME_BYTES);
                            let _ = sink.send(Message::Close(Some(CloseFrame {
                                code: CLOSE_TOO_BIG,
                                reason: Utf8Bytes::from_static("signal frame too large"),
                            }))).await;
                        } else {
                            debug!(%identity, "signal connection error: {text}");
                        }
                        break;
                    }
                    Ok(Some(Ok(m))) => m,
                };
                let (bytes, f) = match &msg {
                    Message::Binary(b) => (b.as_ref(), FrameFormat::Protobuf),
                    Message::Text(t) => (t.as_bytes(), FrameFormat::Json),
                    Message::Close(_) => break,
                    _ => continue,
                };
                format = f;
                match frame::decode_request(bytes, f) {
                    Ok(Req::Ping(ts)) => {
                        let _ = sink.send(encode(Resp::Pong(unix_now_ms().max(ts)), format)).await;
                    }
                    Ok(Req::PingReq(ping)) => {
                        let pong = lk::Pong { last_ping_timestamp: ping.timestamp, timestamp: unix_now_ms() };
                        let _ = sink.send(encode(Resp::PongResp(pong), format)).await;
                    }
                    Ok(message) => {
                        let leaving = matches!(message, Req::Leave(_));
                        let _ = room.send(RoomInput::Signal {
                            participant: joined.participant,
                            connection: joined.connection,
                            message,
                        });
                        if leaving {
                            // The room answers by closing; drain until then.
                            continue;
                        }
                    }
                    Err(e) => {
                        // One bad frame does not end the session: the client
                        // is told, the server logs it, state is untouched.
                        warn!(%identity, "malformed signal frame ignored: {e}");
                        let resp = Resp::RequestResponse(lk::RequestResponse {
                            reason: lk::request_response::Reason::InvalidRequest as i32,
                            message: e.to_string(),
                            ..Default::default()
                        });
                        let _ = sink.send(encode(resp, format)).await;
                    }
                }
            }
        }
    }
    let _ = room.send(RoomInput::SignalClosed {
        participant: joined.participant,
        connection: joined.connection,
    });
}

fn encode(msg: Resp, format: FrameFormat) -> Message {
    let bytes = frame::encode_response(msg, format);
    match format {
        FrameFormat::Protobuf => Message::Binary(bytes.into()),
        FrameFormat::Json => Message::Text(Utf8Bytes::from(
            String::from_utf8_lossy(&bytes).into_owned(),
        )),
    }
}
