//! The sans-IO TURN server: packets and time in, commands out.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{debug, trace};

use super::allocation::{Allocation, ClientAddr, RelayId};
use super::auth::{long_term_key, parse_rest_username, rest_password, NonceCheck, NonceSigner};
use super::error::ErrorCode;
use super::message::{
    attr, method, ChannelData, Class, DecodeError, Integrity, Message, MessageBuilder,
};
use super::peer_filter::PeerPolicy;
use super::reservation::{Reservation, Reservations, RESERVATION_LIFETIME};

const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
const UDP: u8 = 17;

/// Settings of the core. Build with [`Config::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct Config {
    /// REALM sent in challenges and mixed into the long-term key.
    pub realm: String,
    /// Shared secret of the TURN REST credentials.
    pub secret: String,
    /// Allocations one identity may hold at once (486 past it).
    pub user_quota: usize,
    /// Allocations the whole server holds at once (508 past it).
    pub max_allocations: usize,
    /// Per-allocation relay bandwidth in bytes per second, both directions
    /// together; 0 means unlimited.
    pub bandwidth_bps: u64,
    /// Which peers may be reached.
    pub peer_policy: PeerPolicy,
    /// Address announced in XOR-RELAYED-ADDRESS instead of the bound one.
    pub public_ip: Option<IpAddr>,
    /// Whether relays are IPv6 (else IPv4).
    pub relay_ipv6: bool,
    pub default_lifetime: Duration,
    pub max_lifetime: Duration,
    pub nonce_lifetime: Duration,
}

impl Config {
    pub fn new(realm: impl Into<String>, secret: impl Into<String>) -> Self {
        Config {
            realm: realm.into(),
            secret: secret.into(),
            user_quota: 12,
            max_allocations: 10_000,
            bandwidth_bps: 0,
            peer_policy: PeerPolicy::default(),
            public_ip: None,
            relay_ipv6: false,
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            nonce_lifetime: Duration::from_secs(600),
        }
    }
}

/// What the IO shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send `data` to a client over the listener of its transport.
    SendToClient { to: ClientAddr, data: Vec<u8> },
    /// Send `data` from relay socket `relay` to `to`.
    SendToPeer {
        relay: RelayId,
        to: SocketAddr,
        data: Vec<u8>,
    },
    /// Bind a UDP relay socket in the port range and report it with
    /// [`TurnServer::relay_bound`].
    BindRelay {
        relay: RelayId,
        ipv6: bool,
        port: PortRequest,
    },
    /// Close relay socket `relay`.
    FreeRelay { relay: RelayId },
}

/// Which port a relay socket must get (EVEN-PORT, RFC 8656 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortRequest {
    /// Any free port of the range.
    Any,
    /// An even port.
    Even,
    /// An even port N for `relay`, and N+1 bound as well and kept under
    /// `reserve` (until a FreeRelay, or until an allocation claims it).
    /// Both or neither: report `None` if the pair cannot be had.
    EvenPair { reserve: RelayId },
}

/// An EVEN-PORT R=1 Allocate whose pair of sockets is being bound.
struct PendingPair {
    reserve: RelayId,
    identity: String,
}

/// A verified long-term credential.
struct Auth {
    username: String,
    identity: String,
    key: [u8; 16],
    integrity: Integrity,
}

/// How a request is answered: plain, or signed with the user's key.
struct Reply<'a> {
    to: ClientAddr,
    tx: [u8; 12],
    method: u16,
    fingerprint: bool,
    auth: Option<(Integrity, &'a [u8])>,
}

/// The TURN server state machine.
pub struct TurnServer {
    cfg: Config,
    nonces: NonceSigner,
    epoch: Instant,
    unix_at_epoch: u64,
    allocations: HashMap<ClientAddr, Allocation>,
    by_relay: HashMap<RelayId, ClientAddr>,
    /// Allocations plus reservations held by each identity.
    per_identity: HashMap<String, usize>,
    reservations: Reservations,
    pairs: HashMap<RelayId, PendingPair>,
    next_id: u64,
    next_sweep: Option<Instant>,
    commands: VecDeque<Command>,
}

impl TurnServer {
    /// `now` and `unix_now` are the same moment on the monotonic and the
    /// wall clock; REST expiries are judged as `unix_now + (t - now)`.
    /// `nonce_key` must be random and secret.
    pub fn new(cfg: Config, now: Instant, unix_now: SystemTime, nonce_key: [u8; 32]) -> Self {
        let unix_at_epoch = unix_now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        TurnServer {
            cfg,
            nonces: NonceSigner::new(nonce_key),
            epoch: now,
            unix_at_epoch,
            allocations: HashMap::new(),
            by_relay: HashMap::new(),
            per_identity: HashMap::new(),
            reservations: Reservations::new(nonce_key),
            pairs: HashMap::new(),
            next_id: 1,
            next_sweep: None,
            commands: VecDeque::new(),
        }
    }

    /// Next command for the shell.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// When [`TurnServer::handle_timeout`] wants to be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_sweep
    }

    /// Number of live or pending allocations.
    pub fn allocation_count(&self) -> usize {
        self.allocations.len()
    }

    /// Whether `client` holds an allocation with a bound relay.
    pub fn has_allocation(&self, client: ClientAddr) -> bool {
        self.allocations
            .get(&client)
            .is_some_and(|a| a.relayed.is_some())
    }

    /// Number of relay ports held for a RESERVATION-TOKEN.
    pub fn reservation_count(&self) -> usize {
        self.reservations.len()
    }

    fn unix_secs(&self, now: Instant) -> u64 {
        self.unix_at_epoch + now.saturating_duration_since(self.epoch).as_secs()
    }

    /// Bytes from a client on a listener (one datagram, or one frame of a stream).
    pub fn handle_client(&mut self, now: Instant, from: ClientAddr, bytes: &[u8]) {
        match bytes.first() {
            Some(b) if b >> 6 == 0b01 => self.handle_channel_data(now, from, bytes),
            Some(_) => match Message::decode(bytes) {
                Ok(msg) => match msg.class {
                    Class::Request => self.handle_request(now, from, &msg),
                    Class::Indication if msg.method == method::SEND => {
                        self.handle_send(now, from, &msg)
                    }
                    _ => trace!(?from, "dropping STUN message of unexpected class"),
                },
                Err(e) => trace!(?from, error = %e, "dropping undecodable packet"),
            },
            None => {}
        }
    }

    /// A datagram that arrived on relay socket `relay` from `from`.
    pub fn handle_peer(&mut self, now: Instant, relay: RelayId, from: SocketAddr, bytes: &[u8]) {
        let Some(client) = self.by_relay.get(&relay).copied() else {
            return;
        };
        let Some(a) = self.allocations.get_mut(&client) else {
            return;
        };
        // Permissions are per IP; the server's own addresses are also
        // limited to one port, in this direction as in the other.
        if a.relayed.is_none()
            || !a.has_permission(from.ip(), now)
            || !self.cfg.peer_policy.port_allowed(from)
        {
            trace!(?relay, "dropping peer datagram without permission");
            return;
        }
        if !a.bucket.take(bytes.len(), now) {
            trace!(?relay, "bandwidth cap: dropping peer datagram");
            return;
        }
        let data = match a.peer_channel(from, now) {
            Some(ch) => ChannelData::encode(ch, bytes, client.transport.is_stream()),
            None => {
                let tx = self.next_transaction_id();
                let mut b = MessageBuilder::new(Class::Indication, method::DATA, tx);
                b.add_xor_address(attr::XOR_PEER_ADDRESS, from)
                    .add(attr::DATA, bytes);
                b.finish(None, false)
            }
        };
        self.commands
            .push_back(Command::SendToClient { to: client, data });
    }

    /// The shell's answer to [`Command::BindRelay`]: the bound address, or
    /// `None` if no port could be bound.
    pub fn relay_bound(&mut self, now: Instant, relay: RelayId, bound: Option<SocketAddr>) {
        let pair = self.pairs.remove(&relay);
        let Some(client) = self.by_relay.get(&relay).copied() else {
            if bound.is_some() {
                self.commands.push_back(Command::FreeRelay { relay });
            }
            if let Some(p) = pair {
                self.release_slot(&p.identity);
                if bound.is_some() {
                    self.commands
                        .push_back(Command::FreeRelay { relay: p.reserve });
                }
            }
            return;
        };
        if bound.is_none() {
            if let Some(p) = &pair {
                // The slot taken for the reservation that did not happen.
                self.release_slot(&p.identity);
            }
        }
        let Some(bound) = bound else {
            let Some(a) = self.allocations.get(&client) else {
                return;
            };
            let (tx, key) = (a.allocate_tx, a.key);
            let p = a.pending.as_ref().map(|p| (p.integrity, p.fingerprint));
            self.remove_allocation(client);
            if let Some((integrity, fingerprint)) = p {
                let reply = Reply {
                    to: client,
                    tx,
                    method: method::ALLOCATE,
                    fingerprint,
                    auth: Some((integrity, &key)),
                };
                self.send_error(&reply, ErrorCode::InsufficientCapacity, |_| {});
            }
            return;
        };
        let public = self.cfg.public_ip.unwrap_or(bound.ip());
        let Some(a) = self.allocations.get_mut(&client) else {
            return;
        };
        a.relayed = Some(SocketAddr::new(public, bound.port()));
        a.expires = now + a.lifetime;
        if let Some(p) = pair {
            // The shell bound N+1 beside N (PortRequest::EvenPair).
            let next = SocketAddr::new(public, bound.port().saturating_add(1));
            let token = self.reservations.new_token();
            self.reservations.insert(
                token,
                Reservation {
                    relay: p.reserve,
                    relayed: next,
                    identity: p.identity,
                    expires: now + RESERVATION_LIFETIME,
                },
            );
            a.reservation_token = Some(token);
            debug!(reserved = ?next, "relay port reserved for a RESERVATION-TOKEN");
        }
        debug!(?relay, relayed = ?a.relayed, "allocation ready");
        self.send_allocate_success(client);
    }

    /// A TCP or TLS client went away: its allocation goes with it (RFC 8656 §3.1).
    pub fn client_closed(&mut self, client: ClientAddr) {
        self.remove_allocation(client);
    }

    /// Expires allocations, permissions and channels.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_sweep.is_some_and(|t| now < t) {
            return;
        }
        let expired: Vec<ClientAddr> = self
            .allocations
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(c, _)| *c)
            .collect();
        for c in expired {
            debug!(client = ?c.transport, "allocation expired");
            self.remove_allocation(c);
        }
        for a in self.allocations.values_mut() {
            a.sweep(now);
        }
        for r in self.reservations.expire(now) {
            debug!(reserved = ?r.relayed, "reservation lapsed unclaimed");
            self.release_slot(&r.identity);
            self.commands
                .push_back(Command::FreeRelay { relay: r.relay });
        }
        let idle = self.allocations.is_empty() && self.reservations.is_empty();
        self.next_sweep = (!idle).then_some(now + SWEEP_INTERVAL);
    }

    fn next_transaction_id(&mut self) -> [u8; 12] {
        self.next_id += 1;
        let mut tx = [0u8; 12];
        tx[..8].copy_from_slice(&self.next_id.to_be_bytes());
        tx[8..].copy_from_slice(b"moim");
        tx
    }

    fn remove_allocation(&mut self, client: ClientAddr) {
        let Some(a) = self.allocations.remove(&client) else {
            return;
        };
        self.by_relay.remove(&a.id);
        self.release_slot(&a.identity);
        self.commands.push_back(Command::FreeRelay { relay: a.id });
    }

    /// Gives back one unit of `identity`'s quota.
    fn release_slot(&mut self, identity: &str) {
        if let Some(n) = self.per_identity.get_mut(identity) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_identity.remove(identity);
            }
        }
    }

    fn handle_request(&mut self, now: Instant, from: ClientAddr, msg: &Message<'_>) {
        let plain = Reply {
            to: from,
            tx: msg.transaction_id,
            method: msg.method,
            fingerprint: msg.has_fingerprint,
            auth: None,
        };
        let unknown = msg.unknown_required();
        if !unknown.is_empty() {
            let list: Vec<u8> = unknown.iter().flat_map(|t| t.to_be_bytes()).collect();
            self.send_error(&plain, ErrorCode::UnknownAttribute, |b| {
                b.add(attr::UNKNOWN_ATTRIBUTES, &list);
            });
            return;
        }
        match msg.method {
            method::BINDING => {
                self.send_success(&plain, |b| {
                    b.add_xor_address(attr::XOR_MAPPED_ADDRESS, from.addr);
                });
                return;
            }
            method::ALLOCATE
            | method::REFRESH
            | method::CREATE_PERMISSION
            | method::CHANNEL_BIND => {}
            _ => {
                self.send_error(&plain, ErrorCode::BadRequest, |_| {});
                return;
            }
        }
        let auth = match self.authenticate(now, msg) {
            Ok(auth) => auth,
            Err(code) => {
                let realm = self.cfg.realm.clone();
                let expiry = self.unix_secs(now) + self.cfg.nonce_lifetime.as_secs();
                let nonce = self.nonces.issue(expiry);
                self.send_error(&plain, code, |b| {
                    if matches!(code, ErrorCode::Unauthorized | ErrorCode::StaleNonce) {
                        b.add(attr::REALM, realm.as_bytes())
                            .add(attr::NONCE, nonce.as_bytes());
                    }
                });
                return;
            }
        };
        let reply = Reply {
            auth: Some((auth.integrity, &auth.key)),
            ..plain
        };
        let result = match msg.method {
            method::ALLOCATE => self.allocate(now, from, msg, &auth),
            method::REFRESH => self.refresh(now, from, msg, &auth, &reply),
            method::CREATE_PERMISSION => self.create_permission(now, from, msg, &auth),
            _ => self.channel_bind(now, from, msg, &auth),
        };
        match result {
            Ok(Answer::Success) => self.send_success(&reply, |_| {}),
            Ok(Answer::Done) => {}
            Err(code) => self.send_error(&reply, code, |_| {}),
        }
    }

    /// Long-term credential check with REST usernames (RFC 8489 §9.2.4).
    fn authenticate(&self, now: Instant, msg: &Message<'_>) -> Result<Auth, ErrorCode> {
        let Some(integrity) = msg.integrity_kind() else {
            return Err(ErrorCode::Unauthorized);
        };
        let text = |t| msg.text(t).map_err(|_: DecodeError| ErrorCode::BadRequest);
        let (Some(username), Some(realm), Some(nonce)) = (
            text(attr::USERNAME)?,
            text(attr::REALM)?,
            text(attr::NONCE)?,
        ) else {
            return Err(ErrorCode::BadRequest);
        };
        let unix_now = self.unix_secs(now);
        if self.nonces.check(nonce, unix_now) != NonceCheck::Valid {
            return Err(ErrorCode::StaleNonce);
        }
        if realm != self.cfg.realm {
            debug!("credential for another realm");
            return Err(ErrorCode::Unauthorized);
        }
        let Some((expiry, identity)) = parse_rest_username(username) else {
            debug!("username is not a TURN REST username");
            return Err(ErrorCode::Unauthorized);
        };
        if expiry <= unix_now {
            debug!(expiry, unix_now, "expired TURN REST credential");
            return Err(ErrorCode::Unauthorized);
        }
        let password = rest_password(self.cfg.secret.as_bytes(), username);
        let key = long_term_key(username, realm, &password);
        if msg.verify_integrity(&key) != Some(integrity) {
            debug!("MESSAGE-INTEGRITY mismatch");
            return Err(ErrorCode::Unauthorized);
        }
        Ok(Auth {
            username: username.to_owned(),
            identity: identity.to_owned(),
            key,
            integrity,
        })
    }

    fn handle_send(&mut self, now: Instant, from: ClientAddr, msg: &Message<'_>) {
        let Some(a) = self.allocations.get_mut(&from) else {
            return;
        };
        let (Some(peer), Some(data)) = (msg.get(attr::XOR_PEER_ADDRESS), msg.get(attr::DATA))
        else {
            return;
        };
        let Ok(peer) = msg.xor_address(peer) else {
            return;
        };
        if a.relayed.is_none()
            || peer.is_ipv6() != self.cfg.relay_ipv6
            || !a.has_permission(peer.ip(), now)
            || !self.cfg.peer_policy.port_allowed(peer)
        {
            trace!("dropping Send indication without permission");
            return;
        }
        if !a.bucket.take(data.len(), now) {
            return;
        }
        self.commands.push_back(Command::SendToPeer {
            relay: a.id,
            to: peer,
            data: data.to_vec(),
        });
    }

    fn handle_channel_data(&mut self, now: Instant, from: ClientAddr, bytes: &[u8]) {
        let Some(cd) = ChannelData::decode(bytes) else {
            return;
        };
        let Some(a) = self.allocations.get_mut(&from) else {
            return;
        };
        let Some(peer) = a.channel_peer(cd.channel, now) else {
            trace!("dropping ChannelData on unbound channel");
            return;
        };
        if !a.has_permission(peer.ip(), now) || !a.bucket.take(cd.data.len(), now) {
            return;
        }
        self.commands.push_back(Command::SendToPeer {
            relay: a.id,
            to: peer,
            data: cd.data.to_vec(),
        });
    }

    fn send_success(&mut self, r: &Reply<'_>, f: impl FnOnce(&mut MessageBuilder)) {
        let mut b = MessageBuilder::new(Class::Success, r.method, r.tx);
        f(&mut b);
        let data = b.finish(r.auth, r.fingerprint);
        self.commands
            .push_back(Command::SendToClient { to: r.to, data });
    }

    fn send_error(&mut self, r: &Reply<'_>, code: ErrorCode, f: impl FnOnce(&mut MessageBuilder)) {
        let mut b = MessageBuilder::new(Class::Error, r.method, r.tx);
        b.add_error(code);
        f(&mut b);
        let data = b.finish(r.auth, r.fingerprint);
        self.commands
            .push_back(Command::SendToClient { to: r.to, data });
    }
}

enum Answer {
    /// Send a bare signed success response.
    Success,
    /// The handler answered (or will answer) itself.
    Done,
}

#[path = "turn_requests.rs"]
mod requests;

#[cfg(test)]
#[path = "turn_tests.rs"]
mod tests;
