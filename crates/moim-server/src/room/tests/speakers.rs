//! Who is speaking: levels from the media plane become `speakers_changed`,
//! to the participants who hear the speaker, only when something changed.

use std::time::Duration;

use moim_proto::lk::{self, signal_request::Message as Req, signal_response::Message as Resp};
use moim_sfu::PeerEvent;

use super::*;

/// Every `speakers_changed` a connection got, oldest first.
fn speaker_updates(outputs: &[RoomOutput], to: ConnectionId) -> Vec<Vec<(String, bool)>> {
    messages_to(outputs, to)
        .into_iter()
        .filter_map(|m| match m {
            Resp::SpeakersChanged(c) => Some(
                c.speakers
                    .iter()
                    .map(|s| (s.sid.clone(), s.active))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

#[test]
fn a_speaker_is_named_to_everyone_who_hears_them_and_dropped_when_quiet() {
    let mut s = Story::new();
    let ana = s.join("ana");
    let ben = s.join("ben");
    let (peer, mic, _) = s.publish_audio(ana, lk::TrackSource::Microphone);
    let ana_sid = s.sid(ana);
    s.take();

    s.media(
        peer,
        PeerEvent::AudioLevel {
            track: mic,
            level: 0.3,
        },
    );
    assert!(
        speaker_updates(&s.take(), ben.connection).is_empty(),
        "levels are gathered before anything is sent"
    );
    s.advance(Duration::from_millis(50));
    let out = s.take();
    assert_eq!(
        speaker_updates(&out, ben.connection),
        [vec![(ana_sid.clone(), true)]]
    );
    assert_eq!(
        speaker_updates(&out, ana.connection),
        [vec![(ana_sid.clone(), true)]],
        "ana sees herself speaking"
    );

    // The same level again is no news.
    s.advance(Duration::from_millis(200));
    s.media(
        peer,
        PeerEvent::AudioLevel {
            track: mic,
            level: 0.3,
        },
    );
    s.advance(Duration::from_millis(300));
    assert!(speaker_updates(&s.take(), ben.connection).is_empty());

    s.media(
        peer,
        PeerEvent::AudioLevel {
            track: mic,
            level: 0.0,
        },
    );
    s.advance(Duration::from_millis(300));
    assert_eq!(
        speaker_updates(&s.take(), ben.connection),
        [vec![(ana_sid, false)]],
        "silence drops ana"
    );
}

#[test]
fn muting_drops_a_speaker_at_once_and_screen_share_audio_never_speaks() {
    let mut s = Story::new();
    let ana = s.join("ana");
    let ben = s.join("ben");
    let (peer, mic, mic_sid) = s.publish_audio(ana, lk::TrackSource::Microphone);
    let (_, screen, _) = s.publish_audio(ana, lk::TrackSource::ScreenShareAudio);
    let ana_sid = s.sid(ana);
    s.media(
        peer,
        PeerEvent::AudioLevel {
            track: screen,
            level: 0.8,
        },
    );
    s.advance(Duration::from_millis(300));
    assert!(
        speaker_updates(&s.take(), ben.connection).is_empty(),
        "a video's soundtrack does not make ana a speaker"
    );

    s.media(
        peer,
        PeerEvent::AudioLevel {
            track: mic,
            level: 0.2,
        },
    );
    s.advance(Duration::from_millis(300));
    assert_eq!(
        speaker_updates(&s.take(), ben.connection),
        [vec![(ana_sid.clone(), true)]]
    );

    s.signal(
        ana,
        Req::Mute(lk::MuteTrackRequest {
            sid: mic_sid,
            muted: true,
        }),
    );
    s.advance(Duration::from_millis(50));
    assert_eq!(
        speaker_updates(&s.take(), ben.connection),
        [vec![(ana_sid, false)]],
        "a mute drops ana without waiting for the level to fall"
    );
}

#[test]
fn updates_are_throttled_and_several_speakers_go_out_in_one_message() {
    let mut s = Story::new();
    let ana = s.join("ana");
    let ben = s.join("ben");
    let cleo = s.join("cleo");
    let (ana_peer, ana_mic, _) = s.publish_audio(ana, lk::TrackSource::Microphone);
    let (ben_peer, ben_mic, _) = s.publish_audio(ben, lk::TrackSource::Microphone);
    s.take();
    // One shard tick reports both.
    s.media(
        ana_peer,
        PeerEvent::AudioLevel {
            track: ana_mic,
            level: 0.1,
        },
    );
    s.media(
        ben_peer,
        PeerEvent::AudioLevel {
            track: ben_mic,
            level: 0.5,
        },
    );
    s.advance(Duration::from_millis(50));
    let updates = speaker_updates(&s.take(), cleo.connection);
    assert_eq!(updates.len(), 1, "one message for one tick: {updates:?}");
    assert_eq!(
        updates[0],
        [(s.sid(ben), true), (s.sid(ana), true)],
        "loudest first"
    );

    // Levels that change every 20 ms still go out at most every 200 ms.
    for i in 0..50 {
        let level = 0.1 + i as f32 * 0.01;
        s.media(
            ana_peer,
            PeerEvent::AudioLevel {
                track: ana_mic,
                level,
            },
        );
        s.advance(Duration::from_millis(20));
    }
    let sent = speaker_updates(&s.take(), cleo.connection).len();
    assert!((4..=6).contains(&sent), "1 s of changes, {sent} messages");
}

#[test]
fn a_participant_who_subscribes_to_nothing_hears_no_speakers_but_itself() {
    let mut s = Story::new();
    let ana = s.join("ana");
    let params = JoinParams {
        auto_subscribe: false,
        ..Default::default()
    };
    let (_, lurker) = s.join_with("lurker", params);
    let lurker = lurker.expect("joined");
    let (peer, mic, _) = s.publish_audio(ana, lk::TrackSource::Microphone);
    s.media(
        peer,
        PeerEvent::AudioLevel {
            track: mic,
            level: 0.4,
        },
    );
    s.advance(Duration::from_millis(300));
    assert!(speaker_updates(&s.take(), lurker.connection).is_empty());
}

#[test]
fn a_speaker_who_leaves_is_dropped_for_the_others() {
    let mut s = Story::new();
    let ana = s.join("ana");
    let ben = s.join("ben");
    let (peer, mic, _) = s.publish_audio(ana, lk::TrackSource::Microphone);
    let ana_sid = s.sid(ana);
    s.media(
        peer,
        PeerEvent::AudioLevel {
            track: mic,
            level: 0.4,
        },
    );
    s.advance(Duration::from_millis(300));
    s.take();
    s.signal(ana, Req::Leave(lk::LeaveRequest::default()));
    s.advance(Duration::from_millis(300));
    assert_eq!(
        speaker_updates(&s.take(), ben.connection),
        [vec![(ana_sid, false)]]
    );
    assert!(s.room.speakers.due.is_none(), "nothing left to send");
}
