//! Open connections: the cap (`Config::max_connections`; by default the descriptor limit less
//! the descriptors open at start and a margin), the count (an [`Admitted`] per connection), and
//! their `/metrics` families. The accept loops (accept.rs) admit and refuse.

use crate::response::metric;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

/// Descriptors left over for everything that is not a connection (logs, the reserve, a refused
/// connection's moment) when the cap is derived from the descriptor limit.
const FD_MARGIN: usize = 32;

/// The connections of a server: how many are open, the cap, and the counters of `/metrics`.
#[derive(Debug)]
pub struct Conns {
    open: AtomicUsize,
    /// The cap; a reload may change it (connections over a lowered cap stay).
    max: AtomicUsize,
    refused: AtomicU64,
    accept_errors: AtomicU64,
}

/// One admitted connection; it counts as open until dropped.
#[derive(Debug)]
pub(crate) struct Admitted(Arc<Conns>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

impl Conns {
    /// `max`: the cap, or `None` for the descriptor limit less what is open now and a margin.
    pub(crate) fn new(max: Option<usize>) -> Self {
        Conns {
            open: AtomicUsize::new(0),
            max: AtomicUsize::new(max.unwrap_or_else(default_max)),
            refused: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
        }
    }

    /// Counts a new connection in, unless the cap is reached.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let admitted = self
            .open
            .fetch_update(Relaxed, Relaxed, |n| (n < self.max()).then_some(n + 1))
            .is_ok();
        admitted.then(|| Admitted(self.clone()))
    }

    pub(crate) fn max(&self) -> usize {
        self.max.load(Relaxed)
    }

    /// A new cap (a reload); `None` keeps the one in force (the default is derived from the
    /// descriptors open at start, which a running server cannot measure again).
    pub(crate) fn set_max(&self, max: Option<usize>) {
        if let Some(m) = max {
            self.max.store(m, Relaxed);
        }
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

/// The soft descriptor limit, less the descriptors open now, [`FD_MARGIN`] and a few per core
/// for the worker runtimes.
fn default_max() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let open = std::fs::read_dir("/proc/self/fd").map_or(64, |d| d.count());
    // The worker runtimes, started after this, take a few each (epoll, wake-up and timer fds).
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    limit.saturating_sub(open + FD_MARGIN + 4 * workers).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_admits_up_to_max_and_a_closed_connection_makes_room() {
        let c = Arc::new(Conns::new(Some(2)));
        let a = c.admit().expect("first");
        let _b = c.admit().expect("second");
        assert!(c.admit().is_none(), "over the cap");
        drop(a);
        assert!(c.admit().is_some(), "room again");
    }

    #[test]
    fn the_default_cap_stays_under_the_descriptor_limit() {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        let max = default_max() as u64;
        assert!(
            max >= 1 && max + FD_MARGIN as u64 <= limit,
            "{max} of {limit}"
        );
    }
}
