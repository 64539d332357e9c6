//! One media shard without its thread, sockets or clock, for whoever wants
//! to drive it directly: a test harness on virtual time, and one day a
//! recorder or another transport. The server runs the same core inside its
//! loop (`shard/run_loop.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use str0m::net::Protocol;

use crate::api::Command;
pub use crate::shard::ShardIo;
use crate::shard::{Shard, ShardContext};

/// A shard whose effects go to `Io`. Every input carries its time; after
/// each one, what the shard had to send has been handed to `Io`.
pub struct ShardCore<Io: ShardIo> {
    shard: Shard<Io>,
}

impl<Io: ShardIo> ShardCore<Io> {
    /// A shard that tells clients to send UDP to `udp_candidate`.
    pub fn new(udp_candidate: SocketAddr, io: Io, now: Instant) -> Self {
        let ctx = ShardContext {
            index: 0,
            udp_candidate,
            tcp_candidate: None,
            downlink_bwe: true,
            // Buffers go back to the socket reader in the server; here
            // nobody reads them, and a full channel just drops them.
            recycle: crossbeam_channel::bounded(1).0,
            latency: Arc::default(),
            counters: Arc::default(),
            gauges: Arc::default(),
        };
        Self {
            shard: Shard::new(ctx, io, now),
        }
    }

    pub fn command(&mut self, now: Instant, command: Command) {
        self.shard.command_at(now, command);
        self.shard.flush_dirty();
    }

    /// A UDP datagram from `source`.
    pub fn receive(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        self.shard.receive(Protocol::Udp, now, source, datagram);
        self.shard.flush_dirty();
    }

    /// When [`ShardCore::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.shard.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.shard.fire_timers(now);
        self.shard.flush_dirty();
    }

    pub fn io(&mut self) -> &mut Io {
        &mut self.shard.io
    }

    /// PeerConnections the shard holds, built or waiting for first use.
    pub fn peer_count(&self) -> usize {
        self.shard.peer_count()
    }
}
