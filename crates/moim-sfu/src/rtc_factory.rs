//! How a shard builds each str0m `Rtc`.
//!
//! Two choices here are about cost, measured in docs/BENCHMARKS.md:
//! - One DTLS certificate per shard instead of one per PeerConnection. str0m
//!   otherwise generates a key pair and signs a certificate for every `Rtc`,
//!   which is work on every join and memory for every idle participant. A
//!   server sharing its certificate across connections is normal (the
//!   fingerprint in each SDP answer still authenticates the handshake).
//! - A shorter video send history on PeerConnections that send to clients.
//!   str0m keeps the last N packets of every outgoing video stream to answer
//!   NACKs; its default of 1,000 held ~800 KiB per subscribed video stream.
//!   300 packets is ~1.8 s at 1.5 Mb/s and ~0.7 s for a 4 Mb/s layer, far
//!   beyond a retransmission's useful life at real-time latencies.
//!
//! And one about who can connect: the DTLS handshake runs on OpenSSL
//! (`dtls_openssl.rs`) so that peers with RSA certificates (GStreamer's
//! `webrtcbin`) connect; moim's own certificate stays ECDSA, and SRTP,
//! STUN and fingerprints stay on aws-lc-rs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use str0m::crypto::dtls::DtlsCert;
use str0m::crypto::CryptoProvider;
use str0m::net::TcpType;
use str0m::{Candidate, Rtc};

use crate::api::PeerRole;
use crate::dtls_openssl::OpensslDtls;

/// Outgoing video packets kept per stream for retransmission.
pub const VIDEO_SEND_HISTORY: usize = 300;

pub struct RtcFactory {
    crypto: Arc<CryptoProvider>,
    cert: Option<DtlsCert>,
    udp_candidate: SocketAddr,
    tcp_candidate: Option<SocketAddr>,
    /// Run the downlink estimator on receiving PeerConnections.
    downlink_bwe: bool,
}

impl RtcFactory {
    pub fn new(
        udp_candidate: SocketAddr,
        tcp_candidate: Option<SocketAddr>,
        downlink_bwe: bool,
    ) -> Self {
        static OPENSSL_DTLS: OpensslDtls = OpensslDtls;
        let aws_lc = str0m::crypto::from_feature_flags();
        // aws-lc-rs makes the certificate: ECDSA P-256, what browsers and
        // dimpl-based clients expect. OpenSSL only runs the handshake with it.
        let cert = aws_lc.dtls_provider.generate_certificate();
        let crypto = Arc::new(CryptoProvider {
            dtls_provider: &OPENSSL_DTLS,
            ..aws_lc
        });
        if cert.is_none() {
            tracing::warn!(
                "the crypto provider could not generate a shared DTLS certificate; every \
                 PeerConnection will generate its own, which makes joins slower"
            );
        }
        Self {
            crypto,
            cert,
            udp_candidate,
            tcp_candidate,
            downlink_bwe,
        }
    }

    pub fn build(&self, role: PeerRole, now: Instant) -> Rtc {
        let mut config = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .enable_opus(true, true)
            .enable_vp8(true)
            .enable_h264(true)
            .enable_vp9(true)
            .enable_av1(true)
            .set_extension(crate::dd::DEFAULT_ID, crate::dd::extension())
            .set_stats_interval(Some(crate::quality::STATS_INTERVAL))
            .set_crypto_provider(self.crypto.clone());
        if let Some(cert) = &self.cert {
            config = config.set_dtls_cert(cert.clone());
        }
        if role.receives() {
            config = config.set_send_buffer_video(VIDEO_SEND_HISTORY);
        }
        if role.receives() && self.downlink_bwe {
            // A send-side estimate of the downlink from the client's TWCC
            // feedback, which the shard shares out (`allocate.rs`). Its
            // pacer and estimator cost CPU on every forwarded packet
            // (docs/BENCHMARKS.md), hence `MediaConfig::downlink_bwe`.
            config = config.enable_bwe(Some(crate::shard::INITIAL_ESTIMATE));
        }
        let mut rtc = config.build(now);
        if let Ok(c) = Candidate::host(self.udp_candidate, "udp") {
            rtc.add_local_candidate(c);
        }
        if let Some(tcp) = self.tcp_candidate {
            if let Ok(c) = Candidate::builder()
                .tcp()
                .host(tcp)
                .tcptype(TcpType::Passive)
                .build()
            {
                rtc.add_local_candidate(c);
            }
        }
        rtc
    }
}
