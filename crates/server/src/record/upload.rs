//! Finished recording files put into their rule's bucket (`[[record]] upload`), off the
//! recorder: the file is mapped and handed to the request as it is (no copy), tried three
//! times with a backoff; the local file stays whatever happens (retention still applies).

use crate::state::State;
use crate::store::Source;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// The most bytes one PUT may carry (S3's limit for a single-part upload).
const MAX_PUT: u64 = 5 << 30;
/// Tries of one file.
const TRIES: u32 = 3;

/// Puts the finished file `path` as `id` (its title id) into `source`.
pub(super) async fn upload(state: Arc<State>, source: Arc<Source>, path: PathBuf, id: String) {
    let p = path.clone();
    let read = tokio::task::spawn_blocking(move || crate::library::read_file(&p, false)).await;
    let bytes = match read {
        Ok(Ok((bytes, _, _))) => bytes,
        Ok(Err(e)) => return failed(&state, &path, &source, &e.to_string()),
        Err(e) => return failed(&state, &path, &source, &e.to_string()),
    };
    let len = bytes.len() as u64;
    if len > MAX_PUT {
        let why = format!("{len} bytes is more than one upload may hold (5 GiB; max_file_size)");
        return failed(&state, &path, &source, &why);
    }
    for attempt in 0..TRIES {
        match source.put(&id, bytes.clone()).await {
            Ok(()) => {
                state.record.uploads.fetch_add(1, Relaxed);
                state.record.upload_bytes.fetch_add(len, Relaxed);
                tracing::info!(file = %path.display(), to = %source.url, %id, bytes = len, "recording uploaded");
                return;
            }
            Err(e) if attempt + 1 == TRIES => {
                return failed(&state, &path, &source, &e.to_string());
            }
            Err(e) => {
                tracing::debug!(file = %path.display(), error = %e, "recording upload failed; trying again");
                tokio::time::sleep(Duration::from_secs(1) * 4u32.pow(attempt)).await;
            }
        }
    }
}

fn failed(state: &State, path: &std::path::Path, source: &Source, why: &str) {
    state.record.upload_failures.fetch_add(1, Relaxed);
    tracing::error!(file = %path.display(), to = %source.url, %why, "recording not uploaded; the local file stays");
}
