//! User data over the data channels: `_reliable` and `_lossy` on the publisher PC for sending
//! (sends wait until their channel opens), and whatever channel the server uses for receiving.

use std::collections::HashMap;

use livekit_protocol as proto;
use prost::Message as _;
use str0m::channel::{ChannelData, ChannelId};
use str0m::Rtc;

use super::outbox::{Outbox, Output, RequestId};
use crate::counters::{self, Shared};
use crate::error::{Error, Result};
use crate::event::ClientEvent;
use crate::peer::Target;

struct QueuedPacket {
    reliable: bool,
    bytes: Vec<u8>,
    answer_to: RequestId,
}

pub(crate) struct DataChannels {
    own_identity: String,
    own_sid: String,
    /// Open publisher channels by label.
    publisher: HashMap<String, ChannelId>,
    labels: HashMap<(Target, ChannelId), String>,
    queued: Vec<QueuedPacket>,
    seq: u32,
}

impl DataChannels {
    pub fn new(own_identity: String, own_sid: String) -> Self {
        Self {
            own_identity,
            own_sid,
            publisher: HashMap::new(),
            labels: HashMap::new(),
            queued: Vec::new(),
            seq: 0,
        }
    }

    /// Whether a send still waits for its channel.
    pub fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }

    // Legacy DataPacket/UserPacket fields are filled on purpose: older peers still read them.
    #[allow(deprecated)]
    pub fn queue_user_packet(
        &mut self,
        answer_to: RequestId,
        payload: Vec<u8>,
        reliable: bool,
        destination_identities: Vec<String>,
        topic: Option<String>,
    ) {
        self.seq += 1;
        let kind = if reliable {
            proto::data_packet::Kind::Reliable
        } else {
            proto::data_packet::Kind::Lossy
        };
        let pkt = proto::DataPacket {
            kind: kind as i32,
            participant_identity: self.own_identity.clone(),
            participant_sid: self.own_sid.clone(),
            destination_identities: destination_identities.clone(),
            sequence: self.seq,
            value: Some(proto::data_packet::Value::User(proto::UserPacket {
                participant_identity: self.own_identity.clone(),
                payload,
                destination_identities,
                topic,
                ..Default::default()
            })),
        };
        self.queued.push(QueuedPacket {
            reliable,
            bytes: pkt.encode_to_vec(),
            answer_to,
        });
    }

    /// Write every queued packet whose channel is open, and answer its sender.
    pub fn flush(&mut self, publisher: &mut Rtc, out: &mut Outbox) {
        for q in std::mem::take(&mut self.queued) {
            let label = if q.reliable { "_reliable" } else { "_lossy" };
            let Some(id) = self.publisher.get(label).copied() else {
                self.queued.push(q);
                continue;
            };
            let r: Result<()> = match publisher.channel(id) {
                Some(mut ch) => ch.write(true, &q.bytes).map(|_| ()).map_err(Error::from),
                None => Err(Error::InvalidState(format!("data channel {label} is gone"))),
            };
            out.push(Output::DataSent(q.answer_to, r));
        }
    }

    pub fn on_open(
        &mut self,
        target: Target,
        id: ChannelId,
        label: String,
        publisher: &mut Rtc,
        out: &mut Outbox,
    ) {
        self.labels.insert((target, id), label.clone());
        if target == Target::Publisher {
            self.publisher.insert(label, id);
            self.flush(publisher, out);
        }
    }

    #[allow(deprecated)] // falls back to the legacy UserPacket sender fields
    pub fn on_data(&self, target: Target, d: ChannelData, shared: &Shared, out: &mut Outbox) {
        let reliable = self
            .labels
            .get(&(target, d.id))
            .is_none_or(|l| l != "_lossy");
        let pkt = match proto::DataPacket::decode(d.data.as_slice()) {
            Ok(pkt) => pkt,
            Err(e) => {
                out.emit(ClientEvent::Error(format!(
                    "undecodable DataPacket ({} bytes) on {target:?} PC: {e}",
                    d.data.len()
                )));
                return;
            }
        };
        counters::lock(shared).data_packets += 1;
        if let Some(proto::data_packet::Value::User(u)) = pkt.value {
            let from_identity = if pkt.participant_identity.is_empty() {
                u.participant_identity
            } else {
                pkt.participant_identity
            };
            let from_sid = if pkt.participant_sid.is_empty() {
                u.participant_sid
            } else {
                pkt.participant_sid
            };
            out.emit(ClientEvent::DataReceived {
                from_identity,
                from_sid,
                payload: u.payload,
                topic: u.topic,
                reliable,
                via: target,
            });
        }
    }
}
