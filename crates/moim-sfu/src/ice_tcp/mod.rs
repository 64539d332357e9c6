//! The ICE-TCP listener (RFC 6544, passive side): RFC 4571 frames between
//! TCP connections and the shards.
//!
//! Anyone can open a TCP connection, so before a connection's first frame
//! has shown it belongs to a participant it gets little: a place in a
//! bounded table (`limits.rs`), a short deadline, and read buffers that
//! grow only with the bytes that arrive (`framing.rs`).

pub(crate) mod framing;
mod limits;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use crate::inbox::{ShardCommand, ShardHandle, ShardInput};
use crate::stun;
use framing::{Framer, TooLong};
use limits::{ConnId, Limit, Refused, Table, Warning};

pub use limits::IceTcpCounts;

/// Bounds on ICE-TCP connections. A connection is *pending* until its first
/// frame is a STUN request for a participant moim knows, then
/// *established*. A source is an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceTcpLimits {
    /// Pending connections in all (moim.toml `rtc.tcp_max_pending`, default
    /// 256). At the bound the oldest pending connection is closed to make
    /// room. Real clients send STUN as soon as they connect, so they are
    /// pending for about one round trip; this only needs to cover the
    /// clients that connect within the same moment.
    pub max_pending: usize,
    /// Pending connections per source (`rtc.tcp_max_pending_per_source`,
    /// default 8). At the bound that source's oldest pending connection is
    /// closed, so one host cannot take the pending set from others. A
    /// browser opens one connection per PeerConnection, two per
    /// participant; 8 covers a few participants behind one NAT joining in
    /// the same round trip.
    pub max_pending_per_source: usize,
    /// Established connections in all (`rtc.tcp_max_established`, default
    /// 4096). At the bound newcomers are refused; established connections
    /// are never closed to make room. Browsers may connect over TCP even
    /// when UDP works, so count two per participant.
    pub max_established: usize,
    /// Established connections per source
    /// (`rtc.tcp_max_established_per_source`, default 512: 256 participants
    /// behind one NAT address). Only a host that knows a participant's ICE
    /// ufrag (from its SDP) can establish a connection; this keeps one such
    /// host from taking every place.
    pub max_established_per_source: usize,
    /// How long a new connection has to deliver its first STUN request
    /// (`rtc.tcp_stun_deadline_secs`, default 3 s). Clients send it right
    /// after the TCP handshake, so this is a few round trips on a bad
    /// mobile link.
    pub stun_deadline: Duration,
}

impl Default for IceTcpLimits {
    fn default() -> Self {
        IceTcpLimits {
            max_pending: 256,
            max_pending_per_source: 8,
            max_established: 4096,
            max_established_per_source: 512,
            stun_deadline: Duration::from_secs(3),
        }
    }
}

/// The largest first frame taken. A first frame must be an ICE Binding
/// request; the same requests go over UDP, so clients keep them to a few
/// hundred bytes, and a longer one is not a client.
const FIRST_FRAME_MAX: usize = 2048;

/// Bytes read from the socket at a time, reused for every read.
const READ_CHUNK: usize = 4096;

/// Frames queued towards a client; the shard drops what does not fit.
const WRITE_QUEUE: usize = 1024;

struct Shared {
    table: Table,
    /// How to tell each pending connection it was evicted.
    kicks: HashMap<ConnId, oneshot::Sender<Limit>>,
}

/// The connection table shared by the listener and its connections.
#[derive(Clone)]
pub(crate) struct Connections {
    shared: Arc<Mutex<Shared>>,
    limits: Arc<IceTcpLimits>,
}

/// A connection's place in the table; dropping it frees the place.
struct Slot {
    conns: Connections,
    id: ConnId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.conns.shared.lock();
        s.table.close(self.id);
        s.kicks.remove(&self.id);
    }
}

impl Connections {
    pub(crate) fn new(limits: IceTcpLimits) -> Self {
        Connections {
            shared: Arc::new(Mutex::new(Shared {
                table: Table::new(limits.clone()),
                kicks: HashMap::new(),
            })),
            limits: Arc::new(limits),
        }
    }

    pub(crate) fn counts(&self) -> IceTcpCounts {
        self.shared.lock().table.counts()
    }

    fn admit(&self, remote: SocketAddr) -> (Slot, oneshot::Receiver<Limit>) {
        let (kick, kicked) = oneshot::channel();
        let admitted = {
            let mut s = self.shared.lock();
            let admitted = s.table.admit(remote.ip(), Instant::now());
            for (id, limit) in &admitted.evicted {
                if let Some(k) = s.kicks.remove(id) {
                    let _ = k.send(*limit);
                }
            }
            s.kicks.insert(admitted.id, kick);
            admitted
        };
        if let Some(w) = admitted.warning {
            self.warn(w, remote);
        }
        let slot = Slot {
            conns: self.clone(),
            id: admitted.id,
        };
        (slot, kicked)
    }

    fn establish(&self, slot: &Slot, remote: SocketAddr) -> Result<(), Refused> {
        let result = {
            let mut s = self.shared.lock();
            let r = s.table.establish(slot.id, Instant::now());
            if r.is_ok() {
                s.kicks.remove(&slot.id);
            }
            r
        };
        result.map_err(|(why, warning)| {
            if let Some(w) = warning {
                self.warn(w, remote);
            }
            why
        })
    }

    /// The operator's account of a limit that was hit: which, its value,
    /// and what to change.
    fn warn(&self, w: Warning, remote: SocketAddr) {
        let (field, key) = w.limit.setting();
        let value = w.limit.value(&self.limits);
        let what = match w.limit {
            Limit::Pending => {
                "connections that have not sent their first STUN request fill the pending \
                 set, so the oldest of them are closed to make room. Someone may be opening \
                 idle connections; clients that send STUN right after connecting still get \
                 in. Raise the limit only if real clients' connections are among those \
                 closed (DEBUG logs of moim_sfu name each one)"
            }
            Limit::PendingPerSource => {
                "one address holds its share of connections that have not sent STUN, so its \
                 oldest are closed (other addresses are unaffected). If many users behind \
                 one NAT address join at the same moment, raise the limit"
            }
            Limit::Established => {
                "every established place is taken, so new connections are refused. Raise \
                 the limit (two per participant) or run another node"
            }
            Limit::EstablishedPerSource => {
                "one address holds its share of established connections, so it is refused \
                 more. If many participants share one NAT address, raise the limit (two per \
                 participant)"
            }
        };
        warn!(
            limit = key,
            value,
            hits = w.hits,
            latest_source = %remote.ip(),
            "ICE-TCP limit reached: {what}. Set {key} in moim.toml ({field}, now {value}). \
             Reported at most once a minute; hits counts the times since the last report"
        );
    }
}

/// Where ICE-TCP connections enter, from moim's own listener or from
/// another that told them apart by their first bytes (one port for
/// everything). The same bounds apply to both.
#[derive(Clone)]
pub struct IceTcpDoor {
    conns: Connections,
    shards: Vec<ShardHandle>,
    routes: Arc<RwLock<HashMap<String, usize>>>,
}

impl IceTcpDoor {
    pub(crate) fn new(
        conns: Connections,
        shards: Vec<ShardHandle>,
        routes: Arc<RwLock<HashMap<String, usize>>>,
    ) -> Self {
        Self {
            conns,
            shards,
            routes,
        }
    }

    /// Serves one RFC 4571 connection, its first bytes still unread (the
    /// one-port listener only peeks). `accepted` starts its deadline for a
    /// first STUN request.
    pub fn serve(&self, stream: TcpStream, remote: SocketAddr, accepted: tokio::time::Instant) {
        let (slot, kicked) = self.conns.admit(remote);
        let deadline = accepted + self.conns.limits.stun_deadline;
        let conn = Conn {
            remote,
            slot,
            conns: self.conns.clone(),
            shards: self.shards.clone(),
            routes: self.routes.clone(),
        };
        tokio::spawn(async move {
            if let Err(e) = conn.serve(stream, kicked, deadline).await {
                debug!(%remote, "ICE-TCP connection closed: {e}");
            }
        });
    }

    pub(crate) fn counts(&self) -> IceTcpCounts {
        self.conns.counts()
    }
}

/// Accepts ICE-TCP connections for as long as the media plane runs.
pub(crate) async fn accept(listener: TcpListener, door: IceTcpDoor) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                debug!("ICE-TCP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        door.serve(stream, remote, tokio::time::Instant::now());
    }
}

/// Why a connection ended, for its DEBUG line.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the client closed it")]
    ClosedByClient,
    #[error("no STUN request within {0:?} (rtc.tcp_stun_deadline_secs)")]
    NoStun(Duration),
    #[error("closed to make room for a newer connection: {key} = {value} reached")]
    Evicted { key: &'static str, value: usize },
    #[error("refused: {key} = {value} reached")]
    Refused { key: &'static str, value: usize },
    #[error("the first frame announces {} bytes; a STUN request is at most {}", .0.len, .0.max)]
    FirstFrameTooLong(TooLong),
    #[error("the first frame is not a STUN request for a known participant")]
    NotStun,
    #[error("the media shard has stopped")]
    ShardGone,
}

impl Ended {
    fn limit(limit: Limit, limits: &IceTcpLimits, evicted: bool) -> Self {
        let key = limit.setting().1;
        let value = limit.value(limits);
        if evicted {
            Ended::Evicted { key, value }
        } else {
            Ended::Refused { key, value }
        }
    }
}

struct Conn {
    remote: SocketAddr,
    /// Held until the connection ends.
    slot: Slot,
    conns: Connections,
    shards: Vec<ShardHandle>,
    routes: Arc<RwLock<HashMap<String, usize>>>,
}

impl Conn {
    async fn serve(
        self,
        stream: TcpStream,
        mut kicked: oneshot::Receiver<Limit>,
        deadline: tokio::time::Instant,
    ) -> Result<(), Ended> {
        let limits = self.conns.limits.clone();
        // Owned halves: no lock between the reader and the writer of a
        // connection that carries media.
        let (reader, mut writer) = stream.into_split();
        let mut frames = FrameStream::new(reader, FIRST_FRAME_MAX);
        let first = tokio::select! {
            r = tokio::time::timeout_at(deadline, frames.next()) => match r {
                Ok(frame) => frame?,
                Err(_) => return Err(Ended::NoStun(limits.stun_deadline)),
            },
            Ok(limit) = &mut kicked => return Err(Ended::limit(limit, &limits, true)),
        };
        let shard = stun::local_ufrag(&first)
            .and_then(|u| self.routes.read().get(u).copied())
            .ok_or(Ended::NotStun)?;
        let Some(tx) = self.shards.get(shard).cloned() else {
            return Ok(());
        };
        match self.conns.establish(&self.slot, self.remote) {
            Ok(()) => {}
            Err(Refused::Full(limit)) => return Err(Ended::limit(limit, &limits, false)),
            Err(Refused::Evicted) => {
                let limit = kicked.try_recv().unwrap_or(Limit::Pending);
                return Err(Ended::limit(limit, &limits, true));
            }
        }
        frames.framer.set_max_len(usize::from(u16::MAX));
        let remote = self.remote;
        let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
        tx.command(ShardCommand::TcpOpen {
            remote,
            writer: out_tx,
        })
        .await
        .map_err(|_| Ended::ShardGone)?;
        tx.datagram(ShardInput::TcpFrame {
            at: Instant::now(),
            source: remote,
            buf: first,
        })
        .map_err(|_| Ended::ShardGone)?;
        let write_task = tokio::spawn(async move {
            while let Some(frame) = out_rx.recv().await {
                if writer.write_all(&frame).await.is_err() {
                    break;
                }
            }
        });
        let result = loop {
            match frames.next().await {
                Ok(buf) if buf.is_empty() => {}
                Ok(buf) => {
                    let _ = tx.datagram(ShardInput::TcpFrame {
                        at: Instant::now(),
                        source: remote,
                        buf,
                    });
                }
                Err(e) => break Err(e),
            }
        };
        let _ = tx.command(ShardCommand::TcpClosed { remote }).await;
        write_task.abort();
        result
    }
}

/// Frames from a byte stream through one reused read buffer.
struct FrameStream<R> {
    reader: R,
    framer: Framer,
    chunk: [u8; READ_CHUNK],
    start: usize,
    end: usize,
}

impl<R: AsyncRead + Unpin> FrameStream<R> {
    fn new(reader: R, max_len: usize) -> Self {
        FrameStream {
            reader,
            framer: Framer::new(max_len),
            chunk: [0; READ_CHUNK],
            start: 0,
            end: 0,
        }
    }

    /// The next frame. Cancel-safe: bytes read stay in `self`.
    async fn next(&mut self) -> Result<Vec<u8>, Ended> {
        loop {
            if self.start < self.end {
                let (used, frame) = self
                    .framer
                    .feed(&self.chunk[self.start..self.end])
                    .map_err(Ended::FirstFrameTooLong)?;
                self.start += used;
                if let Some(frame) = frame {
                    return Ok(frame);
                }
            }
            let n = self.reader.read(&mut self.chunk).await?;
            if n == 0 {
                return Err(Ended::ClosedByClient);
            }
            self.start = 0;
            self.end = n;
        }
    }
}
