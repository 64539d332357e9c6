//! The authenticated TURN requests: Allocate, Refresh, CreatePermission,
//! ChannelBind (RFC 8656 §7, §9, §12).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::debug;

use super::{
    Answer, Auth, Command, PendingPair, PortRequest, Reply, TurnServer, SWEEP_INTERVAL, UDP,
};
use crate::proto::allocation::{Allocation, ClientAddr, PendingAllocate, RelayId, TokenBucket};
use crate::proto::error::ErrorCode;
use crate::proto::message::{attr, method, Integrity, Message, CHANNEL_RANGE};
use crate::proto::reservation::Token;

/// The R bit of EVEN-PORT: also reserve the next-higher port.
const EVEN_PORT_RESERVE: u8 = 0x80;

impl TurnServer {
    pub(super) fn lifetime(&self, msg: &Message<'_>) -> Result<Duration, ErrorCode> {
        let requested = msg.u32(attr::LIFETIME).map_err(|_| ErrorCode::BadRequest)?;
        Ok(match requested {
            Some(0) => Duration::ZERO,
            Some(s) => Duration::from_secs(u64::from(s))
                .min(self.cfg.max_lifetime)
                .max(self.cfg.default_lifetime),
            None => self.cfg.default_lifetime,
        })
    }

    pub(super) fn allocate(
        &mut self,
        now: Instant,
        from: ClientAddr,
        msg: &Message<'_>,
        auth: &Auth,
    ) -> Result<Answer, ErrorCode> {
        if let Some(a) = self.allocations.get(&from) {
            if a.allocate_tx != msg.transaction_id {
                return Err(ErrorCode::AllocationMismatch);
            }
            if a.relayed.is_some() {
                // A retransmission of the request that created it.
                self.send_allocate_success(from);
            }
            return Ok(Answer::Done);
        }
        match msg.get(attr::REQUESTED_TRANSPORT) {
            None => return Err(ErrorCode::BadRequest),
            Some([UDP, _, _, _]) => {}
            Some([_, _, _, _]) => return Err(ErrorCode::UnsupportedTransportProtocol),
            Some(_) => return Err(ErrorCode::BadRequest),
        }
        let token: Option<Token> = match msg.get(attr::RESERVATION_TOKEN) {
            None => None,
            Some(v) => Some(v.try_into().map_err(|_| ErrorCode::BadRequest)?),
        };
        // The other bits of the flags byte are reserved and ignored.
        let reserve = match msg.get(attr::EVEN_PORT) {
            None => None,
            Some([flags, ..]) => Some(flags & EVEN_PORT_RESERVE != 0),
            Some([]) => return Err(ErrorCode::BadRequest),
        };
        // RFC 8656 §7.2 step 5: a token names the port (and so the family)
        // already; asking for a parity or a family beside it is malformed.
        if token.is_some()
            && (reserve.is_some() || msg.get(attr::REQUESTED_ADDRESS_FAMILY).is_some())
        {
            return Err(ErrorCode::BadRequest);
        }
        match msg.get(attr::REQUESTED_ADDRESS_FAMILY) {
            None => {}
            Some([0x01, ..]) if !self.cfg.relay_ipv6 => {}
            Some([0x02, ..]) if self.cfg.relay_ipv6 => {}
            Some(_) => return Err(ErrorCode::AddressFamilyNotSupported),
        }
        let lifetime = self.lifetime(msg)?;
        if lifetime.is_zero() {
            return Err(ErrorCode::BadRequest);
        }
        if let Some(token) = token {
            return self.allocate_reserved(now, from, msg, auth, &token, lifetime);
        }
        // A reservation holds a socket like an allocation does, so it
        // counts against both limits until it is claimed or lapses.
        let slots = if reserve == Some(true) { 2 } else { 1 };
        let held = self.per_identity.get(&auth.identity).copied().unwrap_or(0);
        if held + slots > self.cfg.user_quota {
            debug!(held, slots, "allocation quota reached");
            return Err(ErrorCode::AllocationQuotaReached);
        }
        if self.allocations.len() + self.reservations.len() + slots > self.cfg.max_allocations {
            return Err(ErrorCode::InsufficientCapacity);
        }
        self.next_id += 1;
        let id = RelayId(self.next_id);
        let port = match reserve {
            None => PortRequest::Any,
            Some(false) => PortRequest::Even,
            Some(true) => {
                self.next_id += 1;
                let reserve = RelayId(self.next_id);
                self.pairs.insert(
                    id,
                    PendingPair {
                        reserve,
                        identity: auth.identity.clone(),
                    },
                );
                PortRequest::EvenPair { reserve }
            }
        };
        let pending = PendingAllocate {
            integrity: auth.integrity,
            fingerprint: msg.has_fingerprint,
        };
        let a = Allocation::new(
            id,
            auth.identity.clone(),
            auth.username.clone(),
            auth.key,
            msg.transaction_id,
            pending,
            now,
            lifetime,
            TokenBucket::new(self.cfg.bandwidth_bps, now),
        );
        self.allocations.insert(from, a);
        self.by_relay.insert(id, from);
        *self.per_identity.entry(auth.identity.clone()).or_default() += slots;
        self.next_sweep.get_or_insert(now + SWEEP_INTERVAL);
        self.commands.push_back(Command::BindRelay {
            relay: id,
            ipv6: self.cfg.relay_ipv6,
            port,
        });
        Ok(Answer::Done)
    }

    /// Allocate with a RESERVATION-TOKEN: the reserved socket becomes this
    /// allocation's relay, with nothing to bind.
    fn allocate_reserved(
        &mut self,
        now: Instant,
        from: ClientAddr,
        msg: &Message<'_>,
        auth: &Auth,
        token: &Token,
        lifetime: Duration,
    ) -> Result<Answer, ErrorCode> {
        let r = self
            .reservations
            .claim(token, &auth.identity, now)
            .map_err(|why| {
                debug!(?why, "RESERVATION-TOKEN not honoured");
                ErrorCode::InsufficientCapacity
            })?;
        let pending = PendingAllocate {
            integrity: auth.integrity,
            fingerprint: msg.has_fingerprint,
        };
        let mut a = Allocation::new(
            r.relay,
            auth.identity.clone(),
            auth.username.clone(),
            auth.key,
            msg.transaction_id,
            pending,
            now,
            lifetime,
            TokenBucket::new(self.cfg.bandwidth_bps, now),
        );
        a.relayed = Some(r.relayed);
        debug!(relayed = ?r.relayed, "allocation took its reserved port");
        self.allocations.insert(from, a);
        self.by_relay.insert(r.relay, from);
        // per_identity is unchanged: the reservation's slot is now this
        // allocation's.
        self.next_sweep.get_or_insert(now + SWEEP_INTERVAL);
        self.send_allocate_success(from);
        Ok(Answer::Done)
    }

    pub(super) fn send_allocate_success(&mut self, client: ClientAddr) {
        let Some(a) = self.allocations.get_mut(&client) else {
            return;
        };
        let (Some(relayed), integrity, fingerprint) = (
            a.relayed,
            a.pending.as_ref().map(|p| p.integrity),
            a.pending.as_ref().is_some_and(|p| p.fingerprint),
        ) else {
            return;
        };
        let lifetime = u32::try_from(a.lifetime.as_secs()).unwrap_or(u32::MAX);
        let key = a.key;
        let token = a.reservation_token;
        let reply = Reply {
            to: client,
            tx: a.allocate_tx,
            method: method::ALLOCATE,
            fingerprint,
            auth: Some((integrity.unwrap_or(Integrity::Sha1), &key)),
        };
        self.send_success(&reply, |b| {
            b.add_xor_address(attr::XOR_RELAYED_ADDRESS, relayed)
                .add_u32(attr::LIFETIME, lifetime)
                .add_xor_address(attr::XOR_MAPPED_ADDRESS, client.addr);
            if let Some(token) = token {
                b.add(attr::RESERVATION_TOKEN, &token);
            }
        });
    }

    pub(super) fn owned_allocation(
        &mut self,
        from: ClientAddr,
        auth: &Auth,
    ) -> Result<&mut Allocation, ErrorCode> {
        let a = self
            .allocations
            .get_mut(&from)
            .filter(|a| a.relayed.is_some())
            .ok_or(ErrorCode::AllocationMismatch)?;
        if a.username != auth.username {
            return Err(ErrorCode::WrongCredentials);
        }
        Ok(a)
    }

    pub(super) fn refresh(
        &mut self,
        now: Instant,
        from: ClientAddr,
        msg: &Message<'_>,
        auth: &Auth,
        reply: &Reply<'_>,
    ) -> Result<Answer, ErrorCode> {
        let lifetime = self.lifetime(msg)?;
        let a = self.owned_allocation(from, auth)?;
        if lifetime.is_zero() {
            self.remove_allocation(from);
        } else {
            a.expires = now + lifetime;
            a.lifetime = lifetime;
        }
        let secs = u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX);
        self.send_success(reply, |b| {
            b.add_u32(attr::LIFETIME, secs);
        });
        Ok(Answer::Done)
    }

    /// Decodes and vets one XOR-PEER-ADDRESS against family and policy.
    pub(super) fn vet_peer(
        &self,
        msg: &Message<'_>,
        value: &[u8],
    ) -> Result<SocketAddr, ErrorCode> {
        let peer = msg.xor_address(value).map_err(|_| ErrorCode::BadRequest)?;
        if peer.is_ipv6() != self.cfg.relay_ipv6 {
            return Err(ErrorCode::PeerAddressFamilyMismatch);
        }
        if let Err(why) = self.cfg.peer_policy.check(peer) {
            // DEBUG: a client can ask for any address, so this is its
            // business until an operator wonders why a relay fails.
            debug!(
                %peer,
                ?why,
                "TURN peer refused: {}",
                why.hint()
            );
            return Err(ErrorCode::Forbidden);
        }
        Ok(peer)
    }

    pub(super) fn create_permission(
        &mut self,
        now: Instant,
        from: ClientAddr,
        msg: &Message<'_>,
        auth: &Auth,
    ) -> Result<Answer, ErrorCode> {
        self.owned_allocation(from, auth)?;
        let peers = msg
            .get_all(attr::XOR_PEER_ADDRESS)
            .map(|v| self.vet_peer(msg, v))
            .collect::<Result<Vec<_>, _>>()?;
        if peers.is_empty() {
            return Err(ErrorCode::BadRequest);
        }
        let a = self.owned_allocation(from, auth)?;
        for p in peers {
            a.install_permission(p.ip(), now);
        }
        Ok(Answer::Success)
    }

    pub(super) fn channel_bind(
        &mut self,
        now: Instant,
        from: ClientAddr,
        msg: &Message<'_>,
        auth: &Auth,
    ) -> Result<Answer, ErrorCode> {
        self.owned_allocation(from, auth)?;
        let channel = match msg.get(attr::CHANNEL_NUMBER) {
            Some([a, b, _, _]) => u16::from_be_bytes([*a, *b]),
            _ => return Err(ErrorCode::BadRequest),
        };
        if !CHANNEL_RANGE.contains(&channel) {
            return Err(ErrorCode::BadRequest);
        }
        let value = msg
            .get(attr::XOR_PEER_ADDRESS)
            .ok_or(ErrorCode::BadRequest)?;
        let peer = self.vet_peer(msg, value)?;
        let a = self.owned_allocation(from, auth)?;
        a.bind_channel(channel, peer, now)
            .map_err(|_| ErrorCode::BadRequest)?;
        Ok(Answer::Success)
    }
}
