//! The tokio task around a [`RoomCore`]: it reads the room's inbox, the
//! media plane's events and the clock, feeds them to the core, and carries
//! out what the core asks (signal messages, media commands, webhooks).
//! Nothing here decides anything about the room.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use moim_proto::lk;
use moim_proto::token::{mint_claims, Claims, KeyStore};
use moim_sfu::{Command, MediaEvent, MediaPlane};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;
use tracing::warn;

use super::admin::{AdminRequest, AdminResult};
use super::core::{RoomConfig, RoomCore};
use super::error::JoinError;
use super::ids::PlaneIds;
use super::join::{JoinParams, Joined};
use super::output::{Now, RoomOutput, SignalClose};
use super::participant::{ConnectionId, ParticipantKey};
use crate::webhook::Notifier;

/// What the room hands a signal connection to write.
///
/// The message is boxed because the channel is not: tokio's unbounded channel
/// allocates its slots 32 at a time, and an unboxed response (896 bytes,
/// sized by `JoinResponse`) made that ~28 KiB for every idle participant.
#[derive(Debug)]
pub enum Outbound {
    Signal(Box<lk::signal_response::Message>),
    /// Close the WebSocket after the frames already queued, saying why.
    Close(SignalClose),
}

// A signal request is large, but it is moved once, from the connection to
// the room; boxing it would cost an allocation for every request.
#[allow(clippy::large_enum_variant)]
pub enum RoomInput {
    Join {
        claims: Box<Claims>,
        params: Box<JoinParams>,
        out: UnboundedSender<Outbound>,
        reply: oneshot::Sender<Result<Joined, JoinError>>,
    },
    Signal {
        participant: ParticipantKey,
        connection: ConnectionId,
        message: lk::signal_request::Message,
    },
    SignalClosed {
        participant: ParticipantKey,
        connection: ConnectionId,
    },
    /// moim is shutting down: every participant is sent elsewhere and the
    /// room closes.
    Shutdown,
    /// A RoomService call.
    Admin(AdminRequest, oneshot::Sender<AdminResult>),
}

/// The room's inbox: how signal connections, the server API and the drain
/// reach a running room.
#[derive(Clone)]
pub struct RoomHandle(UnboundedSender<RoomInput>);

/// The room closed; its inbox takes nothing more.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the room has closed")]
pub struct RoomGone;

impl RoomHandle {
    pub fn send(&self, input: RoomInput) -> Result<(), RoomGone> {
        self.0.send(input).map_err(|_| RoomGone)
    }

    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    pub fn same_room(&self, other: &RoomHandle) -> bool {
        self.0.same_channel(&other.0)
    }
}

/// What a room task needs from the server around it.
pub struct RoomEnv {
    pub media: Arc<MediaPlane>,
    pub webhooks: Notifier,
    /// Participants in every room, for the drain.
    pub census: Arc<AtomicUsize>,
    /// The API keys, to sign the participants' refreshed tokens.
    pub keys: KeyStore,
}

/// Starts a room. The returned future ends when the room has closed.
pub fn spawn(
    name: String,
    config: RoomConfig,
    env: RoomEnv,
) -> (RoomHandle, impl std::future::Future<Output = ()> + Send) {
    let (tx, rx) = mpsc::unbounded_channel();
    let ids = Box::new(PlaneIds(env.media.clone()));
    let core = RoomCore::new(name, config, ids, Now::system());
    let shell = RoomShell {
        core,
        env,
        connections: HashMap::new(),
        next_connection: 1,
        counted: 0,
    };
    (RoomHandle(tx), shell.run(rx))
}

struct RoomShell {
    core: RoomCore,
    env: RoomEnv,
    /// Every signal connection the core may still write to.
    connections: HashMap<ConnectionId, UnboundedSender<Outbound>>,
    next_connection: u64,
    /// This room's share of the census.
    counted: usize,
}

impl RoomShell {
    async fn run(mut self, mut inputs: UnboundedReceiver<RoomInput>) {
        let (events_tx, mut events) = mpsc::unbounded_channel::<MediaEvent>();
        let room = self.core.key();
        self.env
            .media
            .send(
                room,
                Command::OpenRoom {
                    room,
                    events: events_tx,
                },
            )
            .await;
        loop {
            self.carry_out().await;
            if self.core.is_closed() {
                break;
            }
            let deadline = self.core.poll_timeout();
            let timer = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(input) = inputs.recv() => self.handle(input),
                Some(event) = events.recv() => self.core.handle_media(Now::system(), event),
                () = timer => self.core.handle_timeout(Now::system()),
            }
        }
        self.env.media.send(room, Command::CloseRoom { room }).await;
        // Whoever raced with closing is told so; a joiner retries on a new room.
        inputs.close();
        while let Ok(input) = inputs.try_recv() {
            if let RoomInput::Join { reply, .. } = input {
                let _ = reply.send(Err(JoinError::RoomClosed));
            }
        }
    }

    fn handle(&mut self, input: RoomInput) {
        let now = Now::system();
        match input {
            RoomInput::Join {
                claims,
                params,
                out,
                reply,
            } => {
                let connection = ConnectionId(self.next_connection);
                self.next_connection += 1;
                self.connections.insert(connection, out);
                let result = self.core.handle_join(now, connection, *claims, *params);
                if result.is_err() {
                    self.connections.remove(&connection);
                }
                let _ = reply.send(result);
            }
            RoomInput::Signal {
                participant,
                connection,
                message,
            } => self
                .core
                .handle_signal(now, participant, connection, message),
            RoomInput::SignalClosed {
                participant,
                connection,
            } => {
                self.connections.remove(&connection);
                self.core.handle_signal_closed(now, participant, connection);
            }
            RoomInput::Shutdown => self.core.handle_shutdown(now),
            RoomInput::Admin(request, reply) => {
                let _ = reply.send(self.core.handle_admin(now, request));
            }
        }
    }

    /// Signs a refreshed token with the key of the one it replaces.
    fn send_token(&self, to: ConnectionId, claims: &Claims) {
        let Some(out) = self.connections.get(&to) else {
            return;
        };
        let Some(secret) = self.env.keys.secret(&claims.iss) else {
            // The key left the configuration since the participant joined.
            warn!(
                identity = %claims.sub, api_key = %claims.iss,
                "no fresh token sent: API key {} signed this participant's token but is no longer \
                 configured. It stays in the call, but a reconnect after its token expires is \
                 refused; keep a key configured until the tokens it signed have expired",
                claims.iss
            );
            return;
        };
        let jwt = mint_claims(secret, claims);
        let _ = out.send(Outbound::Signal(Box::new(
            lk::signal_response::Message::RefreshToken(jwt),
        )));
    }

    /// Does what the core asked, in order. A full media queue makes the
    /// room wait here, before it takes its next input.
    async fn carry_out(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                RoomOutput::Signal { to, message } => {
                    if let Some(out) = self.connections.get(&to) {
                        let _ = out.send(Outbound::Signal(message));
                    }
                }
                RoomOutput::CloseSignal { to, why } => {
                    if let Some(out) = self.connections.remove(&to) {
                        let _ = out.send(Outbound::Close(why));
                    }
                }
                RoomOutput::Media(command) => self.env.media.send(self.core.key(), command).await,
                RoomOutput::Webhook(event) => self.env.webhooks.emit(self.core.name(), *event),
                RoomOutput::RefreshToken { to, claims } => self.send_token(to, &claims),
            }
        }
        let now = self.core.participant_count();
        if now > self.counted {
            self.env
                .census
                .fetch_add(now - self.counted, Ordering::AcqRel);
        } else if now < self.counted {
            self.env
                .census
                .fetch_sub(self.counted - now, Ordering::AcqRel);
        }
        self.counted = now;
    }
}
