//! What the session asks its IO loop to do, in the order it decided it.

use std::collections::VecDeque;

use livekit_protocol::{signal_request, SignalRequest};
use str0m::net::Transmit;

use crate::error::{Error, Result};
use crate::event::{ClientEvent, LocalTrack};
use crate::peer::{Peer, Target};

/// Names a command whose answer comes later than the call (a publication waits for the
/// server's answer, a data send for its channel), so the IO loop can hand the answer to
/// whoever asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RequestId(pub u64);

#[derive(Debug)]
pub(crate) enum Output {
    /// Put on the signal WebSocket. If that fails, hand it back with
    /// [`super::Session::handle_signal_send_failed`].
    Signal(SignalRequest),
    /// Send from the UDP socket of this PeerConnection.
    Transmit(Target, Transmit),
    Event(ClientEvent),
    /// The answer to a `publish_*` command.
    Published(RequestId, Result<LocalTrack>),
    /// The answer to a `send_data` command.
    DataSent(RequestId, Result<()>),
}

pub(crate) struct Outbox {
    queue: VecDeque<Output>,
    /// Whether the IO loop has a WebSocket: requests made without one fail on the spot,
    /// which is what stops a handler half way, as a failed send would.
    signal_open: bool,
}

impl Outbox {
    pub fn new() -> Self {
        Self {
            queue: VecDeque::new(),
            signal_open: true,
        }
    }

    pub fn push(&mut self, o: Output) {
        self.queue.push_back(o);
    }

    pub fn pop(&mut self) -> Option<Output> {
        self.queue.pop_front()
    }

    pub fn emit(&mut self, ev: ClientEvent) {
        self.push(Output::Event(ev));
    }

    pub fn signal_open(&self) -> bool {
        self.signal_open
    }

    pub fn set_signal_open(&mut self, open: bool) {
        self.signal_open = open;
    }

    pub fn send(&mut self, msg: signal_request::Message) -> Result<()> {
        if !self.signal_open {
            return Err(Error::signal_closed());
        }
        self.push(Output::Signal(SignalRequest { message: Some(msg) }));
        Ok(())
    }

    /// Tell the server our candidate for `peer`, unless this ICE session already did.
    pub fn trickle(&mut self, peer: &mut Peer) -> Result<()> {
        match peer.take_trickle() {
            Some(t) => self.send(signal_request::Message::Trickle(t)),
            None => Ok(()),
        }
    }
}
