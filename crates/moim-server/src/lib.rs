//! moim's control plane: HTTP and WebSocket signaling, rooms and
//! participants. Media goes through [`moim_sfu::MediaPlane`].

pub mod config;
mod http;
mod participant;
mod room;
mod room_admin;
mod room_service;
mod room_signal;
mod rooms;
mod signal;
mod twirp;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;

use moim_sfu::{MediaConfig, MediaError, MediaPlane};
use tokio::net::TcpListener;
use tracing::info;

pub use config::ServerConfig;
pub use http::SignalRefusal;
pub use room::SERVER_VERSION;
use rooms::RoomRegistry;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub media: Arc<MediaPlane>,
    rooms: Arc<RoomRegistry>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen for HTTP/WebSocket on {addr}: {source}. Another process holds the port; stop it or pass --port")]
    BindHttp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// A started server: its bound addresses, and a future that runs it.
pub struct Server {
    pub http_addr: SocketAddr,
    pub udp_addr: SocketAddr,
    pub tcp_addr: Option<SocketAddr>,
    listener: TcpListener,
    state: AppState,
}

impl Server {
    pub async fn bind(config: ServerConfig) -> Result<Self, ServeError> {
        let config = Arc::new(config);
        let media = MediaPlane::start(MediaConfig {
            udp_bind: SocketAddr::new(config.bind, config.rtc_udp_port),
            tcp_bind: (config.rtc_tcp_port != 0)
                .then(|| SocketAddr::new(config.bind, config.rtc_tcp_port)),
            announce_ip: config.announce_ip(),
            shards: config.media_shards,
        })
        .await?;
        let addr = SocketAddr::new(config.bind, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::BindHttp { addr, source })?;
        let http_addr = listener.local_addr().map_err(ServeError::Serve)?;
        Ok(Self {
            http_addr,
            udp_addr: media.udp_addr(),
            tcp_addr: media.tcp_addr(),
            listener,
            state: AppState {
                rooms: RoomRegistry::with_webhooks(webhook::Notifier::start(
                    config.webhook_config(),
                )),
                config,
                media,
            },
        })
    }

    pub async fn run(self) -> Result<(), ServeError> {
        info!(http = %self.http_addr, udp = %self.udp_addr, tcp = ?self.tcp_addr, version = SERVER_VERSION, "moim is serving");
        axum::serve(self.listener, http::router(self.state))
            .await
            .map_err(ServeError::Serve)
    }
}
