//! Login at an outside provider: OAuth 2.0 authorization code with PKCE
//! (S256 only), `state` and (for OpenID Connect) `nonce`.
//!
//! A login has two halves. `begin` makes the secrets (state, nonce, PKCE
//! verifier) and the provider URL the browser is sent to; the route keeps
//! the secrets in the store (`attempts.rs`), bound to the browser by a
//! cookie. `finish` takes the code from the callback, exchanges it with the
//! verifier, checks what the provider says, and returns who logged in.
//!
//! Providers: any OpenID Connect issuer by discovery (`oidc.rs`, which also
//! follows the issuer's key rotation), with Google and Kakao as presets of
//! it; GitHub and Naver, which speak plain OAuth 2.0, in `oauth.rs`.

use openidconnect::PkceCodeChallenge;

pub mod attempts;
pub mod http;
mod oauth;
mod oidc;

use crate::store::Profile;
use http::ProviderHttp;

/// What kind of provider, which fixes the protocol and the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Any OpenID Connect issuer, found by discovery.
    Oidc,
    Google,
    Kakao,
    GitHub,
    Naver,
}

impl ProviderKind {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "oidc" => Self::Oidc,
            "google" => Self::Google,
            "kakao" => Self::Kakao,
            "github" => Self::GitHub,
            "naver" => Self::Naver,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oidc => "oidc",
            Self::Google => "google",
            Self::Kakao => "kakao",
            Self::GitHub => "github",
            Self::Naver => "naver",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Oidc => "Single sign-on",
            Self::Google => "Google",
            Self::Kakao => "Kakao",
            Self::GitHub => "GitHub",
            Self::Naver => "Naver",
        }
    }

    /// The issuer of a preset that speaks OpenID Connect.
    fn default_issuer(self) -> Option<&'static str> {
        match self {
            Self::Google => Some("https://accounts.google.com"),
            Self::Kakao => Some("https://kauth.kakao.com"),
            _ => None,
        }
    }

    fn default_scopes(self) -> &'static [&'static str] {
        match self {
            Self::Oidc | Self::Google => &["openid", "profile", "email"],
            // Kakao names its consent items as scopes; `openid` turns on its ID token.
            Self::Kakao => &[
                "openid",
                "profile_nickname",
                "profile_image",
                "account_email",
            ],
            Self::GitHub => &["read:user", "user:email"],
            Self::Naver => &[],
        }
    }
}

/// The endpoints of a plain OAuth 2.0 provider; the presets know theirs,
/// and a configuration may point them elsewhere (GitHub Enterprise, a test
/// stub).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthEndpoints {
    pub authorize: String,
    pub token: String,
    pub user: String,
}

/// One configured provider.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Its name in URLs: `/auth/login/{id}`, `/auth/callback/{id}`.
    pub id: String,
    pub kind: ProviderKind,
    /// What the login button says; the kind's name by default.
    pub label: Option<String>,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// OpenID Connect: the issuer URL (a preset has a default).
    pub issuer: Option<String>,
    /// Plain OAuth 2.0: the endpoints (a preset has defaults).
    pub endpoints: Option<OAuthEndpoints>,
    /// Scopes instead of the kind's defaults.
    pub scopes: Option<Vec<String>>,
}

impl ProviderConfig {
    pub fn new(id: &str, kind: ProviderKind, client_id: &str) -> Self {
        Self {
            id: id.to_string(),
            kind,
            label: None,
            client_id: client_id.to_string(),
            client_secret: None,
            issuer: None,
            endpoints: None,
            scopes: None,
        }
    }

    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(self.kind.label())
    }

    fn scopes(&self) -> Vec<String> {
        self.scopes.clone().unwrap_or_else(|| {
            self.kind
                .default_scopes()
                .iter()
                .map(|s| s.to_string())
                .collect()
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("login provider \"{0}\": an OpenID Connect provider needs its issuer URL (issuer = \"https://...\")")]
    NoIssuer(String),
    #[error("login provider \"{0}\": its id must be letters, digits, '-' or '_'")]
    BadId(String),
    #[error("login provider \"{id}\": {what} \"{url}\" is not an http(s) URL")]
    BadUrl {
        id: String,
        what: &'static str,
        url: String,
    },
    #[error("two login providers are both called \"{0}\"")]
    Duplicate(String),
    #[error("login provider \"{0}\" needs a client_id")]
    NoClientId(String),
}

/// Who logged in, as the provider vouches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The issuer URL (OpenID Connect `iss`) or the provider's own URL.
    pub issuer: String,
    pub subject: String,
    pub profile: Profile,
}

/// Why a login failed. The route turns each into a stable code for the
/// client and a line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(
        "cannot reach the login provider at {url}: {detail}. Check the issuer or endpoint URL, \
         and that this server can reach it (DNS, firewall, an outbound proxy)"
    )]
    Unreachable { url: String, detail: String },
    #[error("the login provider answered in a way moim does not understand: {0}")]
    BadAnswer(String),
    #[error(
        "the login provider refused to exchange the code: {0}. A wrong client secret, a \
         redirect URI that is not registered exactly, or a code already used gives this"
    )]
    Refused(String),
    #[error("the provider's ID token did not pass the checks: {0}")]
    IdToken(String),
    #[error("the person did not allow the login: {0}")]
    Denied(String),
}

/// The provider URL to send the browser to, and the secrets the callback
/// needs to finish.
pub struct Begun {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// A provider ready for logins.
pub struct Provider {
    pub config: ProviderConfig,
    redirect_uri: String,
    protocol: Protocol,
}

enum Protocol {
    Oidc(Box<oidc::Oidc>),
    OAuth(oauth::OAuth),
}

impl Provider {
    /// A provider whose callback is `{public_origin}/auth/callback/{id}`.
    pub fn new(
        config: ProviderConfig,
        public_origin: &str,
        http: ProviderHttp,
    ) -> Result<Self, ConfigError> {
        let id = &config.id;
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError::BadId(id.clone()));
        }
        if config.client_id.is_empty() {
            return Err(ConfigError::NoClientId(id.clone()));
        }
        let check = |what: &'static str, url: &str| {
            if url.starts_with("https://") || url.starts_with("http://") {
                Ok(())
            } else {
                Err(ConfigError::BadUrl {
                    id: id.clone(),
                    what,
                    url: url.to_string(),
                })
            }
        };
        let redirect_uri = format!("{public_origin}/auth/callback/{id}");
        let protocol = match config.kind {
            ProviderKind::Oidc | ProviderKind::Google | ProviderKind::Kakao => {
                let issuer = config
                    .issuer
                    .clone()
                    .or_else(|| config.kind.default_issuer().map(String::from))
                    .ok_or_else(|| ConfigError::NoIssuer(id.clone()))?;
                check("issuer", &issuer)?;
                Protocol::Oidc(Box::new(oidc::Oidc::new(
                    &config,
                    issuer,
                    &redirect_uri,
                    http,
                )?))
            }
            ProviderKind::GitHub | ProviderKind::Naver => {
                let endpoints = config
                    .endpoints
                    .clone()
                    .unwrap_or_else(|| oauth::default_endpoints(config.kind));
                check("authorize URL", &endpoints.authorize)?;
                check("token URL", &endpoints.token)?;
                check("user URL", &endpoints.user)?;
                Protocol::OAuth(oauth::OAuth::new(&config, endpoints, http))
            }
        };
        Ok(Self {
            config,
            redirect_uri,
            protocol,
        })
    }

    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The OpenID Connect issuer URL; `None` for plain OAuth 2.0.
    pub fn issuer(&self) -> Option<&str> {
        match &self.protocol {
            Protocol::Oidc(p) => Some(p.issuer()),
            Protocol::OAuth(_) => None,
        }
    }

    /// Starts a login: fresh secrets and the URL to send the browser to.
    pub async fn begin(&self) -> Result<Begun, LoginError> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = crate::random_token(32);
        let nonce = crate::random_token(32);
        let scopes = self.config.scopes();
        let url = match &self.protocol {
            Protocol::Oidc(p) => p.authorize_url(&scopes, &state, &nonce, challenge).await?,
            Protocol::OAuth(p) => p.authorize_url(&self.redirect_uri, &scopes, &state, &challenge),
        };
        Ok(Begun {
            url,
            state,
            nonce,
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Finishes a login with the callback's code and `state`.
    pub async fn finish(
        &self,
        code: &str,
        state: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<Identity, LoginError> {
        match &self.protocol {
            Protocol::Oidc(p) => p.finish(code, pkce_verifier, nonce).await,
            Protocol::OAuth(p) => {
                p.finish(&self.redirect_uri, code, state, pkce_verifier)
                    .await
            }
        }
    }
}

/// A display name cut to what the app shows, with control characters gone.
fn clean_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect::<String>()
        .trim()
        .to_string()
}

/// The profile from what a provider said, with a name always there.
fn profile(
    names: &[Option<&str>],
    email: Option<&str>,
    avatar: Option<&str>,
    subject: &str,
) -> Profile {
    let display_name = names
        .iter()
        .flatten()
        .map(|n| clean_name(n))
        .find(|n| !n.is_empty())
        .unwrap_or_else(|| format!("User {}", clean_name(subject)));
    let url = |u: Option<&str>| {
        u.filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .map(|u| u.chars().take(2048).collect())
    };
    Profile {
        display_name,
        email: email
            .filter(|e| e.contains('@'))
            .map(|e| e.chars().take(320).collect()),
        avatar_url: url(avatar),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_always_has_a_name_and_only_web_urls_for_pictures() {
        let p = profile(
            &[None, Some("  "), Some("Kim\u{7}")],
            Some("kim@example.com"),
            Some("javascript:alert(1)"),
            "42",
        );
        assert_eq!(p.display_name, "Kim");
        assert_eq!(p.email.as_deref(), Some("kim@example.com"));
        assert_eq!(p.avatar_url, None);
        let anonymous = profile(&[None], Some("not-an-email"), None, "42");
        assert_eq!(anonymous.display_name, "User 42");
        assert_eq!(anonymous.email, None);
    }

    #[test]
    fn providers_are_checked_when_configured() {
        let http = ProviderHttp::new();
        let origin = "https://meet.example.com";
        let oidc = ProviderConfig::new("corp", ProviderKind::Oidc, "moim");
        assert!(matches!(
            Provider::new(oidc, origin, http.clone()),
            Err(ConfigError::NoIssuer(_))
        ));
        let google = ProviderConfig::new("google", ProviderKind::Google, "moim");
        let p = Provider::new(google, origin, http.clone()).expect("a preset has its issuer");
        assert_eq!(
            p.redirect_uri(),
            "https://meet.example.com/auth/callback/google"
        );
        let bad = ProviderConfig::new("a/b", ProviderKind::GitHub, "moim");
        assert!(matches!(
            Provider::new(bad, origin, http),
            Err(ConfigError::BadId(_))
        ));
    }
}
