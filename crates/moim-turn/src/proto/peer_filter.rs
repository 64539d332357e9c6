//! Which peers a relay may talk to. By default only public unicast
//! addresses: a TURN server on a cloud host must not become a way into the
//! host's own network, its metadata service, or the operator's LAN.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Peer address policy. Build with [`PeerPolicy::default`] and widen with
/// [`PeerPolicy::allow`] or, for tests only, [`PeerPolicy::dangerous`].
#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    allowed: HashSet<IpAddr>,
    allow_private: bool,
}

/// Why a peer was refused (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Never relayable: unspecified, multicast, broadcast, reserved, cloud metadata.
    Unroutable,
    /// Loopback, private, CGNAT, link-local, ULA: needs the dangerous door.
    Private,
}

/// The door to options that weaken the relay's protection.
pub struct DangerousPeerPolicy<'a>(&'a mut PeerPolicy);

impl PeerPolicy {
    /// Always permits `ip` (e.g. moim's own media address, even if private).
    pub fn allow(&mut self, ip: IpAddr) -> &mut Self {
        self.allowed.insert(canonical(ip));
        self
    }

    /// Options that make the relay reach what it normally must not.
    pub fn dangerous(&mut self) -> DangerousPeerPolicy<'_> {
        DangerousPeerPolicy(self)
    }

    /// Whether the dangerous private-peer option is on.
    pub fn allows_private_peers(&self) -> bool {
        self.allow_private
    }

    /// Decides on a peer address, after canonicalisation.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = canonical(ip);
        if self.allowed.contains(&ip) {
            return Ok(());
        }
        match classify(ip) {
            Class::Public => Ok(()),
            Class::Private if self.allow_private => Ok(()),
            Class::Private => Err(Refusal::Private),
            Class::Unroutable => Err(Refusal::Unroutable),
        }
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
    Unroutable,
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
    if o[0] == 0                          // 0/8 "this network"
        || o[0] >= 224                    // 224/4 multicast, 240/4 reserved, broadcast
        || ip == Ipv4Addr::new(169, 254, 169, 254) // cloud metadata
        || in_net([192, 0, 0, 0], 24)     // IETF protocol assignments
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
        || s[..4] == [0x100, 0, 0, 0]       // 100::/64 discard
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] == 0)    // Teredo: embeds an IPv4 peer
        || (s[0] == 0x64 && s[1] == 0xff9b) // 64:ff9b::/32 incl. local-use NAT64
        || s[..5] == [0; 5]                 // other IPv4-embedding leftovers
            && !ip.is_loopback()
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
    Class::Public
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn default_policy_table() {
        let p = PeerPolicy::default();
        let refused = [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.1.1",
            "169.254.169.254",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "240.0.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:a00:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8::1",
        ];
        for a in refused {
            assert!(p.check(ip(a)).is_err(), "{a} must be refused");
        }
        let allowed = [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "192.169.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ];
        for a in allowed {
            assert_eq!(p.check(ip(a)), Ok(()), "{a} must be allowed");
        }
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(canonical(ip("::ffff:127.0.0.1")), ip("127.0.0.1"));
        assert_eq!(canonical(ip("64:ff9b::7f00:1")), ip("127.0.0.1"));
        assert_eq!(canonical(ip("2002:7f00:1::")), ip("127.0.0.1"));
        assert_eq!(canonical(ip("::7f00:1")), ip("127.0.0.1"));
        assert_eq!(canonical(ip("::")), ip("::"));
        assert_eq!(canonical(ip("::1")), ip("::1"));
    }

    #[test]
    fn dangerous_door_allows_loopback_but_not_unroutable() {
        let mut p = PeerPolicy::default();
        p.dangerous().allow_private_peers(true);
        assert!(p.allows_private_peers());
        for a in [
            "127.0.0.1",
            "::ffff:127.0.0.1",
            "10.0.0.1",
            "::1",
            "fe80::1",
        ] {
            assert_eq!(p.check(ip(a)), Ok(()), "{a}");
        }
        for a in [
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert_eq!(p.check(ip(a)), Err(Refusal::Unroutable), "{a}");
        }
    }

    #[test]
    fn allow_list_exception() {
        let mut p = PeerPolicy::default();
        p.allow(ip("10.0.0.5"));
        assert_eq!(p.check(ip("10.0.0.5")), Ok(()));
        assert_eq!(p.check(ip("::ffff:10.0.0.5")), Ok(()));
        assert_eq!(p.check(ip("10.0.0.6")), Err(Refusal::Private));
    }
}
