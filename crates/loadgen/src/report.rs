//! The counters viewers and publishers update ([`ViewerStats`], [`Shared`]), what is read of
//! them and of the server at the two ends of the measurement window ([`Sample`]), and the JSON
//! report made of the difference ([`json`]), which bench/summarize_live.py and
//! bench/summarize_rtmp.py read.

use crate::http::api_all;
use crate::procfs::{proc_cpu, procs_cpu};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One viewer's counters.
#[derive(Default)]
pub struct ViewerStats {
    pub bytes: AtomicU64,
    pub gaps: AtomicU64,
    /// Microseconds from the request to the first keyframe (0: none yet).
    pub first_keyframe_us: AtomicU64,
    pub failed: AtomicBool,
    pub ended: AtomicBool,
}

/// What all viewers and publishers share.
#[derive(Default)]
pub struct Shared {
    pub stop: AtomicBool,
    /// Mark to read time, TS viewers.
    pub latencies_us: Mutex<Vec<u32>>,
    /// Mark to kernel receive timestamp, TS viewers.
    pub arrivals_us: Mutex<Vec<u32>>,
    /// Mark to read time, LL-HLS: only frames that reached the ingest while the part request
    /// was already waiting (not those that came before the client asked for their part).
    pub waiting_us: Mutex<Vec<u32>>,
}

/// Counters read at one end of the measurement window.
pub struct Sample {
    /// CPU seconds of the server's processes (`None` without `--server-pid`).
    pub server_cpu: Option<f64>,
    /// CPU seconds of this process.
    pub self_cpu: Option<f64>,
    /// Bytes each viewer has read.
    pub bytes: Vec<u64>,
    /// Gaps all viewers have seen.
    pub gaps: u64,
    /// The server's counters for the streams ([`api_sum`]).
    pub api: HashMap<&'static str, u64>,
}

impl Sample {
    pub async fn take(
        addr: SocketAddr,
        streams: &[String],
        server_pid: &[u32],
        stats: &[Arc<ViewerStats>],
    ) -> Self {
        let server_cpu = procs_cpu(server_pid);
        let self_cpu = proc_cpu(std::process::id());
        let bytes = stats.iter().map(|s| s.bytes.load(Relaxed)).collect();
        let gaps = stats.iter().map(|s| s.gaps.load(Relaxed)).sum();
        let api = api_sum(addr, streams).await;
        Sample {
            server_cpu,
            self_cpu,
            bytes,
            gaps,
            api,
        }
    }
}

/// Counters summed over the given streams (max for max_lag_units).
async fn api_sum(addr: SocketAddr, names: &[String]) -> HashMap<&'static str, u64> {
    let mut out = HashMap::new();
    for d in api_all(addr).await.unwrap_or_default() {
        if !names.iter().any(|n| d["name"] == n.as_str()) {
            continue;
        }
        for k in ["skips", "slow_disconnects", "stalled_disconnects"] {
            *out.entry(k).or_insert(0) += d[k].as_u64().unwrap_or(0);
        }
        let m = out.entry("max_lag_units").or_insert(0);
        *m = (*m).max(d["max_lag_units"].as_u64().unwrap_or(0));
    }
    out
}

/// Bytes the publishers sent, and how many of them the server did not count (`bytes_in`), in
/// all: `(sent, lost)`.
pub async fn ingest(addr: SocketAddr, streams: &[String], sent: &[Arc<AtomicU64>]) -> (u64, u64) {
    let docs = api_all(addr).await.unwrap_or_default();
    let mut ingest_loss = 0u64;
    let mut ingest_sent = 0u64;
    for (name, sent) in streams.iter().zip(sent) {
        let got = docs
            .iter()
            .find(|d| d["name"] == name.as_str())
            .and_then(|d| d["bytes_in"].as_u64())
            .unwrap_or(0);
        let sent = sent.load(Relaxed);
        ingest_sent += sent;
        ingest_loss += sent.saturating_sub(got);
    }
    (ingest_sent, ingest_loss)
}

/// Everything the report is made of.
pub struct Window<'a> {
    pub viewers: usize,
    /// How long connecting all viewers took.
    pub connected_in: Duration,
    /// The measurement window, seconds.
    pub wall: f64,
    pub before: &'a Sample,
    pub after: &'a Sample,
    /// The server's RSS at the end, KiB (`None` without `--server-pid`).
    pub rss: Option<u64>,
    pub stats: &'a [Arc<ViewerStats>],
    /// Latency samples of the window, microseconds.
    pub latencies_us: Vec<u32>,
    pub arrivals_us: Vec<u32>,
    pub waiting_us: Vec<u32>,
    pub publishers: usize,
    pub ingest_sent: u64,
    pub ingest_lost: u64,
}

/// The `p` quantile (0..=1, nearest rank) of sorted microseconds, in milliseconds.
fn pct(v: &[u64], p: f64) -> Option<f64> {
    (!v.is_empty()).then(|| v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0)
}

/// The JSON report.
pub fn json(w: Window<'_>) -> serde_json::Value {
    let Window {
        viewers,
        connected_in,
        wall,
        before,
        after,
        rss,
        stats,
        mut latencies_us,
        mut arrivals_us,
        mut waiting_us,
        publishers,
        ingest_sent,
        ingest_lost,
    } = w;
    latencies_us.sort_unstable();
    arrivals_us.sort_unstable();
    waiting_us.sort_unstable();
    let mut ttfk: Vec<u64> = stats
        .iter()
        .map(|s| s.first_keyframe_us.load(Relaxed))
        .filter(|&t| t > 0)
        .collect();
    ttfk.sort_unstable();
    let failed = stats.iter().filter(|s| s.failed.load(Relaxed)).count();
    let ended = stats.iter().filter(|s| s.ended.load(Relaxed)).count();
    let viewers_with_gaps = stats.iter().filter(|s| s.gaps.load(Relaxed) > 0).count();
    let bytes0: u64 = before.bytes.iter().sum();
    let bytes1: u64 = after.bytes.iter().sum();
    let mut per_viewer: Vec<f64> = after
        .bytes
        .iter()
        .zip(&before.bytes)
        .map(|(b, a)| (b - a) as f64 * 8.0 / wall / 1e6)
        .collect();
    per_viewer.sort_by(f64::total_cmp);
    let lat64: Vec<u64> = latencies_us.iter().map(|&x| u64::from(x)).collect();
    let arr64: Vec<u64> = arrivals_us.iter().map(|&x| u64::from(x)).collect();
    let wait64: Vec<u64> = waiting_us.iter().map(|&x| u64::from(x)).collect();
    let (api0, api1) = (&before.api, &after.api);
    let delta = |k: &str| api1.get(k).copied().unwrap_or(0) - api0.get(k).copied().unwrap_or(0);
    let percent = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => Some((b - a) / wall * 100.0),
        _ => None,
    };
    serde_json::json!({
        "viewers": viewers,
        "connected_in_seconds": connected_in.as_secs_f64(),
        "measured_seconds": wall,
        "failed": failed,
        "ended_by_server": ended,
        "viewers_with_gaps_total": viewers_with_gaps,
        "gaps_in_window": after.gaps - before.gaps,
        "throughput_mbit_s": (bytes1 - bytes0) as f64 * 8.0 / wall / 1e6,
        "per_viewer_mbit_s_min": per_viewer.first(),
        "per_viewer_mbit_s_median": per_viewer.get(per_viewer.len() / 2),
        "time_to_first_keyframe_ms": {"p50": pct(&ttfk, 0.5), "p99": pct(&ttfk, 0.99), "max": pct(&ttfk, 1.0), "count": ttfk.len()},
        "latency_ms": {"p50": pct(&lat64, 0.5), "p99": pct(&lat64, 0.99), "max": pct(&lat64, 1.0), "samples": lat64.len()},
        "arrival_latency_ms": {"p50": pct(&arr64, 0.5), "p99": pct(&arr64, 0.99), "max": pct(&arr64, 1.0), "samples": arr64.len()},
        "waiting_request_latency_ms": {"p50": pct(&wait64, 0.5), "p99": pct(&wait64, 0.99), "max": pct(&wait64, 1.0), "samples": wait64.len()},
        "server_cpu_percent": percent(before.server_cpu, after.server_cpu),
        "server_rss_kib": rss,
        "load_client_cpu_percent": percent(before.self_cpu, after.self_cpu),
        "server_skips_in_window": delta("skips"),
        "server_slow_disconnects_in_window": delta("slow_disconnects"),
        "server_stalled_disconnects_in_window": delta("stalled_disconnects"),
        "server_max_lag_units": api1.get("max_lag_units"),
        "publishers": publishers,
        "ingest_bytes_sent": ingest_sent,
        "ingest_bytes_lost": ingest_lost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pct_is_nearest_rank_in_ms() {
        assert_eq!(pct(&[], 0.5), None);
        let v = [1000, 2000, 3000, 4000, 5000];
        assert_eq!(pct(&v, 0.0), Some(1.0));
        assert_eq!(pct(&v, 0.5), Some(3.0));
        assert_eq!(pct(&v, 0.99), Some(5.0));
        assert_eq!(pct(&v, 1.0), Some(5.0));
    }

    fn sample(bytes: Vec<u64>, gaps: u64, cpu: f64, skips: u64) -> Sample {
        Sample {
            server_cpu: Some(cpu),
            self_cpu: None,
            bytes,
            gaps,
            api: HashMap::from([("skips", skips), ("max_lag_units", 4)]),
        }
    }

    #[test]
    fn report_of_a_window() {
        let stats: Vec<Arc<ViewerStats>> = (0..2).map(|_| Arc::default()).collect();
        stats[0].first_keyframe_us.store(150_000, Relaxed);
        stats[1].gaps.store(1, Relaxed);
        stats[1].ended.store(true, Relaxed);
        let before = sample(vec![0, 1_000_000], 0, 1.0, 2);
        let after = sample(vec![2_500_000, 2_000_000], 1, 1.5, 5);
        let r = json(Window {
            viewers: 2,
            connected_in: Duration::from_millis(250),
            wall: 2.0,
            before: &before,
            after: &after,
            rss: Some(1234),
            stats: &stats,
            latencies_us: vec![30_000, 10_000, 20_000],
            arrivals_us: vec![],
            waiting_us: vec![],
            publishers: 1,
            ingest_sent: 10,
            ingest_lost: 0,
        });
        assert_eq!(r["viewers"], 2);
        assert_eq!(r["connected_in_seconds"], 0.25);
        assert_eq!(r["failed"], 0);
        assert_eq!(r["ended_by_server"], 1);
        assert_eq!(r["viewers_with_gaps_total"], 1);
        assert_eq!(r["gaps_in_window"], 1);
        assert_eq!(r["throughput_mbit_s"], 14.0);
        assert_eq!(r["per_viewer_mbit_s_min"], 4.0);
        assert_eq!(r["per_viewer_mbit_s_median"], 10.0);
        assert_eq!(r["time_to_first_keyframe_ms"]["p50"], 150.0);
        assert_eq!(r["time_to_first_keyframe_ms"]["count"], 1);
        assert_eq!(r["latency_ms"]["p50"], 20.0);
        assert_eq!(r["latency_ms"]["max"], 30.0);
        assert_eq!(r["latency_ms"]["samples"], 3);
        assert!(r["arrival_latency_ms"]["p50"].is_null());
        assert_eq!(r["server_cpu_percent"], 25.0);
        assert!(r["load_client_cpu_percent"].is_null());
        assert_eq!(r["server_rss_kib"], 1234);
        assert_eq!(r["server_skips_in_window"], 3);
        assert_eq!(r["server_slow_disconnects_in_window"], 0);
        assert_eq!(r["server_max_lag_units"], 4);
        assert_eq!(r["publishers"], 1);
        assert_eq!(r["ingest_bytes_sent"], 10);
    }
}
