//! [`ConnectOptions`]: what [`crate::Client::connect`] is told, shared by the handle, the IO
//! loop and the session.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::signal::FrameCodec;

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Binary protobuf frames (what SDKs send) or JSON text frames.
    pub codec: FrameCodec,
    /// `protocol` query parameter; above 2 the server makes the subscriber PC primary.
    pub protocol: u32,
    pub auto_subscribe: bool,
    pub adaptive_stream: bool,
    /// How long to wait for the upgrade plus the first frame (`join`).
    pub join_timeout: Duration,
    /// How long `publish_*` waits for `TrackPublishedResponse` and the SDP answer.
    pub publish_timeout: Duration,
    /// Local address for the UDP sockets.
    pub bind_ip: IpAddr,
    /// Negotiate the publisher PC (with its data channels) right after join, as a client does
    /// when `subscriber_primary` is false or `fast_publish` is set. Otherwise it is negotiated on
    /// the first publish or data send.
    pub eager_publisher: bool,
    /// After a resume, restart ICE on the publisher PC (what livekit-client does).
    pub ice_restart_on_resume: bool,
    /// Also deliver every `SignalResponse` as [`ClientEvent::Signal`].
    pub forward_signal: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            codec: FrameCodec::Protobuf,
            protocol: 16,
            auto_subscribe: true,
            adaptive_stream: false,
            join_timeout: Duration::from_secs(10),
            publish_timeout: Duration::from_secs(10),
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            eager_publisher: false,
            ice_restart_on_resume: true,
            forward_signal: false,
        }
    }
}
