//! `moim load-test`: synthetic publishers and measuring subscribers against a running server.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::fail;

#[derive(Parser)]
pub struct LoadTestArgs {
    /// Server URL (ws://, wss://, http:// or https://).
    #[arg(long, default_value = "ws://127.0.0.1:7880", env = "LIVEKIT_URL")]
    url: String,
    #[arg(long, default_value = "devkey", env = "LIVEKIT_API_KEY")]
    api_key: String,
    #[arg(long, default_value = "secret", env = "LIVEKIT_API_SECRET")]
    api_secret: String,
    /// Room name; a random one when omitted.
    #[arg(long)]
    room: Option<String>,
    /// Participants that publish (and also subscribe to each other).
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Participants that only subscribe.
    #[arg(long, default_value_t = 1)]
    subscribers: usize,
    /// Publish audio only.
    #[arg(long)]
    audio_only: bool,
    /// Video bitrate in bits per second (top layer with --simulcast).
    #[arg(long, default_value_t = 1_500_000)]
    video_bitrate: u32,
    /// Video frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Publish three simulcast layers (q, h, f).
    #[arg(long)]
    simulcast: bool,
    /// Measurement window after everyone joined, e.g. 30s, 2m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Joins in flight at once.
    #[arg(long, default_value_t = 8)]
    join_concurrency: usize,
    /// A received stream silent this long is a media gap, and the run fails.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    max_gap: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

pub fn run(args: LoadTestArgs) -> ExitCode {
    let opts = moim_loadtest::Options {
        url: args.url,
        api_key: args.api_key,
        api_secret: args.api_secret,
        room: args.room,
        publishers: args.publishers,
        subscribers: args.subscribers,
        audio_only: args.audio_only,
        video_bitrate_bps: args.video_bitrate,
        fps: args.fps,
        simulcast: args.simulcast,
        duration: args.duration,
        join_concurrency: args.join_concurrency,
        max_gap: args.max_gap,
        ..moim_loadtest::Options::default()
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(moim_loadtest::run(&opts)) {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => return fail(e),
                }
            } else {
                print!("{}", report.table());
            }
            let problems = report.problems();
            if problems.is_empty() {
                return ExitCode::SUCCESS;
            }
            for p in &problems {
                eprintln!("load test failed: {p}");
            }
            ExitCode::FAILURE
        }
        Err(e) => fail(e),
    }
}
