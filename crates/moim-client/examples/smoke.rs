//! Two clients against a running server: alice publishes VP8 and audio, bob receives.
//!
//! `cargo run -p moim-client --example smoke -- [ws://127.0.0.1:7880] [seconds]`
//! Uses the dev key pair (`devkey`/`secret`).

use std::time::Duration;

use moim_client::{
    token, AudioOptions, Client, ClientEvent, ConnectOptions, VideoCodec, VideoOptions,
};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("smoke failed: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:7880".into());
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let room = "smoke";

    let (alice, mut alice_ev) = Client::connect(
        &url,
        &token::dev_token(room, "alice")?,
        ConnectOptions::default(),
    )
    .await?;
    println!(
        "alice joined as {} in room {:?}",
        alice.participant_sid(),
        alice.room_name()
    );
    let (bob, mut bob_ev) = Client::connect(
        &url,
        &token::dev_token(room, "bob")?,
        ConnectOptions::default(),
    )
    .await?;
    println!("bob joined as {}", bob.participant_sid());

    let audio = alice.publish_audio(AudioOptions::default()).await?;
    let video = alice
        .publish_video(VideoOptions {
            codec: VideoCodec::Vp8,
            ..VideoOptions::default()
        })
        .await?;
    println!(
        "alice published audio {} and video {}",
        audio.sid, video.sid
    );
    alice
        .send_data(b"hello bob".to_vec(), true, vec![], Some("chat".into()))
        .await?;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            Some(ev) = bob_ev.recv() => println!("bob   <- {}", short(&ev)),
            Some(ev) = alice_ev.recv() => println!("alice <- {}", short(&ev)),
        }
    }

    for (who, c) in [("alice", &alice), ("bob", &bob)] {
        let s = c.stats();
        println!("{who}: signal rtt {:?}", s.signal_rtt);
        for t in &s.sent {
            println!(
                "  sent {} rid {:?}: {} pkts {} bytes",
                t.track_sid, t.rid, t.packets, t.bytes
            );
        }
        for t in &s.received {
            println!(
                "  recv {} ({:?}) ssrc {}: {} pkts, lost {}, jitter {:?}, latency {:?}",
                t.track_sid, t.kind, t.ssrc, t.rx.packets, t.rx.lost, t.rx.jitter, t.rx.latency
            );
        }
    }
    let ok = bob.stats().received.iter().any(|t| t.rx.packets > 0);
    alice.leave().await?;
    bob.leave().await?;
    if ok {
        println!("OK: media flowed from alice to bob");
        Ok(())
    } else {
        Err("bob received no RTP".into())
    }
}

fn short(ev: &ClientEvent) -> String {
    let s = format!("{ev:?}");
    if s.chars().count() > 160 {
        format!("{}…", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}
