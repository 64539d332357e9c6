//! Per-subscription RTP rewriting: which simulcast layer a subscriber gets,
//! which layers inside a stream (`select.rs`), and the sequence numbers and
//! timestamps that make switches and left-out packets invisible (`seq.rs`).
//!
//! Pure state machine: packets and `now` in, a verdict out. No str0m types,
//! so it is unit-tested with plain numbers.

mod book;
mod select;
mod seq;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

pub use book::{LayerBook, MAX_TEMPORAL};
pub use select::ALL_TEMPORAL;

use crate::codec::LayerInfo;
use select::{Admit, LayerSelection, LayeredPacket};
use seq::SeqMap;

/// Layers, low to high: simulcast streams (`q`, `h`, `f`) or the spatial
/// layers of one SVC stream. A track of one layer uses 0.
pub const MAX_LAYERS: usize = 3;

/// A layer that sent nothing for this long is considered gone.
pub const LAYER_TIMEOUT: Duration = Duration::from_millis(1000);

/// The packet fields the forwarder needs.
#[derive(Debug, Clone, Copy)]
pub struct InPacket {
    /// The simulcast stream it came on; 0 without simulcast.
    pub layer: usize,
    /// Layers inside the stream, when its payload says (VP9, VP8 with
    /// temporal layers).
    pub layers: Option<LayerInfo>,
    /// The stream's spatial layers are the track's layers (SVC): the
    /// subscriber's layer picks among them, not among streams.
    pub svc: bool,
    pub marker: bool,
    /// Extended (rollover-free) sequence number of the publisher's stream.
    pub seq: u64,
    pub timestamp: u32,
    pub keyframe_start: bool,
    /// Audio and AV1/SVC video do not wait for keyframes.
    pub needs_keyframe: bool,
    /// RTP clock rate, to turn wall time into timestamp ticks on a switch.
    pub clock_rate: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Forward {
        seq: u64,
        timestamp: u32,
        marker: bool,
    },
    Drop,
}

/// Where an outgoing stream stands: the last sequence number and timestamp
/// written to it, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPosition {
    pub seq: u64,
    pub timestamp: u32,
    pub at: Instant,
}

/// Rewrites one publisher track for one subscriber.
#[derive(Debug)]
pub struct Forwarder {
    /// The simulcast stream forwarded; `None` until its keyframe.
    current: Option<usize>,
    /// Maps the current stream's sequence numbers onto the outgoing ones.
    seqs: Option<SeqMap>,
    ts_offset: u32,
    /// The layers taken from inside the current stream.
    selection: LayerSelection,
    /// The frame rate the subscriber asked for, if any.
    max_fps: Option<u32>,
    last_out: Option<StreamPosition>,
    /// Highest layer this subscriber wants (adaptive stream may lower it).
    max_layer: usize,
    paused: bool,
    /// What the subscriber's downlink has room for (see `allocate.rs`).
    allowance: Allowance,
    /// The track's layers are spatial layers inside one stream.
    svc: bool,
}

/// How much of a track a subscriber's downlink has room for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowance {
    /// No estimate limits it.
    Any,
    /// Layers up to this one.
    UpTo(usize),
    /// Not even the lowest layer fits: nothing is forwarded.
    Nothing,
}

impl Default for Forwarder {
    fn default() -> Self {
        Self::new()
    }
}

impl Forwarder {
    pub fn new() -> Self {
        Self {
            current: None,
            seqs: None,
            ts_offset: 0,
            selection: LayerSelection::default(),
            max_fps: None,
            last_out: None,
            max_layer: MAX_LAYERS - 1,
            paused: false,
            allowance: Allowance::Any,
            svc: false,
        }
    }

    /// A forwarder onto a stream that already carried another track (an
    /// `/rtc/v1` section reused for a new subscription keeps its SSRC). The
    /// stream goes on from `position`: starting its sequence numbers over
    /// would put every packet behind the receiver's SRTP replay window,
    /// which drops them until the new numbers pass the old ones.
    pub fn continue_stream(&mut self, position: StreamPosition) {
        if self.last_out.is_none() {
            self.last_out = Some(position);
        }
    }

    /// The last packet this forwarder sent, if any.
    pub fn position(&self) -> Option<StreamPosition> {
        self.last_out
    }

    pub fn set_max_layer(&mut self, layer: usize) {
        self.max_layer = layer.min(MAX_LAYERS - 1);
    }

    /// The frame rate the subscriber asked for (`None`: all there is).
    pub fn set_max_fps(&mut self, fps: Option<u32>) {
        self.max_fps = fps.filter(|f| *f > 0);
    }

    /// The highest layer the subscriber asked for.
    pub fn max_layer(&self) -> usize {
        self.max_layer
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// What the downlink has room for. Going from nothing to something
    /// waits for a keyframe, like a fresh subscriber.
    pub fn set_allowance(&mut self, allowance: Allowance) {
        if allowance == Allowance::Nothing {
            self.current = None;
        }
        self.allowance = allowance;
    }

    pub fn allowance(&self) -> Allowance {
        self.allowance
    }

    /// The highest layer that may be forwarded, or `None` for nothing.
    fn cap(&self) -> Option<usize> {
        if self.paused {
            return None;
        }
        match self.allowance {
            Allowance::Any => Some(self.max_layer),
            Allowance::UpTo(l) => Some(l.min(self.max_layer)),
            Allowance::Nothing => None,
        }
    }

    /// A paused subscription forwards nothing (track disabled, or muted).
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        if paused {
            // Resuming needs a keyframe, exactly like a fresh subscriber.
            self.current = None;
        }
    }

    /// The layer forwarded now: the simulcast stream, or for SVC the
    /// highest spatial layer.
    pub fn current_layer(&self) -> Option<usize> {
        let stream = self.current?;
        if self.svc {
            return self.selection.spatial().map(usize::from);
        }
        Some(stream)
    }

    /// The layer this subscriber should be on, given what the publisher sends.
    pub fn target_layer(&self, book: &LayerBook, now: Instant) -> Option<usize> {
        book.best(self.cap()?, now)
    }

    /// Whether a keyframe on `layer` would help this subscriber now. An
    /// SVC stream goes down without one, and up only with one.
    pub fn wants_keyframe(&self, book: &LayerBook, now: Instant) -> Option<usize> {
        let target = self.target_layer(book, now)?;
        let wanted = match self.current_layer() {
            None => true,
            Some(c) if self.svc => target > c,
            Some(c) => target != c,
        };
        wanted.then_some(target)
    }

    pub fn on_packet(&mut self, p: InPacket, book: &LayerBook, now: Instant) -> Verdict {
        let Some(cap) = self.cap() else {
            return Verdict::Drop;
        };
        self.svc = p.svc;
        // For SVC the layer is chosen inside the one stream (`select.rs`).
        let stream_target = if p.svc {
            p.layer
        } else {
            book.best(cap, now).unwrap_or(p.layer)
        };
        if self.current != Some(p.layer) {
            // Switch only onto the target stream, and (for video) only at a
            // keyframe, so the decoder never sees a frame it cannot decode.
            // A stream that went quiet is left for any live one within the
            // cap; a subscriber that has nothing yet starts on the target.
            let current_dead = !p.svc && self.current.is_some_and(|c| !book.is_live(c, now));
            let switch_wanted = p.layer == stream_target || (current_dead && p.layer <= cap);
            if !switch_wanted || (p.needs_keyframe && !p.keyframe_start) {
                return Verdict::Drop;
            }
            self.switch_to(p, now);
        }
        let Some(seqs) = self.seqs.as_mut() else {
            return Verdict::Drop;
        };
        let mut marker = p.marker;
        if let Some(info) = p.layers {
            let target_spatial = if p.svc {
                book.best(cap, now).unwrap_or(0) as u8
            } else {
                0
            };
            let target_temporal = self
                .max_fps
                .map_or(ALL_TEMPORAL, |fps| book.temporal_for_fps(p.layer, fps));
            let packet = LayeredPacket {
                info,
                timestamp: p.timestamp,
                marker: p.marker,
                key: p.keyframe_start,
            };
            match self
                .selection
                .admit(packet, target_spatial, target_temporal)
            {
                Admit::Forward { marker: m } => marker = m,
                Admit::Drop => {
                    seqs.drop_packet(p.seq);
                    return Verdict::Drop;
                }
            }
        }
        let Some(seq) = seqs.forward(p.seq) else {
            return Verdict::Drop; // older than where this subscriber started
        };
        let timestamp = p.timestamp.wrapping_add(self.ts_offset);
        let newer = self.last_out.is_none_or(|l| seq > l.seq);
        if newer {
            self.last_out = Some(StreamPosition {
                seq,
                timestamp,
                at: now,
            });
        }
        Verdict::Forward {
            seq,
            timestamp,
            marker,
        }
    }

    fn switch_to(&mut self, p: InPacket, now: Instant) {
        let first_out = match self.last_out {
            None => {
                // Start low so the SRTP rollover counter begins at 0 on the
                // subscriber's side.
                self.ts_offset = 0;
                1
            }
            Some(last) => {
                let elapsed = now.saturating_duration_since(last.at);
                let ticks =
                    (elapsed.as_micros() as u64 * p.clock_rate as u64 / 1_000_000).max(1) as u32;
                let out_ts = last.timestamp.wrapping_add(ticks);
                self.ts_offset = out_ts.wrapping_sub(p.timestamp);
                last.seq + 1
            }
        };
        self.seqs = Some(SeqMap::starting(p.seq, first_out));
        self.selection.reset();
        self.current = Some(p.layer);
    }
}
