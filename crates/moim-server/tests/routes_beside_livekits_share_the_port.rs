//! A server that also serves the app's routes (`moim serve` mounts the
//! login and app API this way): they answer on the same port as LiveKit's
//! endpoints, see the client's address, and do not get the signal path's
//! open CORS.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::routing::get;
use moim_server::{Server, ServerConfig};

#[tokio::test]
async fn the_apps_routes_answer_on_the_signal_port_with_the_clients_address() {
    let mut config = ServerConfig::dev();
    config.bind = IpAddr::from([127, 0, 0, 1]);
    config.port = 0;
    config.rtc_udp_port = 0;
    config.rtc_tcp_port = 0;
    config.turn = None;
    let routes = axum::Router::new().route(
        "/api/whoami",
        get(|ConnectInfo(addr): ConnectInfo<SocketAddr>| async move { addr.ip().to_string() }),
    );
    let server = Server::bind(config)
        .await
        .expect("binds")
        .with_routes(routes);
    let base = format!("http://{}", server.http_addr);
    let shutdown = server.shutdown();
    let stopped = tokio::spawn(server.run());

    let http = reqwest::Client::new();
    let r = http
        .get(format!("{base}/api/whoami"))
        .header("origin", "https://elsewhere.example")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("access-control-allow-origin").is_none(),
        "the app's routes are not open to other origins"
    );
    assert_eq!(r.text().await.expect("body"), "127.0.0.1");
    let health = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("request");
    assert_eq!(health.status(), 200, "LiveKit's side still answers");

    shutdown.drain();
    let _ = stopped.await;
}
