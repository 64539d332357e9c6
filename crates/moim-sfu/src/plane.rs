//! Starting the media plane: the UDP socket, the ICE-TCP listener, and one
//! shard thread per core (shard 0 also reads the socket, see `demux.rs`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::bounded;
use parking_lot::RwLock;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::api::{Command, RoomKey};
use crate::demux::{Demux, SocketReader};
use crate::doorbell::Doorbell;
use crate::ice_tcp::{self, IceTcpCounts, IceTcpLimits};
use crate::latency::{LatencySnapshot, PassLatency};
use crate::shard::{
    shard_queues, PlaneCounters, Shard, ShardCommand, ShardContext, ShardGauges, ShardHandle,
    SocketIo, DATAGRAM_QUEUE,
};

#[derive(Debug, Clone)]
pub struct MediaConfig {
    pub udp_bind: SocketAddr,
    pub tcp_bind: Option<SocketAddr>,
    /// ICE-TCP arrives through another listener on this port (moim's one
    /// port for everything, which hands connections to
    /// [`MediaPlane::ice_tcp_door`]): no listener of the media plane's
    /// own, and TCP candidates name this port. Wins over `tcp_bind`.
    pub tcp_shared_port: Option<u16>,
    /// The address written into ICE candidates.
    pub announce_ip: IpAddr,
    pub shards: usize,
    /// Bounds on ICE-TCP connections; see [`IceTcpLimits`] for the defaults.
    pub ice_tcp: IceTcpLimits,
    /// Estimate each subscriber's downlink and share it out over its
    /// tracks (`allocate.rs`). On by default; it costs server CPU per
    /// forwarded packet (docs/BENCHMARKS.md), so a server of large
    /// broadcast rooms on good links may turn it off.
    pub downlink_bwe: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("cannot bind the media UDP port {addr}: {source}. Another moim or SFU may be running; stop it or choose another port (--rtc-udp-port / rtc.udp_port)")]
    BindUdp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot bind the ICE-TCP port {addr}: {source}. Stop the other process or choose another port (--rtc-tcp-port / rtc.tcp_port)")]
    BindTcp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start a media thread: {0}")]
    Thread(std::io::Error),
    #[error("cannot set up the media socket's wake-up channel on loopback: {0}. moim needs to send UDP to its own media port; check firewall rules on the lo interface")]
    Doorbell(std::io::Error),
}

/// The control plane's handle on the media plane.
pub struct MediaPlane {
    shards: Vec<ShardHandle>,
    latencies: Vec<Arc<PassLatency>>,
    udp_addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
    ice_tcp: Option<ice_tcp::IceTcpDoor>,
    next_key: AtomicU64,
    counters: Arc<PlaneCounters>,
    gauges: Vec<Arc<ShardGauges>>,
}

/// What the media plane holds and has done, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaCounts {
    /// Peer connections on all shards.
    pub peers: usize,
    /// Rooms the shards know of.
    pub rooms: usize,
    /// Datagrams dropped because a shard was behind (its queue was full).
    pub datagrams_dropped: u64,
    /// Control commands carried out. None is ever dropped.
    pub commands: u64,
    /// Control commands waiting in the shards' queues: rooms wait when a
    /// queue is full, so a high value means rooms are being slowed down.
    pub commands_queued: usize,
}

impl MediaPlane {
    /// Binds the sockets and starts the threads. Must be called inside a
    /// tokio runtime (the ICE-TCP listener is async).
    pub async fn start(config: MediaConfig) -> Result<Arc<Self>, MediaError> {
        let socket = UdpSocket::bind(config.udp_bind).map_err(|source| MediaError::BindUdp {
            addr: config.udp_bind,
            source,
        })?;
        let udp_addr = socket.local_addr().map_err(|source| MediaError::BindUdp {
            addr: config.udp_bind,
            source,
        })?;
        let listener = match config.tcp_bind.filter(|_| config.tcp_shared_port.is_none()) {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| MediaError::BindTcp { addr, source })?,
            ),
            None => None,
        };
        let tcp_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        let tcp_candidate_port = config.tcp_shared_port.or(tcp_addr.map(|a| a.port()));
        size_socket_buffers(&socket);
        // Shard 0 polls the socket and drains it without blocking.
        socket
            .set_nonblocking(true)
            .map_err(|source| MediaError::BindUdp {
                addr: config.udp_bind,
                source,
            })?;
        let socket = Arc::new(socket);
        let routes: Arc<RwLock<HashMap<String, usize>>> = Arc::default();
        let (recycle_tx, recycle_rx) = bounded::<Vec<u8>>(DATAGRAM_QUEUE);

        let n = config.shards.max(1);
        let doorbell = Arc::new(Doorbell::new(udp_addr).map_err(MediaError::Doorbell)?);
        let doorbell_addr = doorbell.address().map_err(MediaError::Doorbell)?;
        let counters = Arc::<PlaneCounters>::default();
        let queues: Vec<_> = (0..n)
            .map(|i| shard_queues((i == 0).then(|| doorbell.clone()), counters.clone()))
            .collect();
        let shards: Vec<ShardHandle> = queues.iter().map(|(tx, _)| tx.clone()).collect();
        let mut recycle_rx = Some(recycle_rx);
        let latencies: Vec<Arc<PassLatency>> = (0..n).map(|_| Arc::default()).collect();
        let gauges: Vec<Arc<ShardGauges>> = (0..n).map(|_| Arc::default()).collect();
        for (index, (_, inbox)) in queues.into_iter().enumerate() {
            let io_parts = (socket.clone(), routes.clone());
            let ctx = ShardContext {
                index,
                udp_candidate: SocketAddr::new(config.announce_ip, udp_addr.port()),
                tcp_candidate: tcp_candidate_port.map(|p| SocketAddr::new(config.announce_ip, p)),
                downlink_bwe: config.downlink_bwe,
                recycle: recycle_tx.clone(),
                latency: latencies[index].clone(),
                counters: counters.clone(),
                gauges: gauges[index].clone(),
            };
            // Send and receive batches hold raw pointers; they are built on
            // their thread.
            let reader_parts = match (index, recycle_rx.take()) {
                (0, Some(recycle)) => {
                    Some((socket.clone(), routes.clone(), shards.clone(), recycle))
                }
                _ => None,
            };
            std::thread::Builder::new()
                .name(format!("moim-media-{index}"))
                .spawn(move || {
                    let reader = reader_parts.map(|(socket, routes, shards, recycle)| {
                        SocketReader::new(
                            socket,
                            Demux::new(routes),
                            doorbell_addr,
                            shards,
                            recycle,
                        )
                    });
                    let io = SocketIo::new(index, io_parts.0, io_parts.1);
                    Shard::new(ctx, io, Instant::now()).run(inbox, reader)
                })
                .map_err(MediaError::Thread)?;
        }

        let ice_tcp = tcp_candidate_port.map(|_| {
            let conns = ice_tcp::Connections::new(config.ice_tcp.clone());
            ice_tcp::IceTcpDoor::new(conns, shards.clone(), routes)
        });
        if let (Some(listener), Some(door)) = (listener, &ice_tcp) {
            tokio::spawn(ice_tcp::accept(listener, door.clone()));
        }
        info!(%udp_addr, tcp = ?tcp_addr, shards = n, "media plane started");
        Ok(Arc::new(Self {
            shards,
            latencies,
            udp_addr,
            tcp_addr,
            ice_tcp,
            next_key: AtomicU64::new(1),
            counters,
            gauges,
        }))
    }

    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// ICE-TCP connections now, by state (zero when ICE-TCP is off).
    pub fn ice_tcp_counts(&self) -> IceTcpCounts {
        self.ice_tcp
            .as_ref()
            .map(ice_tcp::IceTcpDoor::counts)
            .unwrap_or_default()
    }

    /// Where ICE-TCP connections accepted by another listener enter; `None`
    /// when ICE-TCP is off.
    pub fn ice_tcp_door(&self) -> Option<ice_tcp::IceTcpDoor> {
        self.ice_tcp.clone()
    }

    /// How long shards held media, summed over all shards (see `latency.rs`).
    pub fn pass_latency(&self) -> LatencySnapshot {
        self.latencies
            .iter()
            .fold(LatencySnapshot::default(), |acc, l| {
                acc.merge(&l.snapshot())
            })
    }

    /// A fresh key for a room, peer or track.
    pub fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// All of a room lives on one shard, so forwarding never crosses threads.
    /// Waits while the shard's command queue is full: a command is never
    /// dropped, so the room and its shard never disagree.
    pub async fn send(&self, room: RoomKey, cmd: Command) {
        let shard = &self.shards[(room.0 as usize) % self.shards.len()];
        if shard.command(ShardCommand::Room(cmd)).await.is_err() {
            warn!(%room,
                "a media shard thread has stopped, so this room has no media until moim \
                 restarts; an earlier ERROR or panic from a moim-media thread says why. \
                 Restart moim"
            );
        }
    }

    pub fn counts(&self) -> MediaCounts {
        MediaCounts {
            peers: self
                .gauges
                .iter()
                .map(|g| g.peers.load(Ordering::Relaxed))
                .sum(),
            rooms: self
                .gauges
                .iter()
                .map(|g| g.rooms.load(Ordering::Relaxed))
                .sum(),
            datagrams_dropped: self.counters.datagrams_dropped.load(Ordering::Relaxed),
            commands: self.counters.commands.load(Ordering::Relaxed),
            commands_queued: self.shards.iter().map(ShardHandle::commands_queued).sum(),
        }
    }
}

/// Kernel buffer asked for on the media socket, each direction. The default
/// (~208 KiB) holds a few frames of one HD stream; a shard's send batch or a
/// burst of keyframes from several publishers overflows it.
const SOCKET_BUFFER: usize = 4 << 20;

fn size_socket_buffers(socket: &UdpSocket) {
    use nix::sys::socket::{getsockopt, setsockopt, sockopt};
    // The *Force options pass the sysctl cap when moim has CAP_NET_ADMIN.
    if setsockopt(socket, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
        let _ = setsockopt(socket, sockopt::RcvBuf, &SOCKET_BUFFER);
    }
    if setsockopt(socket, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
        let _ = setsockopt(socket, sockopt::SndBuf, &SOCKET_BUFFER);
    }
    // Linux reports twice what it granted (it counts its own bookkeeping).
    let granted = |v: nix::Result<usize>| v.unwrap_or(0) / 2;
    let rcv = granted(getsockopt(socket, sockopt::RcvBuf));
    let snd = granted(getsockopt(socket, sockopt::SndBuf));
    if rcv < SOCKET_BUFFER || snd < SOCKET_BUFFER {
        warn!(
            receive_kib = rcv / 1024,
            send_kib = snd / 1024,
            "the media UDP socket got smaller kernel buffers than the {} KiB moim asks for; \
             bursts of video can overflow them and show up as packet loss and NACKs. Raise the \
             caps (sysctl -w net.core.rmem_max={SOCKET_BUFFER} net.core.wmem_max={SOCKET_BUFFER}) \
             or give moim CAP_NET_ADMIN",
            SOCKET_BUFFER / 1024
        );
    } else {
        debug!(
            receive_kib = rcv / 1024,
            send_kib = snd / 1024,
            "media socket buffers"
        );
    }
}
