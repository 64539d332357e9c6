//! The AV1 dependency descriptor RTP header extension, carried through
//! untouched.
//!
//! livekit-client publishes AV1 (and VP9) with spatial layers
//! (`scalabilityMode` L3T3_KEY) in one RTP stream. A Chromium receiver
//! decodes such AV1 only when the dependency descriptor says how the frames
//! of each layer depend on each other: without it, frames are assembled but
//! none decode, and the receiver asks for a keyframe forever (measured with
//! Chromium 156; livekit-client's own source notes the same since Chromium
//! 152). str0m does not know the extension, so moim registers it as a user
//! extension whose value is the raw bytes, read from the publisher's packet
//! and written unchanged into each forwarded one. When a subscriber gets
//! only some layers (`forward/select.rs`), the frames left out are ones no
//! forwarded frame refers to, so the frame numbers and differences in the
//! forwarded descriptors still lead the receiver to every frame it needs;
//! `codec/dd.rs` reads the descriptor to choose those layers.
//!
//! Once the extension is negotiated, Chromium describes VP8's and H.264's
//! temporal layers only here, and its receiver then orders frames by the
//! descriptor instead of the VP8 picture id, so a VP8 stream with frames
//! left out decodes without rewriting picture ids. So any stream that
//! arrives with a descriptor is forwarded with it (`shard/track.rs`).
//!
//! Cost: str0m keeps user extension values in a small map, so parsing one
//! allocates, and each subscriber's write clones the map: one small
//! allocation per forwarded packet of a stream with a descriptor. Streams
//! without one allocate nothing for it.

use std::sync::Arc;

use str0m::rtp::{Extension, ExtensionSerializer, ExtensionValues};

pub const URI: &str =
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension";

/// The session-level id moim offers it with; answers take the client's id.
/// 12 is what Chromium picks and is free in str0m's standard map.
pub const DEFAULT_ID: u8 = 12;

/// The raw extension value of one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyDescriptor(pub Arc<[u8]>);

#[derive(Debug)]
struct Passthrough;

impl ExtensionSerializer for Passthrough {
    fn write_to(&self, buf: &mut [u8], ev: &ExtensionValues) -> usize {
        let Some(DependencyDescriptor(bytes)) = ev.user_values.get::<DependencyDescriptor>() else {
            return 0;
        };
        // The two-byte header form caps a value at 255 bytes.
        if bytes.len() > 255 || bytes.len() > buf.len() {
            return 0;
        }
        buf[..bytes.len()].copy_from_slice(bytes);
        bytes.len()
    }

    fn parse_value(&self, buf: &[u8], ev: &mut ExtensionValues) -> bool {
        // A descriptor has at least its 3 mandatory bytes.
        if buf.len() < 3 {
            return false;
        }
        ev.user_values.set(DependencyDescriptor(buf.into()));
        true
    }

    fn is_video(&self) -> bool {
        true
    }

    fn is_audio(&self) -> bool {
        false
    }

    fn requires_two_byte_form(&self, ev: &ExtensionValues) -> bool {
        // The first packet of a keyframe carries the template structure,
        // usually well over the one-byte form's 16 bytes.
        ev.user_values
            .get::<DependencyDescriptor>()
            .is_some_and(|d| d.0.len() > 16)
    }
}

pub fn extension() -> Extension {
    Extension::with_serializer(URI, Passthrough)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_is_written_back_byte_for_byte() {
        let s = Passthrough;
        let mut ev = ExtensionValues::default();
        let value: Vec<u8> = (0..40).collect();
        assert!(s.parse_value(&value, &mut ev));
        assert!(
            s.requires_two_byte_form(&ev),
            "40 bytes need the two-byte form"
        );
        let mut out = [0u8; 64];
        let n = s.write_to(&mut out, &ev);
        assert_eq!(&out[..n], &value[..]);
    }

    #[test]
    fn short_or_missing_descriptors_write_nothing() {
        let s = Passthrough;
        let mut ev = ExtensionValues::default();
        assert!(!s.parse_value(&[1, 2], &mut ev));
        let mut out = [0u8; 8];
        assert_eq!(s.write_to(&mut out, &ev), 0);
        assert!(!s.requires_two_byte_form(&ev));
        // Larger than the room left in the packet: skipped, never a panic.
        assert!(s.parse_value(&[7; 20], &mut ev));
        assert_eq!(s.write_to(&mut out, &ev), 0);
    }
}
