//! Signal keepalive: `ping`/`ping_req` every `ping_interval` of the join response, the round
//! trip from `pong_resp`, and a warning once the server has been silent past `ping_timeout`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use livekit_protocol::{self as proto, signal_request};

use super::outbox::Outbox;
use crate::error::Result;
use crate::event::ClientEvent;

pub(crate) struct Keepalive {
    interval: Duration,
    timeout: Duration,
    /// `None` when the server asked for no pings.
    next_ping: Option<Instant>,
    last_heard: Instant,
    silence_reported: bool,
}

/// The ping timestamps are wall-clock milliseconds: the server echoes them in `pong_resp` and
/// logs them, so they must mean the same to it as to us.
fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Keepalive {
    pub fn new(now: Instant, join: &proto::JoinResponse) -> Self {
        Self {
            interval: Duration::from_secs(join.ping_interval.max(0) as u64),
            timeout: Duration::from_secs(join.ping_timeout.max(0) as u64),
            // The first ping right away gives an RTT early, and sets the server's JSON mode.
            next_ping: (join.ping_interval > 0).then_some(now),
            last_heard: now,
            silence_reported: false,
        }
    }

    pub fn next_ping(&self) -> Option<Instant> {
        self.next_ping
    }

    /// The server said something.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        self.silence_reported = false;
    }

    /// A new WebSocket: its silence counts from now.
    pub fn restart(&mut self, now: Instant) {
        self.last_heard = now;
    }

    /// The round trip of the ping a `pong_resp` answers.
    pub fn rtt(pong: &proto::Pong) -> Duration {
        Duration::from_millis((wall_ms() - pong.last_ping_timestamp).max(0) as u64)
    }

    /// Ping if due, carrying the last `rtt` (the server reports it), and warn once about a
    /// silent server. Nothing while there is no WebSocket.
    pub fn on_timeout(
        &mut self,
        now: Instant,
        rtt: Option<Duration>,
        out: &mut Outbox,
    ) -> Result<()> {
        let Some(at) = self.next_ping else {
            return Ok(());
        };
        if now < at {
            return Ok(());
        }
        self.next_ping = Some(now + self.interval);
        if !out.signal_open() {
            return Ok(());
        }
        let ts = wall_ms();
        out.send(signal_request::Message::Ping(ts))?;
        out.send(signal_request::Message::PingReq(proto::Ping {
            timestamp: ts,
            rtt: rtt.map_or(0, |d| d.as_millis() as i64),
        }))?;
        let silent = now.duration_since(self.last_heard);
        if !self.timeout.is_zero() && silent > self.timeout && !self.silence_reported {
            self.silence_reported = true;
            out.emit(ClientEvent::Error(format!(
                "no signal message from the server for {} s (ping_timeout {} s)",
                silent.as_secs(),
                self.timeout.as_secs()
            )));
        }
        Ok(())
    }
}
