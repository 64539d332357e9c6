//! LiveKit's Rust-core SDKs (Python, Node, Rust, Unity, agents) send the
//! access token as `Authorization: Bearer …` on every signal path instead of
//! the `access_token` query parameter. moim takes it from either place.

mod common;

use moim_proto::lk;
use moim_proto::lk::signal_response::Message as Resp;
use prost::Message as _;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

/// Opens `/rtc` with the given query and optional Authorization header and
/// returns the first signal response, or the HTTP refusal.
async fn connect_v0(
    server: &common::TestServer,
    query: &str,
    authorization: Option<&str>,
) -> Result<lk::SignalResponse, (u16, String)> {
    let mut req = format!("{}/rtc?protocol=18&{query}", server.url)
        .into_client_request()
        .expect("request");
    if let Some(a) = authorization {
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(a).expect("header value"),
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((mut ws, _)) => {
            use futures_util::StreamExt as _;
            while let Some(msg) = ws.next().await {
                if let Message::Binary(b) = msg.expect("frame") {
                    return Ok(lk::SignalResponse::decode(b.as_ref()).expect("signal response"));
                }
            }
            panic!("socket closed before the first signal response");
        }
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err((resp.status().as_u16(), body))
        }
        Err(e) => panic!("unexpected connect error: {e}"),
    }
}

fn is_join(r: &lk::SignalResponse) -> bool {
    matches!(r.message, Some(Resp::Join(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_sdk_style_join_with_only_a_bearer_header_gets_its_join_response() {
    let server = common::start().await;
    let token = common::token("hdr", "py-agent");
    // What LiveKit's Rust SDK puts in the /rtc query besides the token.
    let query = "sdk=python&client_protocol=2&capabilities=CAP_PACKET_TRAILER%2CCAP_COMPRESSION_DEFLATE_RAW";
    let first = connect_v0(&server, query, Some(&format!("Bearer {token}")))
        .await
        .expect("joined with the header");
    let Some(Resp::Join(join)) = first.message else {
        panic!("first frame is the join: {first:?}");
    };
    // livekit-client and the Rust SDKs compare this with LiveKit releases.
    let info = join.server_info.expect("server_info");
    assert_eq!(info.version, moim_server::LIVEKIT_COMPATIBLE_VERSION);
    assert!(info.debug_info.starts_with("moim/"), "{info:?}");
    // Mirrored for the other clients, which pick RPC and data-stream
    // formats by them.
    let me = join.participant.expect("participant");
    assert_eq!(me.client_protocol, 2);
    assert_eq!(me.capabilities, vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_token_in_both_places_is_fine_but_two_different_tokens_are_refused() {
    let server = common::start().await;
    let a = common::token("hdr", "a");
    let b = common::token("hdr", "b");
    let both = connect_v0(
        &server,
        &format!("access_token={a}"),
        Some(&format!("Bearer {a}")),
    )
    .await
    .expect("same token twice joins");
    assert!(is_join(&both));

    let (status, body) = connect_v0(
        &server,
        &format!("access_token={a}"),
        Some(&format!("Bearer {b}")),
    )
    .await
    .expect_err("two tokens are refused");
    assert_eq!(status, 401);
    assert!(body.contains("different tokens"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_that_is_not_a_bearer_token_or_a_forged_one_is_refused_with_its_cause() {
    let server = common::start().await;
    let (status, body) = connect_v0(&server, "", Some("Basic dXNlcjpwYXNz"))
        .await
        .expect_err("Basic auth is refused");
    assert_eq!(status, 401);
    assert!(body.contains("Bearer <token>"), "{body}");

    let forged = moim_proto::token::mint(
        "devkey",
        "wrong-secret",
        "eve",
        moim_proto::token::VideoGrant {
            room_join: true,
            room: "hdr".into(),
            ..Default::default()
        },
        std::time::Duration::from_secs(60),
        std::time::SystemTime::now(),
    );
    let (status, body) = connect_v0(&server, "", Some(&format!("Bearer {forged}")))
        .await
        .expect_err("a forged token is refused");
    assert_eq!(status, 401);
    assert!(body.contains("signature is invalid"), "{body}");

    let (status, body) = connect_v0(&server, "", None).await.expect_err("no token");
    assert_eq!(status, 401);
    assert!(body.contains("Authorization: Bearer"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_accepts_the_header_on_both_paths() {
    let server = common::start().await;
    let token = common::token("hdr", "validator");
    let http = reqwest::Client::new();
    let v0 = http
        .get(format!("http://{}/rtc/validate", server.http))
        .bearer_auth(&token)
        .send()
        .await
        .expect("validate");
    assert_eq!(
        v0.headers().get("server").and_then(|v| v.to_str().ok()),
        Some(moim_server::SERVER_VERSION),
        "moim names itself in the Server header"
    );
    assert_eq!(v0.status(), 200, "{}", v0.text().await.unwrap_or_default());

    let wrapped = lk::WrappedJoinRequest {
        compression: 0,
        join_request: lk::JoinRequest::default().encode_to_vec(),
    };
    let join = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE.encode(wrapped.encode_to_vec())
    };
    let v1 = http
        .get(format!("http://{}/rtc/v1/validate", server.http))
        .query(&[("join_request", join)])
        .bearer_auth(&token)
        .send()
        .await
        .expect("validate v1");
    assert_eq!(v1.status(), 200, "{}", v1.text().await.unwrap_or_default());

    let none = http
        .get(format!("http://{}/rtc/validate", server.http))
        .send()
        .await
        .expect("validate without token");
    assert_eq!(none.status(), 401);
}
