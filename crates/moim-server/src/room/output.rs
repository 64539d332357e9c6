//! What a room core asks its shell to do, and the clock it is given.
//!
//! The core never sends anything itself: it queues [`RoomOutput`]s, and the
//! shell (or a test) takes them with [`super::RoomCore::poll_output`].

use std::collections::VecDeque;
use std::time::Instant;

use moim_proto::lk::{self, signal_response::Message as Resp};
use moim_proto::token::Claims;
use moim_sfu::Command;

use super::participant::{ConnectionId, Participant};

/// Why the server ends a signal connection; the close frame says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalClose {
    /// The participant left the room, for this reason.
    Left(lk::DisconnectReason),
    /// The participant resumed on a newer connection.
    Replaced,
}

/// The time, as a room needs it: a monotonic instant for its timeouts and
/// the wall clock for the timestamps clients and webhooks see.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub unix_ms: i64,
}

impl Now {
    pub fn system() -> Self {
        Self {
            at: Instant::now(),
            unix_ms: crate::unix_ms(),
        }
    }

    pub fn unix_secs(&self) -> i64 {
        self.unix_ms.div_euclid(1000)
    }
}

#[derive(Debug)]
pub enum RoomOutput {
    /// A message for one signal connection.
    Signal {
        to: ConnectionId,
        message: Box<Resp>,
    },
    /// Close a signal connection once the messages before it are written.
    CloseSignal { to: ConnectionId, why: SignalClose },
    /// A command for the room's media shard.
    Media(Command),
    /// A webhook event, for the notifier.
    Webhook(Box<lk::WebhookEvent>),
    /// A fresh access token for one signal connection: the shell signs
    /// these claims and sends them as `refresh_token`.
    RefreshToken {
        to: ConnectionId,
        claims: Box<Claims>,
    },
}

/// The queue of outputs, kept apart from the room's state so that a room
/// can write to it while it holds a participant.
#[derive(Default)]
pub(crate) struct Outbox(VecDeque<RoomOutput>);

impl Outbox {
    /// A message to a participant's current signal connection, if it has one
    /// (a participant waiting to resume has none; it gets a fresh state).
    pub fn tell(&mut self, p: &Participant, message: Resp) {
        if let Some(to) = p.connection {
            self.0.push_back(RoomOutput::Signal {
                to,
                message: Box::new(message),
            });
        }
    }

    /// Ends the participant's signal connection, after what is queued.
    pub fn close(&mut self, p: &mut Participant, why: SignalClose) {
        if let Some(to) = p.connection.take() {
            self.0.push_back(RoomOutput::CloseSignal { to, why });
        }
    }

    /// A fresh token for the participant's current signal connection.
    pub fn refresh_token(&mut self, p: &Participant, claims: Claims) {
        if let Some(to) = p.connection {
            self.0.push_back(RoomOutput::RefreshToken {
                to,
                claims: Box::new(claims),
            });
        }
    }

    pub fn media(&mut self, command: Command) {
        self.0.push_back(RoomOutput::Media(command));
    }

    pub fn webhook(&mut self, event: lk::WebhookEvent) {
        self.0.push_back(RoomOutput::Webhook(Box::new(event)));
    }

    pub fn pop(&mut self) -> Option<RoomOutput> {
        self.0.pop_front()
    }
}
