//! STUN/TURN error codes (RFC 8489 §14.8, RFC 8656 §19), in one place.

/// An error response this server sends. Each variant maps to exactly one
/// wire code and reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: malformed or missing attribute.
    BadRequest,
    /// 401: missing or wrong credentials, or expired REST username.
    Unauthorized,
    /// 403: peer address refused by policy.
    Forbidden,
    /// 420: a comprehension-required attribute is not understood.
    UnknownAttribute,
    /// 437: no allocation for this 5-tuple, or one already exists.
    AllocationMismatch,
    /// 438: NONCE expired or not ours.
    StaleNonce,
    /// 440: requested address family is not served.
    AddressFamilyNotSupported,
    /// 441: request signed by another user than the allocation's.
    WrongCredentials,
    /// 442: REQUESTED-TRANSPORT is not UDP.
    UnsupportedTransportProtocol,
    /// 443: peer address family differs from the relayed address's.
    PeerAddressFamilyMismatch,
    /// 486: the user holds its quota of allocations.
    AllocationQuotaReached,
    /// 508: no relay port could be bound, or the server is full.
    InsufficientCapacity,
}

impl ErrorCode {
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::UnknownAttribute => 420,
            ErrorCode::AllocationMismatch => 437,
            ErrorCode::StaleNonce => 438,
            ErrorCode::AddressFamilyNotSupported => 440,
            ErrorCode::WrongCredentials => 441,
            ErrorCode::UnsupportedTransportProtocol => 442,
            ErrorCode::PeerAddressFamilyMismatch => 443,
            ErrorCode::AllocationQuotaReached => 486,
            ErrorCode::InsufficientCapacity => 508,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "Bad Request",
            ErrorCode::Unauthorized => "Unauthorized",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::UnknownAttribute => "Unknown Attribute",
            ErrorCode::AllocationMismatch => "Allocation Mismatch",
            ErrorCode::StaleNonce => "Stale Nonce",
            ErrorCode::AddressFamilyNotSupported => "Address Family not Supported",
            ErrorCode::WrongCredentials => "Wrong Credentials",
            ErrorCode::UnsupportedTransportProtocol => "Unsupported Transport Protocol",
            ErrorCode::PeerAddressFamilyMismatch => "Peer Address Family Mismatch",
            ErrorCode::AllocationQuotaReached => "Allocation Quota Reached",
            ErrorCode::InsufficientCapacity => "Insufficient Capacity",
        }
    }
}
