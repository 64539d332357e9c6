//! Who may hold a TURN/TCP or TURN/TLS connection (RFC 8656 §3.1 leaves
//! this to the server). Before a connection has an allocation it costs the
//! server a slot and a task while proving nothing, so:
//!
//! - each source (an IPv4 address, or an IPv6 /64, which one host
//!   usually holds whole) may have [`ConnLimits::per_source`] connections;
//! - connections without an allocation ("pending") may fill the table only
//!   up to `max - headroom`; the rest is room for clients that
//!   authenticated;
//! - when the pending share or the whole table is full, the oldest pending
//!   connection is closed to make room, so idle connections cannot shut
//!   new clients out; only authenticated connections are never evicted;
//! - a pending connection that has no allocation after the auth deadline
//!   closes itself (see `stream.rs`).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::warn;

use crate::proto::ClientAddr;

/// The limits, shared by the TCP and TLS listeners.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    pub max: usize,
    pub per_source: usize,
    /// Slots that only authenticated connections may use.
    pub headroom: usize,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// This source holds its share.
    PerSource,
    /// Every slot holds an authenticated connection.
    Full,
}

/// How often a refusal may be logged at WARN.
const WARN_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Table {
    total: usize,
    per_source: HashMap<SourceKey, usize>,
    /// Pending connections, oldest first, with the means to close them.
    pending: VecDeque<(u64, ClientAddr, oneshot::Sender<()>)>,
    by_client: HashMap<ClientAddr, u64>,
    next_id: u64,
    refused_since_warn: u64,
    last_warn: Option<Instant>,
}

/// The connection table. Cheap to clone; touched on connect, on the first
/// allocation and on close, never per packet.
#[derive(Clone)]
pub(crate) struct Connections {
    limits: ConnLimits,
    table: Arc<Mutex<Table>>,
}

/// A source as far as limits go: IPv4 address or IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SourceKey(u128);

fn source_key(ip: IpAddr) -> SourceKey {
    match crate::proto::canonical(ip) {
        IpAddr::V4(v4) => SourceKey(u128::from(u32::from(v4))),
        IpAddr::V6(v6) => SourceKey((u128::from(v6) >> 64) | (1 << 127)),
    }
}

/// A connection's place in the table; dropping it frees the place.
pub(crate) struct Admission {
    conns: Connections,
    id: u64,
    client: ClientAddr,
    /// Fires when the connection is evicted to make room.
    pub evicted: oneshot::Receiver<()>,
}

impl Connections {
    pub(crate) fn new(limits: ConnLimits) -> Self {
        Connections {
            limits,
            table: Arc::new(Mutex::new(Table::default())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves counters that are still
        // usable; keep serving rather than propagate it.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a new connection from `client`, evicting the oldest pending
    /// one if the table is full.
    pub(crate) fn admit(&self, client: ClientAddr) -> Result<Admission, Refused> {
        let mut t = self.lock();
        let key = source_key(client.addr.ip());
        let result = self.make_room(&mut t, key);
        if let Err(why) = result {
            t.refused_since_warn += 1;
            let due = t.last_warn.is_none_or(|w| w.elapsed() >= WARN_EVERY);
            if due {
                warn!(
                    refused = t.refused_since_warn,
                    reason = ?why,
                    total = t.total,
                    max = self.limits.max,
                    per_source = self.limits.per_source,
                    "TURN over TCP/TLS refuses connections: {}",
                    match why {
                        Refused::PerSource => "one source address holds its share of \
                                               connections. If many users share one NAT \
                                               address, they need a higher limit \
                                               (moim.toml [turn] max_connections_per_source): \
                                               or run another node",
                        Refused::Full => "every slot holds an authenticated client \
                                          (moim.toml [turn] max_connections); raise it or \
                                          run another node",
                    }
                );
                t.refused_since_warn = 0;
                t.last_warn = Some(Instant::now());
            }
            return Err(why);
        }
        t.next_id += 1;
        let id = t.next_id;
        let (kick, evicted) = oneshot::channel();
        t.total += 1;
        *t.per_source.entry(key).or_default() += 1;
        t.pending.push_back((id, client, kick));
        t.by_client.insert(client, id);
        Ok(Admission {
            conns: self.clone(),
            id,
            client,
            evicted,
        })
    }

    fn make_room(&self, t: &mut Table, key: SourceKey) -> Result<(), Refused> {
        if t.per_source.get(&key).copied().unwrap_or(0) >= self.limits.per_source {
            return Err(Refused::PerSource);
        }
        let pending_cap = self.limits.max.saturating_sub(self.limits.headroom).max(1);
        while t.total >= self.limits.max || t.pending.len() >= pending_cap {
            let Some((_, client, kick)) = t.pending.pop_front() else {
                return Err(Refused::Full);
            };
            // The evicted task ends on its own; its place is free now.
            let _ = kick.send(());
            t.by_client.remove(&client);
            Self::release(t, client);
        }
        Ok(())
    }

    /// `client` holds an allocation now: it is no longer evictable.
    pub(crate) fn authenticated(&self, client: ClientAddr) {
        let mut t = self.lock();
        if let Some(id) = t.by_client.get(&client).copied() {
            t.pending.retain(|(p, _, _)| *p != id);
        }
    }

    /// Whether `client` is still waiting for its allocation.
    pub(crate) fn is_pending(&self, client: ClientAddr) -> bool {
        let t = self.lock();
        t.by_client
            .get(&client)
            .is_some_and(|id| t.pending.iter().any(|(p, _, _)| p == id))
    }

    fn release(t: &mut Table, client: ClientAddr) {
        t.total = t.total.saturating_sub(1);
        let key = source_key(client.addr.ip());
        if let Some(n) = t.per_source.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                t.per_source.remove(&key);
            }
        }
    }

    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let t = self.lock();
        (t.total, t.pending.len())
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut t = self.conns.lock();
        // Evicted entries were released when evicted.
        if t.by_client.get(&self.client) != Some(&self.id) {
            return;
        }
        t.by_client.remove(&self.client);
        let id = self.id;
        t.pending.retain(|(p, _, _)| *p != id);
        Connections::release(&mut t, self.client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Transport;

    fn client(ip: &str, port: u16) -> ClientAddr {
        ClientAddr {
            transport: Transport::Tcp,
            addr: std::net::SocketAddr::new(ip.parse().expect("ip"), port),
        }
    }

    fn table(max: usize, per_source: usize, headroom: usize) -> Connections {
        Connections::new(ConnLimits {
            max,
            per_source,
            headroom,
        })
    }

    #[test]
    fn per_source_limit_counts_ipv4_addresses_and_ipv6_slash_64s() {
        let c = table(100, 2, 0);
        let _a = c.admit(client("192.0.2.1", 1)).expect("first");
        let _b = c.admit(client("192.0.2.1", 2)).expect("second");
        assert_eq!(
            c.admit(client("192.0.2.1", 3)).err(),
            Some(Refused::PerSource)
        );
        assert_eq!(
            c.admit(client("::ffff:192.0.2.1", 4)).err(),
            Some(Refused::PerSource),
            "the same source in IPv6 spelling"
        );
        let _c = c.admit(client("192.0.2.2", 1)).expect("another source");
        let _d = c.admit(client("2001:db8::1", 1)).expect("v6");
        let _e = c.admit(client("2001:db8::ffff:2", 1)).expect("same /64");
        assert_eq!(
            c.admit(client("2001:db8::3", 1)).err(),
            Some(Refused::PerSource)
        );
        assert!(c.admit(client("2001:db8:0:1::1", 1)).is_ok(), "next /64");
        drop(_a);
        assert!(
            c.admit(client("192.0.2.1", 5)).is_ok(),
            "a closed one gives its place back"
        );
    }

    #[test]
    fn a_full_table_evicts_the_oldest_pending_connection_never_an_authenticated_one() {
        let c = table(3, 10, 1);
        let mut old = c.admit(client("192.0.2.1", 1)).expect("1");
        let authed = c.admit(client("192.0.2.1", 2)).expect("2");
        c.authenticated(authed.client);
        assert!(!c.is_pending(authed.client));
        // Pending may use max - headroom = 2 slots.
        let mut young = c.admit(client("192.0.2.1", 3)).expect("3");
        assert_eq!(c.counts(), (3, 2));
        let _new = c
            .admit(client("192.0.2.1", 4))
            .expect("4 evicts the oldest pending");
        assert_eq!(
            old.evicted.try_recv(),
            Ok(()),
            "the oldest pending was told to go"
        );
        assert!(young.evicted.try_recv().is_err());
        assert_eq!(c.counts(), (3, 2));
        drop(old);
        assert_eq!(c.counts(), (3, 2), "an evicted one was released already");
        // All slots authenticated: refuse.
        let c = table(1, 10, 0);
        let a = c.admit(client("192.0.2.1", 1)).expect("1");
        c.authenticated(a.client);
        assert_eq!(c.admit(client("192.0.2.1", 2)).err(), Some(Refused::Full));
        drop(a);
        assert!(c.admit(client("192.0.2.1", 3)).is_ok());
    }
}
