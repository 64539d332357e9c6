//! `moim serve --print-config`: the configuration a command line, config
//! file and environment add up to, as a config file moim itself reads back,
//! with every secret masked. The first thing to paste when asking why a
//! deployment behaves as it does.

use std::fmt::Write;
use std::path::Path;

use moim_server::tls::{ChallengeKind, TlsSettings};
use moim_server::ServerConfig;

/// What replaces a secret: its length shows whether one is set and how
/// long it is, never what it is.
fn masked(secret: &str) -> String {
    if secret.is_empty() {
        "(generated at start)".to_string()
    } else {
        format!("(masked, {} characters)", secret.chars().count())
    }
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(quoted).collect();
    format!("[{}]", items.join(", "))
}

fn path(p: &Path) -> String {
    quoted(&p.display().to_string())
}

pub fn render(
    c: &ServerConfig,
    data_dir: &Path,
    public_url: &str,
    providers: &[moim_app::login::ProviderConfig],
) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# The configuration moim serve runs with: config file, MOIM_* environment and flags\n\
         # together. Secrets are masked; the rest reads back as a config file."
    );
    let _ = writeln!(o, "bind = {}", quoted(&c.bind.to_string()));
    if c.one_port {
        let _ = writeln!(o, "single_port = {}", c.port);
    } else {
        let _ = writeln!(o, "port = {}", c.port);
    }
    match c.node_ip {
        Some(ip) => {
            let _ = writeln!(o, "node_ip = {}", quoted(&ip.to_string()));
        }
        None if c.use_external_ip => {
            let _ = writeln!(
                o,
                "# node_ip: discovered with STUN at start (--use-external-ip)"
            );
        }
        None => {
            let _ = writeln!(
                o,
                "# node_ip unset: media candidates announce {}",
                c.announce_ip()
            );
        }
    }
    let _ = writeln!(o, "node_id = {}", quoted(&c.node_id));
    if let Some(d) = &c.domain {
        let _ = writeln!(o, "domain = {}", quoted(d));
    }
    let _ = writeln!(o, "data_dir = {}", path(data_dir));
    let proxies: Vec<String> = c.trusted_proxies.iter().map(|n| n.to_string()).collect();
    let _ = writeln!(
        o,
        "trusted_proxies = {}",
        list(proxies.iter().map(String::as_str))
    );
    let _ = writeln!(o, "# the app's public URL: {public_url}");

    let _ = writeln!(o, "\n[rtc]");
    let _ = writeln!(o, "udp_port = {}", c.rtc_udp_port);
    let _ = writeln!(o, "tcp_port = {}", c.rtc_tcp_port);
    let _ = writeln!(o, "media_threads = {}", c.media_shards);
    let _ = writeln!(o, "downlink_bwe = {}", c.downlink_bwe);

    let _ = writeln!(o, "\n[room]");
    let _ = writeln!(o, "empty_timeout_secs = {}", c.empty_timeout.as_secs());
    let _ = writeln!(
        o,
        "departure_timeout_secs = {}",
        c.departure_timeout.as_secs()
    );

    let _ = writeln!(o, "\n[shutdown]");
    let _ = writeln!(o, "drain_timeout_secs = {}", c.drain_timeout.as_secs());

    let _ = writeln!(o, "\n[turn]");
    match &c.turn {
        None => {
            let _ = writeln!(o, "enabled = false");
        }
        Some(t) => {
            let _ = writeln!(o, "enabled = true");
            let _ = writeln!(o, "port = {}", t.port);
            let _ = writeln!(o, "tls_port = {}", t.tls_port);
            let _ = writeln!(o, "secret = {}", quoted(&masked(&t.secret)));
            let _ = writeln!(o, "credential_ttl_secs = {}", t.credential_ttl.as_secs());
            let _ = writeln!(o, "relay_port_min = {}", t.relay_port_range.start());
            let _ = writeln!(o, "relay_port_max = {}", t.relay_port_range.end());
        }
    }

    let _ = writeln!(o, "\n[tls]");
    match &c.tls {
        None => {
            let _ = writeln!(
                o,
                "# none: plain HTTP and ws:// (fine behind a proxy that ends TLS)"
            );
        }
        Some(TlsSettings::Files { cert, key }) => {
            let _ = writeln!(o, "cert = {}", path(cert));
            let _ = writeln!(o, "key = {}", path(key));
        }
        Some(TlsSettings::SelfSigned { names }) => {
            let _ = writeln!(o, "self_signed = true");
            let _ = writeln!(o, "# for {}", names.join(", "));
        }
        Some(TlsSettings::Acme(a)) => {
            let _ = writeln!(o, "acme = true");
            if let Some(e) = &a.email {
                let _ = writeln!(o, "acme_email = {}", quoted(e));
            }
            let _ = writeln!(o, "acme_directory = {}", quoted(&a.directory));
            let challenge = match a.challenge {
                ChallengeKind::TlsAlpn01 => "tls-alpn-01",
                ChallengeKind::Http01 => "http-01",
            };
            let _ = writeln!(o, "acme_challenge = {}", quoted(challenge));
            let _ = writeln!(
                o,
                "acme_http_port = {}",
                a.http_listen.map_or(0, |s| s.port())
            );
            if let Some(ca) = &a.directory_ca {
                let _ = writeln!(o, "acme_directory_ca = {}", path(ca));
            }
            let _ = writeln!(o, "# cached in {}", a.cache_dir.display());
        }
    }

    let _ = writeln!(o, "\n[keys]");
    for key in c.keys.keys() {
        let secret = c.keys.secret(key).unwrap_or_default();
        let _ = writeln!(o, "{} = {}", quoted(key), quoted(&masked(secret)));
    }

    let _ = writeln!(o, "\n[webhook]");
    let _ = writeln!(
        o,
        "urls = {}",
        list(c.webhook_urls.iter().map(String::as_str))
    );
    if let Some(k) = &c.webhook_api_key {
        let _ = writeln!(o, "api_key = {}", quoted(k));
    }

    for p in providers {
        let _ = writeln!(o, "\n[[auth.providers]]");
        let _ = writeln!(o, "kind = {}", quoted(p.kind.as_str()));
        let _ = writeln!(o, "id = {}", quoted(&p.id));
        if let Some(l) = &p.label {
            let _ = writeln!(o, "label = {}", quoted(l));
        }
        let _ = writeln!(o, "client_id = {}", quoted(&p.client_id));
        if let Some(s) = &p.client_secret {
            let _ = writeln!(o, "client_secret = {}", quoted(&masked(s)));
        }
        if let Some(i) = &p.issuer {
            let _ = writeln!(o, "issuer = {}", quoted(i));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printout_reads_back_as_a_config_file_and_shows_no_secret() {
        let mut c = ServerConfig::dev();
        c.keys = moim_proto::token::KeyStore::new([(
            "prod".to_string(),
            "a-very-long-secret-nobody-may-see-0123".to_string(),
        )]);
        if let Some(t) = c.turn.as_mut() {
            t.secret = "turn-secret-nobody-may-see".to_string();
        }
        c.trusted_proxies = vec![moim_server::forwarded::parse_trusted("10.0.0.0/8").expect("net")];
        c.tls = Some(TlsSettings::Files {
            cert: "/etc/moim/fullchain.pem".into(),
            key: "/etc/moim/privkey.pem".into(),
        });
        let mut provider = moim_app::login::ProviderConfig::new(
            "google",
            moim_app::login::ProviderKind::Google,
            "client-1",
        );
        provider.client_secret = Some("oauth-secret-nobody-may-see".to_string());
        let text = render(
            &c,
            Path::new("/var/lib/moim"),
            "https://meet.example.com",
            &[provider],
        );
        assert!(!text.contains("nobody-may-see"), "{text}");
        let back: crate::settings::FileSettings = toml::from_str(&text).expect(&text);
        assert_eq!(back.port, Some(c.port));
        assert_eq!(back.trusted_proxies, ["10.0.0.0/8"]);
        assert_eq!(back.data_dir.as_deref(), Some(Path::new("/var/lib/moim")));
        assert_eq!(
            back.tls.cert.as_deref(),
            Some(Path::new("/etc/moim/fullchain.pem"))
        );
        assert_eq!(back.keys.len(), 1);
        assert_eq!(back.auth.providers.len(), 1);
    }
}
