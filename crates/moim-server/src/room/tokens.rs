//! Fresh access tokens for the participants in a room (LiveKit's
//! `refresh_token` signal).
//!
//! A client reconnects with the token it joined with unless the server gives
//! it a newer one. Without this, a meeting outlives its tokens: an hour in,
//! the first network change (a resume or a full reconnect) is refused as
//! "token expired", though the participant never left. So the room hands
//! each connected participant a token on join, on resume, whenever its
//! grants or profile change, and every [`REFRESH_EVERY`] after; each one is
//! valid for at least [`VALID_FOR`], and never for less than the token it
//! replaces. Being in the room is the authority: a participant removed
//! through the server API gets no more tokens.
//!
//! The core only decides when and what; the shell signs, with the key that
//! signed the participant's own token.

use std::time::{Duration, Instant};

use moim_proto::token::Claims;

use super::core::RoomCore;
use super::participant::{Participant, ParticipantKey};

/// How often a connected participant is sent a fresh token.
pub(crate) const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

/// A refreshed token is valid this long at least: two refreshes can be lost
/// before the client's copy expires.
pub(crate) const VALID_FOR: Duration = Duration::from_secs(10 * 60);

/// The token a participant joined with, as far as refreshing needs it.
#[derive(Debug, Clone, Default)]
pub struct TokenOrigin {
    /// The API key that signed it; the refreshed ones are signed with it too.
    pub api_key: String,
    /// Its expiry, unix seconds: a refreshed token never expires sooner.
    pub expires_at: u64,
}

impl Participant {
    /// The claims of a token for this participant as it is now: its grants
    /// as the server API left them, its current name, metadata and
    /// attributes.
    fn current_claims(&self, now_unix_secs: u64) -> Claims {
        Claims {
            iss: self.token.api_key.clone(),
            sub: self.identity.clone(),
            nbf: now_unix_secs.saturating_sub(1),
            exp: self
                .token
                .expires_at
                .max(now_unix_secs + VALID_FOR.as_secs()),
            name: self.name.clone(),
            metadata: self.metadata.clone(),
            attributes: self.attributes.clone(),
            video: self.grant.clone(),
            sha256: String::new(),
        }
    }
}

impl RoomCore {
    /// Sends the participant a token that says what it may do now, if it
    /// has a signal connection, and schedules the next one.
    pub(super) fn refresh_token(&mut self, key: ParticipantKey) {
        let now_secs = u64::try_from(self.unix_ms.div_euclid(1000)).unwrap_or_default();
        let at = self.at;
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        if p.connection.is_none() {
            // Waiting to resume: the resume sends one.
            p.token_refresh_due = None;
            return;
        }
        let claims = p.current_claims(now_secs);
        self.out.refresh_token(p, claims);
        p.token_refresh_due = Some(at + REFRESH_EVERY);
    }

    /// The earliest refresh that falls due.
    pub(super) fn next_token_refresh(&self) -> Option<Instant> {
        self.participants
            .values()
            .filter_map(|p| p.token_refresh_due)
            .min()
    }

    /// Refreshes every token that has fallen due.
    pub(super) fn refresh_due_tokens(&mut self, now: Instant) {
        let due: Vec<ParticipantKey> = self
            .participants
            .values()
            .filter(|p| p.token_refresh_due.is_some_and(|t| t <= now))
            .map(|p| p.key)
            .collect();
        for key in due {
            self.refresh_token(key);
        }
    }
}
