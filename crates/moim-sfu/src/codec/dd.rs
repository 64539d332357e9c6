//! Reads the AV1 RTP dependency descriptor (DD) header extension
//! (`https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension`,
//! Appendix A of the AV1 RTP payload format).
//!
//! The extension describes the frame a packet belongs to without looking
//! into the payload: whether the packet starts or ends the frame, the
//! frame's number, its spatial and temporal layer, and, for each *decode
//! target* (one spatial and temporal fidelity of the stream), whether the
//! frame belongs to it and how ([`Dti`]). To keep a packet's value at 3
//! bytes, the first packet of a coded video sequence carries a template
//! [`Structure`]; later packets name one of its templates by id and may
//! override its indications, frame differences and chain differences.
//!
//! Why the SFU reads it: AV1 with spatial layers (L3T3_KEY) says in this
//! extension alone which layer a packet belongs to and where a subscriber
//! may switch up, so choosing layers for a subscriber needs it. Once the
//! extension is negotiated, Chromium also describes VP8's and H.264's
//! temporal layers only here, so the same reader serves temporal layer
//! choice for those codecs.
//!
//! What it leaves out, on purpose: it keeps no state. The caller keeps the
//! latest [`Structure`] (from [`Descriptor::structure`]) and the latest
//! active decode target set, which stays valid until the next update in
//! sequence number order. It does not follow chains or referred frames
//! across packets, does not check that the zero padding is zero (the spec
//! tells receivers to ignore it), does not check that a repeated
//! `template_id_offset` comes with an identical structure, and does not
//! write descriptors: forwarded packets carry the publisher's bytes
//! unchanged (`crate::dd`).

use std::fmt;
use std::ops::Deref;

/// Decode targets a structure can have (`dt_cnt_minus_one` is 5 bits).
pub const MAX_DECODE_TARGETS: usize = 32;
/// Templates a structure can have: a template id is 6 bits.
pub const MAX_TEMPLATES: usize = 64;
/// Spatial layers accepted: AV1's `spatial_id` is 2 bits. The DD syntax
/// itself has no limit; libwebrtc, the receiver that matters, rejects more.
pub const MAX_SPATIAL_LAYERS: u8 = 4;
/// Temporal layers accepted: AV1's `temporal_id` is 3 bits (as above).
pub const MAX_TEMPORAL_LAYERS: u8 = 8;
/// Frame differences accepted for one template or frame. AV1 refers to at
/// most 7 frames; this only bounds what a hostile packet can make us keep.
pub const MAX_FDIFFS: usize = 15;

/// How a frame relates to one decode target (table A.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dti {
    /// The frame is not part of the decode target.
    #[default]
    NotPresent,
    /// Part of it, and no later frame of it refers to this one.
    Discardable,
    /// Part of it, and once this frame decodes every later frame of the
    /// decode target does: a point where forwarding it may begin.
    Switch,
    /// Part of it, needed, but neither of the above.
    Required,
}

impl Dti {
    fn from_bits(v: u32) -> Self {
        match v & 3 {
            0 => Self::NotPresent,
            1 => Self::Discardable,
            2 => Self::Switch,
            _ => Self::Required,
        }
    }
}

/// Up to `N` values kept inline: a [`Descriptor`] is read for every video
/// packet, and reading one must not allocate.
#[derive(Clone, Copy)]
pub struct Inline<T: Copy + Default, const N: usize> {
    len: u8,
    items: [T; N],
}

impl<T: Copy + Default, const N: usize> Inline<T, N> {
    fn new() -> Self {
        Self {
            len: 0,
            items: [T::default(); N],
        }
    }

    /// `None` when full.
    fn push(&mut self, v: T) -> Option<()> {
        let slot = self.items.get_mut(usize::from(self.len))?;
        *slot = v;
        self.len += 1;
        Some(())
    }

    /// `None` when `values` has more than `N`.
    fn from_slice(values: &[T]) -> Option<Self> {
        let mut out = Self::new();
        for &v in values {
            out.push(v)?;
        }
        Some(out)
    }
}

impl<T: Copy + Default, const N: usize> Deref for Inline<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items[..usize::from(self.len)]
    }
}

impl<T: Copy + Default + fmt::Debug, const N: usize> fmt::Debug for Inline<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Copy + Default + PartialEq, const N: usize> PartialEq for Inline<T, N> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Copy + Default + Eq, const N: usize> Eq for Inline<T, N> {}

impl<T: Copy + Default + PartialEq, const N: usize> PartialEq<Vec<T>> for Inline<T, N> {
    fn eq(&self, other: &Vec<T>) -> bool {
        **self == other[..]
    }
}

impl<T: Copy + Default + PartialEq, const N: usize, const M: usize> PartialEq<[T; M]>
    for Inline<T, N>
{
    fn eq(&self, other: &[T; M]) -> bool {
        **self == other[..]
    }
}

/// What many frames have in common, sent once in a [`Structure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub spatial_id: u8,
    pub temporal_id: u8,
    /// One per decode target.
    pub dtis: Vec<Dti>,
    /// Frame number differences to the frames this one refers to (1..=16).
    pub fdiffs: Vec<u16>,
    /// One per chain: the frame number difference to the chain's previous
    /// frame (0..=15; 0 means no earlier frame is needed).
    pub chain_diffs: Vec<u8>,
}

/// The template dependency structure: how the frames of one coded video
/// sequence depend on each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Structure {
    /// The template id of `templates[0]`; ids count on modulo 64.
    pub template_id_offset: u8,
    /// 1..=32.
    pub decode_targets: usize,
    /// 0..=`decode_targets`.
    pub chains: usize,
    /// 1..=64, ordered by spatial then temporal id.
    pub templates: Vec<Template>,
    /// For each decode target, the chain protecting it; empty without
    /// chains.
    pub decode_target_protected_by: Vec<u8>,
    /// For each decode target, its (spatial, temporal) layer: the highest
    /// ids of the templates it is present in. Derived, not sent.
    pub decode_target_layers: Vec<(u8, u8)>,
    /// Maximum render (width, height) of each spatial layer, when sent.
    pub resolutions: Vec<(u32, u32)>,
}

impl Structure {
    /// How many spatial and temporal layers the stream has, as
    /// (spatial, temporal): the highest ids among the templates, plus one.
    /// Every layer the encoder produces has a template, so this is what
    /// the SFU can offer subscribers without waiting to see each layer.
    pub fn layer_count(&self) -> (u8, u8) {
        self.templates.iter().fold((0, 0), |(s, t), tpl| {
            (
                s.max(tpl.spatial_id.saturating_add(1)),
                t.max(tpl.temporal_id.saturating_add(1)),
            )
        })
    }
}

/// One packet's dependency descriptor, with its template applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub start_of_frame: bool,
    pub end_of_frame: bool,
    pub template_id: u8,
    pub frame_number: u16,
    /// The structure this packet carries (the first packet of a coded
    /// video sequence does); the caller keeps it for later packets.
    pub structure: Option<Structure>,
    /// Bit i set: decode target i can be decoded. `None` when this packet
    /// says nothing, so the last set seen still holds. A packet carrying a
    /// structure but no bitmask makes every decode target active.
    pub active_decode_targets: Option<u32>,
    pub spatial_id: u8,
    pub temporal_id: u8,
    /// One per decode target, custom ones if the packet has them.
    pub dtis: Inline<Dti, MAX_DECODE_TARGETS>,
    /// Differences to the frame numbers of the referred frames (1..=4096).
    pub fdiffs: Inline<u16, MAX_FDIFFS>,
    /// One per chain: the difference to the chain's previous frame number.
    pub chain_diffs: Inline<u8, MAX_DECODE_TARGETS>,
}

impl Descriptor {
    /// True when this frame carries a Switch indication for the decode
    /// target: if it decodes, every later frame of that target does too,
    /// so the SFU may start forwarding the target here (A.7), e.g. move a
    /// subscriber up a layer. Required is not enough: it says the frame is
    /// needed, not that the frames before it are not. False for a decode
    /// target the structure does not have.
    pub fn is_switch_for(&self, decode_target: usize) -> bool {
        self.dtis.get(decode_target) == Some(&Dti::Switch)
    }

    /// The decode target of this frame's own layer (its spatial and
    /// temporal id) in `structure`, if the structure names one.
    pub fn own_decode_target(&self, structure: &Structure) -> Option<usize> {
        structure
            .decode_target_layers
            .iter()
            .position(|&l| l == (self.spatial_id, self.temporal_id))
    }
}

/// Why a descriptor could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DdError {
    /// The value ends before its fields do.
    Truncated,
    /// The packet needs a template structure and none has been seen (the
    /// packet that carried it was lost or is still to come).
    NoStructure,
    /// The template id is not in the structure: most likely the packet
    /// with a new structure was lost or reordered.
    UnknownTemplate(u8),
    /// More than [`MAX_TEMPLATES`] templates.
    TooManyTemplates,
    /// More than [`MAX_SPATIAL_LAYERS`] or [`MAX_TEMPORAL_LAYERS`].
    TooManyLayers,
    /// More than [`MAX_FDIFFS`] frame differences.
    TooManyFdiffs,
}

impl fmt::Display for DdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("dependency descriptor cut short"),
            Self::NoStructure => {
                f.write_str("dependency descriptor refers to templates before any structure")
            }
            Self::UnknownTemplate(id) => {
                write!(
                    f,
                    "dependency descriptor template id {id} is not in the structure"
                )
            }
            Self::TooManyTemplates => write!(f, "more than {MAX_TEMPLATES} templates"),
            Self::TooManyLayers => write!(
                f,
                "more than {MAX_SPATIAL_LAYERS} spatial or {MAX_TEMPORAL_LAYERS} temporal layers"
            ),
            Self::TooManyFdiffs => write!(f, "more than {MAX_FDIFFS} frame differences"),
        }
    }
}

impl std::error::Error for DdError {}

/// Reads one extension value. `latest` is the structure from the most
/// recent packet that carried one; a packet carrying its own uses that.
pub fn parse(buf: &[u8], latest: Option<&Structure>) -> Result<Descriptor, DdError> {
    let mut r = Bits { buf, pos: 0 };
    let start_of_frame = r.flag()?;
    let end_of_frame = r.flag()?;
    let template_id = r.f(6)? as u8;
    let frame_number = r.f(16)? as u16;

    // Past the 3 mandatory bytes come the extended fields; a 3-byte value
    // has none, so nothing is custom.
    let (mut active_present, mut custom_dtis, mut custom_fdiffs, mut custom_chains) =
        (false, false, false, false);
    let mut attached = None;
    if buf.len() > 3 {
        let structure_present = r.flag()?;
        active_present = r.flag()?;
        custom_dtis = r.flag()?;
        custom_fdiffs = r.flag()?;
        custom_chains = r.flag()?;
        if structure_present {
            attached = Some(read_structure(&mut r)?);
        }
    }
    let structure = attached.as_ref().or(latest).ok_or(DdError::NoStructure)?;

    let mut active_decode_targets = attached.as_ref().map(|s| all_targets(s.decode_targets));
    if active_present {
        active_decode_targets = Some(r.f(structure.decode_targets)?);
    }

    // (template_id - offset) mod 64; 256 is a multiple of 64.
    let index = usize::from(template_id.wrapping_sub(structure.template_id_offset) % 64);
    let template = structure
        .templates
        .get(index)
        .ok_or(DdError::UnknownTemplate(template_id))?;
    // A structure holds at most MAX_DECODE_TARGETS decode targets and
    // chains and MAX_FDIFFS differences per template, so copying a
    // template's lists inline cannot overflow; the errors are for form.
    let dtis = if custom_dtis {
        read_dtis(&mut r, structure.decode_targets)?
    } else {
        Inline::from_slice(&template.dtis).ok_or(DdError::TooManyLayers)?
    };
    let fdiffs = if custom_fdiffs {
        read_frame_fdiffs(&mut r)?
    } else {
        Inline::from_slice(&template.fdiffs).ok_or(DdError::TooManyFdiffs)?
    };
    let chain_diffs = if custom_chains {
        let mut chains = Inline::new();
        for _ in 0..structure.chains {
            chains.push(r.f(8)? as u8).ok_or(DdError::TooManyLayers)?;
        }
        chains
    } else {
        Inline::from_slice(&template.chain_diffs).ok_or(DdError::TooManyLayers)?
    };
    let (spatial_id, temporal_id) = (template.spatial_id, template.temporal_id);
    // Whatever bits are left are zero padding.

    Ok(Descriptor {
        start_of_frame,
        end_of_frame,
        template_id,
        frame_number,
        structure: attached,
        active_decode_targets,
        spatial_id,
        temporal_id,
        dtis,
        fdiffs,
        chain_diffs,
    })
}

/// The bitmask with the low `n` bits set.
fn all_targets(n: usize) -> u32 {
    if n >= 32 {
        u32::MAX
    } else {
        (1u32 << n) - 1
    }
}

fn read_structure(r: &mut Bits<'_>) -> Result<Structure, DdError> {
    let template_id_offset = r.f(6)? as u8;
    let decode_targets = r.f(5)? as usize + 1;

    // Each template's layer follows from the one before it, by
    // next_layer_idc: 0 same layer, 1 next temporal, 2 next spatial, 3 end.
    let mut layers = Vec::new();
    let (mut spatial, mut temporal) = (0u8, 0u8);
    loop {
        if layers.len() == MAX_TEMPLATES {
            return Err(DdError::TooManyTemplates);
        }
        layers.push((spatial, temporal));
        match r.f(2)? {
            0 => {}
            1 => temporal += 1,
            2 => (spatial, temporal) = (spatial + 1, 0),
            _ => break,
        }
        if spatial >= MAX_SPATIAL_LAYERS || temporal >= MAX_TEMPORAL_LAYERS {
            return Err(DdError::TooManyLayers);
        }
    }

    let mut templates = Vec::with_capacity(layers.len());
    for (spatial_id, temporal_id) in layers {
        templates.push(Template {
            spatial_id,
            temporal_id,
            dtis: read_dtis(r, decode_targets)?.to_vec(),
            fdiffs: Vec::new(),
            chain_diffs: Vec::new(),
        });
    }
    for t in &mut templates {
        while r.flag()? {
            if t.fdiffs.len() == MAX_FDIFFS {
                return Err(DdError::TooManyFdiffs);
            }
            t.fdiffs.push(r.f(4)? as u16 + 1);
        }
    }

    // decode_targets <= 32, so both counts fit a u8.
    let chains = r.ns(decode_targets as u8 + 1)? as usize;
    let mut decode_target_protected_by = Vec::new();
    if chains > 0 {
        for _ in 0..decode_targets {
            decode_target_protected_by.push(r.ns(chains as u8)? as u8);
        }
        for t in &mut templates {
            for _ in 0..chains {
                t.chain_diffs.push(r.f(4)? as u8);
            }
        }
    }

    let decode_target_layers = (0..decode_targets)
        .map(|dt| {
            templates
                .iter()
                .filter(|t| t.dtis.get(dt).is_some_and(|&d| d != Dti::NotPresent))
                .fold((0, 0), |(s, tl), t| {
                    (s.max(t.spatial_id), tl.max(t.temporal_id))
                })
        })
        .collect();

    let mut resolutions = Vec::new();
    if r.flag()? {
        // Templates come in spatial order: the last has the highest id.
        let spatial_layers = templates.last().map_or(0, |t| t.spatial_id) + 1;
        for _ in 0..spatial_layers {
            let width = r.f(16)? + 1;
            let height = r.f(16)? + 1;
            resolutions.push((width, height));
        }
    }

    Ok(Structure {
        template_id_offset,
        decode_targets,
        chains,
        templates,
        decode_target_protected_by,
        decode_target_layers,
        resolutions,
    })
}

fn read_dtis(
    r: &mut Bits<'_>,
    decode_targets: usize,
) -> Result<Inline<Dti, MAX_DECODE_TARGETS>, DdError> {
    let mut dtis = Inline::new();
    for _ in 0..decode_targets {
        // decode_targets comes from 5 bits plus one: at most 32.
        dtis.push(Dti::from_bits(r.f(2)?))
            .ok_or(DdError::TooManyLayers)?;
    }
    Ok(dtis)
}

/// A frame's own differences: each led by its size in 4-bit units, a size
/// of 0 ending the list.
fn read_frame_fdiffs(r: &mut Bits<'_>) -> Result<Inline<u16, MAX_FDIFFS>, DdError> {
    let mut fdiffs = Inline::new();
    loop {
        let size = r.f(2)? as usize;
        if size == 0 {
            return Ok(fdiffs);
        }
        if fdiffs.len() == MAX_FDIFFS {
            return Err(DdError::TooManyFdiffs);
        }
        fdiffs
            .push(r.f(4 * size)? as u16 + 1)
            .ok_or(DdError::TooManyFdiffs)?;
    }
}

/// A big-endian bit reader over one extension value.
struct Bits<'a> {
    buf: &'a [u8],
    /// Bits read so far.
    pos: usize,
}

impl Bits<'_> {
    /// `f(n)`: the next `n` (at most 32) bits, high bit first.
    fn f(&mut self, n: usize) -> Result<u32, DdError> {
        if n > self.buf.len().saturating_mul(8).saturating_sub(self.pos) {
            return Err(DdError::Truncated);
        }
        // A byte's worth of bits at a time: every video packet with a
        // descriptor is read here.
        let mut v = 0u32;
        let mut left = n;
        while left > 0 {
            let byte = *self.buf.get(self.pos / 8).ok_or(DdError::Truncated)?;
            let avail = 8 - self.pos % 8;
            let take = avail.min(left);
            let bits = (u32::from(byte) >> (avail - take)) & ((1u32 << take) - 1);
            v = (v << take) | bits;
            self.pos += take;
            left -= take;
        }
        Ok(v)
    }

    fn flag(&mut self) -> Result<bool, DdError> {
        Ok(self.f(1)? == 1)
    }

    /// `ns(n)`: a value in 0..n in the non-symmetric code, where the
    /// lowest `2^w - n` values take one bit fewer than the rest.
    fn ns(&mut self, n: u8) -> Result<u32, DdError> {
        let n = u32::from(n);
        let w = u32::BITS - n.leading_zeros();
        if w == 0 {
            return Ok(0);
        }
        let m = (1u32 << w) - n;
        let v = self.f(w as usize - 1)?;
        if v < m {
            return Ok(v);
        }
        let extra = self.f(1)?;
        Ok((v << 1) - m + extra)
    }
}

#[cfg(test)]
mod tests;
