//! `[[auth.providers]]` in the config file, and `MOIM_AUTH_<KIND>_*` in the
//! environment: where people log in to the app.
//!
//! ```toml
//! [[auth.providers]]
//! kind = "oidc"                       # oidc, google, kakao, github, naver
//! id = "corp"                         # in URLs: /auth/login/corp (default: the kind)
//! label = "Corp SSO"                  # the login button (default: the kind's name)
//! issuer = "https://sso.corp.example" # oidc: required; google, kakao: preset
//! client_id = "moim"
//! client_secret = "..."
//! ```
//!
//! The environment sets or overrides one provider per kind, with the kind as
//! its id: `MOIM_AUTH_GITHUB_CLIENT_ID`, `MOIM_AUTH_GITHUB_CLIENT_SECRET`,
//! and for `oidc` also `MOIM_AUTH_OIDC_ISSUER` and `MOIM_AUTH_OIDC_LABEL`.
//! Register `<public URL>/auth/callback/<id>` as the redirect URI at the
//! provider, exactly.

use moim_app::login::{OAuthEndpoints, ProviderConfig, ProviderKind};
use serde::Deserialize;

use super::SettingsError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFileSettings {
    #[serde(default)]
    pub providers: Vec<ProviderFileSettings>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFileSettings {
    pub kind: String,
    pub id: Option<String>,
    pub label: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub issuer: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// Plain OAuth 2.0 (github, naver): the endpoints, for GitHub
    /// Enterprise or a test stub; all three or none.
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub user_url: Option<String>,
}

const KINDS: [ProviderKind; 5] = [
    ProviderKind::Oidc,
    ProviderKind::Google,
    ProviderKind::Kakao,
    ProviderKind::GitHub,
    ProviderKind::Naver,
];

fn unknown_kind(kind: &str) -> SettingsError {
    SettingsError::Auth(format!(
        "login provider kind \"{kind}\" is not one of oidc, google, kakao, github, naver"
    ))
}

/// The providers from file then environment.
pub fn providers(
    file: AuthFileSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<ProviderConfig>, SettingsError> {
    let mut out: Vec<ProviderConfig> = Vec::new();
    for p in file.providers {
        let kind = ProviderKind::parse(&p.kind).ok_or_else(|| unknown_kind(&p.kind))?;
        let id = p.id.unwrap_or_else(|| kind.as_str().to_string());
        let mut c = ProviderConfig::new(&id, kind, p.client_id.as_deref().unwrap_or_default());
        c.label = p.label;
        c.client_secret = p.client_secret;
        c.issuer = p.issuer;
        c.scopes = p.scopes;
        c.endpoints = match (p.authorize_url, p.token_url, p.user_url) {
            (Some(authorize), Some(token), Some(user)) => Some(OAuthEndpoints {
                authorize,
                token,
                user,
            }),
            (None, None, None) => None,
            _ => {
                return Err(SettingsError::Auth(format!(
                    "login provider \"{id}\": give authorize_url, token_url and user_url together, or none"
                )))
            }
        };
        out.push(c);
    }
    for kind in KINDS {
        let var = |field: &str| {
            env(&format!(
                "MOIM_AUTH_{}_{field}",
                kind.as_str().to_ascii_uppercase()
            ))
            .filter(|v| !v.trim().is_empty())
        };
        let (client_id, secret, issuer, label) = (
            var("CLIENT_ID"),
            var("CLIENT_SECRET"),
            var("ISSUER"),
            var("LABEL"),
        );
        if client_id.is_none() && secret.is_none() && issuer.is_none() {
            continue;
        }
        let id = kind.as_str();
        let at = match out.iter().position(|c| c.id == id) {
            Some(i) => i,
            None => {
                out.push(ProviderConfig::new(id, kind, ""));
                out.len() - 1
            }
        };
        let c = &mut out[at];
        if let Some(v) = client_id {
            c.client_id = v;
        }
        c.client_secret = secret.or(c.client_secret.take());
        c.issuer = issuer.or(c.issuer.take());
        c.label = label.or(c.label.take());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_adds_or_completes_a_provider_per_kind() {
        let file: AuthFileSettings = toml::from_str(
            r#"
            [[providers]]
            kind = "oidc"
            id = "corp"
            issuer = "https://sso.corp.example"
            client_id = "moim"

            [[providers]]
            kind = "github"
            client_id = "Iv1.abc"
            "#,
        )
        .expect("parses");
        let env = |n: &str| match n {
            "MOIM_AUTH_GITHUB_CLIENT_SECRET" => Some("from-env".to_string()),
            "MOIM_AUTH_NAVER_CLIENT_ID" => Some("naver-id".to_string()),
            _ => None,
        };
        let ps = providers(file, &env).expect("valid");
        let ids: Vec<&str> = ps.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["corp", "github", "naver"]);
        assert_eq!(ps[1].client_secret.as_deref(), Some("from-env"));
        assert_eq!(ps[2].kind, ProviderKind::Naver);
        assert_eq!(ps[0].issuer.as_deref(), Some("https://sso.corp.example"));
    }

    #[test]
    fn a_typo_in_the_kind_or_half_the_endpoints_is_an_error() {
        let bad: AuthFileSettings =
            toml::from_str("[[providers]]\nkind = \"gihtub\"\nclient_id = \"x\"").expect("parses");
        assert!(providers(bad, &|_| None)
            .expect_err("unknown kind")
            .to_string()
            .contains("gihtub"));
        let half: AuthFileSettings = toml::from_str(
            "[[providers]]\nkind = \"github\"\nclient_id = \"x\"\nauthorize_url = \"https://a\"",
        )
        .expect("parses");
        assert!(providers(half, &|_| None).is_err());
    }
}
