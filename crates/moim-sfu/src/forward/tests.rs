use super::*;

fn video(layer: usize, seq: u64, ts: u32, key: bool) -> InPacket {
    InPacket {
        layer,
        layers: None,
        svc: false,
        marker: false,
        seq,
        timestamp: ts,
        keyframe_start: key,
        needs_keyframe: true,
        clock_rate: 90_000,
    }
}

#[test]
fn a_reused_stream_goes_on_from_where_the_last_track_stopped() {
    let t0 = Instant::now();
    let mut book = LayerBook::default();
    book.saw(0, t0);
    let mut old = Forwarder::new();
    for i in 0..500u64 {
        old.on_packet(video(0, 9000 + i, 3000 * i as u32, i == 0), &book, t0);
    }
    let left = old.position().expect("the old track sent packets");
    assert_eq!(left.seq, 500);

    // A different publisher's track, with its own random numbering,
    // arrives on the same section 2 s later.
    let t1 = t0 + Duration::from_secs(2);
    book.saw(0, t1);
    let mut new = Forwarder::new();
    new.continue_stream(left);
    let Verdict::Forward { seq, timestamp, .. } =
        new.on_packet(video(0, 40, 7_000_000, true), &book, t1)
    else {
        panic!("the new track's keyframe is forwarded");
    };
    assert_eq!(seq, 501, "no step back into the receiver's replay window");
    assert_eq!(
        timestamp,
        left.timestamp.wrapping_add(2 * 90_000),
        "the timestamp moves on by the time that passed"
    );
    assert_eq!(
        new.on_packet(video(0, 41, 7_000_000, false), &book, t1),
        Verdict::Forward {
            seq: 502,
            timestamp,
            marker: false,
        }
    );
}

#[test]
fn a_new_subscriber_waits_for_a_keyframe_then_gets_contiguous_sequence_numbers() {
    let now = Instant::now();
    let mut book = LayerBook::default();
    book.saw(0, now);
    let mut f = Forwarder::new();
    assert_eq!(
        f.on_packet(video(0, 5000, 100, false), &book, now),
        Verdict::Drop
    );
    assert_eq!(
        f.on_packet(video(0, 5001, 3100, true), &book, now),
        Verdict::Forward {
            seq: 1,
            timestamp: 3100,
            marker: false,
        }
    );
    assert_eq!(
        f.on_packet(video(0, 5002, 3100, false), &book, now),
        Verdict::Forward {
            seq: 2,
            timestamp: 3100,
            marker: false,
        }
    );
}

#[test]
fn the_best_live_layer_wins_and_the_switch_happens_on_its_keyframe() {
    let t0 = Instant::now();
    let mut book = LayerBook::default();
    book.saw(0, t0);
    let mut f = Forwarder::new();
    assert!(matches!(
        f.on_packet(video(0, 10, 0, true), &book, t0),
        Verdict::Forward { .. }
    ));
    // The high layer appears: low keeps flowing until high has a keyframe.
    book.saw(2, t0);
    assert_eq!(f.wants_keyframe(&book, t0), Some(2));
    assert!(matches!(
        f.on_packet(video(0, 11, 0, false), &book, t0),
        Verdict::Forward { .. }
    ));
    assert_eq!(
        f.on_packet(video(2, 900, 50_000, false), &book, t0),
        Verdict::Drop
    );
    let t1 = t0 + Duration::from_millis(33);
    let v = f.on_packet(video(2, 901, 50_000, true), &book, t1);
    // Sequence continues after 2 forwarded packets, time advances ~33 ms.
    assert_eq!(
        v,
        Verdict::Forward {
            seq: 3,
            timestamp: 2970,
            marker: false,
        }
    );
    assert_eq!(f.current_layer(), Some(2));
    // Low-layer packets are now dropped.
    assert_eq!(
        f.on_packet(video(0, 12, 3000, false), &book, t1),
        Verdict::Drop
    );
}

#[test]
fn when_the_current_layer_dies_a_lower_one_takes_over() {
    let t0 = Instant::now();
    let mut book = LayerBook::default();
    book.saw(1, t0);
    let mut f = Forwarder::new();
    assert!(matches!(
        f.on_packet(video(1, 1, 0, true), &book, t0),
        Verdict::Forward { .. }
    ));
    let later = t0 + LAYER_TIMEOUT + Duration::from_millis(1);
    book.saw(0, later);
    assert_eq!(f.target_layer(&book, later), Some(0));
    assert!(matches!(
        f.on_packet(video(0, 77, 9, true), &book, later),
        Verdict::Forward { seq: 2, .. }
    ));
}

#[test]
fn audio_passes_without_keyframes_and_pausing_stops_it() {
    let now = Instant::now();
    let mut book = LayerBook::default();
    book.saw(0, now);
    let mut f = Forwarder::new();
    let audio = InPacket {
        layer: 0,
        layers: None,
        svc: false,
        marker: false,
        seq: 300,
        timestamp: 960,
        keyframe_start: false,
        needs_keyframe: false,
        clock_rate: 48_000,
    };
    assert!(matches!(
        f.on_packet(audio, &book, now),
        Verdict::Forward { seq: 1, .. }
    ));
    f.set_paused(true);
    assert_eq!(f.on_packet(audio, &book, now), Verdict::Drop);
}

#[test]
fn an_allowance_caps_the_layer_and_nothing_waits_for_a_keyframe_to_come_back() {
    let now = Instant::now();
    let mut book = LayerBook::default();
    book.saw(0, now);
    book.saw(2, now);
    let mut f = Forwarder::new();
    f.set_allowance(Allowance::UpTo(0));
    assert_eq!(f.target_layer(&book, now), Some(0));
    assert_eq!(f.on_packet(video(2, 5, 0, true), &book, now), Verdict::Drop);
    assert!(matches!(
        f.on_packet(video(0, 5, 0, true), &book, now),
        Verdict::Forward { .. }
    ));
    f.set_allowance(Allowance::Nothing);
    assert_eq!(f.wants_keyframe(&book, now), None, "nothing to ask for");
    assert_eq!(
        f.on_packet(video(0, 6, 0, false), &book, now),
        Verdict::Drop
    );
    f.set_allowance(Allowance::Any);
    assert_eq!(f.wants_keyframe(&book, now), Some(2));
    assert_eq!(
        f.on_packet(video(0, 7, 0, false), &book, now),
        Verdict::Drop
    );
}

#[test]
fn a_max_layer_cap_keeps_the_subscriber_low() {
    let now = Instant::now();
    let mut book = LayerBook::default();
    book.saw(0, now);
    book.saw(2, now);
    let mut f = Forwarder::new();
    f.set_max_layer(0);
    assert_eq!(f.target_layer(&book, now), Some(0));
    assert_eq!(f.on_packet(video(2, 5, 0, true), &book, now), Verdict::Drop);
    assert!(matches!(
        f.on_packet(video(0, 5, 0, true), &book, now),
        Verdict::Forward { .. }
    ));
}

/// A VP9 `L3T3_KEY` publisher: each picture has three spatial layers of two
/// packets each, the temporal pattern 0 2 1 2, and the marker on the last
/// packet of the top layer.
struct SvcPublisher {
    seq: u64,
    picture: u32,
}

impl SvcPublisher {
    fn new() -> Self {
        Self {
            seq: 7000,
            picture: 0,
        }
    }

    /// The next picture's packets, and its temporal layer.
    fn picture(&mut self, key: bool) -> (Vec<InPacket>, u8) {
        let temporal = if key {
            0
        } else {
            [0, 2, 1, 2][(self.picture % 4) as usize]
        };
        let timestamp = self.picture * 3000;
        self.picture += 1;
        let mut out = Vec::new();
        for spatial in 0..3u8 {
            for part in 0..2 {
                self.seq += 1;
                out.push(InPacket {
                    layer: 0,
                    layers: Some(LayerInfo {
                        spatial,
                        temporal,
                        frame_start: part == 0,
                        frame_end: part == 1,
                        switch_up: if temporal > 0 { 1 << temporal } else { 0 },
                    }),
                    svc: true,
                    marker: spatial == 2 && part == 1,
                    seq: self.seq,
                    timestamp,
                    keyframe_start: key && spatial == 0 && part == 0,
                    needs_keyframe: true,
                    clock_rate: 90_000,
                });
            }
        }
        (out, temporal)
    }
}

/// What one subscriber got of a picture: (spatial layer, outgoing seq, marker).
fn deliver(
    f: &mut Forwarder,
    book: &mut LayerBook,
    packets: &[InPacket],
    now: Instant,
) -> Vec<(u8, u64, bool)> {
    let mut got = Vec::new();
    for p in packets {
        let spatial = p.layers.map_or(0, |l| l.spatial);
        book.saw(spatial as usize, now);
        if let Verdict::Forward { seq, marker, .. } = f.on_packet(*p, book, now) {
            got.push((spatial, seq, marker));
        }
    }
    got
}

#[test]
fn an_svc_subscriber_on_the_middle_layer_gets_layers_0_and_1_ending_in_a_marker() {
    let now = Instant::now();
    let mut book = LayerBook::default();
    let mut publisher = SvcPublisher::new();
    let mut f = Forwarder::new();
    f.set_max_layer(1);
    let (key, _) = publisher.picture(true);
    // The book learns all three layers from the key picture itself.
    for l in 0..3 {
        book.saw(l, now);
    }
    let got = deliver(&mut f, &mut book, &key, now);
    assert_eq!(
        got,
        vec![(0, 1, false), (0, 2, false), (1, 3, false), (1, 4, true)],
        "layer 2 is left out and layer 1's last packet ends the picture"
    );
    let (next, _) = publisher.picture(false);
    let got = deliver(&mut f, &mut book, &next, now);
    assert_eq!(
        got.iter().map(|g| g.1).collect::<Vec<_>>(),
        vec![5, 6, 7, 8],
        "no gap where layer 2 was"
    );
    assert_eq!(f.current_layer(), Some(1));
    assert_eq!(f.wants_keyframe(&book, now), None);
}

#[test]
fn svc_goes_down_at_the_next_picture_and_up_only_at_a_key_picture() {
    let now = Instant::now();
    let mut book = LayerBook::default();
    for l in 0..3 {
        book.saw(l, now);
    }
    let mut publisher = SvcPublisher::new();
    let mut f = Forwarder::new();
    let (key, _) = publisher.picture(true);
    assert_eq!(deliver(&mut f, &mut book, &key, now).len(), 6);

    // The subscriber shrinks its tile: the next picture is layer 0 only,
    // without waiting for a keyframe.
    f.set_max_layer(0);
    assert_eq!(f.wants_keyframe(&book, now), None);
    let (p, _) = publisher.picture(false);
    let got = deliver(&mut f, &mut book, &p, now);
    assert_eq!(got, vec![(0, 7, false), (0, 8, true)]);

    // It grows again: layer 0 goes on until a key picture, which is asked for.
    f.set_max_layer(2);
    assert_eq!(f.wants_keyframe(&book, now), Some(2));
    let (p, _) = publisher.picture(false);
    let got = deliver(&mut f, &mut book, &p, now);
    assert_eq!(got, vec![(0, 9, false), (0, 10, true)]);
    let (key, _) = publisher.picture(true);
    let got = deliver(&mut f, &mut book, &key, now);
    assert_eq!(
        got.iter().map(|g| (g.0, g.2)).collect::<Vec<_>>(),
        vec![
            (0, false),
            (0, false),
            (1, false),
            (1, false),
            (2, false),
            (2, true)
        ],
        "the key picture brings every layer back, marker where the publisher put it"
    );
    assert_eq!(f.current_layer(), Some(2));
}

#[test]
fn a_lower_frame_rate_leaves_out_the_top_temporal_layer_and_comes_back_at_a_switching_point() {
    let t0 = Instant::now();
    let mut book = LayerBook::default();
    let mut publisher = SvcPublisher::new();
    let mut f = Forwarder::new();
    f.set_max_layer(0);
    // A second of pictures measures the frame rates: 7.5 + 7.5 + 15 fps.
    let (key, _) = publisher.picture(true);
    deliver(&mut f, &mut book, &key, t0);
    for _ in 0..29 {
        let (p, t) = publisher.picture(false);
        book.frame_started(0, t);
        deliver(&mut f, &mut book, &p, t0);
    }
    book.frame_started(0, 0);
    book.close_rate_window(Duration::from_secs(1));

    f.set_max_fps(Some(15));
    let mut temporal_sent = [0; 3];
    let mut last_seq = None;
    for _ in 0..8 {
        let (p, t) = publisher.picture(false);
        let got = deliver(&mut f, &mut book, &p, t0);
        if !got.is_empty() {
            temporal_sent[t as usize] += 1;
            for (_, seq, _) in &got {
                assert!(last_seq.is_none_or(|l| *seq == l + 1), "contiguous");
                last_seq = Some(*seq);
            }
        }
    }
    assert_eq!(temporal_sent, [2, 2, 0], "15 fps: layers 0 and 1");

    f.set_max_fps(None);
    let (p, t) = publisher.picture(false);
    assert_eq!(t, 1);
    assert_eq!(deliver(&mut f, &mut book, &p, t0).len(), 2);
    let (p, t) = publisher.picture(false);
    assert_eq!(t, 2, "a layer-2 picture marked as a switching point");
    assert_eq!(
        deliver(&mut f, &mut book, &p, t0).len(),
        2,
        "taken up at once"
    );
}

#[test]
fn a_frame_opens_only_the_temporal_layers_its_descriptor_says() {
    use super::select::{Admit, LayerSelection, LayeredPacket};
    // L1T3 as a dependency descriptor marks it: a T0 frame opens every
    // layer, a T1 frame only T2 ("-DS"), a T2 frame none.
    let frame = |n: u32, temporal: u8, switch_up: u8| LayeredPacket {
        info: LayerInfo {
            spatial: 0,
            temporal,
            frame_start: true,
            frame_end: true,
            switch_up,
        },
        timestamp: n * 3000,
        marker: true,
        key: n == 0,
    };
    let mut s = LayerSelection::default();
    // Asked for up to T1 (half the frame rate) from the key frame on.
    assert!(matches!(
        s.admit(frame(0, 0, 0b111), 0, 1),
        Admit::Forward { .. }
    ));
    assert_eq!(s.admit(frame(1, 2, 0), 0, 1), Admit::Drop);
    assert!(matches!(
        s.admit(frame(2, 1, 0b100), 0, 1),
        Admit::Forward { .. }
    ));
    // Down to T0: the next T1 frame is left out.
    assert_eq!(s.admit(frame(3, 2, 0), 0, 0), Admit::Drop);
    assert_eq!(
        s.admit(frame(4, 0, 0b111), 0, 0),
        Admit::Forward { marker: true }
    );
    assert_eq!(s.admit(frame(5, 1, 0b100), 0, 0), Admit::Drop);
    // Up to T1 again: a T1 frame opens only T2, so it waits for a T0 frame.
    assert_eq!(s.admit(frame(6, 1, 0b100), 0, 1), Admit::Drop);
    assert_eq!(s.admit(frame(7, 2, 0), 0, 1), Admit::Drop);
    assert!(matches!(
        s.admit(frame(8, 0, 0b111), 0, 1),
        Admit::Forward { .. }
    ));
    assert!(matches!(
        s.admit(frame(9, 1, 0b100), 0, 1),
        Admit::Forward { .. }
    ));
    // Everything: the T1 frame opens T2.
    assert_eq!(s.admit(frame(10, 2, 0), 0, ALL_TEMPORAL), Admit::Drop);
    assert!(matches!(
        s.admit(frame(11, 1, 0b100), 0, ALL_TEMPORAL),
        Admit::Forward { .. }
    ));
    assert!(matches!(
        s.admit(frame(12, 2, 0), 0, ALL_TEMPORAL),
        Admit::Forward { .. }
    ));
}
