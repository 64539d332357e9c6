//! The task behind a [`crate::Client`]: it owns the signal WebSocket, the two UDP sockets, the
//! timer and the channels to the handle, feeds what arrives to the [`Session`] and carries out
//! what the session asks. Everything LiveKit-specific is in the session; this is plumbing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use livekit_protocol::{JoinResponse, SignalRequest};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::counters::Shared;
use crate::error::{Error, Result};
use crate::event::{ClientEvent, LocalTrack};
use crate::media::{AudioOptions, VideoOptions};
use crate::options::ConnectOptions;
use crate::peer::Target;
use crate::session::{self, Output, RequestId, Session};
use crate::signal::{self, RtcParams, WsStream};

type Reply<T> = oneshot::Sender<Result<T>>;

/// The longest the loop sleeps without looking at the session's deadline again.
const MAX_SLEEP: Duration = Duration::from_millis(500);

#[allow(clippy::large_enum_variant)] // one command at a time; boxing buys nothing
pub(crate) enum Command {
    PublishAudio(AudioOptions, Reply<LocalTrack>),
    PublishVideo(VideoOptions, Reply<LocalTrack>),
    SendData {
        payload: Vec<u8>,
        reliable: bool,
        destination_identities: Vec<String>,
        topic: Option<String>,
        reply: Reply<()>,
    },
    Signal(SignalRequest, Reply<()>),
    RawWs(Message, Reply<()>),
    Leave(Reply<()>),
    CloseWs(Reply<()>),
    Reconnect(Reply<()>),
}

#[allow(clippy::large_enum_variant)] // lives on the stack for one loop turn
enum Wake {
    Ws(Option<std::result::Result<Message, tungstenite::Error>>),
    Cmd(Option<Command>),
    Udp(Target, std::io::Result<(usize, SocketAddr)>),
    Timer,
}

pub(crate) struct Driver {
    url: String,
    token: String,
    /// Our participant sid, which a resume presents.
    own_sid: String,
    opts: ConnectOptions,
    ws: Option<WsStream>,
    publisher_socket: UdpSocket,
    subscriber_socket: UdpSocket,
    session: Session,
    cmds: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<ClientEvent>,
    /// Commands the session answers later, by the id it was given.
    publishes: HashMap<RequestId, Reply<LocalTrack>>,
    data_sends: HashMap<RequestId, Reply<()>>,
    next_request: u64,
}

impl Driver {
    /// Bind the UDP sockets and start the session on `ws`, which has just delivered `join`.
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        url: String,
        token: String,
        opts: ConnectOptions,
        ws: WsStream,
        join: &JoinResponse,
        cmds: mpsc::UnboundedReceiver<Command>,
        events: mpsc::UnboundedSender<ClientEvent>,
        shared: Shared,
    ) -> Result<Self> {
        let publisher_socket = UdpSocket::bind(SocketAddr::new(opts.bind_ip, 0)).await?;
        let subscriber_socket = UdpSocket::bind(SocketAddr::new(opts.bind_ip, 0)).await?;
        let session = Session::new(
            Instant::now(),
            session::Config::from(&opts),
            join,
            publisher_socket.local_addr()?,
            subscriber_socket.local_addr()?,
            shared,
        )?;
        Ok(Self {
            url,
            token,
            own_sid: join
                .participant
                .as_ref()
                .map(|p| p.sid.clone())
                .unwrap_or_default(),
            opts,
            ws: Some(ws),
            publisher_socket,
            subscriber_socket,
            session,
            cmds,
            events,
            publishes: HashMap::new(),
            data_sends: HashMap::new(),
            next_request: 0,
        })
    }

    pub async fn run(mut self) {
        let mut pub_buf = vec![0u8; 2048];
        let mut sub_buf = vec![0u8; 2048];
        // What the session decided on creation: the join's tracks, an eager offer.
        self.flush().await;
        while !self.session.is_closed() {
            let now = Instant::now();
            let deadline = self.session.poll_timeout(now).clamp(now, now + MAX_SLEEP);
            let wake = {
                let ws = &mut self.ws;
                let ws_next = async {
                    match ws.as_mut() {
                        Some(w) => w.next().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    m = ws_next => Wake::Ws(m),
                    c = self.cmds.recv() => Wake::Cmd(c),
                    r = self.publisher_socket.recv_from(&mut pub_buf) => Wake::Udp(Target::Publisher, r),
                    r = self.subscriber_socket.recv_from(&mut sub_buf) => Wake::Udp(Target::Subscriber, r),
                    _ = tokio::time::sleep_until(deadline.into()) => Wake::Timer,
                }
            };
            match wake {
                Wake::Ws(m) => self.on_ws(m),
                Wake::Cmd(None) => self.shutdown().await,
                Wake::Cmd(Some(c)) => self.on_command(c).await,
                Wake::Udp(t, Ok((n, from))) => {
                    let buf = match t {
                        Target::Publisher => &pub_buf,
                        Target::Subscriber => &sub_buf,
                    };
                    self.session
                        .handle_datagram(Instant::now(), t, from, &buf[..n]);
                }
                Wake::Udp(t, Err(e)) => tracing::debug!(?t, error = %e, "UDP receive error"),
                Wake::Timer => self.session.handle_timeout(Instant::now()),
            }
            self.flush().await;
        }
    }

    /// Carry out everything the session has queued, in order. A failed signal send goes back
    /// to the session, which may queue more.
    async fn flush(&mut self) {
        while let Some(o) = self.session.poll_output() {
            match o {
                Output::Signal(req) => {
                    if let Err(e) = self.send_request(&req).await {
                        self.session.handle_signal_send_failed(req, e);
                    }
                }
                Output::Transmit(target, t) => {
                    let socket = match target {
                        Target::Publisher => &self.publisher_socket,
                        Target::Subscriber => &self.subscriber_socket,
                    };
                    if let Err(e) = socket.try_send_to(&t.contents, t.destination) {
                        tracing::trace!(error = %e, "UDP send dropped");
                    }
                }
                Output::Event(ev) => self.emit(ev),
                Output::Published(id, r) => {
                    if let Some(reply) = self.publishes.remove(&id) {
                        let _ = reply.send(r);
                    }
                }
                Output::DataSent(id, r) => {
                    if let Some(reply) = self.data_sends.remove(&id) {
                        let _ = reply.send(r);
                    }
                }
            }
        }
    }

    fn emit(&self, ev: ClientEvent) {
        let _ = self.events.send(ev);
    }

    fn request_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    async fn send_request(&mut self, req: &SignalRequest) -> Result<()> {
        let frame = self.opts.codec.encode(req)?;
        self.send_ws(frame).await
    }

    async fn send_ws(&mut self, frame: Message) -> Result<()> {
        match self.ws.as_mut() {
            Some(ws) => Ok(ws.send(frame).await?),
            None => Err(Error::signal_closed()),
        }
    }

    /// Close the WebSocket without telling the session (the caller does).
    async fn drop_ws(&mut self) {
        if let Some(mut ws) = self.ws.take() {
            let _ = ws.close(None).await;
        }
    }

    async fn shutdown(&mut self) {
        self.drop_ws().await;
        self.session.close(Instant::now());
    }

    fn on_ws(&mut self, m: Option<std::result::Result<Message, tungstenite::Error>>) {
        let msg = match m {
            None => return self.signal_lost("WebSocket ended".into()),
            Some(Err(e)) => return self.signal_lost(format!("WebSocket error: {e}")),
            Some(Ok(Message::Close(frame))) => {
                return self.signal_lost(frame.as_ref().map_or("closed by server".into(), |f| {
                    format!("closed by server ({}): {}", u16::from(f.code), f.reason)
                }))
            }
            Some(Ok(m)) => m,
        };
        match signal::decode_response(&msg) {
            Ok(Some((codec, resp))) => self.session.handle_signal(Instant::now(), codec, resp),
            Ok(None) => {} // a control frame
            Err(e) => self.emit(ClientEvent::Error(e.to_string())),
        }
    }

    fn signal_lost(&mut self, reason: String) {
        self.ws = None;
        self.session.handle_signal_closed(Instant::now(), reason);
    }

    async fn on_command(&mut self, c: Command) {
        match c {
            Command::PublishAudio(o, reply) => {
                let id = self.request_id();
                self.publishes.insert(id, reply);
                self.session.publish_audio(Instant::now(), id, &o);
            }
            Command::PublishVideo(o, reply) => {
                let id = self.request_id();
                self.publishes.insert(id, reply);
                self.session.publish_video(Instant::now(), id, &o);
            }
            Command::SendData {
                payload,
                reliable,
                destination_identities,
                topic,
                reply,
            } => {
                let id = self.request_id();
                self.data_sends.insert(id, reply);
                self.session.send_data(
                    Instant::now(),
                    id,
                    payload,
                    reliable,
                    destination_identities,
                    topic,
                );
            }
            Command::Signal(req, reply) => {
                let r = self.send_request(&req).await;
                let _ = reply.send(r);
            }
            Command::RawWs(msg, reply) => {
                let r = self.send_ws(msg).await;
                let _ = reply.send(r);
            }
            Command::Leave(reply) => {
                let r = self.send_request(&session::leave_request()).await;
                self.shutdown().await;
                let _ = reply.send(r);
            }
            Command::CloseWs(reply) => {
                // Drops the TCP connection without a close handshake where possible.
                self.drop_ws().await;
                self.session.signal_detached(Instant::now());
                let _ = reply.send(Ok(()));
            }
            Command::Reconnect(reply) => {
                self.drop_ws().await;
                self.session.signal_detached(Instant::now());
                match self.open_resume().await {
                    Ok(ws) => {
                        self.ws = Some(ws);
                        self.session.signal_resumed(Instant::now());
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
        }
    }

    async fn open_resume(&self) -> Result<WsStream> {
        let params = RtcParams {
            token: &self.token,
            protocol: self.opts.protocol,
            auto_subscribe: self.opts.auto_subscribe,
            adaptive_stream: self.opts.adaptive_stream,
            reconnect_sid: Some(&self.own_sid),
        };
        signal::open(&signal::rtc_url(&self.url, &params)?).await
    }
}
