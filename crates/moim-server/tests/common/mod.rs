//! A moim server on loopback with OS-chosen ports, for one test.

#![allow(dead_code)]

pub mod pebble;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use moim_client::{AudioOptions, Client, ClientEvent, ClientEvents, ConnectOptions, LocalTrack};
use moim_server::{Server, ServerConfig};

pub struct TestServer {
    pub url: String,
    pub http: SocketAddr,
    pub udp: SocketAddr,
    pub turn_tls: Option<SocketAddr>,
    /// Drains and stops the server, as SIGTERM does for `moim serve`.
    pub shutdown: moim_server::Shutdown,
    /// Ends when the server has stopped.
    pub stopped: tokio::task::JoinHandle<Result<(), moim_server::ServeError>>,
}

pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let mut config = ServerConfig::dev();
    config.bind = IpAddr::from([127, 0, 0, 1]);
    config.port = 0;
    config.rtc_udp_port = 0;
    config.rtc_tcp_port = 0;
    config.media_shards = 2;
    config.departure_timeout = Duration::from_secs(5);
    // Each test gets its own TURN ports.
    if let Some(turn) = config.turn.as_mut() {
        turn.port = 0;
    }
    tweak(&mut config);
    let server = Server::bind(config)
        .await
        .expect("server binds on loopback");
    let http = server.http_addr;
    let udp = server.udp_addr;
    let turn_tls = server.turn_tls_addr;
    let shutdown = server.shutdown();
    let stopped = tokio::spawn(server.run());
    TestServer {
        url: format!("ws://{http}"),
        turn_tls,
        shutdown,
        stopped,
        http,
        udp,
    }
}

pub fn token(room: &str, identity: &str) -> String {
    moim_client::token::dev_token(room, identity).expect("token")
}

/// Polls `f` until it is true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

/// Joins `room` as `identity` with default options.
pub async fn join(server: &TestServer, room: &str, identity: &str) -> (Client, ClientEvents) {
    Client::connect(
        &server.url,
        &token(room, identity),
        ConnectOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{identity} cannot join {room}: {e}"))
}

/// The starting point of tests about media that is already flowing: alice
/// publishes audio in `room` and bob has received some of it.
pub struct AudioFlowing {
    pub alice: Client,
    pub alice_ev: ClientEvents,
    pub bob: Client,
    pub bob_ev: ClientEvents,
    pub track: LocalTrack,
}

pub async fn audio_flowing(server: &TestServer, room: &str) -> AudioFlowing {
    let (alice, alice_ev) = join(server, room, "alice").await;
    let (bob, mut bob_ev) = join(server, room, "bob").await;
    let track = alice
        .publish_audio(AudioOptions::default())
        .await
        .expect("alice publishes audio");
    bob_ev
        .wait_for(Duration::from_secs(10), |e| {
            matches!(e, ClientEvent::MediaReceived { .. }).then_some(())
        })
        .await
        .expect("alice's audio reaches bob");
    AudioFlowing {
        alice,
        alice_ev,
        bob,
        bob_ev,
        track,
    }
}
