//! GitHub and Naver: plain OAuth 2.0 (no ID token), so who logged in comes
//! from each one's user endpoint. Both answer a failed code exchange with
//! HTTP 200 and an `error` field, and Naver sends `expires_in` as a string,
//! so the token answer is read loosely here rather than as RFC 6749's
//! typed response.
//!
//! The user is keyed by the provider's stable numeric or opaque id, never
//! by a login name or an e-mail, which the person can change.

use openidconnect::PkceCodeChallenge;
use serde_json::Value;
use url::Url;

use super::http::ProviderHttp;
use super::{profile, Identity, LoginError, OAuthEndpoints, ProviderConfig, ProviderKind};

pub fn default_endpoints(kind: ProviderKind) -> OAuthEndpoints {
    let (authorize, token, user) = match kind {
        ProviderKind::Naver => (
            "https://nid.naver.com/oauth2.0/authorize",
            "https://nid.naver.com/oauth2.0/token",
            "https://openapi.naver.com/v1/nid/me",
        ),
        _ => (
            "https://github.com/login/oauth/authorize",
            "https://github.com/login/oauth/access_token",
            "https://api.github.com/user",
        ),
    };
    OAuthEndpoints {
        authorize: authorize.into(),
        token: token.into(),
        user: user.into(),
    }
}

pub struct OAuth {
    kind: ProviderKind,
    client_id: String,
    client_secret: Option<String>,
    endpoints: OAuthEndpoints,
    /// Recorded as the users' issuer: the origin of the authorize URL.
    issuer: String,
    http: ProviderHttp,
}

impl OAuth {
    pub fn new(config: &ProviderConfig, endpoints: OAuthEndpoints, http: ProviderHttp) -> Self {
        let issuer = Url::parse(&endpoints.authorize)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| endpoints.authorize.clone());
        Self {
            kind: config.kind,
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            endpoints,
            issuer,
            http,
        }
    }

    pub fn authorize_url(
        &self,
        redirect_uri: &str,
        scopes: &[String],
        state: &str,
        challenge: &PkceCodeChallenge,
    ) -> String {
        let Ok(mut url) = Url::parse(&self.endpoints.authorize) else {
            return self.endpoints.authorize.clone();
        };
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("state", state)
                .append_pair("code_challenge", challenge.as_str())
                .append_pair("code_challenge_method", "S256");
            if !scopes.is_empty() {
                q.append_pair("scope", &scopes.join(" "));
            }
        }
        url.to_string()
    }

    pub async fn finish(
        &self,
        redirect_uri: &str,
        code: &str,
        state: &str,
        pkce_verifier: &str,
    ) -> Result<Identity, LoginError> {
        let access = self
            .exchange(redirect_uri, code, state, pkce_verifier)
            .await?;
        let unreachable = |e: super::http::HttpError| LoginError::Unreachable {
            url: self.endpoints.user.clone(),
            detail: e.to_string(),
        };
        let (status, body) = self
            .http
            .get_json(&self.endpoints.user, &access)
            .await
            .map_err(unreachable)?;
        if status != 200 {
            return Err(LoginError::BadAnswer(format!(
                "its user endpoint {} answered HTTP {status}",
                self.endpoints.user
            )));
        }
        match self.kind {
            ProviderKind::Naver => self.naver_user(&body),
            _ => self.github_user(&body),
        }
    }

    /// The code for an access token.
    async fn exchange(
        &self,
        redirect_uri: &str,
        code: &str,
        state: &str,
        pkce_verifier: &str,
    ) -> Result<String, LoginError> {
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("client_id", &self.client_id)
                .append_pair("code_verifier", pkce_verifier);
            if let Some(secret) = &self.client_secret {
                form.append_pair("client_secret", secret);
            }
            // Naver's token request carries the state again.
            if self.kind == ProviderKind::Naver {
                form.append_pair("state", state);
            }
            form.finish()
        };
        let req = openidconnect::http::Request::builder()
            .method("POST")
            .uri(&self.endpoints.token)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form.into_bytes())
            .map_err(|e| LoginError::BadAnswer(e.to_string()))?;
        let res = self
            .http
            .send(req)
            .await
            .map_err(|e| LoginError::Unreachable {
                url: self.endpoints.token.clone(),
                detail: e.to_string(),
            })?;
        let body: Value = serde_json::from_slice(res.body()).map_err(|_| {
            LoginError::BadAnswer(format!(
                "its token endpoint answered HTTP {} with no JSON",
                res.status()
            ))
        })?;
        if let Some(error) = body.get("error").and_then(Value::as_str) {
            let detail = body
                .get("error_description")
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(LoginError::Refused(
                format!("{error} {detail}").trim().to_string(),
            ));
        }
        body.get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .ok_or_else(|| LoginError::BadAnswer("its token answer holds no access_token".into()))
    }

    /// GitHub's `GET /user`: a numeric `id`, `login`, and maybe a name,
    /// a public e-mail and an avatar.
    fn github_user(&self, body: &Value) -> Result<Identity, LoginError> {
        let subject = match body.get("id") {
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(LoginError::BadAnswer("its user has no numeric id".into())),
        };
        let s = |k: &str| body.get(k).and_then(Value::as_str);
        Ok(Identity {
            issuer: self.issuer.clone(),
            profile: profile(
                &[s("name"), s("login")],
                s("email"),
                s("avatar_url"),
                &subject,
            ),
            subject,
        })
    }

    /// Naver's `GET /v1/nid/me`: `resultcode` "00" and the person under
    /// `response`, each field there only when the person agreed to share it.
    fn naver_user(&self, body: &Value) -> Result<Identity, LoginError> {
        if body.get("resultcode").and_then(Value::as_str) != Some("00") {
            let message = body.get("message").and_then(Value::as_str).unwrap_or("");
            return Err(LoginError::BadAnswer(format!(
                "its profile answer says {message:?}"
            )));
        }
        let person = body.get("response").unwrap_or(&Value::Null);
        let s = |k: &str| person.get(k).and_then(Value::as_str);
        let subject = s("id")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| LoginError::BadAnswer("its profile has no id".into()))?
            .to_string();
        Ok(Identity {
            issuer: self.issuer.clone(),
            profile: profile(
                &[s("nickname"), s("name")],
                s("email"),
                s("profile_image"),
                &subject,
            ),
            subject,
        })
    }
}
