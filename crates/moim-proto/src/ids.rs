//! Server-minted identifiers, in LiveKit's shape (`RM_…`, `PA_…`, `TR_…`).
//!
//! The prefixes matter: livekit-client and the server SDKs treat these as
//! opaque strings, but operators grep logs for them, and LiveKit users expect
//! the familiar look.

use rand::Rng;

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn with_prefix(prefix: &str) -> String {
    let mut rng = rand::rng();
    let mut s = String::with_capacity(prefix.len() + 12);
    s.push_str(prefix);
    for _ in 0..12 {
        s.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    s
}

pub fn room_sid() -> String {
    with_prefix("RM_")
}

pub fn participant_sid() -> String {
    with_prefix("PA_")
}

pub fn track_sid() -> String {
    with_prefix("TR_")
}

/// A node id for a server that was not given one: unique per process, so
/// two nodes of a cluster never share one by accident.
pub fn node_id() -> String {
    with_prefix("ND_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_livekit_prefixes_and_differ() {
        let a = participant_sid();
        let b = participant_sid();
        assert!(a.starts_with("PA_") && a.len() == 15);
        assert_ne!(a, b);
        assert!(room_sid().starts_with("RM_"));
        assert!(track_sid().starts_with("TR_"));
        assert!(node_id().starts_with("ND_"));
        assert_ne!(node_id(), node_id());
    }
}
