//! Signal-only participants: a WebSocket join (`/rtc`, protobuf), then pings, and nothing
//! else. No PeerConnection on our side, so thousands fit in one client process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use livekit_protocol::{signal_request, signal_response, SignalRequest};
use moim_client::signal::{self, FrameCodec, RtcParams};
use moim_client::token::AccessToken;
use serde::Serialize;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::report::Spread;

/// What to run.
#[derive(Debug, Clone)]
pub struct SignalOptions {
    pub url: String,
    pub api_key: String,
    pub api_secret: String,
    pub participants: usize,
    /// Participants per room (rooms are `signal-<n>`); every join is announced to the room,
    /// so one huge room measures the N² fan-out of participant updates, not idle cost.
    pub room_size: usize,
    /// WebSocket joins in flight at once.
    pub concurrency: usize,
    /// How long to hold everyone after the last join.
    pub hold: Duration,
    /// Seconds between pings of one connection (the server drops a silent one after 20 s).
    pub ping_every: Duration,
    /// Give up on the whole join phase after this long.
    pub join_deadline: Duration,
}

impl Default for SignalOptions {
    fn default() -> Self {
        Self {
            url: "ws://127.0.0.1:7880".into(),
            api_key: "devkey".into(),
            api_secret: "secret".into(),
            participants: 1000,
            room_size: 100,
            concurrency: 64,
            hold: Duration::from_secs(10),
            ping_every: Duration::from_secs(10),
            join_deadline: Duration::from_secs(300),
        }
    }
}

/// Result of a signal-only run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SignalReport {
    pub requested: usize,
    pub room_size: usize,
    pub joined: usize,
    pub failures: usize,
    pub first_error: Option<String>,
    /// First connect to last join response.
    pub join_phase_secs: f64,
    pub joins_per_sec: f64,
    /// WebSocket connect to `join` response, per participant.
    pub join: Spread,
    /// Connections still open when the hold ended.
    pub still_connected: usize,
    pub hold_secs: f64,
}

/// Edges for sampling the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalPhase {
    /// Everyone joined; holding.
    AllJoined,
    /// The hold ended; closing.
    HoldEnd,
}

/// Join `participants` signal-only participants, hold them, close them.
pub async fn run_signal_only(
    opts: &SignalOptions,
    hook: &mut (dyn FnMut(SignalPhase) + Send),
) -> SignalReport {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<Duration, String>>();
    let (alive_tx, mut alive_rx) = mpsc::unbounded_channel::<()>();
    let permits = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(opts.participants);
    for i in 0..opts.participants {
        let room = format!("signal-{}", i / opts.room_size.max(1));
        let jwt = AccessToken::new(&opts.api_key, &opts.api_secret)
            .identity(&format!("sig-{i}"))
            .room_join(&room)
            .ttl(Duration::from_secs(6 * 3600))
            .to_jwt();
        let url = opts.url.clone();
        let permits = permits.clone();
        let done = done_tx.clone();
        let alive = alive_tx.clone();
        let stop = stop_rx.clone();
        let ping_every = opts.ping_every;
        tasks.push(tokio::spawn(async move {
            let jwt = match jwt {
                Ok(j) => j,
                Err(e) => {
                    let _ = done.send(Err(e.to_string()));
                    return;
                }
            };
            one(&url, &jwt, permits, done, alive, stop, ping_every).await;
        }));
    }
    drop(done_tx);
    drop(alive_tx);

    let mut joins = Vec::new();
    let mut failures = 0;
    let mut first_error = None;
    let deadline = tokio::time::Instant::now() + opts.join_deadline;
    while joins.len() + failures < opts.participants {
        match tokio::time::timeout_at(deadline, done_rx.recv()).await {
            Ok(Some(Ok(d))) => joins.push(d.as_secs_f64() * 1000.0),
            Ok(Some(Err(e))) => {
                failures += 1;
                first_error.get_or_insert(e);
            }
            Ok(None) => break,
            Err(_) => {
                first_error.get_or_insert("join phase deadline passed".into());
                break;
            }
        }
    }
    let join_phase = start.elapsed().as_secs_f64();
    hook(SignalPhase::AllJoined);
    let held = Instant::now();
    tokio::time::sleep(opts.hold).await;
    hook(SignalPhase::HoldEnd);
    let hold_secs = held.elapsed().as_secs_f64();
    // Every task that is still in its hold loop answers the roll call.
    let _ = stop_tx.send(true);
    let mut still = 0;
    let roll = tokio::time::timeout(Duration::from_secs(60), async {
        while alive_rx.recv().await.is_some() {
            still += 1;
        }
    });
    let _ = roll.await;
    for t in tasks {
        t.abort();
    }
    SignalReport {
        requested: opts.participants,
        room_size: opts.room_size,
        joined: joins.len(),
        failures,
        first_error,
        join_phase_secs: join_phase,
        joins_per_sec: joins.len() as f64 / join_phase.max(1e-9),
        join: Spread::of(&joins),
        still_connected: still,
        hold_secs,
    }
}

async fn one(
    url: &str,
    jwt: &str,
    permits: Arc<Semaphore>,
    done: mpsc::UnboundedSender<Result<Duration, String>>,
    alive: mpsc::UnboundedSender<()>,
    mut stop: watch::Receiver<bool>,
    ping_every: Duration,
) {
    let params = RtcParams {
        token: jwt,
        protocol: 16,
        auto_subscribe: true,
        adaptive_stream: false,
        reconnect_sid: None,
    };
    let joined = async {
        let _permit = permits.acquire().await.map_err(|e| e.to_string())?;
        let url = signal::rtc_url(url, &params).map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let mut ws = signal::open(&url).await.map_err(|e| e.to_string())?;
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
                .await
                .map_err(|_| "no join response in 30 s".to_string())?
                .ok_or("closed before join")?
                .map_err(|e| e.to_string())?;
            match signal::decode_response(&msg).map_err(|e| e.to_string())? {
                Some((_, r)) => match r.message {
                    Some(signal_response::Message::Join(_)) => return Ok((ws, t0.elapsed())),
                    other => return Err(format!("first message was not join: {other:?}")),
                },
                None => continue,
            }
        }
    };
    let (mut ws, took) = match joined.await {
        Ok(x) => x,
        Err(e) => {
            let _ = done.send(Err(e));
            return;
        }
    };
    let _ = done.send(Ok(took));
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + ping_every.mul_f64(rand::random::<f64>().clamp(0.05, 1.0)),
        ping_every,
    );
    loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = alive.send(());
                let _ = ws.close(None).await;
                return;
            }
            _ = tick.tick() => {
                let ping = SignalRequest {
                    message: Some(signal_request::Message::Ping(
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as i64),
                    )),
                };
                let Ok(m) = FrameCodec::Protobuf.encode(&ping) else { return };
                if ws.send(m).await.is_err() {
                    return;
                }
            }
            m = ws.next() => match m {
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}
