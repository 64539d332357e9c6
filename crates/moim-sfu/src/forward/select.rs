//! Which packets of one RTP stream a subscriber gets when the stream holds
//! layers inside it: VP9's spatial and temporal layers (SVC, livekit-client's
//! `L3T3_KEY`) and VP8's temporal layers.
//!
//! A spatial layer builds on the ones below it, so a subscriber on layer
//! `s` gets layers `0..=s` of each picture, and the last packet of layer
//! `s` carries the marker bit that tells the decoder the picture is
//! complete. Going down is possible at any picture; going up only at a key
//! picture, since the upper layers of other pictures refer to earlier
//! frames of their own layer (with `_KEY` modes, only key pictures predict
//! from the layer below). Temporal layers go down at any picture and up at
//! a switching-up point (VP9 `U`, VP8 `Y`, a dependency descriptor's
//! Switch indication): from there on, no frame of a higher layer refers to
//! one the subscriber did not get.

use crate::codec::LayerInfo;

/// The highest temporal layer when nothing limits it.
pub const ALL_TEMPORAL: u8 = u8::MAX;

#[derive(Debug, Clone, Default)]
pub struct LayerSelection {
    /// The highest spatial layer forwarded; `None` until a key picture.
    spatial: Option<u8>,
    temporal: u8,
    /// The picture (RTP timestamp) the choice was made for.
    picture: Option<u32>,
}

/// What to do with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Send it, with this marker bit.
    Forward {
        marker: bool,
    },
    Drop,
}

/// The packet as the selection sees it.
#[derive(Debug, Clone, Copy)]
pub struct LayeredPacket {
    pub info: LayerInfo,
    pub timestamp: u32,
    pub marker: bool,
    /// The packet starts a key picture (its lowest spatial layer).
    pub key: bool,
}

impl LayerSelection {
    /// Forget the choice: the next key picture starts over (a switch to
    /// another simulcast stream, a resumed subscription).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// The highest spatial layer forwarded now.
    pub fn spatial(&self) -> Option<u8> {
        self.spatial
    }

    pub fn admit(&mut self, p: LayeredPacket, target_spatial: u8, target_temporal: u8) -> Admit {
        let newer = self
            .picture
            .is_none_or(|pic| (p.timestamp.wrapping_sub(pic) as i32) > 0);
        if newer {
            self.picture = Some(p.timestamp);
            self.choose(p, target_spatial, target_temporal);
        }
        let Some(spatial) = self.spatial else {
            return Admit::Drop;
        };
        if p.info.spatial > spatial || p.info.temporal > self.temporal {
            return Admit::Drop;
        }
        let ends_picture = p.info.frame_end && p.info.spatial == spatial;
        Admit::Forward {
            marker: p.marker || ends_picture,
        }
    }

    /// The choice for a new picture, made at its first packet seen.
    fn choose(&mut self, p: LayeredPacket, target_spatial: u8, target_temporal: u8) {
        if p.key {
            self.spatial = Some(target_spatial);
            self.temporal = target_temporal;
            return;
        }
        let Some(spatial) = self.spatial else {
            return;
        };
        self.spatial = Some(spatial.min(target_spatial));
        if target_temporal < self.temporal {
            self.temporal = target_temporal;
            return;
        }
        // The highest layer above the current one, up to the target, that
        // this frame opens.
        let above = if self.temporal >= 7 {
            0
        } else {
            0xffu8 << (self.temporal + 1)
        };
        let up_to_target = if target_temporal >= 7 {
            0xff
        } else {
            (1u8 << (target_temporal + 1)) - 1
        };
        let opened = p.info.switch_up & above & up_to_target;
        if opened != 0 {
            self.temporal = 7 - opened.leading_zeros() as u8;
        }
    }
}
