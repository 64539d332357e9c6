//! The room core on virtual time: no sockets, no tasks, no sleeps. Each test
//! is a short story told through the core's inputs and read back from its
//! outputs.

use std::time::{Duration, Instant};

use moim_proto::lk::{self, signal_request::Message as Req, signal_response::Message as Resp};
use moim_proto::token::{Claims, VideoGrant};
use moim_sfu::{Command, MediaEvent, PeerEvent, PeerKey, TrackKey};

use super::*;

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
        self.signal(
            who,
            Req::AddTrack(lk::AddTrackRequest {
                cid: "mic".into(),
                name: "mic".into(),
                r#type: lk::TrackType::Audio as i32,
                source: lk::TrackSource::Microphone as i32,
                ..Default::default()
            }),
        );
        let (peer, track, sid) = self
            .outputs
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
                mid: "0".into(),
                codec: None,
            },
        );
        (track, sid)
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

#[test]
fn a_participant_joins_and_the_media_plane_gets_its_two_peer_connections() {
    let mut s = Story::new();
    assert_eq!(webhooks(&s.take()), ["room_started"]);

    let ana = s.join("ana");
    let out = s.take();
    let to_ana = messages_to(&out, ana.connection);
    let Some(Resp::Join(join)) = to_ana.first() else {
        panic!("the first message is the JoinResponse: {to_ana:?}");
    };
    assert_eq!(
        join.participant.as_ref().map(|p| p.identity.as_str()),
        Some("ana")
    );
    assert!(join.other_participants.is_empty());
    let added: Vec<_> = commands(&out)
        .into_iter()
        .filter_map(|c| match c {
            Command::AddPeer(spec) => Some(spec.role),
            _ => None,
        })
        .collect();
    assert_eq!(
        added,
        [
            moim_sfu::PeerRole::Publisher,
            moim_sfu::PeerRole::Subscriber
        ]
    );
    assert_eq!(webhooks(&out), ["participant_joined"]);
    assert_eq!(s.room.participant_count(), 1);
}

#[test]
fn a_published_track_reaches_everyone_already_in_the_room() {
    let mut s = Story::new();
    let ana = s.join("ana");
    let ben = s.join("ben");
    let out = s.take();
    assert_eq!(
        updated_identities(&messages_to(&out, ana.connection)),
        [(
            "ben".to_string(),
            lk::participant_info::State::Joined as i32
        )],
        "ana hears that ben joined"
    );

    let (track, sid) = s.publish_mic(ana);
    let out = s.take();
    let published = messages_to(&out, ana.connection).into_iter().any(
        |m| matches!(m, Resp::TrackPublished(t) if t.track.as_ref().is_some_and(|t| t.sid == sid)),
    );
    assert!(published, "ana is told her track's sid");
    let subscribed: Vec<TrackKey> = commands(&out)
        .into_iter()
        .filter_map(|c| match c {
            Command::Subscribe { track, .. } => Some(*track),
            _ => None,
        })
        .collect();
    assert_eq!(
        subscribed,
        [track],
        "ben subscribes once the track is bound"
    );
    let ben_sees_it = messages_to(&out, ben.connection).into_iter().any(|m| {
        matches!(m, Resp::Update(u) if u.participants.iter().any(|p| p.tracks.iter().any(|t| t.sid == sid)))
    });
    assert!(ben_sees_it, "ben's participant list shows ana's track");
    assert_eq!(webhooks(&out), ["track_published"]);

    // Someone who joins later is subscribed at once.
    let cleo = s.join("cleo");
    let out = s.take();
    let cleo_receiver = commands(&out).into_iter().find_map(|c| match c {
        Command::Subscribe { peer, track: t } if *t == track => Some(*peer),
        _ => None,
    });
    assert!(cleo_receiver.is_some(), "cleo is subscribed to ana's mic");
    let _ = cleo;
}

#[test]
fn a_muted_track_is_shown_muted_to_the_others() {
    let mut s = Story::new();
    let ana = s.join("ana");
    let ben = s.join("ben");
    let (_, sid) = s.publish_mic(ana);
    s.take();
    s.signal(
        ana,
        Req::Mute(lk::MuteTrackRequest {
            sid: sid.clone(),
            muted: true,
        }),
    );
    let out = s.take();
    let muted = messages_to(&out, ben.connection).into_iter().any(|m| {
        matches!(m, Resp::Update(u) if u.participants.iter().any(|p| p.tracks.iter().any(|t| t.sid == sid && t.muted)))
    });
    assert!(muted, "ben sees ana's mic muted");
}

#[test]
fn a_participant_who_does_not_resume_leaves_at_the_departure_timeout() {
    let mut s = Story::new();
    let ana = s.join("ana");
    let ben = s.join("ben");
    s.take();
    s.room
        .handle_signal_closed(s.clock(), ana.participant, ana.connection);
    assert_eq!(s.room.poll_timeout(), Some(s.now + DEPARTURE_TIMEOUT));

    s.advance(DEPARTURE_TIMEOUT - Duration::from_millis(1));
    assert_eq!(s.room.participant_count(), 2, "ana may still resume");
    assert!(s.take().is_empty());

    s.advance(Duration::from_millis(1));
    let out = s.take();
    assert_eq!(s.room.participant_count(), 1);
    assert_eq!(removed_peers(&out).len(), 2, "both of ana's peers go");
    assert_eq!(
        updated_identities(&messages_to(&out, ben.connection)),
        [(
            "ana".to_string(),
            lk::participant_info::State::Disconnected as i32
        )]
    );
    assert_eq!(webhooks(&out), ["participant_left"]);
}

#[test]
fn a_participant_resumes_on_a_new_connection_and_the_old_one_is_ignored() {
    let mut s = Story::new();
    let ana = s.join("ana");
    let sid = match messages_to(&s.take(), ana.connection).first() {
        Some(Resp::Join(j)) => j.participant.as_ref().map(|p| p.sid.clone()),
        _ => None,
    }
    .expect("ana's sid");
    s.room
        .handle_signal_closed(s.clock(), ana.participant, ana.connection);
    s.advance(Duration::from_secs(5));

    let (connection, resumed) = s.join_with(
        "ana",
        JoinParams {
            reconnect: true,
            participant_sid: sid,
            ..Default::default()
        },
    );
    let resumed = resumed.expect("the session resumes");
    assert_eq!(resumed.participant, ana.participant);
    let out = s.take();
    assert!(matches!(
        messages_to(&out, connection).first(),
        Some(Resp::Reconnect(_))
    ));
    assert!(commands(&out)
        .iter()
        .any(|c| matches!(c, Command::RestartIce { .. })));

    // The departure timeout no longer applies.
    s.advance(DEPARTURE_TIMEOUT * 2);
    assert_eq!(s.room.participant_count(), 1);

    // A late request on the dead connection changes nothing.
    s.signal(ana, Req::Leave(lk::LeaveRequest::default()));
    assert_eq!(s.room.participant_count(), 1);
}

#[test]
fn a_resume_the_room_does_not_know_is_refused() {
    let mut s = Story::new();
    let (connection, r) = s.join_with(
        "ana",
        JoinParams {
            reconnect: true,
            participant_sid: "PA_gone".into(),
            ..Default::default()
        },
    );
    assert_eq!(r, Err(JoinError::UnknownSession));
    assert!(messages_to(&s.take(), connection).is_empty());
    assert_eq!(s.room.participant_count(), 0);
}

#[test]
fn the_same_identity_joining_again_replaces_the_older_connection() {
    let mut s = Story::new();
    let first = s.join("ana");
    s.take();
    let second = s.join("ana");
    assert_ne!(first.participant, second.participant);
    let out = s.take();
    let to_first = messages_to(&out, first.connection);
    assert!(
        matches!(to_first.as_slice(), [Resp::Leave(l)] if l.reason == lk::DisconnectReason::DuplicateIdentity as i32),
        "the older connection is told why: {to_first:?}"
    );
    assert_eq!(
        closes(&out),
        [(
            first.connection,
            SignalClose::Left(lk::DisconnectReason::DuplicateIdentity)
        )]
    );
    assert_eq!(s.room.participant_count(), 1);
}

#[test]
fn a_full_room_refuses_a_newcomer_but_not_a_returning_identity() {
    let mut s = Story::new();
    s.admin(AdminRequest::Configure {
        empty_timeout: 0,
        max_participants: 1,
        metadata: String::new(),
    })
    .expect("configured");
    s.join("ana");
    s.take();
    let (connection, r) = s.join_with("ben", JoinParams::default());
    assert_eq!(r, Err(JoinError::RoomFull { max: 1 }));
    assert!(messages_to(&s.take(), connection).is_empty());
    let (_, again) = s.join_with("ana", JoinParams::default());
    assert!(again.is_ok(), "ana replacing herself is not refused");
    assert_eq!(s.room.participant_count(), 1);
}

#[test]
fn an_empty_room_closes_after_its_empty_timeout() {
    let mut s = Story::new();
    let ana = s.join("ana");
    s.advance(Duration::from_secs(1000));
    assert!(!s.room.is_closed(), "an occupied room stays open");
    s.signal(ana, Req::Leave(lk::LeaveRequest::default()));
    s.take();
    let left_at = s.now;
    assert_eq!(s.room.poll_timeout(), Some(left_at + EMPTY_TIMEOUT));
    s.advance(EMPTY_TIMEOUT - Duration::from_secs(1));
    assert!(!s.room.is_closed());
    s.advance(Duration::from_secs(1));
    assert!(s.room.is_closed());
    assert_eq!(webhooks(&s.take()), ["room_finished"]);
    assert_eq!(s.room.poll_timeout(), None);
    let (_, late) = s.join_with("ben", JoinParams::default());
    assert_eq!(late, Err(JoinError::RoomClosed));
    assert!(s.now - s.start >= EMPTY_TIMEOUT);
}

#[test]
fn deleting_a_room_removes_everyone_and_closes_it_at_once() {
    let mut s = Story::new();
    let ana = s.join("ana");
    let ben = s.join("ben");
    s.take();
    assert!(matches!(
        s.admin(AdminRequest::Delete),
        Ok(AdminReply::Done)
    ));
    let out = s.take();
    for who in [ana, ben] {
        assert!(closes(&out).contains(&(
            who.connection,
            SignalClose::Left(lk::DisconnectReason::RoomDeleted)
        )));
    }
    assert_eq!(removed_peers(&out).len(), 4);
    assert_eq!(s.room.poll_timeout(), Some(s.now));
    s.advance(Duration::ZERO);
    assert!(s.room.is_closed());
}

#[test]
fn the_server_api_names_what_it_could_not_find() {
    let mut s = Story::new();
    s.join("ana");
    let err = s
        .admin(AdminRequest::RemoveParticipant("zoe".into()))
        .expect_err("zoe is not here");
    assert_eq!(
        err,
        RoomError::ParticipantNotFound {
            room: "standup".into(),
            identity: "zoe".into()
        }
    );
    let err = s
        .admin(AdminRequest::UpdateRoomMetadata(
            "x".repeat(MAX_METADATA + 1),
        ))
        .expect_err("too large");
    assert!(matches!(err, RoomError::MetadataTooLarge { .. }));
}

#[test]
fn a_publish_the_token_does_not_allow_is_refused_with_a_reason() {
    let mut s = Story::new();
    let connection = s.connection();
    let mut viewer = claims("viewer");
    viewer.video.can_publish = Some(false);
    let viewer = s
        .room
        .handle_join(s.clock(), connection, viewer, JoinParams::default())
        .expect("joined");
    s.collect();
    s.take();
    s.signal(
        viewer,
        Req::AddTrack(lk::AddTrackRequest {
            cid: "cam".into(),
            r#type: lk::TrackType::Video as i32,
            source: lk::TrackSource::Camera as i32,
            ..Default::default()
        }),
    );
    let out = s.take();
    let to_viewer = messages_to(&out, viewer.connection);
    assert!(
        matches!(to_viewer.as_slice(), [Resp::RequestResponse(r)] if r.reason == lk::request_response::Reason::NotAllowed as i32 && r.message.contains("camera")),
        "{to_viewer:?}"
    );
    assert!(commands(&out).is_empty(), "the media plane hears nothing");
}
