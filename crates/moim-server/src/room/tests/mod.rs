//! The room core on virtual time: no sockets, no tasks, no sleeps. Each test
//! is a short story told through the core's inputs and read back from its
//! outputs.

use std::time::{Duration, Instant};

use moim_proto::lk::{self, signal_request::Message as Req, signal_response::Message as Resp};
use moim_proto::token::{Claims, VideoGrant};
use moim_sfu::{Command, MediaEvent, PeerEvent, PeerKey, TrackKey};

use super::*;

mod dynacast;
mod lifecycle;
mod quality;
mod speakers;
mod tokens;

const EMPTY_TIMEOUT: Duration = Duration::from_secs(300);
const DEPARTURE_TIMEOUT: Duration = Duration::from_secs(20);

/// A room core, its virtual clock, and the outputs it has produced so far.
struct Story {
    room: RoomCore,
    start: Instant,
    now: Instant,
    next_connection: u64,
    outputs: Vec<RoomOutput>,
}

impl Story {
    fn new() -> Self {
        let start = Instant::now();
        let config = RoomConfig {
            empty_timeout: EMPTY_TIMEOUT,
            departure_timeout: DEPARTURE_TIMEOUT,
            max_participants: 0,
            webhooks: true,
            node_id: "ND_test".into(),
        };
        let room = RoomCore::new(
            "standup".into(),
            config,
            Box::<SequentialIds>::default(),
            Self::at(start),
        );
        let mut story = Self {
            room,
            start,
            now: start,
            next_connection: 1,
            outputs: Vec::new(),
        };
        story.collect();
        story
    }

    fn at(t: Instant) -> Now {
        Now {
            at: t,
            unix_ms: 1_700_000_000_000,
        }
    }

    fn clock(&self) -> Now {
        Self::at(self.now)
    }

    /// Moves the clock, firing the room's timeout whenever it falls due.
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        while let Some(t) = self.room.poll_timeout().filter(|t| *t <= until) {
            self.now = t.max(self.now);
            self.room.handle_timeout(self.clock());
            self.collect();
            if self.room.is_closed() {
                break;
            }
        }
        self.now = until;
    }

    fn collect(&mut self) {
        while let Some(o) = self.room.poll_output() {
            self.outputs.push(o);
        }
    }

    fn take(&mut self) -> Vec<RoomOutput> {
        std::mem::take(&mut self.outputs)
    }

    fn connection(&mut self) -> ConnectionId {
        let c = ConnectionId(self.next_connection);
        self.next_connection += 1;
        c
    }

    fn join_with(
        &mut self,
        identity: &str,
        params: JoinParams,
    ) -> (ConnectionId, Result<Joined, JoinError>) {
        let connection = self.connection();
        let r = self
            .room
            .handle_join(self.clock(), connection, claims(identity), params);
        self.collect();
        (connection, r)
    }

    /// `identity` resumes the session `sid` on a new signal connection.
    fn resume(
        &mut self,
        identity: &str,
        sid: impl Into<String>,
    ) -> (ConnectionId, Result<Joined, JoinError>) {
        let params = JoinParams {
            reconnect: true,
            participant_sid: sid.into(),
            ..Default::default()
        };
        self.join_with(identity, params)
    }

    fn join(&mut self, identity: &str) -> Joined {
        let params = JoinParams {
            auto_subscribe: true,
            ..Default::default()
        };
        self.join_with(identity, params).1.expect("joined")
    }

    fn signal(&mut self, who: Joined, message: Req) {
        self.room
            .handle_signal(self.clock(), who.participant, who.connection, message);
        self.collect();
    }

    fn media(&mut self, peer: PeerKey, event: PeerEvent) {
        self.room
            .handle_media(self.clock(), MediaEvent { peer, event });
        self.collect();
    }

    fn admin(&mut self, request: AdminRequest) -> AdminResult {
        let r = self.room.handle_admin(self.clock(), request);
        self.collect();
        r
    }

    /// Publishes a microphone and lets the media plane bind it.
    fn publish_mic(&mut self, who: Joined) -> (TrackKey, String) {
        let (_, track, sid) = self.publish_audio(who, lk::TrackSource::Microphone);
        (track, sid)
    }

    /// Publishes an audio track from `source`; returns the publisher's
    /// PeerConnection too, which the media plane reports levels on.
    fn publish_audio(
        &mut self,
        who: Joined,
        source: lk::TrackSource,
    ) -> (PeerKey, TrackKey, String) {
        let from = self.outputs.len();
        self.signal(
            who,
            Req::AddTrack(lk::AddTrackRequest {
                cid: "mic".into(),
                name: "mic".into(),
                r#type: lk::TrackType::Audio as i32,
                source: source as i32,
                ..Default::default()
            }),
        );
        self.bind_announced_track(from, "0", None)
    }

    /// Publishes a three-layer simulcast camera and lets the media plane bind it.
    fn publish_camera(&mut self, who: Joined) -> (TrackKey, String) {
        let from = self.outputs.len();
        let layer = |q: lk::VideoQuality, w| lk::VideoLayer {
            quality: q as i32,
            width: w,
            height: w * 9 / 16,
            ..Default::default()
        };
        self.signal(
            who,
            Req::AddTrack(lk::AddTrackRequest {
                cid: "cam".into(),
                name: "camera".into(),
                r#type: lk::TrackType::Video as i32,
                source: lk::TrackSource::Camera as i32,
                width: 1280,
                height: 720,
                layers: vec![
                    layer(lk::VideoQuality::Low, 320),
                    layer(lk::VideoQuality::Medium, 640),
                    layer(lk::VideoQuality::High, 1280),
                ],
                ..Default::default()
            }),
        );
        let (_, track, sid) =
            self.bind_announced_track(from, "1", Some(moim_sfu::codec::VideoCodec::Vp8));
        (track, sid)
    }

    /// Binds the track announced since output `from` to section `mid`, as
    /// the media plane does once the client's SDP carries it.
    fn bind_announced_track(
        &mut self,
        from: usize,
        mid: &str,
        codec: Option<moim_sfu::codec::VideoCodec>,
    ) -> (PeerKey, TrackKey, String) {
        let (peer, track, sid) = self.outputs[from..]
            .iter()
            .find_map(|o| match o {
                RoomOutput::Media(Command::ExpectTrack {
                    peer,
                    track,
                    track_sid,
                    ..
                }) => Some((*peer, *track, track_sid.clone())),
                _ => None,
            })
            .expect("the media plane is told to expect the track");
        self.media(
            peer,
            PeerEvent::TrackBound {
                track,
                mid: mid.into(),
                codec,
            },
        );
        (peer, track, sid)
    }

    /// The sid a participant was given.
    fn sid(&self, who: Joined) -> String {
        self.room.participants[&who.participant].sid.clone()
    }
}

fn claims(identity: &str) -> Claims {
    Claims {
        sub: identity.into(),
        video: VideoGrant {
            room_join: true,
            room: "standup".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn messages_to(outputs: &[RoomOutput], to: ConnectionId) -> Vec<&Resp> {
    outputs
        .iter()
        .filter_map(|o| match o {
            RoomOutput::Signal { to: c, message } if *c == to => Some(message.as_ref()),
            _ => None,
        })
        .collect()
}

fn closes(outputs: &[RoomOutput]) -> Vec<(ConnectionId, SignalClose)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            RoomOutput::CloseSignal { to, why } => Some((*to, *why)),
            _ => None,
        })
        .collect()
}

fn commands(outputs: &[RoomOutput]) -> Vec<&Command> {
    outputs
        .iter()
        .filter_map(|o| match o {
            RoomOutput::Media(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn webhooks(outputs: &[RoomOutput]) -> Vec<&str> {
    outputs
        .iter()
        .filter_map(|o| match o {
            RoomOutput::Webhook(e) => Some(e.event.as_str()),
            _ => None,
        })
        .collect()
}

fn removed_peers(outputs: &[RoomOutput]) -> Vec<PeerKey> {
    commands(outputs)
        .into_iter()
        .filter_map(|c| match c {
            Command::RemovePeer { peer } => Some(*peer),
            _ => None,
        })
        .collect()
}

fn updated_identities(messages: &[&Resp]) -> Vec<(String, i32)> {
    messages
        .iter()
        .filter_map(|m| match m {
            Resp::Update(u) => Some(u.participants.iter()),
            _ => None,
        })
        .flatten()
        .map(|p| (p.identity.clone(), p.state))
        .collect()
}
