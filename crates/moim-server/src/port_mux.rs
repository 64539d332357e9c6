//! One TCP port for everything (`--single-port 443`), for networks that let
//! nothing else through. Each connection is told apart by its first bytes:
//! a TLS ClientHello (then, inside TLS, by ALPN and the first decrypted
//! bytes: HTTPS and WSS, or TURN over TLS), a STUN message (TURN over TCP),
//! an RFC 4571 frame holding a STUN message (ICE-TCP), or HTTP.
//!
//! [`classify`] is the pure part; [`serve`] reads and routes.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use crate::http_listener::{is_acme_validation, serve_connection, Replay};

/// STUN's magic cookie (RFC 8489 §5).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// TURN over TLS's ALPN protocol (RFC 7443).
pub const TURN_ALPN: &[u8] = b"stun.turn";

/// How long a new connection may take to send the bytes that tell what it
/// is. Browsers open HTTPS connections ahead of use and may stay silent.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(30);
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections that have not yet said what they are, at most. Clients send
/// their first bytes at once (a ClientHello, a STUN request); only idle
/// connections wait here, and past this bound new ones are closed rather
/// than let an idle flood hold every file descriptor.
const MAX_UNSAID: usize = 1024;

/// What the first bytes of a connection say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A TLS record: HTTPS, WSS or TURN over TLS, told apart inside.
    Tls,
    /// A STUN message at offset 0: TURN over TCP (RFC 8656 §11).
    TurnStream,
    /// A 2-byte length, then a STUN message: ICE-TCP (RFC 6544, RFC 4571).
    IceTcp,
    /// Anything else that starts like an HTTP request line.
    Http,
    /// Not enough bytes yet to tell.
    NeedMore,
    /// None of these.
    Unknown,
}

/// The bytes [`classify`] may need to decide.
pub const DECIDING_BYTES: usize = 10;

pub fn classify(prefix: &[u8]) -> Kind {
    let Some(&first) = prefix.first() else {
        return Kind::NeedMore;
    };
    match first {
        // TLS handshake record (RFC 8446 §5.1).
        0x16 => Kind::Tls,
        // A request line starts with a method token: letters.
        b'A'..=b'Z' => Kind::Http,
        // STUN's first two bits are zero; as a frame length (ICE-TCP) a
        // first byte under 0x40 is a frame under 16 KiB. The magic cookie
        // says which: at offset 4 for STUN, 6 behind a length.
        0x00..=0x3f => {
            if prefix.len() >= 8 && prefix[4..8] == MAGIC_COOKIE && prefix[0] & 0xc0 == 0 {
                Kind::TurnStream
            } else if prefix.len() >= DECIDING_BYTES && prefix[6..10] == MAGIC_COOKIE {
                Kind::IceTcp
            } else if prefix.len() < DECIDING_BYTES {
                Kind::NeedMore
            } else {
                Kind::Unknown
            }
        }
        _ => Kind::Unknown,
    }
}

/// Inside TLS: TURN if the client said so with ALPN or its first message
/// is STUN (first byte 0 to 3, RFC 7983), HTTP otherwise. ChannelData's
/// range (0x40 to 0x4f) is no sign here: it holds 'C' to 'O', the first
/// letters of HTTP methods, and a TURN client's first message is always a
/// STUN request (no channel is bound yet).
pub fn is_turn_inside_tls(alpn: Option<&[u8]>, first: Option<u8>) -> bool {
    alpn == Some(TURN_ALPN) || matches!(first, Some(0x00..=0x03))
}

/// Where the connections that are not HTTP go.
#[derive(Clone, Default)]
pub struct Doors {
    pub turn: Option<moim_turn::StreamDoor>,
    pub ice_tcp: Option<moim_sfu::IceTcpDoor>,
}

/// Accepts connections until the process ends, routing each by its first
/// bytes.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    trusted_proxies: Arc<[ipnet::IpNet]>,
    doors: Doors,
) -> io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let unsaid = Arc::new(tokio::sync::Semaphore::new(MAX_UNSAID));
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                debug!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let app = app.clone();
        let acceptor = acceptor.clone();
        let trusted = trusted_proxies.clone();
        let doors = doors.clone();
        let Ok(permit) = unsaid.clone().try_acquire_owned() else {
            debug!(%remote, "closed: {MAX_UNSAID} connections already wait to say what they are");
            continue;
        };
        tokio::spawn(async move {
            let accepted = tokio::time::Instant::now();
            let kind = match tokio::time::timeout(FIRST_BYTES_TIMEOUT, sniff(&tcp)).await {
                Ok(Ok(kind)) => kind,
                Ok(Err(e)) => {
                    return debug!(%remote, "connection ended before it said what it is: {e}")
                }
                Err(_) => return,
            };
            drop(permit);
            route(tcp, remote, kind, accepted, app, acceptor, trusted, doors).await;
        });
    }
}

/// Peeks (reads nothing) until the first bytes decide, or the peer stops.
async fn sniff(tcp: &TcpStream) -> io::Result<Kind> {
    let mut buf = [0u8; DECIDING_BYTES];
    loop {
        tcp.readable().await?;
        let n = tcp.peek(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        match classify(&buf[..n]) {
            Kind::NeedMore => {
                // peek leaves the socket readable; wait for more bytes
                // without spinning.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            kind => return Ok(kind),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn route(
    tcp: TcpStream,
    remote: SocketAddr,
    kind: Kind,
    accepted: tokio::time::Instant,
    app: Router,
    acceptor: Option<TlsAcceptor>,
    trusted: Arc<[ipnet::IpNet]>,
    doors: Doors,
) {
    let _ = tcp.set_nodelay(true);
    match (kind, &acceptor, &doors) {
        (
            Kind::TurnStream,
            _,
            Doors {
                turn: Some(turn), ..
            },
        ) => turn.serve(tcp, remote, moim_turn::Transport::Tcp, accepted),
        (
            Kind::IceTcp,
            _,
            Doors {
                ice_tcp: Some(ice), ..
            },
        ) => ice.serve(tcp, remote, accepted),
        (Kind::Http, None, _) => serve_connection(tcp, remote, app, trusted).await,
        (Kind::Tls, Some(acceptor), _) => {
            let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return debug!(%remote, "TLS handshake failed: {e}"),
                Err(_) => return debug!(%remote, "TLS handshake did not finish in time"),
            };
            if is_acme_validation(&tls) {
                return debug!(%remote, "answered an ACME TLS-ALPN-01 validation");
            }
            let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            let mut tls = tls;
            let mut first = vec![0u8; 4096];
            let n = match tokio::time::timeout(FIRST_BYTES_TIMEOUT, tls.read(&mut first)).await {
                Ok(Ok(n)) if n > 0 => n,
                _ => return,
            };
            first.truncate(n);
            let stream = Replay::new(first.clone(), tls);
            if is_turn_inside_tls(alpn.as_deref(), first.first().copied()) {
                match &doors.turn {
                    Some(turn) => turn.serve(stream, remote, moim_turn::Transport::Tls, accepted),
                    None => debug!(%remote, "TURN over TLS, but TURN is off"),
                }
            } else {
                serve_connection(stream, remote, app, trusted).await;
            }
        }
        (kind, _, _) => debug!(%remote, ?kind, "closed a connection this port does not serve"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun_binding() -> Vec<u8> {
        let mut m = vec![0x00, 0x01, 0x00, 0x00];
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m
    }

    #[test]
    fn each_protocol_is_told_by_its_first_bytes() {
        assert_eq!(classify(&[0x16, 0x03, 0x01]), Kind::Tls);
        assert_eq!(classify(b"GET /rtc HTTP/1.1"), Kind::Http);
        assert_eq!(classify(b"OPTIONS * HTTP/1.1"), Kind::Http);
        assert_eq!(classify(&stun_binding()), Kind::TurnStream);
        let mut framed = vec![0x00, 20];
        framed.extend_from_slice(&stun_binding());
        assert_eq!(classify(&framed), Kind::IceTcp);
    }

    #[test]
    fn a_short_prefix_waits_and_garbage_is_refused() {
        assert_eq!(classify(&[]), Kind::NeedMore);
        assert_eq!(classify(&[0x00, 0x01, 0x00]), Kind::NeedMore);
        assert_eq!(classify(&[0x00; 10]), Kind::Unknown);
        assert_eq!(classify(&[0xff, 0xff]), Kind::Unknown);
        assert_eq!(classify(b"\x80\x60rtp"), Kind::Unknown);
    }

    #[test]
    fn inside_tls_turn_is_told_by_alpn_or_stun_bytes() {
        assert!(is_turn_inside_tls(Some(TURN_ALPN), Some(b'G')));
        assert!(is_turn_inside_tls(None, Some(0x00)));
        for method in [b'G', b'H', b'C', b'D', b'O'] {
            assert!(
                !is_turn_inside_tls(None, Some(method)),
                "{}",
                method as char
            );
        }
        assert!(!is_turn_inside_tls(Some(b"http/1.1"), Some(b'G')));
        assert!(!is_turn_inside_tls(None, Some(b'G')));
    }
}
