//! The SDP rewrites of `moim_sfu::sdp_munge` on arbitrary text, with rules
//! for the mids the text names. The SDP they rewrite is str0m's, but it
//! carries what the client sent (mids, formats, attributes).
#![no_main]

use std::collections::{BTreeSet, HashMap};

use libfuzzer_sys::fuzz_target;
use moim_sfu::codec::VideoCodec;
use moim_sfu::sdp_munge::{
    first_formats, keep_formats, put_codec_first, rewrite_answer, BoundSection,
};

/// The text as the munging functions write it back: CRLF line ends, no
/// empty lines.
fn normalized(sdp: &str) -> String {
    let mut out = String::new();
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()) {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

fn tokens(line: &str) -> BTreeSet<&str> {
    line.split(' ').collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let sdp = String::from_utf8_lossy(rest);
    let sdp = sdp.as_ref();
    let mids: Vec<String> = sdp
        .lines()
        .filter_map(|l| l.strip_prefix("a=mid:"))
        .map(|m| m.trim().to_string())
        .collect();
    // One function per input (the low two bits), so each run is cheap; the
    // other bits shape its rules.
    let pick = usize::from(sel >> 2);
    match sel % 4 {
        0 => {
            let norm = normalized(sdp);
            // No rules: the text comes back unchanged.
            assert_eq!(put_codec_first(sdp, &HashMap::new()).0, norm);
            let codecs = [
                None,
                Some(VideoCodec::Vp8),
                Some(VideoCodec::H264),
                Some(VideoCodec::Vp9),
                Some(VideoCodec::Av1),
                Some(VideoCodec::Other),
            ];
            let wanted: HashMap<String, Option<VideoCodec>> = mids
                .iter()
                .enumerate()
                .map(|(i, m)| (m.clone(), codecs[(pick + i) % codecs.len()]))
                .collect();
            let (out, leading) = put_codec_first(sdp, &wanted);
            // Only the order of formats changes: same lines, same words on each.
            assert_eq!(out.lines().count(), norm.lines().count());
            for (a, b) in out.lines().zip(norm.lines()) {
                assert_eq!(tokens(a), tokens(b), "{b:?} became {a:?}");
            }
            for mid in leading.keys() {
                assert!(wanted.contains_key(mid));
            }
        }
        1 => {
            assert_eq!(rewrite_answer(sdp, &HashMap::new(), &[]), normalized(sdp));
            let bound: HashMap<String, BoundSection<'_>> = mids
                .iter()
                .enumerate()
                .filter(|(i, _)| pick.wrapping_add(*i) % 2 == 0)
                .map(|(_, m)| {
                    (m.clone(), BoundSection { participant_sid: "PA_x", track_sid: "TR_y" })
                })
                .collect();
            let spare: Vec<String> =
                mids.iter().filter(|m| !bound.contains_key(*m)).cloned().collect();
            let _ = rewrite_answer(sdp, &bound, &spare);
        }
        2 => {
            let norm = normalized(sdp);
            assert_eq!(keep_formats(sdp, &HashMap::new()), norm);
            // Keep the formats of the input whose number has the chosen bit.
            let pts: Vec<u8> = sdp
                .lines()
                .filter_map(|l| l.strip_prefix("m="))
                .flat_map(|m| m.split(' ').skip(3))
                .filter_map(|f| f.parse().ok())
                .filter(|pt: &u8| pt & (1 << (pick % 8)) != 0)
                .collect();
            let keep: HashMap<String, Vec<u8>> =
                mids.iter().map(|m| (m.clone(), pts.clone())).collect();
            assert!(keep_formats(sdp, &keep).lines().count() <= norm.lines().count());
        }
        _ => {
            for (mid, _pt) in first_formats(sdp) {
                assert!(mids.contains(&mid));
            }
        }
    }
});
