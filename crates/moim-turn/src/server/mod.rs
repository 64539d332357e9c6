//! The tokio shell around [`crate::proto::TurnServer`]: UDP, TCP and TLS
//! listeners, UDP relay sockets, and one task that owns the core.

mod actor;
mod limits;
pub(crate) mod stream;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::proto::{self, PeerPolicy, Transport};

/// Everything the embedded TURN server needs. Build with [`TurnConfig::new`].
#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// REALM of the long-term credentials (e.g. the public host name).
    pub realm: String,
    /// Shared secret of the TURN REST credentials; the same string is given
    /// to [`crate::rest_credentials`].
    pub secret: String,
    /// UDP listener (default `0.0.0.0:3478`); `None` disables it.
    pub udp_listen: Option<SocketAddr>,
    /// TCP listener (default `0.0.0.0:3478`); `None` disables it.
    pub tcp_listen: Option<SocketAddr>,
    /// TLS listener and its rustls config (moim's certificate), e.g. on 5349
    /// or 443.
    pub tls_listen: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    /// Local address relay sockets bind to.
    pub relay_ip: IpAddr,
    /// Ports relay sockets bind in (default 50000–60000).
    pub relay_port_range: RangeInclusive<u16>,
    /// Address announced in XOR-RELAYED-ADDRESS. Required when `relay_ip`
    /// is unspecified or not reachable by clients (cloud NAT, Docker).
    pub public_ip: Option<IpAddr>,
    /// Allocations one identity may hold (default 12).
    pub user_quota: usize,
    /// Allocations the whole server may hold (default 10000).
    pub max_allocations: usize,
    /// Relay bandwidth per allocation in bytes per second; 0 is unlimited.
    pub bandwidth_bps: u64,
    /// Which peers relays may reach. Add moim's own media address with
    /// [`PeerPolicy::allow_own_port`]; tests widen it with [`PeerPolicy::dangerous`].
    pub peer_policy: PeerPolicy,
    /// TCP and TLS connections open at once (default 4096). An eighth is
    /// kept for connections that hold an allocation; the oldest connection
    /// without one is closed to make room for a new one.
    pub max_connections: usize,
    /// TCP and TLS connections from one IPv4 address or IPv6 /64 (default
    /// 256: an office behind one NAT address is many users).
    pub max_connections_per_source: usize,
    /// A TCP or TLS connection must hold an allocation this long after it
    /// was accepted, TLS handshake included, or it is closed (default 5 s).
    pub auth_deadline: Duration,
}

impl TurnConfig {
    pub fn new(realm: impl Into<String>, secret: impl Into<String>, relay_ip: IpAddr) -> Self {
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        TurnConfig {
            realm: realm.into(),
            secret: secret.into(),
            udp_listen: Some(SocketAddr::new(any, 3478)),
            tcp_listen: Some(SocketAddr::new(any, 3478)),
            tls_listen: None,
            relay_ip,
            relay_port_range: 50000..=60000,
            public_ip: None,
            user_quota: 12,
            max_allocations: 10_000,
            bandwidth_bps: 0,
            peer_policy: PeerPolicy::default(),
            max_connections: 4096,
            max_connections_per_source: 256,
            auth_deadline: Duration::from_secs(5),
        }
    }
}

/// Why the TURN server could not start. Messages are for operators.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TurnError {
    #[error("cannot bind TURN {proto} on {addr}: {}", bind_hint(.source, *.addr))]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("invalid TURN configuration: {0}")]
    Config(&'static str),
}

/// Kernel buffer asked for on the UDP listener, each direction. At the
/// default (~208 KiB) a burst from many clients overflowed it while the
/// reader task waited for a core: 23 % loss flat out (docs/benchmarks-turn.md).
const LISTENER_BUFFER: usize = 4 << 20;
/// The same for each relay socket; there is one per allocation.
pub(crate) const RELAY_BUFFER: usize = 1 << 20;

/// Best effort: the kernel caps the size at net.core.{r,w}mem_max. Returns
/// the receive buffer granted.
pub(crate) fn grow_socket_buffers(socket: &impl std::os::fd::AsFd, bytes: usize) -> usize {
    let sock = socket2::SockRef::from(socket);
    let _ = sock.set_recv_buffer_size(bytes);
    let _ = sock.set_send_buffer_size(bytes);
    // Linux reports twice what it granted.
    sock.recv_buffer_size().unwrap_or(0) / 2
}

fn bind_hint(e: &io::Error, addr: SocketAddr) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => format!(
            "address in use — another TURN server (coturn?) is running; stop it or set turn port \
             {} to a free one",
            addr.port()
        ),
        io::ErrorKind::PermissionDenied => "permission denied — ports below 1024 need root or \
                                            CAP_NET_BIND_SERVICE"
            .to_owned(),
        io::ErrorKind::AddrNotAvailable => {
            "address not available — this host has no such IP; use 0.0.0.0 or a local address"
                .to_owned()
        }
        _ => e.to_string(),
    }
}

/// A running TURN server. Dropping it (or [`TurnHandle::shutdown`]) stops
/// every listener, connection and relay.
#[derive(Debug)]
pub struct TurnHandle {
    pub udp_addr: Option<SocketAddr>,
    pub tcp_addr: Option<SocketAddr>,
    pub tls_addr: Option<SocketAddr>,
    /// For TCP and TLS connections accepted by another listener.
    pub streams: stream::StreamDoor,
    tasks: JoinSet<()>,
}

impl TurnHandle {
    /// Stops the server and waits until its tasks are gone.
    pub async fn shutdown(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Binds all listeners and starts the server.
pub async fn spawn(config: TurnConfig) -> Result<TurnHandle, TurnError> {
    if config.relay_port_range.is_empty() {
        return Err(TurnError::Config("turn relay port range is empty"));
    }
    if config.relay_ip.is_unspecified() && config.public_ip.is_none() {
        return Err(TurnError::Config(
            "relay_ip is unspecified (0.0.0.0 or ::) and no public_ip is set, so clients would \
             be told to send to 0.0.0.0; set the public IP of this host",
        ));
    }
    if config
        .public_ip
        .is_some_and(|p| p.is_ipv6() != config.relay_ip.is_ipv6())
    {
        return Err(TurnError::Config(
            "public_ip and relay_ip are of different address families",
        ));
    }
    if config.peer_policy.allows_private_peers() {
        warn!(
            "TURN dangerous option on: relays may reach loopback and private networks. Anyone \
             with TURN credentials can reach services on this host and its LAN. Use only in tests."
        );
    }

    let mut core_cfg = proto::Config::new(config.realm.clone(), config.secret.clone());
    core_cfg.user_quota = config.user_quota;
    core_cfg.max_allocations = config.max_allocations;
    core_cfg.bandwidth_bps = config.bandwidth_bps;
    core_cfg.peer_policy = config.peer_policy.clone();
    core_cfg.public_ip = config.public_ip;
    core_cfg.relay_ipv6 = config.relay_ip.is_ipv6();
    let mut nonce_key = [0u8; 32];
    getrandom::getrandom(&mut nonce_key)
        .map_err(|_| TurnError::Config("no OS randomness for the nonce key"))?;
    let core = proto::TurnServer::new(core_cfg, Instant::now(), SystemTime::now(), nonce_key);

    let bind_err = |proto, addr| {
        move |source| TurnError::Bind {
            proto,
            addr,
            source,
        }
    };
    let udp = match config.udp_listen {
        Some(addr) => {
            let socket = UdpSocket::bind(addr).await.map_err(bind_err("UDP", addr))?;
            let granted = grow_socket_buffers(&socket, LISTENER_BUFFER);
            if granted < LISTENER_BUFFER {
                tracing::warn!(
                    granted_kib = granted / 1024,
                    "the TURN UDP listener got a {} KiB kernel receive buffer, less than the {} KiB \
                     asked for; bursts from many clients can overflow it and relayed media is lost. \
                     Raise the cap: sysctl -w net.core.rmem_max={LISTENER_BUFFER} \
                     net.core.wmem_max={LISTENER_BUFFER}",
                    granted / 1024,
                    LISTENER_BUFFER / 1024
                );
            }
            Some(Arc::new(socket))
        }
        None => None,
    };
    let tcp = match config.tcp_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(bind_err("TCP", addr))?,
        ),
        None => None,
    };
    let tls = match &config.tls_listen {
        Some((addr, tls)) => Some((
            TcpListener::bind(addr)
                .await
                .map_err(bind_err("TLS", *addr))?,
            tokio_rustls::TlsAcceptor::from(tls.clone()),
        )),
        None => None,
    };

    let local = |r: io::Result<SocketAddr>, proto, addr| r.map_err(bind_err(proto, addr));
    let (events_tx, events_rx) = mpsc::channel(4096);
    let conns = limits::Connections::new(limits::ConnLimits {
        max: config.max_connections,
        per_source: config.max_connections_per_source,
        headroom: config.max_connections / 8,
    });
    let mut handle = TurnHandle {
        udp_addr: None,
        tcp_addr: None,
        tls_addr: None,
        streams: stream::door(events_tx.clone(), conns.clone(), config.auth_deadline),
        tasks: JoinSet::new(),
    };
    if let (Some(udp), Some(addr)) = (&udp, config.udp_listen) {
        handle.udp_addr = Some(local(udp.local_addr(), "UDP", addr)?);
        handle
            .tasks
            .spawn(actor::read_udp_listener(udp.clone(), events_tx.clone()));
    }
    if let (Some(l), Some(addr)) = (tcp, config.tcp_listen) {
        handle.tcp_addr = Some(local(l.local_addr(), "TCP", addr)?);
        let ev = events_tx.clone();
        handle.tasks.spawn(stream::accept_loop(
            l,
            None,
            Transport::Tcp,
            ev,
            conns.clone(),
            config.auth_deadline,
        ));
    }
    if let Some((l, acceptor)) = tls {
        let addr = config.tls_listen.as_ref().map(|(a, _)| *a);
        let addr = addr.unwrap_or(SocketAddr::new(config.relay_ip, 0));
        handle.tls_addr = Some(local(l.local_addr(), "TLS", addr)?);
        let ev = events_tx.clone();
        handle.tasks.spawn(stream::accept_loop(
            l,
            Some(acceptor),
            Transport::Tls,
            ev,
            conns.clone(),
            config.auth_deadline,
        ));
    }
    let relays = actor::RelayBinder::new(config.relay_ip, config.relay_port_range.clone());
    handle
        .tasks
        .spawn(actor::run(core, udp, relays, conns, events_tx, events_rx));
    info!(
        udp = ?handle.udp_addr,
        tcp = ?handle.tcp_addr,
        tls = ?handle.tls_addr,
        realm = %config.realm,
        "TURN server listening"
    );
    Ok(handle)
}
