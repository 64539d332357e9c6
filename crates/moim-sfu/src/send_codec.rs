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
    /// The codec behind a payload type of the publisher's PeerConnection.
    pub fn of_publisher(publisher: &Rtc, pt: Pt) -> Option<Self> {
        find_params(publisher, pt).map(|(params, red)| SendCodec { params, red })
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
