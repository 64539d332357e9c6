//! A moim server on loopback, for join tokens to be tried on.

#![allow(dead_code)]

use std::net::IpAddr;

use moim_server::{Server, ServerConfig};

pub async fn media_server() -> (moim_app::LiveKitAccess, moim_server::Shutdown) {
    let mut config = ServerConfig::dev();
    config.bind = IpAddr::from([127, 0, 0, 1]);
    config.port = 0;
    config.rtc_udp_port = 0;
    config.rtc_tcp_port = 0;
    config.turn = None;
    let server = Server::bind(config).await.expect("moim binds");
    let access = moim_app::LiveKitAccess {
        server_url: format!("ws://{}", server.http_addr),
        api_key: "devkey".into(),
        api_secret: "secret".into(),
    };
    let shutdown = server.shutdown();
    tokio::spawn(server.run());
    (access, shutdown)
}
