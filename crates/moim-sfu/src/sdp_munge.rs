//! Rewrites of str0m's SDP answers for the single-PeerConnection protocol.
//!
//! In `/rtc/v1` the client always offers, with spare `recvonly` sections for
//! the tracks it may receive. str0m answers those as `sendonly` with a random
//! msid. livekit-client finds the sender of a received track by the msid's
//! stream id (`PA_…|TR_…`), so moim writes its own msid into each section it
//! bound to a track, and marks the spare ones `inactive`.

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
}
