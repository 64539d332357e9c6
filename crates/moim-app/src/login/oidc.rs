//! OpenID Connect through the `openidconnect` crate: discovery, the code
//! exchange with PKCE, and the ID token checked as RFC 8725 asks
//! (algorithms from an allow-list of asymmetric ones only, so no `none` and
//! no HS256 made with a public key; `iss`, `aud`, `exp` and `nonce`).
//!
//! The discovery document and key set are fetched on first use and kept;
//! an ID token signed with a key the set does not hold makes moim fetch the
//! set again (the issuer rotated its keys), at most every
//! `JWKS_REFETCH_SPACING`, and the discovery document is fetched again after
//! `DISCOVERY_TTL`.

use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
    CoreProviderMetadata,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    DiscoveryError, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, SignatureVerificationError,
};
use tokio::sync::Mutex;

use super::http::ProviderHttp;
use super::{profile, ConfigError, Identity, LoginError, ProviderConfig, ProviderKind};

const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// A key id the key set did not hold, fetched for once, is fetched for
/// again only after this: a token naming a key the issuer never had must
/// not make moim fetch the set on every login.
const JWKS_REFETCH_SPACING: Duration = Duration::from_secs(60);

/// Signature algorithms an ID token may use: asymmetric only.
const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// A client made from a discovery document: its token and user info
/// endpoints may or may not be there.
type DiscoveredClient = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

pub struct Oidc {
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: Option<ClientSecret>,
    auth_type: AuthType,
    redirect: RedirectUrl,
    http: ProviderHttp,
    cache: Mutex<Option<Discovered>>,
}

struct Discovered {
    metadata: CoreProviderMetadata,
    fetched: Instant,
    /// The last key id the set was fetched again for, and when.
    refetched_for: Option<(String, Instant)>,
}

/// What a provider said about the person, from the ID token or the user
/// info endpoint.
#[derive(Default)]
struct Said {
    name: Option<String>,
    nickname: Option<String>,
    username: Option<String>,
    email: Option<String>,
    picture: Option<String>,
}

impl Said {
    fn or(self, other: Said) -> Said {
        Said {
            name: self.name.or(other.name),
            nickname: self.nickname.or(other.nickname),
            username: self.username.or(other.username),
            email: self.email.or(other.email),
            picture: self.picture.or(other.picture),
        }
    }
}

/// Reads the standard claims off ID-token or user-info claims, which share
/// their accessors but no trait.
macro_rules! said {
    ($claims:expr) => {{
        let c = $claims;
        fn pick<T>(c: Option<&openidconnect::LocalizedClaim<T>>) -> Option<&T> {
            c.and_then(|c| c.get(None))
        }
        Said {
            name: pick(c.name()).map(|n| n.as_str().to_string()),
            nickname: pick(c.nickname()).map(|n| n.as_str().to_string()),
            username: c.preferred_username().map(|u| u.as_str().to_string()),
            email: c
                .email()
                .filter(|_| c.email_verified() != Some(false))
                .map(|e| e.as_str().to_string()),
            picture: pick(c.picture()).map(|p| p.as_str().to_string()),
        }
    }};
}

/// The `kid` in a compact JWT's header, if any.
fn key_id(jwt: &str) -> Option<String> {
    use base64::Engine;
    let header = jwt.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("kid")?.as_str().map(String::from)
}

impl Oidc {
    pub fn new(
        config: &ProviderConfig,
        issuer: String,
        redirect_uri: &str,
        http: ProviderHttp,
    ) -> Result<Self, ConfigError> {
        let bad = |what: &'static str, url: &str| ConfigError::BadUrl {
            id: config.id.clone(),
            what,
            url: url.to_string(),
        };
        Ok(Self {
            issuer: IssuerUrl::new(issuer.clone()).map_err(|_| bad("issuer", &issuer))?,
            client_id: ClientId::new(config.client_id.clone()),
            client_secret: config.client_secret.clone().map(ClientSecret::new),
            // Kakao takes the secret in the form body, not as HTTP Basic.
            auth_type: if config.kind == ProviderKind::Kakao {
                AuthType::RequestBody
            } else {
                AuthType::BasicAuth
            },
            redirect: RedirectUrl::new(redirect_uri.to_string())
                .map_err(|_| bad("redirect URI", redirect_uri))?,
            http,
            cache: Mutex::new(None),
        })
    }

    pub fn issuer(&self) -> &str {
        self.issuer.as_str()
    }

    pub async fn authorize_url(
        &self,
        scopes: &[String],
        state: &str,
        nonce: &str,
        challenge: PkceCodeChallenge,
    ) -> Result<String, LoginError> {
        let metadata = self.metadata().await?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            self.client_id.clone(),
            self.client_secret.clone(),
        )
        .set_redirect_uri(self.redirect.clone());
        let (state, nonce) = (state.to_string(), nonce.to_string());
        let (url, _, _) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .add_scopes(
                scopes
                    .iter()
                    .filter(|s| s.as_str() != "openid")
                    .map(|s| Scope::new(s.clone())),
            )
            .set_pkce_challenge(challenge)
            .url();
        Ok(url.to_string())
    }

    pub async fn finish(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<Identity, LoginError> {
        let metadata = self.metadata().await?;
        let token_url = metadata
            .token_endpoint()
            .map(|u| u.to_string())
            .unwrap_or_default();
        let client = CoreClient::from_provider_metadata(
            metadata,
            self.client_id.clone(),
            self.client_secret.clone(),
        )
        .set_redirect_uri(self.redirect.clone())
        .set_auth_type(self.auth_type.clone());
        let http = self.http.as_client();
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| LoginError::BadAnswer(format!("the issuer names no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => LoginError::Refused(r.to_string()),
                RequestTokenError::Request(e) => LoginError::Unreachable {
                    url: token_url.clone(),
                    detail: e.to_string(),
                },
                RequestTokenError::Parse(e, _) => {
                    LoginError::BadAnswer(format!("its token answer: {e}"))
                }
                RequestTokenError::Other(e) => LoginError::BadAnswer(e),
            })?;
        use openidconnect::TokenResponse;
        let id_token = token
            .id_token()
            .ok_or_else(|| LoginError::BadAnswer("its token answer holds no ID token".into()))?;
        let nonce = Nonce::new(nonce.to_string());
        let verify = |client: &DiscoveredClient| {
            let verifier = client.id_token_verifier().set_allowed_algs(ALLOWED_ALGS);
            id_token.claims(&verifier, &nonce).cloned()
        };
        let claims = match verify(&client) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // Signed with a key we have not seen: the issuer rotated.
                let kid = key_id(&id_token.to_string()).unwrap_or_default();
                let Some(metadata) = self.refetch_keys(kid).await? else {
                    return Err(LoginError::IdToken(
                        "signed with a key the issuer's key set does not hold".into(),
                    ));
                };
                let client = CoreClient::from_provider_metadata(
                    metadata,
                    self.client_id.clone(),
                    self.client_secret.clone(),
                );
                verify(&client)
            }
            other => other,
        }
        .map_err(|e| LoginError::IdToken(e.to_string()))?;
        let subject = claims.subject().clone();
        let mut said = said!(&claims);
        // Many issuers put the profile only behind the user info endpoint.
        if said.name.is_none() || said.email.is_none() || said.picture.is_none() {
            said = said.or(self.user_info(&client, &token, subject.clone()).await);
        }
        fn s(v: &Option<String>) -> Option<&str> {
            v.as_deref()
        }
        Ok(Identity {
            issuer: claims.issuer().as_str().to_string(),
            subject: subject.as_str().to_string(),
            profile: profile(
                &[
                    s(&said.name),
                    s(&said.nickname),
                    s(&said.username),
                    s(&said.email),
                ],
                s(&said.email),
                s(&said.picture),
                subject.as_str(),
            ),
        })
    }

    /// The person as the user info endpoint describes them (checked to be
    /// the ID token's subject); nothing when the issuer has no such
    /// endpoint or it fails, since the ID token alone is a valid login.
    async fn user_info(
        &self,
        client: &DiscoveredClient,
        token: &openidconnect::core::CoreTokenResponse,
        subject: openidconnect::SubjectIdentifier,
    ) -> Said {
        use openidconnect::OAuth2TokenResponse;
        let Ok(request) = client.user_info(token.access_token().clone(), Some(subject)) else {
            return Said::default();
        };
        let http = self.http.as_client();
        let info: Result<openidconnect::core::CoreUserInfoClaims, _> =
            request.request_async(&http).await;
        match info {
            Ok(info) => said!(&info),
            Err(e) => {
                tracing::warn!(issuer = %self.issuer.as_str(), "the user info endpoint failed, the ID token's claims are used alone: {e}");
                Said::default()
            }
        }
    }

    /// The discovery document with its key set, fetched when missing or old.
    async fn metadata(&self) -> Result<CoreProviderMetadata, LoginError> {
        let mut cache = self.cache.lock().await;
        if let Some(d) = cache.as_ref() {
            if d.fetched.elapsed() < DISCOVERY_TTL {
                return Ok(d.metadata.clone());
            }
        }
        match self.discover().await {
            Ok(metadata) => {
                let now = Instant::now();
                *cache = Some(Discovered {
                    metadata: metadata.clone(),
                    fetched: now,
                    refetched_for: None,
                });
                Ok(metadata)
            }
            Err(e) => match cache.as_ref() {
                // Keep logging in with what we have while the issuer is away.
                Some(d) => {
                    tracing::warn!(issuer = %self.issuer.as_str(), "rediscovery failed, the older document stays in use: {e}");
                    Ok(d.metadata.clone())
                }
                None => Err(e),
            },
        }
    }

    async fn discover(&self) -> Result<CoreProviderMetadata, LoginError> {
        let http = self.http.as_client();
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.as_str().trim_end_matches('/')
        );
        CoreProviderMetadata::discover_async(self.issuer.clone(), &http)
            .await
            .map_err(|e| match e {
                DiscoveryError::Request(e) => LoginError::Unreachable {
                    url,
                    detail: e.to_string(),
                },
                DiscoveryError::Response(status, _, _) => LoginError::Unreachable {
                    url,
                    detail: format!("it answered HTTP {status}"),
                },
                DiscoveryError::Validation(e) => LoginError::BadAnswer(format!(
                    "its discovery document at {url} does not fit: {e}. Its `issuer` must be \
                     exactly the configured issuer URL"
                )),
                other => LoginError::BadAnswer(format!("its discovery document at {url}: {other}")),
            })
    }

    /// Fetches the key set again for a token signed with key `kid`, unless
    /// it was just fetched for that same key; `None` then.
    async fn refetch_keys(&self, kid: String) -> Result<Option<CoreProviderMetadata>, LoginError> {
        let mut cache = self.cache.lock().await;
        let Some(d) = cache.as_mut() else {
            return Ok(None);
        };
        if let Some((last, at)) = &d.refetched_for {
            if *last == kid && at.elapsed() < JWKS_REFETCH_SPACING {
                return Ok(None);
            }
        }
        let http = self.http.as_client();
        let jwks_uri = d.metadata.jwks_uri().clone();
        let jwks = CoreJsonWebKeySet::fetch_async(&jwks_uri, &http)
            .await
            .map_err(|e| LoginError::Unreachable {
                url: jwks_uri.to_string(),
                detail: e.to_string(),
            })?;
        tracing::info!(issuer = %self.issuer.as_str(), keys = jwks.keys().len(), "the issuer's signing keys were fetched again (rotation)");
        d.metadata = d.metadata.clone().set_jwks(jwks);
        d.refetched_for = Some((kid, Instant::now()));
        Ok(Some(d.metadata.clone()))
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use openidconnect::core::CoreIdToken;
    use openidconnect::{IdTokenVerifier, JsonWebKeySet};

    use super::*;

    /// RFC 8725 §3.1-3.2: a token "signed" with `none`, or with HS256 keyed
    /// by the client secret (which a provider's public key confusion also
    /// produces), is refused even when every claim is right.
    #[test]
    fn only_asymmetric_signatures_are_accepted() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = serde_json::json!({
            "iss": "https://issuer.example", "aud": "moim", "sub": "42",
            "iat": now, "exp": now + 300, "nonce": "n-1",
        });
        let secret = "the-client-secret";
        let verifier: IdTokenVerifier<openidconnect::core::CoreJsonWebKey> =
            IdTokenVerifier::new_confidential_client(
                ClientId::new("moim".into()),
                ClientSecret::new(secret.into()),
                IssuerUrl::new("https://issuer.example".into()).expect("url"),
                JsonWebKeySet::new(Vec::new()),
            )
            .set_allowed_algs(ALLOWED_ALGS);
        let nonce = Nonce::new("n-1".into());

        let hs256 = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("encode");
        let token = CoreIdToken::from_str(&hs256).expect("parses");
        let err = token.claims(&verifier, &nonce).expect_err("HS256 refused");
        assert!(
            matches!(
                err,
                ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::DisallowedAlg(_)
                )
            ),
            "{err:?}"
        );

        use base64::Engine;
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg": "none"})),
            b64(&claims)
        );
        if let Ok(token) = CoreIdToken::from_str(&none) {
            assert!(token.claims(&verifier, &nonce).is_err(), "alg none refused");
        }
    }
}
