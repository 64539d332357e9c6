//! One str0m `Rtc`: the publisher or the subscriber PeerConnection, and what LiveKit's
//! signalling needs to remember about it. No socket: datagrams come in with
//! [`Peer::handle_datagram`] and go out through [`Peer::drive`], so the caller owns the UDP.

use std::net::SocketAddr;
use std::time::Instant;

use livekit_protocol as proto;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

use crate::error::{Error, Result};

/// Which PeerConnection, numbered as LiveKit's `SignalTarget`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Publisher = 0,
    Subscriber = 1,
}

impl Target {
    pub fn from_i32(v: i32) -> Option<Self> {
        match v {
            0 => Some(Target::Publisher),
            1 => Some(Target::Subscriber),
            _ => None,
        }
    }
}

pub(crate) struct Peer {
    pub target: Target,
    pub rtc: Rtc,
    /// The address of the UDP socket the caller reads and writes for this PeerConnection.
    pub local: SocketAddr,
    pub candidate: Candidate,
    pub next_timeout: Instant,
    pub connected: bool,
    /// Our offer waiting for the server's answer (publisher only).
    pub pending_offer: Option<SdpPendingOffer>,
    /// Offer/answer ids, LiveKit's `SessionDescription.id`.
    pub last_sdp_id: u32,
    /// Local candidates already trickled.
    pub trickled: bool,
    pub last_local_sdp: Option<(String, String)>,
    pub last_remote_sdp: Option<(String, String)>,
}

impl Peer {
    pub fn new(target: Target, local: SocketAddr, now: Instant) -> Result<Self> {
        let rtc = RtcConfig::new()
            .set_rtp_mode(true)
            .set_stats_interval(None)
            .build(now);
        let mut peer = Self {
            target,
            rtc,
            local,
            candidate: Candidate::host(local, "udp").map_err(|e| Error::Rtc(e.to_string()))?,
            next_timeout: now,
            connected: false,
            pending_offer: None,
            last_sdp_id: 0,
            trickled: false,
            last_local_sdp: None,
            last_remote_sdp: None,
        };
        peer.rtc.add_local_candidate(peer.candidate.clone());
        Ok(peer)
    }

    /// Apply a remote offer and return our answer SDP.
    pub fn accept_offer(&mut self, sdp: &str) -> Result<String> {
        let offer = SdpOffer::from_sdp_string(sdp)
            .map_err(|e| Error::Protocol(format!("server offer is not valid SDP: {e}")))?;
        let answer = self.rtc.sdp_api().accept_offer(offer)?;
        let text = answer.to_sdp_string();
        self.last_remote_sdp = Some(("offer".into(), sdp.to_owned()));
        self.last_local_sdp = Some(("answer".into(), text.clone()));
        Ok(text)
    }

    /// Apply the server's answer to our pending offer.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<()> {
        let pending = self
            .pending_offer
            .take()
            .ok_or_else(|| Error::Protocol("answer received but no offer is pending".into()))?;
        let answer = SdpAnswer::from_sdp_string(sdp)
            .map_err(|e| Error::Protocol(format!("server answer is not valid SDP: {e}")))?;
        self.rtc.sdp_api().accept_answer(pending, answer)?;
        self.last_remote_sdp = Some(("answer".into(), sdp.to_owned()));
        Ok(())
    }

    /// Add a candidate the server trickled. TCP candidates are ignored: this client is UDP only.
    pub fn add_remote_candidate(&mut self, candidate: &str) -> Result<bool> {
        let line = candidate.trim().trim_start_matches("a=");
        if line.is_empty() {
            return Ok(false); // end-of-candidates
        }
        let c = Candidate::from_sdp_string(line)
            .map_err(|e| Error::Protocol(format!("bad trickled candidate {line:?}: {e}")))?;
        if c.proto() != Protocol::Udp {
            return Ok(false);
        }
        self.rtc.add_remote_candidate(c);
        Ok(true)
    }

    /// The JSON `RTCIceCandidateInit` LiveKit expects in `TrickleRequest.candidate_init`.
    pub fn candidate_init(&self) -> String {
        serde_json::json!({
            "candidate": self.candidate.to_sdp_string(),
            "sdpMid": "0",
            "sdpMLineIndex": 0,
        })
        .to_string()
    }

    /// Our candidate for the server, once per ICE session; `None` once it was handed out.
    pub fn take_trickle(&mut self) -> Option<proto::TrickleRequest> {
        if self.trickled {
            return None;
        }
        self.trickled = true;
        Some(proto::TrickleRequest {
            candidate_init: self.candidate_init(),
            target: self.target as i32,
            r#final: false,
        })
    }

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, buf: &[u8]) -> Result<()> {
        let Ok(contents) = buf.try_into() else {
            tracing::trace!(?from, len = buf.len(), "ignoring unrecognised datagram");
            return Ok(());
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: self.local,
                contents,
            },
        );
        if self.rtc.accepts(&input) {
            self.rtc.handle_input(input)?;
        }
        Ok(())
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Result<()> {
        if now >= self.next_timeout {
            self.rtc.handle_input(Input::Timeout(now))?;
        }
        Ok(())
    }

    /// Drain str0m's output: collect datagrams to send and events, remember the next timeout.
    pub fn drive(&mut self, transmits: &mut Vec<Transmit>, events: &mut Vec<Event>) -> Result<()> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => {
                    self.next_timeout = t;
                    return Ok(());
                }
                Output::Transmit(t) => transmits.push(t),
                Output::Event(e) => {
                    match &e {
                        Event::Connected => self.connected = true,
                        Event::IceConnectionStateChange(
                            str0m::IceConnectionState::Disconnected,
                        ) => self.connected = false,
                        _ => {}
                    }
                    events.push(e);
                }
            }
        }
    }
}

/// `mid` → msid (`stream_id`, `track_id`) for each m-section of an SDP.
pub(crate) fn msids_by_mid(sdp: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut mid: Option<String> = None;
    let mut msid: Option<(String, String)> = None;
    let mut flush = |mid: &mut Option<String>, msid: &mut Option<(String, String)>| {
        if let (Some(m), Some((s, t))) = (mid.take(), msid.take()) {
            out.push((m, s, t));
        }
    };
    for line in sdp.lines() {
        let line = line.trim_end();
        if line.starts_with("m=") {
            flush(&mut mid, &mut msid);
        } else if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.to_owned());
        } else if let Some(rest) = line.strip_prefix("a=msid:") {
            let mut it = rest.split_whitespace();
            if let (Some(s), t) = (it.next(), it.next()) {
                msid = Some((s.to_owned(), t.unwrap_or("").to_owned()));
            }
        }
    }
    flush(&mut mid, &mut msid);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn msid_per_mid_is_read_from_sdp() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=msid:PA_1|TR_a TR_a\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=msid:PA_2|TR_v TR_v\r\n\
                   m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n";
        let m = super::msids_by_mid(sdp);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1], ("1".into(), "PA_2|TR_v".into(), "TR_v".into()));
    }
}
