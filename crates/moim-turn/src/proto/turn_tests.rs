//! The core driven with virtual time: no sockets, no sleeps.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::*;
use crate::proto::{rest_credentials, Transport};

const SECRET: &str = "test-secret";
const REALM: &str = "moim.test";

fn unix0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

struct Harness {
    server: TurnServer,
    now: Instant,
    next_port: u16,
    tx: u8,
}

/// A client with its credential and the nonce it learnt.
struct Client {
    addr: ClientAddr,
    username: String,
    password: String,
    nonce: String,
}

fn client_addr(port: u16) -> ClientAddr {
    ClientAddr {
        transport: Transport::Udp,
        addr: SocketAddr::from(([203, 0, 113, 7], port)),
    }
}

impl Harness {
    fn new(f: impl FnOnce(&mut Config)) -> Self {
        let now = Instant::now();
        let mut cfg = Config::new(REALM, SECRET);
        cfg.public_ip = Some("198.51.100.1".parse().expect("ip"));
        f(&mut cfg);
        Harness {
            server: TurnServer::new(cfg, now, unix0(), [9; 32]),
            now,
            next_port: 50000,
            tx: 0,
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.server.handle_timeout(self.now);
    }

    fn tx(&mut self) -> [u8; 12] {
        self.tx += 1;
        [self.tx; 12]
    }

    fn client(&self, port: u16, identity: &str, ttl: Duration) -> Client {
        let (username, password) = rest_credentials(SECRET, identity, ttl, unix0());
        Client {
            addr: client_addr(port),
            username,
            password,
            nonce: String::new(),
        }
    }

    /// Feeds `bytes` and returns everything sent to clients, answering
    /// BindRelay with the next port, and the peer sends separately.
    fn feed(&mut self, from: ClientAddr, bytes: &[u8]) -> (Vec<Vec<u8>>, Vec<Command>) {
        self.server.handle_client(self.now, from, bytes);
        self.drain()
    }

    fn drain(&mut self) -> (Vec<Vec<u8>>, Vec<Command>) {
        let (mut to_client, mut other) = (Vec::new(), Vec::new());
        while let Some(c) = self.server.poll_command() {
            match c {
                Command::SendToClient { data, .. } => to_client.push(data),
                Command::BindRelay { relay, port, .. } => {
                    // Like the shell: the next free port of the right parity,
                    // and the one above it too for a pair.
                    self.next_port += 1;
                    if port != PortRequest::Any && self.next_port % 2 == 1 {
                        self.next_port += 1;
                    }
                    let bound = SocketAddr::from(([127, 0, 0, 1], self.next_port));
                    if matches!(port, PortRequest::EvenPair { .. }) {
                        self.next_port += 1;
                    }
                    self.server.relay_bound(self.now, relay, Some(bound));
                }
                c => other.push(c),
            }
        }
        (to_client, other)
    }

    /// Sends a signed request and returns the single response.
    fn request(
        &mut self,
        c: &mut Client,
        method: u16,
        f: impl Fn(&mut MessageBuilder),
    ) -> (Vec<u8>, Vec<Command>) {
        for _ in 0..3 {
            let (resp, other) = self.request_once(c, method, &f);
            let code = error_code(&resp);
            let m = Message::decode(&resp).expect("response decodes");
            if code == Some(438) || (c.nonce.is_empty() && code == Some(401)) {
                c.nonce = m.text(attr::NONCE).ok().flatten().expect("nonce").into();
                assert_eq!(m.text(attr::REALM), Ok(Some(REALM)));
                continue;
            }
            return (resp, other);
        }
        panic!("challenge loop");
    }

    /// One request, signed if the client has a nonce, and its response.
    fn request_once(
        &mut self,
        c: &Client,
        method: u16,
        f: impl Fn(&mut MessageBuilder),
    ) -> (Vec<u8>, Vec<Command>) {
        {
            let tx = self.tx();
            let mut b = MessageBuilder::new(Class::Request, method, tx);
            f(&mut b);
            let signed = !c.nonce.is_empty();
            if signed {
                b.add(attr::USERNAME, c.username.as_bytes())
                    .add(attr::REALM, REALM.as_bytes())
                    .add(attr::NONCE, c.nonce.as_bytes());
            }
            let key = long_term_key(&c.username, REALM, &c.password);
            let bytes = b.finish(signed.then_some((Integrity::Sha1, &key[..])), true);
            let (mut out, other) = self.feed(c.addr, &bytes);
            assert_eq!(out.len(), 1, "one response");
            let resp = out.remove(0);
            let m = Message::decode(&resp).expect("response decodes");
            assert_eq!(m.transaction_id, tx);
            (resp, other)
        }
    }

    fn allocate(&mut self, c: &mut Client) -> Vec<u8> {
        self.request(c, method::ALLOCATE, |b| {
            b.add(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
        })
        .0
    }
}

fn error_code(resp: &[u8]) -> Option<u16> {
    let m = Message::decode(resp).ok()?;
    let v = m.get(attr::ERROR_CODE)?;
    Some(u16::from(v[2]) * 100 + u16::from(v[3]))
}

fn peer_req(peer: SocketAddr) -> impl Fn(&mut MessageBuilder) {
    move |b: &mut MessageBuilder| {
        b.add_xor_address(attr::XOR_PEER_ADDRESS, peer);
    }
}

fn public_peer() -> SocketAddr {
    "8.8.8.8:4000".parse().expect("addr")
}

#[path = "turn_reservation_tests.rs"]
mod reservation;

#[path = "turn_peer_tests.rs"]
mod peer;

#[test]
fn binding_returns_xor_mapped_address() {
    let mut h = Harness::new(|_| {});
    let req = MessageBuilder::new(Class::Request, method::BINDING, [1; 12]).finish(None, false);
    let (out, _) = h.feed(client_addr(1), &req);
    let m = Message::decode(&out[0]).expect("decodes");
    assert_eq!(m.class, Class::Success);
    let v = m.get(attr::XOR_MAPPED_ADDRESS).expect("attr");
    assert_eq!(m.xor_address(v), Ok(client_addr(1).addr));
}

#[test]
fn allocate_challenges_then_succeeds_with_signed_response() {
    let mut h = Harness::new(|_| {});
    let mut c = h.client(1, "alice", Duration::from_secs(600));
    let resp = h.allocate(&mut c);
    let m = Message::decode(&resp).expect("decodes");
    assert_eq!(m.class, Class::Success, "got error {:?}", error_code(&resp));
    let key = long_term_key(&c.username, REALM, &c.password);
    assert_eq!(m.verify_integrity(&key), Some(Integrity::Sha1));
    let relayed = m.xor_address(m.get(attr::XOR_RELAYED_ADDRESS).expect("attr"));
    assert_eq!(relayed, Ok("198.51.100.1:50001".parse().expect("addr")));
    assert_eq!(m.u32(attr::LIFETIME), Ok(Some(600)));
    assert_eq!(h.server.allocation_count(), 1);
}

#[test]
fn expired_rest_credential_is_refused() {
    let mut h = Harness::new(|_| {});
    let mut c = h.client(1, "alice", Duration::from_secs(60));
    h.advance(Duration::from_secs(61));
    let resp = h.allocate(&mut c);
    assert_eq!(error_code(&resp), Some(401));
    assert_eq!(h.server.allocation_count(), 0);
}

#[test]
fn forged_password_is_refused() {
    let mut h = Harness::new(|_| {});
    let mut c = h.client(1, "alice", Duration::from_secs(600));
    c.password = "Zm9yZ2Vk".into();
    assert_eq!(error_code(&h.allocate(&mut c)), Some(401));
    // A username with a later expiry but the old password is refused too.
    let mut c = h.client(1, "alice", Duration::from_secs(600));
    c.username = c.username.replace(':', "9:");
    assert_eq!(error_code(&h.allocate(&mut c)), Some(401));
}

#[test]
fn stale_nonce_gets_438_then_works() {
    let mut h = Harness::new(|_| {});
    let mut c = h.client(1, "alice", Duration::from_secs(7200));
    h.allocate(&mut c);
    h.advance(Duration::from_secs(590));
    let (resp, _) = h.request_once(&c, method::REFRESH, |_| {});
    assert_eq!(error_code(&resp), None);
    h.advance(Duration::from_secs(20));
    let (resp, _) = h.request_once(&c, method::REFRESH, |_| {});
    assert_eq!(error_code(&resp), Some(438));
    let m = Message::decode(&resp).expect("decodes");
    assert!(m.get(attr::NONCE).is_some() && m.get(attr::REALM).is_some());
    // Retrying with the new nonce works; the allocation is still there.
    let (resp, _) = h.request(&mut c, method::REFRESH, |_| {});
    assert_eq!(error_code(&resp), None);
    assert_eq!(h.server.allocation_count(), 1);
}

#[test]
fn quota_per_identity_is_enforced() {
    let mut h = Harness::new(|cfg| cfg.user_quota = 2);
    for port in 1..=2 {
        let mut c = h.client(port, "bob", Duration::from_secs(600));
        assert_eq!(error_code(&h.allocate(&mut c)), None);
    }
    let mut c = h.client(3, "bob", Duration::from_secs(600));
    assert_eq!(error_code(&h.allocate(&mut c)), Some(486));
    let mut other = h.client(4, "carol", Duration::from_secs(600));
    assert_eq!(error_code(&h.allocate(&mut other)), None);
}

#[test]
fn allocation_mismatch_and_wrong_credentials() {
    let mut h = Harness::new(|_| {});
    let mut c = h.client(1, "alice", Duration::from_secs(600));
    h.allocate(&mut c);
    // Second Allocate on the same 5-tuple with another transaction: 437.
    assert_eq!(error_code(&h.allocate(&mut c)), Some(437));
    // Refresh without an allocation: 437.
    let mut stranger = h.client(2, "alice", Duration::from_secs(600));
    let (resp, _) = h.request(&mut stranger, method::REFRESH, |_| {});
    assert_eq!(error_code(&resp), Some(437));
    // Another user's credentials on alice's 5-tuple: 441.
    let mut mallory = h.client(1, "mallory", Duration::from_secs(600));
    let (resp, _) = h.request(&mut mallory, method::REFRESH, |_| {});
    assert_eq!(error_code(&resp), Some(441));
}

#[test]
fn requested_transport_rules() {
    let mut h = Harness::new(|_| {});
    let mut c = h.client(1, "alice", Duration::from_secs(600));
    let (resp, _) = h.request(&mut c, method::ALLOCATE, |b| {
        b.add(attr::REQUESTED_TRANSPORT, &[6, 0, 0, 0]);
    });
    assert_eq!(error_code(&resp), Some(442));
    let (resp, _) = h.request(&mut c, method::ALLOCATE, |_| {});
    assert_eq!(error_code(&resp), Some(400));
    let (resp, _) = h.request(&mut c, method::ALLOCATE, |b| {
        b.add(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
            .add(0x0042, b"what");
    });
    assert_eq!(error_code(&resp), Some(420));
}

#[test]
fn send_needs_permission_and_data_flows_both_ways() {
    let mut h = Harness::new(|_| {});
    let mut c = h.client(1, "alice", Duration::from_secs(600));
    h.allocate(&mut c);
    let peer = public_peer();
    let send = |h: &mut Harness| {
        let tx = h.tx();
        let mut b = MessageBuilder::new(Class::Indication, method::SEND, tx);
        b.add_xor_address(attr::XOR_PEER_ADDRESS, peer)
            .add(attr::DATA, b"payload");
        let bytes = b.finish(None, false);
        h.feed(client_addr(1), &bytes).1
    };
    assert!(send(&mut h).is_empty(), "no permission: dropped");
    // Peer traffic is dropped without permission too.
    h.server.handle_peer(h.now, RelayId(2), peer, b"in");
    assert!(h.drain().0.is_empty());

    let (resp, _) = h.request(&mut c, method::CREATE_PERMISSION, peer_req(peer));
    assert_eq!(error_code(&resp), None);
    let cmds = send(&mut h);
    assert!(
        matches!(&cmds[..], [Command::SendToPeer { to, data, .. }] if *to == peer && data == b"payload")
    );
    // Permission is per IP: another port of the same peer gets through.
    let other_port = SocketAddr::new(peer.ip(), 9);
    let relay = match &cmds[0] {
        Command::SendToPeer { relay, .. } => *relay,
        _ => unreachable!(),
    };
    h.server.handle_peer(h.now, relay, other_port, b"back");
    let (out, _) = h.drain();
    let m = Message::decode(&out[0]).expect("data indication");
    assert_eq!((m.class, m.method), (Class::Indication, method::DATA));
    assert_eq!(m.get(attr::DATA), Some(&b"back"[..]));
    // Permissions expire after 5 minutes.
    h.advance(Duration::from_secs(301));
    assert!(send(&mut h).is_empty());
}

#[test]
fn channel_bind_rules_and_channel_data() {
    let mut h = Harness::new(|_| {});
    let mut c = h.client(1, "alice", Duration::from_secs(600));
    h.allocate(&mut c);
    let peer = public_peer();
    let peer2: SocketAddr = "8.8.4.4:4000".parse().expect("addr");
    let bind = |h: &mut Harness, c: &mut Client, ch: u16, p: SocketAddr| {
        let (resp, _) = h.request(c, method::CHANNEL_BIND, move |b| {
            b.add(attr::CHANNEL_NUMBER, &[(ch >> 8) as u8, ch as u8, 0, 0])
                .add_xor_address(attr::XOR_PEER_ADDRESS, p);
        });
        error_code(&resp)
    };
    assert_eq!(bind(&mut h, &mut c, 0x3FFF, peer), Some(400), "below range");
    assert_eq!(bind(&mut h, &mut c, 0x8000, peer), Some(400), "above range");
    assert_eq!(bind(&mut h, &mut c, 0x4000, peer), None);
    assert_eq!(bind(&mut h, &mut c, 0x4000, peer), None, "refresh is fine");
    assert_eq!(
        bind(&mut h, &mut c, 0x4000, peer2),
        Some(400),
        "channel taken"
    );
    assert_eq!(bind(&mut h, &mut c, 0x4001, peer), Some(400), "peer taken");
    let lo: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
    assert_eq!(bind(&mut h, &mut c, 0x4002, lo), Some(403));

    let (_, cmds) = h.feed(c.addr, &ChannelData::encode(0x4000, b"hi", false));
    assert!(
        matches!(&cmds[..], [Command::SendToPeer { to, data, .. }] if *to == peer && data == b"hi")
    );
    let (_, cmds) = h.feed(c.addr, &ChannelData::encode(0x4001, b"hi", false));
    assert!(cmds.is_empty(), "unbound channel dropped");
    h.server.handle_peer(h.now, RelayId(2), peer, b"yo");
    let (out, _) = h.drain();
    assert_eq!(out, vec![ChannelData::encode(0x4000, b"yo", false)]);
}

#[test]
fn refresh_extends_and_lifetime_zero_deallocates() {
    let mut h = Harness::new(|_| {});
    let mut c = h.client(1, "alice", Duration::from_secs(7200));
    h.allocate(&mut c);
    h.advance(Duration::from_secs(500));
    let (resp, _) = h.request(&mut c, method::REFRESH, |b| {
        b.add_u32(attr::LIFETIME, 99_999);
    });
    let m = Message::decode(&resp).expect("decodes");
    assert_eq!(m.u32(attr::LIFETIME), Ok(Some(3600)), "capped at max");
    h.advance(Duration::from_secs(3000));
    assert_eq!(h.server.allocation_count(), 1);
    let (resp, cmds) = h.request(&mut c, method::REFRESH, |b| {
        b.add_u32(attr::LIFETIME, 0);
    });
    assert_eq!(error_code(&resp), None);
    assert!(matches!(&cmds[..], [Command::FreeRelay { .. }]));
    assert_eq!(h.server.allocation_count(), 0);
}

#[test]
fn allocation_expires_with_virtual_time() {
    let mut h = Harness::new(|_| {});
    let mut c = h.client(1, "alice", Duration::from_secs(7200));
    h.allocate(&mut c);
    assert!(h.server.poll_timeout().is_some());
    h.advance(Duration::from_secs(599));
    assert_eq!(h.server.allocation_count(), 1);
    h.advance(Duration::from_secs(2));
    assert_eq!(h.server.allocation_count(), 0);
    assert!(matches!(&h.drain().1[..], [Command::FreeRelay { .. }]));
    assert_eq!(h.server.poll_timeout(), None);
}

#[test]
fn failed_relay_bind_answers_508() {
    let mut h = Harness::new(|_| {});
    let mut c = h.client(1, "alice", Duration::from_secs(600));
    // Get a nonce first.
    h.request(&mut c, method::REFRESH, |_| {});
    let mut b = MessageBuilder::new(Class::Request, method::ALLOCATE, [77; 12]);
    b.add(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
        .add(attr::USERNAME, c.username.as_bytes())
        .add(attr::REALM, REALM.as_bytes())
        .add(attr::NONCE, c.nonce.as_bytes());
    let key = long_term_key(&c.username, REALM, &c.password);
    let bytes = b.finish(Some((Integrity::Sha256, &key)), false);
    h.server.handle_client(h.now, c.addr, &bytes);
    let relay = match h.server.poll_command() {
        Some(Command::BindRelay { relay, .. }) => relay,
        other => panic!("expected BindRelay, got {other:?}"),
    };
    h.server.relay_bound(h.now, relay, None);
    let (out, _) = h.drain();
    assert_eq!(error_code(&out[0]), Some(508));
    let m = Message::decode(&out[0]).expect("decodes");
    assert_eq!(m.verify_integrity(&key), Some(Integrity::Sha256));
    assert_eq!(h.server.allocation_count(), 0);
}

#[test]
fn default_policy_refuses_bypass_forms_of_loopback() {
    let mut h = Harness::new(|cfg| cfg.relay_ipv6 = true);
    let mut c = h.client(1, "alice", Duration::from_secs(600));
    assert_eq!(error_code(&h.allocate(&mut c)), None);
    for ip in [
        "::ffff:127.0.0.1",
        "::",
        "64:ff9b::7f00:1",
        "2002:7f00:1::",
        "::1",
    ] {
        let peer = SocketAddr::new(ip.parse().expect("ip"), 80);
        let (resp, _) = h.request(&mut c, method::CREATE_PERMISSION, peer_req(peer));
        assert_eq!(error_code(&resp), Some(403), "{ip}");
    }
    // IPv4 peer on an IPv6 relay: 443.
    let (resp, _) = h.request(&mut c, method::CREATE_PERMISSION, peer_req(public_peer()));
    assert_eq!(error_code(&resp), Some(443));
}

#[test]
fn bandwidth_cap_drops_excess() {
    let mut h = Harness::new(|cfg| cfg.bandwidth_bps = 1000);
    let mut c = h.client(1, "alice", Duration::from_secs(600));
    h.allocate(&mut c);
    let peer = public_peer();
    h.request(&mut c, method::CHANNEL_BIND, move |b| {
        b.add(attr::CHANNEL_NUMBER, &[0x40, 0, 0, 0])
            .add_xor_address(attr::XOR_PEER_ADDRESS, peer);
    });
    let pkt = ChannelData::encode(0x4000, &[0u8; 400], false);
    let sent = (0..5)
        .filter(|_| !h.feed(c.addr, &pkt).1.is_empty())
        .count();
    assert_eq!(sent, 2);
    h.now += Duration::from_secs(1);
    assert_eq!(h.feed(c.addr, &pkt).1.len(), 1);
}

#[test]
fn unauthenticated_requests_leave_no_state() {
    let mut h = Harness::new(|_| {});
    for port in 1..1000 {
        let req =
            MessageBuilder::new(Class::Request, method::ALLOCATE, [3; 12]).finish(None, false);
        let (out, _) = h.feed(client_addr(port), &req);
        assert_eq!(error_code(&out[0]), Some(401));
    }
    assert_eq!(h.server.allocation_count(), 0);
    assert_eq!(h.server.poll_timeout(), None);
}
