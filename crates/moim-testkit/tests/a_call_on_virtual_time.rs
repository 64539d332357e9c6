//! Whole calls through the room core and a media shard core, with str0m
//! participants and no sockets: each story runs in milliseconds of real
//! time, the same way every time.

use std::time::Duration;

use moim_proto::lk;
use moim_server::room::{AdminRequest, JoinError};
use moim_testkit::{Sim, Who};

/// Ana publishes her microphone and Ben, who joined first, hears it.
fn ana_speaks_to_ben() -> (Sim, Who, Who) {
    let mut sim = Sim::new(Sim::config());
    let ben = sim.join("ben");
    let ana = sim.join("ana");
    sim.publish_mic(ana);
    sim.run_until("ben hears ana", |s| s.person(ben).audio_heard >= 25);
    (sim, ana, ben)
}

/// The sid of the last track `who` was told `identity` publishes.
fn last_track_sid(sim: &Sim, who: Who, identity: &str) -> String {
    sim.person(who)
        .updates_about(identity)
        .iter()
        .flat_map(|p| p.tracks.iter())
        .map(|t| t.sid.clone())
        .next_back()
        .unwrap_or_else(|| panic!("no track of {identity} was announced"))
}

#[test]
fn a_participant_hears_the_one_who_publishes() {
    let (sim, ana, ben) = ana_speaks_to_ben();
    assert!(sim.person(ana).publisher_connected);
    let ben_sees_the_mic = sim.person(ben).updates_about("ana").iter().any(|p| {
        p.tracks
            .iter()
            .any(|t| t.r#type == lk::TrackType::Audio as i32)
    });
    assert!(ben_sees_the_mic, "ben's participant list shows ana's mic");
    assert!(sim.webhooks.contains(&"track_published".to_string()));
    println!("ben heard ana after {:?} of call time", sim.elapsed());
}

#[test]
fn a_server_side_mute_stops_the_audio_and_unmute_brings_it_back() {
    let (mut sim, ana, ben) = ana_speaks_to_ben();
    let sid = last_track_sid(&sim, ben, "ana");
    let mute = |muted| AdminRequest::Mute {
        identity: "ana".into(),
        track_sid: sid.clone(),
        muted,
    };
    sim.admin(mute(true)).expect("muted");
    sim.run_for(Duration::from_millis(100));
    let heard = sim.person(ben).audio_heard;
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.person(ben).audio_heard, heard, "silence while muted");
    let told = sim
        .person(ana)
        .received
        .iter()
        .any(|m| matches!(m, lk::signal_response::Message::Mute(m) if m.muted));
    assert!(told, "ana's client is told it was muted");

    sim.admin(mute(false)).expect("unmuted");
    sim.run_until("ben hears ana again", |s| {
        s.person(ben).audio_heard >= heard + 25
    });
}

#[test]
fn a_publisher_who_never_resumes_is_gone_from_the_room_and_the_media_plane() {
    let (mut sim, ana, ben) = ana_speaks_to_ben();
    assert_eq!(sim.shard.peer_count(), 4);
    sim.drop_signal(ana);
    sim.run_for(Duration::from_secs(19));
    assert_eq!(sim.room.participant_count(), 2, "ana may still resume");
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.room.participant_count(), 1);
    assert_eq!(sim.shard.peer_count(), 2, "only ben's peers are left");
    let left = sim.person(ben).updates_about("ana").last().map(|p| p.state);
    assert_eq!(left, Some(lk::participant_info::State::Disconnected as i32));
    let heard = sim.person(ben).audio_heard;
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.person(ben).audio_heard, heard);
    assert!(sim.webhooks.contains(&"participant_left".to_string()));
}

#[test]
fn a_subscriber_who_resumes_keeps_hearing() {
    let (mut sim, _ana, ben) = ana_speaks_to_ben();
    sim.drop_signal(ben);
    sim.run_for(Duration::from_secs(5));
    let resumed = sim.resume(ben).expect("the session resumes");
    assert_eq!(Some(resumed.participant), sim.person(ben).key);
    let heard = sim.person(ben).audio_heard;
    sim.run_until("ben hears ana after resuming", |s| {
        s.person(ben).audio_heard >= heard + 25
    });
    sim.run_for(Duration::from_secs(30));
    assert_eq!(
        sim.room.participant_count(),
        2,
        "the departure timeout no longer applies"
    );
}

#[test]
fn the_same_identity_joining_again_replaces_the_old_session_everywhere() {
    let (mut sim, ana, ben) = ana_speaks_to_ben();
    let again = sim.join("ana");
    assert!(sim.was_closed_for(ana, lk::DisconnectReason::DuplicateIdentity));
    assert_eq!(sim.room.participant_count(), 2);
    assert_eq!(
        sim.shard.peer_count(),
        4,
        "the old session's peers are gone"
    );
    sim.publish_mic(again);
    let heard = sim.person(ben).audio_heard;
    sim.run_until("ben hears the new ana", |s| {
        s.person(ben).audio_heard >= heard + 25
    });
}

#[test]
fn a_full_room_turns_a_newcomer_away_before_any_media_is_set_up() {
    let mut config = Sim::config();
    config.max_participants = 1;
    let mut sim = Sim::new(config);
    sim.join("ana");
    let peers = sim.shard.peer_count();
    let refused = sim.try_join("ben").expect_err("the room is full");
    assert_eq!(refused, JoinError::RoomFull { max: 1 });
    assert_eq!(sim.shard.peer_count(), peers);
    assert_eq!(sim.room.participant_count(), 1);
}

/// The layers Ben received after his `mark`-th frame, with where each run
/// of one layer began and whether it began on a keyframe.
fn runs_since(sim: &Sim, who: Who, mark: usize) -> Vec<(usize, bool)> {
    let mut runs: Vec<(usize, bool)> = Vec::new();
    for f in &sim.person(who).video_seen[mark..] {
        if runs.last().map(|r| r.0) != Some(f.layer) {
            runs.push((f.layer, f.keyframe));
        }
    }
    runs
}

#[test]
fn a_subscriber_moves_between_simulcast_layers_only_at_keyframes() {
    let mut sim = Sim::new(Sim::config());
    let ben = sim.join("ben");
    let ana = sim.join("ana");
    sim.publish_camera(ana);
    sim.run_until("ben sees ana's camera", |s| {
        s.person(ben).video_seen.len() >= 30
    });
    // Ben takes the best layer that has arrived so far, climbing as the
    // higher ones show up, and every step lands on a keyframe.
    let first = runs_since(&sim, ben, 0);
    assert!(
        first.iter().all(|(_, key)| *key),
        "every switch lands on a keyframe: {first:?}"
    );
    assert_eq!(
        first.last(),
        Some(&(2, true)),
        "he ends on the highest: {first:?}"
    );

    let sid = last_track_sid(&sim, ben, "ana");
    let ask = |quality: lk::VideoQuality| {
        lk::signal_request::Message::TrackSetting(lk::UpdateTrackSettings {
            track_sids: vec![sid.clone()],
            quality: quality as i32,
            ..Default::default()
        })
    };
    let mark = sim.person(ben).video_seen.len();
    sim.signal(ben, ask(lk::VideoQuality::Low));
    sim.run_until("ben gets the low layer", |s| {
        s.person(ben).video_seen[mark..]
            .iter()
            .filter(|f| f.layer == 0)
            .count()
            >= 20
    });
    let runs = runs_since(&sim, ben, mark);
    assert_eq!(
        runs.last(),
        Some(&(0, true)),
        "the low layer starts at a keyframe and stays: {runs:?}"
    );
    assert!(
        runs.iter().all(|(layer, key)| *key || *layer == 2),
        "every switch lands on a keyframe: {runs:?}"
    );

    let mark = sim.person(ben).video_seen.len();
    sim.signal(ben, ask(lk::VideoQuality::High));
    sim.run_until("ben gets the high layer again", |s| {
        s.person(ben).video_seen[mark..]
            .iter()
            .filter(|f| f.layer == 2)
            .count()
            >= 20
    });
    let runs = runs_since(&sim, ben, mark);
    assert_eq!(runs.last(), Some(&(2, true)), "{runs:?}");
    println!("layer switches done after {:?} of call time", sim.elapsed());
}

/// The speakers `who` was last told of, by identity, active ones only.
fn speakers_heard_by(sim: &Sim, who: Who) -> Vec<String> {
    let mut active = std::collections::BTreeMap::new();
    for m in &sim.person(who).received {
        if let lk::signal_response::Message::SpeakersChanged(c) = m {
            for s in &c.speakers {
                active.insert(s.sid.clone(), s.active);
            }
        }
    }
    let name_of = |sid: &str| {
        sim.people()
            .find(|p| p.sid == sid)
            .map(|p| p.identity.clone())
            .unwrap_or_else(|| sid.to_string())
    };
    active
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(sid, _)| name_of(&sid))
        .collect()
}

#[test]
fn whoever_talks_becomes_the_active_speaker_and_silence_ends_it() {
    let (mut sim, ana, ben) = ana_speaks_to_ben();
    sim.run_for(Duration::from_secs(1));
    assert!(
        speakers_heard_by(&sim, ben).is_empty(),
        "a silent microphone makes nobody a speaker"
    );

    sim.talk(ana, Some(20));
    let started = sim.elapsed();
    sim.run_until("ben is told ana speaks", |s| {
        speakers_heard_by(s, ben) == ["ana"]
    });
    let detected = sim.elapsed() - started;
    assert_eq!(
        speakers_heard_by(&sim, ana),
        ["ana"],
        "ana sees herself speak"
    );

    sim.talk(ana, None);
    let stopped = sim.elapsed();
    sim.run_until("ben is told ana stopped", |s| {
        speakers_heard_by(s, ben).is_empty()
    });
    let dropped = sim.elapsed() - stopped;
    println!("ana was a speaker after {detected:?} and dropped {dropped:?} after she stopped");
    assert!(detected < Duration::from_secs(1) && dropped < Duration::from_secs(2));
}

/// The qualities `who` was last told, by identity.
fn qualities_heard_by(
    sim: &Sim,
    who: Who,
) -> std::collections::BTreeMap<String, lk::ConnectionQuality> {
    let mut told = std::collections::BTreeMap::new();
    for m in &sim.person(who).received {
        if let lk::signal_response::Message::ConnectionQuality(u) = m {
            for q in &u.updates {
                let name = sim
                    .people()
                    .find(|p| p.sid == q.participant_sid)
                    .map_or(q.participant_sid.clone(), |p| p.identity.clone());
                told.insert(name, q.quality());
            }
        }
    }
    told
}

#[test]
fn a_clean_link_is_excellent_and_a_lossy_one_is_poor_until_it_recovers() {
    let (mut sim, ana, ben) = ana_speaks_to_ben();
    use lk::ConnectionQuality::{Excellent, Poor};
    sim.run_until("ben is told ana's link is excellent", |s| {
        qualities_heard_by(s, ben).get("ana") == Some(&Excellent)
    });
    assert_eq!(
        qualities_heard_by(&sim, ana).get("ana"),
        Some(&Excellent),
        "ana hears her own"
    );

    // Ana's link starts losing one packet in five.
    sim.lose_one_in(ana, Some(5));
    let lossy_at = sim.elapsed();
    sim.run_until("ben is told ana's link is poor", |s| {
        qualities_heard_by(s, ben).get("ana") == Some(&Poor)
    });
    let noticed = sim.elapsed() - lossy_at;

    sim.lose_one_in(ana, None);
    let clean_at = sim.elapsed();
    sim.run_until("ben is told ana's link recovered", |s| {
        qualities_heard_by(s, ben).get("ana") == Some(&Excellent)
    });
    println!(
        "20% loss seen as poor after {noticed:?}; recovery seen after {:?}",
        sim.elapsed() - clean_at
    );
}

#[test]
fn keyframe_requests_from_many_subscribers_reach_the_publisher_rate_limited() {
    let mut sim = Sim::new(Sim::config());
    let ana = sim.join("ana");
    let watchers: Vec<Who> = ["ben", "cleo", "dan"].iter().map(|n| sim.join(n)).collect();
    sim.publish_camera(ana);
    sim.run_until("everyone sees ana", |s| {
        watchers.iter().all(|w| s.person(*w).video_seen.len() > 10)
    });
    sim.run_for(Duration::from_secs(1));
    let before = sim.person(ana).keyframe_requests;
    // For one second every watcher loses a picture every 20 ms: 150 PLIs.
    for _ in 0..50 {
        for w in &watchers {
            sim.lose_pictures(*w);
        }
        sim.run_for(Duration::from_millis(20));
    }
    let reached = sim.person(ana).keyframe_requests - before;
    println!("150 keyframe requests from 3 subscribers in 1 s reached the publisher as {reached}");
    assert!(reached >= 1, "a lost picture is asked for");
    // 300 ms apart per layer: at most 4 in a second on the one layer they watch.
    assert!(reached <= 4, "{reached} requests reached ana");
}
