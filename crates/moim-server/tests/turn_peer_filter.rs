//! A TURN user with valid credentials tries to make moim's relay reach what
//! it must not: the unspecified address (which Linux delivers to local
//! listeners), loopback, private and link-local networks, multicast, and
//! moim's own address on ports other than the media port, each in every
//! spelling (IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64, 6to4).
//! It is refused in the three usual set-ups: `--bind 0.0.0.0 --node-ip
//! <addr>`, `--bind ::1` and `--dev`. Only moim's media port and public
//! peers get through.

mod turn_client;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use moim_server::{Server, ServerConfig};
use tokio::net::UdpSocket;
use turn_client::TurnClient;

const SECRET: &str = "turn-peer-filter-test-secret";

struct Setup {
    name: &'static str,
    turn: SocketAddr,
    own: IpAddr,
    media_port: u16,
    relay_ipv6: bool,
}

async fn start(name: &'static str, tweak: impl FnOnce(&mut ServerConfig)) -> Option<Setup> {
    let mut config = ServerConfig::dev();
    config.port = 0;
    config.rtc_udp_port = 0;
    config.rtc_tcp_port = 0;
    config.media_shards = 1;
    if let Some(t) = config.turn.as_mut() {
        t.port = 0;
        t.tls_port = 0;
        t.secret = SECRET.into();
    }
    tweak(&mut config);
    let own = config.announce_ip();
    let server = match Server::bind(config).await {
        Ok(s) => s,
        Err(e) if name.contains("::1") => {
            eprintln!("SKIPPED {name}: cannot bind (no IPv6 loopback here?): {e}");
            return None;
        }
        Err(e) => panic!("{name}: server binds: {e}"),
    };
    let turn = server.turn_udp_addr.expect("TURN over UDP is on");
    // With --bind 0.0.0.0 the listener is reached on loopback.
    let turn = match turn.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, turn.port()))
        }
        _ => turn,
    };
    let media_port = server.udp_addr.port();
    tokio::spawn(server.run());
    Some(Setup {
        name,
        turn,
        own,
        media_port,
        relay_ipv6: own.is_ipv6(),
    })
}

/// `v4` as itself and in each IPv6 spelling that embeds it.
fn forms(v4: Ipv4Addr) -> Vec<IpAddr> {
    let o = v4.octets();
    let (hi, lo) = (
        u16::from_be_bytes([o[0], o[1]]),
        u16::from_be_bytes([o[2], o[3]]),
    );
    vec![
        IpAddr::V4(v4),
        IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, hi, lo)),
        IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0, hi, lo)),
        IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, hi, lo)),
        IpAddr::V6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo)),
        IpAddr::V6(Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1)),
    ]
}

/// (kind, address) of every peer tried; moim's own address is added per set-up.
fn peers(own: IpAddr) -> Vec<(&'static str, IpAddr)> {
    let mut out = Vec::new();
    let v4 = [
        ("unspecified", "0.0.0.0"),
        ("loopback", "127.0.0.1"),
        ("private", "10.0.0.1"),
        ("private", "172.16.0.1"),
        ("private", "192.168.1.1"),
        ("cgnat", "100.64.0.1"),
        ("link-local", "169.254.1.1"),
        ("metadata", "169.254.169.254"),
        ("multicast", "224.0.0.1"),
        ("broadcast", "255.255.255.255"),
    ];
    for (kind, a) in v4 {
        for f in forms(a.parse().expect("v4")) {
            out.push((kind, f));
        }
    }
    for (kind, a) in [
        ("unspecified", "::"),
        ("loopback", "::1"),
        ("ula", "fd00::1"),
        ("link-local", "fe80::1"),
        ("multicast", "ff02::1"),
    ] {
        out.push((kind, a.parse().expect("v6")));
    }
    match own {
        IpAddr::V4(v4) => out.extend(forms(v4).into_iter().map(|f| ("own", f))),
        IpAddr::V6(_) => out.push(("own", own)),
    }
    // In --dev moim's own address is the loopback one: try each once (a
    // second ChannelBind to the same peer would be refused for that).
    let mut seen = std::collections::HashSet::new();
    out.retain(|(_, ip)| seen.insert(*ip));
    out
}

/// Permission requests for every peer on the media port and on another
/// port; returns the rows that disagree with the policy.
async fn matrix(s: &Setup) -> Vec<String> {
    let mut c = TurnClient::allocate(s.turn, SECRET, "prober").await;
    let mut wrong = Vec::new();
    let mut refused = 0;
    let mut channel = 0x4000;
    for (kind, ip) in peers(s.own) {
        for port in [s.media_port, 22, 7880] {
            let peer = SocketAddr::new(ip, port);
            let canonical = moim_turn::proto::canonical(ip);
            // Only moim's own address, in the relay's family, on the media port.
            let allowed = ip.is_ipv6() == s.relay_ipv6
                && port == s.media_port
                && canonical == moim_turn::proto::canonical(s.own);
            let perm = c.create_permission(peer).await;
            channel += 1;
            let bind = c.channel_bind(channel, peer).await;
            for (what, code) in [("CreatePermission", perm), ("ChannelBind", bind)] {
                match (allowed, code) {
                    (true, 0) => {}
                    (false, 403 | 443) => refused += 1,
                    _ => wrong.push(format!(
                        "{}: {what} {kind} {peer} answered {code}, expected {}",
                        s.name,
                        if allowed { "success" } else { "403/443" }
                    )),
                }
            }
        }
    }
    println!(
        "{}: {refused} requests refused, {} wrong",
        s.name,
        wrong.len()
    );
    wrong
}

/// Send indications to a loopback listener through every spelling of
/// the unspecified and loopback addresses; returns what arrived.
async fn leak_to_listener(s: &Setup) -> usize {
    let bind: SocketAddr = if s.relay_ipv6 {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    }
    .parse()
    .expect("addr");
    let listener = UdpSocket::bind(bind).await.expect("listener");
    let port = listener.local_addr().expect("addr").port();
    let mut c = TurnClient::allocate(s.turn, SECRET, "leaker").await;
    // The media port's permission is per IP: it must not open the others.
    let _ = c
        .create_permission(SocketAddr::new(s.own, s.media_port))
        .await;
    let mut targets: Vec<IpAddr> = forms(Ipv4Addr::UNSPECIFIED);
    targets.extend(forms(Ipv4Addr::LOCALHOST));
    targets.extend([
        Ipv6Addr::UNSPECIFIED.into(),
        Ipv6Addr::LOCALHOST.into(),
        s.own,
    ]);
    for ip in &targets {
        let peer = SocketAddr::new(*ip, port);
        let _ = c.create_permission(peer).await;
        for _ in 0..10 {
            c.send(peer, b"should never arrive").await;
        }
    }
    let mut got = 0;
    let mut buf = [0u8; 64];
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(500), listener.recv_from(&mut buf)).await
    {
        got += 1;
    }
    println!(
        "{}: {got} of {} datagrams reached the listener",
        s.name,
        targets.len() * 10
    );
    got
}

async fn refused_everywhere(s: Setup) {
    let wrong = matrix(&s).await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        leak_to_listener(&s).await,
        0,
        "{}: relayed to a local listener",
        s.name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_any_with_node_ip_relays_only_to_the_media_port() {
    let Some(s) = start("--bind 0.0.0.0 --node-ip 198.51.100.20", |c| {
        c.bind = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        c.node_ip = Some("198.51.100.20".parse().expect("ip"));
    })
    .await
    else {
        return;
    };
    refused_everywhere(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_ipv6_loopback_relays_only_to_the_media_port() {
    let Some(s) = start("--bind ::1", |c| c.bind = IpAddr::V6(Ipv6Addr::LOCALHOST)).await else {
        return;
    };
    refused_everywhere(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_relays_only_to_the_media_port() {
    let Some(s) = start("--dev", |_| {}).await else {
        return;
    };
    refused_everywhere(s).await;
}

/// The control: the same client through the test-only door does reach the
/// listener, so the zero above is the filter's doing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_door_really_relays_to_loopback() {
    let Some(s) = start("--dev --dangerous-turn-allow-private", |c| {
        if let Some(t) = c.turn.as_mut() {
            t.dangerous_allow_private_peers = true;
        }
    })
    .await
    else {
        return;
    };
    assert!(
        leak_to_listener(&s).await > 0,
        "the control relays to loopback"
    );
}
