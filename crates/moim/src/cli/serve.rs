//! `moim serve`: run the server.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use super::app_host;
use crate::fail;
use crate::settings;

#[derive(Parser)]
pub struct ServeArgs {
    /// Development mode: API key `devkey`, secret `secret`, loopback only.
    #[arg(long)]
    dev: bool,
    /// TOML config file.
    #[arg(long, env = "MOIM_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long)]
    bind: Option<IpAddr>,
    /// HTTP/WebSocket port (7880).
    #[arg(long)]
    port: Option<u16>,
    /// One port for everything, for networks that allow only 443: HTTPS
    /// and WSS, TURN over TLS and TCP, and ICE-TCP on this TCP port, TURN
    /// over UDP on this UDP port. Overrides --port, --rtc-tcp-port and the
    /// TURN ports; media keeps --rtc-udp-port for clients that may use it.
    #[arg(long)]
    single_port: Option<u16>,
    /// Media UDP port (7882).
    #[arg(long)]
    rtc_udp_port: Option<u16>,
    /// ICE-TCP port (7881); 0 disables it.
    #[arg(long)]
    rtc_tcp_port: Option<u16>,
    /// The IP clients reach the media ports at (the public IP behind NAT).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// TLS certificate chain (PEM, leaf first) for HTTPS/WSS and TURN/TLS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate (LAN and development).
    #[arg(long, conflicts_with = "tls_cert")]
    tls_self_signed: bool,
    /// Get the certificate for --domain from an ACME CA (Let's Encrypt),
    /// and renew it while running. The CA must reach this server on port
    /// 443 (or 80 with --acme-challenge http-01).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_self_signed"])]
    acme: bool,
    /// Contact address the CA sends expiry notices to.
    #[arg(long, requires = "acme")]
    acme_email: Option<String>,
    /// ACME directory URL (default: Let's Encrypt's production directory).
    #[arg(long, requires = "acme")]
    acme_directory: Option<String>,
    /// How the CA checks this server: auto, tls-alpn-01 (on the HTTPS
    /// port) or http-01 (on --acme-http-port).
    #[arg(long, requires = "acme")]
    acme_challenge: Option<String>,
    /// Plain-HTTP port for HTTP-01 checks and redirects to HTTPS (80); 0
    /// opens none.
    #[arg(long, requires = "acme")]
    acme_http_port: Option<u16>,
    /// CA certificate (PEM) trusted for the ACME directory's own HTTPS,
    /// for a private or test CA such as pebble.
    #[arg(long, requires = "acme")]
    acme_directory_ca: Option<PathBuf>,
    /// A reverse proxy (IP or CIDR range) whose X-Forwarded-For or
    /// Forwarded header names the client; repeatable.
    #[arg(long = "trusted-proxy")]
    trusted_proxies: Vec<String>,
    /// Print the configuration moim would run with (secrets masked) and exit.
    #[arg(long)]
    print_config: bool,
    /// The host name clients use (certificate name; used in turns: URLs).
    #[arg(long)]
    domain: Option<String>,
    /// TURN over TLS port (5349), when TLS is on.
    #[arg(long)]
    turn_tls_port: Option<u16>,
    /// Discover the public IP with STUN and announce it (behind NAT).
    #[arg(long)]
    use_external_ip: bool,
    /// STUN server for --use-external-ip, host:port; repeatable.
    #[arg(long = "stun-server")]
    stun_servers: Vec<String>,
    /// Embedded TURN port for UDP and TCP (3478).
    #[arg(long)]
    turn_port: Option<u16>,
    /// Do not start the embedded TURN server.
    #[arg(long)]
    no_turn: bool,
    /// TESTS ONLY: let TURN relay to loopback and private addresses, which
    /// makes this server an open relay into its network.
    #[arg(long)]
    dangerous_turn_allow_private: bool,
    /// API key and secret, "key: secret"; repeatable.
    #[arg(long = "keys")]
    keys: Vec<String>,
    /// Where moim keeps its files (the ACME cache, the app's SQLite
    /// database); created on first start. Default: ./moim-data with
    /// --dev, /var/lib/moim otherwise.
    #[arg(long, env = "MOIM_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The app's database: a `postgres://` URL, or by default a SQLite
    /// file in the data directory.
    #[arg(long, env = "MOIM_DATABASE_URL")]
    database_url: Option<String>,
    /// The URL browsers open the app at (https://meet.example.com). Login
    /// cookies and the app's Origin check follow it. Default: https with
    /// --domain and TLS, else http://127.0.0.1:<port>.
    #[arg(long, env = "MOIM_PUBLIC_URL")]
    public_url: Option<String>,
    /// The built meeting app (moim meet) served at /. Default: the first
    /// of <binary's dir>/../share/moim/meet, <binary's dir>/meet, and the
    /// source tree's web/meet/dist.
    #[arg(long, env = "MOIM_MEET_DIR")]
    meet_dir: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> ExitCode {
    app_host::init_logging();
    // Freed memory goes back to the kernel a few seconds after a crowd
    // leaves, whether or not moim's own threads are busy (moim-alloc).
    if let Err(e) = moim_alloc::start() {
        tracing::warn!(
            "{e}; memory freed after a crowd leaves may stay with the process until it exits"
        );
    }
    let mut file = match &args.config {
        Some(path) => match settings::load_file(path) {
            Ok(f) => f,
            Err(e) => return fail(e),
        },
        None => settings::FileSettings::default(),
    };
    let mut keys = Vec::new();
    for k in &args.keys {
        match settings::parse_keys(k) {
            Ok(mut v) => keys.append(&mut v),
            Err(e) => return fail(format!("--keys: {e}")),
        }
    }
    let data_dir = settings::data_dir(args.data_dir.clone(), &file, args.dev);
    let flags = settings::FlagSettings {
        dev: args.dev,
        bind: args.bind,
        port: args.port,
        single_port: args.single_port,
        rtc_udp_port: args.rtc_udp_port,
        rtc_tcp_port: args.rtc_tcp_port,
        node_ip: args.node_ip,
        keys,
        tls: settings::tls::TlsFlags {
            cert: args.tls_cert.clone(),
            key: args.tls_key.clone(),
            self_signed: args.tls_self_signed,
            acme: args.acme,
            acme_email: args.acme_email.clone(),
            acme_directory: args.acme_directory.clone(),
            acme_challenge: args.acme_challenge.clone(),
            acme_http_port: args.acme_http_port,
            acme_directory_ca: args.acme_directory_ca.clone(),
        },
        trusted_proxies: args.trusted_proxies.clone(),
        data_dir: data_dir.clone(),
        domain: args.domain.clone(),
        turn_tls_port: args.turn_tls_port,
        use_external_ip: args.use_external_ip,
        stun_servers: args.stun_servers.clone(),
        turn_port: args.turn_port,
        no_turn: args.no_turn,
        dangerous_turn_allow_private: args.dangerous_turn_allow_private,
    };
    let providers =
        match settings::auth::providers(std::mem::take(&mut file.auth), &settings::process_env) {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
    let config = match settings::resolve(file, &settings::process_env, flags) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if args.print_config {
        let public = app_config(&args, &config, config.port).public_origin;
        print!(
            "{}",
            super::print_config::render(&config, &data_dir, &public, &providers)
        );
        return ExitCode::SUCCESS;
    }
    if args.dev {
        tracing::warn!(
            "development mode: API key \"devkey\" with secret \"secret\"; never expose this server"
        );
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(async move {
        let server = match moim_server::Server::bind(config.clone()).await {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        // The port bound, not the one asked for: with --port 0 the OS picks.
        let mut app_config = app_config(&args, &config, server.http_addr.port());
        app_config.providers = providers;
        let meet = moim_app::meet::router(
            moim_app::meet::MeetFiles::find(&app_host::meet_dirs(args.meet_dir.as_deref())),
            &app_config.public_origin,
            &app_config.public_origin,
        );
        let app =
            match app_host::open_app(app_config, args.database_url.as_deref(), &data_dir).await {
                Ok(a) => a,
                Err(e) => return fail(e),
            };
        let server = server.with_routes(app.router()).with_routes(meet);
        tokio::spawn(forward_signals(server.shutdown()));
        match server.run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        }
    })
}

/// The app's settings from the server's: where browsers reach it, and the
/// dev login under --dev.
fn app_config(
    args: &ServeArgs,
    config: &moim_server::ServerConfig,
    port: u16,
) -> moim_app::AppConfig {
    let (public, also) = match &args.public_url {
        Some(url) => (url.clone(), Vec::new()),
        None => match (&config.tls, &config.domain) {
            (Some(_), Some(domain)) if port == 443 => (format!("https://{domain}"), Vec::new()),
            (Some(_), Some(domain)) => (format!("https://{domain}:{port}"), Vec::new()),
            _ => (
                format!("http://127.0.0.1:{port}"),
                vec![format!("http://localhost:{port}")],
            ),
        },
    };
    let mut app = moim_app::AppConfig::new(&public);
    app.also_origins = also;
    app.dev_login = args.dev;
    // Join tokens are signed with this server's first API key, and name
    // the URL the page itself came from, with the WebSocket scheme.
    app.livekit = config.keys.keys().next().and_then(|key| {
        Some(moim_app::LiveKitAccess {
            server_url: moim_app::websocket_url(&public),
            api_key: key.to_string(),
            api_secret: config.keys.secret(key)?.to_string(),
        })
    });
    app
}

/// The first SIGTERM or Ctrl-C drains; the next one ends the drain at once.
pub(crate) async fn forward_signals(shutdown: moim_server::Shutdown) {
    let mut signals = match ShutdownSignals::new() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot watch for SIGTERM ({e}); moim will stop only when killed");
            return;
        }
    };
    signals.next().await;
    tracing::info!("shutdown requested; draining");
    shutdown.drain();
    signals.next().await;
    tracing::info!("second shutdown signal; ending the calls now");
    shutdown.now();
}

pub(crate) struct ShutdownSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    pub(crate) fn new() -> std::io::Result<Self> {
        Ok(Self {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?,
        })
    }

    pub(crate) async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = self.term.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
