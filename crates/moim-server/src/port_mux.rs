//! One TCP port for everything (`--single-port 443`), for networks that let
//! nothing else through. Each connection is told apart by its first bytes:
//! a TLS ClientHello (then, inside TLS, by ALPN and the first decrypted
//! bytes: HTTPS and WSS, or TURN over TLS), a STUN message (TURN over TCP),
//! an RFC 4571 frame holding a STUN message (ICE-TCP), or HTTP.
//!
//! [`classify`] is the pure part; [`Mux`] is what `http_listener` asks of
//! each connection when the port is shared.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tracing::debug;

use crate::http_listener::Replay;

/// STUN's magic cookie (RFC 8489 §5).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// TURN over TLS's ALPN protocol (RFC 7443).
pub const TURN_ALPN: &[u8] = b"stun.turn";

/// How long a new connection may take to send the bytes that tell what it
/// is. Browsers open HTTPS connections ahead of use and may stay silent.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(30);
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

/// The shared port's side of the HTTP listener: hands TURN and ICE-TCP
/// connections to their doors and gives back those that are HTTP(S).
pub(crate) struct Mux {
    doors: Doors,
    unsaid: Arc<Semaphore>,
}

impl Mux {
    pub(crate) fn new(doors: Doors) -> Self {
        Self {
            doors,
            unsaid: Arc::new(Semaphore::new(MAX_UNSAID)),
        }
    }

    /// Reads (peeks at) a new connection's first bytes. TURN over TCP and
    /// ICE-TCP go to their doors; a connection that starts like TLS or HTTP
    /// comes back for the listener to serve.
    pub(crate) async fn first_look(
        &self,
        tcp: TcpStream,
        remote: SocketAddr,
        accepted: Instant,
    ) -> Option<TcpStream> {
        let Ok(permit) = self.unsaid.clone().try_acquire_owned() else {
            debug!(%remote, "closed: {MAX_UNSAID} connections already wait to say what they are");
            return None;
        };
        let kind = match tokio::time::timeout(FIRST_BYTES_TIMEOUT, sniff(&tcp)).await {
            Ok(Ok(kind)) => kind,
            Ok(Err(e)) => {
                debug!(%remote, "connection ended before it said what it is: {e}");
                return None;
            }
            Err(_) => return None,
        };
        drop(permit);
        let _ = tcp.set_nodelay(true);
        match (kind, &self.doors) {
            (Kind::Tls | Kind::Http, _) => return Some(tcp),
            (
                Kind::TurnStream,
                Doors {
                    turn: Some(turn), ..
                },
            ) => turn.serve(tcp, remote, moim_turn::Transport::Tcp, accepted),
            (
                Kind::IceTcp,
                Doors {
                    ice_tcp: Some(ice), ..
                },
            ) => ice.serve(tcp, remote, accepted),
            (kind, _) => debug!(%remote, ?kind, "closed a connection this port does not serve"),
        }
        None
    }

    /// After the TLS handshake: TURN over TLS goes to TURN's door; HTTPS
    /// comes back, its first bytes kept for hyper.
    pub(crate) async fn inside_tls(
        &self,
        mut tls: TlsStream<TcpStream>,
        remote: SocketAddr,
        accepted: Instant,
    ) -> Option<Replay<TlsStream<TcpStream>>> {
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let mut first = vec![0u8; 4096];
        let n = match tokio::time::timeout(FIRST_BYTES_TIMEOUT, tls.read(&mut first)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return None,
        };
        first.truncate(n);
        let turn = is_turn_inside_tls(alpn.as_deref(), first.first().copied());
        let stream = Replay::new(first, tls);
        if !turn {
            return Some(stream);
        }
        match &self.doors.turn {
            Some(door) => door.serve(stream, remote, moim_turn::Transport::Tls, accepted),
            None => debug!(%remote, "TURN over TLS, but TURN is off"),
        }
        None
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
