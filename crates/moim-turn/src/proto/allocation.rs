//! Per-allocation state: permissions, channel bindings, bandwidth.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::message::Integrity;
use super::peer_filter::canonical;

/// Permission lifetime (RFC 8656 §9).
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// Channel binding lifetime (RFC 8656 §12).
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// After a channel expires, its number and peer stay reserved this long.
pub const CHANNEL_COOLDOWN: Duration = Duration::from_secs(300);

/// Identifies an allocation and its relay socket across the core and the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelayId(pub u64);

/// How the client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// Stream transports need ChannelData padded to 4 bytes.
    pub fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

/// A client's 5-tuple as far as the core cares: transport and remote address
/// (each transport has one listening address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr {
    pub transport: Transport,
    pub addr: SocketAddr,
}

#[derive(Debug)]
pub(crate) struct Channel {
    pub peer: SocketAddr,
    pub expires: Instant,
}

/// What is needed to answer the Allocate request once the relay is bound.
#[derive(Debug)]
pub(crate) struct PendingAllocate {
    pub integrity: Integrity,
    pub fingerprint: bool,
}

#[derive(Debug)]
pub(crate) struct Allocation {
    pub id: RelayId,
    pub identity: String,
    pub username: String,
    pub key: [u8; 16],
    pub allocate_tx: [u8; 12],
    /// Announced relayed address; `None` while the shell binds the socket.
    pub relayed: Option<SocketAddr>,
    pub pending: Option<PendingAllocate>,
    pub expires: Instant,
    pub lifetime: Duration,
    /// RESERVATION-TOKEN of the port reserved beside this one (EVEN-PORT
    /// R=1), repeated in every success response to the Allocate.
    pub reservation_token: Option<[u8; 8]>,
    permissions: HashMap<IpAddr, Instant>,
    channels: HashMap<u16, Channel>,
    peer_channels: HashMap<SocketAddr, u16>,
    pub bucket: TokenBucket,
}

/// Why a ChannelBind is refused (all map to 400).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BindConflict {
    ChannelTaken,
    PeerTaken,
}

impl Allocation {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: RelayId,
        identity: String,
        username: String,
        key: [u8; 16],
        allocate_tx: [u8; 12],
        pending: PendingAllocate,
        now: Instant,
        lifetime: Duration,
        bucket: TokenBucket,
    ) -> Self {
        Allocation {
            id,
            identity,
            username,
            key,
            allocate_tx,
            relayed: None,
            pending: Some(pending),
            expires: now + lifetime,
            lifetime,
            reservation_token: None,
            permissions: HashMap::new(),
            channels: HashMap::new(),
            peer_channels: HashMap::new(),
            bucket,
        }
    }

    pub fn install_permission(&mut self, ip: IpAddr, now: Instant) {
        self.permissions
            .insert(canonical(ip), now + PERMISSION_LIFETIME);
    }

    pub fn has_permission(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions
            .get(&canonical(ip))
            .is_some_and(|exp| now < *exp)
    }

    /// Checks the RFC 8656 §12.2 rules and binds (or refreshes) the channel.
    pub fn bind_channel(
        &mut self,
        channel: u16,
        peer: SocketAddr,
        now: Instant,
    ) -> Result<(), BindConflict> {
        if let Some(c) = self.channels.get(&channel) {
            if c.peer != peer {
                return Err(BindConflict::ChannelTaken);
            }
        }
        if let Some(c) = self.peer_channels.get(&peer) {
            if *c != channel {
                return Err(BindConflict::PeerTaken);
            }
        }
        self.channels.insert(
            channel,
            Channel {
                peer,
                expires: now + CHANNEL_LIFETIME,
            },
        );
        self.peer_channels.insert(peer, channel);
        self.install_permission(peer.ip(), now);
        Ok(())
    }

    /// The peer bound to `channel`, if the binding is live.
    pub fn channel_peer(&self, channel: u16, now: Instant) -> Option<SocketAddr> {
        self.channels
            .get(&channel)
            .filter(|c| now < c.expires)
            .map(|c| c.peer)
    }

    /// The live channel bound to `peer`.
    pub fn peer_channel(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        let ch = *self.peer_channels.get(&peer)?;
        self.channel_peer(ch, now).map(|_| ch)
    }

    /// Drops expired permissions and channels past their cooldown.
    pub fn sweep(&mut self, now: Instant) {
        self.permissions.retain(|_, exp| now < *exp);
        let gone: Vec<u16> = self
            .channels
            .iter()
            .filter(|(_, c)| now >= c.expires + CHANNEL_COOLDOWN)
            .map(|(n, _)| *n)
            .collect();
        for n in gone {
            if let Some(c) = self.channels.remove(&n) {
                self.peer_channels.remove(&c.peer);
            }
        }
    }
}

/// A token bucket in bytes. Rate 0 means unlimited.
#[derive(Debug)]
pub struct TokenBucket {
    rate: u64,
    tokens: u64,
    last: Instant,
}

impl TokenBucket {
    /// `rate` bytes per second, with one second of burst.
    pub fn new(rate: u64, now: Instant) -> Self {
        TokenBucket {
            rate,
            tokens: rate,
            last: now,
        }
    }

    /// Takes `n` bytes if available.
    pub fn take(&mut self, n: usize, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last);
        let refill = (elapsed.as_micros().min(u128::from(u64::MAX)) as u64)
            .saturating_mul(self.rate)
            / 1_000_000;
        if refill > 0 {
            self.tokens = self.tokens.saturating_add(refill).min(self.rate);
            self.last = now;
        }
        let n = n as u64;
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_limits_and_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, t0);
        assert!(b.take(600, t0));
        assert!(!b.take(600, t0));
        assert!(b.take(400, t0));
        assert!(!b.take(1, t0));
        assert!(b.take(500, t0 + Duration::from_millis(500)));
        assert!(!b.take(100, t0 + Duration::from_millis(500)));
        // Burst is capped at one second worth.
        assert!(!b.take(1001, t0 + Duration::from_secs(100)));
        assert!(b.take(1000, t0 + Duration::from_secs(100)));
        let mut unlimited = TokenBucket::new(0, t0);
        assert!(unlimited.take(usize::MAX, t0));
    }
}
