//! Starting the media plane: the UDP socket, the ICE-TCP listener, and one
//! shard thread per core (shard 0 also reads the socket, see `demux.rs`).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender, TrySendError};
use parking_lot::RwLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use crate::api::{Command, RoomKey};
use crate::demux::{Demux, Doorbell, ShardHandle, SocketReader};
use crate::latency::{LatencySnapshot, PassLatency};
use crate::shard::{Shard, ShardContext, ShardInput};
use crate::stun;

#[derive(Debug, Clone)]
pub struct MediaConfig {
    pub udp_bind: SocketAddr,
    pub tcp_bind: Option<SocketAddr>,
    /// The address written into ICE candidates.
    pub announce_ip: IpAddr,
    pub shards: usize,
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
    next_key: AtomicU64,
}

/// Packets queued per shard before shard 0 starts dropping: bounded, so a
/// flood cannot grow memory without limit.
const SHARD_QUEUE: usize = 8192;

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
        let listener = match config.tcp_bind {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| MediaError::BindTcp { addr, source })?,
            ),
            None => None,
        };
        let tcp_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
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
        let (recycle_tx, recycle_rx) = bounded::<Vec<u8>>(SHARD_QUEUE);

        let n = config.shards.max(1);
        let doorbell = Arc::new(Doorbell::new(udp_addr).map_err(MediaError::Doorbell)?);
        let doorbell_addr = doorbell.address().map_err(MediaError::Doorbell)?;
        let queues: Vec<_> = (0..n).map(|_| bounded::<ShardInput>(SHARD_QUEUE)).collect();
        let senders: Vec<Sender<ShardInput>> = queues.iter().map(|(tx, _)| tx.clone()).collect();
        let mut recycle_rx = Some(recycle_rx);
        let mut shards = Vec::with_capacity(n);
        let latencies: Vec<Arc<PassLatency>> = (0..n).map(|_| Arc::default()).collect();
        for (index, (tx, rx)) in queues.into_iter().enumerate() {
            let ctx = ShardContext {
                index,
                socket: socket.clone(),
                udp_candidate: SocketAddr::new(config.announce_ip, udp_addr.port()),
                tcp_candidate: tcp_addr.map(|a| SocketAddr::new(config.announce_ip, a.port())),
                ufrag_routes: routes.clone(),
                recycle: recycle_tx.clone(),
                latency: latencies[index].clone(),
            };
            // The reader's batch holds raw pointers; it is built on its thread.
            let reader_parts = match (index, recycle_rx.take()) {
                (0, Some(recycle)) => {
                    Some((socket.clone(), routes.clone(), senders.clone(), recycle))
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
                    Shard::new(ctx).run(rx, reader)
                })
                .map_err(MediaError::Thread)?;
            let bell = (index == 0).then(|| doorbell.clone());
            shards.push(ShardHandle::new(tx, bell));
        }

        if let Some(listener) = listener {
            tokio::spawn(accept_ice_tcp(listener, shards.clone(), routes));
        }
        info!(%udp_addr, tcp = ?tcp_addr, shards = n, "media plane started");
        Ok(Arc::new(Self {
            shards,
            latencies,
            udp_addr,
            tcp_addr,
            next_key: AtomicU64::new(1),
        }))
    }

    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
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
    pub fn send(&self, room: RoomKey, cmd: Command) {
        let shard = &self.shards[(room as usize) % self.shards.len()];
        // Commands must not be lost to a full packet queue; block briefly is
        // not an option on the runtime, so spin on try_send a few times.
        let mut cmd = ShardInput::Command(cmd);
        for _ in 0..1000 {
            match shard.try_send(cmd) {
                Ok(()) => return,
                Err(TrySendError::Full(c)) => {
                    cmd = c;
                    std::thread::yield_now();
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        warn!(
            room,
            "media shard is saturated; a control command was dropped"
        );
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

async fn accept_ice_tcp(
    listener: TcpListener,
    shards: Vec<ShardHandle>,
    routes: Arc<RwLock<HashMap<String, usize>>>,
) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                debug!("ICE-TCP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let shards = shards.clone();
        let routes = routes.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_ice_tcp(stream, remote, shards, routes).await {
                debug!(%remote, "ICE-TCP connection ended: {e}");
            }
        });
    }
}

/// RFC 4571 framing over one ICE-TCP connection.
async fn serve_ice_tcp(
    stream: TcpStream,
    remote: SocketAddr,
    shards: Vec<ShardHandle>,
    routes: Arc<RwLock<HashMap<String, usize>>>,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    // The first frame must arrive soon and be STUN: unauthenticated
    // connections do not linger.
    let first = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut reader))
        .await
        .map_err(|_| std::io::Error::new(ErrorKind::TimedOut, "no STUN within 10 s"))??;
    let shard = stun::local_ufrag(&first)
        .and_then(|u| routes.read().get(u).copied())
        .ok_or_else(|| {
            std::io::Error::new(
                ErrorKind::InvalidData,
                "first frame is not STUN for a known peer",
            )
        })?;
    let Some(tx) = shards.get(shard).cloned() else {
        return Ok(());
    };
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1024);
    let send = |input| {
        tx.try_send(input)
            .map_err(|_| std::io::Error::other("media shard queue full"))
    };
    send(ShardInput::TcpOpen {
        remote,
        writer: out_tx,
    })?;
    send(ShardInput::TcpFrame {
        at: Instant::now(),
        source: remote,
        buf: first,
    })?;
    let write_task = tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            if writer.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    let result = loop {
        match read_frame(&mut reader).await {
            Ok(buf) => {
                let _ = tx.try_send(ShardInput::TcpFrame {
                    at: Instant::now(),
                    source: remote,
                    buf,
                });
            }
            Err(e) => break Err(e),
        }
    };
    let _ = tx.try_send(ShardInput::TcpClosed { remote });
    write_task.abort();
    result
}

pub async fn read_frame(
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
) -> std::io::Result<Vec<u8>> {
    let len = reader.read_u16().await? as usize;
    let mut buf = vec![0; len];
    reader.read_exact(&mut buf).await?;
    Ok(buf)
}
