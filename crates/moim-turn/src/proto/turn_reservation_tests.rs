//! EVEN-PORT and RESERVATION-TOKEN (RFC 8656 §7.2), in virtual time: an RTP
//! allocation on an even port with the next port held for its RTCP twin.

use super::*;
use crate::proto::reservation::RESERVATION_LIFETIME;

const R_BIT: u8 = 0x80;

/// Allocate with EVEN-PORT `flags`.
fn allocate_even(h: &mut Harness, c: &mut Client, flags: u8) -> (Vec<u8>, Vec<Command>) {
    h.request(c, method::ALLOCATE, move |b| {
        b.add(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
            .add(attr::EVEN_PORT, &[flags]);
    })
}

/// Allocate with RESERVATION-TOKEN `token`.
fn allocate_token(h: &mut Harness, c: &mut Client, token: &[u8]) -> (Vec<u8>, Vec<Command>) {
    let token = token.to_vec();
    h.request(c, method::ALLOCATE, move |b| {
        b.add(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
            .add(attr::RESERVATION_TOKEN, &token);
    })
}

fn relayed(resp: &[u8]) -> SocketAddr {
    let m = Message::decode(resp).expect("decodes");
    assert_eq!(m.class, Class::Success, "error {:?}", error_code(resp));
    let v = m
        .get(attr::XOR_RELAYED_ADDRESS)
        .expect("XOR-RELAYED-ADDRESS");
    m.xor_address(v).expect("address")
}

fn token(resp: &[u8]) -> Option<Vec<u8>> {
    let m = Message::decode(resp).expect("decodes");
    m.get(attr::RESERVATION_TOKEN).map(<[u8]>::to_vec)
}

#[test]
fn even_port_without_r_bit_gets_an_even_port_and_no_token() {
    let mut h = Harness::new(|_| {});
    let mut c = h.client(1, "alice", Duration::from_secs(600));
    let (resp, _) = allocate_even(&mut h, &mut c, 0x00);
    assert_eq!(relayed(&resp).port() % 2, 0);
    assert_eq!(token(&resp), None);
    assert_eq!(h.server.reservation_count(), 0);
    // Reserved bits other than R are ignored.
    let mut d = h.client(2, "alice", Duration::from_secs(600));
    let (resp, _) = allocate_even(&mut h, &mut d, 0x7f);
    assert_eq!(relayed(&resp).port() % 2, 0);
    assert_eq!(token(&resp), None);
}

#[test]
fn r_bit_reserves_the_next_port_and_the_token_claims_it() {
    let mut h = Harness::new(|_| {});
    let mut rtp = h.client(1, "alice", Duration::from_secs(600));
    let (resp, _) = allocate_even(&mut h, &mut rtp, R_BIT);
    let rtp_addr = relayed(&resp);
    assert_eq!(rtp_addr.port() % 2, 0, "even port for RTP");
    let t = token(&resp).expect("RESERVATION-TOKEN in the success response");
    assert_eq!(t.len(), 8);
    assert_eq!(h.server.reservation_count(), 1);

    // RTCP, from another 5-tuple, takes port N+1 without a new socket.
    let mut rtcp = h.client(2, "alice", Duration::from_secs(600));
    let (resp, cmds) = allocate_token(&mut h, &mut rtcp, &t);
    let rtcp_addr = relayed(&resp);
    assert_eq!(rtcp_addr.ip(), rtp_addr.ip());
    assert_eq!(rtcp_addr.port(), rtp_addr.port() + 1);
    assert_eq!(token(&resp), None);
    assert!(cmds.is_empty(), "nothing to bind or free: {cmds:?}");
    assert_eq!(h.server.reservation_count(), 0);
    assert_eq!(h.server.allocation_count(), 2);

    // The reserved socket now relays for the RTCP allocation.
    let peer = public_peer();
    h.request(&mut rtcp, method::CREATE_PERMISSION, peer_req(peer));
    let tx = h.tx();
    let mut b = MessageBuilder::new(Class::Indication, method::SEND, tx);
    b.add_xor_address(attr::XOR_PEER_ADDRESS, peer)
        .add(attr::DATA, b"rtcp");
    let (_, cmds) = h.feed(rtcp.addr, &b.finish(None, false));
    let Some(Command::SendToPeer { relay, to, .. }) = cmds.first() else {
        panic!("expected SendToPeer, got {cmds:?}");
    };
    assert_eq!(*to, peer);
    h.server.handle_peer(h.now, *relay, peer, b"back");
    let (out, _) = h.drain();
    assert_eq!(out.len(), 1, "peer datagram reaches the RTCP client");

    // A second claim of the same token: 508.
    let mut again = h.client(3, "alice", Duration::from_secs(600));
    let (resp, _) = allocate_token(&mut h, &mut again, &t);
    assert_eq!(error_code(&resp), Some(508));
}

#[test]
fn an_unclaimed_reservation_lapses_after_30_s_and_frees_its_port_and_quota() {
    let mut h = Harness::new(|cfg| cfg.user_quota = 2);
    let mut rtp = h.client(1, "alice", Duration::from_secs(600));
    let (resp, _) = allocate_even(&mut h, &mut rtp, R_BIT);
    let t = token(&resp).expect("token");
    // The reservation holds a quota slot while it waits.
    let mut other = h.client(2, "alice", Duration::from_secs(600));
    assert_eq!(error_code(&h.allocate(&mut other)), Some(486));

    // Deleting the RTP allocation does not cut the reservation short.
    let (_, cmds) = h.request(&mut rtp, method::REFRESH, |b| {
        b.add_u32(attr::LIFETIME, 0);
    });
    assert_eq!(cmds.len(), 1, "only the RTP socket is freed: {cmds:?}");
    assert_eq!(h.server.reservation_count(), 1);

    h.now += RESERVATION_LIFETIME - Duration::from_secs(1);
    h.server.handle_timeout(h.now);
    assert_eq!(h.server.reservation_count(), 1, "held at least 30 s");
    h.advance(Duration::from_secs(1));
    assert_eq!(h.server.reservation_count(), 0);
    let (_, cmds) = h.drain();
    assert!(
        matches!(&cmds[..], [Command::FreeRelay { .. }]),
        "the reserved socket is closed: {cmds:?}"
    );
    let mut late = h.client(3, "alice", Duration::from_secs(600));
    let (resp, _) = allocate_token(&mut h, &mut late, &t);
    assert_eq!(error_code(&resp), Some(508), "lapsed token");
    // The quota came back: two plain allocations fit again.
    assert_eq!(error_code(&h.allocate(&mut other)), None);
    let mut third = h.client(4, "alice", Duration::from_secs(600));
    assert_eq!(error_code(&h.allocate(&mut third)), None);
    assert!(h.server.poll_timeout().is_some());
}

#[test]
fn token_misuse_is_refused_and_leaves_the_reservation_to_its_owner() {
    let mut h = Harness::new(|_| {});
    let mut rtp = h.client(1, "alice", Duration::from_secs(600));
    let (resp, _) = allocate_even(&mut h, &mut rtp, R_BIT);
    let t = token(&resp).expect("token");

    // Another identity presenting alice's token: 508, and it stays alice's.
    let mut mallory = h.client(2, "mallory", Duration::from_secs(600));
    let (resp, _) = allocate_token(&mut h, &mut mallory, &t);
    assert_eq!(error_code(&resp), Some(508));
    // A token nobody issued: 508.
    let (resp, _) = allocate_token(&mut h, &mut mallory, &[0; 8]);
    assert_eq!(error_code(&resp), Some(508));

    // Malformed combinations: 400 (RFC 8656 §7.2 step 5).
    let mut rtcp = h.client(3, "alice", Duration::from_secs(600));
    let t2 = t.clone();
    let (resp, _) = h.request(&mut rtcp, method::ALLOCATE, move |b| {
        b.add(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
            .add(attr::EVEN_PORT, &[0])
            .add(attr::RESERVATION_TOKEN, &t2);
    });
    assert_eq!(error_code(&resp), Some(400), "EVEN-PORT with a token");
    let t2 = t.clone();
    let (resp, _) = h.request(&mut rtcp, method::ALLOCATE, move |b| {
        b.add(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
            .add(attr::REQUESTED_ADDRESS_FAMILY, &[1, 0, 0, 0])
            .add(attr::RESERVATION_TOKEN, &t2);
    });
    assert_eq!(error_code(&resp), Some(400), "a family with a token");
    let (resp, _) = allocate_token(&mut h, &mut rtcp, &t[..4]);
    assert_eq!(error_code(&resp), Some(400), "short token");
    let (resp, _) = h.request(&mut rtcp, method::ALLOCATE, |b| {
        b.add(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
            .add(attr::EVEN_PORT, &[]);
    });
    assert_eq!(error_code(&resp), Some(400), "empty EVEN-PORT");
    assert_eq!(h.server.allocation_count(), 1, "none of these allocated");

    // The owner still gets the port.
    let (resp, _) = allocate_token(&mut h, &mut rtcp, &t);
    assert_eq!(error_code(&resp), None);
}

#[test]
fn a_pair_that_cannot_be_bound_answers_508_and_returns_the_quota() {
    let mut h = Harness::new(|cfg| cfg.user_quota = 2);
    let mut c = h.client(1, "alice", Duration::from_secs(600));
    // Learn a nonce, then send the Allocate by hand to answer the bind.
    h.request(&mut c, method::REFRESH, |_| {});
    let mut b = MessageBuilder::new(Class::Request, method::ALLOCATE, [78; 12]);
    b.add(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
        .add(attr::EVEN_PORT, &[R_BIT])
        .add(attr::USERNAME, c.username.as_bytes())
        .add(attr::REALM, REALM.as_bytes())
        .add(attr::NONCE, c.nonce.as_bytes());
    let key = long_term_key(&c.username, REALM, &c.password);
    h.server.handle_client(
        h.now,
        c.addr,
        &b.finish(Some((Integrity::Sha1, &key)), false),
    );
    let relay = match h.server.poll_command() {
        Some(Command::BindRelay {
            relay,
            port: PortRequest::EvenPair { .. },
            ..
        }) => relay,
        other => panic!("expected BindRelay for a pair, got {other:?}"),
    };
    h.server.relay_bound(h.now, relay, None);
    let (out, _) = h.drain();
    assert_eq!(error_code(&out[0]), Some(508));
    assert_eq!(h.server.reservation_count(), 0);
    // Both slots came back.
    let mut d = h.client(2, "alice", Duration::from_secs(600));
    let (resp, _) = allocate_even(&mut h, &mut d, R_BIT);
    assert!(token(&resp).is_some());
}

#[test]
fn a_retransmitted_allocate_repeats_the_same_token() {
    let mut h = Harness::new(|_| {});
    let mut c = h.client(1, "alice", Duration::from_secs(600));
    h.request(&mut c, method::REFRESH, |_| {});
    let mut b = MessageBuilder::new(Class::Request, method::ALLOCATE, [79; 12]);
    b.add(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
        .add(attr::EVEN_PORT, &[R_BIT])
        .add(attr::USERNAME, c.username.as_bytes())
        .add(attr::REALM, REALM.as_bytes())
        .add(attr::NONCE, c.nonce.as_bytes());
    let key = long_term_key(&c.username, REALM, &c.password);
    let req = b.finish(Some((Integrity::Sha1, &key)), true);
    let (first, _) = h.feed(c.addr, &req);
    let (second, _) = h.feed(c.addr, &req);
    assert_eq!(token(&first[0]), token(&second[0]));
    assert!(token(&first[0]).is_some());
    assert_eq!(h.server.reservation_count(), 1, "one reservation, not two");
}
