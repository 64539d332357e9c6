//! How work reaches a media shard, on two paths that behave differently under
//! overload:
//!
//! - **Datagrams** (UDP from shard 0's socket, ICE-TCP frames) go on a
//!   bounded queue and are dropped when it is full, as a full socket buffer
//!   would drop them. Media tolerates loss; a stalled reader does not.
//!   Every drop is counted ([`PlaneCounters`]).
//! - **Commands** (from rooms, and ICE-TCP connections opening and closing)
//!   are never dropped: a sender waits for room in the queue, so overload
//!   slows the room down instead of leaving it and the shard out of step.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Sender, TrySendError};
use tokio::sync::mpsc;

use crate::api::Command;
use crate::doorbell::Doorbell;

/// Datagrams queued per shard before they are dropped.
pub(crate) const DATAGRAM_QUEUE: usize = 8192;

/// Commands queued per shard before senders wait.
pub(crate) const COMMAND_QUEUE: usize = 4096;

/// Lossy input: media and ICE traffic, plus a token that wakes the shard.
pub(crate) enum ShardInput {
    Datagram {
        at: Instant,
        source: SocketAddr,
        buf: Vec<u8>,
    },
    TcpFrame {
        at: Instant,
        source: SocketAddr,
        buf: Vec<u8>,
    },
    /// Commands are waiting (see [`ShardHandle::command`]).
    Wake,
}

/// Input that must arrive.
pub(crate) enum ShardCommand {
    Room(Command),
    TcpOpen {
        remote: SocketAddr,
        writer: mpsc::Sender<Vec<u8>>,
    },
    TcpClosed {
        remote: SocketAddr,
    },
}

/// Counts every shard adds to, read by `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct PlaneCounters {
    /// Datagrams dropped because their shard's queue was full.
    pub datagrams_dropped: AtomicU64,
    /// Commands the shards carried out.
    pub commands: AtomicU64,
}

/// What one shard reports about itself, updated once per loop pass.
#[derive(Debug, Default)]
pub(crate) struct ShardGauges {
    /// Peer connections, built or waiting for their first use.
    pub peers: AtomicUsize,
    pub rooms: AtomicUsize,
}

/// The shard went away (its thread ended); nothing it owned exists any more.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShardGone;

/// How the control plane and the ICE-TCP tasks reach one shard.
#[derive(Clone)]
pub(crate) struct ShardHandle {
    datagrams: Sender<ShardInput>,
    commands: mpsc::Sender<ShardCommand>,
    /// Shard 0 sleeps on the media socket, so it is woken through it; the
    /// others sleep on their datagram queue.
    doorbell: Option<Arc<Doorbell>>,
    /// A wake-up token is on its way; another would only take a slot.
    wake_pending: Arc<AtomicBool>,
    counters: Arc<PlaneCounters>,
}

/// The shard's side of its two queues.
pub(crate) struct ShardInbox {
    pub datagrams: crossbeam_channel::Receiver<ShardInput>,
    commands: mpsc::Receiver<ShardCommand>,
    wake_pending: Arc<AtomicBool>,
}

pub(crate) fn shard_queues(
    doorbell: Option<Arc<Doorbell>>,
    counters: Arc<PlaneCounters>,
) -> (ShardHandle, ShardInbox) {
    let (datagrams_tx, datagrams_rx) = crossbeam_channel::bounded(DATAGRAM_QUEUE);
    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
    let wake_pending = Arc::new(AtomicBool::new(false));
    let handle = ShardHandle {
        datagrams: datagrams_tx,
        commands: commands_tx,
        doorbell,
        wake_pending: wake_pending.clone(),
        counters,
    };
    let inbox = ShardInbox {
        datagrams: datagrams_rx,
        commands: commands_rx,
        wake_pending,
    };
    (handle, inbox)
}

impl ShardHandle {
    /// Queues a datagram, or drops and counts it when the queue is full.
    pub fn datagram(&self, input: ShardInput) -> Result<(), ShardGone> {
        match self.datagrams.try_send(input) {
            Ok(()) => {
                if let Some(bell) = &self.doorbell {
                    bell.ring();
                }
                Ok(())
            }
            Err(TrySendError::Full(_)) => {
                self.counters
                    .datagrams_dropped
                    .fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => Err(ShardGone),
        }
    }

    /// Queues a command, waiting while the queue is full.
    pub async fn command(&self, command: ShardCommand) -> Result<(), ShardGone> {
        self.commands.send(command).await.map_err(|_| ShardGone)?;
        self.wake();
        Ok(())
    }

    pub fn commands_queued(&self) -> usize {
        self.commands.max_capacity() - self.commands.capacity()
    }

    fn wake(&self) {
        if let Some(bell) = &self.doorbell {
            bell.ring();
            return;
        }
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            // A full queue means the shard is busy and will look at its
            // commands before its next datagram batch anyway.
            let _ = self.datagrams.try_send(ShardInput::Wake);
        }
    }
}

impl ShardInbox {
    /// Takes the commands queued now, to handle before any datagram.
    pub fn commands(&mut self) -> impl Iterator<Item = ShardCommand> + '_ {
        // Cleared first: a command queued after the drain sends a new token.
        self.wake_pending.store(false, Ordering::Release);
        std::iter::from_fn(|| self.commands.try_recv().ok()).take(COMMAND_QUEUE)
    }

    /// The senders are all gone: the plane was dropped.
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed() && self.commands.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RoomKey;

    fn datagram(n: u8) -> ShardInput {
        ShardInput::Datagram {
            at: Instant::now(),
            source: SocketAddr::from(([127, 0, 0, 1], 9)),
            buf: vec![n],
        }
    }

    #[tokio::test]
    async fn a_full_datagram_queue_drops_datagrams_but_never_a_command() {
        let counters = Arc::<PlaneCounters>::default();
        let (handle, mut inbox) = shard_queues(None, counters.clone());
        for _ in 0..DATAGRAM_QUEUE + 100 {
            handle.datagram(datagram(1)).expect("shard is there");
        }
        assert_eq!(counters.datagrams_dropped.load(Ordering::Relaxed), 100);
        for room in 0..100 {
            handle
                .command(ShardCommand::Room(Command::CloseRoom {
                    room: RoomKey(room),
                }))
                .await
                .expect("shard is there");
        }
        let rooms: Vec<u64> = inbox
            .commands()
            .map(|c| match c {
                ShardCommand::Room(Command::CloseRoom { room }) => room.0,
                _ => u64::MAX,
            })
            .collect();
        assert_eq!(rooms, (0..100).collect::<Vec<_>>(), "all, in order");
    }

    #[tokio::test]
    async fn a_sender_waits_for_room_instead_of_dropping() {
        let (handle, mut inbox) = shard_queues(None, Arc::default());
        for room in 0..COMMAND_QUEUE as u64 {
            handle
                .command(ShardCommand::Room(Command::CloseRoom {
                    room: RoomKey(room),
                }))
                .await
                .expect("shard is there");
        }
        let blocked = handle.command(ShardCommand::Room(Command::CloseRoom {
            room: RoomKey(9999),
        }));
        tokio::pin!(blocked);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), &mut blocked).await;
        assert!(waited.is_err(), "a full queue makes the sender wait");
        assert_eq!(inbox.commands().count(), COMMAND_QUEUE);
        blocked.await.expect("then it goes through");
        assert_eq!(inbox.commands().count(), 1);
    }

    #[tokio::test]
    async fn one_wake_up_token_covers_many_commands() {
        let (handle, mut inbox) = shard_queues(None, Arc::default());
        for room in 0..10 {
            handle
                .command(ShardCommand::Room(Command::CloseRoom {
                    room: RoomKey(room),
                }))
                .await
                .expect("shard is there");
        }
        let tokens = inbox
            .datagrams
            .try_iter()
            .filter(|d| matches!(d, ShardInput::Wake))
            .count();
        assert_eq!(tokens, 1);
        assert_eq!(inbox.commands().count(), 10);
        // Taken: the next command wakes the shard again.
        handle
            .command(ShardCommand::Room(Command::CloseRoom { room: RoomKey(10) }))
            .await
            .expect("shard is there");
        assert_eq!(inbox.datagrams.try_iter().count(), 1);
    }
}
