//! A whole call in memory, on virtual time: moim's room core and a media
//! shard core, wired as the server wires them, and str0m participants
//! speaking LiveKit's signal protocol and real ICE, DTLS and SRTP. The clock
//! moves only when everyone is waiting, so a story that takes a minute of
//! call time runs in milliseconds and the same way every time.
//!
//! ```
//! use moim_testkit::Sim;
//!
//! let mut sim = Sim::new(Sim::config());
//! let ben = sim.join("ben");
//! let ana = sim.join("ana");
//! sim.publish_mic(ana);
//! sim.run_until("ben hears ana", |s| s.person(ben).audio_heard >= 10);
//! ```

mod participant;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use moim_proto::lk::{self, signal_request::Message as Req};
use moim_proto::token::{Claims, VideoGrant};
use moim_server::room::{
    AdminRequest, AdminResult, ConnectionId, JoinError, JoinParams, Joined, Now, RoomConfig,
    RoomCore, RoomOutput, SequentialIds, SignalClose,
};
use moim_sfu::shard_core::{ShardCore, ShardIo};
use moim_sfu::{Command, MediaEvent, RoomKey};
use str0m::net::Protocol;
use tokio::sync::mpsc::{self, UnboundedReceiver};

pub use participant::{Participant, VideoFrame, CAMERA_CID, LAYERS, MIC_CID};

/// Virtual time any story may take before the simulation gives up.
const STORY_LIMIT: Duration = Duration::from_secs(120);
/// Rounds of message passing at one instant before time must move.
const ROUNDS_PER_INSTANT: usize = 256;
const AUDIO_FRAME: Duration = Duration::from_millis(20);

fn server_addr() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 7882))
}

/// The shard's sends, until the simulation delivers them.
#[derive(Default)]
pub struct Wire {
    datagrams: Vec<(SocketAddr, Vec<u8>)>,
}

impl ShardIo for Wire {
    fn transmit(&mut self, proto: Protocol, destination: SocketAddr, contents: Vec<u8>) {
        if proto == Protocol::Udp {
            self.datagrams.push((destination, contents));
        }
    }

    fn route_ufrag(&mut self, _ufrag: &str, _here: bool) {}
}

/// A participant, by its place in the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Who(usize);

pub struct Sim {
    pub room: RoomCore,
    pub shard: ShardCore<Wire>,
    events: UnboundedReceiver<MediaEvent>,
    people: Vec<Participant>,
    pub now: Instant,
    start: Instant,
    next_connection: u64,
    /// Webhook events, by name, in order.
    pub webhooks: Vec<String>,
    next_audio: Instant,
}

impl Sim {
    /// The room settings the stories start from: webhooks on, a 20 s
    /// departure timeout, a 5 minute empty timeout, no size limit.
    pub fn config() -> RoomConfig {
        RoomConfig {
            empty_timeout: Duration::from_secs(300),
            departure_timeout: Duration::from_secs(20),
            max_participants: 0,
            webhooks: true,
            node_id: "ND_sim".into(),
        }
    }

    pub fn new(config: RoomConfig) -> Self {
        let start = Instant::now();
        let now = Now {
            at: start,
            unix_ms: 1_700_000_000_000,
        };
        let room = RoomCore::new("sim".into(), config, Box::<SequentialIds>::default(), now);
        let mut shard = ShardCore::new(server_addr(), Wire::default(), start);
        let (tx, events) = mpsc::unbounded_channel();
        let key: RoomKey = room.key();
        shard.command(
            start,
            Command::OpenRoom {
                room: key,
                events: tx,
            },
        );
        let mut sim = Self {
            room,
            shard,
            events,
            people: Vec::new(),
            now: start,
            start,
            next_connection: 1,
            webhooks: Vec::new(),
            next_audio: start,
        };
        sim.pump();
        sim
    }

    fn clock(&self) -> Now {
        Now {
            at: self.now,
            unix_ms: 1_700_000_000_000 + (self.now - self.start).as_millis() as i64,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub fn person(&self, who: Who) -> &Participant {
        &self.people[who.0]
    }

    pub fn people(&self) -> impl Iterator<Item = &Participant> {
        self.people.iter()
    }

    /// Makes `who`'s microphone carry a voice this loud (-dBov), or silence.
    pub fn talk(&mut self, who: Who, voice: Option<u8>) {
        self.people[who.0].voice = voice;
    }

    /// Joins a new participant, who subscribes to everything.
    pub fn join(&mut self, identity: &str) -> Who {
        let who = Who(self.people.len());
        let n = self.people.len() as u16;
        self.people.push(Participant::new(identity, n, self.now));
        if let Err(e) = self.connect(who, JoinParams::default()) {
            panic!("{identity} cannot join: {e}");
        }
        who
    }

    /// Tries to join; the refusal, if any, is returned.
    pub fn try_join(&mut self, identity: &str) -> Result<Who, JoinError> {
        let who = Who(self.people.len());
        let n = self.people.len() as u16;
        self.people.push(Participant::new(identity, n, self.now));
        self.connect(who, JoinParams::default()).map(|_| who)
    }

    fn connect(&mut self, who: Who, mut params: JoinParams) -> Result<Joined, JoinError> {
        params.auto_subscribe = true;
        let connection = ConnectionId(self.next_connection);
        self.next_connection += 1;
        let identity = self.people[who.0].identity.clone();
        let claims = Claims {
            sub: identity,
            video: VideoGrant {
                room_join: true,
                room: "sim".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let joined = self
            .room
            .handle_join(self.clock(), connection, claims, params)?;
        let p = &mut self.people[who.0];
        p.key = Some(joined.participant);
        p.connection = Some(connection);
        p.closed = None;
        self.pump();
        Ok(joined)
    }

    /// The participant's signal connection drops (the network, not a leave).
    pub fn drop_signal(&mut self, who: Who) {
        let p = &mut self.people[who.0];
        let (Some(key), Some(connection)) = (p.key, p.connection.take()) else {
            return;
        };
        self.room
            .handle_signal_closed(self.clock(), key, connection);
        self.pump();
    }

    /// The participant resumes its session on a new signal connection.
    pub fn resume(&mut self, who: Who) -> Result<Joined, JoinError> {
        let sid = self.people[who.0].sid.clone();
        self.connect(
            who,
            JoinParams {
                reconnect: true,
                participant_sid: sid,
                ..Default::default()
            },
        )
    }

    pub fn signal(&mut self, who: Who, message: Req) {
        let p = &self.people[who.0];
        if let (Some(key), Some(connection)) = (p.key, p.connection) {
            self.room
                .handle_signal(self.clock(), key, connection, message);
        }
        self.pump();
    }

    /// Announces a microphone; the participant offers it when told its sid.
    pub fn publish_mic(&mut self, who: Who) {
        self.signal(
            who,
            Req::AddTrack(lk::AddTrackRequest {
                cid: MIC_CID.into(),
                name: "mic".into(),
                r#type: lk::TrackType::Audio as i32,
                source: lk::TrackSource::Microphone as i32,
                ..Default::default()
            }),
        );
    }

    /// Announces a VP8 camera with three simulcast layers (q, h, f).
    // livekit-client still fills the deprecated `layers` field.
    #[allow(deprecated)]
    pub fn publish_camera(&mut self, who: Who) {
        let layers = [(320, 180), (640, 360), (1280, 720)]
            .iter()
            .zip([
                lk::VideoQuality::Low,
                lk::VideoQuality::Medium,
                lk::VideoQuality::High,
            ])
            .zip(LAYERS)
            .map(|(((w, h), quality), rid)| lk::VideoLayer {
                quality: quality as i32,
                width: *w,
                height: *h,
                rid: rid.into(),
                ..Default::default()
            })
            .collect();
        self.signal(
            who,
            Req::AddTrack(lk::AddTrackRequest {
                cid: CAMERA_CID.into(),
                name: "camera".into(),
                r#type: lk::TrackType::Video as i32,
                source: lk::TrackSource::Camera as i32,
                width: 1280,
                height: 720,
                layers,
                simulcast_codecs: vec![lk::SimulcastCodec {
                    codec: "vp8".into(),
                    cid: CAMERA_CID.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        );
    }

    pub fn admin(&mut self, request: AdminRequest) -> AdminResult {
        let r = self.room.handle_admin(self.clock(), request);
        self.pump();
        r
    }

    /// Passes messages and packets around until nobody has more to say at
    /// this instant.
    fn pump(&mut self) {
        for _ in 0..ROUNDS_PER_INSTANT {
            let mut busy = false;
            while let Some(output) = self.room.poll_output() {
                busy = true;
                self.carry_out(output);
            }
            while let Ok(event) = self.events.try_recv() {
                busy = true;
                self.room.handle_media(self.clock(), event);
            }
            for (to, bytes) in std::mem::take(&mut self.shard.io().datagrams) {
                busy = true;
                if let Some(p) = self.people.iter_mut().find(|p| p.owns(to)) {
                    if p.link_loses() {
                        continue;
                    }
                    p.deliver(self.now, server_addr(), to, &bytes);
                }
            }
            let mut sent = Vec::new();
            for p in &mut self.people {
                p.poll(&mut sent);
            }
            for (from, bytes) in sent {
                busy = true;
                self.send_to_server(from, &bytes);
            }
            if !busy {
                return;
            }
        }
        panic!("the call never went quiet at {:?}", self.elapsed());
    }

    /// A participant's datagram, unless its link loses it.
    fn send_to_server(&mut self, from: SocketAddr, bytes: &[u8]) {
        if let Some(p) = self.people.iter_mut().find(|p| p.owns(from)) {
            if p.link_loses() {
                return;
            }
        }
        self.shard.receive(self.now, from, bytes);
    }

    /// `who`'s decoder lost a picture of every video it receives.
    pub fn lose_pictures(&mut self, who: Who) {
        self.people[who.0].ask_for_keyframes();
    }

    /// Makes `who`'s link lose one datagram in `n`, both ways (`None`: none).
    pub fn lose_one_in(&mut self, who: Who, n: Option<u32>) {
        self.people[who.0].lose_one_in = n;
    }

    fn carry_out(&mut self, output: RoomOutput) {
        match output {
            RoomOutput::Signal { to, message } => {
                let Some(p) = self.people.iter_mut().find(|p| p.connection == Some(to)) else {
                    return;
                };
                let key = p.key;
                if let (Some(key), Some(reply)) = (key, p.on_signal(self.now, *message)) {
                    let now = self.clock();
                    self.room.handle_signal(now, key, to, reply);
                }
            }
            RoomOutput::CloseSignal { to, why } => {
                if let Some(p) = self.people.iter_mut().find(|p| p.connection == Some(to)) {
                    p.connection = None;
                    p.closed = Some(why);
                }
            }
            RoomOutput::Media(command) => self.shard.command(self.now, command),
            RoomOutput::Webhook(event) => self.webhooks.push(event.event),
            // The simulated participants never reconnect with a token.
            RoomOutput::RefreshToken { .. } => {}
        }
    }

    /// Runs the call until `done` holds. Whoever publishes a microphone
    /// speaks every 20 ms.
    pub fn run_until(&mut self, what: &str, done: impl Fn(&Sim) -> bool) {
        loop {
            self.pump();
            if done(self) {
                return;
            }
            assert!(
                self.elapsed() < STORY_LIMIT,
                "{what}: not within {STORY_LIMIT:?} of call time"
            );
            let mut wake = vec![self.next_audio];
            wake.extend(self.room.poll_timeout());
            wake.extend(self.shard.poll_timeout());
            let mut sent = Vec::new();
            for p in &mut self.people {
                wake.extend(p.poll(&mut sent));
            }
            for (from, bytes) in sent {
                self.send_to_server(from, &bytes);
            }
            let next = wake.into_iter().min().unwrap_or(self.now).max(self.now);
            self.advance_to(next);
        }
    }

    /// Runs the call for `span` of call time.
    pub fn run_for(&mut self, span: Duration) {
        let until = self.now + span;
        self.run_until("the time to pass", |s| s.now >= until);
    }

    fn advance_to(&mut self, next: Instant) {
        self.now = next;
        for p in &mut self.people {
            p.tick(self.now);
        }
        self.shard.handle_timeout(self.now);
        if self.room.poll_timeout().is_some_and(|t| t <= self.now) {
            self.room.handle_timeout(self.clock());
        }
        if self.next_audio <= self.now {
            self.next_audio = self.now + AUDIO_FRAME;
            for p in &mut self.people {
                p.speak(self.now);
                p.film(self.now);
            }
        }
    }

    /// Whether a participant's signal connection was closed for `reason`.
    pub fn was_closed_for(&self, who: Who, reason: lk::DisconnectReason) -> bool {
        self.person(who).closed == Some(SignalClose::Left(reason))
    }
}
