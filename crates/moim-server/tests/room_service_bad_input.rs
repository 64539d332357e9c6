//! RoomService refuses bad calls with Twirp errors that say what to fix:
//! unknown method, garbage body, forged or expired token, missing grant,
//! unknown room or participant.

mod common;

use std::time::{Duration, SystemTime};

use moim_proto::token::{mint, VideoGrant};
use prost::Message as _;

struct Reply {
    status: u16,
    code: String,
    msg: String,
}

async fn post(base: &str, method: &str, token: Option<&str>, ct: &str, body: Vec<u8>) -> Reply {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/twirp/livekit.RoomService/{method}"))
        .header("Content-Type", ct)
        .body(body);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let r = req.send().await.expect("server answers");
    let status = r.status().as_u16();
    let v: serde_json::Value = r.json().await.expect("a Twirp JSON error body");
    Reply {
        status,
        code: v["code"].as_str().unwrap_or_default().to_string(),
        msg: v["msg"].as_str().unwrap_or_default().to_string(),
    }
}

fn token(grant: VideoGrant) -> String {
    mint(
        "devkey",
        "secret",
        "app",
        grant,
        Duration::from_secs(60),
        SystemTime::now(),
    )
}

fn admin(room: &str) -> VideoGrant {
    VideoGrant {
        room_admin: true,
        room: room.into(),
        ..Default::default()
    }
}

const JSON: &str = "application/json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_call_gets_the_right_twirp_error() {
    let server = common::start().await;
    let base = format!("http://{}", server.http);
    let list = token(VideoGrant {
        room_list: true,
        ..Default::default()
    });

    let r = post(&base, "NoSuchMethod", Some(&list), JSON, b"{}".to_vec()).await;
    assert_eq!((r.status, r.code.as_str()), (404, "bad_route"), "{}", r.msg);
    assert!(r.msg.contains("ListRooms"), "names the methods: {}", r.msg);

    let r = post(&base, "ListRooms", Some(&list), JSON, b"{not json".to_vec()).await;
    assert_eq!((r.status, r.code.as_str()), (400, "malformed"), "{}", r.msg);
    let r = post(
        &base,
        "ListRooms",
        Some(&list),
        "application/protobuf",
        vec![0xff, 0xff, 0xff],
    )
    .await;
    assert_eq!((r.status, r.code.as_str()), (400, "malformed"), "{}", r.msg);

    let r = post(&base, "ListRooms", None, JSON, b"{}".to_vec()).await;
    assert_eq!((r.status, r.code.as_str()), (401, "unauthenticated"));
    assert!(r.msg.contains("Authorization"), "{}", r.msg);
    let forged = mint(
        "devkey",
        "not-the-secret",
        "app",
        VideoGrant {
            room_list: true,
            ..Default::default()
        },
        Duration::from_secs(60),
        SystemTime::now(),
    );
    let r = post(&base, "ListRooms", Some(&forged), JSON, b"{}".to_vec()).await;
    assert_eq!((r.status, r.code.as_str()), (401, "unauthenticated"));
    assert!(r.msg.contains("signature"), "{}", r.msg);
    let expired = mint(
        "devkey",
        "secret",
        "app",
        VideoGrant {
            room_list: true,
            ..Default::default()
        },
        Duration::from_secs(60),
        SystemTime::now() - Duration::from_secs(3600),
    );
    let r = post(&base, "ListRooms", Some(&expired), JSON, b"{}".to_vec()).await;
    assert_eq!((r.status, r.code.as_str()), (401, "unauthenticated"));
    assert!(r.msg.contains("expired"), "{}", r.msg);

    // Grants, as LiveKit checks them.
    let r = post(
        &base,
        "ListRooms",
        Some(&token(admin("x"))),
        JSON,
        b"{}".to_vec(),
    )
    .await;
    assert_eq!((r.status, r.code.as_str()), (403, "permission_denied"));
    assert!(r.msg.contains("roomList"), "{}", r.msg);
    let r = post(
        &base,
        "CreateRoom",
        Some(&list),
        JSON,
        br#"{"name":"r"}"#.to_vec(),
    )
    .await;
    assert_eq!((r.status, r.code.as_str()), (403, "permission_denied"));
    assert!(r.msg.contains("roomCreate"), "{}", r.msg);
    let r = post(
        &base,
        "ListParticipants",
        Some(&token(admin("other"))),
        JSON,
        br#"{"room":"r"}"#.to_vec(),
    )
    .await;
    assert_eq!((r.status, r.code.as_str()), (403, "permission_denied"));
    assert!(r.msg.contains("\"other\""), "{}", r.msg);

    // Unknown room, then unknown participant in a room that exists.
    let r = post(
        &base,
        "ListParticipants",
        Some(&token(admin("ghost"))),
        JSON,
        br#"{"room":"ghost"}"#.to_vec(),
    )
    .await;
    assert_eq!((r.status, r.code.as_str()), (404, "not_found"), "{}", r.msg);
    let create = token(VideoGrant {
        room_create: true,
        ..Default::default()
    });
    let body = moim_proto::lk::CreateRoomRequest {
        name: "real".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let ok = reqwest::Client::new()
        .post(format!("{base}/twirp/livekit.RoomService/CreateRoom"))
        .header("Content-Type", "application/protobuf")
        .header("Authorization", format!("Bearer {create}"))
        .body(body)
        .send()
        .await
        .expect("CreateRoom");
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/protobuf"),
        "the reply uses the request's format"
    );
    let room = moim_proto::lk::Room::decode(ok.bytes().await.expect("body")).expect("a Room");
    assert_eq!(room.name, "real");
    let r = post(
        &base,
        "GetParticipant",
        Some(&token(admin("real"))),
        JSON,
        br#"{"room":"real","identity":"nobody"}"#.to_vec(),
    )
    .await;
    assert_eq!((r.status, r.code.as_str()), (404, "not_found"));
    assert!(r.msg.contains("nobody"), "{}", r.msg);
    let r = post(
        &base,
        "DeleteRoom",
        Some(&create),
        JSON,
        br#"{"room":"ghost"}"#.to_vec(),
    )
    .await;
    assert_eq!((r.status, r.code.as_str()), (404, "not_found"));

    // The server is still healthy.
    let health = reqwest::get(format!("{base}/healthz"))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
}
