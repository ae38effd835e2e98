//! Live edges: `zerocast serve --origin http://origin:8080`. A viewer asking this server for a
//! stream it does not have (`.ts`, `.flv`, `.mp4`, HLS, LL-HLS, DASH, RTMP play) makes it pull
//! the stream once from its origins, over the origin's HTTP-TS output, into its own ring, as if a
//! publisher had pushed it here: every output, the memory budget, the publisher grace and the
//! recorders work as they do for a local stream. One pull per stream however many viewers ask
//! ([`Edge::ensure`] collapses them); it stops `idle` after the last viewer left. Edges chain:
//! an origin may itself be an edge.
//!
//! - `pull.rs`: one stream's pull task: the decisions are `live::relay::Relay`'s (sans-I/O),
//!   the bytes go through the HTTP ingest loop (`crate::live::ingest`).
//! - `upstream.rs`: the connection to an origin and its response head (`live::relay::head`).
//! - `probe.rs`: whether an origin is reachable, for `/readyz`.

mod probe;
mod pull;
mod upstream;

use crate::error::Error;
use crate::live::Live;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How long a viewer waits for the origins to answer before it is refused (504).
const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// The request header naming the edges a pull came through (their ids, comma-separated): an
/// edge that finds its own id in it is asked for a stream by its own pull, a loop (508).
pub const VIA: &str = "x-zerocast-via";
/// The longest `x-zerocast-via` an edge sends on (about 28 edges): past it, the oldest edges
/// are left out (a loop longer than that is not seen as one; its pulls wait on each other
/// until their answer's time runs out).
const MAX_VIA: usize = 512;

/// `via` without its oldest edges, at most `room` bytes long (whole ids kept).
fn recent_edges(via: &str, room: usize) -> &str {
    let mut kept = via.trim();
    while kept.len() > room {
        match kept.split_once(',') {
            Some((_, newer)) => kept = newer.trim_start(),
            None => return "",
        }
    }
    kept
}

/// Edge settings (`[edge]`, `--origin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeConfig {
    /// Tried in this order.
    pub origins: Vec<Origin>,
    /// The pull stops this long after the stream's last viewer left.
    pub idle: Duration,
    /// Sent to the origins as `Authorization: Bearer` (a `read` JWT, when the origin's rules ask
    /// for one).
    pub token: Option<String>,
    /// The CAs `https://` origins are checked against (PEM; `None`: the system's bundle).
    pub ca: Option<std::path::PathBuf>,
}

/// An origin: `http[s]://host[:port][/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// As configured (shown in `/api/streams` and the logs).
    pub url: String,
    /// `host:port`, to connect to and for the `Host` header.
    pub authority: String,
    /// The host alone (the name its certificate must have, over TLS).
    pub host: String,
    /// `https://`: TLS (rustls) to the origin.
    pub tls: bool,
    /// Before `/live/...` (no trailing slash; empty for none).
    pub prefix: String,
}

impl Origin {
    /// Parses `http[s]://host[:port][/prefix]` (port 80 or 443 by default).
    pub fn parse(url: &str) -> Result<Origin, String> {
        let (tls, rest) = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            Some((scheme, _)) => {
                return Err(format!(
                    "origin '{url}': {scheme}:// is not supported (http:// or https://)"
                ))
            }
            None => return Err(format!("origin '{url}': expected http[s]://HOST[:PORT]")),
        };
        let (host, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        // `host`, `host:port`, `[v6]` or `[v6]:port`; a port is a number.
        let (name, port) = match host.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((addr, "")) => (addr, None),
                Some((addr, rest)) => match rest.strip_prefix(':') {
                    Some(p) => (addr, Some(p)),
                    None => return Err(format!("origin '{url}': bad host '{host}'")),
                },
                None => return Err(format!("origin '{url}': bad host '{host}'")),
            },
            None => match host.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (host, None),
            },
        };
        let fine = |c: char| c.is_ascii_alphanumeric() || "-._".contains(c);
        let v6 = host.starts_with('[');
        let name_ok = match v6 {
            true => name.parse::<std::net::Ipv6Addr>().is_ok(),
            false => !name.is_empty() && name.chars().all(fine),
        };
        if !name_ok {
            return Err(format!("origin '{url}': bad host '{host}'"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("origin '{url}': bad port '{p}'"))?,
            None if tls => 443,
            None => 80,
        };
        if prefix.contains(['?', '#', ' ']) {
            return Err(format!("origin '{url}': a path prefix only (no query)"));
        }
        let authority = match v6 {
            true => format!("[{name}]:{port}"),
            false => format!("{name}:{port}"),
        };
        Ok(Origin {
            url: url.to_string(),
            authority,
            host: name.to_string(),
            tls,
            prefix: prefix.to_string(),
        })
    }
}

/// Where a pull stands, for the viewers waiting on it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pulled {
    Connecting,
    /// The stream is in the registry (and fed from an origin).
    Streaming,
    /// No origin has the stream.
    Absent,
    /// No origin could be asked (unreachable, refused the edge, answered junk).
    Failed(String),
    /// This server could not take the stream (its memory budget, its stream limit).
    Busy(String),
    /// An origin's pull of the stream would come back here.
    Loop,
    /// The pull ended after it had streamed.
    Over,
}

/// One pull in progress.
#[derive(Debug)]
struct Pulling {
    id: u64,
    state: watch::Receiver<Pulled>,
}

/// The pulls of this edge.
#[derive(Debug)]
pub struct Edge {
    pub config: EdgeConfig,
    live: Arc<Live>,
    pulls: Mutex<HashMap<String, Pulling>>,
    next_id: AtomicU64,
    /// Set when the server stops: every pull ends.
    stop: watch::Sender<bool>,
    /// Whether some origin answered `/healthz` at the last probe.
    reachable: AtomicBool,
    /// The runtime pulls run on (the server's main one, once it runs).
    runtime: std::sync::OnceLock<tokio::runtime::Handle>,
    /// Upstream connections made, and those open now.
    connects: AtomicU64,
    open: AtomicU64,
    /// The TLS client for `https://` origins (`Err`: why there is none).
    tls: Result<Arc<rustls::ClientConfig>, String>,
    /// This edge in `x-zerocast-via` (random per process).
    id: String,
    /// The origin new pulls ask first: the last one a pull streamed from, or the one after an
    /// origin that failed (an origin that hangs costs one pull its wait, not every one).
    preferred: std::sync::atomic::AtomicUsize,
}

impl Edge {
    pub fn new(config: EdgeConfig, live: Arc<Live>) -> Edge {
        let tls = match config.origins.iter().any(|o| o.tls) {
            true => crate::outbound::tls_client(config.ca.as_deref()),
            false => Err("no https:// origin".into()),
        };
        if let (Err(e), true) = (&tls, config.origins.iter().any(|o| o.tls)) {
            tracing::error!(error = %e, "no TLS client for the https:// origins; pulls from them fail");
        }
        // Random enough to tell a few edges apart: the standard library's hasher keys.
        let id = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            format!("{:016x}", h.finish())
        };
        Edge {
            id,
            tls,
            config,
            live,
            pulls: Mutex::default(),
            next_id: AtomicU64::new(0),
            stop: watch::channel(false).0,
            reachable: AtomicBool::new(false),
            runtime: std::sync::OnceLock::new(),
            connects: AtomicU64::new(0),
            open: AtomicU64::new(0),
            preferred: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The server runs: pulls start on this runtime, and the origins are probed for `/readyz`
    /// until the server stops.
    pub(crate) fn run(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let _ = self.runtime.set(tokio::runtime::Handle::current());
        tokio::spawn(probe::keep_probing(self.clone()))
    }

    /// The server stops: every pull ends (its stream ends cleanly).
    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Whether an origin answered its health check lately (`/readyz`).
    pub(crate) fn reachable(&self) -> bool {
        self.reachable.load(Relaxed)
    }

    /// Makes sure the stream `name` is here, pulling it from the origins when it is not: returns
    /// once it is (or the origins said they do not have it: the caller's lookup answers 404).
    /// Concurrent callers for the same stream share one pull.
    /// `via`: the edges the request came through (`x-zerocast-via`).
    pub(crate) async fn ensure(
        self: &Arc<Self>,
        name: &str,
        via: Option<&str>,
    ) -> Result<(), Error> {
        if !crate::live::valid_name(name) {
            return Ok(());
        }
        let via = via.unwrap_or("");
        if via.split(',').any(|id| id.trim() == self.id) {
            return Err(Error::EdgeLoop(name.to_string()));
        }
        // What this edge sends on (`via, id`) fits the next one's bound: the oldest edges are
        // left out. A `via` too long for the next edge would make it refuse the pull, and
        // every viewer waiting on that pull would be refused with it (whoever sent the `via`:
        // a viewer may send one).
        let via = recent_edges(via, MAX_VIA.saturating_sub(2 + self.id.len()));
        // A stream published here is served as it is; one pulled earlier needs its pull (a
        // viewer may come back while the pull gives up, or after it did, within the grace).
        if let Some(s) = self.live.get(name) {
            let inner = s.read();
            if !inner.lifecycle.is_ended() && inner.origin.is_none() {
                return Ok(());
            }
        }
        let mut state = {
            let mut pulls = self.pulls.lock().unwrap_or_else(|p| p.into_inner());
            // A pull that is over but not yet forgotten, or whose task is gone, is replaced;
            // one that found nothing is kept for a moment (`pull::FORGET_ABSENT`) and answers
            // again without asking the origins.
            let running =
                |p: &Pulling| *p.state.borrow() != Pulled::Over && p.state.has_changed().is_ok();
            if pulls.len() >= self.live.config.max_streams && !pulls.contains_key(name) {
                // At the limit: the answers kept of pulls that found nothing go first (a flood
                // of names no origin has must not take the places of streams that exist).
                pulls.retain(|_, p| {
                    let pulling =
                        matches!(*p.state.borrow(), Pulled::Connecting | Pulled::Streaming);
                    pulling && p.state.has_changed().is_ok()
                });
            }
            match pulls.get(name) {
                Some(p) if running(p) => p.state.clone(),
                _ if pulls.len() >= self.live.config.max_streams => {
                    let why = format!("{} pulls already", pulls.len());
                    return Err(Error::EdgeBusy(name.to_string(), why));
                }
                _ => {
                    let id = self.next_id.fetch_add(1, Relaxed);
                    let (tx, rx) = watch::channel(Pulled::Connecting);
                    // Those it came through, and this edge.
                    let via = match via {
                        "" => self.id.clone(),
                        via => format!("{via}, {}", self.id),
                    };
                    let pull = pull::run(self.clone(), name.to_string(), id, tx, via);
                    match self.runtime.get() {
                        Some(rt) => drop(rt.spawn(pull)),
                        None => drop(tokio::spawn(pull)),
                    }
                    pulls.insert(
                        name.to_string(),
                        Pulling {
                            id,
                            state: rx.clone(),
                        },
                    );
                    rx
                }
            }
        };
        let answered = tokio::time::timeout(ANSWER_WAIT, async {
            loop {
                let now = state.borrow_and_update().clone();
                if now != Pulled::Connecting {
                    return now;
                }
                if state.changed().await.is_err() {
                    return Pulled::Over;
                }
            }
        })
        .await;
        match answered {
            Ok(Pulled::Failed(why)) => Err(Error::Upstream {
                stream: name.to_string(),
                why,
            }),
            Ok(Pulled::Busy(why)) => Err(Error::EdgeBusy(name.to_string(), why)),
            Ok(Pulled::Loop) => Err(Error::EdgeLoop(name.to_string())),
            Ok(_) => Ok(()),
            Err(_) => Err(Error::UpstreamTimeout(name.to_string(), ANSWER_WAIT)),
        }
    }

    /// Whether a viewer of `name` finds the stream here without a pull (RTMP play waits for
    /// [`Edge::ensure`] otherwise).
    pub(crate) fn here(&self, name: &str) -> bool {
        let pulling = || {
            let pulls = self.pulls.lock().unwrap_or_else(|p| p.into_inner());
            pulls.contains_key(name)
        };
        self.live.get(name).is_some_and(|s| {
            let inner = s.read();
            !inner.lifecycle.is_ended() && (inner.origin.is_none() || pulling())
        })
    }

    /// A pull ended: forgotten, unless a newer one of the same stream has replaced it (a task's
    /// end, through `pull::Forget`).
    fn forget(&self, name: &str, id: u64) {
        let mut pulls = self.pulls.lock().unwrap_or_else(|p| p.into_inner());
        if pulls.get(name).is_some_and(|p| p.id == id) {
            pulls.remove(name);
        }
    }

    /// The edge's Prometheus families.
    pub(crate) fn metrics(&self, out: &mut String) {
        use crate::response::metric;
        let pulls = self.pulls.lock().unwrap_or_else(|p| p.into_inner()).len();
        metric(
            out,
            "edge_pulls",
            "gauge",
            "Streams this edge pulls from its origins now.",
            pulls as u64,
        );
        metric(
            out,
            "edge_upstream_connections",
            "gauge",
            "Connections to origins open now.",
            self.open.load(Relaxed),
        );
        metric(
            out,
            "edge_upstream_connects_total",
            "counter",
            "Connections to origins made.",
            self.connects.load(Relaxed),
        );
        let up = u64::from(self.reachable());
        metric(
            out,
            "edge_origin_reachable",
            "gauge",
            "1 when an origin answered its health check lately.",
            up,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_is_an_http_or_https_base_url() {
        let o = Origin::parse("http://10.0.0.5:8080").unwrap();
        assert_eq!(
            (o.authority.as_str(), o.prefix.as_str()),
            ("10.0.0.5:8080", "")
        );
        assert_eq!((o.host.as_str(), o.tls), ("10.0.0.5", false));
        let o = Origin::parse("http://origin.example/zc/").unwrap();
        assert_eq!(
            (o.authority.as_str(), o.prefix.as_str()),
            ("origin.example:80", "/zc")
        );
        let o = Origin::parse("http://[::1]:9000").unwrap();
        assert_eq!(
            (o.authority.as_str(), o.host.as_str()),
            ("[::1]:9000", "::1")
        );
        let o = Origin::parse("http://[::1]").unwrap();
        assert_eq!(o.authority, "[::1]:80");
        let o = Origin::parse("https://origin.example").unwrap();
        assert_eq!(
            (o.authority.as_str(), o.host.as_str(), o.tls),
            ("origin.example:443", "origin.example", true)
        );
    }

    #[test]
    fn an_origin_that_cannot_be_pulled_from_says_why() {
        for (bad, why) in [
            ("rtmp://o:1935", "not supported"),
            ("o:8080", "expected http"),
            ("http://", "bad host"),
            ("http://a b", "bad host"),
            ("http://o/x?y", "no query"),
            ("http://]", "bad host"),
            ("http://]:80", "bad host"),
            ("http://[::1", "bad host"),
            ("http://::1", "bad host"),
            ("http://h:abc", "bad port"),
            ("http://h:80:1", "bad port"),
            ("http://[zz]:80", "bad host"),
        ] {
            let e = Origin::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
