//! Invite links: a token for one room, good until it expires and for a
//! number of uses. Spending a use is one conditional UPDATE, so two guests
//! racing for the last use cannot both get in.

use sqlx::Row;

use crate::store::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub room_id: String,
    pub expires_at: i64,
    pub max_uses: Option<i64>,
}

/// What presenting an invite came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    /// One use taken; the guest may come in.
    Admitted,
    /// No such invite for this room.
    Unknown,
    Expired,
    UsedUp,
}

impl Store {
    pub async fn create_invite(
        &self,
        token_hash: &str,
        invite: &Invite,
        created_by: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO invites (token_hash, room_id, created_by, created_at, expires_at, max_uses, uses) \
             VALUES ($1, $2, $3, $4, $5, $6, 0)",
        )
        .bind(token_hash)
        .bind(&invite.room_id)
        .bind(created_by)
        .bind(now)
        .bind(invite.expires_at)
        .bind(invite.max_uses)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Takes one use of the invite for `room`, if it has one left.
    pub async fn spend_invite(
        &self,
        room: &str,
        token_hash: &str,
        now: i64,
    ) -> Result<Spent, StoreError> {
        let taken = sqlx::query(
            "UPDATE invites SET uses = uses + 1 \
             WHERE token_hash = $1 AND room_id = $2 AND expires_at > $3 \
             AND (max_uses IS NULL OR uses < max_uses)",
        )
        .bind(token_hash)
        .bind(room)
        .bind(now)
        .execute(self.pool())
        .await?;
        if taken.rows_affected() == 1 {
            return Ok(Spent::Admitted);
        }
        let row =
            sqlx::query("SELECT expires_at FROM invites WHERE token_hash = $1 AND room_id = $2")
                .bind(token_hash)
                .bind(room)
                .fetch_optional(self.pool())
                .await?;
        Ok(match row {
            None => Spent::Unknown,
            Some(r) if r.try_get::<i64, _>("expires_at")? <= now => Spent::Expired,
            Some(_) => Spent::UsedUp,
        })
    }
}
