//! The `serve` config file (`--config zerocast.toml`): its schema (`FileConfig`, strict: unknown
//! keys are refused) and its merge with the `serve` flags into the server's settings (`merge`,
//! `apply_live`). Flags win over the file, the file over the server's defaults.

mod access;
mod edge;
mod record;
mod store;

use crate::cli::{LogFormat, ServeArgs};
use crate::size;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use server::Config;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The config file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// A directory, `s3://bucket/prefix`, or a list of them (one directory at most).
    library: Option<store::LibraryFile>,
    /// Settings of the `s3://` library entries: `[s3] endpoint`, `region`, credentials...
    s3: Option<store::S3File>,
    /// Rescan the library when its files change (default false: on SIGHUP only).
    watch: Option<bool>,
    /// Plain HTTP: "HOST:PORT", or "off" (HTTPS only).
    listen: Option<String>,
    /// HTTPS listeners, e.g. `["0.0.0.0:8443"]`; need `tls_cert` and `tls_key`.
    tls_listen: Option<Vec<SocketAddr>>,
    /// PEM certificate chain (leaf first) and private key, for HTTPS and RTMPS; reloaded on
    /// SIGHUP and when the files change.
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    /// An RTMPS listener (same certificate); unset: off.
    rtmps_listen: Option<SocketAddr>,
    /// Plain HTTP answers 308 to the same URL on the first HTTPS listener (not `/healthz`).
    redirect_http: Option<bool>,
    /// `Strict-Transport-Security: max-age=N` on HTTPS answers; unset: not sent.
    hsts_max_age_secs: Option<u64>,
    /// A TLS handshake not finished in this time is dropped (default 10).
    tls_handshake_timeout_secs: Option<u64>,
    /// Cipher suites offered, e.g. `["TLS13_AES_128_GCM_SHA256"]`; default: all of rustls/ring's.
    tls_cipher_suites: Option<Vec<String>>,
    /// Hand TLS keys to the kernel after the handshake where it offers kTLS (default false).
    ktls: Option<bool>,
    cache_size: Option<String>,
    log_format: Option<LogFormat>,
    header_read_timeout_secs: Option<u64>,
    /// A response whose client takes no bytes for this long is reset.
    send_timeout_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
    /// On SIGTERM or `POST /api/drain`: seconds `/readyz` answers 503 before accepting stops.
    drain_delay_secs: Option<u64>,
    /// Most open connections (default: the descriptor limit less a margin).
    max_connections: Option<usize>,
    /// Origins whose pages may read responses (CORS): `["*"]` (the default), a list of
    /// `https://host[:port]`, or `[]` for none.
    cors_origins: Option<Vec<String>>,
    /// The control API's bearer token (DELETE /api/streams/NAME/publisher|viewers); unset: off.
    admin_token: Option<String>,
    /// The read-only API (JSON, /metrics) needs the admin token too.
    private_api: Option<bool>,
    /// Paths served only with a signed link: `[signed_urls] secret = "..."`, `prefixes = [...]`.
    signed_urls: Option<SignedFile>,
    /// JWT keys: `[jwt] secret = "..."` (HS256), `public_keys = ["key.pem"]` (RS256/ES256).
    jwt: Option<access::JwtFile>,
    /// Per-stream credentials: `[[auth]] streams = "private/*"`, `publish = ["jwt", "key"]`,
    /// `read = ["jwt"]` (first match wins).
    #[serde(default)]
    auth: Vec<access::AuthRuleFile>,
    /// Live streams recorded into the library: `[[record]] streams = "show*"`, `dir`,
    /// `segment_secs`, `keep_secs`, `keep_size` (first match wins).
    #[serde(default)]
    record: Vec<record::RecordFile>,
    /// HTTP callbacks: `[callbacks] on_publish = "http://..."`, `on_play`, `on_unpublish`.
    callbacks: Option<access::CallbacksFile>,
    max_ranges: Option<usize>,
    sendfile_min: Option<String>,
    /// "0.0.0.0:1935", or "off".
    rtmp_listen: Option<String>,
    /// Live edge: `[edge] origins = ["http://origin:8080"]`, `idle_secs`, `token`.
    edge: Option<edge::EdgeFile>,
    /// Worker threads (default: one per core; 0: tokio's work-stealing runtime instead).
    workers: Option<usize>,
    /// Accept queue length asked of the kernel (capped by net.core.somaxconn).
    listen_backlog: Option<u32>,
    #[serde(default)]
    live: LiveFile,
}

/// The `[signed_urls]` table: links to paths under `prefixes` need `expires` and `sig`
/// (HMAC-SHA256 with `secret`; see `server::auth::signed`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedFile {
    secret: String,
    #[serde(default = "signed_prefixes")]
    prefixes: Vec<String>,
}

fn signed_prefixes() -> Vec<String> {
    vec!["/videos/".into(), "/live/".into()]
}

/// The `[live]` table of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveFile {
    /// A key that may publish any stream.
    publish_key: Option<String>,
    /// Per-stream keys: `[live.keys] show = "secret"`.
    #[serde(default)]
    keys: HashMap<String, String>,
    /// Seconds a dropped publisher has to come back.
    grace_secs: Option<u64>,
    /// Seconds an ended stream stays listed (its HLS playlist served with ENDLIST).
    linger_secs: Option<u64>,
    /// Seconds of stream kept for viewers that lag (the current GOP always).
    window_secs: Option<u64>,
    /// Most bytes kept per stream (e.g. "64MiB").
    window_size: Option<String>,
    hls_segment_secs: Option<f64>,
    hls_window: Option<usize>,
    /// A recorded stream's HLS playlist also lists this much from its recording (a DVR window;
    /// default 0: the sliding window only): `index.m3u8` of a stream recorded as TS, `ll.m3u8`
    /// and `manifest.mpd` of one recorded as fMP4.
    hls_dvr_secs: Option<u64>,
    /// LL-HLS (`ll.m3u8`): the part target, milliseconds (100-2000).
    ll_hls_part_ms: Option<u64>,
    ll_hls_segment_secs: Option<f64>,
    ll_hls_window: Option<usize>,
    /// Bits per second above which a publisher is slowed down.
    max_ingest_bitrate: Option<u64>,
    viewer_max_skips: Option<usize>,
    viewer_skip_period_secs: Option<u64>,
    viewer_stall_timeout_secs: Option<u64>,
    /// A live segment, part or init segment must be sent whole within this (default 30).
    segment_send_limit_secs: Option<u64>,
    /// Threads that write to viewers (0: none, viewers share the request workers); default one
    /// per core.
    fanout_threads: Option<usize>,
    /// Their nice value, 0-19 (default 5): requests (VOD, playlists, API, ingest) go first.
    fanout_nice: Option<i32>,
    /// What all live streams together may hold (e.g. "2GiB"); default a quarter of memory.
    memory_budget: Option<String>,
}

impl FileConfig {
    /// Reads and parses the config file at `path`; without one, the empty config (all defaults).
    pub fn load(path: Option<&Path>) -> Result<FileConfig> {
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                let mut file: FileConfig = toml::from_str(&text)
                    .with_context(|| format!("config file {}", p.display()))?;
                file.resolve_paths(p.parent().unwrap_or(Path::new("")));
                Ok(file)
            }
            None => Ok(FileConfig::default()),
        }
    }

    /// Makes the file's relative paths (`library`) relative to `dir`, the file's directory, as
    /// its author meant them (flags stay relative to the working directory).
    fn resolve_paths(&mut self, dir: &Path) {
        let keys = self
            .jwt
            .iter_mut()
            .flat_map(|j| j.public_keys.iter_mut().chain(j.jwks_ca.as_mut()))
            .chain(self.callbacks.iter_mut().flat_map(|c| c.ca.as_mut()))
            .chain(self.edge.iter_mut().flat_map(|e| e.ca.as_mut()));
        let keys = keys.chain(self.s3.iter_mut().flat_map(|s| s.ca.as_mut()));
        for p in [&mut self.tls_cert, &mut self.tls_key]
            .into_iter()
            .flatten()
            .chain(keys)
        {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        // The library's directory, not its buckets.
        let relative = |e: &mut String| {
            if !e.starts_with("s3://") && Path::new(e.as_str()).is_relative() {
                *e = dir.join(&*e).display().to_string();
            }
        };
        match &mut self.library {
            Some(store::LibraryFile::One(e)) => relative(e),
            Some(store::LibraryFile::Many(v)) => v.iter_mut().for_each(relative),
            None => {}
        }
    }

    /// The log format: `--log-format`, else the file's `log_format`, else human-readable.
    pub fn log_format(&self, flag: Option<LogFormat>) -> LogFormat {
        flag.or(self.log_format).unwrap_or(LogFormat::Human)
    }
}

/// What `serve` runs with: the server's config, and what the library load takes besides.
#[derive(Debug)]
pub struct Settings {
    pub config: Config,
    /// Memory for titles, in bytes; titles beyond it are mapped from disk.
    pub cache_budget: u64,
    /// The library directory (`None`: the embedded demo library).
    pub library: Option<PathBuf>,
    /// Rescan the library when its files change.
    pub watch: bool,
}

/// Merges the `serve` flags and the config file into the server's settings.
pub fn merge(args: ServeArgs, file: FileConfig) -> Result<Settings> {
    for (key, secs) in [
        ("hsts_max_age_secs", file.hsts_max_age_secs),
        (
            "tls_handshake_timeout_secs",
            file.tls_handshake_timeout_secs,
        ),
        ("header_read_timeout_secs", file.header_read_timeout_secs),
        ("send_timeout_secs", file.send_timeout_secs),
        ("shutdown_grace_secs", file.shutdown_grace_secs),
        ("drain_delay_secs", file.drain_delay_secs),
    ] {
        at_most_ten_years(key, secs)?;
    }
    let mut config = Config::default();
    if let Some(l) = args.listen.as_ref().or(file.listen.as_ref()) {
        match l.as_str() {
            "off" | "none" => config.plain_http = false,
            a => {
                config.listen = a
                    .parse()
                    .with_context(|| format!("listen '{a}': expected HOST:PORT or off"))?
            }
        }
    }
    config.tls = access::tls(&args, &file)?;
    if !config.plain_http && config.tls.is_none() {
        bail!("listen = off needs an HTTPS listener (tls_listen)");
    }
    if let Some(s) = file.header_read_timeout_secs {
        config.header_read_timeout = Duration::from_secs(s.max(1));
    }
    if let Some(s) = file.send_timeout_secs {
        config.send_timeout = Duration::from_secs(s.max(1));
    }
    if let Some(list) = &file.cors_origins {
        config.cors = server::cors::Cors::from_list(list)
            .map_err(anyhow::Error::msg)
            .context("cors_origins")?;
    }
    if let Some(t) = &file.admin_token {
        if t.len() < 16 {
            bail!("admin_token: at least 16 characters");
        }
        config.admin_token = Some(t.clone());
    }
    if let Some(p) = file.private_api {
        if p && config.admin_token.is_none() {
            bail!("private_api = true needs an admin_token");
        }
        config.private_api = p;
    }
    if let Some(sg) = &file.signed_urls {
        let signed = server::auth::signed::Signed::new(sg.secret.as_bytes(), sg.prefixes.clone())
            .map_err(anyhow::Error::msg)
            .context("signed_urls")?;
        config.signed = Some(signed);
    }
    config.auth = access::auth(&file)?;
    config.hooks = access::hooks(&file)?;
    if let Some(n) = file.max_connections {
        config.max_connections = Some(n.max(1));
    }
    if file.workers.is_some() {
        at_most("workers", file.workers, MAX_THREADS)?;
        config.workers = file.workers;
    }
    if let Some(b) = file.listen_backlog {
        config.listen_backlog = b;
    }
    if let Some(s) = file.drain_delay_secs {
        config.drain_delay = Duration::from_secs(s);
    }
    if let Some(s) = file.shutdown_grace_secs {
        config.shutdown_grace = Duration::from_secs(s);
    }
    if let Some(m) = file.max_ranges {
        config.policy.max_ranges = m.max(1);
    }
    if let Some(s) = &file.sendfile_min {
        config.policy.sendfile_min = size::parse(s)
            .map_err(anyhow::Error::msg)
            .context("sendfile_min in the config file")?;
    }
    apply_live(&mut config.live, &file.live, &args.publish_keys)?;
    if let Some(r) = args.rtmp_listen.as_ref().or(file.rtmp_listen.as_ref()) {
        config.rtmp_listen = match r.as_str() {
            "off" | "none" => None,
            a => Some(
                a.parse()
                    .with_context(|| format!("rtmp_listen '{a}': expected HOST:PORT or off"))?,
            ),
        };
    }
    config.edge = edge::edge(&args.origins, file.edge.as_ref())?;
    let (library, store) = store::library(&args.library, &file)?;
    config.store = store;
    config.record = record::rules(&file.record, library.as_deref(), file.s3.as_ref())?;
    let cache_budget = match (args.cache_size, &file.cache_size) {
        (Some(s), _) => s,
        (None, Some(s)) => size::parse(s)
            .map_err(anyhow::Error::msg)
            .context("cache_size in the config file")?,
        (None, None) => server::default_cache_budget(),
    };
    Ok(Settings {
        config,
        cache_budget,
        watch: args.watch || file.watch.unwrap_or(false),
        library,
    })
}

/// Applies the `[live]` table and the `--publish-key` flags (which add to the file's keys, and
/// replace its `publish_key` with a bare SECRET) to the live settings.
pub fn apply_live(c: &mut server::live::LiveConfig, f: &LiveFile, flags: &[String]) -> Result<()> {
    // An empty key would admit any publisher that sends an empty one (`?key=`).
    if f.publish_key.as_deref() == Some("") {
        bail!("[live] publish_key is empty");
    }
    if let Some((name, _)) = f.keys.iter().find(|(_, k)| k.is_empty()) {
        bail!("[live.keys] {name}: the key is empty");
    }
    c.global_key.clone_from(&f.publish_key);
    c.keys.clone_from(&f.keys);
    for k in flags {
        match k.split_once('=') {
            Some((name, secret)) => {
                if !server::live::valid_name(name) || secret.is_empty() {
                    bail!("--publish-key {k}: expected NAME=SECRET with a valid stream name");
                }
                c.keys.insert(name.to_string(), secret.to_string());
            }
            None if !k.is_empty() => c.global_key = Some(k.clone()),
            None => bail!("--publish-key: empty key"),
        }
    }
    for (key, secs) in [
        ("live.grace_secs", f.grace_secs),
        ("live.linger_secs", f.linger_secs),
        ("live.window_secs", f.window_secs),
        ("live.hls_dvr_secs", f.hls_dvr_secs),
        ("live.viewer_skip_period_secs", f.viewer_skip_period_secs),
        (
            "live.viewer_stall_timeout_secs",
            f.viewer_stall_timeout_secs,
        ),
        ("live.segment_send_limit_secs", f.segment_send_limit_secs),
    ] {
        at_most_ten_years(key, secs)?;
    }
    for (key, secs) in [
        ("live.hls_segment_secs", f.hls_segment_secs),
        ("live.ll_hls_segment_secs", f.ll_hls_segment_secs),
    ] {
        if let Some(v) = secs {
            anyhow::ensure!(v.is_finite(), "{key} must be a number of seconds (got {v})");
        }
    }
    if let Some(s) = f.grace_secs {
        c.grace = Duration::from_secs(s);
    }
    if let Some(s) = f.linger_secs {
        c.linger = Duration::from_secs(s);
    }
    if let Some(s) = f.window_secs {
        c.ring.max_age = Duration::from_secs(s.max(1));
    }
    if let Some(s) = &f.window_size {
        let bytes = size::parse(s)
            .map_err(anyhow::Error::msg)
            .context("live.window_size")?;
        // Below a GOP of a low-rate stream, every viewer would skip at every unit and the
        // recorder start a new file at every keyframe.
        anyhow::ensure!(
            bytes >= MIN_WINDOW_SIZE,
            "live.window_size must be at least 1MiB (a stream's current GOP must fit; got {s})"
        );
        c.ring.max_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
    }
    if let Some(s) = f.hls_segment_secs {
        c.hls.min_segment = Duration::from_secs_f64(s.clamp(0.1, 60.0));
    }
    if let Some(n) = f.hls_window {
        at_most("live.hls_window", Some(n), MAX_WINDOW)?;
        c.hls.window = n.max(2);
        c.hls.spare = c.hls.window + server::live::SPARE_BEYOND_WINDOW;
    }
    if let Some(secs) = f.hls_dvr_secs {
        // Segments of about `min_segment`: as many as span `secs` (at most a day of 1 s ones).
        let per = c.hls.min_segment.as_secs_f64().max(0.1);
        c.hls.dvr = ((secs as f64 / per).ceil() as usize).min(86_400);
    }
    if let Some(ms) = f.ll_hls_part_ms {
        c.ll_hls.part_target = Duration::from_millis(ms.clamp(100, 2000));
    }
    if let Some(s) = f.ll_hls_segment_secs {
        c.ll_hls.min_segment = Duration::from_secs_f64(s.clamp(0.5, 60.0));
    }
    if let Some(n) = f.ll_hls_window {
        at_most("live.ll_hls_window", Some(n), MAX_WINDOW)?;
        c.ll_hls.window = n.max(2);
        c.ll_hls.spare = c.ll_hls.window + server::live::SPARE_BEYOND_WINDOW;
    }
    if let Some(secs) = f.hls_dvr_secs {
        // The same DVR window in the LL-HLS playlist of a stream recorded as fMP4.
        let per = c.ll_hls.min_segment.as_secs_f64().max(0.1);
        c.ll_hls.dvr = ((secs as f64 / per).ceil() as usize).min(86_400);
    }
    if let Some(b) = f.max_ingest_bitrate {
        c.max_ingest_bitrate = b.max(100_000);
    }
    if let Some(n) = f.viewer_max_skips {
        c.viewer.max_skips = n;
    }
    if let Some(s) = f.viewer_skip_period_secs {
        c.viewer.skip_period = Duration::from_secs(s);
    }
    if let Some(s) = f.viewer_stall_timeout_secs {
        c.stall_timeout = Duration::from_secs(s.max(1));
    }
    if let Some(s) = f.segment_send_limit_secs {
        c.segment_send_limit = Duration::from_secs(s.max(1));
    }
    if let Some(n) = f.fanout_threads {
        at_most("live.fanout_threads", Some(n), MAX_THREADS)?;
        c.fanout.threads = Some(n);
    }
    if let Some(n) = f.fanout_nice {
        anyhow::ensure!(
            (0..=19).contains(&n),
            "live.fanout_nice must be 0 to 19 (got {n})"
        );
        c.fanout.nice = n;
    }
    if let Some(s) = &f.memory_budget {
        let limit = size::parse(s)
            .map_err(anyhow::Error::msg)
            .context("live.memory_budget")?;
        anyhow::ensure!(
            limit >= MIN_MEMORY_BUDGET,
            "live.memory_budget must be at least 1MiB (a stream's receive buffer and some of its \
             ring; got {s})"
        );
        c.memory_budget.limit = usize::try_from(limit).unwrap_or(usize::MAX);
    }
    tracing::info!(
        memory_budget = c.memory_budget.limit,
        "live memory budget (rings, HLS segments, receive buffers of all streams)"
    );
    if c.keys.is_empty() && c.global_key.is_none() {
        tracing::info!(
            "no publish key configured: only loopback publishers may publish (see --publish-key)"
        );
    }
    Ok(())
}

/// The smallest `live.window_size`.
const MIN_WINDOW_SIZE: u64 = 1 << 20;

/// Below this, no stream could start (each holds a 256 KiB receive buffer while published).
const MIN_MEMORY_BUDGET: u64 = 1 << 20;

/// The most threads `workers` and `live.fanout_threads` may ask for.
const MAX_THREADS: usize = 1024;
/// The most segments a live playlist may list (`hls_window`, `ll_hls_window`): a longer look
/// back is `hls_dvr_secs`'s, from the recording.
const MAX_WINDOW: usize = 1000;

/// `key`'s value `n`, if given, is at most `max`.
fn at_most(key: &str, n: Option<usize>, max: usize) -> Result<()> {
    match n {
        Some(n) if n > max => bail!("{key} must be at most {max} (got {n})"),
        _ => Ok(()),
    }
}

/// A number of seconds a timer can be set to: at most ten years (a larger one overflows the
/// clock's deadlines).
pub(super) fn at_most_ten_years(key: &str, secs: Option<u64>) -> Result<()> {
    const TEN_YEARS: u64 = 10 * 366 * 86_400;
    match secs {
        Some(s) if s > TEN_YEARS => bail!("{key} must be at most {TEN_YEARS} seconds (got {s})"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
