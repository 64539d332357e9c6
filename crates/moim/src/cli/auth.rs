//! `moim auth`: the app back end (login, sessions, rooms, the lobby, host
//! actions) and the meeting app on a port of their own, beside a moim
//! server elsewhere. It reaches that server the way any LiveKit back end
//! does: join tokens signed with the server's API key, and RoomService for
//! host actions. `moim serve` hosts the same app on the media server's port.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use moim_proto::lk;
use moim_proto::token::VideoGrant;

use super::api::{Api, ApiArgs, ApiError};
use super::app_host;
use super::serve::ShutdownSignals;
use crate::fail;
use crate::settings;

const DEV_KEY: &str = "devkey";
const DEV_SECRET: &str = "secret";

#[derive(Parser)]
pub struct AuthArgs {
    /// Development mode: the local dev login, and API key `devkey` with
    /// secret `secret` unless given.
    #[arg(long)]
    dev: bool,
    /// TOML config file; its `[[auth.providers]]` are the login providers.
    #[arg(long, env = "MOIM_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// HTTP port of the app.
    #[arg(long, default_value_t = 7890)]
    port: u16,
    /// The moim server rooms are held on, as browsers reach it
    /// (wss://media.example.com or https://...; ws/http on loopback).
    #[arg(long, env = "MOIM_MEDIA_URL")]
    media_url: String,
    /// An API key of that server.
    #[arg(long, env = "MOIM_API_KEY")]
    api_key: Option<String>,
    /// Its secret. Prefer the environment: arguments show in `ps`.
    #[arg(long, env = "MOIM_API_SECRET", hide_env_values = true)]
    api_secret: Option<String>,
    /// The URL browsers open the app at. Default: http://127.0.0.1:<port>.
    #[arg(long, env = "MOIM_PUBLIC_URL")]
    public_url: Option<String>,
    /// Where the app keeps its SQLite database; created on first start.
    #[arg(long, env = "MOIM_DATA_DIR", default_value = "moim-auth-data")]
    data_dir: PathBuf,
    /// A `postgres://` URL instead of the SQLite file.
    #[arg(long, env = "MOIM_DATABASE_URL")]
    database_url: Option<String>,
    /// The built meeting app; found as `moim serve` finds it by default.
    #[arg(long, env = "MOIM_MEET_DIR")]
    meet_dir: Option<PathBuf>,
}

pub fn run(args: AuthArgs) -> ExitCode {
    app_host::init_logging();
    let (api_key, api_secret) = match (&args.api_key, &args.api_secret, args.dev) {
        (Some(k), Some(s), _) => (k.clone(), s.clone()),
        (None, None, true) => (DEV_KEY.to_string(), DEV_SECRET.to_string()),
        _ => {
            return fail(
                "moim auth needs an API key and secret of the moim server it serves rooms on \
                 (MOIM_API_KEY and MOIM_API_SECRET, the same pair as in that server's keys); \
                 both, or --dev for devkey/secret",
            )
        }
    };
    if args.dev && !args.bind.is_loopback() {
        return fail("--dev offers a login with no password: it listens on loopback only");
    }
    let media_url = args.media_url.trim_end_matches('/').to_string();
    if !["http://", "https://", "ws://", "wss://"]
        .iter()
        .any(|s| media_url.starts_with(s))
    {
        return fail(format!(
            "--media-url {media_url} is not a URL of a moim server: give it as browsers reach \
             it, wss://media.example.com (or ws://127.0.0.1:7880 on one machine)"
        ));
    }
    let media_http = media_url
        .replacen("wss://", "https://", 1)
        .replacen("ws://", "http://", 1);
    let file = match &args.config {
        Some(path) => match settings::load_file(path) {
            Ok(f) => f,
            Err(e) => return fail(e),
        },
        None => settings::FileSettings::default(),
    };
    let providers = match settings::auth::providers(file.auth, &settings::process_env) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let public = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{}", args.port));
    let mut config = moim_app::AppConfig::new(&public);
    if args.public_url.is_none() {
        config.also_origins = vec![format!("http://localhost:{}", args.port)];
    }
    config.dev_login = args.dev;
    config.providers = providers;
    config.livekit = Some(moim_app::LiveKitAccess {
        server_url: moim_app::websocket_url(&media_http),
        api_key: api_key.clone(),
        api_secret: api_secret.clone(),
    });
    let meet = moim_app::meet::router(
        moim_app::meet::MeetFiles::find(&app_host::meet_dirs(args.meet_dir.as_deref())),
        &config.public_origin,
        &media_http,
    );
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(async move {
        let app =
            match app_host::open_app(config, args.database_url.as_deref(), &args.data_dir).await {
                Ok(a) => a,
                Err(e) => return fail(e),
            };
        check_media_server(&media_http, &api_key, &api_secret).await;
        let addr = SocketAddr::new(args.bind, args.port);
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                return fail(format!(
                    "cannot listen on {addr}: {e}. Is another moim auth (or anything) on port {}? \
                     Pick another with --port",
                    args.port
                ))
            }
        };
        let router = app
            .router()
            .merge(meet)
            .route("/healthz", axum::routing::get(|| async { "ok" }));
        tracing::info!(%addr, media_server = %media_http, "moim auth listening");
        let served = axum::serve(listener, router).with_graceful_shutdown(async {
            match ShutdownSignals::new() {
                Ok(mut s) => s.next().await,
                Err(e) => {
                    tracing::warn!("cannot watch for SIGTERM ({e}); stop moim auth by killing it");
                    std::future::pending::<()>().await
                }
            }
            tracing::info!("shutdown requested");
        });
        match served.await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(format!("moim auth stopped: {e}")),
        }
    })
}

/// Says at start, in the log, whether the media server answers and takes
/// the key: a wrong key would otherwise show only as every join failing.
/// A server that is not up yet is not fatal; it may come up later.
async fn check_media_server(url: &str, api_key: &str, api_secret: &str) {
    let api = match Api::new(ApiArgs {
        url: url.to_string(),
        api_key: api_key.to_string(),
        api_secret: api_secret.to_string(),
        json: false,
    }) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("cannot check the media server: {e}");
            return;
        }
    };
    let grant = VideoGrant {
        room_list: true,
        ..Default::default()
    };
    match api
        .call::<_, lk::ListRoomsResponse>("ListRooms", grant, &lk::ListRoomsRequest::default())
        .await
    {
        Ok(r) => tracing::info!(
            rooms = r.rooms.len(),
            "the media server at {url} answers RoomService and takes API key {api_key}"
        ),
        Err(e @ ApiError::Unauthenticated { .. }) => tracing::error!(
            "the media server at {url} refuses this app's key: {e}. Every join token and host \
             action will fail until both run with the same key and secret"
        ),
        Err(ApiError::Unreachable { why, .. }) => tracing::warn!(
            "cannot reach the media server at {url} ({why}). Until it answers, joins hand out \
             a server URL nobody can reach and host actions fail. Check --media-url \
             (MOIM_MEDIA_URL), and that moim serve runs there and is reachable from this host"
        ),
        Err(e) => tracing::warn!(
            "the media server at {url} did not answer RoomService as moim does: {e}. Is \
             --media-url (MOIM_MEDIA_URL) the moim server, not a proxy or another service?"
        ),
    }
}
