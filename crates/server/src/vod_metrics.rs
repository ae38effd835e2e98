//! The VOD families of `/metrics`: `/videos/*` answers by status class and their body bytes
//! (counted where the fast path and hyper both get their answer, `http::handle`), and the
//! library's gauges (titles, bytes, bytes cached in memory).

use crate::library::Library;
use crate::response::{metric, metric_family, metric_sample};
use http::StatusCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The status classes counted, in the order of [`VodMetrics::requests`].
const CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// Counters of `/videos/*` answers.
#[derive(Debug, Default)]
pub(crate) struct VodMetrics {
    requests: [AtomicU64; 4],
    body_bytes: AtomicU64,
}

impl VodMetrics {
    /// One `/videos/*` answer with `status` and a body of `body_bytes` (0 for HEAD).
    pub(crate) fn answered(&self, status: StatusCode, body_bytes: u64) {
        if let Some(c) = (status.as_u16() / 100)
            .checked_sub(2)
            .and_then(|i| self.requests.get(usize::from(i)))
        {
            c.fetch_add(1, Relaxed);
        }
        self.body_bytes.fetch_add(body_bytes, Relaxed);
    }

    /// The Prometheus families of VOD and the library.
    pub(crate) fn metrics(&self, lib: &Library, out: &mut String) {
        let requests = "vod_requests_total";
        let help = "Answers to /videos/* requests, by status class.";
        metric_family(out, requests, "counter", help);
        for (class, n) in CLASSES.iter().zip(&self.requests) {
            metric_sample(
                out,
                requests,
                &format!("class=\"{class}\""),
                n.load(Relaxed),
            );
        }
        let (mut bytes, mut cached, mut packaged) = (0u64, 0u64, 0u64);
        for t in lib.titles() {
            bytes += t.len();
            if t.cached {
                cached += t.len();
            }
            packaged += t.package_memory() as u64;
        }
        for (name, kind, help, value) in [
            (
                "vod_body_bytes_total",
                "counter",
                "Body bytes of /videos/* answers (sendfile, writev or hyper; counted in full \
                 when answered).",
                self.body_bytes.load(Relaxed),
            ),
            (
                "vod_read_in_bytes_total",
                "counter",
                "Bytes of titles mapped from disk that were not in the page cache and were read \
                 in off the workers before being sent (sendfile on HTTP/1.1).",
                crate::pagein::READ_IN.load(Relaxed),
            ),
            (
                "library_truncated_reads_total",
                "counter",
                "Reads of a title mapped from its file that found the file cut short under it \
                 (read as zeros; the request failed and the library was rescanned).",
                crate::truncated::FAULTS.load(Relaxed),
            ),
            (
                "library_titles",
                "gauge",
                "Titles in the library.",
                lib.len() as u64,
            ),
            ("library_bytes", "gauge", "Bytes of all titles.", bytes),
            (
                "library_cached_bytes",
                "gauge",
                "Bytes of titles held in memory (the rest is mapped from the files).",
                cached,
            ),
            (
                "library_package_bytes",
                "gauge",
                "Bytes held for clips, HLS and DASH beyond the titles' own (MP4 sample tables, \
                 segment heads), outside the cache budget.",
                packaged,
            ),
        ] {
            metric(out, name, kind, help, value);
        }
    }
}

/// The Prometheus families of object storage.
pub(crate) fn stores(stores: &crate::store::Stores, out: &mut String) {
    let s = &stores.blocks.stats;
    let load = |a: &AtomicU64| a.load(Relaxed);
    for (name, kind, help, v) in [
        (
            "s3_requests_total",
            "counter",
            "Requests made to object storage (each try).",
            load(&s.requests),
        ),
        (
            "s3_request_failures_total",
            "counter",
            "Requests to object storage that failed after their tries.",
            load(&s.failures),
        ),
        (
            "s3_block_hits_total",
            "counter",
            "Block reads served from the block cache.",
            load(&s.hits),
        ),
        (
            "s3_block_misses_total",
            "counter",
            "Block reads that fetched the block.",
            load(&s.misses),
        ),
        (
            "s3_block_collapsed_total",
            "counter",
            "Block reads that waited on a fetch already under way.",
            load(&s.collapsed),
        ),
        (
            "s3_block_read_ahead_total",
            "counter",
            "Blocks fetched ahead of a viewer reading on.",
            load(&s.read_ahead),
        ),
        (
            "s3_block_evictions_total",
            "counter",
            "Blocks let go to stay within the cache's bytes.",
            load(&s.evictions),
        ),
        (
            "s3_block_sendfile_bytes_total",
            "counter",
            "Bytes of cached blocks sent with sendfile from the block cache's memfd.",
            stores.blocks.arena.as_ref().map_or(0, |a| load(&a.sent)),
        ),
        (
            "s3_cache_bytes",
            "gauge",
            "Bytes of object-storage blocks held in memory.",
            stores.blocks.held(),
        ),
    ] {
        metric(out, name, kind, help, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_count_by_status_class_and_body_bytes_add_up() {
        let m = VodMetrics::default();
        m.answered(StatusCode::PARTIAL_CONTENT, 100);
        m.answered(StatusCode::NOT_MODIFIED, 0);
        m.answered(StatusCode::RANGE_NOT_SATISFIABLE, 50);
        m.answered(StatusCode::CONTINUE, 0);
        let mut out = String::new();
        m.metrics(
            &Library::from_static(&[], std::time::SystemTime::now()),
            &mut out,
        );
        for line in [
            "zerocast_vod_requests_total{class=\"2xx\"} 1",
            "zerocast_vod_requests_total{class=\"3xx\"} 1",
            "zerocast_vod_requests_total{class=\"4xx\"} 1",
            "zerocast_vod_requests_total{class=\"5xx\"} 0",
            "zerocast_vod_body_bytes_total 150",
            "zerocast_library_titles 0",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
    }
}
