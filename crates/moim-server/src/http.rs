//! HTTP routes: the signal endpoints, their validate twins, health.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Extension;
use axum::Router;
use moim_proto::frame::{self, MAX_FRAME_BYTES};
use moim_proto::token::{Claims, TokenError};
use tower_http::cors::{Any, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::{debug, info, warn};

use crate::bearer;
use crate::client_info::ClientProfile;
use crate::forwarded::PeerAddr;
use crate::room::JoinParams;
use crate::{signal, AppState};

pub fn router(state: AppState) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods(Any)
        .allow_headers(Any)
        .expose_headers(Any)
        .max_age(std::time::Duration::from_secs(86400));
    Router::new()
        .route("/rtc", get(rtc_v0))
        .route("/rtc/v1", get(rtc_v1))
        .route("/rtc/validate", get(validate_v0))
        .route("/rtc/v1/validate", get(validate_v1))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/twirp/{*path}", any(crate::room_service::handle))
        .layer(cors)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::SERVER,
            HeaderValue::from_static(crate::SERVER_VERSION),
        ))
        .with_state(state)
}

/// 200 while serving; 503 once draining, so a load balancer that checks
/// it sends new clients to another server.
async fn healthz(State(state): State<AppState>) -> Response {
    if state.drain.is_draining() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "draining: moim is shutting down; calls in progress go on, new ones belong elsewhere\n",
        )
            .into_response()
    } else {
        "ok".into_response()
    }
}

/// Prometheus text exposition. Counts only, no room names or identities.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = state.media.pass_latency().prometheus(
        "moim_media_pass_seconds",
        "Time a media shard held the datagrams of one loop pass, from reading the first to \
         handing its sends to the kernel; an upper bound on the latency moim adds",
    );
    let media = state.media.counts();
    let participants = state.rooms.participant_count();
    let rooms = state.rooms.list().len();
    for (name, kind, help, value) in [
        ("moim_rooms", "gauge", "Open rooms.", rooms as u64),
        (
            "moim_participants",
            "gauge",
            "Participants in all rooms, including those waiting to resume.",
            participants as u64,
        ),
        (
            "moim_media_rooms",
            "gauge",
            "Rooms the media shards know of.",
            media.rooms as u64,
        ),
        (
            "moim_media_peers",
            "gauge",
            "PeerConnections on the media shards.",
            media.peers as u64,
        ),
        (
            "moim_media_commands_total",
            "counter",
            "Control commands the media shards carried out; none is ever dropped.",
            media.commands,
        ),
        (
            "moim_media_commands_queued",
            "gauge",
            "Control commands waiting for a media shard; rooms wait while a shard's queue is full.",
            media.commands_queued as u64,
        ),
        (
            "moim_media_datagrams_dropped_total",
            "counter",
            "Datagrams dropped because their media shard was behind (its queue was full).",
            media.datagrams_dropped,
        ),
    ] {
        body.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
}

/// Why a signal request was refused, as the HTTP response the client sees.
#[derive(Debug, thiserror::Error)]
pub enum SignalRefusal {
    #[error("no access token: pass it as the access_token query parameter or as an \"Authorization: Bearer <token>\" header")]
    MissingToken,
    #[error("{0}; or pass the token as the access_token query parameter")]
    BadHeader(#[from] crate::bearer::BearerError),
    #[error("the access_token query parameter and the Authorization header carry different tokens; send one token, in either place")]
    ConflictingTokens,
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error("access token does not grant roomJoin; mint it with a video grant {{roomJoin: true, room: \"…\"}}")]
    NoRoomJoin,
    #[error("access token names no room; add the room to the token's video grant")]
    NoRoom,
    #[error("access token is for room \"{token}\" but the request names room \"{requested}\"")]
    WrongRoom { token: String, requested: String },
    #[error("join_request: {0}")]
    JoinRequest(#[from] frame::JoinRequestError),
    #[error("join_request is required on /rtc/v1")]
    MissingJoinRequest,
    #[error("moim is shutting down and takes no new participants; join again in a moment to reach another server")]
    Draining,
    #[error("this endpoint needs a WebSocket upgrade. If a reverse proxy is in front of moim, it must pass the Upgrade and Connection headers (nginx: proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\")")]
    NotUpgrade,
}

impl IntoResponse for SignalRefusal {
    fn into_response(self) -> Response {
        let status = match self {
            SignalRefusal::JoinRequest(_)
            | SignalRefusal::MissingJoinRequest
            | SignalRefusal::NotUpgrade => StatusCode::BAD_REQUEST,
            SignalRefusal::Draining => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        };
        (status, [CLOSE_AFTER], self.to_string()).into_response()
    }
}

/// On every answer that is not an upgrade, for requests that carry a token
/// in their URL: the next such request then comes on a fresh connection,
/// where `http_listener` reads its request line and can explain a 414. On a
/// kept-alive connection hyper would answer a too-long URL itself, with an
/// empty body and no CORS header, which a browser reports only as "Failed to
/// fetch". These requests are rare (a join, or livekit-client asking why one
/// failed); the server API's Twirp calls keep their connections.
const CLOSE_AFTER: (header::HeaderName, HeaderValue) =
    (header::CONNECTION, HeaderValue::from_static("close"));

/// The request's token, from the query or the `Authorization` header.
pub fn signal_token<'a>(
    q: &'a HashMap<String, String>,
    headers: &'a HeaderMap,
) -> Result<&'a str, SignalRefusal> {
    let query = q
        .get("access_token")
        .map(String::as_str)
        .filter(|t| !t.is_empty());
    match (query, bearer::from_header(headers)?) {
        (Some(q), Some(h)) if q != h => Err(SignalRefusal::ConflictingTokens),
        (Some(t), _) | (None, Some(t)) => Ok(t),
        (None, None) => Err(SignalRefusal::MissingToken),
    }
}

fn authorize(
    state: &AppState,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Claims, SignalRefusal> {
    let token = signal_token(q, headers)?;
    let claims = state.config.keys.verify(token)?;
    if !claims.video.room_join {
        return Err(SignalRefusal::NoRoomJoin);
    }
    if claims.video.room.is_empty() {
        return Err(SignalRefusal::NoRoom);
    }
    // Server API tokens need no identity; a participant does, or it would
    // join nameless and could not be told apart, removed or muted.
    if claims.sub.is_empty() {
        return Err(TokenError::NoIdentity.into());
    }
    if let Some(requested) = q.get("room").filter(|r| !r.is_empty()) {
        if *requested != claims.video.room {
            return Err(SignalRefusal::WrongRoom {
                token: claims.video.room.clone(),
                requested: requested.clone(),
            });
        }
    }
    Ok(claims)
}

fn flag(q: &HashMap<String, String>, key: &str, default: bool) -> bool {
    match q.get(key).map(String::as_str) {
        Some("1") | Some("true") => true,
        Some("0") | Some("false") => false,
        _ => default,
    }
}

pub fn v0_params(q: &HashMap<String, String>) -> JoinParams {
    JoinParams {
        single_pc: false,
        reconnect: flag(q, "reconnect", false),
        participant_sid: q.get("sid").cloned().unwrap_or_default(),
        auto_subscribe: flag(q, "auto_subscribe", true),
        client: ClientProfile::from_query(q),
        ..Default::default()
    }
}

pub fn v1_params(q: &HashMap<String, String>) -> Result<JoinParams, SignalRefusal> {
    let raw = q
        .get("join_request")
        .ok_or(SignalRefusal::MissingJoinRequest)?;
    let join = frame::decode_wrapped_join_request(raw)?;
    let auto_subscribe = join
        .connection_settings
        .as_ref()
        .is_none_or(|c| c.auto_subscribe);
    let client = ClientProfile::from_client_info(join.client_info.as_ref());
    Ok(JoinParams {
        client,
        single_pc: true,
        reconnect: join.reconnect,
        participant_sid: join.participant_sid,
        auto_subscribe,
        publisher_offer: join.publisher_offer,
        metadata: (!join.metadata.is_empty()).then_some(join.metadata),
        attributes: join.participant_attributes,
        ice_servers: Vec::new(),
    })
}

/// Bytes read from a signal WebSocket per read call.
const SIGNAL_READ_BUFFER: usize = 8 * 1024;

type Upgrade = Result<WebSocketUpgrade, WebSocketUpgradeRejection>;

/// The two signalling paths; they differ in how the join is described.
#[derive(Clone, Copy)]
enum SignalPath {
    /// `/rtc`: query parameters, two PeerConnections.
    V0,
    /// `/rtc/v1`: a wrapped `JoinRequest`, one PeerConnection.
    V1,
}

/// Everything a join must pass before the upgrade, shared by the signal
/// endpoints and their validate twins (livekit-client calls validate to
/// learn why a WebSocket failed, so both must give the same answer).
fn admit(
    state: &AppState,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    path: SignalPath,
) -> Result<(Claims, JoinParams), SignalRefusal> {
    let claims = authorize(state, q, headers)?;
    let params = match path {
        SignalPath::V0 => v0_params(q),
        SignalPath::V1 => v1_params(q)?,
    };
    // A draining server still takes back its own participants (a resume);
    // anyone new is sent away.
    if state.drain.is_draining() && !params.reconnect {
        return Err(SignalRefusal::Draining);
    }
    Ok((claims, params))
}

type Peer = Option<Extension<PeerAddr>>;
/// The client's address: behind a trusted proxy, the one it forwarded for.
type Client = Option<Extension<ConnectInfo<SocketAddr>>>;

async fn rtc_v0(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    peer: Peer,
    client: Client,
    headers: HeaderMap,
    ws: Upgrade,
) -> Response {
    upgrade(state, &q, &headers, (peer, client), ws, SignalPath::V0)
}

async fn rtc_v1(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    peer: Peer,
    client: Client,
    headers: HeaderMap,
    ws: Upgrade,
) -> Response {
    upgrade(state, &q, &headers, (peer, client), ws, SignalPath::V1)
}

fn upgrade(
    state: AppState,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    (peer, client): (Peer, Client),
    ws: Upgrade,
    path: SignalPath,
) -> Response {
    let (claims, params) = match admit(&state, q, headers, path) {
        Ok(admitted) => admitted,
        Err(e) => return refuse(e),
    };
    let Ok(ws) = ws else {
        warn_no_upgrade(&state, headers, peer);
        return SignalRefusal::NotUpgrade.into_response();
    };
    if let Some(Extension(ConnectInfo(client))) = client {
        match peer {
            Some(Extension(PeerAddr(proxy))) if proxy.ip() != client.ip() => {
                info!(identity = %claims.sub, client = %client.ip(), proxy = %proxy.ip(), "signal connection accepted")
            }
            _ => info!(identity = %claims.sub, client = %client.ip(), "signal connection accepted"),
        }
    }
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        // tungstenite allocates its read buffer up front, 128 KiB by default:
        // half the memory of an idle participant. Signal messages are small;
        // a large one still arrives, over several reads.
        .read_buffer_size(SIGNAL_READ_BUFFER)
        .on_upgrade(move |socket| signal::run(socket, state, claims, params))
}

/// A join that passed every check but arrived as a plain GET: a proxy in
/// between dropped the upgrade. Said once per peer at WARN, since every
/// participant behind that proxy will fail the same way.
fn warn_no_upgrade(state: &AppState, headers: &HeaderMap, peer: Peer) {
    let shown = |name: header::HeaderName| {
        headers.get(&name).map_or_else(
            || "absent".to_string(),
            |v| format!("{:?}", v.to_str().unwrap_or("?")),
        )
    };
    let (upgrade, connection) = (shown(header::UPGRADE), shown(header::CONNECTION));
    let Some(Extension(PeerAddr(peer))) = peer else {
        info!(%upgrade, %connection, "a signal request came without a WebSocket upgrade");
        return;
    };
    if !state.no_upgrade_warned.first(peer.ip()) {
        debug!(%peer, %upgrade, %connection, "a signal request came without a WebSocket upgrade");
        return;
    }
    warn!(
        proxy = %peer.ip(),
        "a join with a valid token came from {} without a WebSocket upgrade (Upgrade: {upgrade}, \
         Connection: {connection}); nobody can join through it. A reverse proxy at that address \
         most likely drops the headers: nginx needs proxy_http_version 1.1; proxy_set_header \
         Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade (see \
         deploy/nginx/moim.conf). Said once per address",
        peer.ip()
    );
}

fn refuse(e: SignalRefusal) -> Response {
    info!("signal connection refused: {e}");
    e.into_response()
}

async fn validate_v0(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    validate(&state, &q, &headers, SignalPath::V0)
}

async fn validate_v1(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    validate(&state, &q, &headers, SignalPath::V1)
}

fn validate(
    state: &AppState,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    path: SignalPath,
) -> Response {
    match admit(state, q, headers, path) {
        Ok(_) => (StatusCode::OK, [CLOSE_AFTER], "success").into_response(),
        Err(e) => e.into_response(),
    }
}
