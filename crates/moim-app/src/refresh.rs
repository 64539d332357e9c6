//! Refresh-token rotation, as RFC 9700 (the OAuth 2.0 Security BCP, 4.14)
//! asks of a client that cannot keep a secret: every refresh spends the
//! token presented and issues a new one, and a token presented a second
//! time means two parties hold the family (one of them stole it), so the
//! whole session is revoked and the user logs in again.
//!
//! One allowance: a refresh whose answer was lost (the tab closed, the
//! network dropped), or two tabs refreshing at once, leaves the browser
//! holding the spent token. Presented again within [`Policy::grace`] of
//! being spent, and before its successor was itself used, it is taken as
//! that retry and gets a successor of its own. The first successor stays
//! valid: which of the two answers the browser's cookie jar kept is not
//! known, and spending the wrong one would log the user out.
//!
//! Pure: the records and `now` in, the verdict out. The store applies it.

/// What a refresh-token row says, as far as the verdict needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenState {
    pub expires_at: i64,
    /// When it was spent, if it was.
    pub used_at: Option<i64>,
    /// Whether the token it was spent for has itself been spent.
    pub successor_used: bool,
}

/// What the session (the token family) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionState {
    pub revoked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long a spent token may still be retried, in seconds.
    pub grace: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Spend it and issue a successor.
    Rotate,
    /// A retry of a refresh whose answer was lost: issue another
    /// successor.
    Retry,
    /// Presented again after being spent: revoke the whole family.
    Reused,
    /// Too old, or its session was revoked (logout, an admin, a reuse).
    Expired,
}

pub fn judge(token: &TokenState, session: SessionState, now: i64, policy: Policy) -> Verdict {
    if session.revoked || token.expires_at <= now {
        return Verdict::Expired;
    }
    match token.used_at {
        None => Verdict::Rotate,
        Some(at) if now - at <= policy.grace && !token.successor_used => Verdict::Retry,
        Some(_) => Verdict::Reused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy { grace: 10 };
    const LIVE: SessionState = SessionState { revoked: false };

    fn token(used_at: Option<i64>, successor_used: bool) -> TokenState {
        TokenState {
            expires_at: 1_000,
            used_at,
            successor_used,
        }
    }

    #[test]
    fn a_fresh_token_rotates() {
        assert_eq!(
            judge(&token(None, false), LIVE, 100, POLICY),
            Verdict::Rotate
        );
    }

    #[test]
    fn a_spent_token_is_a_retry_only_within_the_grace_and_before_its_successor_is_used() {
        assert_eq!(
            judge(&token(Some(100), false), LIVE, 105, POLICY),
            Verdict::Retry
        );
        assert_eq!(
            judge(&token(Some(100), false), LIVE, 110, POLICY),
            Verdict::Retry
        );
        assert_eq!(
            judge(&token(Some(100), false), LIVE, 111, POLICY),
            Verdict::Reused
        );
        // The successor was used: whoever presents the old one now is not
        // the browser that lost an answer.
        assert_eq!(
            judge(&token(Some(100), true), LIVE, 101, POLICY),
            Verdict::Reused
        );
    }

    #[test]
    fn an_expired_token_or_a_revoked_session_refreshes_nothing() {
        assert_eq!(
            judge(&token(None, false), LIVE, 1_000, POLICY),
            Verdict::Expired
        );
        let revoked = SessionState { revoked: true };
        assert_eq!(
            judge(&token(None, false), revoked, 100, POLICY),
            Verdict::Expired
        );
        assert_eq!(
            judge(&token(Some(99), true), revoked, 100, POLICY),
            Verdict::Expired
        );
    }
}
