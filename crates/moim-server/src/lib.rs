//! moim's control plane: HTTP and WebSocket signaling, rooms and
//! participants. Media goes through [`moim_sfu::MediaPlane`].

pub mod announce;
mod bearer;
mod client_info;
pub mod config;
mod directory;
mod drain;
pub mod forwarded;
mod http;
mod http_listener;
pub mod port_mux;
pub mod room;
mod room_service;
mod server_info;
mod signal;
pub mod tls;
mod turn;
mod twirp;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;

use moim_sfu::{MediaConfig, MediaError, MediaPlane};
use tokio::net::TcpListener;
use tracing::info;

pub use config::{ServerConfig, TurnLimits, TurnSettings};
use directory::{LocalDirectory, RoomDirectory};
pub use drain::Shutdown;
pub use http::SignalRefusal;
pub use server_info::{LIVEKIT_COMPATIBLE_VERSION, SERVER_VERSION};

/// Milliseconds since the Unix epoch, by the system clock.
pub(crate) fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Parsers of network input that are not otherwise public, for the fuzz
/// targets in `fuzz/`. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::bearer::from_header as bearer_token;
    pub use crate::client_info::ClientProfile;
    pub use crate::http::{signal_token, v0_params, v1_params};
    pub use crate::room::JoinParams;
    pub use crate::twirp::{authenticate, BodyFormat, TwirpError};
}

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub media: Arc<MediaPlane>,
    rooms: Arc<dyn RoomDirectory>,
    turn: Option<turn::TurnOffer>,
    drain: Arc<drain::Drain>,
    /// Peers that sent `/rtc` without a WebSocket upgrade, warned about once.
    no_upgrade_warned: Arc<forwarded::WarnedPeers>,
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
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("--use-external-ip: {0}")]
    Discovery(#[from] announce::DiscoveryError),
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// A started server: its bound addresses, and a future that runs it.
pub struct Server {
    pub http_addr: SocketAddr,
    pub udp_addr: SocketAddr,
    pub tcp_addr: Option<SocketAddr>,
    pub turn_udp_addr: Option<SocketAddr>,
    pub turn_tcp_addr: Option<SocketAddr>,
    pub turn_tls_addr: Option<SocketAddr>,
    listener: TcpListener,
    tls: Option<tls::Tls>,
    _turn: Option<moim_turn::TurnHandle>,
    state: AppState,
    /// Routes served beside LiveKit's (the app's `/auth/` and `/api/`).
    extra_routes: Option<axum::Router>,
}

impl Server {
    pub async fn bind(mut config: ServerConfig) -> Result<Self, ServeError> {
        let source = announce::choose(&mut config).await?;
        announce::check_and_report(config.announce_ip(), source, config.bind);
        let config = Arc::new(config);
        // Bound first: with one port for everything, ICE-TCP candidates and
        // TURN URLs name the port actually bound (the OS picks for 0).
        let addr = SocketAddr::new(config.bind, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::BindHttp { addr, source })?;
        let http_addr = listener.local_addr().map_err(ServeError::Serve)?;
        let shared_port = config.one_port.then_some(http_addr.port());
        let media = MediaPlane::start(MediaConfig {
            udp_bind: SocketAddr::new(config.bind, config.rtc_udp_port),
            tcp_bind: (config.rtc_tcp_port != 0)
                .then(|| SocketAddr::new(config.bind, config.rtc_tcp_port)),
            tcp_shared_port: shared_port,
            announce_ip: config.announce_ip(),
            shards: config.media_shards,
            ice_tcp: config.ice_tcp.clone(),
            downlink_bwe: config.downlink_bwe,
        })
        .await?;
        let tls_config = match &config.tls {
            Some(t) => Some(tls::start(t).await?),
            None => None,
        };
        let tls_host = config
            .domain
            .clone()
            .unwrap_or_else(|| config.announce_ip().to_string());
        let turn_tls = tls_config.as_ref().map(|c| (c.turn.clone(), tls_host));
        let (turn_handle, turn_offer) = match &config.turn {
            Some(settings) => {
                let own = turn::OwnAddresses {
                    bind: config.bind,
                    announce: config.announce_ip(),
                    media_port: media.udp_addr().port(),
                };
                match turn::start(settings, own, turn_tls, shared_port).await {
                    Some((h, o)) => (Some(h), Some(o)),
                    None => (None, None),
                }
            }
            None => (None, None),
        };
        Ok(Self {
            http_addr,
            udp_addr: media.udp_addr(),
            tcp_addr: media.tcp_addr(),
            turn_udp_addr: turn_handle.as_ref().and_then(|h| h.udp_addr),
            turn_tcp_addr: turn_handle.as_ref().and_then(|h| h.tcp_addr),
            turn_tls_addr: turn_handle.as_ref().and_then(|h| h.tls_addr),
            listener,
            tls: tls_config,
            _turn: turn_handle,
            extra_routes: None,
            state: AppState {
                rooms: Arc::new(LocalDirectory::new(
                    config.clone(),
                    media.clone(),
                    webhook::Notifier::start(config.webhook_config()),
                )),
                config,
                media,
                turn: turn_offer,
                drain: Arc::default(),
                no_upgrade_warned: Arc::default(),
            },
        })
    }

    /// Serves `routes` on the same port beside LiveKit's endpoints. They
    /// get none of those endpoints' layers (the signal path's open CORS),
    /// and each request carries the client's address as axum's
    /// `ConnectInfo<SocketAddr>`.
    pub fn with_routes(mut self, routes: axum::Router) -> Self {
        self.extra_routes = Some(match self.extra_routes.take() {
            Some(r) => r.merge(routes),
            None => routes,
        });
        self
    }

    /// The handle that drains and stops this server (see [`Shutdown`]).
    pub fn shutdown(&self) -> Shutdown {
        Shutdown(self.state.drain.clone())
    }

    /// Serves until a [`Shutdown`] has drained the server.
    pub async fn run(self) -> Result<(), ServeError> {
        let _turn = self._turn;
        info!(http = %self.http_addr, udp = %self.udp_addr, tcp = ?self.tcp_addr, version = SERVER_VERSION, "moim is serving");
        let drained = drain::run(
            self.state.drain.clone(),
            self.state.rooms.clone(),
            self.state.config.drain_timeout,
        );
        let trusted_proxies: Arc<[ipnet::IpNet]> = self.state.config.trusted_proxies.clone().into();
        let doors = self.state.config.one_port.then(|| port_mux::Doors {
            turn: _turn.as_ref().map(|t| t.streams.clone()),
            ice_tcp: self.state.media.ice_tcp_door(),
        });
        let mut app = http::router(self.state);
        if let Some(extra) = self.extra_routes {
            app = app.merge(extra);
        }
        let tls = self.tls.map(|t| t.https);
        tokio::select! {
            r = http_listener::serve(self.listener, app, tls, trusted_proxies, doors) => {
                r.map_err(ServeError::Serve)
            }
            () = drained => Ok(()),
        }
    }
}
