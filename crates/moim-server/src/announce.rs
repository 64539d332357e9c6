//! The address moim tells clients to send media to, and the start-up checks
//! that catch the most common deployment mistake: announcing an address the
//! clients cannot reach.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use moim_turn::proto::message::{attr, method, Class, Message, MessageBuilder};
use rand::RngCore;
use tracing::{info, warn};

use crate::config::ServerConfig;

/// How the announced address was chosen, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceSource {
    NodeIp,
    Stun,
    Bind,
    /// Bound to all interfaces: the address of the interface the default
    /// route leaves through.
    Interface,
    Loopback,
}

/// The local address of the interface the default route uses. A UDP
/// `connect` only picks a route; it sends nothing.
pub fn default_route_ip() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): never a real host.
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("no STUN server configured; pass --stun-server host:port with --use-external-ip")]
    NoServers,
    #[error("no STUN server answered ({0}). Check that outbound UDP to them is allowed, or set --node-ip to the public IP")]
    NoAnswer(String),
    #[error("the STUN discovery of the external address failed inside moim ({0}); set --node-ip to the public IP to skip discovery")]
    Task(String),
}

/// Decides the address written into ICE candidates, in this order: the
/// configured `node_ip`; with `use_external_ip`, what STUN servers see; when
/// bound to every interface, the default route's interface (or loopback
/// when there is none); otherwise the bound address. Sets
/// `config.node_ip` to what it found, and says how it chose.
pub async fn choose(config: &mut ServerConfig) -> Result<AnnounceSource, DiscoveryError> {
    if config.node_ip.is_some() {
        return Ok(AnnounceSource::NodeIp);
    }
    if config.use_external_ip {
        let servers = config.stun_servers.clone();
        let found = tokio::task::spawn_blocking(move || {
            discover_external_ip(&servers, Duration::from_secs(2))
        })
        .await
        .map_err(|e| DiscoveryError::Task(e.to_string()))??;
        config.node_ip = Some(found);
        return Ok(AnnounceSource::Stun);
    }
    if !config.bind.is_unspecified() {
        return Ok(AnnounceSource::Bind);
    }
    Ok(match default_route_ip() {
        Some(ip) => {
            config.node_ip = Some(ip);
            AnnounceSource::Interface
        }
        None => AnnounceSource::Loopback,
    })
}

/// Asks STUN servers which address this host's traffic comes from (RFC 8489
/// Binding), the way LiveKit's `use_external_ip` does.
pub fn discover_external_ip(
    servers: &[SocketAddr],
    timeout: Duration,
) -> Result<IpAddr, DiscoveryError> {
    if servers.is_empty() {
        return Err(DiscoveryError::NoServers);
    }
    let mut failures = Vec::new();
    for server in servers {
        match ask(*server, timeout) {
            Ok(ip) => return Ok(ip),
            Err(e) => failures.push(format!("{server}: {e}")),
        }
    }
    Err(DiscoveryError::NoAnswer(failures.join("; ")))
}

fn ask(server: SocketAddr, timeout: Duration) -> std::io::Result<IpAddr> {
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(std::io::Error::other)?;
    let socket = UdpSocket::bind(local)?;
    socket.set_read_timeout(Some(timeout))?;
    let mut tid = [0u8; 12];
    rand::rng().fill_bytes(&mut tid);
    let request = MessageBuilder::new(Class::Request, method::BINDING, tid).finish(None, true);
    let mut buf = [0u8; 1500];
    // Three tries, as a lost UDP datagram is normal.
    for _ in 0..3 {
        socket.send_to(&request, server)?;
        let n = match socket.recv_from(&mut buf) {
            Ok((n, from)) if from == server => n,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        let Ok(msg) = Message::decode(&buf[..n]) else {
            continue;
        };
        if msg.class != Class::Success || msg.transaction_id != tid {
            continue;
        }
        if let Some(value) = msg.get(attr::XOR_MAPPED_ADDRESS) {
            if let Ok(addr) = msg.xor_address(value) {
                return Ok(addr.ip());
            }
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no Binding response",
    ))
}

/// Whether an address is only reachable inside a private network.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || (v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1]))
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Logs what an operator needs to know about the announced address.
pub fn check_and_report(announce: IpAddr, source: AnnounceSource, bind: IpAddr) {
    info!(%announce, ?source, "media candidates announce this address");
    let expects_outside = bind.is_unspecified() || !is_private(bind);
    if expects_outside && is_private(announce) {
        if source == AnnounceSource::NodeIp {
            warn!(
                "the configured node IP {announce} is a private address. That is right when every client is on \
                 this private network; clients coming from the internet will reach signaling but never receive \
                 media. If they should, set --node-ip to the public IP that forwards to this host."
            );
        } else {
            warn!(
                "moim listens on {bind} (clients from other networks are expected) but announces the private \
                 address {announce} in its ICE candidates. Clients outside this network will connect to \
                 signaling but never receive media. Set --node-ip to the public IP clients reach this host at \
                 (behind cloud NAT or Docker this is not the interface address), or use --use-external-ip \
                 with --stun-server."
            );
        }
    }
    if announce.is_loopback() && !bind.is_loopback() {
        warn!("moim announces the loopback address {announce}; only clients on this machine can send media. Set --node-ip.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_recognised() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "100.64.0.1",
            "169.254.1.1",
            "::1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(is_private(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["203.0.113.10", "8.8.8.8", "2001:db8::1"] {
            assert!(!is_private(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn discovery_without_servers_says_what_to_configure() {
        let e = discover_external_ip(&[], Duration::from_millis(10)).expect_err("no servers");
        assert!(e.to_string().contains("--stun-server"));
    }

    #[tokio::test]
    async fn discovery_reads_the_mapped_address_from_a_real_stun_server() {
        // moim's own TURN server answers Binding requests; on loopback the
        // mapped address is 127.0.0.1.
        let mut cfg = moim_turn::TurnConfig::new("test", "s", IpAddr::from([127, 0, 0, 1]));
        cfg.udp_listen = Some("127.0.0.1:0".parse().expect("addr"));
        cfg.tcp_listen = None;
        let turn = moim_turn::spawn(cfg).await.expect("stun server");
        let server = turn.udp_addr.expect("udp");
        let ip = tokio::task::spawn_blocking(move || {
            discover_external_ip(&[server], Duration::from_millis(500))
        })
        .await
        .expect("join")
        .expect("answer");
        assert_eq!(ip, IpAddr::from([127, 0, 0, 1]));
    }
}
