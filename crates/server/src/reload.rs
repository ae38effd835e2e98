//! Reload without restart: new settings and a library rescan applied to a running server.
//!
//! What takes effect for new requests and connections: publish keys, `[[auth]]` rules and JWT
//! keys, callbacks, CORS, signed links, the admin token and `private_api`, timeouts, the range
//! policy, the connection cap, and (tls::reload) the certificate's contents. What cannot change
//! while the server runs is reported by name and left as it was: listening addresses, workers,
//! the accept queue, the TLS listeners, files and cipher suites, and the live settings other than
//! keys (ring, HLS and viewer limits are fixed per stream at its start).
//!
//! The library: titles whose files are unchanged are kept, new ones appear, removed ones 404,
//! changed ones are read again (a new ETag); a request already running keeps the bytes it holds
//! when the file was replaced by a rename (the usual way: write a new file, rename it over the
//! old). A title beyond the memory budget is a mapping of its file: a file truncated or
//! rewritten in place under a running request is read as it changes; a read past a truncated
//! end faults, which `truncated` answers with zeros, a failed request and a rescan at once.

use crate::config::Config;
use crate::library::{Changes, LoadEvent};
use crate::state::State;
use crate::StartError;
use std::path::Path;
use std::sync::Arc;

/// Applies reloads to a running server (cheap to clone).
#[derive(Clone)]
pub struct Reload {
    state: Arc<State>,
}

impl std::fmt::Debug for Reload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reload").finish_non_exhaustive()
    }
}

/// The settings `next` asks to change that only a restart can change (names as in the config
/// file).
pub fn needs_restart(now: &Config, next: &Config) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut differs = |name, changed: bool| {
        if changed {
            v.push(name);
        }
    };
    differs(
        "listen",
        now.listen != next.listen || now.plain_http != next.plain_http,
    );
    differs("rtmp_listen", now.rtmp_listen != next.rtmp_listen);
    differs("workers", now.workers != next.workers);
    differs("listen_backlog", now.listen_backlog != next.listen_backlog);
    let tls = |c: &Config| {
        c.tls.as_ref().map(|t| {
            (
                t.listen.clone(),
                t.rtmps_listen,
                t.cert.clone(),
                t.key.clone(),
                t.cipher_suites.clone(),
                t.redirect_http,
                t.hsts,
                t.handshake_timeout,
                t.ktls,
            )
        })
    };
    differs("tls_*", tls(now) != tls(next));
    let live = |c: &Config| {
        let mut l = c.live.clone();
        l.keys.clear();
        l.global_key = None;
        format!("{l:?}")
    };
    differs("[live] (other than keys)", live(now) != live(next));
    differs("[[record]]", now.record != next.record);
    differs("[edge]", now.edge != next.edge);
    differs("library (s3://) and [s3]", now.store != next.store);
    v
}

impl Reload {
    pub(crate) fn new(state: Arc<State>) -> Reload {
        Reload { state }
    }

    /// Applies `next` to new requests and connections; what only a restart can change is kept
    /// as it is and returned by name.
    pub fn settings(&self, mut next: Config) -> Vec<&'static str> {
        let now = self.state.config();
        let restart = needs_restart(&now, &next);
        // What cannot change stays as it is.
        next.listen = now.listen;
        next.plain_http = now.plain_http;
        next.rtmp_listen = now.rtmp_listen;
        next.workers = now.workers;
        next.listen_backlog = now.listen_backlog;
        next.tls = now.tls.clone();
        // The JWKS keys already fetched stay while the URL does.
        if let (Some(old), Some(new)) = (&now.auth.jwt, &next.auth.jwt) {
            if now.auth.jwks.is_some() && now.auth.jwks == next.auth.jwks {
                new.keep_jwks_of(old);
            }
        }
        let keys = (next.live.keys.clone(), next.live.global_key.clone());
        next.live = now.live.clone();
        next.record = now.record.clone();
        next.edge = now.edge.clone();
        next.store = now.store.clone();
        self.state.live.set_keys(keys.0, keys.1);
        self.state.conns.set_max(next.max_connections);
        self.state.set_config(next);
        restart
    }

    /// Notified when the library should be rescanned because the server changed it (a
    /// recording file was finished or removed).
    pub fn library_changed(&self) -> Arc<tokio::sync::Notify> {
        self.state.library_changed.clone()
    }

    /// Lists the object-storage sources again and serves what they hold now (unchanged objects
    /// keep their titles; a source that cannot be listed keeps its titles); `None` without
    /// sources.
    pub async fn relist(&self) -> Option<crate::library::Listing> {
        let stores = self.state.stores.get()?.clone();
        let _one = stores.listing.lock().await;
        let lib = self.state.library();
        let (stored, report) =
            crate::library::list_stored(&stores.sources, &lib, stores.index_max).await;
        self.state.set_stored(stored);
        for (url, why) in &report.failed {
            tracing::warn!(source = %url, %why, "object storage could not be listed; its titles stay as they were");
        }
        Some(report)
    }

    /// Rescans the library directory and serves what it holds now.
    pub fn library(
        &self,
        dir: &Path,
        budget: u64,
        events: impl FnMut(LoadEvent<'_>),
    ) -> Result<Changes, StartError> {
        let scan = self.state.scan_started();
        let (next, changes) = self.state.library().rescan(dir, budget, events)?;
        // Even without a change of files: a recording finished since may leave the library.
        self.state.set_library(next, scan);
        Ok(changes)
    }
}
