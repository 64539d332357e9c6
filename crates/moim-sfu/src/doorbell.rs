//! How a thread that queues work for shard 0 wakes it. Shard 0 sleeps in
//! `poll` on the media socket rather than on its queues (see `demux.rs`), so
//! the wake-up is one byte sent to that socket from a socket shard 0
//! recognises and ignores.

use std::io::{self, ErrorKind};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The longest shard 0 sleeps without a timer or a datagram: a backstop in
/// case a doorbell ring is lost.
pub(crate) const MAX_WAIT: Duration = Duration::from_millis(100);

/// Wakes shard 0 out of its `poll` on the media socket.
pub(crate) struct Doorbell {
    socket: UdpSocket,
    warned: AtomicBool,
}

impl Doorbell {
    /// A socket connected to the media socket, from loopback when the media
    /// socket listens on every address.
    pub fn new(media: SocketAddr) -> io::Result<Self> {
        let target = match media.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), media.port())
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), media.port())
            }
            _ => media,
        };
        let bind = match target {
            SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        };
        let socket = UdpSocket::bind(bind)?;
        socket.connect(target)?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            warned: AtomicBool::new(false),
        })
    }

    /// The source address shard 0 sees on a ring.
    pub fn address(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    pub fn ring(&self) {
        match self.socket.send(&[0]) {
            Ok(_) => {}
            // A full buffer means rings are already waiting: nothing is lost.
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "cannot wake the media thread over loopback: {e}. Signaling still works \
                         but each step may wait up to {} ms. Check that the lo interface is up and \
                         that no firewall rule drops UDP to moim's own media port",
                        MAX_WAIT.as_millis()
                    );
                }
            }
        }
    }
}
