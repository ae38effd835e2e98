//! Open connections: the cap (`Config::max_connections`; by default the descriptor limit less
//! the descriptors open at start and a margin), the count (an [`Admitted`] per connection), and
//! their `/metrics` families. The accept loops (accept.rs) admit and refuse.
//!
//! One client address (an IPv6 one by its /64: a host has a whole prefix) may hold at most a
//! quarter of the cap ([`PER_ADDRESS_SHARE`]), so that one client cannot take every connection
//! and shut out publishers and viewers. Loopback is not limited: a proxy in front on the same
//! machine (nginx, Varnish) brings every client from there.

use crate::response::metric;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// The share of the cap one client address may hold: one in this many.
pub const PER_ADDRESS_SHARE: usize = 4;

/// Descriptors left over for everything that is not a connection (logs, the reserve, a refused
/// connection's moment) when the cap is derived from the descriptor limit.
const FD_MARGIN: usize = 32;

/// The connections of a server: how many are open, the cap, and the counters of `/metrics`.
#[derive(Debug)]
pub struct Conns {
    open: AtomicUsize,
    /// The cap; a reload may change it (connections over a lowered cap stay).
    max: AtomicUsize,
    /// The cap without `max_connections`, as worked out at start (a reload that removes the
    /// setting goes back to it).
    default: usize,
    refused: AtomicU64,
    /// Of them, refused for their address's share.
    refused_address: AtomicU64,
    accept_errors: AtomicU64,
    /// Open connections per client address (loopback aside), as [`key`] has it.
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

/// The address a client's connections are counted under: IPv4 as it is, IPv6 by its /64;
/// `None` for loopback.
fn key(peer: IpAddr) -> Option<IpAddr> {
    match peer.to_canonical() {
        a if a.is_loopback() => None,
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            Some(IpAddr::V6(prefix.into()))
        }
        v4 => Some(v4),
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The cap is reached.
    Cap,
    /// Its client address holds its share of the cap.
    Address,
}

/// One admitted connection; it counts as open until dropped.
#[derive(Debug)]
pub(crate) struct Admitted(Arc<Conns>, Option<IpAddr>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
        if let Some(k) = self.1 {
            let mut per = self.0.per_address.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = per.get_mut(&k) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per.remove(&k);
                }
            }
        }
    }
}

impl Conns {
    /// `max`: the cap, or `None` for the descriptor limit less what is open now and a margin
    /// (`workers`: the worker threads to be started, which take a few descriptors each).
    pub(crate) fn new(max: Option<usize>, workers: usize) -> Self {
        let default = default_max(workers);
        Conns {
            open: AtomicUsize::new(0),
            max: AtomicUsize::new(max.unwrap_or(default)),
            default,
            refused: AtomicU64::new(0),
            refused_address: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            per_address: Mutex::default(),
        }
    }

    /// Counts a new connection from `peer` in, unless the cap or its address's share of it is
    /// reached.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admitted, Refused> {
        let admitted = self
            .open
            .fetch_update(Relaxed, Relaxed, |n| (n < self.max()).then_some(n + 1))
            .is_ok();
        if !admitted {
            return Err(Refused::Cap);
        }
        let k = key(peer);
        if let Some(k) = k {
            let share = (self.max() / PER_ADDRESS_SHARE).max(1);
            let mut per = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
            let n = per.entry(k).or_insert(0);
            if *n >= share {
                drop(per);
                self.open.fetch_sub(1, Relaxed);
                self.refused_address.fetch_add(1, Relaxed);
                return Err(Refused::Address);
            }
            *n += 1;
        }
        Ok(Admitted(self.clone(), k))
    }

    pub(crate) fn max(&self) -> usize {
        self.max.load(Relaxed)
    }

    /// A new cap (a reload); `None` goes back to the default worked out at start (from the
    /// descriptors open then, which a running server cannot measure again).
    pub(crate) fn set_max(&self, max: Option<usize>) {
        self.max.store(max.unwrap_or(self.default), Relaxed);
    }

    /// A connection was refused (over the cap, or out of descriptors).
    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Relaxed);
    }

    /// An accept call failed.
    pub(crate) fn accept_failed(&self) {
        self.accept_errors.fetch_add(1, Relaxed);
    }

    /// The Prometheus families of the connections.
    pub(crate) fn metrics(&self, out: &mut String) {
        for (name, kind, help, value) in [
            (
                "open",
                "gauge",
                "Open connections (HTTP and RTMP).",
                self.open.load(Relaxed) as u64,
            ),
            (
                "max",
                "gauge",
                "Connection cap; over it, new connections get a fast 503.",
                self.max() as u64,
            ),
            (
                "refused_total",
                "counter",
                "Connections refused (over the cap, or out of descriptors).",
                self.refused.load(Relaxed),
            ),
            (
                "refused_address_total",
                "counter",
                "Of the refused connections, those over their client address's share of the cap.",
                self.refused_address.load(Relaxed),
            ),
            (
                "accept_errors_total",
                "counter",
                "Failed accept calls.",
                self.accept_errors.load(Relaxed),
            ),
        ] {
            metric(out, &format!("connections_{name}"), kind, help, value);
        }
    }
}

/// The soft descriptor limit, less the descriptors open now, [`FD_MARGIN`] and a few for each
/// of the `workers` runtimes, started after this (as configured: not one per core where fewer
/// are asked for).
fn default_max(workers: usize) -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let open = std::fs::read_dir("/proc/self/fd").map_or(64, |d| d.count());
    cap_within(limit, open, workers)
}

/// The cap that `limit` descriptors leave with `open` open and `workers` runtimes to start.
fn cap_within(limit: usize, open: usize, workers: usize) -> usize {
    // The worker runtimes take a few each (epoll, wake-up and timer fds).
    let kept = open
        .saturating_add(FD_MARGIN)
        .saturating_add(workers.saturating_mul(4));
    limit.saturating_sub(kept).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_admits_up_to_max_and_a_closed_connection_makes_room() {
        let c = Arc::new(Conns::new(Some(2), 1));
        let here = IpAddr::from([127, 0, 0, 1]);
        let a = c.admit(here).expect("first");
        let _b = c.admit(here).expect("second");
        assert!(c.admit(here).is_err(), "over the cap");
        drop(a);
        assert!(c.admit(here).is_ok(), "room again");
        // A reload that removes `max_connections` goes back to the default cap.
        c.set_max(None);
        assert_eq!(c.max.load(Relaxed), c.default);
        assert!(c.default >= 1);
    }

    #[test]
    fn one_address_holds_at_most_a_quarter_of_the_cap_and_an_ipv6_host_is_its_64() {
        let c = Arc::new(Conns::new(Some(8), 1));
        let one = IpAddr::from([203, 0, 113, 9]);
        let held: Vec<_> = (0..2)
            .map(|_| c.admit(one).expect("within its share"))
            .collect();
        assert!(c.admit(one).is_err(), "a third is over a quarter of 8");
        assert!(
            c.admit(IpAddr::from([203, 0, 113, 10])).is_ok(),
            "others get in"
        );
        let v6 = |last: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]);
        let _six: Vec<_> = (1..3)
            .map(|i| c.admit(v6(i)).expect("a /64's share"))
            .collect();
        assert!(c.admit(v6(3)).is_err(), "another address of the same /64");
        let mapped = IpAddr::from([0, 0, 0, 0, 0, 0xffff, 0xcb00, 0x7109]);
        assert!(c.admit(mapped).is_err(), "203.0.113.9 as IPv4-mapped IPv6");
        drop(held);
        assert!(
            c.admit(one).is_ok(),
            "room again once its connections closed"
        );
        let here = IpAddr::from([127, 0, 0, 1]);
        let _local: Vec<_> = (0..2).map(|_| c.admit(here).expect("loopback")).collect();
    }

    #[test]
    fn the_default_cap_stays_under_the_descriptor_limit() {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        let max = default_max(2) as u64;
        assert!(
            max >= 1 && max + FD_MARGIN as u64 + 8 <= limit,
            "{max} of {limit}"
        );
        // The workers configured are what is kept for, not the cores; never under one.
        assert_eq!(cap_within(760, 20, 2), 760 - 20 - 32 - 8);
        assert_eq!(cap_within(760, 20, 64), 760 - 20 - 32 - 256);
        assert_eq!(cap_within(128, 20, 64), 1);
    }
}
