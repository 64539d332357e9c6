//! A shard core on virtual time: str0m clients and the shard exchange
//! packets through memory, the test plays the room, and the clock moves
//! only when everyone is waiting. No socket, no thread, no sleep.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::sync::mpsc::{self, UnboundedReceiver};

use super::{PlaneCounters, Shard, ShardContext, ShardGauges, ShardIo};
use crate::api::TrackKind;
use crate::api::{Command, MediaEvent, PeerEvent, PeerKey, PeerRole, PeerSpec, RoomKey, TrackKey};

const ROOM: RoomKey = RoomKey(1);
const PUBLISHER: PeerKey = PeerKey(11);
const SUBSCRIBER: PeerKey = PeerKey(12);
const MIC: TrackKey = TrackKey(21);
/// Virtual time any story may take.
const STORY_LIMIT: Duration = Duration::from_secs(30);

fn server_addr() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 7882))
}

/// What the shard asked to send, kept for the test to deliver.
#[derive(Default)]
struct Wire {
    datagrams: Vec<(SocketAddr, Vec<u8>)>,
    ufrags: HashMap<String, bool>,
}

impl ShardIo for Wire {
    fn transmit(&mut self, proto: Protocol, destination: SocketAddr, contents: Vec<u8>) {
        assert_eq!(proto, Protocol::Udp, "only UDP candidates are offered");
        self.datagrams.push((destination, contents));
    }

    fn route_ufrag(&mut self, ufrag: &str, here: bool) {
        self.ufrags.insert(ufrag.to_string(), here);
    }
}

struct Client {
    key: PeerKey,
    rtc: Rtc,
    addr: SocketAddr,
    timeout: Instant,
    pending: Option<SdpPendingOffer>,
    connected: bool,
    server_connected: bool,
    audio_mid: Option<Mid>,
    audio_received: usize,
}

impl Client {
    fn new(key: PeerKey, port: u16, now: Instant) -> Self {
        let addr = SocketAddr::from(([10, 0, 0, 2], port));
        let mut rtc = Rtc::builder().build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        Self {
            key,
            rtc,
            addr,
            timeout: now,
            pending: None,
            connected: false,
            server_connected: false,
            audio_mid: None,
            audio_received: 0,
        }
    }
}

/// A shard, two clients, and the test as their room.
struct Call {
    shard: Shard<Wire>,
    events: UnboundedReceiver<MediaEvent>,
    clients: Vec<Client>,
    now: Instant,
    start: Instant,
    audio_frames: u64,
    next_audio: Instant,
}

impl Call {
    fn new() -> Self {
        let now = Instant::now();
        let ctx = ShardContext {
            index: 0,
            udp_candidate: server_addr(),
            tcp_candidate: None,
            downlink_bwe: true,
            recycle: crossbeam_channel::bounded(8).0,
            latency: Arc::default(),
            counters: Arc::<PlaneCounters>::default(),
            gauges: Arc::<ShardGauges>::default(),
        };
        let mut shard = Shard::new(ctx, Wire::default(), now);
        let (tx, events) = mpsc::unbounded_channel();
        shard.command_at(
            now,
            Command::OpenRoom {
                room: ROOM,
                events: tx,
            },
        );
        Self {
            shard,
            events,
            clients: Vec::new(),
            now,
            start: now,
            audio_frames: 0,
            next_audio: now,
        }
    }

    fn command(&mut self, cmd: Command) {
        self.shard.command_at(self.now, cmd);
    }

    fn add_peer(&mut self, peer: PeerKey, role: PeerRole) {
        self.command(Command::AddPeer(PeerSpec {
            room: ROOM,
            peer,
            role,
            participant_sid: format!("PA_{}", peer.0),
            identity: format!("user{}", peer.0),
            can_publish_data: true,
            accepts_packet_trailer: false,
        }));
    }

    /// A publisher announces a microphone and offers it.
    fn publish_mic(&mut self) {
        let mut c = Client::new(PUBLISHER, 5000, self.now);
        self.add_peer(PUBLISHER, PeerRole::Publisher);
        self.command(Command::ExpectTrack {
            peer: PUBLISHER,
            track: MIC,
            track_sid: "TR_mic".into(),
            cid: "mic".into(),
            kind: TrackKind::Audio,
            codec: None,
            packet_trailer: false,
            screen_share: false,
        });
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
        self.clients.push(c);
        self.command(Command::Offer {
            peer: PUBLISHER,
            sdp: offer.to_sdp_string(),
            id: 1,
        });
    }

    fn subscriber_joins(&mut self) {
        self.clients.push(Client::new(SUBSCRIBER, 5001, self.now));
        self.add_peer(SUBSCRIBER, PeerRole::Subscriber);
    }

    fn client(&self, key: PeerKey) -> &Client {
        self.clients
            .iter()
            .find(|c| c.key == key)
            .expect("a client with that key")
    }

    /// The room's side of signaling: relay SDP between shard and clients.
    fn signal(&mut self) {
        while let Ok(ev) = self.events.try_recv() {
            let Some(c) = self.clients.iter_mut().find(|c| c.key == ev.peer) else {
                continue;
            };
            match ev.event {
                PeerEvent::Offer { sdp, id, .. } => {
                    let offer = SdpOffer::from_sdp_string(&sdp).expect("server offer");
                    let answer = c.rtc.sdp_api().accept_offer(offer).expect("accept");
                    c.rtc
                        .handle_input(Input::Timeout(self.now))
                        .expect("timeout");
                    let cmd = Command::Answer {
                        peer: c.key,
                        sdp: answer.to_sdp_string(),
                        id,
                    };
                    self.shard.command_at(self.now, cmd);
                }
                PeerEvent::Answer { sdp, .. } => {
                    let answer = SdpAnswer::from_sdp_string(&sdp).expect("server answer");
                    let pending = c.pending.take().expect("an offer was sent");
                    c.rtc
                        .sdp_api()
                        .accept_answer(pending, answer)
                        .expect("accept answer");
                    c.rtc
                        .handle_input(Input::Timeout(self.now))
                        .expect("timeout");
                }
                PeerEvent::Connected => c.server_connected = true,
                PeerEvent::NegotiationFailed(why) => panic!("negotiation failed: {why}"),
                _ => {}
            }
        }
    }

    /// Everything that can happen at `now`, until nobody has more to say.
    fn settle(&mut self) {
        for _ in 0..64 {
            self.signal();
            self.shard.flush_dirty();
            let mut quiet = self.shard.io.datagrams.is_empty();
            for (to, bytes) in std::mem::take(&mut self.shard.io.datagrams) {
                let Some(c) = self.clients.iter_mut().find(|c| c.addr == to) else {
                    continue;
                };
                let r = Receive::new(Protocol::Udp, server_addr(), c.addr, &bytes)
                    .expect("a packet from the shard");
                c.rtc
                    .handle_input(Input::Receive(self.now, r))
                    .expect("input");
            }
            for c in &mut self.clients {
                loop {
                    match c.rtc.poll_output().expect("poll_output") {
                        Output::Timeout(t) => {
                            c.timeout = t;
                            break;
                        }
                        Output::Transmit(t) => {
                            quiet = false;
                            let (source, contents) = (t.source, t.contents.to_vec());
                            self.shard
                                .receive(Protocol::Udp, self.now, source, &contents);
                        }
                        Output::Event(Event::Connected) => c.connected = true,
                        Output::Event(Event::MediaData(_)) => c.audio_received += 1,
                        Output::Event(_) => {}
                    }
                }
            }
            if quiet && self.events.is_empty() {
                return;
            }
        }
    }

    /// Runs the call until `done`, moving the clock to the next timeout
    /// whenever everyone waits. The publisher sends a 20 ms frame on time.
    fn run_until(&mut self, what: &str, done: impl Fn(&Call) -> bool) {
        loop {
            self.settle();
            if done(self) {
                return;
            }
            assert!(
                self.now - self.start < STORY_LIMIT,
                "{what}: not within {STORY_LIMIT:?} of virtual time"
            );
            let next = self
                .clients
                .iter()
                .map(|c| c.timeout)
                .chain(self.shard.poll_timeout())
                .chain(self.audio_mid().map(|_| self.next_audio))
                .min()
                .unwrap_or(self.now + Duration::from_millis(10))
                .max(self.now);
            self.now = next;
            // str0m plans from the last time it was told, so every client
            // hears every tick, due or not.
            for c in &mut self.clients {
                c.rtc
                    .handle_input(Input::Timeout(self.now))
                    .expect("timeout");
            }
            self.shard.fire_timers(self.now);
            if self.audio_mid().is_some() && self.next_audio <= self.now {
                self.send_audio();
            }
        }
    }

    fn audio_mid(&self) -> Option<Mid> {
        self.clients
            .iter()
            .find(|c| c.key == PUBLISHER && c.connected)
            .and_then(|c| c.audio_mid)
    }

    fn send_audio(&mut self) {
        self.next_audio = self.now + Duration::from_millis(20);
        self.audio_frames += 1;
        let n = self.audio_frames;
        let now = self.now;
        let Some(c) = self.clients.iter_mut().find(|c| c.key == PUBLISHER) else {
            return;
        };
        let Some(mid) = c.audio_mid else { return };
        let Some(writer) = c.rtc.writer(mid) else {
            return;
        };
        let Some(pt) = writer.payload_params().next().map(|p| p.pt()) else {
            return;
        };
        let time = MediaTime::new(n * 960, Frequency::FORTY_EIGHT_KHZ);
        // The SFU never decodes Opus; any bytes will do.
        let _ = writer.write(pt, now, time, vec![0xf8, 0xff, 0xfe]);
    }

    fn both_connected(&self) -> bool {
        self.clients
            .iter()
            .all(|c| c.connected && c.server_connected)
    }
}

#[test]
fn a_subscriber_hears_a_publisher_through_the_shard_core() {
    let mut call = Call::new();
    call.publish_mic();
    call.subscriber_joins();
    call.run_until("both PeerConnections connect", Call::both_connected);
    assert!(
        call.shard.io.ufrags.values().filter(|here| **here).count() >= 2,
        "the shard claims both peers' ufrags for its packets"
    );
    call.command(Command::Subscribe {
        peer: SUBSCRIBER,
        track: MIC,
    });
    call.run_until("the subscriber hears the microphone", |c| {
        c.client(SUBSCRIBER).audio_received >= 25
    });
    println!(
        "connected and 25 frames heard after {:?} of virtual time",
        call.now - call.start
    );
}

#[test]
fn an_unsubscribed_track_stops_reaching_the_subscriber() {
    let mut call = Call::new();
    call.publish_mic();
    call.subscriber_joins();
    call.run_until("both PeerConnections connect", Call::both_connected);
    call.command(Command::Subscribe {
        peer: SUBSCRIBER,
        track: MIC,
    });
    call.run_until("audio flows", |c| c.client(SUBSCRIBER).audio_received >= 10);

    call.command(Command::Unsubscribe {
        peer: SUBSCRIBER,
        track: MIC,
    });
    // Renegotiation takes a round trip; after it, nothing more arrives.
    let until = call.now + Duration::from_millis(500);
    call.run_until("renegotiated", |c| c.now >= until);
    let heard = call.client(SUBSCRIBER).audio_received;
    let until = call.now + Duration::from_secs(2);
    call.run_until("two more seconds", |c| c.now >= until);
    assert_eq!(
        call.client(SUBSCRIBER).audio_received,
        heard,
        "no audio after the unsubscribe"
    );
    assert!(call.audio_frames > 100, "the publisher kept sending");
}

#[test]
fn a_removed_peer_gives_up_its_ufrag() {
    let mut call = Call::new();
    call.subscriber_joins();
    call.run_until("the subscriber connects", |c| {
        c.client(SUBSCRIBER).connected
    });
    call.command(Command::RemovePeer { peer: SUBSCRIBER });
    assert!(
        call.shard.io.ufrags.values().all(|here| !here),
        "every ufrag the shard claimed is released: {:?}",
        call.shard.io.ufrags
    );
    assert!(call.shard.peers.is_empty());
}

#[test]
fn a_client_sdp_that_cannot_be_applied_is_refused_with_a_reason() {
    let mut call = Call::new();
    call.add_peer(PUBLISHER, PeerRole::Publisher);
    call.command(Command::Offer {
        peer: PUBLISHER,
        sdp: "v=0 but not really SDP".into(),
        id: 1,
    });
    call.subscriber_joins();
    call.command(Command::Answer {
        peer: SUBSCRIBER,
        sdp: String::new(),
        id: 77,
    });
    let mut failures = Vec::new();
    while let Ok(ev) = call.events.try_recv() {
        if let PeerEvent::NegotiationFailed(e) = ev.event {
            failures.push((ev.peer, e));
        }
    }
    assert!(
        matches!(
            failures.as_slice(),
            [
                (PUBLISHER, crate::api::NegotiationError::OfferNotSdp(_)),
                (
                    SUBSCRIBER,
                    crate::api::NegotiationError::StaleAnswer { got: 77, .. }
                ),
            ]
        ),
        "{failures:?}"
    );
}
