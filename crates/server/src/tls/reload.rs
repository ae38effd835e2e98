//! Certificate reloads: on demand (the binary calls [`Reloader::reload`] on SIGHUP) and when the
//! files change (checked every `watch_interval`: modification time, size and inode of both
//! files, so a renewal that replaces the files or swaps a symlink is seen). A new pair is taken
//! only whole and checked (certs.rs); a bad one is refused with one log line and the certificate
//! in use stays. Connections already up keep the certificate of their handshake.

use super::{certs, CertError, Tls};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Reloads the server's certificate (cheap to clone).
#[derive(Debug, Clone)]
pub struct Reloader {
    tls: Arc<Tls>,
}

/// What identifies a file's content without reading it.
pub(crate) type Stamp = Option<(i64, i64, u64, u64)>;

/// The stamps of the certificate and key files (taken before they are read, so that a change
/// during the read is seen as one).
pub(crate) fn stamps(c: &super::TlsConfig) -> (Stamp, Stamp) {
    (stamp(&c.cert), stamp(&c.key))
}

fn stamp(p: &Path) -> Stamp {
    // `metadata` follows symlinks: a swapped link shows as another inode.
    std::fs::metadata(p)
        .ok()
        .map(|m| (m.mtime(), m.mtime_nsec(), m.len(), m.ino()))
}

impl Reloader {
    pub(crate) fn new(tls: Arc<Tls>) -> Reloader {
        Reloader { tls }
    }

    /// Reads the certificate and key again; new handshakes use them if they are good. A bad pair
    /// is refused (logged; the one in use stays).
    pub fn reload(&self) -> Result<(), CertError> {
        let c = &self.tls.config;
        // Held throughout: a SIGHUP and the watcher do not reload at once (the slower one could
        // put back the pair the faster one replaced, with the stamps saying it is the new one).
        let mut loaded = self.tls.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let before = stamps(c);
        let result = certs::load(&c.cert, &c.key, &super::provider());
        // A file that could not be read (permissions being changed, no descriptor left) is read
        // again at the next check; a pair that was read and refused, once it changes again.
        *loaded = match &result {
            Err(CertError::Read { .. }) => (None, None),
            _ => before,
        };
        match result {
            Ok(next) => {
                self.tls.certs.replace(next);
                self.tls.stats.reloads.fetch_add(1, Relaxed);
                tracing::info!(cert = %c.cert.display(), "TLS certificate reloaded; new handshakes use it");
                Ok(())
            }
            Err(e) => {
                self.tls.stats.reloads_refused.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "TLS certificate reload refused; the certificate in use stays");
                Err(e)
            }
        }
    }

    /// Reloads whenever the files change, until the task is dropped.
    pub(crate) async fn watch(self) {
        let Some(every) = self.tls.config.watch_interval else {
            return;
        };
        let c = &self.tls.config;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let seen = *self.tls.loaded.lock().unwrap_or_else(|p| p.into_inner());
            if stamps(c) != seen {
                // A renewal may write the two files one after the other: a pair that does not
                // match yet is tried again on the next change.
                let _ = self.reload();
            }
        }
    }
}
