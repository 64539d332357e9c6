//! The access token: a short-lived JWT in an HttpOnly cookie, naming the
//! user and the session it belongs to.
//!
//! Signed with HS256 under a key from the key ring; the header's `kid`
//! names the key. Verification takes HS256 alone (RFC 8725 3.1: no
//! `none`, no algorithm the token picks for itself) and checks `iss`,
//! `aud` and `exp`. Rotating adds a new signing key while older ones keep
//! verifying, so nobody is logged out by a rotation: their next refresh is
//! signed with the new key.

use std::collections::BTreeMap;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// `iss` and `aud` of every access token: moim's app issues them for itself.
pub const ISSUER: &str = "moim-app";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The session id (the refresh-token family).
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token was not signed by a key this server knows")]
    UnknownKey,
    #[error("the access token is not valid: {0}")]
    Invalid(String),
}

/// One signing key.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub secret: Vec<u8>,
    pub created_at: i64,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random 256-bit key.
    pub fn generate(now: i64) -> Self {
        let mut secret = vec![0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let mut id = [0u8; 9];
        rand::rng().fill_bytes(&mut id);
        Self {
            kid: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id),
            secret,
            created_at: now,
        }
    }
}

/// The keys that verify access tokens; the newest signs.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: BTreeMap<String, SigningKey>,
    newest: Option<String>,
}

impl KeyRing {
    pub fn insert(&mut self, key: SigningKey) {
        let newer = self
            .newest
            .as_ref()
            .and_then(|k| self.keys.get(k))
            .is_none_or(|n| key.created_at >= n.created_at);
        if newer {
            self.newest = Some(key.kid.clone());
        }
        self.keys.insert(key.kid.clone(), key);
    }

    pub fn signing_key(&self) -> Option<&SigningKey> {
        self.newest.as_ref().and_then(|k| self.keys.get(k))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn mint(&self, claims: &AccessClaims) -> Option<String> {
        let key = self.signing_key()?;
        let header = Header {
            kid: Some(key.kid.clone()),
            ..Header::new(Algorithm::HS256)
        };
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(&key.secret)).ok()
    }

    /// `now` is the caller's clock, so tests can move it.
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, AccessError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AccessError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::HS256 {
            return Err(AccessError::Invalid(format!(
                "algorithm {:?}, only HS256 is accepted",
                header.alg
            )));
        }
        let key = header
            .kid
            .as_ref()
            .and_then(|k| self.keys.get(k))
            .ok_or(AccessError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked below against `now`, not the system clock.
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<AccessClaims>(
            token,
            &DecodingKey::from_secret(&key.secret),
            &validation,
        )
        .map_err(|e| AccessError::Invalid(e.to_string()))?;
        if data.claims.exp <= now {
            return Err(AccessError::Expired);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            iss: ISSUER.into(),
            aud: ISSUER.into(),
            sub: "u1".into(),
            sid: "s1".into(),
            iat: 0,
            exp,
        }
    }

    #[test]
    fn a_token_verifies_until_it_expires_and_through_a_key_rotation() {
        let mut ring = KeyRing::default();
        ring.insert(SigningKey::generate(0));
        let old = ring.mint(&claims(600)).expect("minted");
        assert_eq!(ring.verify(&old, 599).map(|c| c.sub), Ok("u1".into()));
        assert_eq!(ring.verify(&old, 600), Err(AccessError::Expired));

        ring.insert(SigningKey::generate(10));
        let new = ring.mint(&claims(600)).expect("minted");
        assert_ne!(
            jsonwebtoken::decode_header(&old).expect("header").kid,
            jsonwebtoken::decode_header(&new).expect("header").kid,
            "the newest key signs"
        );
        assert!(ring.verify(&old, 100).is_ok(), "older keys still verify");
        assert!(ring.verify(&new, 100).is_ok());
    }

    #[test]
    fn forged_tokens_are_refused() {
        let mut ring = KeyRing::default();
        ring.insert(SigningKey::generate(0));
        let good = ring.mint(&claims(600)).expect("minted");

        // Another server's key, same kid: the signature fails.
        let mut other = KeyRing::default();
        let mut k = SigningKey::generate(0);
        k.kid = ring.signing_key().expect("key").kid.clone();
        other.insert(k);
        let forged = other.mint(&claims(600)).expect("minted");
        assert!(matches!(
            ring.verify(&forged, 1),
            Err(AccessError::Invalid(_))
        ));

        // alg "none", and a flipped payload byte.
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let parts: Vec<&str> = good.split('.').collect();
        let none_header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert!(ring.verify(&unsigned, 1).is_err());
        let mut payload = b64.decode(parts[1]).expect("payload");
        payload[10] ^= 1;
        let tampered = format!("{}.{}.{}", parts[0], b64.encode(payload), parts[2]);
        assert!(ring.verify(&tampered, 1).is_err());

        // Unknown kid, and garbage.
        let stranger = KeyRing::default();
        assert_eq!(stranger.verify(&good, 1), Err(AccessError::UnknownKey));
        assert!(matches!(
            ring.verify("not a jwt", 1),
            Err(AccessError::Invalid(_))
        ));
    }
}
