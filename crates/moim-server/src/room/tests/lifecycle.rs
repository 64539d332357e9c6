//! Joining, publishing, resuming, leaving and closing.

use moim_proto::lk::{self, signal_request::Message as Req, signal_response::Message as Resp};
use moim_sfu::{Command, TrackKey};

use super::*;

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

    let (connection, resumed) = s.resume("ana", sid);
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
    let (connection, r) = s.resume("ana", "PA_gone");
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
