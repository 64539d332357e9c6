//! STUN message codec (RFC 8489 §5, §14) with the TURN attributes of RFC 8656 §18.
//!
//! Decoding is zero-copy and never panics: every length is checked against
//! the buffer before it is used. Encoding builds a message attribute by
//! attribute and appends MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT last.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use super::error::ErrorCode;

/// The fixed magic cookie of RFC 5389 and later.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Size of the STUN header.
pub const HEADER_LEN: usize = 20;
/// At most this many attributes are looked at in one message.
const MAX_ATTRIBUTES: usize = 64;
const FINGERPRINT_XOR: u32 = 0x5354_554e;

/// STUN methods used by TURN.
pub mod method {
    pub const BINDING: u16 = 0x001;
    pub const ALLOCATE: u16 = 0x003;
    pub const REFRESH: u16 = 0x004;
    pub const SEND: u16 = 0x006;
    pub const DATA: u16 = 0x007;
    pub const CREATE_PERMISSION: u16 = 0x008;
    pub const CHANNEL_BIND: u16 = 0x009;
}

/// STUN and TURN attribute types.
pub mod attr {
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    pub const USERNAME: u16 = 0x0006;
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub const ERROR_CODE: u16 = 0x0009;
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    pub const CHANNEL_NUMBER: u16 = 0x000C;
    pub const LIFETIME: u16 = 0x000D;
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    pub const DATA: u16 = 0x0013;
    pub const REALM: u16 = 0x0014;
    pub const NONCE: u16 = 0x0015;
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
    pub const EVEN_PORT: u16 = 0x0018;
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    pub const RESERVATION_TOKEN: u16 = 0x0022;
    pub const SOFTWARE: u16 = 0x8022;
    pub const FINGERPRINT: u16 = 0x8028;

    /// Comprehension-required attributes this server understands.
    pub const UNDERSTOOD: &[u16] = &[
        MAPPED_ADDRESS,
        USERNAME,
        MESSAGE_INTEGRITY,
        ERROR_CODE,
        UNKNOWN_ATTRIBUTES,
        CHANNEL_NUMBER,
        LIFETIME,
        XOR_PEER_ADDRESS,
        DATA,
        REALM,
        NONCE,
        XOR_RELAYED_ADDRESS,
        REQUESTED_ADDRESS_FAMILY,
        EVEN_PORT,
        REQUESTED_TRANSPORT,
        MESSAGE_INTEGRITY_SHA256,
        XOR_MAPPED_ADDRESS,
        RESERVATION_TOKEN,
    ];
}

/// Message class (RFC 8489 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Request,
    Indication,
    Success,
    Error,
}

/// Why bytes were not a STUN message. Never sent to the peer: undecodable
/// input is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("shorter than a STUN header")]
    TooShort,
    #[error("not a STUN message (first two bits or magic cookie)")]
    NotStun,
    #[error("length field disagrees with the datagram size")]
    BadLength,
    #[error("attribute runs past the end of the message")]
    TruncatedAttribute,
    #[error("too many attributes")]
    TooManyAttributes,
    #[error("FINGERPRINT does not match")]
    BadFingerprint,
    #[error("malformed attribute value")]
    BadAttribute,
}

/// The MAC algorithm a request was protected with; responses use the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    Sha1,
    Sha256,
}

/// One attribute as it appears on the wire.
#[derive(Debug, Clone, Copy)]
pub struct RawAttr<'a> {
    pub typ: u16,
    pub value: &'a [u8],
    /// Offset of the attribute header inside the message.
    offset: usize,
}

/// A decoded STUN message borrowing the input buffer.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub class: Class,
    pub method: u16,
    pub transaction_id: [u8; 12],
    raw: &'a [u8],
    attrs: Vec<RawAttr<'a>>,
    /// Whether the message carried a (valid) FINGERPRINT.
    pub has_fingerprint: bool,
}

impl<'a> Message<'a> {
    /// Decodes exactly one STUN message filling `buf`.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        if buf.len() < HEADER_LEN {
            return Err(DecodeError::TooShort);
        }
        let typ = u16::from_be_bytes([buf[0], buf[1]]);
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        let cookie = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        if typ & 0xC000 != 0 || cookie != MAGIC_COOKIE {
            return Err(DecodeError::NotStun);
        }
        if len % 4 != 0 || HEADER_LEN + len != buf.len() {
            return Err(DecodeError::BadLength);
        }
        let (class, method) = split_type(typ);
        let mut transaction_id = [0u8; 12];
        transaction_id.copy_from_slice(&buf[8..20]);

        let mut attrs = Vec::new();
        let mut has_fingerprint = false;
        let mut after_integrity = false;
        let mut pos = HEADER_LEN;
        while pos < buf.len() {
            if has_fingerprint {
                // FINGERPRINT must be the last attribute.
                return Err(DecodeError::BadFingerprint);
            }
            let header = buf
                .get(pos..pos + 4)
                .ok_or(DecodeError::TruncatedAttribute)?;
            let atyp = u16::from_be_bytes([header[0], header[1]]);
            let alen = usize::from(u16::from_be_bytes([header[2], header[3]]));
            let value = buf
                .get(pos + 4..pos + 4 + alen)
                .ok_or(DecodeError::TruncatedAttribute)?;
            let next = pos + 4 + padded(alen);
            if next > buf.len() {
                return Err(DecodeError::TruncatedAttribute);
            }
            if atyp == attr::FINGERPRINT {
                if alen != 4 || !fingerprint_ok(&buf[..pos], value) {
                    return Err(DecodeError::BadFingerprint);
                }
                has_fingerprint = true;
            } else if !after_integrity || atyp == attr::MESSAGE_INTEGRITY_SHA256 {
                // RFC 8489 §14.5: attributes after MESSAGE-INTEGRITY are
                // ignored, except MESSAGE-INTEGRITY-SHA256 and FINGERPRINT.
                if attrs.len() >= MAX_ATTRIBUTES {
                    return Err(DecodeError::TooManyAttributes);
                }
                attrs.push(RawAttr {
                    typ: atyp,
                    value,
                    offset: pos,
                });
                if atyp == attr::MESSAGE_INTEGRITY || atyp == attr::MESSAGE_INTEGRITY_SHA256 {
                    after_integrity = true;
                }
            }
            pos = next;
        }
        Ok(Message {
            class,
            method,
            transaction_id,
            raw: buf,
            attrs,
            has_fingerprint,
        })
    }

    /// The first attribute of type `typ`.
    pub fn get(&self, typ: u16) -> Option<&'a [u8]> {
        self.attrs.iter().find(|a| a.typ == typ).map(|a| a.value)
    }

    /// All attributes of type `typ`, in order.
    pub fn get_all(&self, typ: u16) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.attrs
            .iter()
            .filter(move |a| a.typ == typ)
            .map(|a| a.value)
    }

    /// Comprehension-required attributes (type < 0x8000) this server does not know.
    pub fn unknown_required(&self) -> Vec<u16> {
        let mut out: Vec<u16> = self
            .attrs
            .iter()
            .map(|a| a.typ)
            .filter(|t| *t < 0x8000 && !attr::UNDERSTOOD.contains(t))
            .collect();
        out.dedup();
        out
    }

    /// A UTF-8 text attribute (USERNAME, REALM, NONCE).
    pub fn text(&self, typ: u16) -> Result<Option<&'a str>, DecodeError> {
        match self.get(typ) {
            None => Ok(None),
            Some(v) => std::str::from_utf8(v)
                .map(Some)
                .map_err(|_| DecodeError::BadAttribute),
        }
    }

    /// A 32-bit attribute (LIFETIME).
    pub fn u32(&self, typ: u16) -> Result<Option<u32>, DecodeError> {
        match self.get(typ) {
            None => Ok(None),
            Some(v) => {
                let b: [u8; 4] = v.try_into().map_err(|_| DecodeError::BadAttribute)?;
                Ok(Some(u32::from_be_bytes(b)))
            }
        }
    }

    /// Decodes an XOR-*-ADDRESS value.
    pub fn xor_address(&self, value: &[u8]) -> Result<SocketAddr, DecodeError> {
        decode_xor_address(value, &self.transaction_id)
    }

    /// Which integrity attribute the message carries, if any (SHA-1 preferred).
    pub fn integrity_kind(&self) -> Option<Integrity> {
        if self.get(attr::MESSAGE_INTEGRITY).is_some() {
            Some(Integrity::Sha1)
        } else if self.get(attr::MESSAGE_INTEGRITY_SHA256).is_some() {
            Some(Integrity::Sha256)
        } else {
            None
        }
    }

    /// Checks MESSAGE-INTEGRITY (or, failing that, MESSAGE-INTEGRITY-SHA256)
    /// with `key`, in constant time. Returns the algorithm on success.
    pub fn verify_integrity(&self, key: &[u8]) -> Option<Integrity> {
        let kind = self.integrity_kind()?;
        let typ = match kind {
            Integrity::Sha1 => attr::MESSAGE_INTEGRITY,
            Integrity::Sha256 => attr::MESSAGE_INTEGRITY_SHA256,
        };
        let a = self.attrs.iter().find(|a| a.typ == typ)?;
        let covered = &self.raw[..a.offset];
        let ok = match kind {
            Integrity::Sha1 => {
                let mac = hmac_over::<Hmac<Sha1>>(key, covered, a.offset + 4 + 20)?;
                a.value.len() == 20 && mac.verify_slice(a.value).is_ok()
            }
            Integrity::Sha256 => {
                let mac = hmac_over::<Hmac<Sha256>>(key, covered, a.offset + 4 + 32)?;
                // RFC 8489 §14.6: may be truncated to 16..=32 bytes, multiple of 4.
                let n = a.value.len();
                (16..=32).contains(&n) && n % 4 == 0 && mac.verify_truncated_left(a.value).is_ok()
            }
        };
        ok.then_some(kind)
    }
}

/// HMAC over the message prefix `covered` with the header length rewritten to
/// `end - 20` (the message as if it ended after the integrity attribute).
fn hmac_over<M: Mac + hmac::digest::KeyInit>(key: &[u8], covered: &[u8], end: usize) -> Option<M> {
    let len = u16::try_from(end - HEADER_LEN).ok()?;
    let mut mac = <M as Mac>::new_from_slice(key).ok()?;
    mac.update(covered.get(..2)?);
    mac.update(&len.to_be_bytes());
    mac.update(covered.get(4..)?);
    Some(mac)
}

fn fingerprint_ok(covered: &[u8], value: &[u8]) -> bool {
    let Ok(b) = <[u8; 4]>::try_from(value) else {
        return false;
    };
    crc32fast::hash(covered) ^ FINGERPRINT_XOR == u32::from_be_bytes(b)
}

fn padded(n: usize) -> usize {
    (n + 3) & !3
}

fn split_type(typ: u16) -> (Class, u16) {
    let class = match ((typ >> 7) & 0x2) | ((typ >> 4) & 0x1) {
        0 => Class::Request,
        1 => Class::Indication,
        2 => Class::Success,
        _ => Class::Error,
    };
    let method = (typ & 0x000F) | ((typ >> 1) & 0x0070) | ((typ >> 2) & 0x0F80);
    (class, method)
}

fn join_type(class: Class, method: u16) -> u16 {
    let c = match class {
        Class::Request => 0u16,
        Class::Indication => 1,
        Class::Success => 2,
        Class::Error => 3,
    };
    (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((c & 1) << 4)
        | ((c & 2) << 7)
}

fn decode_xor_address(value: &[u8], tx: &[u8; 12]) -> Result<SocketAddr, DecodeError> {
    if value.len() < 4 {
        return Err(DecodeError::BadAttribute);
    }
    let port = u16::from_be_bytes([value[2], value[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
    let cookie = MAGIC_COOKIE.to_be_bytes();
    match (value[1], value.len()) {
        (0x01, 8) => {
            let mut ip = [0u8; 4];
            for (i, b) in ip.iter_mut().enumerate() {
                *b = value[4 + i] ^ cookie[i];
            }
            Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
        }
        (0x02, 20) => {
            let mut ip = [0u8; 16];
            for (i, b) in ip.iter_mut().enumerate() {
                let k = if i < 4 { cookie[i] } else { tx[i - 4] };
                *b = value[4 + i] ^ k;
            }
            Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
        }
        _ => Err(DecodeError::BadAttribute),
    }
}

/// Builds one STUN message.
#[derive(Debug)]
pub struct MessageBuilder {
    buf: Vec<u8>,
    transaction_id: [u8; 12],
}

impl MessageBuilder {
    pub fn new(class: Class, method: u16, transaction_id: [u8; 12]) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&join_type(class, method).to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf.extend_from_slice(&transaction_id);
        MessageBuilder {
            buf,
            transaction_id,
        }
    }

    /// Appends a raw attribute with padding. Values longer than 65535 bytes
    /// are truncated; callers never pass those (DATA is bounded by the
    /// maximum datagram size).
    pub fn add(&mut self, typ: u16, value: &[u8]) -> &mut Self {
        let value = &value[..value.len().min(usize::from(u16::MAX) - 64)];
        let len = u16::try_from(value.len()).unwrap_or(0);
        self.buf.extend_from_slice(&typ.to_be_bytes());
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(value);
        let pad = padded(value.len()) - value.len();
        self.buf.extend_from_slice(&[0u8; 3][..pad]);
        self.set_len();
        self
    }

    pub fn add_u32(&mut self, typ: u16, v: u32) -> &mut Self {
        self.add(typ, &v.to_be_bytes())
    }

    pub fn add_xor_address(&mut self, typ: u16, addr: SocketAddr) -> &mut Self {
        let cookie = MAGIC_COOKIE.to_be_bytes();
        let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
        let mut v = Vec::with_capacity(20);
        match addr.ip() {
            IpAddr::V4(ip) => {
                v.extend_from_slice(&[0, 0x01]);
                v.extend_from_slice(&port.to_be_bytes());
                v.extend(ip.octets().iter().zip(cookie).map(|(a, b)| a ^ b));
            }
            IpAddr::V6(ip) => {
                v.extend_from_slice(&[0, 0x02]);
                v.extend_from_slice(&port.to_be_bytes());
                let key = cookie.iter().chain(self.transaction_id.iter());
                v.extend(ip.octets().iter().zip(key).map(|(a, b)| a ^ b));
            }
        }
        self.add(typ, &v)
    }

    pub fn add_error(&mut self, code: ErrorCode) -> &mut Self {
        let n = code.code();
        let mut v = vec![0, 0, (n / 100) as u8, (n % 100) as u8];
        v.extend_from_slice(code.reason().as_bytes());
        self.add(attr::ERROR_CODE, &v)
    }

    fn set_len(&mut self) {
        let len = u16::try_from(self.buf.len() - HEADER_LEN).unwrap_or(u16::MAX);
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
    }

    /// Appends MESSAGE-INTEGRITY(-SHA256) with `key` (if given) and
    /// FINGERPRINT (if asked), and returns the encoded message.
    pub fn finish(mut self, integrity: Option<(Integrity, &[u8])>, fingerprint: bool) -> Vec<u8> {
        if let Some((kind, key)) = integrity {
            let (typ, size) = match kind {
                Integrity::Sha1 => (attr::MESSAGE_INTEGRITY, 20),
                Integrity::Sha256 => (attr::MESSAGE_INTEGRITY_SHA256, 32),
            };
            let end = self.buf.len() + 4 + size;
            let tag = match kind {
                Integrity::Sha1 => hmac_over::<Hmac<Sha1>>(key, &self.buf, end)
                    .map(|m| m.finalize().into_bytes().to_vec()),
                Integrity::Sha256 => hmac_over::<Hmac<Sha256>>(key, &self.buf, end)
                    .map(|m| m.finalize().into_bytes().to_vec()),
            };
            // HMAC accepts keys of any length, so `tag` is always Some.
            self.add(typ, &tag.unwrap_or_else(|| vec![0; size]));
        }
        if fingerprint {
            let len = u16::try_from(self.buf.len() + 8 - HEADER_LEN).unwrap_or(u16::MAX);
            self.buf[2..4].copy_from_slice(&len.to_be_bytes());
            let crc = crc32fast::hash(&self.buf) ^ FINGERPRINT_XOR;
            self.add(attr::FINGERPRINT, &crc.to_be_bytes());
        }
        self.buf
    }
}

/// A decoded ChannelData message (RFC 8656 §12.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelData<'a> {
    pub channel: u16,
    pub data: &'a [u8],
}

/// Accepted channel numbers. RFC 8656 §12 narrowed the range to
/// 0x4000–0x4FFF, but RFC 5766 clients (coturn's own tools among them) pick
/// numbers up to 0x7FFF; like coturn we accept the old range, which is still
/// unambiguous against STUN (first bits 01).
pub const CHANNEL_RANGE: std::ops::RangeInclusive<u16> = 0x4000..=0x7FFF;

impl<'a> ChannelData<'a> {
    /// Decodes ChannelData; trailing padding (or garbage over UDP) is ignored.
    pub fn decode(buf: &'a [u8]) -> Option<Self> {
        let header = buf.get(..4)?;
        let channel = u16::from_be_bytes([header[0], header[1]]);
        if !CHANNEL_RANGE.contains(&channel) {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let data = buf.get(4..4 + len)?;
        Some(ChannelData { channel, data })
    }

    /// Encodes ChannelData; `pad` rounds the size up to 4 bytes (required
    /// over TCP and TLS, RFC 8656 §12.5).
    pub fn encode(channel: u16, data: &[u8], pad: bool) -> Vec<u8> {
        let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
        let data = &data[..usize::from(len)];
        let total = if pad {
            4 + padded(data.len())
        } else {
            4 + data.len()
        };
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&channel.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(data);
        out.resize(total, 0);
        out
    }
}

/// Stream framing for TCP and TLS (RFC 8656 §11 and §12.5): how many bytes
/// the next frame at the start of `buf` takes, `Ok(None)` if more bytes are
/// needed to tell, `Err` if the stream is not STUN/ChannelData.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let Some(header) = buf.get(..4) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    match header[0] >> 6 {
        0b00 => Ok(Some(HEADER_LEN + len)),
        0b01 => Ok(Some(4 + padded(len))),
        _ => Err(DecodeError::NotStun),
    }
}

#[cfg(test)]
mod tests;
