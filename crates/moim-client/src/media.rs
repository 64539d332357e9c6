//! Synthetic media: packet streams shaped like real Opus, VP8 and H.264 at realistic sizes and
//! rates, each packet carrying a [`crate::probe`] block.
//!
//! Nothing here touches the network or a clock: [`LayerGen::next_frame`] is given `now` and
//! returns the RTP payloads of one frame.

use std::time::{Duration, Instant};

use crate::probe;

/// Video codec of a synthetic track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    H264,
}

impl VideoCodec {
    /// MIME type as LiveKit writes it.
    pub fn mime(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "video/VP8",
            VideoCodec::H264 => "video/H264",
        }
    }

    /// Codec name used in `SimulcastCodec.codec`.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "vp8",
            VideoCodec::H264 => "h264",
        }
    }
}

/// What a synthetic payload is shaped like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    Opus,
    Video(VideoCodec),
}

/// Options of a synthetic video track.
#[derive(Debug, Clone)]
pub struct VideoOptions {
    pub codec: VideoCodec,
    /// Three layers `q`, `h`, `f` instead of one.
    pub simulcast: bool,
    /// Bitrate of the top (or only) layer.
    pub bitrate_bps: u32,
    pub fps: u32,
    pub keyframe_interval: Duration,
    pub width: u32,
    pub height: u32,
    pub name: String,
    /// Largest RTP payload.
    pub max_payload: usize,
}

impl Default for VideoOptions {
    fn default() -> Self {
        Self {
            codec: VideoCodec::Vp8,
            simulcast: false,
            bitrate_bps: 1_500_000,
            fps: 30,
            keyframe_interval: Duration::from_secs(2),
            width: 1280,
            height: 720,
            name: "camera".into(),
            max_payload: 1100,
        }
    }
}

/// Options of a synthetic audio track.
#[derive(Debug, Clone)]
pub struct AudioOptions {
    /// Bytes per 20 ms packet (Opus at ~40 kb/s is about 100).
    pub packet_bytes: usize,
    pub name: String,
}

impl Default for AudioOptions {
    fn default() -> Self {
        Self {
            packet_bytes: 100,
            name: "microphone".into(),
        }
    }
}

/// One simulcast layer (or the only layer) of a synthetic video track, as LiveKit names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSpec {
    /// `q`, `h` or `f`; `None` without simulcast.
    pub rid: Option<&'static str>,
    /// LiveKit `VideoQuality`: 0 low, 1 medium, 2 high.
    pub quality: i32,
    pub width: u32,
    pub height: u32,
    pub bitrate_bps: u32,
}

impl VideoOptions {
    /// The layers this track sends, lowest first.
    pub fn layers(&self) -> Vec<LayerSpec> {
        if !self.simulcast {
            return vec![LayerSpec {
                rid: None,
                quality: 2,
                width: self.width,
                height: self.height,
                bitrate_bps: self.bitrate_bps,
            }];
        }
        [("q", 0, 4, 10), ("h", 1, 2, 3), ("f", 2, 1, 1)]
            .into_iter()
            .map(|(rid, quality, scale, divisor)| LayerSpec {
                rid: Some(rid),
                quality,
                width: self.width / scale,
                height: self.height / scale,
                bitrate_bps: self.bitrate_bps / divisor,
            })
            .collect()
    }
}

/// One RTP packet's worth of synthetic media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthPacket {
    pub payload: Vec<u8>,
    pub marker: bool,
    pub rtp_time: u32,
    /// Extended sequence number (starts below 2^16 so no ROC signalling is needed).
    pub seq: u64,
    pub keyframe: bool,
}

/// Generates the frames of one RTP stream.
#[derive(Debug, Clone)]
pub struct LayerGen {
    kind: PayloadKind,
    frame_interval: Duration,
    rtp_step: u32,
    bytes_per_frame: usize,
    max_payload: usize,
    keyframe_interval: Duration,
    width: u16,
    height: u16,
    next_due: Option<Instant>,
    last_keyframe: Option<Instant>,
    force_keyframe: bool,
    seq: u64,
    rtp_time: u32,
    picture_id: u16,
    tl0: u8,
}

impl LayerGen {
    /// An Opus stream: one packet of `packet_bytes` every 20 ms.
    pub fn audio(packet_bytes: usize) -> Self {
        Self::new(
            PayloadKind::Opus,
            Duration::from_millis(20),
            960,
            packet_bytes.max(probe::BLOCK_LEN + 1),
            usize::MAX,
            Duration::MAX,
            0,
            0,
        )
    }

    /// A video stream for one layer.
    pub fn video(codec: VideoCodec, layer: &LayerSpec, opts: &VideoOptions) -> Self {
        let fps = opts.fps.max(1);
        let bytes = (layer.bitrate_bps / 8 / fps) as usize;
        Self::new(
            PayloadKind::Video(codec),
            Duration::from_secs(1) / fps,
            90_000 / fps,
            bytes.max(64),
            opts.max_payload.max(64),
            opts.keyframe_interval,
            layer.width.min(16383) as u16,
            layer.height.min(16383) as u16,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        kind: PayloadKind,
        frame_interval: Duration,
        rtp_step: u32,
        bytes_per_frame: usize,
        max_payload: usize,
        keyframe_interval: Duration,
        width: u16,
        height: u16,
    ) -> Self {
        Self {
            kind,
            frame_interval,
            rtp_step,
            bytes_per_frame,
            max_payload,
            keyframe_interval,
            width,
            height,
            next_due: None,
            last_keyframe: None,
            force_keyframe: false,
            seq: u64::from(rand::random::<u16>() / 2),
            rtp_time: rand::random(),
            picture_id: rand::random::<u16>() & 0x7fff,
            tl0: rand::random(),
        }
    }

    /// When the next frame is due; `None` until the first frame is sent.
    pub fn next_due(&self) -> Option<Instant> {
        self.next_due
    }

    /// Ask for a keyframe with the next frame (on PLI/FIR).
    pub fn request_keyframe(&mut self) {
        self.force_keyframe = true;
    }

    /// Whether a frame is due at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        self.next_due.is_none_or(|t| t <= now)
    }

    /// The packets of the frame due at `now`, stamped with `send_micros`.
    pub fn next_frame(&mut self, now: Instant, send_micros: u64) -> Vec<SynthPacket> {
        // Keep a steady cadence; if we fell far behind (the task stalled), resynchronise.
        self.next_due = Some(match self.next_due {
            Some(t) if now.saturating_duration_since(t) < self.frame_interval * 5 => {
                t + self.frame_interval
            }
            _ => now + self.frame_interval,
        });
        let out = match self.kind {
            PayloadKind::Opus => vec![self.opus_packet(send_micros)],
            PayloadKind::Video(codec) => {
                let key = self.force_keyframe
                    || self
                        .last_keyframe
                        .is_none_or(|t| now.saturating_duration_since(t) >= self.keyframe_interval);
                if key {
                    self.force_keyframe = false;
                    self.last_keyframe = Some(now);
                }
                self.video_frame(codec, key, send_micros)
            }
        };
        self.rtp_time = self.rtp_time.wrapping_add(self.rtp_step);
        out
    }

    fn take_seq(&mut self) -> u64 {
        let s = self.seq;
        self.seq += 1;
        s
    }

    fn opus_packet(&mut self, send_micros: u64) -> SynthPacket {
        // TOC: config 15 (hybrid, fullband, 20 ms), mono, one frame.
        let mut p = Vec::with_capacity(self.bytes_per_frame);
        p.push(15 << 3);
        probe::write_block(&mut p, send_micros);
        p.resize(self.bytes_per_frame, 0);
        SynthPacket {
            payload: p,
            marker: false,
            rtp_time: self.rtp_time,
            seq: self.take_seq(),
            keyframe: false,
        }
    }

    fn video_frame(&mut self, codec: VideoCodec, key: bool, send_micros: u64) -> Vec<SynthPacket> {
        let frame_bytes = if key {
            self.bytes_per_frame * 2
        } else {
            self.bytes_per_frame
        };
        let mut n = frame_bytes.div_ceil(self.max_payload).max(1);
        if key && codec == VideoCodec::H264 {
            n = n.max(2); // STAP-A with SPS/PPS, then at least one slice packet
        }
        let per_packet = frame_bytes / n;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let first = i == 0;
            let last = i + 1 == n;
            let mut p = Vec::with_capacity(per_packet.max(64));
            if codec == VideoCodec::H264 && key && first {
                h264_keyframe_head(&mut p, send_micros, per_packet);
            } else {
                match codec {
                    VideoCodec::Vp8 => self.vp8_header(&mut p, first, key),
                    VideoCodec::H264 => {
                        let fu_start = if key { i == 1 } else { first };
                        h264_header(&mut p, fu_start, last, n == 1, key)
                    }
                }
                probe::write_block(&mut p, send_micros);
                if p.len() < per_packet {
                    p.resize(per_packet, 0);
                }
            }
            out.push(SynthPacket {
                payload: p,
                marker: last,
                rtp_time: self.rtp_time,
                seq: self.take_seq(),
                keyframe: key,
            });
        }
        self.picture_id = (self.picture_id + 1) & 0x7fff;
        self.tl0 = self.tl0.wrapping_add(1);
        out
    }

    /// RFC 7741 payload descriptor with the extensions Chrome sends (15-bit PictureID,
    /// TL0PICIDX, TID/Y), then on the first packet the VP8 frame header.
    fn vp8_header(&self, p: &mut Vec<u8>, first: bool, key: bool) {
        p.push(0x80 | if first { 0x10 } else { 0 }); // X, S, PID 0
        p.push(0x80 | 0x40 | 0x20); // I, L, T
        p.push(0x80 | (self.picture_id >> 8) as u8); // M: 15-bit picture id
        p.push(self.picture_id as u8);
        p.push(self.tl0);
        p.push(0x20); // TID 0, Y 1
        if first {
            // Frame tag: P bit 0 for a keyframe, show_frame 1, first partition size 32.
            let size: u32 = 32;
            let tag = (size << 5) | (1 << 4) | u32::from(!key);
            p.extend_from_slice(&tag.to_le_bytes()[..3]);
            if key {
                p.extend_from_slice(&[0x9d, 0x01, 0x2a]);
                p.extend_from_slice(&self.width.to_le_bytes());
                p.extend_from_slice(&self.height.to_le_bytes());
            }
        }
    }
}

/// H.264 (RFC 6184), first packet of a keyframe: a STAP-A with SPS, PPS, an SEI carrying the
/// probe block and a first IDR slice that fills the packet to `len`.
fn h264_keyframe_head(p: &mut Vec<u8>, send_micros: u64, len: usize) {
    let sps: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8];
    let pps: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
    let mut sei = vec![0x06];
    probe::write_block(&mut sei, send_micros);
    p.push(0x60 | 24);
    for nal in [sps, pps, &sei] {
        p.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        p.extend_from_slice(nal);
    }
    let idr_len = len.saturating_sub(p.len() + 2).max(2);
    p.extend_from_slice(&(idr_len as u16).to_be_bytes());
    p.push(0x65); // IDR slice
    p.resize(p.len() + idr_len - 1, 0);
}

/// H.264 slices after the first keyframe packet: FU-A (IDR type 5 in keyframes, type 1
/// otherwise), or a single NAL unit when a frame fits in one packet.
fn h264_header(p: &mut Vec<u8>, fu_start: bool, last: bool, single: bool, key: bool) {
    let (nri, nal_type) = if key { (0x60, 5) } else { (0x40, 1) };
    if single {
        p.push(nri | nal_type);
        return;
    }
    p.push(nri | 28); // FU indicator
    let start = if fu_start { 0x80 } else { 0 };
    let end = if last { 0x40 } else { 0 };
    p.push(start | end | nal_type);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen_video(codec: VideoCodec, secs: u64) -> Vec<Vec<SynthPacket>> {
        let opts = VideoOptions {
            codec,
            ..VideoOptions::default()
        };
        let layer = &opts.layers()[0];
        let mut g = LayerGen::video(codec, layer, &opts);
        let t0 = Instant::now();
        let mut frames = Vec::new();
        let mut now = t0;
        while now < t0 + Duration::from_secs(secs) {
            if g.is_due(now) {
                frames.push(g.next_frame(now, probe::now_micros()));
            }
            now += Duration::from_millis(1);
        }
        frames
    }

    #[test]
    fn vp8_stream_has_realistic_rate_and_periodic_keyframes() {
        let frames = gen_video(VideoCodec::Vp8, 4);
        assert!(
            (119..=121).contains(&frames.len()),
            "{} frames",
            frames.len()
        );
        let bytes: usize = frames.iter().flatten().map(|p| p.payload.len()).sum();
        let mbps = bytes as f64 * 8.0 / 4.0 / 1e6;
        assert!((1.4..=1.8).contains(&mbps), "{mbps} Mb/s");
        let keys: Vec<usize> = frames
            .iter()
            .enumerate()
            .filter(|(_, f)| f[0].keyframe)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(keys, vec![0, 60]);
        for f in &frames {
            assert!(f.iter().all(|p| p.payload.len() <= 1100 + 40));
            assert!(f.last().is_some_and(|p| p.marker));
            assert!(f.iter().all(|p| probe::read_block(&p.payload).is_some()));
            // S bit only on the first packet; P bit clear exactly on keyframes.
            assert_eq!(f[0].payload[0] & 0x10, 0x10);
            assert!(f[1..].iter().all(|p| p.payload[0] & 0x10 == 0));
            assert_eq!(f[0].payload[6] & 1 == 0, f[0].keyframe);
            assert!(str0m::format::detect_vp8_keyframe(&f[0].payload) == f[0].keyframe);
        }
        let seqs: Vec<u64> = frames.iter().flatten().map(|p| p.seq).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    }

    #[test]
    fn h264_keyframes_start_with_sps() {
        let frames = gen_video(VideoCodec::H264, 1);
        let key = &frames[0][0];
        assert!(key.keyframe);
        assert_eq!(key.payload[0] & 0x1f, 24, "STAP-A");
        assert_eq!(key.payload[3] & 0x1f, 7, "SPS first");
        assert!(str0m::format::detect_h264_keyframe(&key.payload));
        let inter = &frames[1][0];
        assert!(!str0m::format::detect_h264_keyframe(&inter.payload));
        assert_eq!(inter.payload[0] & 0x1f, 28, "FU-A");
        assert_eq!(inter.payload[1] & 0x80, 0x80, "FU start");
        assert!(frames
            .iter()
            .flatten()
            .all(|p| probe::read_block(&p.payload).is_some()));
    }

    #[test]
    fn pli_forces_a_keyframe_and_audio_is_fifty_packets_a_second() {
        let opts = VideoOptions::default();
        let mut g = LayerGen::video(VideoCodec::Vp8, &opts.layers()[0], &opts);
        let t = Instant::now();
        assert!(g.next_frame(t, 0)[0].keyframe);
        assert!(!g.next_frame(t + Duration::from_millis(33), 0)[0].keyframe);
        g.request_keyframe();
        assert!(g.next_frame(t + Duration::from_millis(66), 0)[0].keyframe);

        let mut a = LayerGen::audio(100);
        let mut n = 0;
        let mut now = t;
        while now < t + Duration::from_secs(1) {
            if a.is_due(now) {
                let p = a.next_frame(now, 7);
                assert_eq!(p[0].payload.len(), 100);
                assert_eq!(probe::read_block(&p[0].payload), Some(7));
                n += 1;
            }
            now += Duration::from_millis(1);
        }
        assert_eq!(n, 50);
    }

    #[test]
    fn simulcast_layers_are_q_h_f() {
        let opts = VideoOptions {
            simulcast: true,
            ..VideoOptions::default()
        };
        let l = opts.layers();
        assert_eq!(
            l.iter().map(|x| x.rid).collect::<Vec<_>>(),
            vec![Some("q"), Some("h"), Some("f")]
        );
        assert!(l[0].bitrate_bps < l[1].bitrate_bps && l[1].bitrate_bps < l[2].bitrate_bps);
        assert_eq!(l[2].width, 1280);
    }
}
