//! RFC 4571 framing: a 16-bit length, then that many bytes.
//!
//! The length is the sender's claim, so memory follows the bytes that
//! arrived, not the length announced: a frame that arrives whole (the usual
//! case, one media packet per read) is allocated once at its size; one that
//! trickles in grows by doubling, never past twice what arrived.

/// A frame longer than the framer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong {
    pub len: usize,
    pub max: usize,
}

/// Reads RFC 4571 frames from bytes fed in any pieces.
pub struct Framer {
    max_len: usize,
    header: [u8; 2],
    header_len: usize,
    /// The announced length of the frame being read, once its header is in.
    want: Option<usize>,
    body: Vec<u8>,
}

impl Framer {
    pub fn new(max_len: usize) -> Self {
        Framer {
            max_len,
            header: [0; 2],
            header_len: 0,
            want: None,
            body: Vec::new(),
        }
    }

    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len;
    }

    /// Takes bytes from the front of `input` until one frame completes: the
    /// bytes used, and the frame if it did.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, Option<Vec<u8>>), TooLong> {
        let mut used = 0;
        let want = loop {
            if let Some(w) = self.want {
                break w;
            }
            let Some(&b) = input.get(used) else {
                return Ok((used, None));
            };
            self.header[self.header_len] = b;
            self.header_len += 1;
            used += 1;
            if self.header_len == self.header.len() {
                self.header_len = 0;
                let len = usize::from(u16::from_be_bytes(self.header));
                if len > self.max_len {
                    return Err(TooLong {
                        len,
                        max: self.max_len,
                    });
                }
                self.want = Some(len);
            }
        };
        let rest = &input[used..];
        let take = (want - self.body.len()).min(rest.len());
        if self.body.is_empty() && take == want {
            self.want = None;
            return Ok((used + take, Some(rest[..take].to_vec())));
        }
        let need = self.body.len() + take;
        if need > self.body.capacity() {
            let target = need.max(self.body.capacity() * 2).min(want);
            self.body.reserve_exact(target - self.body.len());
        }
        self.body.extend_from_slice(&rest[..take]);
        used += take;
        if self.body.len() == want {
            self.want = None;
            return Ok((used, Some(std::mem::take(&mut self.body))));
        }
        Ok((used, None))
    }

    /// Bytes held for the frame in progress.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.body.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds everything, collecting frames.
    fn feed_all(f: &mut Framer, mut input: &[u8]) -> Result<Vec<Vec<u8>>, TooLong> {
        let mut out = Vec::new();
        while !input.is_empty() {
            let (used, frame) = f.feed(input)?;
            out.extend(frame);
            input = &input[used..];
        }
        Ok(out)
    }

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut v = u16::try_from(body.len())
            .expect("short")
            .to_be_bytes()
            .to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn frames_come_out_whole_however_the_bytes_are_cut() {
        let mut stream = framed(b"hello");
        stream.extend(framed(b""));
        stream.extend(framed(&[7; 3000]));
        let expected = vec![b"hello".to_vec(), Vec::new(), vec![7; 3000]];
        let mut f = Framer::new(usize::from(u16::MAX));
        assert_eq!(feed_all(&mut f, &stream), Ok(expected.clone()));
        for cut in [1, 2, 3, 7, 1000] {
            let mut f = Framer::new(usize::from(u16::MAX));
            let mut got = Vec::new();
            for piece in stream.chunks(cut) {
                got.extend(feed_all(&mut f, piece).expect("fits"));
            }
            assert_eq!(got, expected, "cut every {cut} bytes");
        }
    }

    #[test]
    fn an_announced_length_costs_nothing_until_its_bytes_arrive() {
        let mut f = Framer::new(usize::from(u16::MAX));
        assert_eq!(f.feed(&[0xff, 0xff]), Ok((2, None)));
        assert_eq!(f.held(), 0);
        let mut received = 0;
        for _ in 0..5000 {
            assert_eq!(f.feed(&[1]), Ok((1, None)));
            received += 1;
            assert!(
                f.held() <= 2 * received,
                "{} held for {received} bytes",
                f.held()
            );
        }
        let rest = vec![1; 65535 - received];
        let (used, frame) = f.feed(&rest).expect("fits");
        assert_eq!(used, rest.len());
        assert_eq!(frame.map(|v| v.len()), Some(65535));
        assert_eq!(f.held(), 0, "nothing kept after the frame");
    }

    #[test]
    fn a_frame_over_the_bound_is_refused_from_its_header() {
        let mut f = Framer::new(2048);
        assert_eq!(f.feed(&[0x08]), Ok((1, None)));
        assert_eq!(
            f.feed(&[0x01, 0, 0]),
            Err(TooLong {
                len: 2049,
                max: 2048
            })
        );
        let mut f = Framer::new(2048);
        assert_eq!(f.feed(&[0x08, 0x00]), Ok((2, None)), "2048 itself fits");
    }
}
