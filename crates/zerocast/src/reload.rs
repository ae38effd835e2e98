//! Reload without restart, the binary's side: on SIGHUP the config file is read again and merged
//! with the flags the server started with, the result applied (`server::reload`: what can change
//! live changes, what cannot is named in a warning), the TLS certificate reloaded and the library
//! rescanned; with `watch`, the library is also rescanned when its files change (inotify through
//! the `notify` crate, changes gathered until 1 s of quiet). A config file that does not parse is
//! refused with its error and the settings in use stay.

use crate::cli::{LogFormat, ServeArgs};
use crate::config::{self, FileConfig};
use anyhow::Result;
use server::library::LoadEvent;
use std::path::PathBuf;
use std::time::Duration;

/// What a reload needs: how the server was started, and handles on it.
pub struct Reloader {
    pub args: ServeArgs,
    pub config_file: Option<PathBuf>,
    pub library: Option<PathBuf>,
    pub budget: u64,
    /// Whether the library is watched for changes (`watch`), as at start.
    pub watch: bool,
    /// `--log-format` as given, and the log format in use (set at start: a restart changes it).
    pub log: (Option<LogFormat>, LogFormat),
    pub server: server::reload::Reload,
    pub tls: Option<server::tls::Reloader>,
}

impl Reloader {
    /// SIGHUP: settings, certificate, library.
    pub async fn hangup(&self) {
        tracing::info!("SIGHUP: reloading the config file, the TLS certificate and the library");
        // A value that slipped past the checks must not end the reload loop (this task, which
        // also rescans the library and picks up recordings): a panic refuses this reload only.
        let settings = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.settings()))
            .unwrap_or_else(|_| Err(anyhow::anyhow!("a setting could not be applied (a panic)")));
        if let Err(e) = settings {
            tracing::error!(
                "config reload refused: {}; the settings in use stay",
                summary(&e)
            );
        }
        if let Some(t) = &self.tls {
            let _ = t.reload();
        }
        self.library().await;
        // Listing object storage (and indexing what is new there) can take long: in a task of
        // its own, so that the next SIGHUP and the library's own rescans are not held behind it.
        let server = self.server.clone();
        tokio::spawn(async move {
            if let Some(r) = server.relist().await {
                tracing::info!(
                    titles = r.titles,
                    indexed = r.indexed,
                    kept = r.kept,
                    seconds = r.took.as_secs_f64(),
                    "object storage relisted"
                );
            }
        });
    }

    fn settings(&self) -> Result<()> {
        let file = FileConfig::load(self.config_file.as_deref())?;
        let file_log = file.log_format(self.log.0);
        let next = config::merge(self.args.clone(), file)?;
        let mut restart = self.server.settings(next.config);
        if next.library != self.library {
            restart.push("library");
        }
        if next.cache_budget != self.budget {
            restart.push("cache_size");
        }
        if next.watch != self.watch {
            restart.push("watch");
        }
        if file_log != self.log.1 {
            restart.push("log_format");
        }
        if restart.is_empty() {
            tracing::info!("settings reloaded; new requests and connections use them");
        } else {
            tracing::warn!(
                needs_restart = %restart.join(", "),
                "settings reloaded, except these, which only a restart can change"
            );
        }
        Ok(())
    }

    /// Rescans the library (off the async threads: new titles are read and indexed).
    pub async fn library(&self) {
        let Some(dir) = self.library.clone() else {
            return;
        };
        let (server, budget) = (self.server.clone(), self.budget);
        let d = dir.clone();
        let scanned = tokio::task::spawn_blocking(move || {
            server.library(&d, budget, |ev| {
                if let LoadEvent::Skipped { path, reason } = ev {
                    tracing::warn!(path = %path.display(), %reason, "skipped");
                }
            })
        })
        .await;
        match scanned {
            Ok(Ok(c)) if c.is_empty() => tracing::info!("library rescanned: no changes"),
            Ok(Ok(c)) => tracing::info!(
                added = ?c.added,
                changed = ?c.changed,
                removed = ?c.removed,
                "library rescanned"
            ),
            Ok(Err(e)) => {
                tracing::error!(error = %e, dir = %dir.display(), "library rescan failed; the titles in use stay")
            }
            Err(e) => tracing::error!(error = %e, "library rescan failed"),
        }
    }
}

/// An error's first and last lines: a TOML parse error quotes the offending line of the file
/// in between, and that line may hold a secret (logs are often shipped elsewhere).
fn summary(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match lines.as_slice() {
        [] => String::new(),
        [one] => one.to_string(),
        [first, .., last] => format!("{first} ... {last}"),
    }
}

/// Runs the reloads until the task is dropped: SIGHUP, and library changes when `watch` is on.
pub async fn run(mut hup: tokio::signal::unix::Signal, r: Reloader, watch: bool) {
    // One pending wake-up at most, however many events come (a copy in progress).
    let changed = std::sync::Arc::new(tokio::sync::Notify::new());
    // Kept alive for as long as this task runs.
    let _watcher = match (&r.library, watch) {
        (Some(dir), true) => watcher(dir, changed.clone()),
        _ => None,
    };
    let recorded = r.server.library_changed();
    loop {
        tokio::select! {
            // A recording file was finished or removed: rescan at once.
            () = recorded.notified() => r.library().await,
            s = hup.recv() => match s {
                Some(()) => r.hangup().await,
                None => return,
            },
            () = changed.notified() => {
                // Gather a burst of changes (a copy in progress) until 1 s of quiet.
                while tokio::time::timeout(Duration::from_secs(1), changed.notified()).await.is_ok() {}
                r.library().await;
            }
        }
    }
}

/// Watches `dir` recursively; each relevant event sends a wake-up.
fn watcher(
    dir: &std::path::Path,
    changed: std::sync::Arc<tokio::sync::Notify>,
) -> Option<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let handler = move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            // Dotfiles are not titles: a recording being written (a dotfile until it is
            // finished) must not keep the library rescanning, nor its quiet period from coming.
            let dotfile = |p: &std::path::PathBuf| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            };
            if matches!(
                ev.kind,
                EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
            ) && !ev.paths.iter().all(dotfile)
            {
                changed.notify_one();
            }
        }
    };
    let started = notify::recommended_watcher(handler)
        .and_then(|mut w| w.watch(dir, RecursiveMode::Recursive).map(|()| w));
    match started {
        Ok(w) => {
            tracing::info!(dir = %dir.display(), "watching the library for changes");
            Some(w)
        }
        Err(e) => {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the library; it is rescanned on SIGHUP only");
            None
        }
    }
}
