//! Connection quality: the media plane's verdicts on links become each
//! participant's `connection_quality`, told to itself and to those who
//! subscribe to it, when it changes.

use std::time::Duration;

use moim_proto::lk::{self, signal_response::Message as Resp};
use moim_sfu::quality::LinkQuality;
use moim_sfu::{PeerEvent, PeerKey};

use super::*;

/// Every quality a connection was told, as (sid, quality), oldest first.
fn qualities_told(
    outputs: &[RoomOutput],
    to: ConnectionId,
) -> Vec<(String, lk::ConnectionQuality)> {
    messages_to(outputs, to)
        .into_iter()
        .filter_map(|m| match m {
            Resp::ConnectionQuality(u) => Some(u.updates.iter()),
            _ => None,
        })
        .flatten()
        .map(|u| (u.participant_sid.clone(), u.quality()))
        .collect()
}

fn peers(s: &Story, who: Joined) -> (PeerKey, PeerKey) {
    let p = &s.room.participants[&who.participant];
    (p.publisher, p.receiver)
}

fn judge(s: &mut Story, peer: PeerKey, quality: LinkQuality) {
    s.media(
        peer,
        PeerEvent::LinkQuality {
            quality,
            score: 4.0,
        },
    );
}

#[test]
fn a_participant_hears_its_own_quality_and_that_of_whom_it_subscribes_to() {
    let mut s = Story::new();
    let ana = s.join("ana");
    let ben = s.join("ben");
    s.publish_mic(ana);
    let (ana_pub, ana_sub) = peers(&s, ana);
    s.take();
    judge(&mut s, ana_pub, LinkQuality::Excellent);
    judge(&mut s, ana_sub, LinkQuality::Excellent);
    s.advance(Duration::from_millis(100));
    let out = s.take();
    let ana_sid = s.sid(ana);
    assert_eq!(
        qualities_told(&out, ana.connection),
        [(ana_sid.clone(), lk::ConnectionQuality::Excellent)]
    );
    assert_eq!(
        qualities_told(&out, ben.connection),
        [(ana_sid.clone(), lk::ConnectionQuality::Excellent)]
    );

    // Her subscriber link gets worse: she is as good as her worst link.
    judge(&mut s, ana_sub, LinkQuality::Poor);
    s.advance(Duration::from_millis(100));
    let out = s.take();
    assert_eq!(
        qualities_told(&out, ben.connection),
        [(ana_sid.clone(), lk::ConnectionQuality::Poor)]
    );

    // The same verdict again is not news.
    judge(&mut s, ana_sub, LinkQuality::Poor);
    s.advance(Duration::from_millis(100));
    assert!(qualities_told(&s.take(), ben.connection).is_empty());
}

#[test]
fn nobody_hears_the_quality_of_someone_they_do_not_subscribe_to_until_they_do() {
    let mut s = Story::new();
    let ana = s.join("ana");
    let ben = s.join("ben");
    let (ben_pub, _) = peers(&s, ben);
    judge(&mut s, ben_pub, LinkQuality::Good);
    s.advance(Duration::from_millis(100));
    let out = s.take();
    assert!(
        qualities_told(&out, ana.connection).is_empty(),
        "ben publishes nothing ana gets"
    );
    assert_eq!(
        qualities_told(&out, ben.connection).len(),
        1,
        "ben hears his own"
    );

    // Ben publishes; ana subscribes and learns his quality then, though it did not change.
    s.publish_mic(ben);
    s.advance(Duration::from_millis(100));
    assert_eq!(
        qualities_told(&s.take(), ana.connection),
        [(s.sid(ben), lk::ConnectionQuality::Good)]
    );
}
