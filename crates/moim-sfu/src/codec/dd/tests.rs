use super::*;

/// Builds extension values bit by bit, the way a sender writes them.
#[derive(Default)]
struct W {
    out: Vec<u8>,
    bits: usize,
}

impl W {
    fn put(&mut self, n: usize, v: u32) -> &mut Self {
        for i in (0..n).rev() {
            if self.bits.is_multiple_of(8) {
                self.out.push(0);
            }
            if (v >> i) & 1 == 1 {
                if let Some(b) = self.out.last_mut() {
                    *b |= 0x80 >> (self.bits % 8);
                }
            }
            self.bits += 1;
        }
        self
    }

    fn flag(&mut self, b: bool) -> &mut Self {
        self.put(1, b.into())
    }

    /// `write_ns` of the spec.
    fn ns(&mut self, n: u32, v: u32) -> &mut Self {
        let w = (32 - n.leading_zeros()) as usize;
        let m = (1 << w) - n;
        if v < m {
            self.put(w - 1, v)
        } else {
            self.put(w, v + m)
        }
    }

    fn mandatory(&mut self, sof: bool, eof: bool, template_id: u8, frame: u16) -> &mut Self {
        self.flag(sof)
            .flag(eof)
            .put(6, template_id.into())
            .put(16, frame.into())
    }

    /// Structure present, active decode targets present, custom dtis,
    /// custom fdiffs, custom chains.
    fn flags(&mut self, flags: [bool; 5]) -> &mut Self {
        for f in flags {
            self.flag(f);
        }
        self
    }

    fn dtis(&mut self, dtis: &[Dti]) -> &mut Self {
        for d in dtis {
            let v = match d {
                Dti::NotPresent => 0,
                Dti::Discardable => 1,
                Dti::Switch => 2,
                Dti::Required => 3,
            };
            self.put(2, v);
        }
        self
    }

    /// A frame's custom fdiffs, each in the fewest 4-bit units.
    fn fdiffs(&mut self, fdiffs: &[u16]) -> &mut Self {
        for &f in fdiffs {
            let size = match f {
                1..=16 => 1,
                17..=256 => 2,
                _ => 3,
            };
            self.put(2, size).put(4 * size as usize, u32::from(f) - 1);
        }
        self.put(2, 0)
    }

    /// Writes `s` (its `decode_target_layers` are derived, not written).
    fn structure(&mut self, s: &Structure) -> &mut Self {
        self.put(6, s.template_id_offset.into())
            .put(5, s.decode_targets as u32 - 1);
        for (i, t) in s.templates.iter().enumerate() {
            let idc = match s.templates.get(i + 1) {
                None => 3,
                Some(n) if (n.spatial_id, n.temporal_id) == (t.spatial_id, t.temporal_id) => 0,
                Some(n) if n.spatial_id == t.spatial_id => 1,
                Some(_) => 2,
            };
            self.put(2, idc);
        }
        for t in &s.templates {
            self.dtis(&t.dtis);
        }
        for t in &s.templates {
            for &f in &t.fdiffs {
                self.flag(true).put(4, u32::from(f) - 1);
            }
            self.flag(false);
        }
        self.ns(s.decode_targets as u32 + 1, s.chains as u32);
        if s.chains > 0 {
            for &p in &s.decode_target_protected_by {
                self.ns(s.chains as u32, p.into());
            }
            for t in &s.templates {
                for &c in &t.chain_diffs {
                    self.put(4, c.into());
                }
            }
        }
        self.flag(!s.resolutions.is_empty());
        for &(w, h) in &s.resolutions {
            self.put(16, w - 1).put(16, h - 1);
        }
        self
    }

    fn done(&self) -> Vec<u8> {
        self.out.clone()
    }
}

/// DTIs in the spec's symbols: `-` not present, D, S, R.
fn dtis(s: &str) -> Vec<Dti> {
    s.chars()
        .map(|c| match c {
            '-' => Dti::NotPresent,
            'D' => Dti::Discardable,
            'S' => Dti::Switch,
            _ => Dti::Required,
        })
        .collect()
}

fn tpl(spatial_id: u8, temporal_id: u8, d: &str, fdiffs: &[u16], chains: &[u8]) -> Template {
    Template {
        spatial_id,
        temporal_id,
        dtis: dtis(d),
        fdiffs: fdiffs.to_vec(),
        chain_diffs: chains.to_vec(),
    }
}

/// One spatial layer, three temporal ones (VP8/AV1 L1T3), one chain. The
/// offset makes template ids wrap past 63.
fn l1t3() -> Structure {
    Structure {
        template_id_offset: 62,
        decode_targets: 3,
        chains: 1,
        templates: vec![
            tpl(0, 0, "SSS", &[], &[0]),
            tpl(0, 0, "SSS", &[4], &[4]),
            tpl(0, 1, "-DS", &[2], &[2]),
            tpl(0, 2, "--D", &[1], &[1]),
            tpl(0, 2, "--D", &[1], &[3]),
        ],
        decode_target_protected_by: vec![0, 0, 0],
        decode_target_layers: vec![(0, 0), (0, 1), (0, 2)],
        resolutions: vec![(640, 360)],
    }
}

/// Three spatial layers of three temporal ones, the spatial layers
/// depending on each other only at the key picture (L3T3_KEY), one chain
/// per spatial layer.
fn l3t3_key() -> Structure {
    Structure {
        template_id_offset: 10,
        decode_targets: 9,
        chains: 3,
        templates: vec![
            tpl(0, 0, "SSSSSSSSS", &[], &[0, 0, 0]),
            tpl(0, 0, "SSS------", &[4], &[4, 15, 15]),
            tpl(0, 1, "-DS------", &[2], &[2, 13, 13]),
            tpl(0, 2, "--D------", &[1], &[1, 12, 12]),
            tpl(1, 0, "---SSSSSS", &[1], &[1, 0, 0]),
            tpl(1, 0, "---SSS---", &[4], &[5, 4, 15]),
            tpl(1, 1, "----DS---", &[2], &[3, 2, 13]),
            tpl(1, 2, "-----D---", &[1], &[2, 1, 12]),
            tpl(2, 0, "------SSS", &[1], &[2, 1, 0]),
            tpl(2, 0, "------SSS", &[4], &[6, 5, 4]),
            tpl(2, 1, "-------DS", &[2], &[4, 3, 2]),
            tpl(2, 2, "--------D", &[1], &[3, 2, 1]),
        ],
        decode_target_protected_by: vec![0, 0, 0, 1, 1, 1, 2, 2, 2],
        decode_target_layers: (0..9).map(|i| (i / 3, i % 3)).collect(),
        resolutions: vec![(320, 180), (640, 360), (1280, 720)],
    }
}

/// A key frame's first packet: the structure and nothing custom.
fn with_structure(s: &Structure, template_id: u8, frame: u16) -> Vec<u8> {
    W::default()
        .mandatory(true, false, template_id, frame)
        .flags([true, false, false, false, false])
        .structure(s)
        .done()
}

#[test]
fn a_mandatory_only_value_takes_its_template_from_the_latest_structure() {
    let s = l1t3();
    // Template index 3 is id (62 + 3) mod 64 = 1.
    let v = W::default().mandatory(false, true, 1, 0xabcd).done();
    assert_eq!(v.len(), 3);
    let d = parse(&v, Some(&s)).expect("valid");
    assert_eq!(
        d,
        Descriptor {
            start_of_frame: false,
            end_of_frame: true,
            template_id: 1,
            frame_number: 0xabcd,
            structure: None,
            active_decode_targets: None,
            spatial_id: 0,
            temporal_id: 2,
            dtis: Inline::from_slice(&dtis("--D")).expect("3 fit"),
            fdiffs: Inline::from_slice(&[1]).expect("1 fits"),
            chain_diffs: Inline::from_slice(&[1]).expect("1 fits"),
        }
    );
    // Zero padding after it changes nothing (the extended flags read 0).
    let padded = [&v[..], &[0, 0]].concat();
    assert_eq!(parse(&padded, Some(&s)), Ok(d));
}

#[test]
fn an_l1t3_structure_is_read_back_whole() {
    let s = l1t3();
    let d = parse(&with_structure(&s, 62, 7), None).expect("valid");
    assert_eq!(d.structure.as_ref(), Some(&s));
    assert!(d.start_of_frame && !d.end_of_frame);
    assert_eq!((d.frame_number, d.spatial_id, d.temporal_id), (7, 0, 0));
    // A structure without a bitmask makes every decode target active.
    assert_eq!(d.active_decode_targets, Some(0b111));
    assert_eq!(s.layer_count(), (1, 3));
    assert!((0..3).all(|dt| d.is_switch_for(dt)));
    assert!(!d.is_switch_for(3));
    // Its own structure, not the stale one passed in, applies.
    let stale = l3t3_key();
    assert_eq!(parse(&with_structure(&s, 62, 7), Some(&stale)), Ok(d));
}

#[test]
fn an_l3t3_key_structure_gives_layers_chains_and_resolutions() {
    let s = l3t3_key();
    let d = parse(&with_structure(&s, 10, 100), None).expect("valid");
    let got = d.structure.expect("attached");
    assert_eq!(got, s);
    assert_eq!(got.layer_count(), (3, 3));
    assert_eq!(d.active_decode_targets, Some(0x1ff));

    // Template index 10: spatial 2, temporal 1.
    let v = W::default().mandatory(true, true, 20, 105).done();
    let d = parse(&v, Some(&got)).expect("valid");
    assert_eq!((d.spatial_id, d.temporal_id), (2, 1));
    assert_eq!(d.chain_diffs, [4, 3, 2]);
    assert!(d.is_switch_for(8));
    assert!(!d.is_switch_for(7), "discardable is no switch point");
    assert!(!d.is_switch_for(0), "not present is no switch point");

    // Id 9 is index 63: before the offset, not in the structure.
    let v = W::default().mandatory(true, true, 9, 106).done();
    assert_eq!(parse(&v, Some(&got)), Err(DdError::UnknownTemplate(9)));
}

#[test]
fn custom_dtis_fdiffs_and_chains_override_the_template() {
    let s = l1t3();
    // Boundaries of the 4, 8 and 12 bit fdiff sizes.
    let fdiffs = [1, 16, 17, 256, 257, 4096];
    let v = W::default()
        .mandatory(true, true, 0, 500)
        .flags([false, false, true, true, true])
        .dtis(&dtis("RRR"))
        .fdiffs(&fdiffs)
        .put(8, 200)
        .done();
    let d = parse(&v, Some(&s)).expect("valid");
    // Template index 2 still gives the layers.
    assert_eq!((d.spatial_id, d.temporal_id), (0, 1));
    assert_eq!(d.dtis, dtis("RRR"));
    assert_eq!(d.fdiffs, fdiffs);
    assert_eq!(d.chain_diffs, [200]);
    assert_eq!(d.active_decode_targets, None);
    assert!(!d.is_switch_for(0));

    // Only the fdiffs custom: the rest from the template.
    let v = W::default()
        .mandatory(true, true, 0, 501)
        .flags([false, false, false, true, false])
        .fdiffs(&[])
        .done();
    let d = parse(&v, Some(&s)).expect("valid");
    assert_eq!(d.dtis, dtis("-DS"));
    assert!(d.fdiffs.is_empty());
    assert_eq!(d.chain_diffs, [2]);
}

#[test]
fn active_decode_targets_come_from_the_bitmask_or_the_structure() {
    let s = l1t3();
    let v = W::default()
        .mandatory(true, true, 62, 1)
        .flags([false, true, false, false, false])
        .put(3, 0b011)
        .done();
    let d = parse(&v, Some(&s)).expect("valid");
    assert_eq!(d.active_decode_targets, Some(0b011));

    // With a structure the bitmask, when present, follows it and wins.
    let v = W::default()
        .mandatory(true, true, 62, 1)
        .flags([true, true, false, false, false])
        .structure(&s)
        .put(3, 0b001)
        .done();
    let d = parse(&v, None).expect("valid");
    assert_eq!(d.active_decode_targets, Some(0b001));

    // 32 decode targets: the whole mask, no overflow.
    let wide = Structure {
        template_id_offset: 0,
        decode_targets: 32,
        chains: 0,
        templates: vec![tpl(0, 0, &"S".repeat(32), &[], &[])],
        decode_target_protected_by: vec![],
        decode_target_layers: vec![(0, 0); 32],
        resolutions: vec![],
    };
    let d = parse(&with_structure(&wide, 0, 1), None).expect("valid");
    assert_eq!(d.structure.as_ref(), Some(&wide));
    assert_eq!(d.active_decode_targets, Some(u32::MAX));
    let v = W::default()
        .mandatory(true, true, 0, 2)
        .flags([false, true, false, false, false])
        .put(32, 0x8000_0001)
        .done();
    let d = parse(&v, Some(&wide)).expect("valid");
    assert_eq!(d.active_decode_targets, Some(0x8000_0001));
}

#[test]
fn every_cut_of_a_structured_value_is_an_error() {
    let full = with_structure(&l3t3_key(), 10, 100);
    assert!(parse(&full, None).is_ok());
    for len in 0..full.len() {
        let want = if len == 3 {
            DdError::NoStructure
        } else {
            DdError::Truncated
        };
        assert_eq!(parse(&full[..len], None), Err(want), "cut at {len}");
    }
    let captured = hex(CAPTURED_L3T3[0]);
    for len in 4..captured.len() {
        assert_eq!(parse(&captured[..len], None), Err(DdError::Truncated));
    }
}

#[test]
fn a_template_id_needs_a_structure() {
    let v = W::default().mandatory(true, true, 0, 1).done();
    assert_eq!(parse(&v, None), Err(DdError::NoStructure));
    // A bitmask needs the count of decode targets, from a structure too.
    let v = W::default()
        .mandatory(true, true, 0, 1)
        .flags([false, true, false, false, false])
        .put(3, 7)
        .done();
    assert_eq!(parse(&v, None), Err(DdError::NoStructure));
    // L1T3 has ids 62, 63, 0, 1, 2; 3 is past its end.
    let v = W::default().mandatory(true, true, 3, 1).done();
    assert_eq!(parse(&v, Some(&l1t3())), Err(DdError::UnknownTemplate(3)));
    assert!(!DdError::UnknownTemplate(3).to_string().is_empty());
}

#[test]
fn ns_reads_the_spec_table_and_what_write_ns_writes() {
    // n = 5: 00, 01, 10, 110, 111.
    for (code, bits, want) in [
        (0b00, 2, 0),
        (0b01, 2, 1),
        (0b10, 2, 2),
        (0b110, 3, 3),
        (0b111, 3, 4),
    ] {
        let v = W::default().put(bits, code).done();
        let mut r = Bits { buf: &v, pos: 0 };
        assert_eq!(r.ns(5), Ok(want));
        assert_eq!(r.pos, bits);
    }
    for n in 1..=33u32 {
        for v in 0..n {
            let buf = W::default().ns(n, v).put(8, 0xff).done();
            let mut r = Bits { buf: &buf, pos: 0 };
            assert_eq!(r.ns(n as u8), Ok(v), "ns({n}) of {v}");
        }
    }
    // ns(1) takes no bits at all.
    assert_eq!(Bits { buf: &[], pos: 0 }.ns(1), Ok(0));
}

#[test]
fn hostile_structures_are_refused() {
    let start = || {
        let mut w = W::default();
        w.mandatory(true, true, 0, 1)
            .flags([true, false, false, false, false])
            .put(6, 0)
            .put(5, 0);
        w
    };
    let pad = |w: &mut W| {
        // Room for whatever the layers imply: zeros read as nothing custom.
        for _ in 0..16 {
            w.put(32, 0);
        }
        w.done()
    };

    // 64 templates are the most; a 65th is refused.
    let mut w = start();
    for _ in 0..63 {
        w.put(2, 0);
    }
    w.put(2, 3);
    let d = parse(&pad(&mut w), None).expect("64 templates");
    assert_eq!(d.structure.map(|s| s.templates.len()), Some(64));
    let mut w = start();
    for _ in 0..64 {
        w.put(2, 0);
    }
    assert_eq!(parse(&pad(&mut w), None), Err(DdError::TooManyTemplates));

    // Four spatial layers, eight temporal ones.
    let layers = |idc: u32, steps: usize| {
        let mut w = start();
        for _ in 0..steps {
            w.put(2, idc);
        }
        w.put(2, 3);
        parse(&pad(&mut w), None).map(|d| d.structure.map(|s| s.layer_count()))
    };
    assert_eq!(layers(2, 3), Ok(Some((4, 1))));
    assert_eq!(layers(2, 4), Err(DdError::TooManyLayers));
    assert_eq!(layers(1, 7), Ok(Some((1, 8))));
    assert_eq!(layers(1, 8), Err(DdError::TooManyLayers));

    // Fifteen fdiffs for a template, and for a frame.
    let template_fdiffs = |count: usize| {
        let mut w = start();
        w.put(2, 3).put(2, 2);
        for _ in 0..count {
            w.flag(true).put(4, 0);
        }
        w.flag(false).ns(2, 0).flag(false);
        parse(&w.done(), None).map(|d| d.fdiffs.len())
    };
    assert_eq!(template_fdiffs(15), Ok(15));
    assert_eq!(template_fdiffs(16), Err(DdError::TooManyFdiffs));
    let frame_fdiffs = |count: usize| {
        let v = W::default()
            .mandatory(true, true, 62, 1)
            .flags([false, false, false, true, false])
            .fdiffs(&vec![3; count])
            .done();
        parse(&v, Some(&l1t3())).map(|d| d.fdiffs.len())
    };
    assert_eq!(frame_fdiffs(15), Ok(15));
    assert_eq!(frame_fdiffs(16), Err(DdError::TooManyFdiffs));
}

/// Values Chromium sent for AV1 L3T3, captured by LiveKit
/// (`pkg/sfu/rtpextension/dependencydescriptor`, its unmarshal test).
const CAPTURED_L3T3: [&str; 6] = [
    "c1017280081485214eafffaaaa863cf0430c10c302afc0aaa0063c00430010c002a000a80006000040001d954926e082b04a0941b820ac1282503157f974000ca864330e222222eca8655304224230eca877530077004200ef008601df010d",
    "86017340fc",
    "c3017540fc",
    "860173",
    "8b0174",
    "0b0174",
];

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .expect("hex")
        })
        .collect()
}

#[test]
fn captured_chromium_l3t3_values_decode() {
    let v: Vec<Vec<u8>> = CAPTURED_L3T3.iter().map(|s| hex(s)).collect();
    let key = parse(&v[0], None).expect("key frame");
    let s = key.structure.clone().expect("structure");
    assert!(key.start_of_frame && key.end_of_frame);
    assert_eq!((key.template_id, key.frame_number), (1, 0x172));
    assert_eq!((s.template_id_offset, s.decode_targets), (0, 9));
    assert_eq!(s.templates.len(), 15);
    assert_eq!(s.layer_count(), (3, 3));
    assert_eq!(s.templates[0].dtis, dtis("SSSRRRRRR"));
    assert_eq!(s.templates[1].dtis, dtis("SSSSSSSSS"));
    // Spatial layer 1 at temporal 0 refers to its own layer 4 pictures
    // (12 frames) back and to the picture's lower layer, 1 frame back.
    assert_eq!(s.templates[5].dtis, dtis("---SSSRRR"));
    assert_eq!(s.templates[5].fdiffs, [12, 1]);
    assert_eq!(s.templates[14].chain_diffs, [11, 10, 9]);
    assert_eq!(s.chains, 3);
    assert_eq!(s.decode_target_protected_by, [0, 0, 0, 1, 1, 1, 2, 2, 2]);
    let layers: Vec<(u8, u8)> = (0..9).map(|i| (i / 3, i % 3)).collect();
    assert_eq!(s.decode_target_layers, layers);
    assert_eq!(s.resolutions, [(120, 67), (240, 135), (480, 270)]);
    assert_eq!(key.active_decode_targets, Some(0x1ff));
    assert_eq!((key.spatial_id, key.temporal_id), (0, 0));
    assert!((0..9).all(|dt| key.is_switch_for(dt)), "a key frame");

    // Spatial layer 1's first packet, with the top layer switched off.
    let d = parse(&v[1], Some(&s)).expect("valid");
    assert!(d.start_of_frame && !d.end_of_frame);
    assert_eq!((d.template_id, d.frame_number), (6, 0x173));
    assert_eq!((d.spatial_id, d.temporal_id), (1, 0));
    assert_eq!(d.active_decode_targets, Some(0x3f));

    let d = parse(&v[2], Some(&s)).expect("valid");
    assert_eq!((d.frame_number, d.spatial_id, d.temporal_id), (0x175, 0, 2));

    // The 3-byte form: no word on active decode targets.
    let d = parse(&v[3], Some(&s)).expect("valid");
    assert_eq!((d.template_id, d.active_decode_targets), (6, None));
    for (bytes, sof) in [(&v[4], true), (&v[5], false)] {
        let d = parse(bytes, Some(&s)).expect("valid");
        assert_eq!(d.start_of_frame, sof);
        assert_eq!((d.frame_number, d.spatial_id, d.temporal_id), (0x174, 2, 0));
    }
}

#[test]
fn no_input_panics() {
    let structures = [None, Some(l1t3()), Some(l3t3_key())];
    let check = |buf: &[u8]| {
        for latest in &structures {
            if let Ok(d) = parse(buf, latest.as_ref()) {
                let s = d
                    .structure
                    .as_ref()
                    .or(latest.as_ref())
                    .expect("a structure");
                assert_eq!(d.dtis.len(), s.decode_targets);
                assert_eq!(d.chain_diffs.len(), s.chains);
                assert!(d.fdiffs.len() <= MAX_FDIFFS);
            }
        }
    };
    // Every single bit flipped in a structured value.
    let full = with_structure(&l3t3_key(), 10, 100);
    for bit in 0..full.len() * 8 {
        let mut v = full.clone();
        v[bit / 8] ^= 0x80 >> (bit % 8);
        check(&v);
    }
    // Random values of every length up to 64 bytes.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..20_000 {
        let len = i % 65;
        let v: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        check(&v);
    }
}

#[test]
fn a_stream_reader_takes_layers_and_keyframes_from_the_descriptor() {
    use crate::codec::{LayerInfo, StreamReader, VideoCodec};
    let mut reader = StreamReader::default();
    let s = l1t3();
    // Before any structure a descriptor says nothing: AV1 passes as before.
    let early = reader.read(VideoCodec::Av1, &[0], Some(&with_frame(1, 7)));
    assert!(early.keyframe_start && !early.needs_keyframe && early.layers.is_none());

    // The key frame brings the structure: a start, open to every layer.
    let key = reader.read(VideoCodec::Av1, &[0], Some(&with_structure(&s, 62, 8)));
    assert!(key.keyframe_start && key.needs_keyframe);
    let layer = |temporal, switch_up| LayerInfo {
        spatial: 0,
        temporal,
        frame_start: true,
        frame_end: false,
        switch_up,
    };
    assert_eq!(key.layers, Some(layer(0, 0b111)));
    // A T2 frame opens nothing; a T1 frame opens T2 ("-DS"); a later T0
    // frame opens both.
    for (template_id, frame, want) in [
        (1, 9, layer(2, 0)),
        (0, 10, layer(1, 0b100)),
        (63, 12, layer(0, 0b111)),
    ] {
        let v = reader.read(VideoCodec::Av1, &[0], Some(&with_frame(template_id, frame)));
        assert!(!v.keyframe_start, "frame {frame} refers to others");
        assert_eq!(v.layers, Some(want), "frame {frame}");
    }
    // VP9 is read from its payload descriptor, whatever the extension says.
    let vp9 = reader.read(
        VideoCodec::Vp9,
        &[0xa8, 0x81, 0x02, 0x53, 0x05],
        Some(&with_frame(1, 13)),
    );
    assert_eq!(vp9.layers.map(|l| (l.spatial, l.temporal)), Some((1, 2)));
}

/// A frame's first packet naming a template of the latest structure.
fn with_frame(template_id: u8, frame: u16) -> Vec<u8> {
    W::default()
        .mandatory(true, false, template_id, frame)
        .done()
}
