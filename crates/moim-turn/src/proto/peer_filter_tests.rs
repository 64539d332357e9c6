//! The peer filter over every way of writing an address.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn at(s: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip(s), port)
}

/// Every IPv6 spelling of the IPv4 address `v4`: IPv4-mapped,
/// IPv4-compatible, IPv4-translated, NAT64 and 6to4, and `v4` itself.
fn forms(v4: &str) -> Vec<IpAddr> {
    let o = v4.parse::<Ipv4Addr>().expect("v4").octets();
    let hi = u16::from_be_bytes([o[0], o[1]]);
    let lo = u16::from_be_bytes([o[2], o[3]]);
    vec![
        ip(v4),
        IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, hi, lo)),
        IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0, hi, lo)),
        IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, hi, lo)),
        IpAddr::V6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo)),
        IpAddr::V6(Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1)),
    ]
}

/// Refused by default in every form: the ranges of PRODUCT.md plus the
/// broadcast and cloud metadata addresses.
const DENIED_V4: &[&str] = &[
    "0.0.0.0",
    "0.1.2.3",
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
    "240.0.0.1",
    "255.255.255.255",
];

const DENIED_V6: &[&str] = &[
    "::",
    "::1",
    "::0.0.0.1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fec0::1",
    "ff02::1",
    "ff0e::1",
    "64:ff9b:1::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2001:db8::1",
    "100::1",
    "4000::1",
];

#[test]
fn default_policy_refuses_every_form_of_every_denied_range() {
    let p = PeerPolicy::default();
    for v4 in DENIED_V4 {
        for form in forms(v4) {
            assert!(
                p.check(SocketAddr::new(form, 3478)).is_err(),
                "{form} ({v4}) must be refused"
            );
        }
    }
    for v6 in DENIED_V6 {
        assert!(p.check(at(v6, 3478)).is_err(), "{v6} must be refused");
    }
}

#[test]
fn default_policy_allows_public_peers_in_every_form() {
    let p = PeerPolicy::default();
    for v4 in [
        "8.8.8.8",
        "1.1.1.1",
        "172.32.0.1",
        "100.128.0.1",
        "192.169.0.1",
    ] {
        for form in forms(v4) {
            assert_eq!(p.check(SocketAddr::new(form, 80)), Ok(()), "{form} ({v4})");
        }
    }
    assert_eq!(p.check(at("2606:4700::1111", 80)), Ok(()));
}

#[test]
fn canonical_forms() {
    assert_eq!(canonical(ip("::ffff:127.0.0.1")), ip("127.0.0.1"));
    assert_eq!(canonical(ip("::ffff:0:127.0.0.1")), ip("127.0.0.1"));
    assert_eq!(canonical(ip("64:ff9b::7f00:1")), ip("127.0.0.1"));
    assert_eq!(canonical(ip("2002:7f00:1::")), ip("127.0.0.1"));
    assert_eq!(canonical(ip("::7f00:1")), ip("127.0.0.1"));
    assert_eq!(canonical(ip("::ffff:0.0.0.0")), ip("0.0.0.0"));
    assert_eq!(canonical(ip("::")), ip("::"));
    assert_eq!(canonical(ip("::1")), ip("::1"));
}

#[test]
fn the_unspecified_address_is_never_a_peer_whatever_the_options() {
    let mut p = PeerPolicy::default();
    p.dangerous().allow_private_peers(true);
    for any in ["0.0.0.0", "::", "::ffff:0.0.0.0", "64:ff9b::", "2002::1"] {
        assert!(!p.allow_own_port(at(any, 7882)), "{any} cannot be opened");
        for port in [7882, 22] {
            assert_eq!(p.check(at(any, port)), Err(Refusal::Unroutable), "{any}");
        }
    }
    assert!(!p.allow_own_port(at("224.0.0.1", 7882)));
}

#[test]
fn own_public_address_is_reachable_only_on_the_media_port() {
    let own = "93.184.216.34";
    let mut p = PeerPolicy::default();
    assert!(p.allow_own_port(at(own, 7882)));
    for form in forms(own) {
        assert_eq!(p.check(SocketAddr::new(form, 7882)), Ok(()), "{form}");
        for port in [22, 7880, 7881, 3478, 7883] {
            assert_eq!(
                p.check(SocketAddr::new(form, port)),
                Err(Refusal::OwnAddress),
                "{form}:{port}"
            );
        }
    }
    assert!(p.port_allowed(at(own, 7882)));
    assert!(!p.port_allowed(at(&format!("::ffff:{own}"), 22)));
    assert!(p.port_allowed(at("8.8.8.8", 22)), "others are not own");
    // The test door does not open a public own address.
    p.dangerous().allow_private_peers(true);
    assert_eq!(p.check(at(own, 22)), Err(Refusal::OwnAddress));
}

#[test]
fn own_private_address_is_reachable_only_on_the_media_port() {
    // --dev: moim is on 127.0.0.1; --bind ::1: on ::1.
    for own in ["127.0.0.1", "::1", "10.0.0.5"] {
        let mut p = PeerPolicy::default();
        assert!(p.allow_own_port(at(own, 7882)));
        assert_eq!(p.check(at(own, 7882)), Ok(()), "{own}");
        assert_eq!(p.check(at(own, 22)), Err(Refusal::OwnAddress), "{own}");
        assert!(!p.port_allowed(at(own, 22)));
    }
    let mut p = PeerPolicy::default();
    p.allow_own_port(at("127.0.0.1", 7882));
    assert_eq!(p.check(at("::ffff:127.0.0.1", 7882)), Ok(()));
    assert_eq!(
        p.check(at("::ffff:127.0.0.1", 22)),
        Err(Refusal::OwnAddress)
    );
    assert_eq!(p.check(at("127.0.0.2", 7882)), Err(Refusal::Private));
    // Under the test door, loopback is like any private peer.
    p.dangerous().allow_private_peers(true);
    assert_eq!(p.check(at("127.0.0.1", 22)), Ok(()));
}

#[test]
fn an_own_address_without_an_open_port_is_closed() {
    let mut p = PeerPolicy::default();
    p.own_address(ip("93.184.216.35"));
    assert_eq!(p.check(at("93.184.216.35", 7882)), Err(Refusal::OwnAddress));
    assert_eq!(
        p.check(at("2002:5db8:d823::1", 7882)),
        Err(Refusal::OwnAddress)
    );
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
        assert_eq!(p.check(at(a, 80)), Ok(()), "{a}");
    }
    for a in [
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "169.254.169.254",
        "64:ff9b::a9fe:a9fe",
    ] {
        assert_eq!(p.check(at(a, 80)), Err(Refusal::Unroutable), "{a}");
    }
}
