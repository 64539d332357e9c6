//! Data packets: from one participant's `_reliable`/`_lossy` channel to the
//! others', stamped with the sender and filtered by destination.

use moim_proto::lk;
use prost::Message;
use str0m::channel::ChannelData;
use tracing::debug;

use super::{Shard, ShardIo};
use crate::api::{PeerKey, RoomKey};

/// Packets held for a participant whose data channel is not open yet.
const MAX_PENDING_DATA: usize = 64;

/// LiveKit refuses data messages above this size; so does moim.
pub const MAX_DATA_PACKET: usize = 64 * 1024;

impl<Io: ShardIo> Shard<Io> {
    pub(crate) fn on_data(&mut self, from: PeerKey, data: ChannelData) {
        let Some(sender) = self.peers.get(&from) else {
            return;
        };
        if !sender.spec.can_publish_data {
            debug!(
                peer = %from,
                "data dropped: participant lacks canPublishData"
            );
            return;
        }
        if data.data.len() > MAX_DATA_PACKET {
            debug!(
                peer = %from,
                len = data.data.len(),
                "oversized data packet dropped"
            );
            return;
        }
        let reliable = sender
            .channel_labels
            .get(&data.id)
            .is_none_or(|l| l != "_lossy");
        let Ok(mut packet) = lk::DataPacket::decode(data.data.as_slice()) else {
            debug!(peer = %from, "malformed DataPacket dropped");
            return;
        };
        packet.participant_identity = sender.spec.identity.clone();
        packet.participant_sid = sender.spec.participant_sid.clone();
        if let Some(lk::data_packet::Value::User(user)) = packet.value.as_mut() {
            #[allow(deprecated)]
            {
                user.participant_identity = sender.spec.identity.clone();
                user.participant_sid = sender.spec.participant_sid.clone();
                if packet.destination_identities.is_empty() {
                    packet.destination_identities = user.destination_identities.clone();
                }
            }
        }
        let room = sender.spec.room;
        let destinations = packet.destination_identities.clone();
        let bytes = packet.encode_to_vec();
        self.deliver_data(room, Some(from), &bytes, reliable, &destinations);
    }

    /// Writes an encoded DataPacket to every receiving peer of the room,
    /// except the sender's own participant.
    pub(crate) fn deliver_data(
        &mut self,
        room: RoomKey,
        from: Option<PeerKey>,
        bytes: &[u8],
        reliable: bool,
        destinations: &[String],
    ) {
        let sender_sid = from
            .and_then(|k| self.peers.get(&k))
            .map(|p| p.spec.participant_sid.clone());
        let Some(members) = self.rooms.get(&room) else {
            return;
        };
        let members = members.clone();
        for key in members {
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            if !peer.spec.role.receives() || Some(&peer.spec.participant_sid) == sender_sid.as_ref()
            {
                continue;
            }
            if !destinations.is_empty() && !destinations.contains(&peer.spec.identity) {
                continue;
            }
            let channel = if reliable {
                peer.reliable
            } else {
                peer.lossy.or(peer.reliable)
            };
            let Some(id) = channel.filter(|id| peer.open_channels.contains(id)) else {
                // A participant that just joined has no open channel yet;
                // hold a bounded number of packets until it has.
                if peer.pending_data.len() < MAX_PENDING_DATA {
                    peer.pending_data.push((reliable, bytes.to_vec()));
                }
                continue;
            };
            if let Some(mut ch) = peer.rtc.channel(id) {
                if let Err(e) = ch.write(true, bytes) {
                    debug!(peer = %key, "data write failed: {e}");
                }
            }
            self.dirty.push(key);
        }
    }
}

impl<Io: ShardIo> Shard<Io> {
    /// A receiving channel opened: deliver what waited for it.
    pub(crate) fn flush_pending_data(&mut self, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let pending = std::mem::take(&mut peer.pending_data);
        let mut keep = Vec::new();
        for (reliable, bytes) in pending {
            let channel = if reliable {
                peer.reliable
            } else {
                peer.lossy.or(peer.reliable)
            };
            match channel
                .filter(|id| peer.open_channels.contains(id))
                .and_then(|id| peer.rtc.channel(id))
            {
                Some(mut ch) => {
                    if let Err(e) = ch.write(true, &bytes) {
                        debug!(peer = %key, "held data write failed: {e}");
                    }
                }
                None => keep.push((reliable, bytes)),
            }
        }
        peer.pending_data = keep;
        self.dirty.push(key);
    }
}
