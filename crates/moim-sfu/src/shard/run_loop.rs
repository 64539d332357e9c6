//! A shard's event loop: wait for work, handle it, fire due timers, poll the
//! peers that were written to, send the batch. Two flavours: shard 0 waits
//! on the media socket itself (see `demux.rs`); the others wait on their
//! channel, fed by shard 0 and the control plane.

use std::cmp::Reverse;
use std::time::Instant;

use std::sync::atomic::Ordering;

use crossbeam_channel::{RecvTimeoutError, TryRecvError};
use str0m::net::Protocol;
use str0m::Input;
use tracing::{debug, info};

use super::{Shard, ShardCommand, ShardInbox, ShardIo, SocketIo};
use crate::demux::{ReadOutcome, SocketReader};

/// Queued inputs handled per pass before timers and sends get a turn.
const INPUTS_PER_PASS: usize = 256;

/// The running shard: its inbox and the media socket drive it.
impl Shard<SocketIo> {
    pub fn run(self, inputs: ShardInbox, reader: Option<SocketReader>) {
        let index = self.ctx.index;
        match reader {
            Some(reader) => self.run_reading(inputs, reader),
            None => self.run_queued(inputs),
        }
        info!(shard = index, "media shard stopped");
    }

    fn run_reading(mut self, mut inputs: ShardInbox, mut reader: SocketReader) {
        loop {
            if inputs.is_closed() {
                return;
            }
            self.take_commands(&mut inputs);
            let mut more = false;
            for _ in 0..INPUTS_PER_PASS {
                match inputs.datagrams.try_recv() {
                    Ok(input) => self.handle(input),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
                more = true;
            }
            self.end_pass();
            // Work still queued must not wait for a doorbell already rung.
            let deadline = if more && !inputs.datagrams.is_empty() {
                Some(Instant::now())
            } else {
                self.poll_timeout()
            };
            let outcome = reader.read(deadline, |at, source, bytes| {
                self.receive(Protocol::Udp, at, source, bytes)
            });
            if let ReadOutcome::Failed = outcome {
                // ICE-TCP still reaches this shard through its channel.
                return self.run_queued(inputs);
            }
        }
    }

    fn run_queued(mut self, mut inputs: ShardInbox) {
        loop {
            if inputs.is_closed() {
                return;
            }
            self.take_commands(&mut inputs);
            let next = self.poll_timeout();
            let input = match next {
                Some(deadline) => inputs.datagrams.recv_deadline(deadline),
                None => inputs
                    .datagrams
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            match input {
                Ok(input) => {
                    self.handle(input);
                    // Commands first, then what else is queued before
                    // flushing, so one flush covers a burst.
                    self.take_commands(&mut inputs);
                    for input in inputs.datagrams.try_iter().take(INPUTS_PER_PASS) {
                        self.handle(input);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            self.end_pass();
        }
    }

    fn take_commands(&mut self, inputs: &mut ShardInbox) {
        for command in inputs.commands() {
            match command {
                ShardCommand::Room(cmd) => self.command_at(Instant::now(), cmd),
                ShardCommand::TcpOpen { remote, writer } => self.io.tcp_open(remote, writer),
                ShardCommand::TcpClosed { remote } => {
                    self.io.tcp_closed(remote);
                    self.tcp_closed(remote);
                }
            }
        }
    }

    /// Fires due timers, polls the peers written to, sends what they produced.
    fn end_pass(&mut self) {
        let gauges = &self.ctx.gauges;
        gauges.peers.store(self.peer_count(), Ordering::Relaxed);
        gauges
            .rooms
            .store(self.room_events.len(), Ordering::Relaxed);
        self.fire_timers(Instant::now());
        self.flush_dirty();
        self.io.flush();
        if let Some(first) = self.first_read.take() {
            self.ctx
                .latency
                .record(Instant::now().saturating_duration_since(first));
        }
    }
}

/// Time, for a shard core driven by a test as much as by its loop.
impl<Io: ShardIo> Shard<Io> {
    /// When the next peer timer, or report tick, is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let peer = self.timers.peek().map(|Reverse((t, _))| *t);
        [
            peer,
            self.level_tick,
            self.quality_tick,
            self.allocation_tick,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Fires the peers' timers that are due at `now`.
    pub(crate) fn fire_timers(&mut self, now: Instant) {
        self.now = now;
        if self.level_tick.is_some_and(|t| t <= now) {
            self.report_levels(now);
        }
        if self.quality_tick.is_some_and(|t| t <= now) {
            self.report_quality(now);
        }
        if self.allocation_tick.is_some_and(|t| t <= now) {
            self.allocation_tick(now);
        }
        while let Some(Reverse((t, key))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            if peer.next_timeout != Some(t) {
                continue; // superseded
            }
            peer.next_timeout = None;
            peer.last_fired = Some(now);
            if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                debug!(peer = %key, "timeout handling failed: {e}");
            }
            self.drive(key);
        }
    }

    /// Polls every peer that was written to since the last call.
    pub(crate) fn flush_dirty(&mut self) {
        while let Some(key) = self.dirty.pop() {
            if let Some(p) = self.peers.get_mut(&key) {
                p.drive_dequeued();
            }
            self.drive(key);
        }
    }
}
