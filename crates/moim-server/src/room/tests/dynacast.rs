//! Dynacast: the publisher is told which layers of its camera anyone
//! watches; more at once, less after a delay, nothing when nobody watches.

use std::time::Duration;

use moim_proto::lk::{self, signal_request::Message as Req, signal_response::Message as Resp};

use super::super::dynacast::LOWER_AFTER;
use super::*;

/// The layers each `subscribed_quality_update` to `to` enabled, as
/// indices (0 LOW, 1 MEDIUM, 2 HIGH), oldest first.
fn layer_updates(outputs: &[RoomOutput], to: ConnectionId) -> Vec<Vec<usize>> {
    messages_to(outputs, to)
        .into_iter()
        .filter_map(|m| match m {
            Resp::SubscribedQualityUpdate(u) => {
                assert_eq!(u.subscribed_codecs.len(), 1);
                assert_eq!(
                    u.subscribed_codecs[0].codec, "vp8",
                    "livekit-client's codec name"
                );
                Some(
                    u.subscribed_codecs[0]
                        .qualities
                        .iter()
                        .enumerate()
                        .filter(|(_, q)| q.enabled)
                        .map(|(i, _)| i)
                        .collect(),
                )
            }
            _ => None,
        })
        .collect()
}

fn ask_for(s: &mut Story, who: Joined, sid: &str, quality: lk::VideoQuality, disabled: bool) {
    s.signal(
        who,
        Req::TrackSetting(lk::UpdateTrackSettings {
            track_sids: vec![sid.to_string()],
            disabled,
            quality: quality as i32,
            ..Default::default()
        }),
    );
}

#[test]
fn the_publisher_encodes_only_what_its_subscribers_watch() {
    let mut s = Story::new();
    let ana = s.join("ana");
    let ben = s.join("ben");
    let (_, cam) = s.publish_camera(ana);
    assert_eq!(
        layer_updates(&s.take(), ana.connection),
        [vec![0, 1, 2]],
        "ben subscribes: every layer, at once"
    );

    // Ben shrinks his tile to the low layer: ana hears only after the delay.
    ask_for(&mut s, ben, &cam, lk::VideoQuality::Low, false);
    s.advance(LOWER_AFTER - Duration::from_millis(100));
    assert!(
        layer_updates(&s.take(), ana.connection).is_empty(),
        "not yet"
    );
    s.advance(Duration::from_millis(200));
    assert_eq!(layer_updates(&s.take(), ana.connection), [vec![0]]);

    // Cleo joins and watches in full: the top layer comes back at once.
    let cleo = s.join("cleo");
    assert_eq!(layer_updates(&s.take(), ana.connection), [vec![0, 1, 2]]);

    // Both hide the video: after the delay nothing is encoded.
    ask_for(&mut s, ben, &cam, lk::VideoQuality::High, true);
    ask_for(&mut s, cleo, &cam, lk::VideoQuality::High, true);
    s.advance(LOWER_AFTER + Duration::from_millis(100));
    assert_eq!(
        layer_updates(&s.take(), ana.connection),
        [Vec::<usize>::new()]
    );
}

#[test]
fn a_resize_shorter_than_the_delay_does_not_reach_the_publisher() {
    let mut s = Story::new();
    let ana = s.join("ana");
    let ben = s.join("ben");
    let (_, cam) = s.publish_camera(ana);
    s.take();
    ask_for(&mut s, ben, &cam, lk::VideoQuality::Medium, false);
    s.advance(Duration::from_secs(1));
    ask_for(&mut s, ben, &cam, lk::VideoQuality::High, false);
    s.advance(LOWER_AFTER * 2);
    assert!(layer_updates(&s.take(), ana.connection).is_empty());
}

#[test]
fn when_the_last_subscriber_leaves_the_camera_is_paused() {
    let mut s = Story::new();
    let ana = s.join("ana");
    let ben = s.join("ben");
    s.publish_camera(ana);
    s.take();
    s.signal(ben, Req::Leave(lk::LeaveRequest::default()));
    s.advance(LOWER_AFTER + Duration::from_millis(100));
    assert_eq!(
        layer_updates(&s.take(), ana.connection),
        [Vec::<usize>::new()]
    );
    assert!(s.room.dynacast.due.is_none());
}

#[test]
fn a_publisher_that_resumes_hears_what_changed_while_it_was_away() {
    let mut s = Story::new();
    let ana = s.join("ana");
    let ben = s.join("ben");
    let (_, cam) = s.publish_camera(ana);
    s.take();
    let ana_sid = s.sid(ana);
    s.room
        .handle_signal_closed(s.clock(), ana.participant, ana.connection);
    ask_for(&mut s, ben, &cam, lk::VideoQuality::Low, false);
    s.advance(LOWER_AFTER * 2);
    s.take();

    let (back, resumed) = s.resume("ana", ana_sid);
    resumed.expect("ana resumes");
    assert_eq!(
        layer_updates(&s.take(), back),
        [vec![0]],
        "told at once, on the new connection"
    );
}

#[test]
fn the_update_names_the_codec_as_the_client_published_it() {
    let mut s = Story::new();
    let ana = s.join("ana");
    let _ben = s.join("ben");
    s.signal(
        ana,
        Req::AddTrack(lk::AddTrackRequest {
            cid: "cam".into(),
            r#type: lk::TrackType::Video as i32,
            source: lk::TrackSource::Camera as i32,
            simulcast_codecs: vec![lk::SimulcastCodec {
                codec: "H264".into(),
                cid: "cam".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
    );
    let (peer, track) = s
        .take()
        .iter()
        .find_map(|o| match o {
            RoomOutput::Media(Command::ExpectTrack { peer, track, .. }) => Some((*peer, *track)),
            _ => None,
        })
        .expect("expected");
    // The client's offer lacked H.264: moim announces VP8, which it sends.
    s.media(
        peer,
        moim_sfu::PeerEvent::TrackBound {
            track,
            mid: "0".into(),
            codec: Some(moim_sfu::codec::VideoCodec::Vp8),
        },
    );
    let codecs: Vec<String> = messages_to(&s.take(), ana.connection)
        .into_iter()
        .filter_map(|m| match m {
            Resp::SubscribedQualityUpdate(u) => Some(u.subscribed_codecs[0].codec.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        codecs,
        ["h264"],
        "livekit-client's own name for its sender's codec"
    );
}
