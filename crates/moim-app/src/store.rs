//! Where users, sessions, refresh tokens and signing keys live: SQLite by
//! default (a file created on first start), PostgreSQL when the URL says
//! `postgres://`. Both run the same migrations (`migrations/`, portable
//! SQL) at start, through sqlx's `Any` driver.

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::access::SigningKey;
use crate::refresh::{SessionState, TokenState};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the database {url}: {source}. For SQLite, check that the data directory \
         exists and is writable; for PostgreSQL, that the server runs and the URL's user, \
         password and database are right"
    )]
    Open { url: String, source: sqlx::Error },
    #[error("cannot bring the database schema up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "a database query failed: {0}. If it keeps failing, check that the database is \
         reachable and has room (for SQLite, the disk under the data directory; for \
         PostgreSQL, the server and its connection limit)"
    )]
    Query(#[from] sqlx::Error),
    #[error("a stored signing key is not valid base64")]
    BadKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub display_name: String,
    pub email: Option<String>,
    pub avatar_url: Option<String>,
}

/// What a login says about the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub display_name: String,
    pub email: Option<String>,
    pub avatar_url: Option<String>,
}

/// A refresh token as stored, with its session.
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    pub session_id: String,
    pub user_id: String,
    pub token: TokenState,
    pub session: SessionState,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
}

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let url_for_sqlx = if url.starts_with("sqlite:") && !url.contains('?') {
            format!("{url}?mode=rwc")
        } else {
            url.to_string()
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if url.starts_with("sqlite:") { 1 } else { 8 })
            .connect(&url_for_sqlx)
            .await
            .map_err(|source| StoreError::Open {
                url: redact(url),
                source,
            })?;
        if url.starts_with("sqlite:") {
            sqlx::query("PRAGMA foreign_keys = ON")
                .execute(&pool)
                .await?;
        }
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The user behind (issuer, subject), created on first login; the
    /// profile is refreshed on every login.
    pub async fn login(
        &self,
        issuer: &str,
        subject: &str,
        profile: &Profile,
        now: i64,
    ) -> Result<User, StoreError> {
        let mut tx = self.pool.begin().await?;
        let existing =
            sqlx::query("SELECT user_id FROM identities WHERE issuer = $1 AND subject = $2")
                .bind(issuer)
                .bind(subject)
                .fetch_optional(&mut *tx)
                .await?;
        let id = match existing {
            Some(row) => {
                let id: String = row.try_get("user_id")?;
                sqlx::query(
                    "UPDATE users SET display_name = $1, email = $2, avatar_url = $3 WHERE id = $4",
                )
                .bind(&profile.display_name)
                .bind(&profile.email)
                .bind(&profile.avatar_url)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                id
            }
            None => {
                let id = crate::random_id("U_");
                sqlx::query(
                    "INSERT INTO users (id, display_name, email, avatar_url, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&id)
                .bind(&profile.display_name)
                .bind(&profile.email)
                .bind(&profile.avatar_url)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO identities (issuer, subject, user_id) VALUES ($1, $2, $3)",
                )
                .bind(issuer)
                .bind(subject)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        tx.commit().await?;
        Ok(User {
            id,
            display_name: profile.display_name.clone(),
            email: profile.email.clone(),
            avatar_url: profile.avatar_url.clone(),
        })
    }

    pub async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row =
            sqlx::query("SELECT id, display_name, email, avatar_url FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| user_from(&r)).transpose()
    }

    /// A new session with its first refresh token (stored by hash).
    pub async fn create_session(
        &self,
        user_id: &str,
        refresh_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<String, StoreError> {
        let id = crate::random_id("S_");
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        insert_refresh(&mut tx, refresh_hash, &id, now, expires_at).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn refresh_record(&self, hash: &str) -> Result<Option<RefreshRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT t.session_id, s.user_id, t.expires_at, t.used_at, s.revoked_at, \
                    n.used_at AS successor_used_at \
             FROM refresh_tokens t \
             JOIN sessions s ON s.id = t.session_id \
             LEFT JOIN refresh_tokens n ON n.hash = t.replaced_by \
             WHERE t.hash = $1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        Ok(Some(RefreshRecord {
            session_id: r.try_get("session_id")?,
            user_id: r.try_get("user_id")?,
            token: TokenState {
                expires_at: r.try_get("expires_at")?,
                used_at: r.try_get("used_at")?,
                successor_used: r.try_get::<Option<i64>, _>("successor_used_at")?.is_some(),
            },
            session: SessionState {
                revoked: r.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
            },
        }))
    }

    /// Spends `hash` for `successor`. `first`: only if it is still unspent
    /// (false when another request spent it first, so the caller judges
    /// again); otherwise a retry within the grace.
    pub async fn rotate(
        &self,
        hash: &str,
        session_id: &str,
        successor: &str,
        now: i64,
        expires_at: i64,
        first: bool,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let spent = if first {
            sqlx::query(
                "UPDATE refresh_tokens SET used_at = $1, replaced_by = $2 \
                 WHERE hash = $3 AND used_at IS NULL",
            )
            .bind(now)
            .bind(successor)
            .bind(hash)
            .execute(&mut *tx)
            .await?
        } else {
            sqlx::query("UPDATE refresh_tokens SET replaced_by = $1 WHERE hash = $2")
                .bind(successor)
                .bind(hash)
                .execute(&mut *tx)
                .await?
        };
        if spent.rows_affected() != 1 {
            return Ok(false);
        }
        insert_refresh(&mut tx, successor, session_id, now, expires_at).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Revokes one session; false if it was already revoked or unknown.
    pub async fn revoke_session(
        &self,
        id: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(reason)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Revokes every live session of a user; returns how many.
    pub async fn revoke_user_sessions(
        &self,
        user_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE user_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(reason)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    /// Whether the session is live (not revoked).
    pub async fn session_live(&self, id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT revoked_at FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<Option<i64>, _>("revoked_at")?.is_none(),
            None => false,
        })
    }

    pub async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        use base64::Engine;
        let rows = sqlx::query(
            "SELECT kid, secret, created_at FROM signing_keys WHERE retired_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let secret: String = r.try_get("secret")?;
                Ok(SigningKey {
                    kid: r.try_get("kid")?,
                    secret: base64::engine::general_purpose::STANDARD
                        .decode(secret)
                        .map_err(|_| StoreError::BadKey)?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    pub async fn add_signing_key(&self, key: &SigningKey) -> Result<(), StoreError> {
        use base64::Engine;
        sqlx::query("INSERT INTO signing_keys (kid, secret, created_at) VALUES ($1, $2, $3)")
            .bind(&key.kid)
            .bind(base64::engine::general_purpose::STANDARD.encode(&key.secret))
            .bind(key.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stops a key from verifying (after a rotation, once every token it
    /// signed has expired).
    pub async fn retire_signing_key(&self, kid: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE kid = $2")
            .bind(now)
            .bind(kid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

async fn insert_refresh(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    hash: &str,
    session_id: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (hash, session_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(hash)
    .bind(session_id)
    .bind(now)
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn user_from(r: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: r.try_get("id")?,
        display_name: r.try_get("display_name")?,
        email: r.try_get("email")?,
        avatar_url: r.try_get("avatar_url")?,
    })
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_left_out_of_database_urls() {
        assert_eq!(
            super::redact("postgres://moim:s3cret@127.0.0.1:5432/moim"),
            "postgres://moim:***@127.0.0.1:5432/moim"
        );
        assert_eq!(
            super::redact("sqlite:///var/lib/moim/app.db"),
            "sqlite:///var/lib/moim/app.db"
        );
    }
}
