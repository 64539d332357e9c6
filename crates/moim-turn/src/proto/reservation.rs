//! Relay ports held for a later Allocate (RFC 8656 §7.2, EVEN-PORT with the
//! R bit, and RESERVATION-TOKEN §18.9).
//!
//! An Allocate with EVEN-PORT R=1 gets an even port N; port N+1 is bound
//! too and held under a token. An Allocate that carries the token (usually
//! from another 5-tuple: RTCP beside RTP) takes port N+1 instead of a fresh
//! one. Unclaimed reservations lapse after [`RESERVATION_LIFETIME`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::allocation::RelayId;

/// How long a reserved port waits for its token. RFC 8656 §7.2 asks for at
/// least 30 s; holding longer only ties up ports and quota.
pub const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);

/// A RESERVATION-TOKEN value: 8 opaque bytes.
pub(crate) type Token = [u8; 8];

/// A bound relay socket waiting for its token.
#[derive(Debug)]
pub(crate) struct Reservation {
    /// The shell already holds a socket under this id; the allocation that
    /// claims the token takes the id over.
    pub relay: RelayId,
    /// Announced address (public IP, port N+1).
    pub relayed: SocketAddr,
    /// Only the identity that reserved may claim: a token seen on the wire
    /// must not let another user take (or burn) the port.
    pub identity: String,
    pub expires: Instant,
}

/// Why a token was not honoured. All answer 508 (RFC 8656 §7.2 step 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenRefusal {
    /// Never issued, already claimed, or lapsed.
    Unknown,
    /// Issued to another identity.
    NotYours,
}

/// The reservations of one server.
pub(crate) struct Reservations {
    key: [u8; 32],
    counter: u64,
    by_token: HashMap<Token, Reservation>,
}

impl Reservations {
    /// `key` must be secret: tokens are a MAC over a counter, so they cannot
    /// be guessed from the ones a client has seen.
    pub(crate) fn new(key: [u8; 32]) -> Self {
        Reservations {
            key,
            counter: 0,
            by_token: HashMap::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_token.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// A fresh token, distinct from every live one.
    pub(crate) fn new_token(&mut self) -> Token {
        loop {
            self.counter += 1;
            let mut token = [0u8; 8];
            // HMAC takes keys of any length; the fallback never happens.
            if let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
                mac.update(b"moim reservation token");
                mac.update(&self.counter.to_be_bytes());
                token.copy_from_slice(&mac.finalize().into_bytes()[..8]);
            } else {
                token = self.counter.to_be_bytes();
            }
            if !self.by_token.contains_key(&token) {
                return token;
            }
        }
    }

    pub(crate) fn insert(&mut self, token: Token, r: Reservation) {
        self.by_token.insert(token, r);
    }

    /// Claims `token` for `identity`. A refused claim leaves the
    /// reservation in place for its owner.
    pub(crate) fn claim(
        &mut self,
        token: &Token,
        identity: &str,
        now: Instant,
    ) -> Result<Reservation, TokenRefusal> {
        match self.by_token.get(token) {
            None => Err(TokenRefusal::Unknown),
            Some(r) if r.expires <= now => Err(TokenRefusal::Unknown),
            Some(r) if r.identity != identity => Err(TokenRefusal::NotYours),
            Some(_) => self.by_token.remove(token).ok_or(TokenRefusal::Unknown),
        }
    }

    /// Removes and returns the reservations that lapsed by `now`.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<Reservation> {
        let lapsed: Vec<Token> = self
            .by_token
            .iter()
            .filter(|(_, r)| r.expires <= now)
            .map(|(t, _)| *t)
            .collect();
        lapsed
            .iter()
            .filter_map(|t| self.by_token.remove(t))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reservation(identity: &str, expires: Instant) -> Reservation {
        Reservation {
            relay: RelayId(7),
            relayed: "198.51.100.1:50001".parse().expect("addr"),
            identity: identity.into(),
            expires,
        }
    }

    #[test]
    fn tokens_differ_and_depend_on_the_key() {
        let mut a = Reservations::new([1; 32]);
        let mut b = Reservations::new([2; 32]);
        let (a1, a2, b1) = (a.new_token(), a.new_token(), b.new_token());
        assert_ne!(a1, a2);
        assert_ne!(a1, b1);
    }

    #[test]
    fn claim_once_by_owner_only_before_expiry() {
        let t0 = Instant::now();
        let mut rs = Reservations::new([1; 32]);
        let token = rs.new_token();
        rs.insert(token, reservation("alice", t0 + RESERVATION_LIFETIME));
        assert_eq!(
            rs.claim(&token, "mallory", t0).map(|r| r.relay),
            Err(TokenRefusal::NotYours)
        );
        assert_eq!(
            rs.claim(&token, "alice", t0).map(|r| r.relay),
            Ok(RelayId(7))
        );
        assert_eq!(
            rs.claim(&token, "alice", t0).map(|r| r.relay),
            Err(TokenRefusal::Unknown),
            "a token is good once"
        );
        let token = rs.new_token();
        rs.insert(token, reservation("alice", t0 + RESERVATION_LIFETIME));
        let late = t0 + RESERVATION_LIFETIME;
        assert_eq!(
            rs.claim(&token, "alice", late).map(|r| r.relay),
            Err(TokenRefusal::Unknown)
        );
        assert_eq!(rs.expire(late).len(), 1);
        assert!(rs.is_empty());
    }
}
