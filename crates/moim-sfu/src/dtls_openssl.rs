//! DTLS through OpenSSL, so peers with RSA certificates can connect.
//!
//! str0m's own DTLS (dimpl, behind its `aws-lc-rs` backend) signs and
//! verifies ECDSA only: its CertificateRequest leaves RSA out, so GStreamer's
//! `webrtcbin`, whose default certificate is RSA, sends none and the
//! handshake fails with "no client certificate received". OpenSSL's DTLS 1.2
//! accepts both. Everything else (SRTP, SHA-1 HMAC for STUN, fingerprints)
//! stays on aws-lc-rs, and moim's own certificate stays ECDSA P-256: only the
//! handshake changes hands.
//!
//! The OpenSSL DTLS on the registry is `str0m-openssl` 0.6, written against
//! `str0m-proto` 0.7; str0m 0.25 speaks `str0m-proto` 0.8. The two traits are
//! the same shape (0.8 only made `send_application_data` report a length),
//! so this file is a bridge between their types. When `str0m-openssl` 0.7 is
//! published, `str0m`'s `openssl` feature replaces this file.
//!
//! What the bridge adds on top:
//! - Handshake retransmission. OpenSSL resends a lost flight only when it is
//!   asked to read after its timer fires, and `str0m-openssl` 0.6 never asks
//!   on a timeout, so a lost ClientHello would stall the handshake. Each
//!   timeout before the connection is up is an empty read, which lets
//!   OpenSSL decide (and, as the DTLS client, send the first ClientHello).
//! - Input bounds and panics. The wrapped code asserts on its input buffer;
//!   oversized input is refused, and a panic becomes a DTLS error on that one
//!   PeerConnection instead of taking the shard thread down.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use str0m_proto::crypto::dtls::{
    DtlsCert, DtlsCryptoError, DtlsCryptoOperation, DtlsImplError, DtlsInstance, DtlsOutput,
    DtlsProvider, KeyingMaterial, ProtocolVersion, SrtpProfile,
};
use str0m_proto::crypto::{CryptoError, DtlsVersion};
use str0m_proto_07::crypto::dtls as v07;

/// A DTLS datagram is at most one MTU over UDP; ICE-TCP frames can be larger,
/// but no honest handshake or SCTP record comes near this. Larger input is
/// refused before it reaches the wrapped code's buffers.
const MAX_DTLS_INPUT: usize = 16 * 1024;

#[derive(Debug)]
pub(crate) struct OpensslDtls;

impl DtlsProvider for OpensslDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        // moim generates its (ECDSA) certificate with aws-lc-rs; this is only
        // here because the trait asks. OpenSSL's is ECDSA P-256 too.
        str0m_openssl::default_provider()
            .dtls_provider
            .generate_certificate()
            .map(|c| DtlsCert {
                certificate: c.certificate,
                private_key: c.private_key,
            })
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        if dtls_version != DtlsVersion::Dtls12 {
            return Err(CryptoError::Other(format!(
                "moim's OpenSSL DTLS speaks DTLS 1.2 only, not {dtls_version}"
            )));
        }
        let cert = v07::DtlsCert {
            certificate: cert.certificate.clone(),
            private_key: cert.private_key.clone(),
        };
        let inner = str0m_openssl::default_provider()
            .dtls_provider
            .new_dtls(&cert, now, str0m_proto_07::crypto::DtlsVersion::Dtls12, mtu)
            .map_err(|e| CryptoError::Other(format!("OpenSSL DTLS could not start: {e}")))?;
        Ok(Box::new(Bridge {
            inner,
            connected: false,
            poisoned: false,
        }))
    }
}

#[derive(Debug)]
struct Bridge {
    inner: Box<dyn v07::DtlsInstance>,
    /// `Connected` was seen: the handshake timer no longer matters.
    connected: bool,
    /// The wrapped code panicked; nothing it holds can be trusted.
    poisoned: bool,
}

fn failed(op: DtlsCryptoOperation) -> DtlsImplError {
    DtlsImplError::CryptoError(DtlsCryptoError::OperationFailed(op))
}

impl Bridge {
    /// Runs `f` on the wrapped instance; a panic poisons this instance.
    fn guarded<T>(
        &mut self,
        op: DtlsCryptoOperation,
        f: impl FnOnce(&mut dyn v07::DtlsInstance) -> T,
    ) -> Result<T, DtlsImplError> {
        if self.poisoned {
            return Err(failed(op));
        }
        let inner = &mut *self.inner;
        match catch_unwind(AssertUnwindSafe(|| f(inner))) {
            Ok(v) => Ok(v),
            Err(_) => {
                poisoned_warning();
                self.poisoned = true;
                Err(failed(op))
            }
        }
    }
}

impl DtlsInstance for Bridge {
    fn set_active(&mut self, active: bool) {
        let _ = self.guarded(DtlsCryptoOperation::CreateCipher, |d| d.set_active(active));
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        if packet.len() > MAX_DTLS_INPUT {
            return Err(failed(DtlsCryptoOperation::Decrypt));
        }
        self.guarded(DtlsCryptoOperation::Decrypt, |d| d.handle_packet(packet))?
            .map_err(from_v07_error)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        if self.poisoned {
            return DtlsOutput::Timeout(Instant::now() + Duration::from_secs(3600));
        }
        let inner = &mut *self.inner;
        let poll = move || {
            let buf = buf; // moved, not reborrowed: the output borrows it for 'a
            from_v07_output(inner.poll_output(buf))
        };
        let out = match catch_unwind(AssertUnwindSafe(poll)) {
            Ok(out) => out,
            Err(_) => {
                poisoned_warning();
                self.poisoned = true;
                return DtlsOutput::Timeout(Instant::now() + Duration::from_secs(3600));
            }
        };
        if matches!(out, DtlsOutput::Connected) {
            self.connected = true;
        }
        out
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        let connected = self.connected;
        self.guarded(DtlsCryptoOperation::Decrypt, |d| {
            if !connected {
                // An empty read lets OpenSSL see its expired retransmission
                // timer and queue the last flight again.
                d.handle_packet(&[])?;
            }
            d.handle_timeout(now)
        })?
        .map_err(from_v07_error)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        // The wrapped instance queues everything it is given, before and
        // after the handshake, so all of it is accepted.
        self.guarded(DtlsCryptoOperation::Encrypt, |d| {
            d.send_application_data(data)
        })?
        .map_err(from_v07_error)?;
        Ok(data.len())
    }

    fn is_active(&self) -> bool {
        self.inner.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.inner.protocol_version().and_then(|v| {
            if v == v07::ProtocolVersion::DTLS1_2 {
                Some(ProtocolVersion::DTLS1_2)
            } else if v == v07::ProtocolVersion::DTLS1_3 {
                Some(ProtocolVersion::DTLS1_3)
            } else if v == v07::ProtocolVersion::DTLS1_0 {
                Some(ProtocolVersion::DTLS1_0)
            } else {
                None
            }
        })
    }

    fn is_closing(&self) -> bool {
        self.inner.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.poisoned || self.inner.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.guarded(DtlsCryptoOperation::Encrypt, |d| d.close())?
            .map_err(from_v07_error)
    }
}

fn from_v07_output(out: v07::DtlsOutput<'_>) -> DtlsOutput<'_> {
    match out {
        v07::DtlsOutput::Packet(p) => DtlsOutput::Packet(p),
        v07::DtlsOutput::BufferTooSmall { needed } => DtlsOutput::BufferTooSmall { needed },
        v07::DtlsOutput::Timeout(t) => DtlsOutput::Timeout(t),
        v07::DtlsOutput::Connected => DtlsOutput::Connected,
        v07::DtlsOutput::PeerCert(c) => DtlsOutput::PeerCert(c),
        v07::DtlsOutput::KeyingMaterial(km, profile) => {
            match from_v07_profile(profile) {
                Some(p) => DtlsOutput::KeyingMaterial(KeyingMaterial::new(&km), p),
                // OpenSSL is configured with exactly the three profiles
                // below, so this cannot be reached; wait rather than guess.
                None => DtlsOutput::Timeout(Instant::now() + Duration::from_secs(3600)),
            }
        }
        v07::DtlsOutput::ApplicationData(d) => DtlsOutput::ApplicationData(d),
        v07::DtlsOutput::CloseNotify => DtlsOutput::CloseNotify,
        // Output is non_exhaustive; str0m-openssl 0.6 emits none beyond these.
        _ => DtlsOutput::Timeout(Instant::now() + Duration::from_secs(3600)),
    }
}

/// A panic inside OpenSSL's DTLS code ended one connection's handshake; the
/// shard's DTLS warning that follows blames the peer, so say what it was.
fn poisoned_warning() {
    tracing::error!(
        "moim's DTLS (str0m-openssl) panicked during a handshake; that one connection is \
         closed and the others carry on. This is a bug in moim or str0m-openssl, not a \
         client problem: report it with the log at MOIM_LOG=info,str0m_openssl=debug"
    );
}

fn from_v07_profile(p: v07::SrtpProfile) -> Option<SrtpProfile> {
    match p {
        v07::SrtpProfile::AES128_CM_SHA1_80 => Some(SrtpProfile::AES128_CM_SHA1_80),
        v07::SrtpProfile::AEAD_AES_128_GCM => Some(SrtpProfile::AEAD_AES_128_GCM),
        v07::SrtpProfile::AEAD_AES_256_GCM => Some(SrtpProfile::AEAD_AES_256_GCM),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// str0m-openssl reports every failure as a failed encrypt or decrypt (the
/// OpenSSL reason goes to its own DEBUG log); keep which one it was.
fn from_v07_error(e: v07::DtlsImplError) -> DtlsImplError {
    match e {
        v07::DtlsImplError::CryptoError(v07::DtlsCryptoError::OperationFailed(
            v07::DtlsCryptoOperation::Encrypt,
        )) => failed(DtlsCryptoOperation::Encrypt),
        _ => failed(DtlsCryptoOperation::Decrypt),
    }
}
