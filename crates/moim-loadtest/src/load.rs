//! The media load test: synthetic publishers and measuring subscribers over real WebRTC.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use moim_client::stats::LatencyHistogram;
use moim_client::token::AccessToken;
use moim_client::{AudioOptions, Client, ClientEvent, ConnectOptions, VideoCodec, VideoOptions};

use crate::gaps::GapTracker;
use crate::procfs;
use crate::report::{Latency, Report, Spread, StreamCounters, WindowTotals};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    pub api_key: String,
    pub api_secret: String,
    /// Room to join; a fresh random name when `None`.
    pub room: Option<String>,
    /// Participants that publish audio (and video unless `audio_only`). They subscribe too,
    /// so `publishers: 10, subscribers: 0` is a 10-person meeting.
    pub publishers: usize,
    /// Participants that only subscribe.
    pub subscribers: usize,
    pub audio_only: bool,
    pub video_bitrate_bps: u32,
    pub fps: u32,
    pub simulcast: bool,
    /// Length of the measurement window, after everyone joined and `settle` passed.
    pub duration: Duration,
    /// Wait between the last join and the start of the window.
    pub settle: Duration,
    /// Joins in flight at once.
    pub join_concurrency: usize,
    /// Give up on one participant's join or publish after this long.
    pub join_timeout: Duration,
    /// A received stream that delivers nothing for this long is a media gap,
    /// and the run fails.
    pub max_gap: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            url: "ws://127.0.0.1:7880".into(),
            api_key: "devkey".into(),
            api_secret: "secret".into(),
            room: None,
            publishers: 1,
            subscribers: 1,
            audio_only: false,
            video_bitrate_bps: 1_500_000,
            fps: 30,
            simulcast: false,
            duration: Duration::from_secs(10),
            settle: Duration::from_secs(2),
            join_concurrency: 8,
            join_timeout: Duration::from_secs(20),
            max_gap: Duration::from_secs(2),
        }
    }
}

/// Load-test failures (individual join failures are counted in the report instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("nothing to do: no publishers and no subscribers")]
    Empty,
    #[error("could not make an access token: {0}")]
    Token(moim_client::Error),
    #[error("no participant could join; first error: {0}")]
    NobodyJoined(String),
}

/// Edges of the measurement window, for callers that sample something else (the server's
/// `/proc` entries) over exactly the same interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Everyone has joined (or failed); the window starts now.
    WindowStart,
    /// The window ended; teardown follows.
    WindowEnd,
}

struct Participant {
    client: Client,
    publisher: bool,
    joined_after: Duration,
    first_media: Arc<OnceLock<Duration>>,
    /// Why the connection ended before the test let it go, if it did.
    dropped: Arc<OnceLock<String>>,
}

/// How often the window reads every stream's counters for gaps.
const GAP_SAMPLE: Duration = Duration::from_millis(200);

/// Run the load test.
pub async fn run(opts: &Options) -> Result<Report, Error> {
    run_with_hook(opts, &mut |_| {}).await
}

/// [`run`], calling `hook` at the window edges.
pub async fn run_with_hook(
    opts: &Options,
    hook: &mut (dyn FnMut(Phase) + Send),
) -> Result<Report, Error> {
    if opts.publishers + opts.subscribers == 0 {
        return Err(Error::Empty);
    }
    let room = opts
        .room
        .clone()
        .unwrap_or_else(|| format!("load-test-{:08x}", rand::random::<u32>()));
    let mut tokens = Vec::new();
    for i in 0..opts.publishers + opts.subscribers {
        let publisher = i < opts.publishers;
        let identity = if publisher {
            format!("pub-{i}")
        } else {
            format!("sub-{}", i - opts.publishers)
        };
        let jwt = AccessToken::new(&opts.api_key, &opts.api_secret)
            .identity(&identity)
            .room_join(&room)
            .ttl(Duration::from_secs(6 * 3600))
            .to_jwt()
            .map_err(Error::Token)?;
        tokens.push((publisher, jwt));
    }

    // Publishers first, so subscribers measure join to first media against live tracks.
    let pubs: Vec<_> = tokens.iter().filter(|t| t.0).cloned().collect();
    let subs: Vec<_> = tokens.iter().filter(|t| !t.0).cloned().collect();
    let mut participants = Vec::new();
    let mut failures = 0;
    let mut first_error = None;
    let tearing_down = Arc::new(AtomicBool::new(false));
    for batch in [pubs, subs] {
        let results: Vec<_> = futures_util::stream::iter(batch)
            .map(|(publisher, jwt)| join(opts, publisher, jwt, tearing_down.clone()))
            .buffer_unordered(opts.join_concurrency.max(1))
            .collect()
            .await;
        for r in results {
            match r {
                Ok(p) => participants.push(p),
                Err(e) => {
                    failures += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    if participants.is_empty() {
        return Err(Error::NobodyJoined(first_error.unwrap_or_default()));
    }

    tokio::time::sleep(opts.settle).await;
    let (rx0, sent0, lat0) = snapshot(&participants);
    let cpu0 = procfs::cpu_seconds("self");
    let t0 = Instant::now();
    hook(Phase::WindowStart);
    let mut gaps = GapTracker::new(opts.max_gap);
    loop {
        let at = t0.elapsed();
        let packets = received(&participants)
            .into_iter()
            .map(|(k, c)| (k, c.packets));
        gaps.observe(at, packets);
        if at >= opts.duration {
            break;
        }
        tokio::time::sleep(GAP_SAMPLE.min(opts.duration - at)).await;
    }
    hook(Phase::WindowEnd);
    tearing_down.store(true, Ordering::Release);
    let dropped: Vec<&String> = participants
        .iter()
        .filter_map(|p| p.dropped.get())
        .collect();
    let window = t0.elapsed().as_secs_f64();
    let cpu1 = procfs::cpu_seconds("self");
    let (rx1, sent1, lat1) = snapshot(&participants);

    let received = WindowTotals::between(&rx0, &rx1);
    let lat = lat1.since(&lat0);
    let latency = lat.summary().map_or(Latency::default(), |s| Latency {
        samples: s.samples,
        p50_ms: ms(s.p50),
        p99_ms: ms(s.p99),
        max_ms: ms(s.max),
        mean_ms: ms(s.mean),
    });
    let joins: Vec<f64> = participants.iter().map(|p| ms(p.joined_after)).collect();
    let subscribers: Vec<&Participant> = participants.iter().filter(|p| !p.publisher).collect();
    let first_media: Vec<f64> = subscribers
        .iter()
        .filter_map(|p| p.first_media.get().copied().map(ms))
        .collect();
    let report = Report {
        room,
        publishers: opts.publishers,
        subscribers: opts.subscribers,
        audio_only: opts.audio_only,
        video_bitrate_bps: opts.video_bitrate_bps,
        fps: opts.fps,
        simulcast: opts.simulcast,
        join_failures: failures,
        first_error,
        join: Spread::of(&joins),
        subscribers_without_media: subscribers.len() - first_media.len(),
        first_media: Spread::of(&first_media),
        window_secs: window,
        received_packets_per_sec: received.packets as f64 / window,
        received_mbps: received.bytes as f64 * 8.0 / window / 1e6,
        received,
        sent_packets: sent1.saturating_sub(sent0),
        latency,
        disconnects: dropped.len(),
        first_disconnect: dropped.first().map(|s| s.to_string()),
        media_gaps: gaps.gaps(),
        longest_gap_ms: ms(gaps.longest()),
        streams_stalled_at_end: gaps.stalled_now(t0.elapsed()),
        max_gap_ms: ms(opts.max_gap),
        tester_cpu_cores: match (cpu0, cpu1) {
            (Some(a), Some(b)) => (b - a) / window,
            _ => f64::NAN,
        },
    };

    // Leave politely, bounded in time; a participant that does not answer is dropped.
    let _ = tokio::time::timeout(
        Duration::from_secs(30),
        futures_util::stream::iter(participants.iter()).for_each_concurrent(32, |p| async move {
            let _ = p.client.leave().await;
        }),
    )
    .await;
    Ok(report)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn join(
    opts: &Options,
    publisher: bool,
    jwt: String,
    tearing_down: Arc<AtomicBool>,
) -> Result<Participant, String> {
    let copts = ConnectOptions {
        join_timeout: opts.join_timeout,
        publish_timeout: opts.join_timeout,
        ..ConnectOptions::default()
    };
    let t0 = Instant::now();
    let (client, mut events) = Client::connect(&opts.url, &jwt, copts)
        .await
        .map_err(|e| e.to_string())?;
    let joined_after = t0.elapsed();
    let first_media = Arc::new(OnceLock::new());
    let fm = first_media.clone();
    let dropped = Arc::new(OnceLock::new());
    let dr = dropped.clone();
    // Drain events (the channel is unbounded), note the first RTP packet and
    // any end of the connection the test did not ask for.
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let ended = match ev {
                ClientEvent::MediaReceived { .. } => {
                    let _ = fm.set(t0.elapsed());
                    None
                }
                ClientEvent::SignalClosed { reason } => Some(reason),
                ClientEvent::Left { reason, .. } => {
                    Some(format!("the server sent Leave ({reason:?})"))
                }
                _ => None,
            };
            if let Some(why) = ended {
                if !tearing_down.load(Ordering::Acquire) {
                    let _ = dr.set(why);
                }
            }
        }
    });
    if publisher {
        client
            .publish_audio(AudioOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        if !opts.audio_only {
            client
                .publish_video(VideoOptions {
                    codec: VideoCodec::Vp8,
                    simulcast: opts.simulcast,
                    bitrate_bps: opts.video_bitrate_bps,
                    fps: opts.fps.max(1),
                    ..VideoOptions::default()
                })
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(Participant {
        client,
        publisher,
        joined_after,
        first_media,
        dropped,
    })
}

type Snapshot = (
    BTreeMap<(usize, u32), StreamCounters>,
    u64,
    LatencyHistogram,
);

/// Every received stream's counters, keyed by participant and SSRC.
fn received(ps: &[Participant]) -> BTreeMap<(usize, u32), StreamCounters> {
    let mut rx = BTreeMap::new();
    for (i, p) in ps.iter().enumerate() {
        for t in &p.client.stats().received {
            rx.insert(
                (i, t.ssrc),
                StreamCounters {
                    packets: t.rx.packets,
                    bytes: t.rx.bytes,
                    expected: t.rx.expected,
                    lost: t.rx.lost,
                    jitter_ms: ms(t.rx.jitter),
                },
            );
        }
    }
    rx
}

fn snapshot(ps: &[Participant]) -> Snapshot {
    let mut sent = 0;
    let mut lat = LatencyHistogram::default();
    for p in ps {
        sent += p.client.stats().sent.iter().map(|t| t.packets).sum::<u64>();
        lat.merge(&p.client.latency_histogram());
    }
    (received(ps), sent, lat)
}
