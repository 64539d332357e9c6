//! A client whose connection moim ends, or refuses, learns why: a close
//! frame with a code and a reason, or an HTTP status with a sentence — never
//! a bare 1006 or an empty body.

mod common;

use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use moim_client::{Client, ClientEvent, ConnectOptions, Error};
use moim_proto::token::{self, VideoGrant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_with_a_reason() {
    let server = common::start_with(|c| c.signal_silence_limit = Duration::from_millis(800)).await;
    let url = format!(
        "{}/rtc?access_token={}",
        server.url,
        common::token("quiet", "mute")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("join");
    // The client never pings. Read what the server sends until it closes.
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Close(frame) = m {
                return frame;
            }
        }
        None
    })
    .await
    .expect("the server closes a silent connection")
    .expect("with a close frame, not a dropped socket");
    assert_eq!(close.code, CloseCode::Policy);
    assert!(
        close.reason.contains("no message") && close.reason.contains("ping"),
        "the reason names the silence: {}",
        close.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_too_large_for_a_url_gets_414_with_a_sentence() {
    let server = common::start().await;
    // Written by hand: HTTP client libraries refuse to send a URL this long,
    // but a browser or a hand-rolled SDK will.
    let huge = "a".repeat(100 * 1024);
    let mut tcp = tokio::net::TcpStream::connect(server.http)
        .await
        .expect("connect");
    let request = format!(
        "GET /rtc?access_token={huge} HTTP/1.1\r\nHost: moim\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut response))
        .await
        .expect("the server answers and closes")
        .expect("read");
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 414"),
        "a 414 status: {}",
        &response[..response.len().min(200)]
    );
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(
        body.contains("token is too large") && body.contains("Authorization"),
        "the body says what to do: {body}"
    );
    // The server is unharmed.
    let (_alice, _events) = common::join(&server, "r", "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_an_identity_is_refused() {
    let server = common::start().await;
    let nameless = token::mint(
        "devkey",
        "secret",
        "",
        VideoGrant {
            room_join: true,
            room: "r".into(),
            ..Default::default()
        },
        Duration::from_secs(60),
        SystemTime::now(),
    );
    match Client::connect(&server.url, &nameless, ConnectOptions::default()).await {
        Err(Error::SignalRejected { status, body, .. }) => {
            assert_eq!(status, 401);
            assert!(body.contains("no identity"), "{body}");
        }
        Err(e) => panic!("expected a 401, got {e}"),
        Ok(_) => panic!("a token without an identity joined"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_or_removed_participant_is_told_so_in_the_close_frame() {
    let server = common::start().await;
    let (_first, mut first_events) = common::join(&server, "r", "alice").await;
    let (_second, _second_events) = common::join(&server, "r", "alice").await;
    let closed = first_events
        .wait_for(Duration::from_secs(5), |e| match e {
            ClientEvent::SignalClosed { reason } => Some(reason.clone()),
            _ => None,
        })
        .await
        .expect("the older connection is closed");
    assert!(closed.contains("same identity"), "{closed}");
}
