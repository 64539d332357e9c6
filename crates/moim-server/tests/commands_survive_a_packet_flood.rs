//! While someone floods the media port, people keep joining and leaving.
//! Every join adds PeerConnections on a media shard and every leave removes
//! them; none of those commands may be lost to the flood, or the shard keeps
//! peers for people long gone. Afterwards the media plane holds exactly the
//! peers of the people still in a call, and the flood's losses are counted
//! on /metrics.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use moim_proto::lk::{self, signal_request, signal_response};
use moim_turn::proto::message::{attr, method, Class, MessageBuilder};
use prost::Message as _;
use tokio_tungstenite::tungstenite::Message;

/// Rooms whose participant stays for the whole test; their ufrags are what
/// the flood's STUN requests name, so the flood reaches every shard.
const STAYING: usize = 4;
/// Participants who join and leave during the flood.
const CHURN: usize = 160;
const AT_ONCE: usize = 8;
/// Each flood thread stops after this many datagrams, or when told.
const FLOOD_MAX_PER_THREAD: u64 = 4_000_000;
const FLOOD_THREADS: usize = 2;
const FLOOD_BEFORE_CHURN: u64 = 200_000;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: &common::TestServer, room: &str, identity: &str) -> Ws {
    let url = format!(
        "{}/rtc?access_token={}",
        server.url,
        common::token(room, identity)
    );
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .unwrap_or_else(|e| panic!("{identity} cannot connect: {e}"));
    ws
}

async fn next_response(ws: &mut Ws) -> Option<signal_response::Message> {
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Binary(b) = m {
            return lk::SignalResponse::decode(b.as_ref()).ok()?.message;
        }
        if let Message::Close(_) = m {
            return None;
        }
    }
    None
}

/// A participant who stays: joined, and the ICE ufrag of the offer moim
/// sends its subscriber PeerConnection.
async fn stay(server: &common::TestServer, room: &str) -> (Ws, String) {
    let mut ws = connect(server, room, "stays").await;
    let deadline = Duration::from_secs(10);
    let ufrag = tokio::time::timeout(deadline, async {
        while let Some(m) = next_response(&mut ws).await {
            if let signal_response::Message::Offer(o) = m {
                return o
                    .sdp
                    .lines()
                    .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
                    .map(str::to_string);
            }
        }
        None
    })
    .await
    .expect("the subscriber offer comes")
    .expect("it names an ICE ufrag");
    (ws, ufrag)
}

/// Joins, waits for the JoinResponse, leaves, and waits for the close.
async fn join_and_leave(server: &common::TestServer, room: &str, identity: &str) {
    let mut ws = connect(server, room, identity).await;
    let joined = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(m) = next_response(&mut ws).await {
            if matches!(m, signal_response::Message::Join(_)) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(joined, Ok(true), "{identity} gets a JoinResponse");
    let leave = lk::SignalRequest {
        message: Some(signal_request::Message::Leave(lk::LeaveRequest::default())),
    };
    ws.send(Message::Binary(leave.encode_to_vec().into()))
        .await
        .expect("send leave");
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        while next_response(&mut ws).await.is_some() {}
    })
    .await;
}

/// A STUN Binding request whose USERNAME starts with `ufrag`; moim routes
/// it to the shard of that ufrag's PeerConnection, which then rejects it
/// (it carries no MESSAGE-INTEGRITY).
fn stun_binding(ufrag: &str, n: u64) -> Vec<u8> {
    let mut tid = [0u8; 12];
    tid[..8].copy_from_slice(&n.to_be_bytes());
    let mut b = MessageBuilder::new(Class::Request, method::BINDING, tid);
    b.add(attr::USERNAME, format!("{ufrag}:flood").as_bytes());
    b.finish(None, false)
}

fn flood(target: SocketAddr, ufrags: Vec<String>, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let packets: Vec<Vec<u8>> = ufrags
        .iter()
        .enumerate()
        .map(|(i, u)| stun_binding(u, i as u64))
        .collect();
    for n in 0..FLOOD_MAX_PER_THREAD {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let p = &packets[(n as usize) % packets.len()];
        if socket.send_to(p, target).is_ok() {
            sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn metric(server: &common::TestServer, name: &str) -> u64 {
    let body = reqwest::get(format!("http://{}/metrics", server.http))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("/metrics has no {name}:\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_and_leaves_all_take_effect_while_the_media_port_is_flooded() {
    let server = Arc::new(
        common::start_with(|c| {
            c.media_shards = 2;
            c.empty_timeout = Duration::from_millis(200);
        })
        .await,
    );
    let mut staying = Vec::new();
    let mut ufrags = Vec::new();
    for i in 0..STAYING {
        let (ws, ufrag) = stay(&server, &format!("stay-{i}")).await;
        staying.push(ws);
        ufrags.push(ufrag);
    }
    let peers_before = metric(&server, "moim_media_peers").await;
    assert_eq!(
        peers_before,
        2 * STAYING as u64,
        "each participant has a publisher and a subscriber PeerConnection"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flooders: Vec<_> = (0..FLOOD_THREADS)
        .map(|_| {
            let (ufrags, stop, sent) = (ufrags.clone(), stop.clone(), sent.clone());
            let target = server.udp;
            std::thread::spawn(move || flood(target, ufrags, stop, sent))
        })
        .collect();
    // Churn starts once the flood is in full swing.
    let swing = tokio::time::Instant::now() + Duration::from_secs(20);
    while sent.load(Ordering::Relaxed) < FLOOD_BEFORE_CHURN && tokio::time::Instant::now() < swing {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let mut next = 0;
    while next < CHURN {
        let batch: Vec<_> = (next..(next + AT_ONCE).min(CHURN))
            .map(|i| {
                let server = server.clone();
                tokio::spawn(async move {
                    join_and_leave(&server, &format!("churn-{}", i % 8), &format!("p{i}")).await
                })
            })
            .collect();
        for j in batch {
            j.await.expect("join and leave");
        }
        next += AT_ONCE;
    }
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().expect("flood thread");
    }

    // The churn rooms close once empty, each with a last command to its
    // shard. Once they have, and the shards' command queues are empty,
    // every command has been carried out, and the peers left are the
    // staying participants' — unless a command was lost.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let settled = loop {
        let rooms = metric(&server, "moim_rooms").await;
        let queued = metric(&server, "moim_media_commands_queued").await;
        let media_rooms = metric(&server, "moim_media_rooms").await;
        let peers = metric(&server, "moim_media_peers").await;
        let done = rooms == STAYING as u64
            && queued == 0
            && media_rooms == STAYING as u64
            && peers == 2 * STAYING as u64;
        if done || tokio::time::Instant::now() >= deadline {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let peers = metric(&server, "moim_media_peers").await;
    let rooms = metric(&server, "moim_rooms").await;
    let dropped = metric(&server, "moim_media_datagrams_dropped_total").await;
    let commands = metric(&server, "moim_media_commands_total").await;
    println!(
        "flood: {} datagrams sent, {dropped} dropped by a busy shard; {commands} commands carried out; \
         {peers} peers and {rooms} rooms left",
        sent.load(Ordering::Relaxed)
    );
    assert!(
        settled,
        "after {CHURN} joins and leaves under the flood, {rooms} rooms are open, the media \
         shards know of {} and hold {peers} peers, with {} commands queued (expected {STAYING} \
         rooms, {} peers and none queued)",
        metric(&server, "moim_media_rooms").await,
        metric(&server, "moim_media_commands_queued").await,
        2 * STAYING
    );
    assert_eq!(metric(&server, "moim_participants").await, STAYING as u64);
    assert!(
        commands >= (CHURN * 4) as u64,
        "each join and leave is at least four commands (add two peers, remove two): {commands}"
    );
    drop(staying);
}
