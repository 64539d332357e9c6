//! The server's settings, already validated. Reading files and environment
//! variables is the binary's job; this crate gets a finished value.

use std::net::IpAddr;
use std::time::Duration;

use moim_proto::token::KeyStore;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address for HTTP/WebSocket and the media sockets.
    pub bind: IpAddr,
    pub port: u16,
    pub rtc_udp_port: u16,
    /// 0 disables ICE-TCP.
    pub rtc_tcp_port: u16,
    /// The address clients reach the media ports at. Defaults to `bind`
    /// (or 127.0.0.1 when bound to the unspecified address).
    pub node_ip: Option<IpAddr>,
    pub keys: KeyStore,
    /// This server's name among its peers (`ServerInfo.node_id`); in a
    /// cluster, each node's must differ. Defaults to a random `ND_…`.
    pub node_id: String,
    /// A room with nobody in it closes after this long.
    pub empty_timeout: Duration,
    /// A participant whose signal connection dropped may resume this long.
    pub departure_timeout: Duration,
    /// On shutdown, how long calls in progress may go on before their
    /// participants are sent to another server.
    pub drain_timeout: Duration,
    /// A signal connection that sends nothing for this long is closed; its
    /// participant may still resume. Clients ping every 5 s (ping_timeout is
    /// 15 s), so the default leaves room.
    pub signal_silence_limit: Duration,
    pub media_shards: usize,
    /// Bounds on ICE-TCP connections (moim.toml `[rtc] tcp_*`).
    pub ice_tcp: moim_sfu::IceTcpLimits,
    /// moim.toml `[rtc] downlink_bwe`; see `moim_sfu::MediaConfig`.
    pub downlink_bwe: bool,
    /// Webhook receivers; empty disables webhooks.
    pub webhook_urls: Vec<String>,
    /// The API key whose secret signs webhooks; `None` means the only
    /// configured key.
    pub webhook_api_key: Option<String>,
    /// Discover the announced address with STUN (`--use-external-ip`).
    pub use_external_ip: bool,
    pub stun_servers: Vec<std::net::SocketAddr>,
    /// HTTPS/WSS and TURN/TLS; `None` serves plain HTTP.
    pub tls: Option<crate::tls::TlsSettings>,
    /// The name clients use for this server (certificate name), used in
    /// `turns:` URLs. Defaults to the announced IP.
    pub domain: Option<String>,
    /// The embedded TURN server; `None` disables it.
    pub turn: Option<TurnSettings>,
    /// One port for everything (`--single-port 443`): `port` carries
    /// HTTPS/WSS, TURN over TLS and TCP, and ICE-TCP on TCP, told apart by
    /// their first bytes, and TURN over UDP on UDP; `rtc_tcp_port` and the
    /// TURN ports are not used. Media keeps its own UDP port
    /// (`rtc_udp_port`): Chromium drops remote candidates on ports under
    /// 1024, so a browser reaches media on 443 only through TURN, which
    /// relays to that port inside this host.
    pub one_port: bool,
    /// Reverse proxies whose `X-Forwarded-For`/`Forwarded` name the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// The embedded TURN server, handed to clients in `ice_servers`.
#[derive(Debug, Clone)]
pub struct TurnSettings {
    /// UDP and TCP port (3478); 0 picks a free one.
    pub port: u16,
    /// Shared secret of the REST credentials. Generated at start-up when
    /// empty; a cluster must configure the same secret on every node.
    pub secret: String,
    /// TURN over TLS port (5349), used when TLS is configured; 0 picks one.
    pub tls_port: u16,
    /// How long handed-out credentials stay valid.
    pub credential_ttl: Duration,
    pub relay_port_range: std::ops::RangeInclusive<u16>,
    /// What one client and the whole server may hold; unset keeps
    /// moim-turn's defaults.
    pub limits: TurnLimits,
    /// Test-only door: let relays reach private and loopback peers. It
    /// turns moim into an open relay into the local network.
    pub dangerous_allow_private_peers: bool,
}

/// Overrides of the TURN server's limits (`moim_turn::TurnConfig`); `None`
/// keeps its default.
#[derive(Debug, Clone, Default)]
pub struct TurnLimits {
    /// TCP and TLS connections at once (default 4096).
    pub max_connections: Option<usize>,
    /// TCP and TLS connections per IPv4 address or IPv6 /64 (default 256).
    pub max_connections_per_source: Option<usize>,
    /// Time a TCP/TLS connection has to allocate (default 5 s).
    pub auth_deadline: Option<Duration>,
    /// Allocations per identity (default 12).
    pub user_quota: Option<usize>,
    /// Allocations in all (default 10000).
    pub max_allocations: Option<usize>,
}

impl Default for TurnSettings {
    fn default() -> Self {
        Self {
            port: 3478,
            tls_port: 5349,
            secret: String::new(),
            credential_ttl: Duration::from_secs(24 * 3600),
            relay_port_range: 50000..=60000,
            limits: TurnLimits::default(),
            dangerous_allow_private_peers: false,
        }
    }
}

impl ServerConfig {
    /// LiveKit's dev mode: key `devkey`, secret `secret`, loopback.
    pub fn dev() -> Self {
        Self {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 7880,
            rtc_udp_port: 7882,
            rtc_tcp_port: 7881,
            node_ip: None,
            keys: KeyStore::new([("devkey".to_string(), "secret".to_string())]),
            node_id: moim_proto::ids::node_id(),
            empty_timeout: Duration::from_secs(300),
            departure_timeout: Duration::from_secs(20),
            drain_timeout: Duration::from_secs(25),
            signal_silence_limit: Duration::from_secs(20),
            media_shards: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            ice_tcp: moim_sfu::IceTcpLimits::default(),
            downlink_bwe: true,
            webhook_urls: Vec::new(),
            webhook_api_key: None,
            use_external_ip: false,
            tls: None,
            domain: None,
            stun_servers: Vec::new(),
            turn: Some(TurnSettings::default()),
            one_port: false,
            trusted_proxies: Vec::new(),
        }
    }

    pub fn announce_ip(&self) -> IpAddr {
        match self.node_ip {
            Some(ip) => ip,
            None if self.bind.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
            None => self.bind,
        }
    }
}
