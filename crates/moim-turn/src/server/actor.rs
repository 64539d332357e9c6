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

use crate::proto::{ClientAddr, Command, RelayId, Transport, TurnServer};

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

struct Relay {
    socket: Arc<UdpSocket>,
    _reader: AbortOnDrop,
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

    fn next_port(&mut self, even: bool) -> u16 {
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let (lo, hi) = (u64::from(*self.range.start()), u64::from(*self.range.end()));
        let port = lo + self.rng % (hi - lo + 1);
        let port = if even && port % 2 == 1 {
            if port > lo {
                port - 1
            } else {
                port + 1
            }
        } else {
            port
        };
        u16::try_from(port.min(hi)).unwrap_or(*self.range.end())
    }

    fn bind(&mut self, even: bool) -> Option<UdpSocket> {
        for _ in 0..BIND_ATTEMPTS {
            let addr = SocketAddr::new(self.ip, self.next_port(even));
            let Ok(std_socket) = std::net::UdpSocket::bind(addr) else {
                continue;
            };
            if std_socket.set_nonblocking(true).is_err() {
                continue;
            }
            super::grow_socket_buffers(&std_socket, super::RELAY_BUFFER);
            match UdpSocket::from_std(std_socket) {
                Ok(s) => return Some(s),
                Err(e) => warn!(error = %e, "cannot register relay socket"),
            }
        }
        warn!(range = ?self.range, "no free relay port after {BIND_ATTEMPTS} attempts");
        None
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
    events_tx: mpsc::Sender<Event>,
    mut events: mpsc::Receiver<Event>,
) {
    let mut streams: HashMap<ClientAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut relays: HashMap<RelayId, Relay> = HashMap::new();
    loop {
        let deadline = core.poll_timeout();
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { return };
                let now = Instant::now();
                match ev {
                    Event::Client { from, data } => core.handle_client(now, from, &data),
                    Event::Peer { relay, from, data } => core.handle_peer(now, relay, from, &data),
                    Event::StreamOpen { client, tx } => {
                        streams.insert(client, tx);
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
                        if let Some(tx) = streams.get(&to) {
                            if tx.try_send(data).is_err() {
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
                    even_port,
                } => {
                    let bound = binder.bind(even_port).and_then(|socket| {
                        let addr = socket.local_addr().ok()?;
                        let socket = Arc::new(socket);
                        let reader =
                            tokio::spawn(read_relay(socket.clone(), relay, events_tx.clone()));
                        relays.insert(
                            relay,
                            Relay {
                                socket,
                                _reader: AbortOnDrop(reader),
                            },
                        );
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
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await;
    }
}
