//! One signal connection: WebSocket frames in and out, pings answered here,
//! everything else handed to the room.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use moim_proto::frame::{self, FrameFormat};
use moim_proto::lk::{self, signal_request::Message as Req, signal_response::Message as Resp};
use moim_proto::token::Claims;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::room::{
    wire, JoinError, JoinParams, Joined, Outbound, RoomHandle, RoomInput, SignalClose,
};
use crate::AppState;

/// WebSocket close codes (RFC 6455 §7.4.1).
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;

/// Malformed frames logged per connection; the rest are counted, so one
/// client cannot flood the log.
const MALFORMED_LOGGED: u64 = 5;

/// The close frame for a connection the server ends. A reason is at most
/// 123 bytes (RFC 6455 §5.5), and each of these stays under it.
fn close_frame(why: SignalClose) -> CloseFrame {
    use lk::DisconnectReason as R;
    let (code, reason) = match why {
        SignalClose::Replaced => (
            CLOSE_NORMAL,
            "replaced: this participant resumed on a newer connection",
        ),
        SignalClose::Left(R::ServerShutdown) => (
            CLOSE_GOING_AWAY,
            "moim is shutting down; join again to reach another server",
        ),
        SignalClose::Left(R::DuplicateIdentity) => (
            CLOSE_NORMAL,
            "another connection joined with the same identity",
        ),
        SignalClose::Left(R::ParticipantRemoved) => {
            (CLOSE_NORMAL, "removed from the room through the server API")
        }
        SignalClose::Left(R::RoomDeleted) => {
            (CLOSE_NORMAL, "the room was deleted through the server API")
        }
        SignalClose::Left(R::JoinFailure) => (
            CLOSE_POLICY,
            "join refused: the room is full (max_participants)",
        ),
        SignalClose::Left(R::RoomClosed) => (
            CLOSE_GOING_AWAY,
            "the room closed while joining; join again",
        ),
        SignalClose::Left(R::StateMismatch) => (
            CLOSE_NORMAL,
            "resume refused: the server does not know this session; join again",
        ),
        SignalClose::Left(_) => (CLOSE_NORMAL, "left the room"),
    };
    CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }
}

pub async fn run(socket: WebSocket, state: AppState, claims: Claims, mut params: JoinParams) {
    let _counted = state.drain.connection();
    if let Some(turn) = &state.turn {
        params.ice_servers = turn.ice_servers(&claims.sub);
    }
    let identity = claims.sub.clone();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Outbound>();
    let (mut sink, mut stream) = socket.split();
    let (room, joined) = match join(&state, &claims, &params, out_tx).await {
        Ok(joined) => joined,
        Err(e) => {
            // The client hears why before the socket closes: a leave with
            // LiveKit's reason, then a close frame in words.
            info!(room = %claims.video.room, %identity, "join refused: {e}");
            let reason = wire::join_refusal_reason(&e);
            let _ = sink
                .send(encode(wire::leave(reason), FrameFormat::Protobuf))
                .await;
            let _ = sink
                .send(Message::Close(Some(close_frame(SignalClose::Left(reason)))))
                .await;
            await_client_close(&mut stream).await;
            return;
        }
    };

    let mut format = FrameFormat::Protobuf;
    let mut malformed: u64 = 0;
    // Set when this side sent the close frame and the client's must follow.
    let mut closing = false;
    let silence_limit = state.config.signal_silence_limit;
    loop {
        tokio::select! {
            out = out_rx.recv() => match out {
                Some(Outbound::Signal(msg)) => {
                    if sink.send(encode(*msg, format)).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Close(why)) => {
                    let _ = sink.send(Message::Close(Some(close_frame(why)))).await;
                    closing = true;
                    break;
                }
                None => break,
            },
            incoming = tokio::time::timeout(silence_limit, stream.next()) => {
                let msg = match incoming {
                    Err(_) => {
                        info!(%identity, "signal connection silent for {silence_limit:?} (no ping); closing it, the client may resume");
                        let reason = format!(
                            "no message from the client for {} s (it must ping); resume to go on",
                            silence_limit.as_secs()
                        );
                        let _ = sink.send(Message::Close(Some(CloseFrame {
                            code: CLOSE_POLICY,
                            reason: Utf8Bytes::from(reason),
                        }))).await;
                        closing = true;
                        break;
                    }
                    Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        if is_too_big(e) {
                            warn!(%identity, "signal frame exceeds {} bytes; closing with 1009", frame::MAX_FRAME_BYTES);
                            let _ = sink.send(Message::Close(Some(CloseFrame {
                                code: CLOSE_TOO_BIG,
                                reason: Utf8Bytes::from_static("signal frame too large"),
                            }))).await;
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
                        let _ = sink.send(encode(Resp::Pong(crate::unix_ms().max(ts)), format)).await;
                    }
                    Ok(Req::PingReq(ping)) => {
                        let pong = lk::Pong { last_ping_timestamp: ping.timestamp, timestamp: crate::unix_ms() };
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
                        malformed += 1;
                        if malformed <= MALFORMED_LOGGED {
                            warn!(%identity, "malformed signal frame ignored: {e}");
                        }
                        if malformed == MALFORMED_LOGGED {
                            warn!(%identity, "{MALFORMED_LOGGED} malformed signal frames from this connection; further ones are counted, not logged");
                        }
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
    if closing {
        await_client_close(&mut stream).await;
    }
    if malformed > MALFORMED_LOGGED {
        warn!(%identity, malformed, "signal connection ended; it sent {malformed} malformed frames in all");
    }
    let _ = room.send(RoomInput::SignalClosed {
        participant: joined.participant,
        connection: joined.connection,
    });
}

/// How long a client has to answer our close frame with its own.
const CLOSE_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(1);

/// Waits for the client's close frame after ours (RFC 6455 §7.1.1), reading
/// and dropping what it still sends. Closing the socket at once, with the
/// client's frames unread, makes the kernel send a reset, and a reset can
/// destroy our close frame before the client reads the reason.
async fn await_client_close<S>(stream: &mut S)
where
    S: futures_util::Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Joins the room named in the token. A room that is closing refuses the
/// join; one retry lands on the fresh room that takes its name.
async fn join(
    state: &AppState,
    claims: &Claims,
    params: &JoinParams,
    out: mpsc::UnboundedSender<Outbound>,
) -> Result<(RoomHandle, Joined), JoinError> {
    let mut last = JoinError::RoomClosed;
    for _ in 0..2 {
        let room = state.rooms.get_or_create(&claims.video.room);
        let (reply_tx, reply_rx) = oneshot::channel();
        let input = RoomInput::Join {
            claims: Box::new(claims.clone()),
            params: Box::new(params.clone()),
            out: out.clone(),
            reply: reply_tx,
        };
        if room.send(input).is_err() {
            continue;
        }
        match reply_rx.await {
            Ok(Ok(joined)) => return Ok((room, joined)),
            Ok(Err(JoinError::RoomClosed)) | Err(_) => last = JoinError::RoomClosed,
            Ok(Err(e)) => return Err(e),
        }
    }
    Err(last)
}

/// The read failed because a frame or message exceeded the size limit.
fn is_too_big(e: axum::Error) -> bool {
    let inner = e.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => true,
        Some(other) => {
            debug!("signal connection error: {other}");
            false
        }
        None => {
            debug!("signal connection error: {inner}");
            false
        }
    }
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
