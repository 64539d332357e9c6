//! Logins under way, kept in the store between the redirect to the
//! provider and its callback (see `migrations/0003_login_attempts.sql`).
//! In the store rather than in memory so that a callback landing on
//! another moim node, or after a restart, still finds its login.

use sqlx::Row;

use crate::store::{Store, StoreError};

/// What the callback needs to finish a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub provider: String,
    /// SHA-256 of the cookie that binds the login to its browser.
    pub browser_hash: String,
    pub pkce_verifier: String,
    pub nonce: String,
    /// Where the browser goes once logged in: a path on this origin.
    pub return_to: String,
    pub expires_at: i64,
}

impl Store {
    /// Keeps an attempt under the hash of its `state`; expired ones are
    /// swept here, so the table holds only logins under way.
    pub async fn put_login_attempt(
        &self,
        state_hash: &str,
        a: &Attempt,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_attempts WHERE expires_at < $1")
            .bind(now)
            .execute(self.pool())
            .await?;
        sqlx::query(
            "INSERT INTO login_attempts \
             (state_hash, provider, browser_hash, pkce_verifier, nonce, return_to, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(state_hash)
        .bind(&a.provider)
        .bind(&a.browser_hash)
        .bind(&a.pkce_verifier)
        .bind(&a.nonce)
        .bind(&a.return_to)
        .bind(a.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Takes the attempt for a `state`: the first callback gets it, any
    /// later one with the same `state` gets `None`.
    pub async fn take_login_attempt(
        &self,
        state_hash: &str,
    ) -> Result<Option<Attempt>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM login_attempts WHERE state_hash = $1 \
             RETURNING provider, browser_hash, pkce_verifier, nonce, return_to, expires_at",
        )
        .bind(state_hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(Attempt {
            provider: row.try_get("provider")?,
            browser_hash: row.try_get("browser_hash")?,
            pkce_verifier: row.try_get("pkce_verifier")?,
            nonce: row.try_get("nonce")?,
            return_to: row.try_get("return_to")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }
}
