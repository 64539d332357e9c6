//! The public API: [`Client::connect`], the handle's methods and the [`ClientEvent`] stream.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use livekit_protocol::{self as proto, signal_response, JoinResponse, SignalRequest};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::counters::{self, SentStats, Shared};
use crate::driver::{Command, Driver};
use crate::error::{Error, Result};
use crate::event::{ClientEvent, LocalTrack, TrackKind};
use crate::media::{AudioOptions, VideoOptions};
use crate::options::ConnectOptions;
use crate::signal::{self, FrameCodec, RtcParams};
use crate::stats::ReceiveSnapshot;

/// Receive statistics of one remote RTP stream.
#[derive(Debug, Clone)]
pub struct TrackStats {
    pub track_sid: String,
    pub participant_sid: String,
    pub mid: String,
    pub ssrc: u32,
    pub rid: Option<String>,
    pub kind: TrackKind,
    pub rx: ReceiveSnapshot,
}

/// Everything [`Client::stats`] reports.
#[derive(Debug, Clone, Default)]
pub struct ClientStats {
    pub received: Vec<TrackStats>,
    pub sent: Vec<SentStats>,
    /// Last signal round trip measured with `ping_req`/`pong_resp`.
    pub signal_rtt: Option<Duration>,
    pub signal_frames_binary: u64,
    pub signal_frames_text: u64,
    pub data_packets_received: u64,
}

impl ClientStats {
    /// Received streams of one track (several with simulcast layer switches).
    pub fn track<'a>(&'a self, track_sid: &'a str) -> impl Iterator<Item = &'a TrackStats> + 'a {
        self.received
            .iter()
            .filter(move |t| t.track_sid == track_sid)
    }
}

/// The receiving end of a client's events.
pub struct ClientEvents {
    rx: mpsc::UnboundedReceiver<ClientEvent>,
}

impl ClientEvents {
    /// Next event; `None` once the client's task has ended.
    pub async fn recv(&mut self) -> Option<ClientEvent> {
        self.rx.recv().await
    }

    /// Skip events until `f` returns `Some`, or fail after `timeout`.
    pub async fn wait_for<T>(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(&ClientEvent) -> Option<T>,
    ) -> Result<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => {
                    return Err(Error::Timeout {
                        what: "the expected client event".into(),
                        after_ms: timeout.as_millis() as u64,
                    })
                }
                Ok(None) => return Err(Error::Closed("client task ended".into())),
                Ok(Some(ev)) => {
                    if let Some(t) = f(&ev) {
                        return Ok(t);
                    }
                }
            }
        }
    }

    /// Take whatever events are queued right now.
    pub fn drain(&mut self) -> Vec<ClientEvent> {
        let mut out = Vec::new();
        while let Ok(ev) = self.rx.try_recv() {
            out.push(ev);
        }
        out
    }
}

/// Handle to one connected participant. Dropping it ends the session (without `leave`).
pub struct Client {
    cmd: mpsc::UnboundedSender<Command>,
    shared: Shared,
    join: Arc<JoinResponse>,
    publish_timeout: Duration,
}

impl Client {
    /// Connect to `url` (`ws://host:7880`, with or without `/rtc`) with an access token, wait for
    /// `join`, and start the task that drives signalling and both PeerConnections.
    pub async fn connect(
        url: &str,
        token: &str,
        opts: ConnectOptions,
    ) -> Result<(Client, ClientEvents)> {
        let params = RtcParams {
            token,
            protocol: opts.protocol,
            auto_subscribe: opts.auto_subscribe,
            adaptive_stream: opts.adaptive_stream,
            reconnect_sid: None,
        };
        let rtc_url = signal::rtc_url(url, &params)?;
        let timeout = opts.join_timeout;
        let timed_out = || Error::Timeout {
            what: format!("the join response from {}", signal::redacted(&rtc_url)),
            after_ms: timeout.as_millis() as u64,
        };
        let mut ws = tokio::time::timeout(timeout, signal::open(&rtc_url))
            .await
            .map_err(|_| timed_out())??;
        let (first_codec, join) = loop {
            let msg = tokio::time::timeout(timeout, ws.next())
                .await
                .map_err(|_| timed_out())?
                .ok_or_else(|| Error::Closed("server closed the WebSocket before join".into()))??;
            if let Message::Close(frame) = &msg {
                return Err(Error::Closed(format!(
                    "server closed the WebSocket before join: {}",
                    frame
                        .as_ref()
                        .map_or("no reason".into(), |f| f.reason.to_string())
                )));
            }
            let Some((codec, resp)) = signal::decode_response(&msg)? else {
                continue;
            };
            match resp.message {
                Some(signal_response::Message::Join(j)) => break (codec, j),
                Some(signal_response::Message::Leave(l)) => {
                    return Err(Error::Closed(format!(
                        "server sent leave instead of join (reason {:?})",
                        proto::DisconnectReason::try_from(l.reason)
                            .unwrap_or(proto::DisconnectReason::UnknownReason)
                    )))
                }
                other => {
                    return Err(Error::Protocol(format!(
                        "first message must be join, got {}",
                        message_name(other.as_ref())
                    )))
                }
            }
        };
        if join.participant.as_ref().is_none_or(|p| p.sid.is_empty()) {
            return Err(Error::Protocol(
                "join response has no participant sid".into(),
            ));
        }

        let shared: Shared = Arc::default();
        {
            let mut s = counters::lock(&shared);
            match first_codec {
                FrameCodec::Protobuf => s.frames_binary += 1,
                FrameCodec::Json => s.frames_text += 1,
            }
        }
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let join = Arc::new(join);
        let _ = ev_tx.send(ClientEvent::Joined(Box::new((*join).clone())));
        let driver = Driver::new(
            url.to_owned(),
            token.to_owned(),
            opts.clone(),
            ws,
            &join,
            cmd_rx,
            ev_tx,
            shared.clone(),
        )
        .await?;
        tokio::spawn(driver.run());
        Ok((
            Client {
                cmd: cmd_tx,
                shared,
                join,
                publish_timeout: opts.publish_timeout,
            },
            ClientEvents { rx: ev_rx },
        ))
    }

    /// The join response.
    pub fn join_response(&self) -> &JoinResponse {
        &self.join
    }

    /// Our participant sid (`PA_…`).
    pub fn participant_sid(&self) -> &str {
        self.join
            .participant
            .as_ref()
            .map_or("", |p| p.sid.as_str())
    }

    /// Our identity.
    pub fn identity(&self) -> &str {
        self.join
            .participant
            .as_ref()
            .map_or("", |p| p.identity.as_str())
    }

    /// Room name from the join response.
    pub fn room_name(&self) -> &str {
        self.join.room.as_ref().map_or("", |r| r.name.as_str())
    }

    async fn call<T>(
        &self,
        what: &str,
        timeout: Duration,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(make(tx))
            .map_err(|_| Error::Closed("client task ended".into()))?;
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(Error::Timeout {
                what: what.to_owned(),
                after_ms: timeout.as_millis() as u64,
            }),
            Ok(Err(_)) => Err(Error::Closed("client task ended".into())),
            Ok(Ok(r)) => r,
        }
    }

    /// Publish a synthetic Opus track and start sending 50 packets a second once the publisher
    /// PC is connected.
    pub async fn publish_audio(&self, opts: AudioOptions) -> Result<LocalTrack> {
        self.call(
            "audio track publication (TrackPublishedResponse and SDP answer)",
            self.publish_timeout,
            |r| Command::PublishAudio(opts, r),
        )
        .await
    }

    /// Publish a synthetic VP8 or H.264 track, with three simulcast layers if asked.
    pub async fn publish_video(&self, opts: VideoOptions) -> Result<LocalTrack> {
        self.call(
            "video track publication (TrackPublishedResponse and SDP answer)",
            self.publish_timeout,
            |r| Command::PublishVideo(opts, r),
        )
        .await
    }

    /// Send a user data packet over the publisher's `_reliable` or `_lossy` channel. Queued
    /// until the channel opens (the publisher PC is negotiated if it was not yet).
    pub async fn send_data(
        &self,
        payload: Vec<u8>,
        reliable: bool,
        destination_identities: Vec<String>,
        topic: Option<String>,
    ) -> Result<()> {
        self.call("data send", self.publish_timeout, |r| Command::SendData {
            payload,
            reliable,
            destination_identities,
            topic,
            reply: r,
        })
        .await
    }

    /// Send any `SignalRequest` with the connection's codec.
    pub async fn send_signal(&self, req: SignalRequest) -> Result<()> {
        self.call("signal send", Duration::from_secs(5), |r| {
            Command::Signal(req, r)
        })
        .await
    }

    /// Put an arbitrary WebSocket message on the wire (for bad-input tests).
    pub async fn send_raw_ws(&self, msg: Message) -> Result<()> {
        self.call("raw WebSocket send", Duration::from_secs(5), |r| {
            Command::RawWs(msg, r)
        })
        .await
    }

    /// Subscribe to or unsubscribe from tracks (`UpdateSubscription`).
    pub async fn set_subscribed(&self, track_sids: Vec<String>, subscribe: bool) -> Result<()> {
        self.send_signal(SignalRequest {
            message: Some(proto::signal_request::Message::Subscription(
                proto::UpdateSubscription {
                    track_sids,
                    subscribe,
                    participant_tracks: vec![],
                },
            )),
        })
        .await
    }

    /// Send `leave` (client initiated), close the WebSocket and the PeerConnections, and end
    /// the task.
    pub async fn leave(&self) -> Result<()> {
        self.call("leave", Duration::from_secs(5), Command::Leave)
            .await
    }

    /// Drop the WebSocket without `leave`, keeping both PeerConnections (and media) running, as
    /// when a network blip kills the signal connection.
    pub async fn close_ws_only(&self) -> Result<()> {
        self.call("WebSocket close", Duration::from_secs(5), Command::CloseWs)
            .await
    }

    /// Resume on a new WebSocket (`reconnect=1&sid=…`). Returns once the WebSocket is open; the
    /// server's answer arrives as [`ClientEvent::Reconnected`] or [`ClientEvent::Left`].
    pub async fn reconnect(&self) -> Result<()> {
        self.call("reconnect", Duration::from_secs(10), Command::Reconnect)
            .await
    }

    /// The latency samples of every received stream, merged (for load tests that aggregate
    /// percentiles over many subscribers).
    pub fn latency_histogram(&self) -> crate::stats::LatencyHistogram {
        let s = counters::lock(&self.shared);
        let mut h = crate::stats::LatencyHistogram::default();
        for e in s.rx.values() {
            h.merge(e.stats.latency_histogram());
        }
        h
    }

    /// A snapshot of the media and signalling counters.
    pub fn stats(&self) -> ClientStats {
        let s = counters::lock(&self.shared);
        let mut received: Vec<TrackStats> =
            s.rx.iter()
                .map(|(ssrc, e)| TrackStats {
                    track_sid: e.track_sid.clone(),
                    participant_sid: e.participant_sid.clone(),
                    mid: e.mid.clone(),
                    ssrc: *ssrc,
                    rid: e.rid.clone(),
                    kind: e.kind,
                    rx: e.stats.snapshot(),
                })
                .collect();
        received.sort_by(|a, b| (&a.track_sid, a.ssrc).cmp(&(&b.track_sid, b.ssrc)));
        let mut sent: Vec<SentStats> = s.tx.values().cloned().collect();
        sent.sort_by(|a, b| (&a.track_sid, &a.rid).cmp(&(&b.track_sid, &b.rid)));
        ClientStats {
            received,
            sent,
            signal_rtt: s.signal_rtt,
            signal_frames_binary: s.frames_binary,
            signal_frames_text: s.frames_text,
            data_packets_received: s.data_packets,
        }
    }
}

/// Name of a response variant, for error messages.
pub(crate) fn message_name(m: Option<&signal_response::Message>) -> String {
    match m {
        None => "an empty SignalResponse".into(),
        Some(m) => {
            let dbg = format!("{m:?}");
            dbg.split(['(', ' ']).next().unwrap_or("?").to_owned()
        }
    }
}
