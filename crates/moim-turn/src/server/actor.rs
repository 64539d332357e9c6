//! The task that owns the core, and the relay sockets it drives.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, trace, warn};

use super::limits::Connections;
use crate::proto::{ClientAddr, Command, PortRequest, RelayId, Transport, TurnServer};

/// Largest datagram read from a socket.
const MAX_DATAGRAM: usize = 65_536;
/// Ports tried before a BindRelay is answered with 508.
const BIND_ATTEMPTS: usize = 32;

/// What the IO tasks tell the core task.
#[derive(Debug)]
pub(crate) enum Event {
    Client {
        from: ClientAddr,
        data: Vec<u8>,
    },
    StreamOpen {
        client: ClientAddr,
        tx: mpsc::Sender<Vec<u8>>,
    },
    StreamClosed {
        client: ClientAddr,
    },
    Peer {
        relay: RelayId,
        from: SocketAddr,
        data: Vec<u8>,
    },
}

/// Aborts its task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A TCP or TLS client's writer, and whether its connection has been
/// told it holds an allocation.
struct Stream {
    tx: mpsc::Sender<Vec<u8>>,
    authenticated: bool,
}

struct Relay {
    socket: Arc<UdpSocket>,
    _reader: AbortOnDrop,
}

impl Relay {
    /// Starts reading `socket`; what arrives goes to the core as `relay`.
    fn start(socket: UdpSocket, relay: RelayId, events: &mpsc::Sender<Event>) -> Self {
        let socket = Arc::new(socket);
        let reader = tokio::spawn(read_relay(socket.clone(), relay, events.clone()));
        Relay {
            socket,
            _reader: AbortOnDrop(reader),
        }
    }
}

/// Binds relay sockets at random ports of the range.
pub(crate) struct RelayBinder {
    ip: IpAddr,
    range: RangeInclusive<u16>,
    rng: u64,
}

impl RelayBinder {
    pub(crate) fn new(ip: IpAddr, range: RangeInclusive<u16>) -> Self {
        let mut seed = [0u8; 8];
        // Falls back to a fixed seed; port choice needs no secrecy.
        let _ = getrandom::getrandom(&mut seed);
        RelayBinder {
            ip,
            range,
            rng: u64::from_le_bytes(seed) | 1,
        }
    }

    /// A random port of the range; `even` rounds it to an even one, and
    /// `room_above` keeps it below the top so N+1 is in the range too.
    /// `None` if the range holds no such port.
    fn next_port(&mut self, even: bool, room_above: bool) -> Option<u16> {
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let lo = u64::from(*self.range.start());
        let hi = u64::from(*self.range.end()).checked_sub(u64::from(room_above))?;
        // Both ends rounded inwards to even, if asked.
        let (lo, hi) = if even {
            (lo + lo % 2, hi - hi % 2)
        } else {
            (lo, hi)
        };
        if lo > hi {
            return None;
        }
        let step = if even { 2 } else { 1 };
        let port = lo + (self.rng % ((hi - lo) / step + 1)) * step;
        u16::try_from(port).ok()
    }

    /// Binds for `port`: the relay socket, and for [`PortRequest::EvenPair`]
    /// the socket of the next-higher port too.
    fn bind(&mut self, port: PortRequest) -> Option<(UdpSocket, Option<UdpSocket>)> {
        let (even, pair) = match port {
            PortRequest::Any => (false, false),
            PortRequest::Even => (true, false),
            PortRequest::EvenPair { .. } => (true, true),
        };
        for _ in 0..BIND_ATTEMPTS {
            let Some(n) = self.next_port(even, pair) else {
                break;
            };
            let Some(first) = self.bind_one(n) else {
                continue;
            };
            if !pair {
                return Some((first, None));
            }
            // N+1 exists: next_port left room above N.
            if let Some(second) = self.bind_one(n.saturating_add(1)) {
                return Some((first, Some(second)));
            }
        }
        warn!(
            range = ?self.range,
            ?port,
            "no free relay port after {BIND_ATTEMPTS} attempts: the TURN relay port range is \
             too small or nearly full; widen it"
        );
        None
    }

    fn bind_one(&self, port: u16) -> Option<UdpSocket> {
        let std_socket = std::net::UdpSocket::bind(SocketAddr::new(self.ip, port)).ok()?;
        std_socket.set_nonblocking(true).ok()?;
        super::grow_socket_buffers(&std_socket, super::RELAY_BUFFER);
        match UdpSocket::from_std(std_socket) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(error = %e, "cannot register relay socket with the runtime");
                None
            }
        }
    }
}

pub(crate) async fn read_udp_listener(socket: Arc<UdpSocket>, events: mpsc::Sender<Event>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let from = ClientAddr {
                    transport: Transport::Udp,
                    addr: from,
                };
                let ev = Event::Client {
                    from,
                    data: buf[..n].to_vec(),
                };
                if events.send(ev).await.is_err() {
                    return;
                }
            }
            // ICMP errors surface here on some systems; keep reading.
            Err(e) => trace!(error = %e, "UDP listener receive error"),
        }
    }
}

async fn read_relay(socket: Arc<UdpSocket>, relay: RelayId, events: mpsc::Sender<Event>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let ev = Event::Peer {
                    relay,
                    from,
                    data: buf[..n].to_vec(),
                };
                if events.send(ev).await.is_err() {
                    return;
                }
            }
            Err(e) => trace!(error = %e, "relay receive error"),
        }
    }
}

/// Owns the core: feeds it events and time, carries out its commands.
pub(crate) async fn run(
    mut core: TurnServer,
    udp: Option<Arc<UdpSocket>>,
    mut binder: RelayBinder,
    conns: Connections,
    events_tx: mpsc::Sender<Event>,
    mut events: mpsc::Receiver<Event>,
) {
    let mut streams: HashMap<ClientAddr, Stream> = HashMap::new();
    let mut relays: HashMap<RelayId, Relay> = HashMap::new();
    loop {
        let deadline = core.poll_timeout();
        let mut stream_request = None;
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { return };
                let now = Instant::now();
                match ev {
                    Event::Client { from, data } => {
                        core.handle_client(now, from, &data);
                        // Only a STUN message (top bits 00; ChannelData is
                        // 01) can create the allocation that authenticates a
                        // stream; relayed media skips the lookup below.
                        if from.transport.is_stream() && data.first().is_some_and(|b| b >> 6 == 0) {
                            stream_request = Some(from);
                        }
                    }
                    Event::Peer { relay, from, data } => core.handle_peer(now, relay, from, &data),
                    Event::StreamOpen { client, tx } => {
                        streams.insert(client, Stream { tx, authenticated: false });
                    }
                    Event::StreamClosed { client } => {
                        streams.remove(&client);
                        core.client_closed(client);
                    }
                }
            }
            () = sleep_until(deadline), if deadline.is_some() => {
                core.handle_timeout(Instant::now());
            }
        }
        while let Some(cmd) = core.poll_command() {
            match cmd {
                Command::SendToClient { to, data } => match to.transport {
                    Transport::Udp => {
                        if let Some(udp) = &udp {
                            if let Err(e) = udp.try_send_to(&data, to.addr) {
                                trace!(error = %e, "dropping datagram to client");
                            }
                        }
                    }
                    Transport::Tcp | Transport::Tls => {
                        if let Some(s) = streams.get(&to) {
                            if s.tx.try_send(data).is_err() {
                                trace!("client stream backlogged: dropping");
                            }
                        }
                    }
                },
                Command::SendToPeer { relay, to, data } => {
                    if let Some(r) = relays.get(&relay) {
                        if let Err(e) = r.socket.try_send_to(&data, to) {
                            trace!(error = %e, "dropping datagram to peer");
                        }
                    }
                }
                Command::BindRelay {
                    relay,
                    ipv6: _,
                    port,
                } => {
                    let bound = binder.bind(port).and_then(|(socket, next)| {
                        let addr = socket.local_addr().ok()?;
                        if let (Some(next), PortRequest::EvenPair { reserve }) = (next, port) {
                            relays.insert(reserve, Relay::start(next, reserve, &events_tx));
                        }
                        relays.insert(relay, Relay::start(socket, relay, &events_tx));
                        Some(addr)
                    });
                    debug!(?relay, ?bound, "relay socket");
                    core.relay_bound(Instant::now(), relay, bound);
                }
                Command::FreeRelay { relay } => {
                    relays.remove(&relay);
                }
            }
        }
        // After the commands: an Allocate is answered once its relay is bound.
        if let Some(from) = stream_request {
            if let Some(s) = streams.get_mut(&from) {
                if !s.authenticated && core.has_allocation(from) {
                    s.authenticated = true;
                    conns.authenticated(from);
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binder(range: RangeInclusive<u16>) -> RelayBinder {
        RelayBinder::new(IpAddr::from([127, 0, 0, 1]), range)
    }

    #[test]
    fn port_choice_respects_parity_and_leaves_room_for_the_pair() {
        let mut b = binder(50000..=50009);
        for _ in 0..200 {
            let any = b.next_port(false, false).expect("port");
            assert!((50000..=50009).contains(&any));
            let even = b.next_port(true, false).expect("even port");
            assert!(even.is_multiple_of(2) && (50000..=50008).contains(&even));
            let pair = b.next_port(true, true).expect("pair");
            assert!(pair.is_multiple_of(2) && pair < 50009);
        }
        // Odd bounds: 50001..=50002 has an even port but no even pair.
        let mut b = binder(50001..=50002);
        assert_eq!(b.next_port(true, false), Some(50002));
        assert_eq!(b.next_port(true, true), None);
        assert_eq!(binder(50001..=50001).next_port(true, false), None);
        assert_eq!(binder(0..=0).next_port(true, true), None);
    }

    #[tokio::test]
    async fn an_even_pair_binds_n_and_n_plus_1() {
        let mut b = binder(41000..=41999);
        let (first, next) = b
            .bind(PortRequest::EvenPair {
                reserve: RelayId(2),
            })
            .expect("a free pair on loopback");
        let n = first.local_addr().expect("addr").port();
        let next = next.expect("the reserved socket");
        assert_eq!(n % 2, 0);
        assert_eq!(next.local_addr().expect("addr").port(), n + 1);
    }
}
