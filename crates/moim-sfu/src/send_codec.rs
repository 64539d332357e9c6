//! The codec a published track carries, and what a subscriber is offered
//! for it: that codec with its companions, in the subscriber's own payload
//! type numbers, and nothing the publisher does not send.

use str0m::format::PayloadParams;
use str0m::media::Pt;
use str0m::Rtc;

#[derive(Debug, Clone, Copy)]
pub(crate) struct SendCodec {
    /// The codec as the publisher's PeerConnection negotiated it.
    pub params: PayloadParams,
    /// The publisher wraps it in RED (RFC 2198), as livekit-client does for
    /// audio; moim forwards RED as it is, so the subscriber must take RED.
    pub red: bool,
}

impl SendCodec {
    /// The codec behind a payload type of a PeerConnection.
    pub fn behind_pt(rtc: &Rtc, pt: Pt) -> Option<Self> {
        find_params(rtc, pt).map(|(params, red)| SendCodec { params, red })
    }

    /// The payload types a subscriber's section lists, preferred first: the
    /// codec (behind RED when the publisher sends RED), then its RTX.
    /// `None` when the subscriber's PeerConnection cannot send the codec.
    pub fn offer_formats(&self, subscriber: &Rtc) -> Option<Vec<Pt>> {
        let p = subscriber.codec_config().match_params(self.params)?;
        let mut pts = Vec::with_capacity(3);
        if self.red {
            pts.push(p.red()?);
        }
        pts.push(p.pt());
        pts.extend(p.resend());
        Some(pts)
    }

    /// Whether a subscriber's answer to `offered` (from [`offer_formats`])
    /// takes the codec. str0m lists only primary codecs in an answer's
    /// payload types, with RED and RTX folded into them, so the codec's own
    /// payload type is what to look for; RED leads `offered` when it is
    /// used.
    ///
    /// [`offer_formats`]: SendCodec::offer_formats
    pub fn answered_with(&self, offered: &[Pt], answered: &[Pt]) -> bool {
        offered
            .get(usize::from(self.red))
            .is_some_and(|primary| answered.contains(primary))
    }

    /// "VP8", "opus with RED", … for log lines.
    pub fn describe(&self) -> String {
        let codec = self.params.spec().codec;
        if self.red {
            format!("{codec} with RED")
        } else {
            codec.to_string()
        }
    }
}

/// The codec parameters behind a payload type, and whether that payload
/// type is the codec's RED (RFC 2198) wrapping.
pub(crate) fn find_params(rtc: &Rtc, pt: Pt) -> Option<(PayloadParams, bool)> {
    rtc.codec_config().params().iter().find_map(|p| {
        if p.pt() == pt {
            Some((*p, false))
        } else if p.red() == Some(pt) {
            Some((*p, true))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(red: bool) -> SendCodec {
        let rtc = Rtc::builder()
            .enable_opus(true, true)
            .build(std::time::Instant::now());
        let params = *rtc
            .codec_config()
            .params()
            .first()
            .expect("opus is configured");
        SendCodec { params, red }
    }

    #[test]
    fn an_answer_with_the_primary_codec_takes_red_audio_too() {
        let red = codec(true);
        // Offered: RED 63, Opus 111. str0m's view of the answer lists Opus.
        let offered = [Pt::from(63), Pt::from(111)];
        assert!(red.answered_with(&offered, &[Pt::from(111)]));
        assert!(!red.answered_with(&offered, &[Pt::from(0)]));
        assert!(!red.answered_with(&offered, &[]));
    }

    #[test]
    fn a_plain_codec_is_taken_when_its_payload_type_is_answered() {
        let plain = codec(false);
        let offered = [Pt::from(96), Pt::from(97)];
        assert!(plain.answered_with(&offered, &[Pt::from(96)]));
        assert!(
            !plain.answered_with(&offered, &[Pt::from(97)]),
            "RTX alone is not the codec"
        );
    }
}
