//! LiveKit access tokens: HS256 JWTs whose `iss` names the API key and whose
//! `video` claim carries the grants.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The `video` grant, spelled as LiveKit spells it on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VideoGrant {
    #[serde(skip_serializing_if = "is_false")]
    pub room_create: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub room_list: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub room_record: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub room_admin: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub room_join: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub room: String,
    /// `None` means the LiveKit default, which is "allowed".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_publish: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_subscribe: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_publish_data: Option<bool>,
    /// Empty means every source is allowed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub can_publish_sources: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_update_own_metadata: Option<bool>,
    #[serde(skip_serializing_if = "is_false")]
    pub hidden: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub recorder: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub agent: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl VideoGrant {
    pub fn can_publish(&self) -> bool {
        self.can_publish.unwrap_or(true)
    }
    pub fn can_subscribe(&self) -> bool {
        self.can_subscribe.unwrap_or(true)
    }
    pub fn can_publish_data(&self) -> bool {
        self.can_publish_data.unwrap_or(true)
    }
    pub fn can_update_own_metadata(&self) -> bool {
        self.can_update_own_metadata.unwrap_or(false)
    }
    /// Whether a track of this source (`camera`, `microphone`, `screen_share`,
    /// `screen_share_audio`) may be published.
    pub fn can_publish_source(&self, source: &str) -> bool {
        self.can_publish()
            && (self.can_publish_sources.is_empty()
                || self.can_publish_sources.iter().any(|s| s == source))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub exp: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub nbf: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub metadata: String,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub attributes: HashMap<String, String>,
    pub video: VideoGrant,
    /// Webhooks sign the SHA-256 of their body here.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sha256: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why a token was refused. Each text tells the client's developer what to
/// change; none of them echoes the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("access token is malformed: not a JWT ({0})")]
    Malformed(String),
    #[error("access token names API key \"{0}\", which this server does not know; check the key the token was signed with")]
    UnknownKey(String),
    #[error("access token signature is invalid: it was not signed with the secret of API key \"{0}\" (forged, or the wrong secret)")]
    BadSignature(String),
    #[error("access token expired; mint a fresh one (check the token's TTL and the clocks of both servers)")]
    Expired,
    #[error("access token is not valid yet (nbf in the future); check the clock of the server that minted it")]
    NotYetValid,
    #[error("access token has no identity (sub claim): a participant needs one; mint the token with an identity")]
    NoIdentity,
    #[error("access token uses algorithm {0}; only HS256 is accepted")]
    Algorithm(String),
}

/// The configured API keys and their secrets.
#[derive(Debug, Clone, Default)]
pub struct KeyStore {
    secrets: HashMap<String, String>,
}

impl KeyStore {
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            secrets: pairs.into_iter().collect(),
        }
    }

    pub fn secret(&self, key: &str) -> Option<&str> {
        self.secrets.get(key).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.secrets.keys().map(String::as_str)
    }

    /// Verifies signature, expiry and identity. Grants are the caller's
    /// business: what a token may do depends on the endpoint.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let mut peek = Validation::new(Algorithm::HS256);
        peek.insecure_disable_signature_validation();
        peek.validate_exp = false;
        peek.required_spec_claims.clear();
        let unverified =
            jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&[]), &peek)
                .map_err(|e| TokenError::Malformed(e.to_string()))?;
        let key = unverified.claims.iss;
        let secret = self
            .secret(&key)
            .ok_or_else(|| TokenError::UnknownKey(key.clone()))?;

        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.validate_nbf = true;
        validation.required_spec_claims = ["exp".to_string()].into_iter().collect();
        let data = jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(secret.as_bytes()),
            &validation,
        )
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature(key.clone()),
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                _ => TokenError::Malformed(e.to_string()),
            }
        })?;
        Ok(data.claims)
    }
}

/// Mints a token. Used by the CLI, the tests and the meet app.
pub fn mint(
    api_key: &str,
    api_secret: &str,
    identity: &str,
    grant: VideoGrant,
    valid_for: Duration,
    now: SystemTime,
) -> String {
    let now_s = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let claims = Claims {
        iss: api_key.to_string(),
        sub: identity.to_string(),
        nbf: now_s.saturating_sub(1),
        exp: now_s + valid_for.as_secs(),
        video: grant,
        ..Default::default()
    };
    mint_claims(api_secret, &claims)
}

pub fn mint_claims(api_secret: &str, claims: &Claims) -> String {
    // HS256 signing of serializable claims has no failure mode.
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(api_secret.as_bytes()),
    )
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> KeyStore {
        KeyStore::new([("devkey".to_string(), "secret".to_string())])
    }

    fn join(room: &str) -> VideoGrant {
        VideoGrant {
            room_join: true,
            room: room.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_fresh_token_verifies_with_its_grants() {
        let t = mint(
            "devkey",
            "secret",
            "alice",
            join("r1"),
            Duration::from_secs(60),
            SystemTime::now(),
        );
        let c = store().verify(&t).expect("valid");
        assert_eq!(c.sub, "alice");
        assert_eq!(c.video.room, "r1");
        assert!(c.video.can_publish() && c.video.can_subscribe() && c.video.can_publish_data());
    }

    #[test]
    fn forged_expired_and_unknown_tokens_say_which() {
        let forged = mint(
            "devkey",
            "not-the-secret",
            "a",
            join("r"),
            Duration::from_secs(60),
            SystemTime::now(),
        );
        assert_eq!(
            store().verify(&forged),
            Err(TokenError::BadSignature("devkey".into()))
        );
        let old = SystemTime::now() - Duration::from_secs(3600);
        let expired = mint(
            "devkey",
            "secret",
            "a",
            join("r"),
            Duration::from_secs(60),
            old,
        );
        assert_eq!(store().verify(&expired), Err(TokenError::Expired));
        let other = mint(
            "otherkey",
            "secret",
            "a",
            join("r"),
            Duration::from_secs(60),
            SystemTime::now(),
        );
        assert_eq!(
            store().verify(&other),
            Err(TokenError::UnknownKey("otherkey".into()))
        );
        assert!(matches!(
            store().verify("garbage"),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn grant_json_uses_livekit_names() {
        let g: VideoGrant = serde_json::from_str(
            r#"{"roomJoin":true,"room":"x","canPublish":false,"canPublishSources":["camera"]}"#,
        )
        .expect("parse");
        assert!(g.room_join && !g.can_publish() && g.can_subscribe());
        assert!(!g.can_publish_source("camera"));
    }
}
