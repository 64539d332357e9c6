//! Someone opens 2,000 ICE-TCP connections and leaves them idle: silent,
//! announcing a 65535-byte frame and sending nothing more, or sending part
//! of a frame. Real clients (str0m speaking RFC 4571, as a browser does)
//! still connect over ICE-TCP and get audio from one to the other, and a
//! pending connection is closed at its deadline while an established one
//! stays.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moim_sfu::{
    Command, IceTcpLimits, MediaConfig, MediaEvent, MediaPlane, PeerEvent, PeerKey, PeerRole,
    PeerSpec, RoomKey, TrackKey, TrackKind,
};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc::{self, UnboundedReceiver};

const ROOM: RoomKey = RoomKey(1);
const PUBLISHER: PeerKey = PeerKey(11);
const SUBSCRIBER: PeerKey = PeerKey(12);
const TRACK: TrackKey = TrackKey(21);
/// Everything a test waits for is bounded by this.
const LIMIT: Duration = Duration::from_secs(20);

async fn start(limits: IceTcpLimits) -> Arc<MediaPlane> {
    MediaPlane::start(MediaConfig {
        udp_bind: "127.0.0.1:0".parse().expect("addr"),
        tcp_bind: Some("127.0.0.1:0".parse().expect("addr")),
        tcp_shared_port: None,
        announce_ip: Ipv4Addr::LOCALHOST.into(),
        shards: 1,
        ice_tcp: limits,
        downlink_bwe: true,
    })
    .await
    .expect("media plane")
}

/// Opens the test's room. Its events come on one channel, as a room sees
/// them; each client here wants only its own peer's, so they are sorted.
async fn open_room(plane: &MediaPlane) -> [UnboundedReceiver<MediaEvent>; 2] {
    let (room_tx, mut room_rx) = mpsc::unbounded_channel::<MediaEvent>();
    let (publisher_tx, publisher_rx) = mpsc::unbounded_channel();
    let (subscriber_tx, subscriber_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(ev) = room_rx.recv().await {
            let to = if ev.peer == PUBLISHER {
                &publisher_tx
            } else {
                &subscriber_tx
            };
            let _ = to.send(ev);
        }
    });
    plane
        .send(
            ROOM,
            Command::OpenRoom {
                room: ROOM,
                events: room_tx,
            },
        )
        .await;
    [publisher_rx, subscriber_rx]
}

async fn add_peer(plane: &MediaPlane, peer: PeerKey, role: PeerRole) {
    plane
        .send(
            ROOM,
            Command::AddPeer(PeerSpec {
                room: ROOM,
                peer,
                role,
                participant_sid: format!("PA_{peer}"),
                identity: format!("user{peer}"),
                can_publish_data: true,
                accepts_packet_trailer: false,
            }),
        )
        .await;
}

/// A client PeerConnection whose only candidate is an active ICE-TCP one.
/// Like a browser, it connects when ICE first sends and writes that STUN
/// request at once.
struct Client {
    key: PeerKey,
    rtc: Rtc,
    local: SocketAddr,
    socket: Option<TcpSocket>,
    writer: Option<OwnedWriteHalf>,
    frames: Option<UnboundedReceiver<Vec<u8>>>,
    /// The server closed our connection.
    closed: bool,
    timeout: Instant,
    server: UnboundedReceiver<MediaEvent>,
    pending: Option<SdpPendingOffer>,
    connected: bool,
    server_connected: bool,
    audio_mid: Option<Mid>,
    media_received: usize,
}

impl Client {
    fn new(key: PeerKey, server: UnboundedReceiver<MediaEvent>) -> Self {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.bind((Ipv4Addr::LOCALHOST, 0).into()).expect("bind");
        let local = socket.local_addr().expect("local addr");
        let now = Instant::now();
        let mut rtc = Rtc::builder().build(now);
        rtc.add_local_candidate(Candidate::host(local, "tcp").expect("candidate"));
        Client {
            key,
            rtc,
            local,
            socket: Some(socket),
            writer: None,
            frames: None,
            closed: false,
            timeout: now,
            server,
            pending: None,
            connected: false,
            server_connected: false,
            audio_mid: None,
            media_received: 0,
        }
    }

    async fn send_frame(&mut self, destination: SocketAddr, contents: &[u8]) {
        if self.writer.is_none() {
            let Some(socket) = self.socket.take() else {
                return;
            };
            let stream = socket.connect(destination).await.expect("ICE-TCP connect");
            let (mut reader, writer) = stream.into_split();
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(async move {
                loop {
                    let Ok(len) = reader.read_u16().await else {
                        return;
                    };
                    let mut buf = vec![0; usize::from(len)];
                    if reader.read_exact(&mut buf).await.is_err() || tx.send(buf).is_err() {
                        return;
                    }
                }
            });
            self.writer = Some(writer);
            self.frames = Some(rx);
        }
        let Some(w) = self.writer.as_mut() else {
            return;
        };
        let mut framed = u16::try_from(contents.len())
            .expect("frame fits")
            .to_be_bytes()
            .to_vec();
        framed.extend_from_slice(contents);
        let _ = w.write_all(&framed).await;
    }

    /// Drains str0m's output: frames out, events noted.
    async fn drain(&mut self) {
        loop {
            match self.rtc.poll_output().expect("poll_output") {
                Output::Timeout(t) => {
                    self.timeout = t;
                    return;
                }
                Output::Transmit(t) => {
                    assert_eq!(t.proto, Protocol::Tcp, "only ICE-TCP is offered");
                    let contents = t.contents.to_vec();
                    self.send_frame(t.destination, &contents).await;
                }
                Output::Event(e) => match e {
                    Event::Connected => self.connected = true,
                    Event::MediaData(_) => self.media_received += 1,
                    _ => {}
                },
            }
        }
    }

    /// Answers the server's offers, applies its answers.
    async fn signal(&mut self, plane: &MediaPlane) {
        while let Ok(ev) = self.server.try_recv() {
            match ev.event {
                PeerEvent::Offer { sdp, id, .. } => {
                    let offer = SdpOffer::from_sdp_string(&sdp).expect("server offer");
                    let answer = self.rtc.sdp_api().accept_offer(offer).expect("accept");
                    plane
                        .send(
                            ROOM,
                            Command::Answer {
                                peer: self.key,
                                sdp: answer.to_sdp_string(),
                                id,
                            },
                        )
                        .await;
                }
                PeerEvent::Answer { sdp, .. } => {
                    let answer = SdpAnswer::from_sdp_string(&sdp).expect("server answer");
                    let pending = self.pending.take().expect("an offer was sent");
                    self.rtc
                        .sdp_api()
                        .accept_answer(pending, answer)
                        .expect("accept answer");
                }
                PeerEvent::Connected => self.server_connected = true,
                PeerEvent::NegotiationFailed(why) => panic!("negotiation failed: {why}"),
                _ => {}
            }
        }
    }

    /// One pass: signalling, output, then one input (a frame or a timeout).
    async fn step(&mut self, plane: &MediaPlane) {
        self.signal(plane).await;
        self.drain().await;
        let wait = tokio::time::Instant::from_std(
            self.timeout
                .min(Instant::now() + Duration::from_millis(5))
                .max(Instant::now()),
        );
        let frame = match self.frames.as_mut() {
            Some(frames) => tokio::select! {
                f = frames.recv() => f.map(Some).unwrap_or_else(|| {
                    self.closed = true;
                    None
                }),
                _ = tokio::time::sleep_until(wait) => None,
            },
            None => {
                tokio::time::sleep_until(wait).await;
                None
            }
        };
        let now = Instant::now();
        let input = match frame.as_deref() {
            Some(buf) => match Receive::new(Protocol::Tcp, self.peer_addr(), self.local, buf) {
                Ok(r) => Input::Receive(now, r),
                Err(_) => Input::Timeout(now),
            },
            None => Input::Timeout(now),
        };
        self.rtc.handle_input(input).expect("handle_input");
    }

    fn peer_addr(&self) -> SocketAddr {
        self.writer
            .as_ref()
            .and_then(|w| w.peer_addr().ok())
            .unwrap_or(self.local)
    }

    /// Sends one 20 ms Opus frame, if the track is up.
    fn send_audio(&mut self, n: u64) {
        let Some(mid) = self.audio_mid else { return };
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        let Some(pt) = writer.payload_params().next().map(|p| p.pt()) else {
            return;
        };
        let time = MediaTime::new(n * 960, Frequency::FORTY_EIGHT_KHZ);
        // An Opus DTX-like frame; the SFU never decodes it.
        let _ = writer.write(pt, Instant::now(), time, vec![0xf8, 0xff, 0xfe]);
    }
}

/// A publisher with one audio track, offered to the server.
async fn publisher(plane: &MediaPlane, events: UnboundedReceiver<MediaEvent>) -> Client {
    add_peer(plane, PUBLISHER, PeerRole::Publisher).await;
    plane
        .send(
            ROOM,
            Command::ExpectTrack {
                peer: PUBLISHER,
                track: TRACK,
                track_sid: "TR_mic".into(),
                cid: "mic".into(),
                kind: TrackKind::Audio,
                codec: None,
                packet_trailer: false,
                screen_share: false,
            },
        )
        .await;
    let mut c = Client::new(PUBLISHER, events);
    let mut api = c.rtc.sdp_api();
    let mid = api.add_media(
        MediaKind::Audio,
        Direction::SendOnly,
        Some("stream".into()),
        Some("mic".into()),
        None,
    );
    let (offer, pending) = api.apply().expect("an offer");
    c.audio_mid = Some(mid);
    c.pending = Some(pending);
    plane
        .send(
            ROOM,
            Command::Offer {
                peer: PUBLISHER,
                sdp: offer.to_sdp_string(),
                id: 1,
            },
        )
        .await;
    c
}

/// Steps every client until `done` holds; panics with `what` after LIMIT.
async fn run_until(
    plane: &MediaPlane,
    clients: &mut [&mut Client],
    what: &str,
    mut done: impl FnMut(&[&mut Client]) -> bool,
) {
    let start = Instant::now();
    let mut n = 0;
    let mut last_audio = Instant::now();
    while !done(clients) {
        assert!(start.elapsed() < LIMIT, "{what}: not within {LIMIT:?}");
        for c in clients.iter_mut() {
            if c.audio_mid.is_some() && last_audio.elapsed() >= Duration::from_millis(20) {
                n += 1;
                last_audio = Instant::now();
                c.send_audio(n);
            }
            c.step(plane).await;
        }
    }
}

/// The flood's source addresses: a tenth from 127.0.0.1, where the real
/// clients connect from, the rest from 200 other loopback addresses.
fn flood_source(i: usize) -> Ipv4Addr {
    if i.is_multiple_of(10) {
        return Ipv4Addr::LOCALHOST;
    }
    let k = i % 200;
    Ipv4Addr::new(127, 0, 1 + (k / 100) as u8, 1 + (k % 100) as u8)
}

/// One idle connection of three kinds.
async fn idle_connection(server: SocketAddr, i: usize) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind((flood_source(i), 0).into()).ok()?;
    let mut s = socket.connect(server).await.ok()?;
    match i % 3 {
        0 => {}
        // Announces the largest frame and sends nothing more.
        1 => s.write_all(&[0xff, 0xff]).await.ok()?,
        // Announces 2,000 bytes (a first frame moim reads) and sends 100.
        _ => {
            s.write_all(&[0x07, 0xd0]).await.ok()?;
            s.write_all(&[0x00; 100]).await.ok()?;
        }
    }
    Some(s)
}

/// Whether the server has closed `s` (reads EOF or an error).
fn closed_by_server(s: &TcpStream) -> bool {
    let mut buf = [0u8; 16];
    match s.try_read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// Waits (bounded) until the server closes `s`.
async fn closed_within(mut s: TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 64];
    let end = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(end, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_connections_do_not_keep_real_clients_out() {
    const FLOOD: usize = 2000;
    let limits = IceTcpLimits {
        // A long deadline, so the flood still holds every pending place
        // while the clients join: only eviction lets them in.
        stun_deadline: Duration::from_secs(60),
        ..IceTcpLimits::default()
    };
    let max_pending = limits.max_pending;
    let plane = start(limits).await;
    let server = plane.tcp_addr().expect("ICE-TCP listener");

    let started = Instant::now();
    let mut idle = VecDeque::new();
    for i in 0..FLOOD {
        if let Some(s) = idle_connection(server, i).await {
            idle.push_back(s);
        }
    }
    assert_eq!(idle.len(), FLOOD, "the flood's connections were accepted");
    // The last connections that announced 65535 bytes were closed after the
    // last admission and left a few places free: fill those too.
    let mut counts = plane.ice_tcp_counts();
    for i in 0..200 {
        if counts.pending == max_pending {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        counts = plane.ice_tcp_counts();
        if counts.pending < max_pending {
            // A multiple of 3 is a silent connection.
            if let Some(s) = idle_connection(server, 3 * (FLOOD + i)).await {
                idle.push_back(s);
            }
        }
    }
    assert_eq!(
        counts.pending, max_pending,
        "the flood should fill the pending set"
    );
    println!(
        "{FLOOD} idle connections opened in {:?}; the server holds {counts:?}",
        started.elapsed()
    );

    // Real clients while the flood holds every pending place it can.
    let joined = Instant::now();
    let [publisher_events, sub_events] = open_room(&plane).await;
    let mut publisher = publisher(&plane, publisher_events).await;
    add_peer(&plane, SUBSCRIBER, PeerRole::Subscriber).await;
    let mut subscriber = Client::new(SUBSCRIBER, sub_events);
    run_until(
        &plane,
        &mut [&mut publisher, &mut subscriber],
        "both PeerConnections connect over ICE-TCP",
        |c| c.iter().all(|c| c.connected && c.server_connected),
    )
    .await;
    plane
        .send(
            ROOM,
            Command::Subscribe {
                peer: SUBSCRIBER,
                track: TRACK,
            },
        )
        .await;
    run_until(
        &plane,
        &mut [&mut publisher, &mut subscriber],
        "the subscriber receives the publisher's audio",
        |c| c[1].media_received >= 25,
    )
    .await;
    println!(
        "publisher and subscriber connected and exchanged {} audio frames in {:?}; {:?}",
        subscriber.media_received,
        joined.elapsed(),
        plane.ice_tcp_counts()
    );
    assert!(!publisher.closed && !subscriber.closed);
    assert_eq!(plane.ice_tcp_counts().established, 2);

    // The server holds no more of the flood than the pending bound.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let open = idle.iter().filter(|s| !closed_by_server(s)).count();
    println!("{open} of the flood's connections are still open");
    assert!(
        open <= max_pending,
        "{open} idle connections open, more than {max_pending}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_connection_closes_at_its_deadline_an_established_one_stays() {
    let deadline = Duration::from_millis(500);
    let plane = start(IceTcpLimits {
        stun_deadline: deadline,
        ..IceTcpLimits::default()
    })
    .await;
    let server = plane.tcp_addr().expect("ICE-TCP listener");

    let [publisher_events, _] = open_room(&plane).await;
    let mut publisher = publisher(&plane, publisher_events).await;
    run_until(
        &plane,
        &mut [&mut publisher],
        "the publisher connects over ICE-TCP",
        |c| c[0].connected && c[0].server_connected,
    )
    .await;

    let mut idle = Vec::new();
    for i in 0..30 {
        // Kinds 0 and 2 stay pending; kind 1 is refused at once.
        idle.push(idle_connection(server, i).await.expect("connect"));
    }
    let waits = idle
        .into_iter()
        .map(|s| tokio::spawn(closed_within(s, LIMIT)));
    for w in waits {
        assert!(w.await.expect("join"), "an idle connection stayed open");
    }

    // Well past the deadline, the established connection still carries ICE.
    let until = Instant::now() + deadline * 3;
    run_until(&plane, &mut [&mut publisher], "", |_| {
        Instant::now() >= until
    })
    .await;
    assert!(!publisher.closed, "the established connection was closed");
    assert!(publisher.connected);
    assert_eq!(plane.ice_tcp_counts().established, 1);
    assert_eq!(plane.ice_tcp_counts().pending, 0);
}
