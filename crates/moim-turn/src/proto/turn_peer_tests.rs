//! The peer filter as a TURN client meets it: CreatePermission and
//! ChannelBind answers, and what Send and peer datagrams get through.

use super::*;

const OWN: &str = "198.51.100.1";
const MEDIA_PORT: u16 = 7882;

/// A server whose own address is reachable on the media port only.
fn harness() -> Harness {
    Harness::new(|cfg| {
        let own = SocketAddr::new(OWN.parse().expect("ip"), MEDIA_PORT);
        assert!(cfg.peer_policy.allow_own_port(own));
    })
}

fn send(h: &mut Harness, c: &Client, peer: SocketAddr) -> Vec<Command> {
    let tx = h.tx();
    let mut b = MessageBuilder::new(Class::Indication, method::SEND, tx);
    b.add_xor_address(attr::XOR_PEER_ADDRESS, peer)
        .add(attr::DATA, b"x");
    h.feed(c.addr, &b.finish(None, false)).1
}

#[test]
fn own_address_is_a_peer_on_the_media_port_only() {
    let mut h = harness();
    let mut c = h.client(1, "alice", Duration::from_secs(600));
    h.allocate(&mut c);
    let media = SocketAddr::new(OWN.parse().expect("ip"), MEDIA_PORT);
    let other = SocketAddr::new(media.ip(), 22);
    let mapped: SocketAddr = format!("[::ffff:{OWN}]:22").parse().expect("addr");

    let (resp, _) = h.request(&mut c, method::CREATE_PERMISSION, peer_req(other));
    assert_eq!(error_code(&resp), Some(403), "CreatePermission to :22");
    let (resp, _) = h.request(&mut c, method::CREATE_PERMISSION, peer_req(mapped));
    // On an IPv4 relay an IPv6 spelling is refused by family first.
    assert_eq!(error_code(&resp), Some(443), "IPv4-mapped :22");
    let (resp, _) = h.request(&mut c, method::CHANNEL_BIND, move |b| {
        b.add(attr::CHANNEL_NUMBER, &[0x40, 0, 0, 0])
            .add_xor_address(attr::XOR_PEER_ADDRESS, other);
    });
    assert_eq!(error_code(&resp), Some(403), "ChannelBind to :22");

    // The media port: allowed, and the permission (per IP) does not open
    // the other ports for Send indications.
    let (resp, _) = h.request(&mut c, method::CREATE_PERMISSION, peer_req(media));
    assert_eq!(error_code(&resp), None);
    assert_eq!(send(&mut h, &c, media).len(), 1, "Send to the media port");
    assert!(send(&mut h, &c, other).is_empty(), "Send to :22 dropped");

    // Nor does it let datagrams from the other ports in.
    let relay = match &send(&mut h, &c, media)[..] {
        [Command::SendToPeer { relay, .. }] => *relay,
        cmds => panic!("expected SendToPeer, got {cmds:?}"),
    };
    h.server.handle_peer(h.now, relay, other, b"from 22");
    assert!(h.drain().0.is_empty(), "datagram from :22 dropped");
    h.server.handle_peer(h.now, relay, media, b"from media");
    assert_eq!(h.drain().0.len(), 1, "datagram from the media port");
}

#[test]
fn the_unspecified_address_is_refused_in_every_form() {
    let mut h = harness();
    let mut c = h.client(1, "alice", Duration::from_secs(600));
    h.allocate(&mut c);
    let mut v6 = h.client(2, "alice", Duration::from_secs(600));
    for any in ["0.0.0.0:7882", "0.0.0.0:9"] {
        let peer: SocketAddr = any.parse().expect("addr");
        let (resp, _) = h.request(&mut c, method::CREATE_PERMISSION, peer_req(peer));
        assert_eq!(error_code(&resp), Some(403), "{any}");
    }
    // IPv6 spellings on an IPv4 relay are refused too (443), and on an
    // IPv6 relay by policy (403).
    let mut h6 = Harness::new(|cfg| cfg.relay_ipv6 = true);
    h6.allocate(&mut v6);
    for any in [
        "[::]:7882",
        "[::ffff:0.0.0.0]:7882",
        "[64:ff9b::]:7882",
        "[2002::1]:7882",
    ] {
        let peer: SocketAddr = any.parse().expect("addr");
        let (resp, _) = h6.request(&mut v6, method::CREATE_PERMISSION, peer_req(peer));
        assert_eq!(error_code(&resp), Some(403), "{any}");
    }
}
