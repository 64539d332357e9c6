//! The lobby: guests who came by invite into a room with the lobby on wait
//! here until a host admits or denies them. A ticket is `waiting`, then
//! `admitted` or `denied`; one not decided within `LOBBY_TTL` lapses.
//!
//! The store holds the tickets; `LobbyBell` rings in this process when a
//! room's lobby changes, so a waiting guest's request and a host's event
//! stream answer at once rather than on their next poll.

use std::collections::HashMap;

use parking_lot::Mutex;
use sqlx::Row;
use tokio::sync::watch;

use crate::store::{Store, StoreError};

/// Seconds a guest may wait for a host.
pub const LOBBY_TTL: i64 = 600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketState {
    Waiting,
    Admitted,
    Denied,
}

impl TicketState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Admitted => "admitted",
            Self::Denied => "denied",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "admitted" => Self::Admitted,
            "denied" => Self::Denied,
            _ => Self::Waiting,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: String,
    pub room_id: String,
    pub name: String,
    /// The LiveKit identity the guest gets once admitted.
    pub identity: String,
    pub state: TicketState,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Store {
    pub async fn add_ticket(&self, t: &Ticket, secret_hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO lobby_tickets (id, secret_hash, room_id, name, identity, state, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&t.id)
        .bind(secret_hash)
        .bind(&t.room_id)
        .bind(&t.name)
        .bind(&t.identity)
        .bind(t.state.as_str())
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The ticket a guest holds the secret of, in `room`.
    pub async fn ticket_by_secret(
        &self,
        room: &str,
        secret_hash: &str,
    ) -> Result<Option<Ticket>, StoreError> {
        let row = sqlx::query(
            "SELECT id, room_id, name, identity, state, created_at, expires_at FROM lobby_tickets \
             WHERE secret_hash = $1 AND room_id = $2",
        )
        .bind(secret_hash)
        .bind(room)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| ticket_from(&r)).transpose()
    }

    /// Those still waiting in `room`'s lobby, first come first.
    pub async fn waiting(&self, room: &str, now: i64) -> Result<Vec<Ticket>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, room_id, name, identity, state, created_at, expires_at FROM lobby_tickets \
             WHERE room_id = $1 AND state = 'waiting' AND expires_at > $2 ORDER BY created_at, id",
        )
        .bind(room)
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(ticket_from).collect()
    }

    /// Decides a waiting ticket; false when there is none to decide (never
    /// issued, lapsed, or already decided).
    pub async fn decide_ticket(
        &self,
        room: &str,
        id: &str,
        state: TicketState,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE lobby_tickets SET state = $1 \
             WHERE id = $2 AND room_id = $3 AND state = 'waiting' AND expires_at > $4",
        )
        .bind(state.as_str())
        .bind(id)
        .bind(room)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

fn ticket_from(r: &sqlx::any::AnyRow) -> Result<Ticket, StoreError> {
    Ok(Ticket {
        id: r.try_get("id")?,
        room_id: r.try_get("room_id")?,
        name: r.try_get("name")?,
        identity: r.try_get("identity")?,
        state: TicketState::parse(&r.try_get::<String, _>("state")?),
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

/// Per room, a counter bumped on every change to its lobby; watchers wake
/// on it. Rooms nobody watches are dropped on the next ring.
#[derive(Default)]
pub struct LobbyBell {
    rooms: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl LobbyBell {
    pub fn ring(&self, room: &str) {
        let mut rooms = self.rooms.lock();
        rooms.retain(|_, tx| tx.receiver_count() > 0);
        if let Some(tx) = rooms.get(room) {
            tx.send_modify(|n| *n += 1);
        }
    }

    pub fn watch(&self, room: &str) -> watch::Receiver<u64> {
        self.rooms
            .lock()
            .entry(room.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }
}
