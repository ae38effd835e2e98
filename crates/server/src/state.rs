//! What every connection of a running server shares.

use crate::config::Config;
use crate::library::Library;
use crate::live::Live;
use std::sync::{Arc, RwLock};

/// The library, the live registry and the settings, shared by every connection. The settings
/// and the library are replaced whole by a reload (SIGHUP, a library change); a request works
/// with the snapshot it took ([`State::config`], [`State::library`]).
pub(crate) struct State {
    library: RwLock<Arc<Library>>,
    pub live: Arc<Live>,
    config: RwLock<Arc<Config>>,
    /// Open connections, their cap and counters.
    pub conns: Arc<crate::conns::Conns>,
    /// `/videos/*` answers and their body bytes (`/metrics`).
    pub vod: Arc<crate::vod_metrics::VodMetrics>,
    /// HTTPS/RTMPS: certificate, acceptors, counters (`None`: no TLS).
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// Live edge: pulls streams it does not have from its origins (`None`: not an edge).
    pub edge: Option<Arc<crate::edge::Edge>>,
    /// The port the RTMP listener is bound to (the page shows RTMP URLs with it).
    pub rtmp_port: Option<u16>,
    /// Set once draining began (`/readyz` answers 503 from then on).
    pub draining: std::sync::atomic::AtomicBool,
    /// Wakes `Server::run` when the control API asks for a drain.
    pub drain: tokio::sync::Notify,
    /// Wakes the binary's reload task for a library rescan (a recording file was finished or
    /// removed).
    pub library_changed: Arc<tokio::sync::Notify>,
    /// What the recorders did (`/metrics`).
    pub record: crate::record_metrics::RecordStats,
    /// The recording files being written (`None`), or finished when this many rescans had
    /// started (`Some`): a rescan keeps their growing titles until one that started after the
    /// file was finished has seen it.
    pub recording: std::sync::Mutex<std::collections::HashMap<String, Option<u64>>>,
    /// Library rescans started.
    pub scans: std::sync::atomic::AtomicU64,
    /// Object-storage sources of titles, once set (`Server::set_stores`).
    pub stores: std::sync::OnceLock<Arc<crate::store::Stores>>,
    /// `GET /api/videos` and the page, as last rendered (rendered.rs).
    pub listing: crate::rendered::Rendered,
    pub page: crate::rendered::Rendered,
}

impl State {
    pub(crate) fn new(
        library: Library,
        live: Arc<Live>,
        conns: Arc<crate::conns::Conns>,
        vod: Arc<crate::vod_metrics::VodMetrics>,
        tls: Option<Arc<crate::tls::Tls>>,
        config: Config,
    ) -> State {
        State {
            library: RwLock::new(Arc::new(library)),
            live,
            config: RwLock::new(Arc::new(config)),
            conns,
            vod,
            tls,
            edge: None,
            rtmp_port: None,
            draining: std::sync::atomic::AtomicBool::new(false),
            drain: tokio::sync::Notify::new(),
            library_changed: Arc::new(tokio::sync::Notify::new()),
            record: crate::record_metrics::RecordStats::default(),
            recording: std::sync::Mutex::default(),
            scans: std::sync::atomic::AtomicU64::new(0),
            stores: std::sync::OnceLock::new(),
            listing: Default::default(),
            page: Default::default(),
        }
    }

    /// The settings now.
    pub(crate) fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The library now.
    pub(crate) fn library(&self) -> Arc<Library> {
        self.library
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the settings (new requests and connections see them).
    pub(crate) fn set_config(&self, config: Config) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }

    /// Replaces the library with a rescan of its directory, keeping the growing recordings the
    /// scan cannot see (under the lock, so a recording's update is never lost to a rescan).
    /// `scan`: the number [`State::scan_started`] gave the rescan.
    pub(crate) fn set_library(&self, library: Library, scan: u64) {
        let mut recording = self.recording.lock().unwrap_or_else(|p| p.into_inner());
        // A file finished before this scan began is what the scan found (its title, or none).
        recording.retain(|_, finished| finished.is_none_or(|at| at >= scan));
        let kept: std::collections::HashSet<String> = recording.keys().cloned().collect();
        let mut now = self.library.write().unwrap_or_else(|p| p.into_inner());
        *now = Arc::new(now.with_growing_of(library, &kept));
    }

    /// Replaces the titles in object storage with a new listing's.
    pub(crate) fn set_stored(
        &self,
        stored: std::collections::BTreeMap<String, Arc<crate::library::Title>>,
    ) {
        let mut now = self.library.write().unwrap_or_else(|p| p.into_inner());
        *now = Arc::new(now.with_stored(stored));
    }

    /// A library rescan begins: its number, for [`State::set_library`].
    pub(crate) fn scan_started(&self) -> u64 {
        self.scans.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    }

    /// A recording file is being written.
    pub(crate) fn recording_started(&self, id: &str) {
        let mut r = self.recording.lock().unwrap_or_else(|p| p.into_inner());
        r.insert(id.to_string(), None);
    }

    /// A recording file is finished (or given up): the next rescan that starts shows it as the
    /// file is then.
    pub(crate) fn recording_finished(&self, id: &str) {
        let at = self.scans.load(std::sync::atomic::Ordering::SeqCst);
        let mut r = self.recording.lock().unwrap_or_else(|p| p.into_inner());
        r.insert(id.to_string(), Some(at));
    }

    /// Where a DVR viewer of `stream`'s `output` asking for `t` starts (`live::dvr`); one that
    /// starts in the recording can read on in it, from the library as it is then.
    pub(crate) fn dvr_start(
        self: &Arc<Self>,
        stream: &Arc<crate::live::Stream>,
        output: crate::live::Output,
        t: &str,
    ) -> Result<crate::live::dvr::Start, crate::error::Error> {
        let library = || self.library();
        let mut start = crate::live::dvr::start(stream, &self.live, &library, output, t)?;
        if !start.prefix.is_empty() {
            let state = self.clone();
            start.more = Some(crate::live::dvr::Resume {
                stream: stream.clone(),
                // A converting viewer reads the recording it converts.
                output: start.convert.unwrap_or(output),
                library: Box::new(move || state.library()),
            });
        }
        Ok(start)
    }

    /// Adds or replaces one title (a growing recording's newest state).
    pub(crate) fn put_title(&self, title: crate::library::Title) {
        let mut now = self.library.write().unwrap_or_else(|p| p.into_inner());
        let mut next = Library::clone(&now);
        next.put_growing(title);
        *now = Arc::new(next);
    }
}
