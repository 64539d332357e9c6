//! Webhooks, signed as LiveKit signs them: a POST of the protojson
//! `WebhookEvent` with `Authorization: <JWT>`, whose `sha256` claim is the
//! base64 SHA-256 of the body.
//!
//! Rooms hand events to [`Notifier::emit`], which never blocks: the event goes
//! into a bounded queue, or is dropped (logged and counted) when the queue is
//! full. A background task delivers them with retries, in order per room: the
//! next event of a room waits until the previous one was delivered or given up.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use moim_proto::lk;
use moim_proto::token::{self, Claims};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tracing::{debug, error, warn};

/// Events waiting for delivery, across all rooms.
pub const MAX_PENDING: usize = 4096;
/// Attempts per URL before an event is given up.
pub const MAX_ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where to send webhooks and how to sign them.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub urls: Vec<String>,
    pub api_key: String,
    pub api_secret: String,
}

struct Shared {
    pending: AtomicUsize,
    dropped: AtomicU64,
    given_up: AtomicU64,
    delivered: AtomicU64,
}

/// The rooms' handle on webhook delivery. Cheap to clone; disabled when no
/// URL is configured.
#[derive(Clone)]
pub struct Notifier {
    tx: Option<mpsc::Sender<(String, lk::WebhookEvent)>>,
    shared: Arc<Shared>,
}

impl Notifier {
    pub fn disabled() -> Self {
        Self {
            tx: None,
            shared: Arc::new(Shared {
                pending: AtomicUsize::new(0),
                dropped: AtomicU64::new(0),
                given_up: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
            }),
        }
    }

    /// Starts the delivery task (needs a tokio runtime).
    pub fn start(config: Option<WebhookConfig>) -> Self {
        let Some(config) = config.filter(|c| !c.urls.is_empty()) else {
            return Self::disabled();
        };
        let client = match reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build() {
            Ok(c) => c,
            Err(e) => {
                error!("webhooks disabled: cannot build the HTTP client: {e}");
                return Self::disabled();
            }
        };
        let mut n = Self::disabled();
        let (tx, rx) = mpsc::channel(MAX_PENDING);
        n.tx = Some(tx);
        let ctx = Arc::new(Delivery {
            client,
            config,
            shared: n.shared.clone(),
            queues: Mutex::new(HashMap::new()),
        });
        tokio::spawn(dispatch(rx, ctx));
        n
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Queues an event; never waits.
    pub fn emit(&self, room: &str, mut event: lk::WebhookEvent) {
        let Some(tx) = &self.tx else {
            return;
        };
        if event.id.is_empty() {
            event.id = format!("EV_{}", &moim_proto::ids::track_sid()[3..]);
        }
        let pending = self.shared.pending.fetch_add(1, Ordering::AcqRel);
        if pending >= MAX_PENDING || tx.try_send((room.to_string(), event.clone())).is_err() {
            self.shared.pending.fetch_sub(1, Ordering::AcqRel);
            let dropped = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            error!(
                room,
                event = %event.event,
                dropped_total = dropped,
                "webhook queue is full ({MAX_PENDING} events): event DROPPED. The webhook receiver is down or too slow"
            );
        }
    }
}

struct Delivery {
    client: reqwest::Client,
    config: WebhookConfig,
    shared: Arc<Shared>,
    /// Per room, the events not yet delivered. A room has an entry exactly
    /// while its worker runs.
    queues: Mutex<HashMap<String, VecDeque<lk::WebhookEvent>>>,
}

async fn dispatch(mut rx: mpsc::Receiver<(String, lk::WebhookEvent)>, ctx: Arc<Delivery>) {
    while let Some((room, event)) = rx.recv().await {
        let start_worker = {
            let mut queues = ctx.queues.lock();
            match queues.get_mut(&room) {
                Some(q) => {
                    q.push_back(event);
                    false
                }
                None => {
                    queues.insert(room.clone(), VecDeque::from([event]));
                    true
                }
            }
        };
        if start_worker {
            tokio::spawn(room_worker(room, ctx.clone()));
        }
    }
}

async fn room_worker(room: String, ctx: Arc<Delivery>) {
    loop {
        let event = {
            let mut queues = ctx.queues.lock();
            let Some(q) = queues.get_mut(&room) else {
                return;
            };
            match q.pop_front() {
                Some(e) => e,
                None => {
                    queues.remove(&room);
                    return;
                }
            }
        };
        deliver(&ctx, &event).await;
        ctx.shared.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The body and its `Authorization` value.
pub fn sign(event: &lk::WebhookEvent, api_key: &str, api_secret: &str) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(event).unwrap_or_default();
    let digest = Sha256::digest(&body);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let claims = Claims {
        iss: api_key.to_string(),
        nbf: now.saturating_sub(1),
        exp: now + 600,
        sha256: base64::engine::general_purpose::STANDARD.encode(digest),
        ..Default::default()
    };
    (body, token::mint_claims(api_secret, &claims))
}

async fn deliver(ctx: &Delivery, event: &lk::WebhookEvent) {
    let (body, auth) = sign(event, &ctx.config.api_key, &ctx.config.api_secret);
    for url in &ctx.config.urls {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=MAX_ATTEMPTS {
            let result = ctx
                .client
                .post(url)
                .header("Content-Type", "application/webhook+json")
                .header("Authorization", auth.as_str())
                .body(body.clone())
                .send()
                .await;
            let why = match result {
                Ok(r) if r.status().is_success() => {
                    ctx.shared.delivered.fetch_add(1, Ordering::Relaxed);
                    debug!(%url, event = %event.event, id = %event.id, "webhook delivered");
                    break;
                }
                Ok(r) => format!("HTTP {}", r.status()),
                Err(e) if e.is_connect() => format!("cannot connect ({e})"),
                Err(e) if e.is_timeout() => format!("no answer within {REQUEST_TIMEOUT:?}"),
                Err(e) => e.to_string(),
            };
            if attempt == MAX_ATTEMPTS {
                ctx.shared.given_up.fetch_add(1, Ordering::Relaxed);
                error!(%url, event = %event.event, id = %event.id, "webhook given up after {MAX_ATTEMPTS} attempts: {why}");
                break;
            }
            warn!(%url, event = %event.event, id = %event.id, attempt, "webhook delivery failed ({why}); retrying in {backoff:?}");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(16));
        }
    }
}

impl crate::config::ServerConfig {
    /// Where webhooks go and the key that signs them: the configured
    /// `webhook_api_key`, or the only API key there is.
    pub fn webhook_config(&self) -> Option<WebhookConfig> {
        if self.webhook_urls.is_empty() {
            return None;
        }
        let key = match &self.webhook_api_key {
            Some(k) => k.clone(),
            None => {
                let keys: Vec<&str> = self.keys.keys().collect();
                if keys.len() != 1 {
                    error!("webhooks disabled: several API keys are configured; name the one that signs webhooks ([webhook] api_key)");
                    return None;
                }
                keys[0].to_string()
            }
        };
        let Some(secret) = self.keys.secret(&key) else {
            error!("webhooks disabled: webhook API key \"{key}\" is not one of the configured API keys");
            return None;
        };
        Some(WebhookConfig {
            urls: self.webhook_urls.clone(),
            api_key: key,
            api_secret: secret.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moim_proto::token::KeyStore;

    #[test]
    fn the_signature_covers_the_body() {
        let ev = lk::WebhookEvent {
            event: "room_started".into(),
            id: "EV_1".into(),
            ..Default::default()
        };
        let (body, auth) = sign(&ev, "devkey", "secret");
        let claims = KeyStore::new([("devkey".to_string(), "secret".to_string())])
            .verify(&auth)
            .expect("signed with the key's secret");
        let want = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&body));
        assert_eq!(claims.sha256, want);
        let text = String::from_utf8(body).expect("utf8");
        assert!(text.contains("\"event\":\"room_started\""), "{text}");
    }
}
