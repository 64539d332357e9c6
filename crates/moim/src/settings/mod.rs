//! `moim serve` settings from three layers, later wins: the config file,
//! `MOIM_*` environment variables, command-line flags.

pub mod auth;
pub mod tls;
mod webhook;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use moim_proto::token::KeyStore;
use moim_server::{ServerConfig, TurnSettings};
use serde::Deserialize;

/// The config file. Unknown keys are an error, so a typo never silently
/// falls back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub bind: Option<IpAddr>,
    pub port: Option<u16>,
    /// One port for everything (HTTPS, TURN over TLS and TCP, ICE-TCP on
    /// TCP; TURN over UDP); overrides port, rtc.tcp_port and the TURN ports.
    pub single_port: Option<u16>,
    pub node_ip: Option<IpAddr>,
    /// This node's id among its peers; random per process when unset.
    pub node_id: Option<String>,
    #[serde(default)]
    pub rtc: RtcSettings,
    #[serde(default)]
    pub room: RoomSettings,
    #[serde(default)]
    pub turn: TurnFileSettings,
    pub domain: Option<String>,
    #[serde(default)]
    pub tls: tls::TlsFileSettings,
    /// Reverse proxies (addresses or CIDR ranges) whose
    /// `X-Forwarded-For`/`Forwarded` headers name the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Where moim keeps its files: the ACME cache, the app's SQLite
    /// database.
    pub data_dir: Option<std::path::PathBuf>,
    /// API key → secret.
    #[serde(default)]
    pub keys: BTreeMap<String, String>,
    #[serde(default)]
    pub webhook: webhook::WebhookFileSettings,
    #[serde(default)]
    pub shutdown: ShutdownSettings,
    /// Where people log in to the app (see `auth.rs`).
    #[serde(default)]
    pub auth: auth::AuthFileSettings,
}

/// `[shutdown]`: how moim ends on SIGTERM.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// How long calls in progress may go on after SIGTERM before their
    /// participants are sent elsewhere. Keep it under the orchestrator's
    /// grace period (Kubernetes: 30 s, systemd: 90 s by default).
    pub drain_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtcSettings {
    pub udp_port: Option<u16>,
    pub tcp_port: Option<u16>,
    pub media_threads: Option<usize>,
    /// Estimate each subscriber's downlink and fit its layers to it
    /// (default true).
    pub downlink_bwe: Option<bool>,
    /// ICE-TCP bounds; `moim_sfu::IceTcpLimits` documents each and its
    /// default.
    pub tcp_max_pending: Option<usize>,
    pub tcp_max_pending_per_source: Option<usize>,
    pub tcp_max_established: Option<usize>,
    pub tcp_max_established_per_source: Option<usize>,
    pub tcp_stun_deadline_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnFileSettings {
    pub tls_port: Option<u16>,
    pub enabled: Option<bool>,
    pub port: Option<u16>,
    pub secret: Option<String>,
    pub credential_ttl_secs: Option<u64>,
    pub relay_port_min: Option<u16>,
    pub relay_port_max: Option<u16>,
    pub max_connections: Option<usize>,
    pub max_connections_per_source: Option<usize>,
    pub auth_deadline_secs: Option<u64>,
    pub user_quota: Option<usize>,
    pub max_allocations: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomSettings {
    pub empty_timeout_secs: Option<u64>,
    pub departure_timeout_secs: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("environment variable {name}={value:?} is invalid: {why}")]
    Env {
        name: String,
        value: String,
        why: String,
    },
    #[error("TLS needs both a certificate and a key: set tls.cert and tls.key (or --tls-cert and --tls-key)")]
    TlsPair,
    #[error("choose one certificate source: certificate files (--tls-cert/--tls-key), ACME (--acme) or --tls-self-signed")]
    TlsSources,
    #[error("ACME needs the name the certificate is for: --domain meet.example.com (or domain in the config file)")]
    AcmeDomain,
    #[error("--acme-challenge http-01 needs the plain-HTTP port: set --acme-http-port (80), or use tls-alpn-01")]
    AcmeHttpPort,
    #[error("--acme-challenge {0:?} is not one moim answers: use auto, tls-alpn-01 or http-01")]
    AcmeChallenge(String),
    #[error("STUN server \"{0}\" is not host:port, or the host does not resolve")]
    StunServer(String),
    #[error("{0}")]
    Webhook(String),
    #[error("{0}")]
    TrustedProxy(String),
    #[error("{0}")]
    Auth(String),
    #[error("{origin} is {value:?}: a node id is 1 to 64 letters, digits, '-', '_' or '.'")]
    NodeId { origin: &'static str, value: String },
    #[error("no API keys configured. Use --dev, set keys in the config file ([keys] mykey = \"secret\"), or MOIM_KEYS=\"mykey: secret\"")]
    NoKeys,
    #[error("API secret for key \"{0}\" is shorter than 32 characters; use a long random secret (only --dev may use short ones)")]
    WeakSecret(String),
}

/// Node ids show up in logs, metrics and (in a cluster) Redis keys, so
/// they stay short and plain.
fn checked_node_id(value: &str, origin: &'static str) -> Result<String, SettingsError> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if value.is_empty() || value.len() > 64 || !value.chars().all(plain) {
        return Err(SettingsError::NodeId {
            origin,
            value: value.to_string(),
        });
    }
    Ok(value.to_string())
}

/// A `MOIM_*` variable of this process. Empty counts as unset: Compose
/// and Helm pass `MOIM_NODE_IP=` for a value nobody filled in.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The data directory: the flag (or `MOIM_DATA_DIR`), else the file's
/// `data_dir`, else `./moim-data` under `--dev` and `/var/lib/moim`
/// otherwise (the packages' `StateDirectory`).
pub fn data_dir(
    flag: Option<std::path::PathBuf>,
    file: &FileSettings,
    dev: bool,
) -> std::path::PathBuf {
    flag.or_else(|| file.data_dir.clone()).unwrap_or_else(|| {
        if dev {
            "moim-data".into()
        } else {
            "/var/lib/moim".into()
        }
    })
}

pub fn load_file(path: &Path) -> Result<FileSettings, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| SettingsError::Parse {
        path: path.display().to_string(),
        source,
    })
}

/// Flags from the command line; `None` means "not given".
#[derive(Debug, Default)]
pub struct FlagSettings {
    pub dev: bool,
    pub bind: Option<IpAddr>,
    pub port: Option<u16>,
    pub single_port: Option<u16>,
    pub rtc_udp_port: Option<u16>,
    pub rtc_tcp_port: Option<u16>,
    pub node_ip: Option<IpAddr>,
    pub keys: Vec<(String, String)>,
    pub tls: tls::TlsFlags,
    pub trusted_proxies: Vec<String>,
    /// The data directory, already resolved (see [`data_dir`]).
    pub data_dir: std::path::PathBuf,
    pub domain: Option<String>,
    pub turn_tls_port: Option<u16>,
    pub use_external_ip: bool,
    pub stun_servers: Vec<String>,
    pub turn_port: Option<u16>,
    pub no_turn: bool,
    pub dangerous_turn_allow_private: bool,
}

fn env_parse<T: std::str::FromStr>(
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<T>, SettingsError>
where
    T::Err: std::fmt::Display,
{
    match env(name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|e: T::Err| SettingsError::Env {
                name: name.into(),
                value: v.clone(),
                why: e.to_string(),
            }),
    }
}

/// "key1: secret1, key2: secret2", the LIVEKIT_KEYS format.
pub fn parse_keys(s: &str) -> Result<Vec<(String, String)>, String> {
    s.split([',', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair
                .split_once(':')
                .ok_or_else(|| format!("\"{pair}\" is not \"key: secret\""))?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

pub fn resolve(
    file: FileSettings,
    env: &dyn Fn(&str) -> Option<String>,
    flags: FlagSettings,
) -> Result<ServerConfig, SettingsError> {
    let mut c = ServerConfig::dev();
    let mut keys: Vec<(String, String)> = Vec::new();
    if !flags.dev {
        c.keys = KeyStore::default();
    }
    // File.
    if let Some(v) = file.bind {
        c.bind = v;
    }
    if let Some(v) = file.port {
        c.port = v;
    }
    c.node_ip = file.node_ip.or(c.node_ip);
    if let Some(v) = &file.node_id {
        c.node_id = checked_node_id(v, "node_id in the config file")?;
    }
    if let Some(v) = file.rtc.udp_port {
        c.rtc_udp_port = v;
    }
    if let Some(v) = file.rtc.tcp_port {
        c.rtc_tcp_port = v;
    }
    if let Some(v) = file.rtc.media_threads {
        c.media_shards = v.max(1);
    }
    if let Some(v) = file.rtc.downlink_bwe {
        c.downlink_bwe = v;
    }
    let t = &mut c.ice_tcp;
    t.max_pending = file.rtc.tcp_max_pending.unwrap_or(t.max_pending);
    t.max_pending_per_source = file
        .rtc
        .tcp_max_pending_per_source
        .unwrap_or(t.max_pending_per_source);
    t.max_established = file.rtc.tcp_max_established.unwrap_or(t.max_established);
    t.max_established_per_source = file
        .rtc
        .tcp_max_established_per_source
        .unwrap_or(t.max_established_per_source);
    if let Some(v) = file.rtc.tcp_stun_deadline_secs {
        t.stun_deadline = Duration::from_secs(v);
    }
    if let Some(v) = file.room.empty_timeout_secs {
        c.empty_timeout = Duration::from_secs(v);
    }
    if let Some(v) = file.room.departure_timeout_secs {
        c.departure_timeout = Duration::from_secs(v);
    }
    if let Some(v) = file.shutdown.drain_timeout_secs {
        c.drain_timeout = Duration::from_secs(v);
    }
    keys.extend(file.keys);
    let mut turn = TurnSettings::default();
    let mut turn_enabled = file.turn.enabled.unwrap_or(true);
    if let Some(v) = file.turn.port {
        turn.port = v;
    }
    if let Some(v) = file.turn.secret {
        turn.secret = v;
    }
    if let Some(v) = file.turn.credential_ttl_secs {
        turn.credential_ttl = Duration::from_secs(v);
    }
    if let (Some(lo), Some(hi)) = (file.turn.relay_port_min, file.turn.relay_port_max) {
        turn.relay_port_range = lo..=hi;
    }
    turn.limits = moim_server::TurnLimits {
        max_connections: file.turn.max_connections,
        max_connections_per_source: file.turn.max_connections_per_source,
        auth_deadline: file.turn.auth_deadline_secs.map(Duration::from_secs),
        user_quota: file.turn.user_quota,
        max_allocations: file.turn.max_allocations,
    };
    // Environment.
    if let Some(v) = env_parse(env, "MOIM_TURN_PORT")? {
        turn.port = v;
    }
    if let Some(v) = env("MOIM_TURN_SECRET") {
        turn.secret = v;
    }
    if let Some(v) = env_parse::<bool>(env, "MOIM_TURN_ENABLED")? {
        turn_enabled = v;
    }
    if let Some(v) = env_parse(env, "MOIM_BIND")? {
        c.bind = v;
    }
    if let Some(v) = env_parse(env, "MOIM_PORT")? {
        c.port = v;
    }
    if let Some(v) = env_parse(env, "MOIM_RTC_UDP_PORT")? {
        c.rtc_udp_port = v;
    }
    if let Some(v) = env_parse(env, "MOIM_RTC_TCP_PORT")? {
        c.rtc_tcp_port = v;
    }
    if let Some(v) = env("MOIM_NODE_ID") {
        c.node_id = checked_node_id(&v, "MOIM_NODE_ID")?;
    }
    if let Some(v) = env_parse::<IpAddr>(env, "MOIM_NODE_IP")? {
        c.node_ip = Some(v);
    }
    if let Some(v) = env_parse::<u64>(env, "MOIM_EMPTY_TIMEOUT_SECS")? {
        c.empty_timeout = Duration::from_secs(v);
    }
    if let Some(v) = env_parse::<u64>(env, "MOIM_DEPARTURE_TIMEOUT_SECS")? {
        c.departure_timeout = Duration::from_secs(v);
    }
    if let Some(v) = env_parse::<u64>(env, "MOIM_DRAIN_TIMEOUT_SECS")? {
        c.drain_timeout = Duration::from_secs(v);
    }
    if let Some(v) = env("MOIM_KEYS") {
        keys.extend(parse_keys(&v).map_err(|why| SettingsError::Env {
            name: "MOIM_KEYS".into(),
            value: "<hidden>".into(),
            why,
        })?);
    }
    // Flags.
    if let Some(v) = flags.bind {
        c.bind = v;
    }
    if let Some(v) = flags.port {
        c.port = v;
    }
    if let Some(p) = flags
        .single_port
        .or(env_parse(env, "MOIM_SINGLE_PORT")?)
        .or(file.single_port)
    {
        c.port = p;
        c.one_port = true;
    }
    if let Some(v) = flags.rtc_udp_port {
        c.rtc_udp_port = v;
    }
    if let Some(v) = flags.rtc_tcp_port {
        c.rtc_tcp_port = v;
    }
    if let Some(v) = flags.node_ip {
        c.node_ip = Some(v);
    }
    keys.extend(flags.keys);
    if flags.use_external_ip || env_parse::<bool>(env, "MOIM_USE_EXTERNAL_IP")?.unwrap_or(false) {
        c.use_external_ip = true;
    }
    let mut stun = flags.stun_servers.clone();
    if let Some(v) = env("MOIM_STUN_SERVERS") {
        stun.extend(
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        );
    }
    for s in stun {
        use std::net::ToSocketAddrs;
        let addr = s
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| SettingsError::StunServer(s.clone()))?;
        c.stun_servers.push(addr);
    }
    c.domain = flags
        .domain
        .clone()
        .or(env("MOIM_DOMAIN"))
        .or(file.domain.clone());
    let proxies: Vec<String> = if !flags.trusted_proxies.is_empty() {
        flags.trusted_proxies.clone()
    } else if let Some(v) = env("MOIM_TRUSTED_PROXIES") {
        v.split(',').map(str::to_string).collect()
    } else {
        file.trusted_proxies.clone()
    };
    c.trusted_proxies = proxies
        .iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| moim_server::forwarded::parse_trusted(p))
        .collect::<Result<_, _>>()
        .map_err(SettingsError::TrustedProxy)?;
    c.tls = tls::resolve(
        &file.tls,
        env,
        &flags.tls,
        tls::Context {
            domain: c.domain.as_deref(),
            announce_ip: c.announce_ip(),
            bind: c.bind,
            https_port: c.port,
            data_dir: &flags.data_dir,
        },
    )?;
    if let Some(v) = flags.turn_tls_port.or(file.turn.tls_port) {
        turn.tls_port = v;
    }
    if let Some(v) = flags.turn_port {
        turn.port = v;
    }
    if flags.no_turn {
        turn_enabled = false;
    }
    turn.dangerous_allow_private_peers = flags.dangerous_turn_allow_private;
    c.turn = turn_enabled.then_some(turn);
    if !flags.dev {
        if let Some((k, _)) = keys.iter().find(|(_, s)| s.len() < 32) {
            return Err(SettingsError::WeakSecret(k.clone()));
        }
    }
    if !keys.is_empty() {
        let mut all: Vec<(String, String)> = c
            .keys
            .keys()
            .map(|k| {
                (
                    k.to_string(),
                    c.keys.secret(k).unwrap_or_default().to_string(),
                )
            })
            .collect();
        all.extend(keys);
        c.keys = KeyStore::new(all);
    }
    if c.keys.is_empty() {
        return Err(SettingsError::NoKeys);
    }
    webhook::apply(&mut c, file.webhook, env)?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn dev_mode_gives_livekit_dev_keys_and_ports() {
        let c = resolve(
            FileSettings::default(),
            &no_env,
            FlagSettings {
                dev: true,
                ..Default::default()
            },
        )
        .expect("dev config");
        assert_eq!(c.port, 7880);
        assert_eq!(c.rtc_udp_port, 7882);
        assert_eq!(c.rtc_tcp_port, 7881);
        assert_eq!(c.keys.secret("devkey"), Some("secret"));
    }

    #[test]
    fn a_node_id_comes_from_the_file_or_the_environment_and_is_unique_otherwise() {
        let dev = || FlagSettings {
            dev: true,
            ..Default::default()
        };
        let a = resolve(FileSettings::default(), &no_env, dev()).expect("config");
        let b = resolve(FileSettings::default(), &no_env, dev()).expect("config");
        assert!(a.node_id.starts_with("ND_"));
        assert_ne!(a.node_id, b.node_id, "two processes never share a node id");

        let file: FileSettings = toml::from_str("node_id = \"eu-1\"\n").expect("toml");
        let c = resolve(file, &no_env, dev()).expect("config");
        assert_eq!(c.node_id, "eu-1");
        let env = |n: &str| (n == "MOIM_NODE_ID").then(|| "eu-2".to_string());
        let c = resolve(FileSettings::default(), &env, dev()).expect("config");
        assert_eq!(c.node_id, "eu-2");

        let env = |n: &str| (n == "MOIM_NODE_ID").then(|| "eu 3/x".to_string());
        let e = resolve(FileSettings::default(), &env, dev()).expect_err("refused");
        assert!(e.to_string().contains("MOIM_NODE_ID"), "{e}");
    }

    #[test]
    fn file_then_env_then_flags_and_several_keys() {
        let file: FileSettings = toml::from_str(
            "port = 9000\n[rtc]\nudp_port = 9002\n[keys]\nk1 = \"0123456789abcdef0123456789abcdef\"\n",
        )
        .expect("toml");
        let env = |name: &str| match name {
            "MOIM_PORT" => Some("9100".to_string()),
            "MOIM_KEYS" => Some("k2: abcdefabcdefabcdefabcdefabcdefabcdef".to_string()),
            _ => None,
        };
        let c = resolve(
            file,
            &env,
            FlagSettings {
                rtc_udp_port: Some(9200),
                ..Default::default()
            },
        )
        .expect("config");
        assert_eq!(c.port, 9100);
        assert_eq!(c.rtc_udp_port, 9200);
        assert!(c.keys.secret("k1").is_some() && c.keys.secret("k2").is_some());
        assert!(c.keys.secret("devkey").is_none());
    }

    #[test]
    fn ice_tcp_limits_come_from_the_rtc_table() {
        let dev = FlagSettings {
            dev: true,
            ..Default::default()
        };
        let c = resolve(FileSettings::default(), &no_env, dev).expect("config");
        assert_eq!(c.ice_tcp, ServerConfig::dev().ice_tcp);
        let file: FileSettings = toml::from_str(
            "[rtc]\ntcp_max_pending = 64\ntcp_max_pending_per_source = 4\n\
             tcp_max_established = 100\ntcp_max_established_per_source = 50\n\
             tcp_stun_deadline_secs = 2\n",
        )
        .expect("toml");
        let dev = FlagSettings {
            dev: true,
            ..Default::default()
        };
        let t = resolve(file, &no_env, dev).expect("config").ice_tcp;
        assert_eq!(
            (
                t.max_pending,
                t.max_pending_per_source,
                t.max_established,
                t.max_established_per_source,
                t.stun_deadline
            ),
            (64, 4, 100, 50, Duration::from_secs(2))
        );
    }

    #[test]
    fn the_downlink_estimator_is_on_unless_the_rtc_table_turns_it_off() {
        let dev = || FlagSettings {
            dev: true,
            ..Default::default()
        };
        let c = resolve(FileSettings::default(), &no_env, dev()).expect("config");
        assert!(c.downlink_bwe);
        let file: FileSettings = toml::from_str("[rtc]\ndownlink_bwe = false\n").expect("toml");
        assert!(!resolve(file, &no_env, dev()).expect("config").downlink_bwe);
    }

    #[test]
    fn turn_limits_come_from_the_turn_table() {
        let file: FileSettings = toml::from_str(
            "[turn]\nmax_connections = 1000\nmax_connections_per_source = 16\n\
             auth_deadline_secs = 3\nuser_quota = 4\nmax_allocations = 500\n",
        )
        .expect("toml");
        let dev = FlagSettings {
            dev: true,
            ..Default::default()
        };
        let turn = resolve(file, &no_env, dev)
            .expect("config")
            .turn
            .expect("TURN is on by default");
        let l = turn.limits;
        assert_eq!(
            (
                l.max_connections,
                l.max_connections_per_source,
                l.auth_deadline,
                l.user_quota,
                l.max_allocations
            ),
            (
                Some(1000),
                Some(16),
                Some(Duration::from_secs(3)),
                Some(4),
                Some(500)
            )
        );
    }

    #[test]
    fn mistakes_are_named() {
        assert!(toml::from_str::<FileSettings>("prot = 1").is_err());
        let err = resolve(FileSettings::default(), &no_env, FlagSettings::default())
            .expect_err("no keys");
        assert!(err.to_string().contains("no API keys"));
        let env = |n: &str| (n == "MOIM_PORT").then(|| "eighty".to_string());
        let err = resolve(
            FileSettings::default(),
            &env,
            FlagSettings {
                dev: true,
                ..Default::default()
            },
        )
        .expect_err("bad port");
        assert!(err.to_string().contains("MOIM_PORT"));
        let weak = FlagSettings {
            keys: vec![("k".into(), "short".into())],
            ..Default::default()
        };
        assert!(matches!(
            resolve(FileSettings::default(), &no_env, weak),
            Err(SettingsError::WeakSecret(_))
        ));
    }
}
