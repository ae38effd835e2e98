//! Finished recording files put into their rule's bucket (`[[record]] upload`), off the
//! recorder: the file is mapped when it is finished (before retention runs) and handed to the
//! request as it is (no copy), two uploads at a time, tried again by `Source::put`; the local
//! file stays whatever happens (retention still applies to it).

use crate::state::State;
use crate::store::Source;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Uploads at once, all recorders together (a slow uplink shared by many would time them all
/// out).
static AT_ONCE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Puts `bytes`, the finished file `path` (mapped before retention could remove it), as `id`
/// (its title id) into `source`; `Source::put` tries it again after a failure.
pub(super) async fn upload(
    state: Arc<State>,
    source: Arc<Source>,
    path: PathBuf,
    id: String,
    bytes: bytes::Bytes,
) {
    let _turn = AT_ONCE.acquire().await;
    let len = bytes.len() as u64;
    match source.put(&id, bytes).await {
        Ok(()) => {
            state.record.uploads.fetch_add(1, Relaxed);
            state.record.upload_bytes.fetch_add(len, Relaxed);
            tracing::info!(file = %path.display(), to = %source.url, %id, bytes = len, "recording uploaded");
        }
        Err(e) => failed(&state, &path, &source, &e.to_string()),
    }
}

/// Maps the finished file for [`upload`] (it is not modified again; removing it later keeps
/// the mapping valid).
pub(super) fn map(path: &std::path::Path) -> std::io::Result<bytes::Bytes> {
    crate::library::read_file(path, false).map(|(bytes, _, _)| bytes)
}

pub(super) fn failed(state: &State, path: &std::path::Path, source: &Source, why: &str) {
    state.record.upload_failures.fetch_add(1, Relaxed);
    tracing::error!(file = %path.display(), to = %source.url, %why, "recording not uploaded; the local file stays");
}
