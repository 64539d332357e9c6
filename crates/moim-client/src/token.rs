//! Minting and reading LiveKit access tokens (HS256 JWTs).
//!
//! The claim layout follows LiveKit's `auth` package: `iss` is the API key, `sub` the
//! participant identity, and the `video` grant uses camelCase field names.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use crate::error::Result;

/// The claim and grant types are the server's own, so client and server can
/// never disagree on a field name.
pub use moim_proto::token::{Claims, VideoGrant};

/// Builder for an HS256 access token.
///
/// ```
/// let token = moim_client::token::AccessToken::new("devkey", "secret")
///     .identity("alice")
///     .room_join("demo")
///     .to_jwt()
///     .unwrap();
/// assert_eq!(token.split('.').count(), 3);
/// ```
#[derive(Debug, Clone)]
pub struct AccessToken {
    secret: String,
    claims: Claims,
    ttl: Duration,
    not_before: Option<SystemTime>,
}

impl AccessToken {
    /// A token for `api_key`, signed with `api_secret`, valid for six hours.
    pub fn new(api_key: &str, api_secret: &str) -> Self {
        Self {
            secret: api_secret.to_owned(),
            claims: Claims {
                iss: api_key.to_owned(),
                ..Claims::default()
            },
            ttl: Duration::from_secs(6 * 3600),
            not_before: None,
        }
    }

    /// Participant identity (`sub`).
    pub fn identity(mut self, identity: &str) -> Self {
        self.claims.sub = identity.to_owned();
        self
    }

    /// Display name.
    pub fn name(mut self, name: &str) -> Self {
        self.claims.name = name.to_owned();
        self
    }

    /// Participant metadata.
    pub fn metadata(mut self, metadata: &str) -> Self {
        self.claims.metadata = metadata.to_owned();
        self
    }

    /// Time to live from now (or from `not_before`). Zero makes an already-expired token.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Backdate or postdate `nbf`.
    pub fn not_before(mut self, at: SystemTime) -> Self {
        self.not_before = Some(at);
        self
    }

    /// Grant `roomJoin` for `room`, keeping the other grant fields.
    pub fn room_join(mut self, room: &str) -> Self {
        let grant = &mut self.claims.video;
        grant.room_join = true;
        grant.room = room.to_owned();
        self
    }

    /// Replace the whole video grant.
    pub fn grant(mut self, grant: VideoGrant) -> Self {
        self.claims.video = grant;
        self
    }

    /// The claims as they will be signed (times filled in).
    pub fn claims(&self) -> Claims {
        let nbf = self.not_before.unwrap_or_else(SystemTime::now);
        let nbf_secs = nbf.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Claims {
            nbf: nbf_secs,
            exp: nbf_secs + self.ttl.as_secs(),
            ..self.claims.clone()
        }
    }

    /// Sign and encode.
    pub fn to_jwt(&self) -> Result<String> {
        let key = EncodingKey::from_secret(self.secret.as_bytes());
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &self.claims(),
            &key,
        )?)
    }
}

/// Verify an HS256 token with `api_secret` and return its claims (expiry and `nbf` checked).
pub fn verify(token: &str, api_secret: &str) -> Result<Claims> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_nbf = true;
    validation.leeway = 0;
    validation.required_spec_claims = ["exp", "iss", "sub"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(api_secret.as_bytes()),
        &validation,
    )?;
    Ok(data.claims)
}

/// A dev-mode token (`devkey`/`secret`) that joins `room` as `identity` with default rights.
pub fn dev_token(room: &str, identity: &str) -> Result<String> {
    AccessToken::new("devkey", "secret")
        .identity(identity)
        .name(identity)
        .room_join(room)
        .to_jwt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_token_verifies_and_keeps_the_grant() {
        let grant = VideoGrant {
            room_join: true,
            room: "r1".into(),
            can_publish: Some(false),
            hidden: true,
            ..VideoGrant::default()
        };
        let jwt = AccessToken::new("devkey", "secret")
            .identity("bob")
            .name("Bob")
            .grant(grant.clone())
            .to_jwt()
            .expect("sign");
        let claims = verify(&jwt, "secret").expect("verify");
        assert_eq!(claims.iss, "devkey");
        assert_eq!(claims.sub, "bob");
        assert_eq!(claims.name, "Bob");
        assert_eq!(claims.video, grant);
        assert!(claims.exp > claims.nbf);
    }

    #[test]
    fn grant_uses_livekit_camel_case_names() {
        let jwt = dev_token("room-a", "carol").expect("sign");
        let payload = jwt.split('.').nth(1).expect("payload");
        use base64::Engine;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64");
        let v: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(v["video"]["roomJoin"], true);
        assert_eq!(v["video"]["room"], "room-a");
        assert!(v["video"].get("canPublish").is_none(), "absent means true");
        assert_eq!(v["iss"], "devkey");
    }

    #[test]
    fn wrong_secret_and_expired_tokens_are_rejected() {
        let jwt = dev_token("r", "a").expect("sign");
        assert!(verify(&jwt, "other").is_err());
        let past = SystemTime::now() - Duration::from_secs(100);
        let expired = AccessToken::new("devkey", "secret")
            .identity("a")
            .room_join("r")
            .not_before(past)
            .ttl(Duration::from_secs(10))
            .to_jwt()
            .expect("sign");
        assert!(verify(&expired, "secret").is_err());
    }
}
