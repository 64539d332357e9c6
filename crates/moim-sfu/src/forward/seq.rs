//! Sequence numbers for a stream whose packets are partly left out on
//! purpose (layers a subscriber does not get): what goes out stays
//! contiguous, so the subscriber neither waits for nor asks again for a
//! packet that was never meant for it.
//!
//! Packets can arrive out of order (a publisher's retransmission comes
//! late), so each keeps the number it would have had in order: the map
//! remembers which of the last `WINDOW` incoming packets it dropped, and
//! a late packet goes out shifted by the drops that came after it. A late
//! packet that is itself dropped leaves a hole: the packets after it are
//! already out. Fixed size, no allocation.

/// How far back a late packet is still placed (about a second of 720p).
pub const WINDOW: u64 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;

#[derive(Debug, Clone)]
pub struct SeqMap {
    /// Out = in + offset, for the newest packet so far.
    offset: i64,
    /// The newest incoming sequence number placed.
    newest: u64,
    /// Packets older than this came before the stream started here.
    floor: u64,
    /// Bit `a` is set when the packet `newest - a` was dropped.
    dropped: [u64; WORDS],
    /// Whether any bit is set: a stream that drops nothing skips the shifts.
    any_dropped: bool,
}

impl SeqMap {
    /// A map on which incoming `first_in` goes out as `first_out`, and
    /// nothing older goes out at all.
    pub fn starting(first_in: u64, first_out: u64) -> Self {
        Self {
            offset: first_out as i64 - first_in as i64,
            newest: first_in,
            floor: first_in,
            dropped: [0; WORDS],
            any_dropped: false,
        }
    }

    /// The outgoing number for a packet that is sent, or `None` when it is
    /// too old to place (or came before the start).
    pub fn forward(&mut self, seq: u64) -> Option<u64> {
        if seq < self.floor {
            return None;
        }
        if seq > self.newest {
            self.advance_to(seq);
            return u64::try_from(seq as i64 + self.offset).ok();
        }
        let age = self.newest - seq;
        if age >= WINDOW || self.is_dropped(age) {
            return None;
        }
        let shift = self.dropped_newer_than(age) as i64;
        u64::try_from(seq as i64 + self.offset + shift).ok()
    }

    /// A packet left out: the ones after it close the gap.
    pub fn drop_packet(&mut self, seq: u64) {
        if seq <= self.newest || seq < self.floor {
            return; // late: the packets after it are already numbered
        }
        self.advance_to(seq);
        self.dropped[0] |= 1;
        self.any_dropped = true;
        self.offset -= 1;
    }

    fn advance_to(&mut self, seq: u64) {
        let by = seq - self.newest;
        self.newest = seq;
        if !self.any_dropped {
            return;
        }
        if by >= WINDOW {
            self.dropped = [0; WORDS];
            self.any_dropped = false;
            return;
        }
        let words = (by / 64) as usize;
        let bits = (by % 64) as u32;
        for i in (0..WORDS).rev() {
            let from = |k: usize| i.checked_sub(k).map_or(0, |j| self.dropped[j]);
            let high = from(words) << bits;
            let carried = if bits == 0 {
                0
            } else {
                from(words + 1) >> (64 - bits)
            };
            self.dropped[i] = high | carried;
        }
        self.any_dropped = self.dropped.iter().any(|w| *w != 0);
    }

    fn is_dropped(&self, age: u64) -> bool {
        self.dropped[(age / 64) as usize] & (1 << (age % 64)) != 0
    }

    /// Drops among the packets newer than the one `age` back.
    fn dropped_newer_than(&self, age: u64) -> u32 {
        let full = (age / 64) as usize;
        let mut n: u32 = self.dropped[..full].iter().map(|w| w.count_ones()).sum();
        let rest = age % 64;
        if rest > 0 {
            n += (self.dropped[full] & ((1u64 << rest) - 1)).count_ones();
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_that_drops_nothing_keeps_its_numbers_shifted() {
        let mut m = SeqMap::starting(5000, 1);
        assert_eq!(m.forward(5000), Some(1));
        assert_eq!(m.forward(5001), Some(2));
        assert_eq!(m.forward(4999), None, "before the start");
        // A gap (loss upstream) stays a gap: the subscriber asks for it.
        assert_eq!(m.forward(5004), Some(5));
        assert_eq!(m.forward(5003), Some(4), "the late packet fills it");
    }

    #[test]
    fn drops_close_up_and_late_packets_land_where_they_belong() {
        let mut m = SeqMap::starting(100, 1);
        assert_eq!(m.forward(100), Some(1));
        // 101 is lost upstream for now; 102 and 103 are left out.
        m.drop_packet(102);
        m.drop_packet(103);
        assert_eq!(m.forward(104), Some(3), "101 keeps the number 2");
        assert_eq!(m.forward(101), Some(2), "the retransmission of 101");
        assert_eq!(m.forward(102), None, "a packet left out stays out");
        assert_eq!(m.forward(105), Some(4));
    }

    #[test]
    fn drops_are_remembered_across_word_boundaries_and_forgotten_past_the_window() {
        let mut m = SeqMap::starting(0, 1);
        // Every odd packet of 300 is left out; 150 is lost and comes late.
        for s in 0..300u64 {
            if s % 2 == 1 {
                m.drop_packet(s);
            } else if s != 150 {
                assert_eq!(m.forward(s), Some(s / 2 + 1));
            }
        }
        assert_eq!(m.forward(150), Some(76), "late by 150, past two words");
        assert_eq!(m.forward(300), Some(151));
        // Far later: the window has moved on, and old packets are refused.
        assert_eq!(m.forward(300 + WINDOW), Some(151 + WINDOW));
        assert_eq!(m.forward(200), None);
    }
}
