//! Which peers a relay may talk to. By default only public unicast
//! addresses: a TURN server on a cloud host must not become a way into the
//! host's own network, its metadata service, or the operator's LAN, nor
//! into the host itself on ports other than moim's media port.
//!
//! Every address is first reduced to one canonical form ([`canonical`]),
//! so `::ffff:127.0.0.1`, `64:ff9b::7f00:1` and `2002:7f00:1::` are judged
//! as `127.0.0.1` (the bypasses of coturn's CVE-2020-26262 and
//! CVE-2026-27624).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Peer address policy. Build with [`PeerPolicy::default`], name the
/// server's own addresses with [`PeerPolicy::own_address`] and the one
/// port on them relays may reach with [`PeerPolicy::allow_own_port`]; tests
/// widen it with [`PeerPolicy::dangerous`].
#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    /// The server's own addresses (canonical). A short list, so a linear
    /// scan on the packet path beats hashing.
    own: Vec<IpAddr>,
    /// The (own address, port) pairs relays may reach: moim's media port.
    open: Vec<SocketAddr>,
    allow_private: bool,
}

/// Why a peer was refused (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Never relayable: unspecified, multicast, broadcast, reserved, cloud
    /// metadata, documentation. Only moim's own media port, opened with
    /// [`PeerPolicy::allow_own_port`], is let through.
    Unroutable,
    /// Loopback, private, CGNAT, link-local, ULA: needs the dangerous door.
    Private,
    /// One of the server's own addresses, on a port other than the ones
    /// opened with [`PeerPolicy::allow_own_port`].
    OwnAddress,
}

impl Refusal {
    /// What an operator can make of a refusal.
    pub fn hint(self) -> &'static str {
        match self {
            Refusal::Unroutable => "the address is never a valid peer (unspecified, multicast, reserved or metadata)",
            Refusal::Private => "loopback and private peers are refused; only --dangerous-turn-allow-private (tests) opens them",
            Refusal::OwnAddress => "moim's own address is open only on its media port; if clients relay to moim's media, check that --node-ip is the address of that port",
        }
    }
}

/// The door to options that weaken the relay's protection.
pub struct DangerousPeerPolicy<'a>(&'a mut PeerPolicy);

impl PeerPolicy {
    /// Marks `ip` as one of the server's own addresses: refused on every
    /// port not opened with [`PeerPolicy::allow_own_port`], even if public.
    pub fn own_address(&mut self, ip: IpAddr) -> &mut Self {
        let ip = canonical(ip);
        if !self.own.contains(&ip) {
            self.own.push(ip);
        }
        self
    }

    /// Lets relays reach `addr`, one of the server's own addresses (even a
    /// private one) on one port: moim's media port, which relayed ICE
    /// needs. The unspecified address, multicast and the like are never
    /// opened: this returns `false` and changes nothing for them.
    pub fn allow_own_port(&mut self, addr: SocketAddr) -> bool {
        let ip = canonical(addr.ip());
        if matches!(classify(ip), Class::Never) || addr.port() == 0 {
            return false;
        }
        self.own_address(ip);
        let addr = SocketAddr::new(ip, addr.port());
        if !self.open.contains(&addr) {
            self.open.push(addr);
        }
        true
    }

    /// Options that make the relay reach what it normally must not.
    pub fn dangerous(&mut self) -> DangerousPeerPolicy<'_> {
        DangerousPeerPolicy(self)
    }

    /// Whether the dangerous private-peer option is on.
    pub fn allows_private_peers(&self) -> bool {
        self.allow_private
    }

    /// Decides on a peer address and port, after canonicalisation.
    pub fn check(&self, peer: SocketAddr) -> Result<(), Refusal> {
        let ip = canonical(peer.ip());
        let class = classify(ip);
        if matches!(class, Class::Never) {
            return Err(Refusal::Unroutable);
        }
        if self.open.contains(&SocketAddr::new(ip, peer.port())) {
            return Ok(());
        }
        // Under the test door, private own addresses (loopback in --dev)
        // are like any other private peer; public ones stay closed.
        if self.own.contains(&ip) && !(self.allow_private && matches!(class, Class::Private)) {
            return Err(Refusal::OwnAddress);
        }
        match class {
            Class::Public => Ok(()),
            Class::Private if self.allow_private => Ok(()),
            Class::Private => Err(Refusal::Private),
            Class::Unroutable | Class::Never => Err(Refusal::Unroutable),
        }
    }

    /// The per-datagram part of [`PeerPolicy::check`] for a peer whose IP
    /// already holds a permission: only the port rule of the server's own
    /// addresses depends on the port.
    pub fn port_allowed(&self, peer: SocketAddr) -> bool {
        if self.own.is_empty() {
            return true;
        }
        let ip = canonical(peer.ip());
        !self.own.contains(&ip) || self.check(SocketAddr::new(ip, peer.port())).is_ok()
    }
}

impl DangerousPeerPolicy<'_> {
    /// Lets allocations relay to loopback, RFC 1918, CGNAT, link-local and
    /// ULA peers. For tests on one host only: on a server this exposes
    /// every service listening on the host and its network.
    pub fn allow_private_peers(&mut self, yes: bool) -> &mut Self {
        self.0.allow_private = yes;
        self
    }
}

enum Class {
    Public,
    Private,
    /// Not a unicast destination anyone should relay to by default.
    Unroutable,
    /// Not a destination at all (unspecified, multicast, broadcast), or one
    /// no server can own (cloud metadata): refused whatever the options.
    Never,
}

/// Unwraps IPv6 forms that embed an IPv4 address: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`)
/// and 6to4 (`2002:AABB:CCDD::/48`).
pub fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else {
        return ip;
    };
    let s = v6.segments();
    let o = v6.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) && !(s[5] == 0 && s[6] == 0) {
        // Mapped, or compatible other than `::` and `::1` (kept as IPv6).
        return IpAddr::V4(tail);
    }
    if s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0 {
        // IPv4-translated (`::ffff:0:a.b.c.d`, RFC 2765).
        return IpAddr::V4(tail);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return IpAddr::V4(tail);
    }
    if s[0] == 0x2002 {
        return IpAddr::V4(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    ip
}

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let o = ip.octets();
    let in_net = |net: [u8; 4], bits: u32| {
        let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
        u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
    };
    if o[0] == 0                          // 0/8 "this network", incl. 0.0.0.0
        || o[0] >= 224                    // 224/4 multicast, 240/4 reserved, broadcast
        || ip == Ipv4Addr::new(169, 254, 169, 254)
    // cloud metadata
    {
        return Class::Never;
    }
    if in_net([192, 0, 0, 0], 24)         // IETF protocol assignments
        || in_net([198, 18, 0, 0], 15)    // benchmarking
        || in_net([192, 0, 2, 0], 24)     // documentation
        || in_net([198, 51, 100, 0], 24)
        || in_net([203, 0, 113, 0], 24)
    {
        return Class::Unroutable;
    }
    if o[0] == 127
        || o[0] == 10
        || in_net([172, 16, 0, 0], 12)
        || in_net([192, 168, 0, 0], 16)
        || in_net([100, 64, 0, 0], 10)
        || in_net([169, 254, 0, 0], 16)
    {
        return Class::Private;
    }
    Class::Public
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    let s = ip.segments();
    if ip.is_unspecified()
        || s[0] & 0xff00 == 0xff00          // ff00::/8 multicast
        || s[..5] == [0; 5] && !ip.is_loopback()
    // ::/80 leftovers that canonical() kept, e.g. ::0.0.0.1
    {
        return Class::Never;
    }
    if s[..4] == [0x100, 0, 0, 0]           // 100::/64 discard
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] == 0)    // Teredo: embeds an IPv4 peer
        || (s[0] == 0x64 && s[1] == 0xff9b)
    // 64:ff9b::/32 incl. local-use NAT64
    {
        return Class::Unroutable;
    }
    if ip.is_loopback()
        || s[0] & 0xfe00 == 0xfc00          // fc00::/7 ULA
        || s[0] & 0xffc0 == 0xfe80          // fe80::/10 link-local
        || s[0] & 0xffc0 == 0xfec0
    // fec0::/10 deprecated site-local
    {
        return Class::Private;
    }
    if s[0] & 0xe000 != 0x2000 {
        // Outside 2000::/3, nothing is global unicast today.
        return Class::Unroutable;
    }
    Class::Public
}

#[cfg(test)]
#[path = "peer_filter_tests.rs"]
mod tests;
