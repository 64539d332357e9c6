//! Rewrites of str0m's SDP where LiveKit clients expect something else.
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
