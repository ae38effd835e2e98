//! Server settings.

use crate::cors::Cors;
use crate::entity::Policy;
use crate::live::LiveConfig;
use std::net::SocketAddr;
use std::time::Duration;

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Length of the accept queue asked of the kernel.
    pub listen_backlog: u32,
    /// A connection that has not sent a complete request head within this time is closed. hyper
    /// uses the same timer for idle keep-alive connections, and starts it once a response has been
    /// handed to the kernel, while a slow client may still be receiving it: so it is not short
    /// (nginx: 60 s for headers, 75 s keep-alive).
    pub header_read_timeout: Duration,
    /// A response whose socket takes no bytes for this long is closed with a reset (the client
    /// stopped reading; like a live viewer's `stall_timeout`). Fast path and hyper alike.
    pub send_timeout: Duration,
    /// Most open connections (HTTP and RTMP together); more get a fast `503` (HTTP) or are closed
    /// (RTMP). `None`: the descriptor limit less what is open at start and a margin (accept.rs).
    pub max_connections: Option<usize>,
    /// How long in-flight responses may run after a shutdown signal.
    pub shutdown_grace: Duration,
    /// On SIGTERM or a drain request: how long `/readyz` answers 503 while everything is still
    /// served, so that load balancers stop sending new clients, before accepting stops.
    pub drain_delay: Duration,
    pub policy: Policy,
    /// Which origins' pages may read responses (CORS); `*` by default.
    pub cors: Cors,
    /// The control API's bearer token (`DELETE /api/streams/...`); `None`: the API is off.
    pub admin_token: Option<String>,
    /// The read-only API (JSON, `/metrics`) needs the admin token too.
    pub private_api: bool,
    /// Per-stream credentials for publishing and watching, and the JWT keys (`auth`).
    pub auth: crate::auth::Rules,
    /// HTTP callbacks (`on_publish`, `on_play`, `on_unpublish`); `None`: none.
    pub hooks: Option<crate::auth::hooks::Hooks>,
    /// Paths served only with a signed link (`auth::signed`); `None`: none.
    pub signed: Option<crate::auth::signed::Signed>,
    pub live: LiveConfig,
    /// Which live streams are recorded into the library, and how (`[[record]]`); read when a
    /// stream starts. Only a restart changes them (a reload keeps them, `reload::needs_restart`).
    pub record: Vec<RecordRule>,
    /// Plain HTTP on `listen` (off: HTTPS only).
    pub plain_http: bool,
    /// HTTPS (and RTMPS) with rustls (`None`: off).
    pub tls: Option<crate::tls::TlsConfig>,
    /// Live edge: streams not here are pulled from these origins (`None`: not an edge).
    pub edge: Option<crate::edge::EdgeConfig>,
    /// Library titles in S3-compatible object storage (`library = "s3://..."`); read by the
    /// binary when it starts the server (`Server::set_stores`).
    pub store: crate::store::StoreConfig,
    /// Where RTMP publishers connect (`None`: no RTMP).
    pub rtmp_listen: Option<SocketAddr>,
    /// Worker threads, each a single-threaded runtime that owns the connections handed to it
    /// (`None`: one per core; `Some(0)`: no workers, connections are tasks of the runtime that
    /// calls [`Server::run`], work-stealing between its threads). See workers.rs.
    pub workers: Option<usize>,
}

impl Config {
    /// How many worker threads [`Config::workers`] asks for.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(crate::live::fanout::cores)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            listen_backlog: 16384,
            header_read_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(15),
            max_connections: None,
            shutdown_grace: Duration::from_secs(10),
            drain_delay: Duration::ZERO,
            policy: Policy::default(),
            cors: Cors::default(),
            admin_token: None,
            private_api: false,
            signed: None,
            auth: crate::auth::Rules::default(),
            hooks: None,
            live: LiveConfig::default(),
            record: Vec::new(),
            plain_http: true,
            tls: None,
            edge: None,
            store: crate::store::StoreConfig::default(),
            rtmp_listen: Some(SocketAddr::from(([0, 0, 0, 0], 1935))),
            workers: None,
        }
    }
}

/// One `[[record]]` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRule {
    /// A stream name, or a pattern with one `*`.
    pub streams: String,
    /// The directory of this rule's recordings (inside the library); each stream has its own
    /// directory in it.
    pub dir: std::path::PathBuf,
    /// That directory's path inside the library (`/`-separated): the start of the titles' ids.
    pub id_prefix: String,
    /// TS (the ring's bytes as ingested) or fragmented MP4.
    pub format: live::record::Format,
    pub rotation: live::record::Rotation,
    pub keep: live::record::retention::Keep,
    /// Each finished file is also put into this bucket (`s3://bucket/prefix`; its key: the
    /// prefix, then the file's title id), completed from the environment by the binary.
    pub upload: Option<crate::store::S3Source>,
}

impl RecordRule {
    /// Whether this rule is the one that records `stream`, of the settings' `rules` (the first
    /// that matches its name). Rules may share a directory: retention and uploads take only
    /// the stream folders their rule records, and a folder no rule records now is left alone.
    pub(crate) fn records(&self, rules: &[RecordRule], stream: &str) -> bool {
        rules
            .iter()
            .find(|r| crate::auth::jwt::matches(&r.streams, stream))
            .is_some_and(|r| r.streams == self.streams && r.dir == self.dir)
    }

    /// The directory of `stream`'s recordings and the start of their ids.
    pub(crate) fn of_stream(&self, stream: &str) -> (std::path::PathBuf, String) {
        let prefix = if self.id_prefix.is_empty() {
            stream.to_string()
        } else {
            format!("{}/{stream}", self.id_prefix)
        };
        (self.dir.join(stream), prefix)
    }
}
