//! `[tls]`: where the certificate comes from. Flags over environment over
//! the file, one source at a time: files, ACME, or self-signed.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use moim_server::tls::{AcmeSettings, ChallengeKind, TlsSettings};
use serde::Deserialize;

use super::SettingsError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFileSettings {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    #[serde(default)]
    pub self_signed: bool,
    /// Certificates from an ACME CA for `domain`.
    #[serde(default)]
    pub acme: bool,
    pub acme_email: Option<String>,
    pub acme_directory: Option<String>,
    /// "auto", "tls-alpn-01" or "http-01".
    pub acme_challenge: Option<String>,
    /// Plain-HTTP port for HTTP-01 and redirects (80); 0 opens none.
    pub acme_http_port: Option<u16>,
    pub acme_directory_ca: Option<PathBuf>,
}

/// The TLS flags of `moim serve`.
#[derive(Debug, Default)]
pub struct TlsFlags {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub self_signed: bool,
    pub acme: bool,
    pub acme_email: Option<String>,
    pub acme_directory: Option<String>,
    pub acme_challenge: Option<String>,
    pub acme_http_port: Option<u16>,
    pub acme_directory_ca: Option<PathBuf>,
}

/// What [`resolve`] needs from the rest of the settings.
pub struct Context<'a> {
    pub domain: Option<&'a str>,
    pub announce_ip: IpAddr,
    pub bind: IpAddr,
    pub https_port: u16,
    pub data_dir: &'a Path,
}

pub fn resolve(
    file: &TlsFileSettings,
    env: &dyn Fn(&str) -> Option<String>,
    flags: &TlsFlags,
    cx: Context<'_>,
) -> Result<Option<TlsSettings>, SettingsError> {
    let cert = flags
        .cert
        .clone()
        .or(env("MOIM_TLS_CERT").map(Into::into))
        .or(file.cert.clone());
    let key = flags
        .key
        .clone()
        .or(env("MOIM_TLS_KEY").map(Into::into))
        .or(file.key.clone());
    let acme = flags.acme || env("MOIM_ACME").is_some_and(|v| v == "1" || v == "true") || file.acme;
    let self_signed = flags.self_signed || file.self_signed;
    let sources = [cert.is_some() || key.is_some(), acme, self_signed];
    if sources.iter().filter(|s| **s).count() > 1 {
        return Err(SettingsError::TlsSources);
    }
    match (cert, key) {
        (Some(cert), Some(key)) => return Ok(Some(TlsSettings::Files { cert, key })),
        (None, None) => {}
        _ => return Err(SettingsError::TlsPair),
    }
    if self_signed {
        let mut names = moim_server::tls::default_names(cx.announce_ip);
        names.extend(cx.domain.map(str::to_string));
        return Ok(Some(TlsSettings::SelfSigned { names }));
    }
    if !acme {
        return Ok(None);
    }
    let Some(domain) = cx.domain else {
        return Err(SettingsError::AcmeDomain);
    };
    let http_port = flags.acme_http_port.or(file.acme_http_port).unwrap_or(80);
    let http_listen = (http_port != 0).then(|| SocketAddr::new(cx.bind, http_port));
    let challenge = match flags
        .acme_challenge
        .as_deref()
        .or(file.acme_challenge.as_deref())
        .unwrap_or("auto")
    {
        "auto" => ChallengeKind::auto(cx.https_port, http_listen),
        "tls-alpn-01" => ChallengeKind::TlsAlpn01,
        "http-01" if http_listen.is_some() => ChallengeKind::Http01,
        "http-01" => return Err(SettingsError::AcmeHttpPort),
        other => return Err(SettingsError::AcmeChallenge(other.to_string())),
    };
    Ok(Some(TlsSettings::Acme(AcmeSettings {
        domains: domain.split(',').map(|d| d.trim().to_string()).collect(),
        email: flags
            .acme_email
            .clone()
            .or(env("MOIM_ACME_EMAIL"))
            .or(file.acme_email.clone()),
        directory: flags
            .acme_directory
            .clone()
            .or(env("MOIM_ACME_DIRECTORY"))
            .or(file.acme_directory.clone())
            .unwrap_or_else(|| moim_server::tls::acme::LETS_ENCRYPT.to_string()),
        cache_dir: cx.data_dir.join("acme"),
        challenge,
        http_listen,
        directory_ca: flags
            .acme_directory_ca
            .clone()
            .or(file.acme_directory_ca.clone()),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx(domain: Option<&str>, https_port: u16) -> Context<'_> {
        Context {
            domain,
            announce_ip: IpAddr::from([203, 0, 113, 10]),
            bind: IpAddr::from([0, 0, 0, 0]),
            https_port,
            data_dir: Path::new("/var/lib/moim"),
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// Flags alone: no config file, no environment.
    fn from_flags(
        flags: &TlsFlags,
        domain: Option<&str>,
        https_port: u16,
    ) -> Result<Option<TlsSettings>, SettingsError> {
        resolve(
            &TlsFileSettings::default(),
            &no_env,
            flags,
            cx(domain, https_port),
        )
    }

    #[test]
    fn acme_on_443_validates_over_tls_alpn_and_caches_in_the_data_dir() {
        let flags = TlsFlags {
            acme: true,
            acme_email: Some("ops@example.com".into()),
            ..Default::default()
        };
        let Some(TlsSettings::Acme(a)) =
            from_flags(&flags, Some("meet.example.com"), 443).expect("valid")
        else {
            panic!("ACME settings expected");
        };
        assert_eq!(a.domains, ["meet.example.com"]);
        assert_eq!(a.challenge, ChallengeKind::TlsAlpn01);
        assert_eq!(a.cache_dir, Path::new("/var/lib/moim/acme"));
        assert_eq!(a.http_listen, Some("0.0.0.0:80".parse().expect("addr")));
        assert_eq!(a.directory, moim_server::tls::acme::LETS_ENCRYPT);
    }

    #[test]
    fn acme_off_443_uses_http_01_and_the_file_can_ask_for_it() {
        let file: TlsFileSettings = toml::from_str(
            "acme = true\nacme_challenge = \"http-01\"\nacme_http_port = 8080\n\
             acme_directory = \"https://ca.internal/dir\"",
        )
        .expect("toml");
        let Some(TlsSettings::Acme(a)) = resolve(
            &file,
            &no_env,
            &TlsFlags::default(),
            cx(Some("a.test"), 8443),
        )
        .expect("valid") else {
            panic!("ACME settings expected");
        };
        assert_eq!(a.challenge, ChallengeKind::Http01);
        assert_eq!(a.http_listen.map(|s| s.port()), Some(8080));
        assert_eq!(a.directory, "https://ca.internal/dir");
    }

    #[test]
    fn acme_needs_a_domain_and_one_certificate_source() {
        let acme = TlsFlags {
            acme: true,
            ..Default::default()
        };
        assert!(matches!(
            from_flags(&acme, None, 443),
            Err(SettingsError::AcmeDomain)
        ));
        let both = TlsFlags {
            acme: true,
            cert: Some("a.pem".into()),
            key: Some("k.pem".into()),
            ..Default::default()
        };
        assert!(matches!(
            from_flags(&both, Some("a.test"), 443),
            Err(SettingsError::TlsSources)
        ));
        let http_without_port = TlsFlags {
            acme: true,
            acme_challenge: Some("http-01".into()),
            acme_http_port: Some(0),
            ..Default::default()
        };
        assert!(matches!(
            from_flags(&http_without_port, Some("a.test"), 443),
            Err(SettingsError::AcmeHttpPort)
        ));
        let typo = TlsFlags {
            acme: true,
            acme_challenge: Some("dns-01".into()),
            ..Default::default()
        };
        assert!(matches!(
            from_flags(&typo, Some("a.test"), 443),
            Err(SettingsError::AcmeChallenge(_))
        ));
    }
}
