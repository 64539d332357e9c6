//! STUN/TURN decoding and the TURN core on arbitrary bytes: nothing may
//! panic, whatever arrives from the network.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use libfuzzer_sys::fuzz_target;
use moim_turn::proto::message::{
    attr, frame_len, method, ChannelData, Class, Integrity, Message, MessageBuilder,
};
use moim_turn::proto::{
    long_term_key, rest_credentials, ClientAddr, Command, Config, RelayId, Transport, TurnServer,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::decode(data) {
        let _ = msg.verify_integrity(b"key");
        let _ = msg.unknown_required();
        for typ in [attr::USERNAME, attr::REALM, attr::NONCE] {
            let _ = msg.text(typ);
        }
        let _ = msg.u32(attr::LIFETIME);
        for typ in [attr::XOR_PEER_ADDRESS, attr::XOR_MAPPED_ADDRESS] {
            for v in msg.get_all(typ) {
                let _ = msg.xor_address(v);
            }
        }
    }
    if let Some(cd) = ChannelData::decode(data) {
        // What was decoded is what re-encodes, byte for byte.
        let n = 4 + cd.data.len();
        assert!(n <= data.len(), "ChannelData longer than its input");
        assert_eq!(ChannelData::encode(cd.channel, cd.data, false), data[..n]);
    }
    if let Ok(Some(n)) = frame_len(data) {
        // A whole STUN message is exactly one frame.
        if Message::decode(data).is_ok() {
            assert_eq!(n, data.len(), "frame_len disagrees with Message::decode");
        }
    }

    // Feed the same bytes to the core as every kind of input.
    let now = Instant::now();
    let mut cfg = Config::new("fuzz", "secret");
    cfg.peer_policy.dangerous().allow_private_peers(true);
    let mut server = TurnServer::new(cfg, now, SystemTime::now(), [1; 32]);
    let from = ClientAddr {
        transport: Transport::Tcp,
        addr: SocketAddr::from(([127, 0, 0, 1], 5000)),
    };
    server.handle_client(now, from, data);
    while let Some(cmd) = server.poll_command() {
        if let Command::BindRelay { relay, .. } = cmd {
            server.relay_bound(now, relay, Some(SocketAddr::from(([127, 0, 0, 1], 50000))));
        }
    }
    server.handle_peer(now, RelayId(1), from.addr, data);
    server.handle_timeout(now + Duration::from_secs(3600));

    // Past authentication: the input becomes the attributes of a correctly
    // signed request on a live allocation, then raw packets on it.
    authenticated(data);
});

fn drain(server: &mut TurnServer, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(cmd) = server.poll_command() {
        match cmd {
            Command::SendToClient { data, .. } => out.push(data),
            Command::BindRelay { relay, .. } => {
                server.relay_bound(now, relay, Some(SocketAddr::from(([127, 0, 0, 1], 50000))));
            }
            _ => {}
        }
    }
    out
}

fn authenticated(data: &[u8]) {
    let now = Instant::now();
    let mut cfg = Config::new("fuzz", "secret");
    cfg.peer_policy.dangerous().allow_private_peers(true);
    let mut server = TurnServer::new(cfg, now, SystemTime::now(), [1; 32]);
    let from = ClientAddr {
        transport: Transport::Udp,
        addr: SocketAddr::from(([127, 0, 0, 1], 5000)),
    };
    let (user, pass) = rest_credentials("secret", "fuzz", Duration::from_secs(600), SystemTime::now());
    let key = long_term_key(&user, "fuzz", &pass);
    let challenge = MessageBuilder::new(Class::Request, method::ALLOCATE, [1; 12]).finish(None, false);
    server.handle_client(now, from, &challenge);
    let Some(resp) = drain(&mut server, now).pop() else { return };
    let Some(nonce) = Message::decode(&resp).ok().and_then(|m| m.text(attr::NONCE).ok().flatten().map(str::to_owned)) else {
        return;
    };
    let signed = |method: u16, tx: u8, attrs: &dyn Fn(&mut MessageBuilder)| {
        let mut b = MessageBuilder::new(Class::Request, method, [tx; 12]);
        attrs(&mut b);
        b.add(attr::USERNAME, user.as_bytes())
            .add(attr::REALM, b"fuzz")
            .add(attr::NONCE, nonce.as_bytes());
        b.finish(Some((Integrity::Sha1, &key)), tx % 2 == 0)
    };
    let alloc = signed(method::ALLOCATE, 2, &|b| {
        b.add(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
    });
    server.handle_client(now, from, &alloc);
    drain(&mut server, now);

    // First byte picks the method; the rest is TLVs (type: 2 bytes, length: 1 byte).
    let Some((&sel, mut rest)) = data.split_first() else { return };
    let methods = [method::ALLOCATE, method::REFRESH, method::CREATE_PERMISSION, method::CHANNEL_BIND, method::BINDING];
    let m = methods[usize::from(sel) % methods.len()];
    let mut tlvs: Vec<(u16, Vec<u8>)> = Vec::new();
    while let [a, b, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        tlvs.push((u16::from_be_bytes([*a, *b]), tail[..n].to_vec()));
        rest = &tail[n..];
    }
    let req = signed(m, 3, &|b| {
        for (t, v) in &tlvs {
            b.add(*t, v);
        }
    });
    server.handle_client(now, from, &req);
    drain(&mut server, now);
    // The raw input as ChannelData/Send from the client and as peer data.
    server.handle_client(now, from, data);
    server.handle_peer(now, RelayId(2), SocketAddr::from(([127, 0, 0, 1], 6000)), data);
    drain(&mut server, now);
    server.handle_timeout(now + Duration::from_secs(301));
    drain(&mut server, now);
}
