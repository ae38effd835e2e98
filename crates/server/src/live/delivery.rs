//! How soon a frame reaches the LL-HLS part requests that wait for it: from the moment the
//! ingest had the frame whole (its fragment's `prft`) to the moment its bytes were written into
//! the socket of an HTTP/1.1 part request that was already waiting when it came, as a Prometheus
//! histogram, `live_llhls_part_delivery_seconds`: the server's share of a low-latency player's
//! delay at the live edge after the ingest, without the client's own scheduling or the network.
//! One observation per write, timed from the oldest frame in it (a write can carry a video and
//! an audio fragment). Not in it: the interval a TS source's video frame waits at the ingest
//! until the next one begins (a video PES has no length: only the next one ends it), frames a
//! request found already there when it came (they waited for the client, not the server), DASH
//! segments (their per-track fragments have no `prft`), and parts over HTTP/2, whose bytes go
//! through hyper's stream queues, where the server does not see them written.

use crate::response::{metric_family, metric_sample};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The buckets' upper bounds, µs.
const BOUNDS_US: [u64; 22] = [
    100, 250, 500, 1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 7_500, 10_000, 15_000, 20_000, 25_000,
    30_000, 40_000, 50_000, 75_000, 100_000, 250_000, 1_000_000, 5_000_000,
];

/// The histogram's counters (each bucket counts only its own range; rendering sums them).
#[derive(Debug, Default)]
pub(crate) struct Delivery {
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Delivery {
    /// One write, `delay` after the ingest had the oldest frame in it (rounded up to a µs, so
    /// that a bound holds only what is within it).
    pub(crate) fn record(&self, delay: Duration) {
        let us = u64::try_from(delay.as_nanos().div_ceil(1000)).unwrap_or(u64::MAX);
        let i = BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// The Prometheus histogram (`_bucket` lines cumulative, `le` in seconds).
    pub(crate) fn metrics(&self, out: &mut String) {
        let name = "live_llhls_part_delivery_seconds";
        let help = "From the ingest having a frame whole to its bytes written to an HTTP/1.1 \
                    LL-HLS part request that was waiting for it (one observation per write).";
        metric_family(out, name, "histogram", help);
        let bucket = format!("{name}_bucket");
        let mut count = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            count += n.load(Relaxed);
            let le = match BOUNDS_US.get(i) {
                Some(&us) => format!("le=\"{}\"", us as f64 / 1e6),
                None => "le=\"+Inf\"".to_string(),
            };
            metric_sample(out, &bucket, &le, count);
        }
        use std::fmt::Write;
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "zerocast_{name}_sum {sum}");
        metric_sample(out, &format!("{name}_count"), "", count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_counted_in_their_buckets_and_rendered_cumulatively_in_seconds() {
        let d = Delivery::default();
        for us in [50, 100, 101, 4_999, 5_000, 5_001, 6_000_000] {
            d.record(Duration::from_micros(us));
        }
        // A fraction of a µs over a bound is over it.
        d.record(Duration::from_nanos(100_001));
        let mut out = String::new();
        d.metrics(&mut out);
        let line = |le: &str| {
            let key = format!("zerocast_live_llhls_part_delivery_seconds_bucket{{le=\"{le}\"}} ");
            out.lines()
                .find_map(|l| l.strip_prefix(&key))
                .unwrap_or_else(|| panic!("no bucket {le} in {out}"))
                .to_string()
        };
        // A bound is inclusive: 100 µs is in le=0.0001, 101 µs in the next.
        assert_eq!(line("0.0001"), "2");
        assert_eq!(line("0.00025"), "4");
        assert_eq!(line("0.004"), "4");
        assert_eq!(line("0.005"), "6");
        assert_eq!(line("0.006"), "7");
        assert_eq!(line("5"), "7");
        assert_eq!(line("+Inf"), "8");
        assert!(out.contains("zerocast_live_llhls_part_delivery_seconds_count 8\n"));
        assert!(out.contains("zerocast_live_llhls_part_delivery_seconds_sum 6.015352\n"));
        assert!(out.contains("# TYPE zerocast_live_llhls_part_delivery_seconds histogram"));
    }
}
