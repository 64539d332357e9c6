//! Who may hold an ICE-TCP connection, without IO: the tokio shell in
//! `mod.rs` asks, and closes what this table says to close.
//!
//! A connection is *pending* from accept until its first frame turns out to
//! be a STUN request for a participant moim knows and the shard took it;
//! then it is *established*. A pending connection has proved nothing, so:
//!
//! - pending connections are bounded in all and per source (an IPv4
//!   address, or an IPv6 /64, which one host usually holds whole). When
//!   either bound is reached the oldest pending connection in it is closed
//!   to make room, rather than the new one refused: a refusal would let
//!   whoever holds the idle sockets keep everyone else out (per source:
//!   everyone behind the same NAT) for as long as they like, while eviction
//!   makes them open connections faster than a real client's round trip.
//!   Real clients send STUN right after connecting, so they leave the
//!   pending set almost at once;
//! - established connections are bounded in all and per source, and never
//!   evicted: at those bounds a newcomer is refused;
//! - a pending connection past its deadline closes itself (`mod.rs`).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::IceTcpLimits;

pub(crate) type ConnId = u64;

/// Which bound was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    Pending,
    PendingPerSource,
    Established,
    EstablishedPerSource,
}

impl Limit {
    const ALL: [Limit; 4] = [
        Limit::Pending,
        Limit::PendingPerSource,
        Limit::Established,
        Limit::EstablishedPerSource,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The `IceTcpLimits` field and the moim.toml key that set this bound.
    pub(crate) fn setting(self) -> (&'static str, &'static str) {
        match self {
            Limit::Pending => ("IceTcpLimits::max_pending", "rtc.tcp_max_pending"),
            Limit::PendingPerSource => (
                "IceTcpLimits::max_pending_per_source",
                "rtc.tcp_max_pending_per_source",
            ),
            Limit::Established => ("IceTcpLimits::max_established", "rtc.tcp_max_established"),
            Limit::EstablishedPerSource => (
                "IceTcpLimits::max_established_per_source",
                "rtc.tcp_max_established_per_source",
            ),
        }
    }

    pub(crate) fn value(self, limits: &IceTcpLimits) -> usize {
        let l = effective(limits);
        match self {
            Limit::Pending => l.max_pending,
            Limit::PendingPerSource => l.max_pending_per_source,
            Limit::Established => l.max_established,
            Limit::EstablishedPerSource => l.max_established_per_source,
        }
    }
}

/// Why an established place was not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// An established bound is reached.
    Full(Limit),
    /// The connection was evicted while its first frame was on the way.
    Evicted,
}

/// A bound that was hit, due for a WARN: how many times since the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Warning {
    pub limit: Limit,
    pub hits: u64,
}

/// How often one bound may be reported at WARN.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(60);

/// A source as far as limits go: IPv4 address or IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SourceKey(u128);

fn source_key(ip: IpAddr) -> SourceKey {
    match ip.to_canonical() {
        IpAddr::V4(v4) => SourceKey(u128::from(u32::from(v4))),
        IpAddr::V6(v6) => SourceKey((u128::from(v6) >> 64) | (1 << 127)),
    }
}

/// A bound of 0 would close every connection; treat it as 1.
fn effective(l: &IceTcpLimits) -> IceTcpLimits {
    IceTcpLimits {
        max_pending: l.max_pending.max(1),
        max_pending_per_source: l.max_pending_per_source.max(1),
        max_established: l.max_established.max(1),
        max_established_per_source: l.max_established_per_source.max(1),
        stun_deadline: l.stun_deadline,
    }
}

struct Entry {
    source: SourceKey,
    established: bool,
}

#[derive(Default, Clone, Copy)]
struct WarnState {
    hits: u64,
    last: Option<Instant>,
}

/// Connections by state. Touched on accept, on the first frame and on close,
/// never per packet.
pub(crate) struct Table {
    limits: IceTcpLimits,
    next_id: ConnId,
    conns: HashMap<ConnId, Entry>,
    /// Ids grow with time, so the first is the oldest.
    pending: BTreeSet<ConnId>,
    pending_by_source: HashMap<SourceKey, VecDeque<ConnId>>,
    established: usize,
    established_by_source: HashMap<SourceKey, usize>,
    warn: [WarnState; Limit::ALL.len()],
}

/// A new pending connection, and the ones closed to make room for it.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub id: ConnId,
    pub evicted: Vec<(ConnId, Limit)>,
    pub warning: Option<Warning>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IceTcpCounts {
    /// Connections that have not sent their first STUN request yet.
    pub pending: usize,
    pub established: usize,
}

impl Table {
    pub(crate) fn new(limits: IceTcpLimits) -> Self {
        Table {
            limits: effective(&limits),
            next_id: 0,
            conns: HashMap::new(),
            pending: BTreeSet::new(),
            pending_by_source: HashMap::new(),
            established: 0,
            established_by_source: HashMap::new(),
            warn: [WarnState::default(); Limit::ALL.len()],
        }
    }

    /// Takes a connection from `ip` as pending. Never refuses: it evicts.
    pub(crate) fn admit(&mut self, ip: IpAddr, now: Instant) -> Admitted {
        let source = source_key(ip);
        let mut evicted = Vec::new();
        let mut hit = None;
        let same_source = self.pending_by_source.get(&source).map_or(0, VecDeque::len);
        if same_source >= self.limits.max_pending_per_source {
            if let Some(id) = self
                .pending_by_source
                .get(&source)
                .and_then(|q| q.front().copied())
            {
                self.remove(id);
                evicted.push((id, Limit::PendingPerSource));
                hit = Some(Limit::PendingPerSource);
            }
        }
        while self.pending.len() >= self.limits.max_pending {
            let Some(id) = self.pending.first().copied() else {
                break;
            };
            self.remove(id);
            evicted.push((id, Limit::Pending));
            hit = Some(Limit::Pending);
        }
        self.next_id += 1;
        let id = self.next_id;
        self.conns.insert(
            id,
            Entry {
                source,
                established: false,
            },
        );
        self.pending.insert(id);
        self.pending_by_source
            .entry(source)
            .or_default()
            .push_back(id);
        let warning = hit.and_then(|l| self.hit(l, now));
        Admitted {
            id,
            evicted,
            warning,
        }
    }

    /// `id` sent STUN for a known participant: it is no longer evictable,
    /// if an established place is free.
    pub(crate) fn establish(
        &mut self,
        id: ConnId,
        now: Instant,
    ) -> Result<(), (Refused, Option<Warning>)> {
        let Some(entry) = self.conns.get(&id) else {
            return Err((Refused::Evicted, None));
        };
        if entry.established {
            return Ok(());
        }
        let source = entry.source;
        let full = if self.established >= self.limits.max_established {
            Some(Limit::Established)
        } else if self
            .established_by_source
            .get(&source)
            .is_some_and(|n| *n >= self.limits.max_established_per_source)
        {
            Some(Limit::EstablishedPerSource)
        } else {
            None
        };
        if let Some(limit) = full {
            return Err((Refused::Full(limit), self.hit(limit, now)));
        }
        self.unlink_pending(id, source);
        if let Some(e) = self.conns.get_mut(&id) {
            e.established = true;
        }
        self.established += 1;
        *self.established_by_source.entry(source).or_default() += 1;
        Ok(())
    }

    /// `id` closed (a no-op if it was evicted already).
    pub(crate) fn close(&mut self, id: ConnId) {
        self.remove(id);
    }

    pub(crate) fn counts(&self) -> IceTcpCounts {
        IceTcpCounts {
            pending: self.pending.len(),
            established: self.established,
        }
    }

    fn remove(&mut self, id: ConnId) {
        let Some(entry) = self.conns.remove(&id) else {
            return;
        };
        if !entry.established {
            self.unlink_pending(id, entry.source);
            return;
        }
        self.established = self.established.saturating_sub(1);
        if let Some(n) = self.established_by_source.get_mut(&entry.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.established_by_source.remove(&entry.source);
            }
        }
    }

    fn unlink_pending(&mut self, id: ConnId, source: SourceKey) {
        self.pending.remove(&id);
        if let Some(q) = self.pending_by_source.get_mut(&source) {
            q.retain(|p| *p != id);
            if q.is_empty() {
                self.pending_by_source.remove(&source);
            }
        }
    }

    /// Counts a hit of `limit`; a warning if one is due.
    fn hit(&mut self, limit: Limit, now: Instant) -> Option<Warning> {
        let w = &mut self.warn[limit.index()];
        w.hits += 1;
        let due = w
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= WARN_EVERY);
        if !due {
            return None;
        }
        let hits = std::mem::take(&mut w.hits);
        w.last = Some(now);
        Some(Warning { limit, hits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn limits(pending: usize, per_source: usize, est: usize, est_per_source: usize) -> Table {
        Table::new(IceTcpLimits {
            max_pending: pending,
            max_pending_per_source: per_source,
            max_established: est,
            max_established_per_source: est_per_source,
            stun_deadline: Duration::from_secs(3),
        })
    }

    #[test]
    fn a_source_over_its_pending_share_loses_its_own_oldest_connection() {
        let now = Instant::now();
        let mut t = limits(100, 2, 100, 100);
        let a = t.admit(ip("192.0.2.1"), now);
        let b = t.admit(ip("192.0.2.1"), now);
        let other = t.admit(ip("192.0.2.2"), now);
        assert!(a.evicted.is_empty() && b.evicted.is_empty() && other.evicted.is_empty());
        let c = t.admit(ip("::ffff:192.0.2.1"), now);
        assert_eq!(
            c.evicted,
            vec![(a.id, Limit::PendingPerSource)],
            "the same source in IPv6 spelling; the other source is untouched"
        );
        assert_eq!(t.counts().pending, 3);
        t.close(a.id);
        assert_eq!(t.counts().pending, 3, "closing an evicted one is a no-op");
        assert_eq!(
            t.establish(a.id, now),
            Err((Refused::Evicted, None)),
            "an evicted connection cannot establish"
        );
    }

    #[test]
    fn ipv6_sources_are_slash_64s() {
        let now = Instant::now();
        let mut t = limits(100, 1, 100, 100);
        let a = t.admit(ip("2001:db8::1"), now);
        let b = t.admit(ip("2001:db8::ffff:2"), now);
        assert_eq!(b.evicted, vec![(a.id, Limit::PendingPerSource)]);
        let c = t.admit(ip("2001:db8:0:1::1"), now);
        assert!(c.evicted.is_empty(), "the next /64 is another source");
    }

    #[test]
    fn a_full_pending_set_evicts_the_oldest_but_never_an_established_connection() {
        let now = Instant::now();
        let mut t = limits(2, 10, 100, 100);
        let authed = t.admit(ip("192.0.2.9"), now);
        t.establish(authed.id, now).expect("established");
        let old = t.admit(ip("192.0.2.1"), now);
        let young = t.admit(ip("192.0.2.2"), now);
        let new = t.admit(ip("192.0.2.3"), now);
        assert_eq!(new.evicted, vec![(old.id, Limit::Pending)]);
        assert_eq!(
            t.counts(),
            IceTcpCounts {
                pending: 2,
                established: 1
            }
        );
        t.establish(young.id, now).expect("young establishes");
        assert_eq!(
            t.counts().pending,
            1,
            "established ones leave the pending set"
        );
        assert!(t.admit(ip("192.0.2.4"), now).evicted.is_empty());
    }

    #[test]
    fn established_bounds_refuse_newcomers_and_free_on_close() {
        let now = Instant::now();
        let mut t = limits(10, 10, 3, 2);
        let a = t.admit(ip("192.0.2.1"), now).id;
        let b = t.admit(ip("192.0.2.1"), now).id;
        let c = t.admit(ip("192.0.2.1"), now).id;
        t.establish(a, now).expect("a");
        t.establish(b, now).expect("b");
        assert!(matches!(
            t.establish(c, now),
            Err((Refused::Full(Limit::EstablishedPerSource), _))
        ));
        let d = t.admit(ip("192.0.2.2"), now).id;
        t.establish(d, now).expect("another source");
        let e = t.admit(ip("192.0.2.3"), now).id;
        assert!(matches!(
            t.establish(e, now),
            Err((Refused::Full(Limit::Established), _))
        ));
        t.close(a);
        t.establish(e, now)
            .expect("a closed one gives its place back");
        t.close(c);
        assert_eq!(
            t.counts(),
            IceTcpCounts {
                pending: 0,
                established: 3
            }
        );
    }

    #[test]
    fn each_limit_warns_at_most_once_a_minute_with_the_hits_in_between() {
        let t0 = Instant::now();
        let mut t = limits(1, 10, 1, 1);
        assert_eq!(t.admit(ip("192.0.2.1"), t0).warning, None);
        let first = t.admit(ip("192.0.2.1"), t0).warning;
        assert_eq!(
            first,
            Some(Warning {
                limit: Limit::Pending,
                hits: 1
            })
        );
        for _ in 0..5 {
            assert_eq!(
                t.admit(ip("192.0.2.1"), t0 + Duration::from_secs(1))
                    .warning,
                None
            );
        }
        let held = t.admit(ip("192.0.2.2"), t0).id;
        t.establish(held, t0).expect("held");
        let refused = t.admit(ip("192.0.2.3"), t0).id;
        assert!(
            matches!(t.establish(refused, t0), Err((_, Some(w))) if w.limit == Limit::Established),
            "another limit has its own clock"
        );
        let later = t.admit(ip("192.0.2.1"), t0 + WARN_EVERY).warning;
        assert_eq!(
            later,
            Some(Warning {
                limit: Limit::Pending,
                hits: 7
            })
        );
    }

    #[test]
    fn zero_limits_act_as_one() {
        let now = Instant::now();
        let mut t = limits(0, 0, 0, 0);
        let a = t.admit(ip("192.0.2.1"), now).id;
        t.establish(a, now).expect("one place");
        let zero = IceTcpLimits {
            max_pending: 0,
            ..IceTcpLimits::default()
        };
        assert_eq!(Limit::Pending.value(&zero), 1, "and are reported as 1");
    }
}
