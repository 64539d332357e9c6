//! The embedded TURN server: started beside the media plane, announced to
//! every client in `ice_servers` with fresh time-limited credentials.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use moim_proto::lk;
use moim_turn::proto::PeerPolicy;
use moim_turn::{TurnConfig, TurnHandle};
use rand::RngCore;
use tracing::{info, warn};

use crate::config::TurnSettings;

/// What signaling needs to hand out TURN: where it is and how to sign.
#[derive(Debug, Clone)]
pub struct TurnOffer {
    host: IpAddr,
    udp_port: Option<u16>,
    tcp_port: Option<u16>,
    tls_port: Option<u16>,
    tls_host: String,
    secret: String,
    ttl: Duration,
}

impl TurnOffer {
    /// `ice_servers` for one participant: `turn:` over UDP and TCP with a
    /// REST username tied to the identity.
    pub fn ice_servers(&self, identity: &str) -> Vec<lk::IceServer> {
        let (username, credential) =
            moim_turn::rest_credentials(&self.secret, identity, self.ttl, SystemTime::now());
        let host = match self.host {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        };
        let mut urls = Vec::new();
        if let Some(p) = self.udp_port {
            urls.push(format!("turn:{host}:{p}?transport=udp"));
        }
        if let Some(p) = self.tcp_port {
            urls.push(format!("turn:{host}:{p}?transport=tcp"));
        }
        if let Some(p) = self.tls_port {
            urls.push(format!("turns:{}:{p}?transport=tcp", self.tls_host));
        }
        if urls.is_empty() {
            return Vec::new();
        }
        vec![lk::IceServer {
            urls,
            username,
            credential,
        }]
    }
}

/// Where moim itself is: what the TURN peer filter must keep relays away
/// from, except for the media port.
#[derive(Debug, Clone, Copy)]
pub struct OwnAddresses {
    /// The listening address (may be unspecified).
    pub bind: IpAddr,
    /// The address written into ICE candidates.
    pub announce: IpAddr,
    /// The UDP port the media plane is bound to.
    pub media_port: u16,
}

/// The peer filter for moim's TURN: public peers, plus moim's own media
/// port on the announced (and bound) address. Every other port of every
/// address of this host is refused, so a TURN user cannot reach the
/// host's other services. Relays are UDP, so the ICE-TCP port needs no
/// opening.
pub fn peer_policy(own: OwnAddresses, local: &[IpAddr]) -> PeerPolicy {
    let mut policy = PeerPolicy::default();
    for ip in local {
        policy.own_address(*ip);
    }
    policy.own_address(own.announce);
    if !policy.allow_own_port(SocketAddr::new(own.announce, own.media_port)) {
        warn!(
            announce = %own.announce,
            "the announced address cannot be a TURN peer (unspecified or multicast), so clients \
             relayed through TURN cannot reach media; set --node-ip to this host's reachable IP"
        );
    }
    // The unspecified address is never opened (allow_own_port refuses
    // it): with --bind 0.0.0.0 only the announced address is.
    if !own.bind.is_unspecified() && own.bind != own.announce {
        policy.allow_own_port(SocketAddr::new(own.bind, own.media_port));
    }
    policy
}

/// Every address configured on this host's interfaces, or an empty list
/// (with a warning) if they cannot be read.
fn local_addresses() -> Vec<IpAddr> {
    match nix::ifaddrs::getifaddrs() {
        Ok(addrs) => addrs
            .filter_map(|a| a.address)
            .filter_map(|a| {
                a.as_sockaddr_in()
                    .map(|v4| IpAddr::V4(v4.ip()))
                    .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
            })
            .collect(),
        Err(e) => {
            warn!(
                error = %e,
                "cannot list this host's addresses (getifaddrs); the TURN peer filter still \
                 refuses private and loopback peers and the announced address's other ports, \
                 but not other public addresses of this host"
            );
            Vec::new()
        }
    }
}

/// Starts TURN. A port that is taken is reported and TURN is skipped, so
/// media over UDP and ICE-TCP still works.
pub async fn start(
    settings: &TurnSettings,
    own: OwnAddresses,
    tls: Option<(Arc<rustls::ServerConfig>, String)>,
    shared_port: Option<u16>,
) -> Option<(TurnHandle, TurnOffer)> {
    let OwnAddresses { bind, announce, .. } = own;
    let secret = if settings.secret.is_empty() {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(raw)
    } else {
        settings.secret.clone()
    };
    let mut config = TurnConfig::new("moim", secret.clone(), bind);
    config.udp_listen = Some(SocketAddr::new(bind, settings.port));
    config.tcp_listen = Some(SocketAddr::new(bind, settings.port));
    config.public_ip = Some(announce);
    let tls_host = tls
        .as_ref()
        .map(|(_, host)| host.clone())
        .unwrap_or_default();
    let has_tls = tls.is_some();
    config.tls_listen = tls.map(|(cfg, _)| (SocketAddr::new(bind, settings.tls_port), cfg));
    if let Some(port) = shared_port {
        // TCP and TLS clients arrive through the one-port listener; UDP
        // has the port to itself (media stays on its own, see
        // ServerConfig::one_port).
        config.udp_listen = Some(SocketAddr::new(bind, port));
        config.tcp_listen = None;
        config.tls_listen = None;
    }
    config.relay_port_range = settings.relay_port_range.clone();
    let limits = &settings.limits;
    if let Some(v) = limits.max_connections {
        config.max_connections = v.max(1);
    }
    if let Some(v) = limits.max_connections_per_source {
        config.max_connections_per_source = v.max(1);
    }
    if let Some(v) = limits.auth_deadline {
        config.auth_deadline = v;
    }
    if let Some(v) = limits.user_quota {
        config.user_quota = v.max(1);
    }
    if let Some(v) = limits.max_allocations {
        config.max_allocations = v.max(1);
    }
    // Relaying to moim's own media port is what TURN is for here.
    config.peer_policy = peer_policy(own, &local_addresses());
    if settings.dangerous_allow_private_peers {
        config.peer_policy.dangerous().allow_private_peers(true);
    }
    match moim_turn::spawn(config).await {
        Ok(handle) => {
            info!(udp = ?handle.udp_addr, tcp = ?handle.tcp_addr, "embedded TURN started");
            let offer = TurnOffer {
                host: announce,
                udp_port: handle.udp_addr.map(|a| a.port()),
                tcp_port: shared_port.or(handle.tcp_addr.map(|a| a.port())),
                tls_port: match shared_port {
                    Some(p) if has_tls => Some(p),
                    Some(_) => None,
                    None => handle.tls_addr.map(|a| a.port()),
                },
                tls_host,
                secret,
                ttl: settings.credential_ttl,
            };
            Some((handle, offer))
        }
        Err(e) => {
            warn!("embedded TURN is off: {e}. Clients behind firewalls that block UDP may not connect; free the port or set turn.port");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ip: &str, port: u16) -> SocketAddr {
        SocketAddr::new(ip.parse().expect("ip"), port)
    }

    #[test]
    fn only_the_media_port_of_moims_own_addresses_is_open() {
        // Behind 1:1 NAT: bound to the private address, announcing the public one.
        let own = OwnAddresses {
            bind: "10.0.0.5".parse().expect("ip"),
            announce: "93.184.216.34".parse().expect("ip"),
            media_port: 7882,
        };
        let local: Vec<IpAddr> = ["10.0.0.5", "93.184.216.40", "127.0.0.1"]
            .iter()
            .map(|s| s.parse().expect("ip"))
            .collect();
        let p = peer_policy(own, &local);
        assert!(
            p.check(at("93.184.216.34", 7882)).is_ok(),
            "announced media port"
        );
        assert!(p.check(at("10.0.0.5", 7882)).is_ok(), "bound media port");
        for refused in [
            at("93.184.216.34", 22),
            at("10.0.0.5", 22),
            at("93.184.216.40", 7882),
            at("93.184.216.40", 22),
            at("127.0.0.1", 7882),
            at("0.0.0.0", 7882),
        ] {
            assert!(p.check(refused).is_err(), "{refused}");
        }
        assert!(p.check(at("8.8.8.8", 22)).is_ok(), "public peers");
    }

    #[test]
    fn bind_any_opens_only_the_announced_address() {
        let own = OwnAddresses {
            bind: "0.0.0.0".parse().expect("ip"),
            announce: "93.184.216.34".parse().expect("ip"),
            media_port: 7882,
        };
        let p = peer_policy(own, &[]);
        assert!(p.check(at("93.184.216.34", 7882)).is_ok());
        for any in ["0.0.0.0", "::ffff:0.0.0.0"] {
            assert!(p.check(at(any, 7882)).is_err(), "{any}");
        }
    }
}
