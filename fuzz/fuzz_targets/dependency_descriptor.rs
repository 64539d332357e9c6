//! The AV1 dependency descriptor reader (`moim_sfu::codec::dd`), fed the
//! extension values of one RTP stream in order: each value is led by a
//! length byte, and the structure from the latest value that carried one
//! applies to the values after it, as in the SFU.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moim_sfu::codec::dd::{self, Descriptor, Dti, Structure};

fuzz_target!(|data: &[u8]| {
    let mut latest: Option<Structure> = None;
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let (value, tail) = tail.split_at(usize::from(len).min(tail.len()));
        rest = tail;
        let Ok(d) = dd::parse(value, latest.as_ref()) else {
            continue;
        };
        check(&d, latest.as_ref());
        // Zero padding after a value changes nothing (after 3 bytes, it
        // reads as extended fields with no flag set).
        let padded = [value, &[0]].concat();
        assert_eq!(dd::parse(&padded, latest.as_ref()).as_ref(), Ok(&d));
        if let Some(s) = d.structure {
            latest = Some(s);
        }
    }
});

fn check(d: &Descriptor, latest: Option<&Structure>) {
    if let Some(s) = &d.structure {
        check_structure(s);
        assert!(d.active_decode_targets.is_some(), "a structure sets them");
    }
    let s = d
        .structure
        .as_ref()
        .or(latest)
        .expect("read only against a structure");
    let index = usize::from(d.template_id.wrapping_sub(s.template_id_offset) % 64);
    let t = s.templates.get(index).expect("the frame's template exists");
    assert_eq!((d.spatial_id, d.temporal_id), (t.spatial_id, t.temporal_id));
    assert_eq!(d.dtis.len(), s.decode_targets);
    assert_eq!(d.chain_diffs.len(), s.chains);
    assert!(d.fdiffs.len() <= dd::MAX_FDIFFS);
    assert!(d.fdiffs.iter().all(|f| (1..=4096).contains(f)));
    if let Some(mask) = d.active_decode_targets {
        assert!(s.decode_targets >= 32 || mask >> s.decode_targets == 0);
    }
    for dt in 0..=dd::MAX_DECODE_TARGETS {
        assert_eq!(d.is_switch_for(dt), d.dtis.get(dt) == Some(&Dti::Switch));
    }
}

fn check_structure(s: &Structure) {
    assert!((1..=dd::MAX_DECODE_TARGETS).contains(&s.decode_targets));
    assert!(s.chains <= s.decode_targets);
    assert!((1..=dd::MAX_TEMPLATES).contains(&s.templates.len()));
    for (a, b) in s.templates.iter().zip(s.templates.iter().skip(1)) {
        let (from, to) = ((a.spatial_id, a.temporal_id), (b.spatial_id, b.temporal_id));
        assert!(
            to == from || to == (from.0, from.1 + 1) || to == (from.0 + 1, 0),
            "templates step through the layers: {from:?} then {to:?}"
        );
    }
    for t in &s.templates {
        assert!(t.spatial_id < dd::MAX_SPATIAL_LAYERS && t.temporal_id < dd::MAX_TEMPORAL_LAYERS);
        assert_eq!(t.dtis.len(), s.decode_targets);
        assert_eq!(t.chain_diffs.len(), s.chains);
        assert!(t.chain_diffs.iter().all(|&c| c <= 15));
        assert!(t.fdiffs.len() <= dd::MAX_FDIFFS);
        assert!(t.fdiffs.iter().all(|f| (1..=16).contains(f)));
    }
    let want = if s.chains > 0 { s.decode_targets } else { 0 };
    assert_eq!(s.decode_target_protected_by.len(), want);
    assert!(s
        .decode_target_protected_by
        .iter()
        .all(|&c| usize::from(c) < s.chains));
    assert_eq!(s.decode_target_layers.len(), s.decode_targets);
    let (spatial, temporal) = s.layer_count();
    assert!(s
        .decode_target_layers
        .iter()
        .all(|&(sl, tl)| sl < spatial && tl < temporal));
    assert!(s.resolutions.is_empty() || s.resolutions.len() == usize::from(spatial));
}
