//! Admission control on the public listener (contract 3.2): handshake slots
//! per node and per client address, and the node's connection limits
//! (`--max-connections`, `--max-connections-per-ip`).
//!
//! An upgrade holds a [`HandshakeSlots`] from the first byte of its request
//! until it is answered (see [`super::admitted_io`] for how the first byte is
//! seen); an HTTP keep-alive connection between requests holds none. Past
//! `--max-pending-handshakes` (node) or `--max-pending-handshakes-per-ip`
//! the request is refused with 503 at once. An upgraded session holds a
//! [`ConnectionSlot`] and an [`IpSlot`] for its whole life.
//!
//! Every slot is a guard that gives its count back when dropped, however the
//! handshake or session ends. The per-IP counts are maps behind one mutex
//! each, held only to bump a number (never across an await); an address is
//! removed when its count reaches 0, so the maps hold only addresses with
//! something in flight.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::metrics::{Metrics, RejectReason};

/// Counts per address, each under a limit.
#[derive(Default)]
struct PerIp(Mutex<HashMap<IpAddr, usize>>);

impl PerIp {
    /// Counts one for `ip`; false (nothing counted) at `limit`.
    fn try_claim(&self, ip: IpAddr, limit: usize) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= limit {
            if *n == 0 {
                map.remove(&ip);
            }
            return false;
        }
        *n += 1;
        true
    }

    fn release(&self, ip: IpAddr) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }

    fn get(&self, ip: IpAddr) -> usize {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&ip).copied().unwrap_or(0)
    }
}

/// A count under a limit, without a lock.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Counter {
    fn try_claim(&self, limit: usize) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self) {
        // Never below zero: each release follows its own claim.
        let _unchanged_at_zero = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

/// Why a handshake or connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many handshakes in progress; retry")]
    Handshakes,
    #[error("too many handshakes in progress from this address; retry")]
    IpHandshakes,
    #[error("node is full")]
    NodeFull,
    #[error("too many connections from this IP")]
    IpConnections,
}

impl Refusal {
    /// The `reason` label it is counted under.
    pub fn reason(self) -> RejectReason {
        match self {
            Refusal::Handshakes => RejectReason::HandshakeLimit,
            Refusal::IpHandshakes => RejectReason::HandshakeIpLimit,
            Refusal::NodeFull => RejectReason::NodeFull,
            Refusal::IpConnections => RejectReason::IpLimit,
        }
    }
}

/// The public listener's admission state, one per node.
pub struct Admission {
    metrics: Arc<Metrics>,
    max_pending: usize,
    max_pending_per_ip: usize,
    max_connections: usize,
    max_connections_per_ip: usize,
    pending: Counter,
    pending_per_ip: PerIp,
    connections: Counter,
    connections_per_ip: PerIp,
}

impl Admission {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Arc<Admission> {
        Arc::new(Admission {
            metrics,
            max_pending: config.max_pending_handshakes,
            max_pending_per_ip: config.max_pending_handshakes_per_ip,
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            pending: Counter::default(),
            pending_per_ip: PerIp::default(),
            connections: Counter::default(),
            connections_per_ip: PerIp::default(),
        })
    }

    /// Counts a refusal in `wsgate_connections_rejected_total`.
    pub fn count(&self, refusal: Refusal) {
        self.metrics.rejected(refusal.reason());
    }

    /// A node handshake slot, and the client's when its address is known.
    /// A refusal is counted.
    pub fn begin_handshake(
        self: &Arc<Self>,
        client: Option<IpAddr>,
    ) -> Result<HandshakeSlots, Refusal> {
        if !self.pending.try_claim(self.max_pending) {
            self.count(Refusal::Handshakes);
            return Err(Refusal::Handshakes);
        }
        let mut slots = HandshakeSlots {
            admission: self.clone(),
            ip: None,
        };
        if let Some(ip) = client {
            slots.claim_ip(ip)?;
        }
        Ok(slots)
    }

    /// A connection slot on this node (`--max-connections`).
    pub fn claim_connection(self: &Arc<Self>) -> Result<ConnectionSlot, Refusal> {
        if self.connections.try_claim(self.max_connections) {
            Ok(ConnectionSlot(self.clone()))
        } else {
            self.count(Refusal::NodeFull);
            Err(Refusal::NodeFull)
        }
    }

    /// A connection slot of the client address (`--max-connections-per-ip`).
    pub fn claim_ip(self: &Arc<Self>, ip: IpAddr) -> Result<IpSlot, Refusal> {
        if self
            .connections_per_ip
            .try_claim(ip, self.max_connections_per_ip)
        {
            Ok(IpSlot {
                admission: self.clone(),
                ip,
            })
        } else {
            self.count(Refusal::IpConnections);
            Err(Refusal::IpConnections)
        }
    }

    /// Handshakes in progress from `ip` (tests and diagnostics).
    pub fn pending_from(&self, ip: IpAddr) -> usize {
        self.pending_per_ip.get(ip)
    }
}

/// The slots one handshake holds until it is answered: always the node's,
/// and the client address's once known.
pub struct HandshakeSlots {
    admission: Arc<Admission>,
    ip: Option<IpAddr>,
}

impl HandshakeSlots {
    /// Whether the client address's slot is held.
    pub fn has_ip(&self) -> bool {
        self.ip.is_some()
    }

    /// Takes the client address's slot (when the address is known only once
    /// the request's forwarding headers are read). A refusal is counted.
    pub fn claim_ip(&mut self, ip: IpAddr) -> Result<(), Refusal> {
        let a = &self.admission;
        if self.ip.is_some() {
            return Ok(());
        }
        if !a.pending_per_ip.try_claim(ip, a.max_pending_per_ip) {
            a.count(Refusal::IpHandshakes);
            return Err(Refusal::IpHandshakes);
        }
        self.ip = Some(ip);
        Ok(())
    }
}

impl Drop for HandshakeSlots {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            self.admission.pending_per_ip.release(ip);
        }
        self.admission.pending.release();
    }
}

/// One connection counted against `--max-connections`.
pub struct ConnectionSlot(Arc<Admission>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connections.release();
    }
}

/// One connection counted against `--max-connections-per-ip`.
pub struct IpSlot {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        self.admission.connections_per_ip.release(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(pending: usize, per_ip: usize) -> Arc<Admission> {
        let config = Config {
            max_pending_handshakes: pending,
            max_pending_handshakes_per_ip: per_ip,
            max_connections: 3,
            max_connections_per_ip: 2,
            ..Config::default()
        };
        Admission::new(&config, Arc::new(Metrics::new().unwrap()))
    }

    #[test]
    fn handshake_slots_are_limited_per_node_and_per_address() {
        let a = admission(3, 2);
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let other: IpAddr = "127.0.0.8".parse().unwrap();
        let s1 = a.begin_handshake(Some(ip)).unwrap();
        let s2 = a.begin_handshake(Some(ip)).unwrap();
        assert_eq!(
            a.begin_handshake(Some(ip)).err(),
            Some(Refusal::IpHandshakes)
        );
        let s3 = a.begin_handshake(Some(other)).unwrap();
        assert_eq!(a.begin_handshake(None).err(), Some(Refusal::Handshakes));
        drop(s1);
        assert_eq!(a.pending_from(ip), 1);
        // A slot taken without an address gets it later.
        drop(s3);
        let mut late = a.begin_handshake(None).unwrap();
        assert!(!late.has_ip());
        assert_eq!(late.claim_ip(ip), Ok(()));
        assert_eq!(a.pending_from(ip), 2);
        drop((s2, late));
        assert_eq!(a.pending_from(ip), 0);
        assert!(a.pending_per_ip.0.lock().unwrap().is_empty());
        assert_eq!(a.pending.0.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn connection_slots_are_limited_and_given_back() {
        let a = admission(3, 2);
        let ip: IpAddr = "::1".parse().unwrap();
        let c: Vec<_> = (0..3).map(|_| a.claim_connection().unwrap()).collect();
        assert_eq!(a.claim_connection().err(), Some(Refusal::NodeFull));
        drop(c);
        assert!(a.claim_connection().is_ok());
        let i1 = a.claim_ip(ip).unwrap();
        let _i2 = a.claim_ip(ip).unwrap();
        assert_eq!(a.claim_ip(ip).err(), Some(Refusal::IpConnections));
        drop(i1);
        assert!(a.claim_ip(ip).is_ok());
    }
}
