//! Who the client is when a reverse proxy stands between it and moim.
//! `X-Forwarded-For` and `Forwarded` (RFC 7239) are believed only from
//! the proxies the operator named (`trusted_proxies`): anyone else could
//! write any address there, and rate limits would follow the lie.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The TCP peer of a request, before any forwarding header is read: the
/// proxy, when there is one. Requests carry it as an extension beside
/// axum's `ConnectInfo`, which holds the client.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Remembers which peers were already warned about, so a proxy that drops
/// every WebSocket upgrade is logged once, not once per attempt.
#[derive(Debug, Default)]
pub(crate) struct WarnedPeers(parking_lot::Mutex<std::collections::HashSet<IpAddr>>);

impl WarnedPeers {
    /// The most peers remembered; past it, a new peer is not warned about
    /// (a flood of sources must not grow memory).
    const MAX: usize = 256;

    /// True the first time `ip` is seen.
    pub(crate) fn first(&self, ip: IpAddr) -> bool {
        let mut seen = self.0.lock();
        if seen.len() >= Self::MAX {
            return false;
        }
        seen.insert(ip)
    }
}

/// `"10.0.0.0/8"`, `"192.0.2.7"` or `"2001:db8::/32"`.
pub fn parse_trusted(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!("trusted proxy {text:?} is neither an IP address nor a CIDR range (10.0.0.0/8)")
        })
}

/// The client's address: the peer itself unless it is a trusted proxy;
/// then, walking the forwarded chain from the nearest hop outwards, the
/// first address that is not a trusted proxy. A hop that cannot be read
/// ends the walk at the last address that could.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let chain = forwarded_for(headers).unwrap_or_else(|| x_forwarded_for(headers));
    let mut client = peer;
    for hop in chain.iter().rev() {
        let Some(ip) = hop else {
            break;
        };
        client = *ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// Every `X-Forwarded-For` header's entries, in order; `None` for an entry
/// that is not an address.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .map(|s| parse_node(s.trim()))
        .collect()
}

/// The `for=` of each element of every `Forwarded` header, or `None` when
/// the request has no `Forwarded` header.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut values = headers.get_all("forwarded").iter().peekable();
    values.peek()?;
    let mut chain = Vec::new();
    for value in values {
        let Ok(text) = value.to_str() else {
            chain.push(None);
            continue;
        };
        for element in text.split(',') {
            let node = element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then(|| v.trim())
            });
            if let Some(node) = node {
                chain.push(parse_node(node.trim_matches('"')));
            }
        }
    }
    Some(chain)
}

/// `192.0.2.7`, `192.0.2.7:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711` or
/// a bare IPv6 address. Obfuscated nodes (`_hidden`, `unknown`) are `None`.
fn parse_node(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    let inner = text.strip_prefix('[')?.split(']').next()?;
    inner.parse::<IpAddr>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|s| parse_trusted(s).expect("net"))
            .collect()
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &h, &nets(&["127.0.0.1"])),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &[]), ip("127.0.0.1"));
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client() {
        // The client wrote a fake first entry; nginx appended the real one.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.7")]);
        let trusted = nets(&["127.0.0.1"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("198.51.100.7"));
        // Two proxies in a row, both trusted.
        let h = headers(&[("x-forwarded-for", "198.51.100.7, 10.1.2.3")]);
        let trusted = nets(&["127.0.0.1", "10.0.0.0/8"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("198.51.100.7"));
        // Split over two header lines.
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-for", "10.1.2.3"),
        ]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("198.51.100.7"));
    }

    #[test]
    fn rfc_7239_forwarded_wins_and_reads_ports_and_brackets() {
        let trusted = nets(&["127.0.0.1"]);
        let h = headers(&[
            ("forwarded", "for=\"[2001:db8:cafe::17]:4711\";proto=https"),
            ("x-forwarded-for", "1.2.3.4"),
        ]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &h, &trusted),
            ip("2001:db8:cafe::17")
        );
        let h = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=http, For=\"198.51.100.17:80\"",
        )]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &h, &trusted),
            ip("198.51.100.17")
        );
    }

    #[test]
    fn an_unreadable_hop_stops_the_walk_at_the_last_readable_one() {
        let trusted = nets(&["127.0.0.1", "10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "198.51.100.7, garbage, 10.1.2.3")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("10.1.2.3"));
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("127.0.0.1"));
        let h = headers(&[("x-forwarded-for", "")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("127.0.0.1"));
    }

    #[test]
    fn trusted_proxies_are_addresses_or_ranges() {
        assert!(parse_trusted("10.0.0.0/8").is_ok());
        assert!(parse_trusted(" 192.0.2.7 ").is_ok());
        assert!(parse_trusted("2001:db8::/32").is_ok());
        let e = parse_trusted("nginx").expect_err("a name is not an address");
        assert!(e.contains("CIDR"), "{e}");
    }
}
