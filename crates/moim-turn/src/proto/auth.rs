//! Long-term credentials (RFC 8489 §9.2) with TURN REST time-limited
//! usernames, and stateless nonces.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::Sha256;

/// Mints TURN REST credentials for `identity`, valid for `ttl` from `now`:
/// username `"<unix-expiry>:<identity>"`, password
/// `base64(HMAC-SHA1(secret, username))`. Hand these to clients in
/// `JoinResponse.ice_servers`.
pub fn rest_credentials(
    secret: &str,
    identity: &str,
    ttl: Duration,
    now: SystemTime,
) -> (String, String) {
    let expiry = now
        .checked_add(ttl)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let username = format!("{expiry}:{identity}");
    let password = rest_password(secret.as_bytes(), &username);
    (username, password)
}

/// `base64(HMAC-SHA1(secret, username))`.
pub(crate) fn rest_password(secret: &[u8], username: &str) -> String {
    // HMAC takes keys of any length.
    let Ok(mut mac) = <Hmac<Sha1> as Mac>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The long-term key `MD5(username ":" realm ":" password)`.
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    h.finalize().into()
}

/// Splits a REST username into its unix expiry and identity. Accepts a bare
/// `"<expiry>"` too (identity is then empty), as coturn does.
pub(crate) fn parse_rest_username(username: &str) -> Option<(u64, &str)> {
    let (ts, identity) = match username.split_once(':') {
        Some((ts, id)) => (ts, id),
        None => (username, ""),
    };
    let expiry = ts.parse().ok()?;
    Some((expiry, identity))
}

/// Issues and checks nonces without keeping state: a nonce is its own expiry
/// time (in server seconds) followed by a MAC over it.
#[derive(Clone)]
pub(crate) struct NonceSigner {
    key: [u8; 32],
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NonceCheck {
    Valid,
    /// Ours but expired, or not ours at all: both answer 438.
    Stale,
}

const NONCE_MAC_HEX: usize = 16;

impl NonceSigner {
    pub(crate) fn new(key: [u8; 32]) -> Self {
        NonceSigner { key }
    }

    fn mac(&self, expiry: u64) -> String {
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(&expiry.to_be_bytes());
        let tag = mac.finalize().into_bytes();
        tag.iter()
            .take(NONCE_MAC_HEX / 2)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub(crate) fn issue(&self, expiry_secs: u64) -> String {
        format!("{expiry_secs:016x}{}", self.mac(expiry_secs))
    }

    pub(crate) fn check(&self, nonce: &str, now_secs: u64) -> NonceCheck {
        let (Some(ts), Some(tag)) = (nonce.get(..16), nonce.get(16..)) else {
            return NonceCheck::Stale;
        };
        let Ok(expiry) = u64::from_str_radix(ts, 16) else {
            return NonceCheck::Stale;
        };
        let expected = self.mac(expiry);
        // Constant-time compare of equal-length ASCII strings.
        let same = tag.len() == expected.len()
            && tag
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same && now_secs < expiry {
            NonceCheck::Valid
        } else {
            NonceCheck::Stale
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_credentials_match_coturn_formula() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (user, pass) = rest_credentials("s3cret", "alice", Duration::from_secs(3600), now);
        assert_eq!(user, "1700003600:alice");
        assert_eq!(pass, rest_password(b"s3cret", "1700003600:alice"));
        assert_eq!(parse_rest_username(&user), Some((1_700_003_600, "alice")));
        assert_eq!(parse_rest_username("abc:alice"), None);
    }

    #[test]
    fn known_hmac_vector() {
        // echo -n "1:u" | openssl dgst -sha1 -hmac secret -binary | base64
        assert_eq!(rest_password(b"secret", "1:u").len(), 28);
        // RFC 8489 §14.5 example: MD5("user:realm:pass").
        let k = long_term_key("user", "realm", "pass");
        assert_eq!(k, <[u8; 16]>::from(Md5::digest(b"user:realm:pass")));
    }

    #[test]
    fn nonce_round_trip_and_expiry() {
        let s = NonceSigner::new([7; 32]);
        let n = s.issue(100);
        assert_eq!(s.check(&n, 99), NonceCheck::Valid);
        assert_eq!(s.check(&n, 100), NonceCheck::Stale);
        let mut forged = n.clone();
        forged.replace_range(0..16, &format!("{:016x}", 10_000u64));
        assert_eq!(s.check(&forged, 99), NonceCheck::Stale);
        assert_eq!(NonceSigner::new([8; 32]).check(&n, 99), NonceCheck::Stale);
        assert_eq!(s.check("", 0), NonceCheck::Stale);
        assert_eq!(s.check("ü€€€€€€€€€€€€€€€€", 0), NonceCheck::Stale);
    }
}
