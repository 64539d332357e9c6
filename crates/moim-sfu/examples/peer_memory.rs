//! What one idle str0m PeerConnection costs in memory, built by moim's own
//! `RtcFactory` (shared DTLS certificate, 300-packet video history), with and
//! without the data-channel offer a subscriber PeerConnection makes.
//!
//! `cargo run --release -p moim-sfu --example peer_memory [-- --offer]`
//! (one measurement per process, so freed memory is not counted twice)
//!
//! Used for the signal-scale analysis in docs/BENCHMARKS.md.

use std::time::Instant;

use moim_sfu::api::PeerRole;
use moim_sfu::rtc_factory::RtcFactory;
use str0m::channel::ChannelConfig;

const PEERS: u64 = 2000;

fn rss_kib() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "no VmRSS in /proc/self/status".to_string())
}

fn measure(with_offer: bool) -> Result<u64, String> {
    let factory = RtcFactory::new("127.0.0.1:7882".parse().map_err(|_| "addr")?, None, true);
    let now = Instant::now();
    let before = rss_kib()?;
    let mut held = Vec::new();
    for _ in 0..PEERS {
        let mut rtc = factory.build(PeerRole::Subscriber, now);
        let mut offer = None;
        if with_offer {
            let mut api = rtc.sdp_api();
            for label in ["_reliable", "_lossy"] {
                api.add_channel_with_config(ChannelConfig {
                    label: label.into(),
                    ..Default::default()
                });
            }
            offer = api.apply().map(|(o, pending)| (o.to_sdp_string(), pending));
        }
        held.push((rtc, offer));
    }
    Ok((rss_kib()? - before) / PEERS)
}

fn main() -> Result<(), String> {
    if std::env::args().any(|a| a == "--offer") {
        println!("idle Rtc with a data-channel offer: {} KiB", measure(true)?);
    } else {
        println!("idle Rtc: {} KiB", measure(false)?);
    }
    Ok(())
}
