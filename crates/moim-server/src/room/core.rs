//! The room core: participants, tracks and subscriptions, with no IO and no
//! clock of its own. Every input comes with the time; every effect is an
//! output (see `output.rs`). Joining is in `join.rs`, signal requests in
//! `signal_requests.rs`, media-plane events in `media_events.rs`, the
//! server API in `admin.rs`, webhooks in `hooks.rs`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use moim_proto::lk::{self, signal_request::Message as Req, signal_response::Message as Resp};
use moim_sfu::{Command, MediaEvent, PeerKey, RoomKey, TrackKey};
use tracing::{debug, info};

use super::dynacast::Dynacast;
use super::ids::Ids;
use super::output::{Now, Outbox, RoomOutput, SignalClose};
use super::participant::{ConnectionId, Participant, ParticipantKey};
use super::quality::Qualities;
use super::speakers::Speakers;
use super::wire;

/// A room's settings; the server API may change them while it runs.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// An empty room closes after this long.
    pub empty_timeout: Duration,
    /// A participant whose signal connection dropped may resume this long.
    pub departure_timeout: Duration,
    /// 0: no limit.
    pub max_participants: u32,
    /// Whether to build webhook events at all.
    pub webhooks: bool,
    /// The server's node id, told to clients in `ServerInfo`.
    pub node_id: String,
}

pub struct RoomCore {
    pub(super) key: RoomKey,
    pub(super) name: String,
    pub(super) sid: String,
    /// Unix seconds.
    pub(super) created_at: i64,
    pub(super) metadata: String,
    pub(super) config: RoomConfig,
    pub(super) participants: HashMap<ParticipantKey, Participant>,
    pub(super) by_peer: HashMap<PeerKey, ParticipantKey>,
    pub(super) ids: Box<dyn Ids>,
    pub(super) out: Outbox,
    /// The wall clock of the input being handled, for timestamps.
    pub(super) unix_ms: i64,
    /// The monotonic time of the input being handled.
    pub(super) at: Instant,
    pub(super) empty_since: Option<Instant>,
    /// DeleteRoom or shutdown: close as soon as the room is empty.
    pub(super) deleted: bool,
    pub(super) speakers: Speakers,
    pub(super) qualities: Qualities,
    pub(super) dynacast: Dynacast,
    closed: bool,
}

impl RoomCore {
    pub fn new(name: String, config: RoomConfig, mut ids: Box<dyn Ids>, now: Now) -> Self {
        let mut room = Self {
            key: ids.room_key(),
            sid: ids.room_sid(),
            created_at: now.unix_secs(),
            metadata: String::new(),
            name,
            config,
            participants: HashMap::new(),
            by_peer: HashMap::new(),
            ids,
            out: Outbox::default(),
            unix_ms: now.unix_ms,
            at: now.at,
            empty_since: Some(now.at),
            deleted: false,
            speakers: Speakers::default(),
            qualities: Qualities::default(),
            dynacast: Dynacast::default(),
            closed: false,
        };
        info!(room = %room.name, sid = %room.sid, "room started");
        room.hook_room("room_started");
        room
    }

    /// Takes the time of the input being handled: the wall clock for
    /// timestamps, the monotonic one for deadlines set while handling it.
    pub(super) fn set_clock(&mut self, now: Now) {
        self.unix_ms = now.unix_ms;
        self.at = now.at;
    }

    /// The room's key on the media plane.
    pub fn key(&self) -> RoomKey {
        self.key
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Participants in the room, including those waiting to resume.
    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    /// The room closed (empty past its timeout, or deleted): it takes no
    /// more input, and its shell should stop.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The next output to carry out.
    pub fn poll_output(&mut self) -> Option<RoomOutput> {
        self.out.pop()
    }

    /// When [`RoomCore::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let departures = self
            .participants
            .values()
            .filter_map(|p| p.disconnected_at)
            .map(|t| t + self.config.departure_timeout);
        let closing = if self.participants.is_empty() {
            self.empty_since.map(|t| {
                if self.deleted {
                    t
                } else {
                    t + self.config.empty_timeout
                }
            })
        } else {
            None
        };
        departures
            .chain(closing)
            .chain(self.speakers.due)
            .chain(self.qualities.due)
            .chain(self.dynacast.due)
            .chain(self.next_token_refresh())
            .min()
    }

    /// Expires participants that did not resume in time, and closes the room
    /// once it has been empty long enough.
    pub fn handle_timeout(&mut self, now: Now) {
        self.set_clock(now);
        let timeout = self.config.departure_timeout;
        let gone: Vec<ParticipantKey> = self
            .participants
            .values()
            .filter(|p| p.disconnected_at.is_some_and(|t| now.at >= t + timeout))
            .map(|p| p.key)
            .collect();
        if self.speakers.due.is_some_and(|t| t <= now.at) {
            self.send_speakers(now.at);
        }
        if self.qualities.due.is_some_and(|t| t <= now.at) {
            self.send_qualities();
        }
        if self.dynacast.due.is_some_and(|t| t <= now.at) {
            self.decide_dynacast(now.at);
        }
        self.refresh_due_tokens(now.at);
        for key in gone {
            info!(
                participant = %key,
                "participant did not resume within the departure timeout"
            );
            self.remove_participant(now.at, key, lk::DisconnectReason::ClientInitiated);
        }
        if self.should_close(now.at) {
            self.closed = true;
            info!(room = %self.name, sid = %self.sid, "room closed");
            self.hook_room("room_finished");
        }
    }

    fn should_close(&self, now: Instant) -> bool {
        self.participants.is_empty()
            && self.empty_since.is_some_and(|t| {
                self.deleted || now.saturating_duration_since(t) >= self.config.empty_timeout
            })
    }

    /// A request from a participant's signal connection. Requests from a
    /// connection the participant no longer uses are ignored.
    pub fn handle_signal(
        &mut self,
        now: Now,
        participant: ParticipantKey,
        connection: ConnectionId,
        message: Req,
    ) {
        self.set_clock(now);
        let current = self
            .participants
            .get(&participant)
            .is_some_and(|p| p.connection == Some(connection));
        if current {
            self.on_signal(now.at, participant, message);
        } else {
            debug!(%participant, "signal from a replaced connection ignored");
        }
    }

    /// A participant's signal connection ended. It may resume within the
    /// departure timeout.
    pub fn handle_signal_closed(
        &mut self,
        now: Now,
        participant: ParticipantKey,
        connection: ConnectionId,
    ) {
        if let Some(p) = self.participants.get_mut(&participant) {
            if p.connection == Some(connection) {
                debug!(identity = %p.identity, "signal connection lost; waiting for resume");
                p.connection = None;
                p.disconnected_at = Some(now.at);
            }
        }
    }

    pub fn handle_media(&mut self, now: Now, event: MediaEvent) {
        self.set_clock(now);
        self.on_media(now.at, event);
    }

    /// moim is shutting down: every participant is sent elsewhere and the
    /// room closes.
    pub fn handle_shutdown(&mut self, now: Now) {
        self.set_clock(now);
        self.remove_everyone(now.at, lk::DisconnectReason::ServerShutdown);
        self.deleted = true;
    }

    pub(super) fn remove_everyone(&mut self, now: Instant, reason: lk::DisconnectReason) {
        let mut keys: Vec<ParticipantKey> = self.participants.keys().copied().collect();
        keys.sort();
        for key in keys {
            self.remove_participant(now, key, reason);
        }
    }

    pub(crate) fn room_info(&self) -> lk::Room {
        lk::Room {
            sid: self.sid.clone(),
            name: self.name.clone(),
            empty_timeout: self.config.empty_timeout.as_secs() as u32,
            departure_timeout: self.config.departure_timeout.as_secs() as u32,
            max_participants: self.config.max_participants,
            creation_time: self.created_at,
            creation_time_ms: self.created_at * 1000,
            metadata: self.metadata.clone(),
            num_participants: self.participants.values().filter(|p| !p.hidden()).count() as u32,
            num_publishers: self
                .participants
                .values()
                .filter(|p| !p.tracks.is_empty())
                .count() as u32,
            enabled_codecs: enabled_codecs(),
            ..Default::default()
        }
    }

    /// Sends participant updates to everyone except `except`.
    pub(crate) fn broadcast_update(
        &mut self,
        infos: Vec<lk::ParticipantInfo>,
        except: Option<ParticipantKey>,
    ) {
        for p in self.participants.values() {
            if Some(p.key) != except {
                self.out.tell(
                    p,
                    Resp::Update(lk::ParticipantUpdate {
                        participants: infos.clone(),
                    }),
                );
            }
        }
    }

    /// Removes a participant everywhere: its peers, its tracks at every
    /// subscriber, and from everyone's participant list.
    pub(crate) fn remove_participant(
        &mut self,
        now: Instant,
        key: ParticipantKey,
        reason: lk::DisconnectReason,
    ) {
        let Some(mut p) = self.participants.remove(&key) else {
            return;
        };
        if reason != lk::DisconnectReason::ClientInitiated {
            self.out.tell(&p, wire::leave(reason));
        }
        self.out.close(&mut p, SignalClose::Left(reason));
        for t in &p.tracks {
            self.out.media(Command::RemoveTrack { track: t.key });
            self.dynacast.unpublished(t.key);
        }
        self.dynacast.forget(key);
        self.out.media(Command::RemovePeer { peer: p.publisher });
        if p.receiver != p.publisher {
            self.out.media(Command::RemovePeer { peer: p.receiver });
        }
        self.by_peer.remove(&p.publisher);
        self.by_peer.remove(&p.receiver);
        self.qualities.forget_peers(&[p.publisher, p.receiver]);
        for other in self.participants.values_mut() {
            other
                .subscriptions
                .retain(|t| !p.tracks.iter().any(|pt| pt.key == *t));
        }
        if !p.hidden() {
            self.broadcast_update(vec![p.disconnected_info()], None);
        }
        self.speakers.left(now, &p.sid);
        self.decide_dynacast(now);
        info!(room = %self.name, identity = %p.identity, ?reason, "participant left");
        self.hook_left(&p);
        if self.participants.is_empty() {
            self.empty_since = Some(now);
        }
    }

    pub(crate) fn subscribe(&mut self, key: ParticipantKey, track: TrackKey) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        if !p.grant.can_subscribe() || p.subscriptions.contains(&track) {
            return;
        }
        p.subscriptions.push(track);
        // It may now hear of someone whose quality, or voice, it was never told.
        self.qualities.touch(self.at);
        self.speakers.touch(self.at);
        self.out.media(Command::Subscribe {
            peer: p.receiver,
            track,
        });
        // A new subscriber wants the top layer until it says otherwise.
        self.dynacast.want(track, key, Some(Some(2)));
        self.decide_dynacast(self.at);
    }

    pub(crate) fn unsubscribe(&mut self, key: ParticipantKey, track: TrackKey) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        if let Some(pos) = p.subscriptions.iter().position(|t| *t == track) {
            p.subscriptions.remove(pos);
            self.out.media(Command::Unsubscribe {
                peer: p.receiver,
                track,
            });
            self.dynacast.want(track, key, None);
            self.decide_dynacast(self.at);
            self.speakers.touch(self.at);
        }
    }

    /// A published track, by sid, once its SDP section is known.
    pub(crate) fn bound_track(&self, sid: &str) -> Option<TrackKey> {
        self.participants
            .values()
            .flat_map(|p| p.tracks.iter())
            .find(|t| t.info.sid == sid && t.bound)
            .map(|t| t.key)
    }
}

pub(crate) fn enabled_codecs() -> Vec<lk::Codec> {
    [
        "audio/opus",
        "audio/red",
        "video/VP8",
        "video/H264",
        "video/VP9",
        "video/AV1",
    ]
    .into_iter()
    .map(|m| lk::Codec {
        mime: m.into(),
        fmtp_line: String::new(),
    })
    .collect()
}
