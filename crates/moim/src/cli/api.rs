//! What `moim rooms|participants|data` share: the server's address and API
//! key, a RoomService client (protobuf over Twirp), and table output.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Args;
use moim_proto::token::{self, VideoGrant};
use serde::Serialize;

#[derive(Args, Clone, Debug)]
pub struct ApiArgs {
    /// The moim server.
    #[arg(
        long,
        env = "MOIM_URL",
        default_value = "http://127.0.0.1:7880",
        global = true
    )]
    pub url: String,
    #[arg(long, env = "MOIM_API_KEY", default_value = "devkey", global = true)]
    pub api_key: String,
    #[arg(
        long,
        env = "MOIM_API_SECRET",
        default_value = "secret",
        global = true,
        hide_env_values = true
    )]
    pub api_secret: String,
    /// Print JSON (protojson) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach moim at {url}: is moim running there? Start it with `moim serve --dev`, or point --url / MOIM_URL at it ({why})")]
    Unreachable { url: String, why: String },
    #[error("the server refused API key \"{key}\": {msg}. Pass the key and secret the server runs with (--api-key/--api-secret or MOIM_API_KEY/MOIM_API_SECRET)")]
    Unauthenticated { key: String, msg: String },
    #[error("{msg} [{code}]")]
    Twirp { code: String, msg: String },
    #[error("{0}")]
    Other(String),
}

pub struct Api {
    args: ApiArgs,
    http: reqwest::Client,
}

impl Api {
    pub fn new(args: ApiArgs) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ApiError::Other(format!("cannot build the HTTP client: {e}")))?;
        let mut args = args;
        if let Some(rest) = args.url.strip_prefix("ws://") {
            args.url = format!("http://{rest}");
        } else if let Some(rest) = args.url.strip_prefix("wss://") {
            args.url = format!("https://{rest}");
        }
        args.url = args.url.trim_end_matches('/').to_string();
        Ok(Self { args, http })
    }

    pub fn json(&self) -> bool {
        self.args.json
    }

    /// Calls one RoomService method with a short-lived token for `grant`.
    pub async fn call<Req, Resp>(
        &self,
        method: &str,
        grant: VideoGrant,
        req: &Req,
    ) -> Result<Resp, ApiError>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        let jwt = token::mint(
            &self.args.api_key,
            &self.args.api_secret,
            "moim-cli",
            grant,
            Duration::from_secs(600),
            SystemTime::now(),
        );
        let url = format!("{}/twirp/livekit.RoomService/{method}", self.args.url);
        let resp = self
            .http
            .post(&url)
            .header("Content-Type", "application/protobuf")
            .header("Authorization", format!("Bearer {jwt}"))
            .body(req.encode_to_vec())
            .send()
            .await
            .map_err(|e| ApiError::Unreachable {
                url: self.args.url.clone(),
                why: e.to_string(),
            })?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ApiError::Other(format!("reading the reply of {method}: {e}")))?;
        if status.is_success() {
            return Resp::decode(body).map_err(|e| {
                ApiError::Other(format!("{url} answered {method} with something that is not a RoomService reply ({e}); is --url a moim server?"))
            });
        }
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let code = v["code"].as_str().unwrap_or("").to_string();
        let msg = v["msg"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| format!("HTTP {status} from {url}; is --url a moim server?"));
        if code == "unauthenticated" {
            return Err(ApiError::Unauthenticated {
                key: self.args.api_key.clone(),
                msg,
            });
        }
        Err(ApiError::Twirp { code, msg })
    }
}

pub fn admin(room: &str) -> VideoGrant {
    VideoGrant {
        room_admin: true,
        room: room.to_string(),
        ..Default::default()
    }
}

/// Runs `f` on a fresh runtime and prints its error for the operator.
pub fn run<F, Fut>(args: ApiArgs, f: F) -> ExitCode
where
    F: FnOnce(Api) -> Fut,
    Fut: std::future::Future<Output = Result<(), ApiError>>,
{
    let api = match Api::new(args) {
        Ok(a) => a,
        Err(e) => return crate::fail(e),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return crate::fail(format!("cannot start the async runtime: {e}")),
    };
    match rt.block_on(f(api)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => crate::fail(e),
    }
}

pub fn print_json<T: Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("moim: cannot print JSON: {e}"),
    }
}

/// A plain text table: a header row, then aligned columns.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

/// Shortens long metadata for a table cell.
pub fn cell(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(39).collect::<String>())
    } else {
        s.to_string()
    }
}
