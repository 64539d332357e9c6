//! A meeting's chat history: what late joiners read. Live delivery is the
//! participants' own data packets; this keeps a room's last
//! `KEPT_PER_ROOM` messages of the last `HISTORY_WINDOW_MS`.

use sqlx::Row;

use crate::store::{Store, StoreError};

/// The longest message kept, in characters (livekit-client's own chat
/// component caps about the same).
pub const MAX_MESSAGE_CHARS: usize = 2000;
/// A room keeps at most this many messages; older ones are dropped.
pub const KEPT_PER_ROOM: i64 = 1000;
/// History shows the messages of the last 12 hours: a room's link is
/// reused meeting after meeting, and yesterday's chat is not this one's.
pub const HISTORY_WINDOW_MS: i64 = 12 * 3600 * 1000;
/// How many messages one history answer carries at most.
pub const HISTORY_LIMIT: i64 = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub id: String,
    pub identity: String,
    pub name: String,
    pub body: String,
    pub sent_ms: i64,
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadMessage {
    #[error("a message id is 1 to 64 letters, digits, '-' or '_'")]
    Id,
    #[error("a message is 1 to {MAX_MESSAGE_CHARS} characters, not only spaces")]
    Body,
}

/// Checks what a sender hands in; the body is kept as sent (trimmed).
pub fn check(id: &str, body: &str) -> Result<String, BadMessage> {
    let id_ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !id_ok {
        return Err(BadMessage::Id);
    }
    let body = body.trim();
    if body.is_empty() || body.chars().count() > MAX_MESSAGE_CHARS {
        return Err(BadMessage::Body);
    }
    Ok(body.to_string())
}

impl Store {
    /// Keeps `msg` unless the room already has one with its id (a retry),
    /// and drops what falls beyond `KEPT_PER_ROOM`. The message as kept.
    pub async fn add_chat(&self, room: &str, msg: &ChatMessage) -> Result<ChatMessage, StoreError> {
        sqlx::query(
            "INSERT INTO chat_messages (room_id, id, identity, name, body, sent_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (room_id, id) DO NOTHING",
        )
        .bind(room)
        .bind(&msg.id)
        .bind(&msg.identity)
        .bind(&msg.name)
        .bind(&msg.body)
        .bind(msg.sent_ms)
        .execute(self.pool())
        .await?;
        sqlx::query(
            "DELETE FROM chat_messages WHERE room_id = $1 AND sent_ms < ( \
               SELECT sent_ms FROM chat_messages WHERE room_id = $1 \
               ORDER BY sent_ms DESC LIMIT 1 OFFSET $2)",
        )
        .bind(room)
        .bind(KEPT_PER_ROOM - 1)
        .execute(self.pool())
        .await?;
        let row = sqlx::query(
            "SELECT id, identity, name, body, sent_ms FROM chat_messages \
             WHERE room_id = $1 AND id = $2",
        )
        .bind(room)
        .bind(&msg.id)
        .fetch_one(self.pool())
        .await?;
        message(&row)
    }

    /// The room's messages since `since_ms`, oldest first, at most
    /// `HISTORY_LIMIT` (the newest of them).
    pub async fn chat_history(
        &self,
        room: &str,
        since_ms: i64,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, identity, name, body, sent_ms FROM chat_messages \
             WHERE room_id = $1 AND sent_ms >= $2 ORDER BY sent_ms DESC, id DESC LIMIT $3",
        )
        .bind(room)
        .bind(since_ms)
        .bind(HISTORY_LIMIT)
        .fetch_all(self.pool())
        .await?;
        let mut out = rows.iter().map(message).collect::<Result<Vec<_>, _>>()?;
        out.reverse();
        Ok(out)
    }
}

fn message(row: &sqlx::any::AnyRow) -> Result<ChatMessage, StoreError> {
    Ok(ChatMessage {
        id: row.try_get("id")?,
        identity: row.try_get("identity")?,
        name: row.try_get("name")?,
        body: row.try_get("body")?,
        sent_ms: row.try_get("sent_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_needs_a_plain_id_and_some_text_within_the_limit() {
        assert_eq!(check("m-1_a", "  hello  "), Ok("hello".into()));
        assert_eq!(check("", "hi"), Err(BadMessage::Id));
        assert_eq!(check("a/b", "hi"), Err(BadMessage::Id));
        assert_eq!(check(&"x".repeat(65), "hi"), Err(BadMessage::Id));
        assert_eq!(check("m", "   "), Err(BadMessage::Body));
        assert_eq!(
            check("m", &"가".repeat(MAX_MESSAGE_CHARS)).map(|b| b.chars().count()),
            Ok(MAX_MESSAGE_CHARS)
        );
        assert_eq!(
            check("m", &"a".repeat(MAX_MESSAGE_CHARS + 1)),
            Err(BadMessage::Body)
        );
    }
}
