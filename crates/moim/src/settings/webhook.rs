//! `[webhook]` in the config file and `MOIM_WEBHOOK_URLS` /
//! `MOIM_WEBHOOK_API_KEY` in the environment.

use moim_server::ServerConfig;
use serde::Deserialize;

use super::SettingsError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookFileSettings {
    /// Receivers of every webhook event.
    #[serde(default)]
    pub urls: Vec<String>,
    /// The API key whose secret signs the events (default: the only key).
    pub api_key: Option<String>,
}

/// Applies file then environment to `c`, whose keys are final.
pub fn apply(
    c: &mut ServerConfig,
    file: WebhookFileSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), SettingsError> {
    c.webhook_urls = file.urls;
    c.webhook_api_key = file.api_key;
    if let Some(v) = env("MOIM_WEBHOOK_URLS") {
        c.webhook_urls = v
            .split([',', ' ', '\n'])
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(String::from)
            .collect();
    }
    if let Some(v) = env("MOIM_WEBHOOK_API_KEY").filter(|v| !v.is_empty()) {
        c.webhook_api_key = Some(v);
    }
    for url in &c.webhook_urls {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(SettingsError::Webhook(format!(
                "webhook URL \"{url}\" must start with http:// or https://"
            )));
        }
    }
    if c.webhook_urls.is_empty() {
        return Ok(());
    }
    match &c.webhook_api_key {
        Some(k) if c.keys.secret(k).is_none() => Err(SettingsError::Webhook(format!(
            "webhook api_key \"{k}\" is not a configured API key; add it under [keys] or pick one of those"
        ))),
        None if c.keys.keys().count() != 1 => Err(SettingsError::Webhook(
            "several API keys are configured; set [webhook] api_key (or MOIM_WEBHOOK_API_KEY) to the key that signs webhooks".into(),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_and_the_key_must_exist() {
        let mut c = ServerConfig::dev();
        let file = WebhookFileSettings {
            urls: vec!["http://a/hook".into()],
            api_key: None,
        };
        let env =
            |n: &str| (n == "MOIM_WEBHOOK_URLS").then(|| "http://b/1, http://c/2".to_string());
        apply(&mut c, file, &env).expect("valid");
        assert_eq!(c.webhook_urls, vec!["http://b/1", "http://c/2"]);
        let bad = WebhookFileSettings {
            urls: vec!["http://a".into()],
            api_key: Some("nope".into()),
        };
        let err = apply(&mut c, bad, &|_| None).expect_err("unknown key");
        assert!(err.to_string().contains("nope"));
        let ftp = WebhookFileSettings {
            urls: vec!["ftp://a".into()],
            api_key: None,
        };
        assert!(apply(&mut c, ftp, &|_| None).is_err());
    }
}
