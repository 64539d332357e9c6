//! The publisher PeerConnection's side of signalling: a track goes from `AddTrackRequest` to
//! `TrackPublishedResponse` to an m-line in our offer to a payload type in the server's answer,
//! and only then is the caller told it is published and does media flow.

use std::collections::HashMap;
use std::time::Instant;

use livekit_protocol::{self as proto, signal_request};
use str0m::change::{SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, Reliability};
use str0m::media::{Direction, KeyframeRequest, Pt};

use super::outbox::{Outbox, Output};
use super::publication::Publication;
use crate::counters::{self, SentStats, Shared};
use crate::error::{Error, Result};
use crate::event::{ClientEvent, LocalTrack};
use crate::peer::Peer;

pub(crate) struct Publishing {
    /// Our participant sid: the msid stream id of every track we offer.
    own_sid: String,
    /// Sent `AddTrackRequest`s waiting for `TrackPublishedResponse`, by cid.
    pending: HashMap<String, Publication>,
    tracks: Vec<Publication>,
    /// Something changed while an offer was out; offer again once it is answered.
    renegotiate: bool,
    /// The data channels went into an offer: the publisher PC is in use.
    channels_added: bool,
}

impl Publishing {
    pub fn new(own_sid: String) -> Self {
        Self {
            own_sid,
            pending: HashMap::new(),
            tracks: Vec::new(),
            renegotiate: false,
            channels_added: false,
        }
    }

    pub fn channels_added(&self) -> bool {
        self.channels_added
    }

    /// Ask the server for a track; the caller hears back once the track is negotiated.
    pub fn add(&mut self, req: proto::AddTrackRequest, p: Publication, out: &mut Outbox) {
        let cid = p.cid.clone();
        self.pending.insert(cid.clone(), p);
        if let Err(e) = out.send(signal_request::Message::AddTrack(req)) {
            self.fail_pending(&cid, e, out);
        }
    }

    /// Whether `cid` names an `AddTrackRequest` still waiting for its response.
    pub fn is_pending(&self, cid: &str) -> bool {
        self.pending.contains_key(cid)
    }

    /// Give up on a pending `AddTrackRequest` and answer its caller with `e`.
    pub fn fail_pending(&mut self, cid: &str, e: Error, out: &mut Outbox) {
        if let Some(id) = self
            .pending
            .remove(cid)
            .and_then(|mut p| p.answer_to.take())
        {
            out.push(Output::Published(id, Err(e)));
        }
    }

    pub fn on_track_published(
        &mut self,
        tp: proto::TrackPublishedResponse,
        peer: &mut Peer,
        out: &mut Outbox,
    ) -> Result<()> {
        let Some(mut p) = self.pending.remove(&tp.cid) else {
            out.emit(ClientEvent::Error(format!(
                "track_published for unknown cid {:?}",
                tp.cid
            )));
            return Ok(());
        };
        let Some(info) = tp.track else {
            if let Some(id) = p.answer_to.take() {
                out.push(Output::Published(
                    id,
                    Err(Error::Protocol(
                        "track_published without a TrackInfo".into(),
                    )),
                ));
            }
            return Ok(());
        };
        p.info = Some(info);
        self.tracks.push(p);
        self.negotiate(peer, out)
    }

    /// Offer the data channels and every track not yet offered, unless an offer is out.
    pub fn negotiate(&mut self, peer: &mut Peer, out: &mut Outbox) -> Result<()> {
        if peer.pending_offer.is_some() {
            self.renegotiate = true;
            return Ok(());
        }
        let needs: Vec<usize> = (0..self.tracks.len())
            .filter(|i| self.tracks[*i].mid.is_none())
            .collect();
        if needs.is_empty() && self.channels_added {
            return Ok(());
        }
        let mut mid_map = HashMap::new();
        let mut api = peer.rtc.sdp_api();
        if !self.channels_added {
            self.channels_added = true;
            api.add_channel_with_config(ChannelConfig {
                label: "_reliable".into(),
                ordered: true,
                reliability: Reliability::Reliable,
                ..Default::default()
            });
            api.add_channel_with_config(ChannelConfig {
                label: "_lossy".into(),
                ordered: false,
                reliability: Reliability::MaxRetransmits { retransmits: 0 },
                ..Default::default()
            });
        }
        for i in needs {
            let t = &mut self.tracks[i];
            let sid = t.sid();
            let mid = api.add_media(
                t.media_kind(),
                Direction::SendOnly,
                Some(format!("{}|{sid}", self.own_sid)),
                Some(t.cid.clone()),
                t.simulcast_layers(),
            );
            mid_map.insert(mid.to_string(), sid);
            t.mid = Some(mid);
        }
        if let Some((offer, pending)) = api.apply() {
            send_offer(peer, offer, pending, mid_map, out)?;
        }
        Ok(())
    }

    /// After a resume, what livekit-client does: restart ICE on the publisher if it is in use.
    pub fn restart_ice(&mut self, peer: &mut Peer, out: &mut Outbox) -> Result<()> {
        if !self.channels_added {
            return Ok(());
        }
        if peer.pending_offer.is_some() {
            self.renegotiate = true;
            return Ok(());
        }
        let mut api = peer.rtc.sdp_api();
        api.ice_restart(true);
        if let Some((offer, pending)) = api.apply() {
            send_offer(peer, offer, pending, HashMap::new(), out)?;
        }
        Ok(())
    }

    /// The server answered our offer: each newly offered track learns its payload type and
    /// SSRCs, and its caller gets the [`LocalTrack`].
    pub fn on_answer(
        &mut self,
        sdp: &str,
        peer: &mut Peer,
        shared: &Shared,
        out: &mut Outbox,
    ) -> Result<()> {
        peer.accept_answer(sdp)?;
        let rtc = &mut peer.rtc;
        for t in &mut self.tracks {
            let (Some(mid), None) = (t.mid, t.pt) else {
                continue;
            };
            let wanted = t.codec();
            let remote_pts: Vec<Pt> = rtc
                .media(mid)
                .map(|m| m.remote_pts().to_vec())
                .unwrap_or_default();
            let pt = rtc
                .codec_config()
                .params()
                .iter()
                .find(|p| p.spec().codec == wanted && remote_pts.contains(&p.pt()))
                .map(|p| p.pt());
            let result = match pt {
                None => Err(Error::Protocol(format!(
                    "the server's answer did not accept {wanted:?} on mid {mid} (accepted payload types {remote_pts:?})"
                ))),
                Some(pt) => {
                    t.pt = Some(pt);
                    let mut api = rtc.direct_api();
                    let mut ssrcs = Vec::new();
                    for l in &mut t.layers {
                        let ssrc = api.stream_tx_by_mid(mid, l.rid).map(|s| *s.ssrc());
                        l.ssrc = ssrc;
                        ssrcs.push((l.rid.map(|r| r.to_string()), ssrc.unwrap_or(0)));
                    }
                    let info = t.info.clone().unwrap_or_default();
                    {
                        let mut s = counters::lock(shared);
                        for (rid, ssrc) in &ssrcs {
                            s.tx.insert(
                                *ssrc,
                                SentStats {
                                    track_sid: info.sid.clone(),
                                    rid: rid.clone(),
                                    ssrc: *ssrc,
                                    ..Default::default()
                                },
                            );
                        }
                    }
                    Ok(LocalTrack {
                        cid: t.cid.clone(),
                        sid: info.sid.clone(),
                        mid: mid.to_string(),
                        kind: t.track_kind(),
                        ssrcs,
                        info,
                    })
                }
            };
            if let Some(id) = t.answer_to.take() {
                out.push(Output::Published(id, result));
            }
        }
        if std::mem::take(&mut self.renegotiate) {
            self.negotiate(peer, out)?;
        }
        Ok(())
    }

    /// What `SyncState` tells the server we publish, after a resume.
    pub fn published(&self) -> Vec<proto::TrackPublishedResponse> {
        self.tracks
            .iter()
            .filter_map(|t| {
                t.info.clone().map(|info| proto::TrackPublishedResponse {
                    cid: t.cid.clone(),
                    track: Some(info),
                })
            })
            .collect()
    }

    pub fn on_keyframe_request(&mut self, k: &KeyframeRequest) {
        for t in &mut self.tracks {
            if t.mid == Some(k.mid) {
                t.request_keyframe(k.rid);
            }
        }
    }

    /// When the next frame of any negotiated track is due.
    pub fn next_frame_due(&self, now: Instant) -> Option<Instant> {
        self.tracks
            .iter()
            .filter_map(|t| t.next_frame_due(now))
            .min()
    }

    /// Write every frame due at `now`, once the publisher PC is connected.
    pub fn send_media(&mut self, now: Instant, peer: &mut Peer, shared: &Shared) {
        if !peer.connected {
            return;
        }
        let mut sent = Vec::new();
        let mut api = peer.rtc.direct_api();
        for t in &mut self.tracks {
            t.write_due_frames(now, &mut api, &mut sent);
        }
        if !sent.is_empty() {
            let mut s = counters::lock(shared);
            for (ssrc, len, key) in sent {
                if let Some(e) = s.tx.get_mut(&ssrc) {
                    e.packets += 1;
                    e.bytes += len as u64;
                    e.keyframes += u64::from(key);
                }
            }
        }
    }
}

fn send_offer(
    peer: &mut Peer,
    offer: SdpOffer,
    pending: SdpPendingOffer,
    mid_to_track_id: HashMap<String, String>,
    out: &mut Outbox,
) -> Result<()> {
    let sdp = offer.to_sdp_string();
    peer.pending_offer = Some(pending);
    peer.last_sdp_id += 1;
    peer.last_local_sdp = Some(("offer".into(), sdp.clone()));
    out.send(signal_request::Message::Offer(proto::SessionDescription {
        r#type: "offer".into(),
        sdp,
        id: peer.last_sdp_id,
        mid_to_track_id,
    }))?;
    out.trickle(peer)
}
