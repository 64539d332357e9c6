//! Where a shard's effects on the world go. The shard itself only decides
//! (which peer a packet is for, what to forward to whom); [`ShardIo`] is told
//! what to send and which ICE ufrags now belong to this shard. The running
//! server uses [`SocketIo`]; tests collect the effects and deliver them to
//! clients themselves, on virtual time.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use parking_lot::RwLock;
use str0m::net::Protocol;

use crate::udp_batch::SendBatch;

pub trait ShardIo {
    /// A packet for a client: a UDP datagram, or one ICE-TCP frame.
    fn transmit(&mut self, proto: Protocol, destination: SocketAddr, contents: Vec<u8>);
    /// Packets whose STUN names `ufrag` are for this shard (`true`), or no
    /// longer are (`false`).
    fn route_ufrag(&mut self, ufrag: &str, here: bool);
}

/// The media socket, the ICE-TCP connections and the shared ufrag map.
pub(crate) struct SocketIo {
    index: usize,
    socket: Arc<UdpSocket>,
    /// Datagrams of this loop pass, sent together.
    outbox: SendBatch,
    tcp_writers: HashMap<SocketAddr, tokio::sync::mpsc::Sender<Vec<u8>>>,
    /// ufrag → shard, read by the socket readers for STUN from new addresses.
    ufrag_routes: Arc<RwLock<HashMap<String, usize>>>,
}

impl SocketIo {
    pub fn new(
        index: usize,
        socket: Arc<UdpSocket>,
        ufrag_routes: Arc<RwLock<HashMap<String, usize>>>,
    ) -> Self {
        Self {
            index,
            socket,
            outbox: SendBatch::new(),
            tcp_writers: HashMap::new(),
            ufrag_routes,
        }
    }

    /// Hands this pass's datagrams to the kernel.
    pub fn flush(&mut self) {
        self.outbox.flush(&self.socket);
    }

    pub fn tcp_open(&mut self, remote: SocketAddr, writer: tokio::sync::mpsc::Sender<Vec<u8>>) {
        self.tcp_writers.insert(remote, writer);
    }

    pub fn tcp_closed(&mut self, remote: SocketAddr) {
        self.tcp_writers.remove(&remote);
        super::shrink_when_sparse(&mut self.tcp_writers);
    }
}

impl ShardIo for SocketIo {
    fn transmit(&mut self, proto: Protocol, destination: SocketAddr, contents: Vec<u8>) {
        match proto {
            Protocol::Udp => self.outbox.push(&self.socket, contents, destination),
            _ => {
                let Some(writer) = self.tcp_writers.get(&destination) else {
                    return;
                };
                // RFC 4571: a 16-bit length before each packet.
                let mut framed = Vec::with_capacity(contents.len() + 2);
                framed.extend_from_slice(&(contents.len() as u16).to_be_bytes());
                framed.extend_from_slice(&contents);
                let _ = writer.try_send(framed);
            }
        }
    }

    fn route_ufrag(&mut self, ufrag: &str, here: bool) {
        let mut routes = self.ufrag_routes.write();
        if here {
            routes.insert(ufrag.to_string(), self.index);
        } else {
            routes.remove(ufrag);
            super::shrink_when_sparse(&mut routes);
        }
    }
}
