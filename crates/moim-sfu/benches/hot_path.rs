//! Micro-benchmarks of the per-packet work on moim's forwarding path.
//!
//! `cargo bench -p moim-sfu --bench hot_path`
//!
//! - `forward/*`: the per-subscriber decision and sequence/timestamp rewrite
//!   (`forward::Forwarder::on_packet`), steady state and with a layer switch.
//! - `stun/local_ufrag`: routing a STUN binding request from an unknown address by its ufrag.
//! - `keyframe/*`: peeking at a payload to see whether it starts a keyframe.
//! - `descriptor/*`: reading a packet's AV1 dependency descriptor for its layers
//!   (`codec::StreamReader`), with the stream's template structure known.
//! - `srtp/*`: the AEAD-AES-128-GCM cipher str0m uses for SRTP, through its public crypto
//!   provider API (`str0m::crypto`). str0m's SRTP context (header parsing, index/ROC, replay)
//!   is private, so this is the cipher alone on a 1100-byte payload with a 12-byte RTP header
//!   as AAD: a lower bound for protect/unprotect.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use moim_sfu::codec::{starts_keyframe, LayerInfo, StreamReader, VideoCodec};
use moim_sfu::forward::{Forwarder, InPacket, LayerBook};
use moim_sfu::stun::local_ufrag;

fn forward(c: &mut Criterion) {
    let now = Instant::now();
    let mut book = LayerBook::default();
    book.saw(0, now);
    let pkt = |seq: u64, key: bool| InPacket {
        layer: 0,
        layers: None,
        svc: false,
        marker: false,
        seq,
        timestamp: (seq as u32).wrapping_mul(3000),
        keyframe_start: key,
        needs_keyframe: true,
        clock_rate: 90_000,
    };
    let mut g = c.benchmark_group("forward");
    g.throughput(Throughput::Elements(1));
    g.bench_function("on_packet_steady", |b| {
        let mut f = Forwarder::new();
        let _ = f.on_packet(pkt(1000, true), &book, now);
        let mut seq = 1001u64;
        b.iter(|| {
            seq += 1;
            black_box(f.on_packet(black_box(pkt(seq, false)), &book, now))
        })
    });
    // 200 subscribers of one packet: what a shard does per incoming packet of a fan-out.
    g.throughput(Throughput::Elements(200));
    g.bench_function("on_packet_x200_subscribers", |b| {
        let mut fs: Vec<Forwarder> = (0..200).map(|_| Forwarder::new()).collect();
        for f in &mut fs {
            let _ = f.on_packet(pkt(1000, true), &book, now);
        }
        let mut seq = 1001u64;
        b.iter(|| {
            seq += 1;
            let p = pkt(seq, false);
            for f in &mut fs {
                black_box(f.on_packet(black_box(p), &book, now));
            }
        })
    });
    // Three live simulcast layers, subscriber capped at layer 1: packets of layers 0 and 2 are
    // dropped, layer 1 forwarded.
    g.throughput(Throughput::Elements(3));
    g.bench_function("on_packet_simulcast_3_layers", |b| {
        let mut book = LayerBook::default();
        for l in 0..3 {
            book.saw(l, now);
        }
        let mut f = Forwarder::new();
        f.set_max_layer(1);
        let _ = f.on_packet(
            InPacket {
                layer: 1,
                ..pkt(1000, true)
            },
            &book,
            now,
        );
        let mut seq = 1001u64;
        b.iter(|| {
            seq += 1;
            for layer in 0..3 {
                black_box(f.on_packet(
                    black_box(InPacket {
                        layer,
                        ..pkt(seq, false)
                    }),
                    &book,
                    now + Duration::from_micros(seq),
                ));
            }
        })
    });
    // One VP9 SVC stream, three spatial layers of one packet per picture,
    // subscriber on layer 1: layer 2 is dropped and the numbers close up.
    g.throughput(Throughput::Elements(3));
    g.bench_function("on_packet_svc_3_spatial_layers", |b| {
        let mut book = LayerBook::default();
        for l in 0..3 {
            book.saw(l, now);
        }
        let svc = |seq: u64, spatial: u8, key: bool| InPacket {
            layers: Some(LayerInfo {
                spatial,
                temporal: 0,
                frame_start: true,
                frame_end: true,
                switch_up: 0,
            }),
            svc: true,
            marker: spatial == 2,
            timestamp: (seq / 3) as u32 * 3000,
            ..pkt(seq, key)
        };
        let mut f = Forwarder::new();
        f.set_max_layer(1);
        for spatial in 0..3 {
            let _ = f.on_packet(svc(999 + spatial as u64, spatial, spatial == 0), &book, now);
        }
        let mut seq = 1002u64;
        b.iter(|| {
            for spatial in 0..3 {
                seq += 1;
                black_box(f.on_packet(black_box(svc(seq, spatial, false)), &book, now));
            }
        })
    });
    g.finish();
}

fn binding_request(username: &[u8]) -> Vec<u8> {
    let mut attrs = Vec::new();
    let mut attr = |kind: u16, value: &[u8]| {
        attrs.extend_from_slice(&kind.to_be_bytes());
        attrs.extend_from_slice(&(value.len() as u16).to_be_bytes());
        attrs.extend_from_slice(value);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
    };
    // A browser's binding request: USERNAME, GOOG-NETWORK-INFO, ICE-CONTROLLING, PRIORITY,
    // MESSAGE-INTEGRITY, FINGERPRINT (values are filler; only the layout matters here).
    attr(0x0006, username);
    attr(0xc057, &[0, 1, 0, 10]);
    attr(0x802a, &[7; 8]);
    attr(0x0024, &[0x6e, 0, 0x1e, 0xff]);
    attr(0x0008, &[0xab; 20]);
    attr(0x8028, &[1, 2, 3, 4]);
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
    m.extend_from_slice(&[9; 12]);
    m.extend_from_slice(&attrs);
    m
}

fn stun(c: &mut Criterion) {
    let req = binding_request(b"a1B2c3D4e5F6g7H8:zz9Y");
    assert_eq!(local_ufrag(&req), Some("a1B2c3D4e5F6g7H8"));
    let mut rtp = vec![0x80, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
    rtp.resize(1200, 0);
    let mut g = c.benchmark_group("stun");
    g.throughput(Throughput::Elements(1));
    g.bench_function("local_ufrag", |b| {
        b.iter(|| black_box(local_ufrag(black_box(&req))))
    });
    g.bench_function("local_ufrag_on_rtp", |b| {
        b.iter(|| black_box(local_ufrag(black_box(&rtp))))
    });
    g.finish();
}

fn keyframe(c: &mut Criterion) {
    // VP8 descriptor with picture id (X, I, M bits), then a keyframe payload header.
    let mut vp8 = vec![0x90, 0x80, 0x80, 0x01, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
    vp8.resize(1100, 0);
    // H.264 STAP-A with SPS, PPS, IDR slice.
    let mut h264 = vec![
        0x18, 0x00, 0x04, 0x67, 0x42, 0xc0, 0x1f, 0x00, 0x02, 0x68, 0xce, 0x00, 0x04, 0x65, 0x88,
        0x84, 0x00,
    ];
    h264.resize(1100, 0);
    let mut g = c.benchmark_group("keyframe");
    g.throughput(Throughput::Elements(1));
    g.bench_function("vp8", |b| {
        b.iter(|| black_box(starts_keyframe(VideoCodec::Vp8, black_box(&vp8))))
    });
    g.bench_function("h264_stap_a", |b| {
        b.iter(|| black_box(starts_keyframe(VideoCodec::H264, black_box(&h264))))
    });
    g.finish();
}

fn descriptor(c: &mut Criterion) {
    // Captured from Chromium sending AV1 L3T3: the key frame's value with its
    // template structure, then a frame of spatial layer 1 (the same vectors
    // as codec/dd/tests.rs).
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    };
    let key = hex("c1017280081485214eafffaaaa863cf0430c10c302afc0aaa0063c00430010c002a000a80006000040001d954926e082b04a0941b820ac1282503157f974000ca864330e222222eca8655304224230eca877530077004200ef008601df010d");
    let frame = hex("86017340fc");
    let payload = [0u8; 1100];
    let mut reader = StreamReader::default();
    assert!(reader
        .read(VideoCodec::Av1, &payload, Some(&key))
        .layers
        .is_some());
    let mut g = c.benchmark_group("descriptor");
    g.throughput(Throughput::Elements(1));
    g.bench_function("av1_l3t3_frame", |b| {
        b.iter(|| black_box(reader.read(VideoCodec::Av1, &payload, Some(black_box(&frame)))))
    });
    g.finish();
}

fn srtp(c: &mut Criterion) {
    let provider = str0m::crypto::from_feature_flags();
    let gcm = provider.srtp_provider.aead_aes_128_gcm();
    let key = [0x42u8; 16];
    let iv = [7u8; 12];
    let header = [
        0x80u8, 0x60, 0x12, 0x34, 0, 0, 0x10, 0, 0xde, 0xad, 0xbe, 0xef,
    ];
    let payload = vec![0x5au8; 1100];
    let mut sealed = vec![0u8; payload.len() + 16];
    let mut enc = gcm.create_cipher(key, true);
    let mut dec = gcm.create_cipher(key, false);
    enc.encrypt(&iv, &header, &payload, &mut sealed)
        .expect("encrypt");
    let mut opened = vec![0u8; payload.len() + 16];
    let n = dec
        .decrypt(&iv, &[&header], &sealed, &mut opened)
        .expect("decrypt");
    assert_eq!(&opened[..n], &payload[..]);

    let mut g = c.benchmark_group("srtp");
    g.throughput(Throughput::Bytes(payload.len() as u64));
    g.bench_function("aes128gcm_protect_1100B", |b| {
        b.iter(|| {
            enc.encrypt(&iv, black_box(&header), black_box(&payload), &mut sealed)
                .expect("encrypt");
        })
    });
    g.bench_function("aes128gcm_unprotect_1100B", |b| {
        b.iter(|| {
            black_box(
                dec.decrypt(&iv, &[black_box(&header)], black_box(&sealed), &mut opened)
                    .expect("decrypt"),
            )
        })
    });
    let small = vec![0x5au8; 100];
    let mut small_sealed = vec![0u8; small.len() + 16];
    g.throughput(Throughput::Bytes(small.len() as u64));
    g.bench_function("aes128gcm_protect_100B_audio", |b| {
        b.iter(|| {
            enc.encrypt(
                &iv,
                black_box(&header),
                black_box(&small),
                &mut small_sealed,
            )
            .expect("encrypt");
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = forward, stun, keyframe, descriptor, srtp
}
criterion_main!(benches);
