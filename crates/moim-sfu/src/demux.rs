//! Getting datagrams from the one media socket to the shard that owns their
//! room, without a thread of its own.
//!
//! Shard 0 reads the socket. A datagram for one of its own rooms is handled
//! where it lands, straight from the receive buffer; one for another shard
//! goes over that shard's channel. An earlier design had a router thread
//! hand every datagram to a shard, which cost two context switches per
//! incoming packet (a fifth of the server's CPU at 1→200 on one core).
//!
//! Shard 0 sleeps in `poll` on the socket rather than on its channel, so
//! whoever queues work for it rings a `Doorbell` (`doorbell.rs`): one byte sent to the
//! media socket from a socket shard 0 recognises.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use parking_lot::RwLock;
use tracing::debug;

use crate::doorbell::MAX_WAIT;
use crate::inbox::{ShardHandle, ShardInput};
use crate::stun;
use crate::udp_batch::RecvBatch;

/// `recvmmsg` calls per wake-up before shard 0 turns to its timers and queue.
const BATCHES_PER_READ: usize = 8;

/// Which shard a datagram belongs to: known source addresses in O(1), STUN
/// from a new address by the ICE ufrag in its USERNAME.
pub(crate) struct Demux {
    routes: Arc<RwLock<HashMap<String, usize>>>,
    by_addr: HashMap<SocketAddr, usize>,
}

impl Demux {
    pub fn new(routes: Arc<RwLock<HashMap<String, usize>>>) -> Self {
        Self {
            routes,
            by_addr: HashMap::new(),
        }
    }

    pub fn route(&mut self, source: SocketAddr, bytes: &[u8]) -> Option<usize> {
        match stun::local_ufrag(bytes) {
            Some(ufrag) => {
                let shard = self.routes.read().get(ufrag).copied();
                if let Some(s) = shard {
                    if self.by_addr.len() > 100_000 {
                        // Addresses of departed peers; relearned from STUN on demand.
                        self.by_addr.clear();
                    }
                    self.by_addr.insert(source, s);
                }
                shard
            }
            None => self.by_addr.get(&source).copied(),
        }
    }
}

/// Shard 0's side of the media socket.
pub(crate) struct SocketReader {
    socket: Arc<UdpSocket>,
    batch: RecvBatch,
    demux: Demux,
    doorbell: SocketAddr,
    /// Every shard, indexed like the shards; entry 0 is unused.
    shards: Vec<ShardHandle>,
    recycle: Receiver<Vec<u8>>,
    dropped: u64,
}

/// What a read produced, for the shard's loop.
pub(crate) enum ReadOutcome {
    Read,
    /// The media socket failed for good; UDP media stops.
    Failed,
}

impl SocketReader {
    pub fn new(
        socket: Arc<UdpSocket>,
        demux: Demux,
        doorbell: SocketAddr,
        shards: Vec<ShardHandle>,
        recycle: Receiver<Vec<u8>>,
    ) -> Self {
        Self {
            socket,
            batch: RecvBatch::new(),
            demux,
            doorbell,
            shards,
            recycle,
            dropped: 0,
        }
    }

    /// Waits until the socket is readable or `deadline` passes, then reads
    /// what is queued. Datagrams for shard 0 go to `local`, the rest to their
    /// shard's channel; doorbell rings only end the wait.
    pub fn read(
        &mut self,
        deadline: Option<Instant>,
        mut local: impl FnMut(Instant, SocketAddr, &[u8]),
    ) -> ReadOutcome {
        if !self.wait(deadline) {
            return ReadOutcome::Read;
        }
        // Bounded, so a flood cannot starve the shard's timers and commands.
        for _ in 0..BATCHES_PER_READ {
            let n = match self.batch.recv(&self.socket) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return ReadOutcome::Read,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::Interrupted
                            | ErrorKind::ConnectionRefused
                            | ErrorKind::ConnectionReset
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    tracing::error!(
                        "media UDP socket failed: {e}. No room receives UDP media until moim is \
                         restarted; ICE-TCP and TURN/TCP clients are unaffected. Check the host's \
                         network interface and the process's file limits, then restart moim"
                    );
                    return ReadOutcome::Failed;
                }
            };
            let at = Instant::now();
            for i in 0..n {
                let Some((source, bytes)) = self.batch.datagram(i) else {
                    continue;
                };
                if source == self.doorbell {
                    continue;
                }
                match self.demux.route(source, bytes) {
                    Some(0) => local(at, source, bytes),
                    Some(shard) => {
                        let spare = self.recycle.try_recv().unwrap_or_default();
                        let buf = self.batch.take(i, spare);
                        if let Some(tx) = self.shards.get(shard) {
                            // Dropped (and counted) when that shard is behind.
                            let _ = tx.datagram(ShardInput::Datagram { at, source, buf });
                        }
                    }
                    None => {
                        self.dropped += 1;
                        if self.dropped.is_power_of_two() {
                            debug!(%source, dropped = self.dropped, "datagrams from unknown addresses dropped");
                        }
                    }
                }
            }
            if n < crate::udp_batch::BATCH {
                break;
            }
        }
        ReadOutcome::Read
    }

    /// True when the socket has something to read.
    fn wait(&self, deadline: Option<Instant>) -> bool {
        let left = deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(MAX_WAIT)
            .min(MAX_WAIT);
        // Round up: waking a little early would spin until the timer.
        let ms = left.as_micros().div_ceil(1000) as u16;
        let timeout = PollTimeout::from(ms);
        let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, timeout), Ok(n) if n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doorbell::Doorbell;
    use crate::stun::tests::binding;
    use crossbeam_channel::bounded;
    use std::time::Duration;

    fn drain(reader: &mut SocketReader) -> Vec<Vec<u8>> {
        let mut local = Vec::new();
        // Short deadlines: a read returns once nothing more is queued.
        for _ in 0..3 {
            reader.read(
                Some(Instant::now() + Duration::from_millis(20)),
                |_, _, bytes| local.push(bytes.to_vec()),
            );
        }
        local
    }

    #[test]
    fn datagrams_reach_the_shard_of_their_ufrag_and_rings_reach_nobody() {
        let media = UdpSocket::bind("127.0.0.1:0").expect("bind");
        media.set_nonblocking(true).expect("nonblocking");
        let media_addr = media.local_addr().expect("addr");
        let bell = Doorbell::new(media_addr).expect("doorbell");
        let routes: Arc<RwLock<HashMap<String, usize>>> = Arc::default();
        routes.write().insert("own".into(), 0);
        routes.write().insert("other".into(), 1);
        let counters = Arc::<crate::inbox::PlaneCounters>::default();
        let (tx0, _rx0) = crate::inbox::shard_queues(None, counters.clone());
        let (tx1, rx1) = crate::inbox::shard_queues(None, counters);
        let (_recycle_tx, recycle_rx) = bounded(8);
        let mut reader = SocketReader::new(
            Arc::new(media),
            Demux::new(routes),
            bell.address().expect("bell addr"),
            vec![tx0, tx1],
            recycle_rx,
        );

        let ours = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let theirs = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let stranger = UdpSocket::bind("127.0.0.1:0").expect("bind");
        ours.send_to(&binding(b"own:c1"), media_addr).expect("send");
        theirs
            .send_to(&binding(b"other:c2"), media_addr)
            .expect("send");
        bell.ring();
        // After STUN, plain packets from the same addresses follow it.
        ours.send_to(b"rtp for shard 0", media_addr).expect("send");
        theirs
            .send_to(b"rtp for shard 1", media_addr)
            .expect("send");
        stranger
            .send_to(b"nobody knows me", media_addr)
            .expect("send");

        let local = drain(&mut reader);
        assert_eq!(local, vec![binding(b"own:c1"), b"rtp for shard 0".to_vec()]);
        let forwarded: Vec<Vec<u8>> = rx1
            .datagrams
            .try_iter()
            .map(|input| match input {
                ShardInput::Datagram { buf, .. } => buf,
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(
            forwarded,
            vec![binding(b"other:c2"), b"rtp for shard 1".to_vec()]
        );
    }
}
