//! Fresh tokens: a participant in a meeting longer than its token can still
//! reconnect, with what it may do now, not what it joined with.

use super::*;

/// Unix seconds of the stories' wall clock (`Story::at`).
const NOW_SECS: u64 = 1_700_000_000;

fn tokens_to(outputs: &[RoomOutput], to: ConnectionId) -> Vec<&Claims> {
    outputs
        .iter()
        .filter_map(|o| match o {
            RoomOutput::RefreshToken { to: c, claims } if *c == to => Some(claims.as_ref()),
            _ => None,
        })
        .collect()
}

fn claims_from(api_key: &str, identity: &str, expires_at: u64) -> Claims {
    Claims {
        iss: api_key.into(),
        exp: expires_at,
        name: "Ana".into(),
        ..claims(identity)
    }
}

#[test]
fn a_participant_gets_a_fresh_token_on_joining_and_every_few_minutes_while_it_stays() {
    let mut s = Story::new();
    let connection = s.connection();
    let ana = s
        .room
        .handle_join(
            s.clock(),
            connection,
            claims_from("meetkey", "ana", NOW_SECS + 30),
            JoinParams::default(),
        )
        .expect("joined");
    s.collect();

    let out = s.take();
    let first = tokens_to(&out, ana.connection);
    assert_eq!(first.len(), 1, "one token right after the join response");
    let t = first[0];
    assert_eq!(
        t.iss, "meetkey",
        "signed with the key of the token it replaces"
    );
    assert_eq!((t.sub.as_str(), t.name.as_str()), ("ana", "Ana"));
    assert_eq!(t.video.room, "standup");
    assert!(t.video.room_join);
    assert_eq!(
        t.exp,
        NOW_SECS + super::super::tokens::VALID_FOR.as_secs(),
        "a token about to expire is replaced by one valid for ten minutes"
    );

    s.advance(Duration::from_secs(4 * 60));
    assert!(tokens_to(&s.take(), ana.connection).is_empty());
    s.advance(Duration::from_secs(61));
    assert_eq!(tokens_to(&s.take(), ana.connection).len(), 1);
    s.advance(Duration::from_secs(5 * 60));
    assert_eq!(tokens_to(&s.take(), ana.connection).len(), 1);
}

#[test]
fn a_refreshed_token_never_expires_before_the_one_it_replaces() {
    let mut s = Story::new();
    let connection = s.connection();
    let hours = NOW_SECS + 3 * 3600;
    let ana = s
        .room
        .handle_join(
            s.clock(),
            connection,
            claims_from("meetkey", "ana", hours),
            JoinParams::default(),
        )
        .expect("joined");
    s.collect();
    let out = s.take();
    assert_eq!(tokens_to(&out, ana.connection)[0].exp, hours);
}

#[test]
fn grants_the_server_api_takes_away_are_gone_from_the_next_token_at_once() {
    let mut s = Story::new();
    let ana = s.join("ana");
    s.take();
    let reply = s.admin(AdminRequest::UpdateParticipant(
        lk::UpdateParticipantRequest {
            identity: "ana".into(),
            permission: Some(lk::ParticipantPermission {
                can_subscribe: true,
                can_publish: false,
                can_publish_data: true,
                ..Default::default()
            }),
            metadata: "{\"role\":\"viewer\"}".into(),
            ..Default::default()
        },
    ));
    assert!(reply.is_ok());
    let out = s.take();
    let tokens = tokens_to(&out, ana.connection);
    assert_eq!(tokens.len(), 1, "the change is sent as a token at once");
    assert_eq!(tokens[0].video.can_publish, Some(false));
    assert_eq!(tokens[0].metadata, "{\"role\":\"viewer\"}");
}

#[test]
fn a_participant_waiting_to_resume_gets_no_token_until_it_is_back() {
    let mut s = Story::new();
    let ana = s.join("ana");
    let sid = s.sid(ana);
    s.take();
    s.room
        .handle_signal_closed(s.clock(), ana.participant, ana.connection);
    s.advance(DEPARTURE_TIMEOUT / 2);
    assert!(s
        .take()
        .iter()
        .all(|o| !matches!(o, RoomOutput::RefreshToken { .. })));

    let (connection, resumed) = s.resume("ana", sid);
    resumed.expect("resumed");
    assert_eq!(tokens_to(&s.take(), connection).len(), 1);
}

#[test]
fn a_removed_participant_is_sent_no_more_tokens() {
    let mut s = Story::new();
    let ana = s.join("ana");
    let bo = s.join("bo");
    s.take();
    assert!(s
        .admin(AdminRequest::RemoveParticipant("ana".into()))
        .is_ok());
    s.advance(Duration::from_secs(11 * 60));
    let out = s.take();
    assert!(tokens_to(&out, ana.connection).is_empty());
    assert_eq!(
        tokens_to(&out, bo.connection).len(),
        2,
        "bo stays, and is refreshed"
    );
}
