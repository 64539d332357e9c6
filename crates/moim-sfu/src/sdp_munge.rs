//! Rewrites of str0m's SDP where LiveKit clients expect something else.
//!
//! **The codec a publisher asked for.** livekit-client names it in
//! `AddTrackRequest.simulcast_codecs` but, because moim sends
//! `JoinResponse.enabled_publish_codecs`, leaves its own offer in the
//! browser's order (VP8 first) and sends whichever codec the answer lists
//! first, as RFC 3264 §6.1 lets an answerer choose. str0m lists codecs in
//! its configured order for every section, so [`put_codec_first`] moves the
//! chosen one to the front of that track's section, as LiveKit's server does
//! (`configureReceiverCodecs`).
//!
//! **Answers in the single-PeerConnection protocol.**
//! In `/rtc/v1` the client always offers, with spare `recvonly` sections for
//! the tracks it may receive. str0m answers those as `sendonly` with a random
//! msid. livekit-client finds the sender of a received track by the msid's
//! stream id (`PA_…|TR_…`), so moim writes its own msid into each section it
//! bound to a track, and marks the spare ones `inactive`.
//!
//! **Offers to subscribers.** str0m offers every codec it is configured for
//! on every section. A send-only section must offer what moim will send
//! (RFC 3264 §5.1): the published track's codec and its companions (RTX,
//! RED). A receiver may answer with only the first format (§6.1), and
//! GStreamer's `webrtcbin` does, so anything else first means no media.

use std::collections::HashMap;

use crate::codec::VideoCodec;

/// For each listed section (by mid) whose answer carries the wanted codec,
/// moves that codec's payload types, each followed by its RTX, to the front
/// of the `m=` line. Returns the rewritten SDP and, for every listed
/// section, the video codec now listed first: the one the client will send.
/// A section whose answer lacks the wanted codec is left as it is.
pub fn put_codec_first(
    sdp: &str,
    wanted: &HashMap<String, Option<VideoCodec>>,
) -> (String, HashMap<String, VideoCodec>) {
    let mut out = String::with_capacity(sdp.len());
    let mut leading = HashMap::new();
    for section in split_sections(sdp) {
        let mid = section
            .iter()
            .find_map(|l| l.strip_prefix("a=mid:"))
            .map(str::trim);
        let Some((mid, want)) = mid.and_then(|m| wanted.get_key_value(m)) else {
            for line in &section {
                push_line(&mut out, line);
            }
            continue;
        };
        let formats = Formats::of(&section);
        let order = want
            .and_then(VideoCodec::sdp_name)
            .and_then(|name| formats.with_codec_first(name));
        if let Some(lead) = order
            .as_deref()
            .unwrap_or(&formats.pts)
            .iter()
            .find_map(|pt| formats.media_codec(pt))
        {
            leading.insert(mid.clone(), lead);
        }
        for line in &section {
            match (&order, formats.m_line_prefix(line)) {
                (Some(order), Some(prefix)) => {
                    push_line(&mut out, &format!("{prefix} {}", order.join(" ")))
                }
                _ => push_line(&mut out, line),
            }
        }
    }
    (out, leading)
}

/// The payload types of one section and what they name.
struct Formats<'a> {
    pts: Vec<&'a str>,
    /// Payload type → encoding name from `a=rtpmap`.
    names: HashMap<&'a str, &'a str>,
    /// RTX payload type → the payload type it repairs (`a=fmtp:… apt=`).
    repairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Formats<'a> {
    fn of(section: &[&'a str]) -> Self {
        let pts = section
            .first()
            .filter(|l| l.starts_with("m="))
            .map(|m| m.split(' ').skip(3).collect())
            .unwrap_or_default();
        let mut names = HashMap::new();
        let mut repairs = Vec::new();
        for line in section {
            if let Some((pt, rest)) = line
                .strip_prefix("a=rtpmap:")
                .and_then(|r| r.split_once(' '))
            {
                names.insert(pt, rest.split('/').next().unwrap_or(""));
            }
            if let Some((pt, params)) = line.strip_prefix("a=fmtp:").and_then(|r| r.split_once(' '))
            {
                let apt = params
                    .split(';')
                    .find_map(|kv| kv.trim().strip_prefix("apt="));
                if let Some(apt) = apt {
                    repairs.push((pt, apt));
                }
            }
        }
        Self {
            pts,
            names,
            repairs,
        }
    }

    /// The `m=` line up to its formats, if `line` is this section's `m=` line.
    fn m_line_prefix(&self, line: &'a str) -> Option<String> {
        if !line.starts_with("m=") {
            return None;
        }
        Some(line.split(' ').take(3).collect::<Vec<_>>().join(" "))
    }

    fn media_codec(&self, pt: &str) -> Option<VideoCodec> {
        self.names.get(pt).and_then(|n| VideoCodec::from_name(n))
    }

    /// The formats reordered with `name`'s payload types first, or `None`
    /// when the section does not carry `name`.
    fn with_codec_first(&self, name: &str) -> Option<Vec<&'a str>> {
        let first: Vec<&'a str> = self
            .pts
            .iter()
            .copied()
            .filter(|pt| {
                self.names
                    .get(pt)
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .collect();
        if first.is_empty() {
            return None;
        }
        let mut order = Vec::with_capacity(self.pts.len());
        for pt in &first {
            order.push(*pt);
            for (rtx, _) in self.repairs.iter().filter(|(_, apt)| apt == pt) {
                if self.pts.contains(rtx) && !order.contains(rtx) {
                    order.push(*rtx);
                }
            }
        }
        for pt in &self.pts {
            if !order.contains(pt) {
                order.push(*pt);
            }
        }
        Some(order)
    }
}

/// A section moim sends a track on, keyed by mid.
pub struct BoundSection<'a> {
    pub participant_sid: &'a str,
    pub track_sid: &'a str,
}

/// `spare` lists mids of sections the client offered for receiving that carry
/// nothing yet.
pub fn rewrite_answer(
    sdp: &str,
    bound: &HashMap<String, BoundSection<'_>>,
    spare: &[String],
) -> String {
    let mut out = String::with_capacity(sdp.len() + 256);
    for section in split_sections(sdp) {
        let mid = section
            .iter()
            .find_map(|l| l.strip_prefix("a=mid:"))
            .map(str::trim);
        let binding = mid.and_then(|m| bound.get(m));
        let is_spare = mid.is_some_and(|m| spare.iter().any(|s| s == m));
        // "<stream id> <track id>", the value of both a=msid and a=ssrc msid.
        let msid =
            binding.map(|b| format!("{}|{} {}", b.participant_sid, b.track_sid, b.track_sid));
        for line in &section {
            if let Some(msid) = &msid {
                if line.starts_with("a=msid:") {
                    push_line(&mut out, &format!("a=msid:{msid}"));
                    continue;
                }
                if let Some(rest) = line.strip_prefix("a=ssrc:") {
                    if let Some((ssrc, attr)) = rest.split_once(' ') {
                        if attr.starts_with("msid:") {
                            push_line(&mut out, &format!("a=ssrc:{ssrc} msid:{msid}"));
                            continue;
                        }
                    }
                }
                if line.starts_with("a=mid:") && !section.iter().any(|l| l.starts_with("a=msid:")) {
                    push_line(&mut out, line);
                    push_line(&mut out, &format!("a=msid:{msid}"));
                    continue;
                }
            } else if is_spare {
                if *line == "a=sendonly" || *line == "a=sendrecv" {
                    push_line(&mut out, "a=inactive");
                    continue;
                }
                if line.starts_with("a=msid:") || line.starts_with("a=ssrc") {
                    continue;
                }
            }
            push_line(&mut out, line);
        }
    }
    out
}

/// `keep` maps a mid to the payload types its section may list, in the order
/// to list them (preferred first); sections of other mids pass unchanged.
pub fn keep_formats(sdp: &str, keep: &HashMap<String, Vec<u8>>) -> String {
    let mut out = String::with_capacity(sdp.len());
    for section in split_sections(sdp) {
        let allowed = section
            .iter()
            .find_map(|l| l.strip_prefix("a=mid:"))
            .and_then(|m| keep.get(m.trim()));
        let Some(allowed) = allowed else {
            section.iter().for_each(|l| push_line(&mut out, l));
            continue;
        };
        for line in &section {
            if let Some(m) = line.strip_prefix("m=") {
                // m=<media> <port> <proto> <fmt> ...
                let mut parts = m.split(' ');
                let head: Vec<&str> = parts.by_ref().take(3).collect();
                let offered: Vec<u8> = parts.filter_map(|f| f.parse().ok()).collect();
                let fmts: Vec<String> = allowed
                    .iter()
                    .filter(|pt| offered.contains(pt))
                    .map(u8::to_string)
                    .collect();
                push_line(
                    &mut out,
                    &format!("m={} {}", head.join(" "), fmts.join(" ")),
                );
                continue;
            }
            if let Some(pt) = format_attribute_pt(line) {
                if !allowed.contains(&pt) {
                    continue;
                }
            }
            push_line(&mut out, line);
        }
    }
    out
}

/// The payload type an `a=rtpmap`, `a=fmtp` or `a=rtcp-fb` line is about.
fn format_attribute_pt(line: &str) -> Option<u8> {
    let rest = ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"]
        .iter()
        .find_map(|p| line.strip_prefix(p))?;
    rest.split(' ').next()?.parse().ok()
}

/// mid → the first payload type of its `m=` line: in an answer, the format
/// the offerer will send (RFC 3264 §5.1 lists them in preference order).
pub fn first_formats(sdp: &str) -> HashMap<String, u8> {
    split_sections(sdp)
        .into_iter()
        .filter_map(|section| {
            let pt = section
                .first()?
                .strip_prefix("m=")?
                .split(' ')
                .nth(3)?
                .parse()
                .ok()?;
            let mid = section.iter().find_map(|l| l.strip_prefix("a=mid:"))?;
            Some((mid.trim().to_string(), pt))
        })
        .collect()
}

fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    out.push_str("\r\n");
}

/// Session part first, then one entry per `m=` section.
fn split_sections(sdp: &str) -> Vec<Vec<&str>> {
    let mut sections: Vec<Vec<&str>> = vec![Vec::new()];
    for line in sdp
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
    {
        if line.starts_with("m=") {
            sections.push(Vec::new());
        }
        if let Some(last) = sections.last_mut() {
            last.push(line);
        }
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=recvonly\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\na=msid:abc def\r\na=ssrc:11 cname:x\r\na=ssrc:11 msid:abc def\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:2\r\na=sendonly\r\na=msid:zzz yyy\r\na=ssrc:12 msid:zzz yyy\r\n";

    /// The shape of str0m's answer to Chromium's publisher offer: every
    /// section lists VP8 first, whatever the track asked for.
    const PUBLISH_ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 63 111\r\na=mid:0\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:63 red/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 98 99 45 46\r\na=mid:1\r\na=recvonly\r\n\
a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n\
a=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\na=rtpmap:99 rtx/90000\r\na=fmtp:99 apt=98\r\n\
a=rtpmap:45 AV1/90000\r\na=rtpmap:46 rtx/90000\r\na=fmtp:46 apt=45\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\na=mid:2\r\na=recvonly\r\n\
a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\na=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n";

    fn m_line<'a>(sdp: &'a str, mid: &str) -> &'a str {
        let at = sdp.find(&format!("a=mid:{mid}\r\n")).expect("mid present");
        let start = sdp[..at].rfind("m=").expect("m-line before mid");
        sdp[start..].lines().next().expect("a line")
    }

    #[test]
    fn the_codec_a_track_asked_for_leads_its_section_with_its_rtx() {
        for (codec, line) in [
            (
                VideoCodec::H264,
                "m=video 9 UDP/TLS/RTP/SAVPF 102 103 96 97 98 99 45 46",
            ),
            (
                VideoCodec::Vp9,
                "m=video 9 UDP/TLS/RTP/SAVPF 98 99 96 97 102 103 45 46",
            ),
            (
                VideoCodec::Av1,
                "m=video 9 UDP/TLS/RTP/SAVPF 45 46 96 97 102 103 98 99",
            ),
        ] {
            let wanted = HashMap::from([("1".to_string(), Some(codec))]);
            let (out, leading) = put_codec_first(PUBLISH_ANSWER, &wanted);
            assert_eq!(m_line(&out, "1"), line);
            assert_eq!(leading.get("1"), Some(&codec));
            // Other sections, and every attribute, are untouched.
            assert_eq!(m_line(&out, "2"), m_line(PUBLISH_ANSWER, "2"));
            assert_eq!(m_line(&out, "0"), m_line(PUBLISH_ANSWER, "0"));
            assert_eq!(out.len(), PUBLISH_ANSWER.len());
        }
    }

    #[test]
    fn a_codec_the_offer_lacks_leaves_the_section_and_reports_what_leads() {
        let wanted = HashMap::from([
            ("2".to_string(), Some(VideoCodec::Av1)),
            ("1".to_string(), None),
        ]);
        let (out, leading) = put_codec_first(PUBLISH_ANSWER, &wanted);
        assert_eq!(out, PUBLISH_ANSWER);
        assert_eq!(leading.get("2"), Some(&VideoCodec::Vp8));
        assert_eq!(leading.get("1"), Some(&VideoCodec::Vp8));
        assert_eq!(leading.get("0"), None, "sections not asked about");
    }

    #[test]
    fn bound_sections_carry_the_livekit_stream_id_and_spare_ones_go_inactive() {
        let mut bound = HashMap::new();
        bound.insert(
            "1".to_string(),
            BoundSection {
                participant_sid: "PA_a",
                track_sid: "TR_b",
            },
        );
        let out = rewrite_answer(ANSWER, &bound, &["2".to_string()]);
        assert!(out.contains("a=mid:1\r\na=sendonly\r\na=msid:PA_a|TR_b TR_b\r\n"));
        assert!(out.contains("a=ssrc:11 msid:PA_a|TR_b TR_b\r\n"));
        assert!(out.contains("a=ssrc:11 cname:x\r\n"));
        assert!(out.contains("a=mid:2\r\na=inactive\r\n"));
        assert!(!out.contains("zzz"));
        // The publisher's own section is untouched.
        assert!(out.contains("a=mid:0\r\na=recvonly\r\n"));
    }

    const OFFER: &str = "v=0\r\ns=-\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102 103 96 97\r\na=mid:0\r\na=sendonly\r\n\
a=rtpmap:102 H265/90000\r\na=rtcp-fb:102 nack\r\na=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n\
a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
a=ssrc:5 cname:x\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=mid:1\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:63 red/48000/2\r\n";

    #[test]
    fn a_subscriber_offer_lists_only_the_formats_the_track_carries() {
        let keep = HashMap::from([("0".to_string(), vec![96, 97])]);
        let out = keep_formats(OFFER, &keep);
        assert!(
            out.contains("m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n"),
            "{out}"
        );
        assert!(!out.contains("H265") && !out.contains("apt=102") && !out.contains(":102 "));
        assert!(out.contains("a=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96"));
        assert!(out.contains("a=ssrc:5 cname:x\r\n"));
        // Sections without a rule keep every format.
        assert!(out.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\n"));
    }

    #[test]
    fn the_first_format_of_each_answered_section_is_found_by_mid() {
        let first = first_formats(OFFER);
        assert_eq!(first.get("0"), Some(&102));
        assert_eq!(first.get("1"), Some(&111));
    }
}
