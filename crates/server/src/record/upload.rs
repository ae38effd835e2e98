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

/// Uploads queued or running: title id → bytes. Each holds its file mapped (so that retention
/// may remove the file and the upload still reads it), and a removed file keeps its disk while
/// mapped: an uplink slower than the recordings must not queue them without end. Past
/// [`MAX_QUEUED_BYTES`], a finished file is left to the next [`reconcile`] pass (which also
/// skips what is queued already), and lost to the bucket if retention removes it first.
static QUEUED: std::sync::Mutex<std::collections::BTreeMap<String, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());
const MAX_QUEUED_BYTES: u64 = 4 << 30;

/// Takes a place in the queue for `id` of `len` bytes; `false`: the queue holds as much as it
/// takes (one file is always taken), or `id` is in it already.
pub(super) fn enqueue(id: &str, len: u64) -> bool {
    let mut q = QUEUED.lock().unwrap_or_else(|p| p.into_inner());
    let held: u64 = q.values().sum();
    let room = q.is_empty() || held.saturating_add(len) <= MAX_QUEUED_BYTES;
    room && !q.contains_key(id) && q.insert(id.to_string(), len).is_none()
}

/// Gives `id`'s place in the queue back (an upload that could not begin).
pub(super) fn dequeue(id: &str) {
    drop(Queued(id.to_string()));
}

/// Gives `id`'s place in the queue back when dropped.
struct Queued(String);

impl Drop for Queued {
    fn drop(&mut self) {
        let mut q = QUEUED.lock().unwrap_or_else(|p| p.into_inner());
        q.remove(&self.0);
    }
}

/// Puts `bytes`, the finished file `path` (mapped before retention could remove it), as `id`
/// (its title id, given a place by [`enqueue`]) into `source`; `Source::put` tries it again
/// after a failure.
pub(super) async fn upload(
    state: Arc<State>,
    source: Arc<Source>,
    path: PathBuf,
    id: String,
    bytes: bytes::Bytes,
) {
    let _place = Queued(id.clone());
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
    crate::library::read_file(path, false).map(|r| r.data)
}

pub(super) fn failed(state: &State, path: &std::path::Path, source: &Source, why: &str) {
    state.record.upload_failures.fetch_add(1, Relaxed);
    tracing::error!(file = %path.display(), to = %source.url, %why, "recording not uploaded; the local file stays");
}

/// A finished file is left to the recorder's own upload for this long after it was last
/// written (it may still be on its way).
const SETTLE: std::time::Duration = std::time::Duration::from_secs(60);

/// Puts every finished recording of the rules with `upload` that its bucket lacks (an upload
/// that failed, a file recovered after a crash, one finished while the server stopped): at start
/// and then every `every`. An object of the same key and length counts as uploaded.
pub(crate) async fn reconcile(state: Arc<State>, every: std::time::Duration) {
    loop {
        let config = state.config();
        for rule in config.record.iter() {
            let Some(target) = &rule.upload else {
                continue;
            };
            let blocks = crate::store::Blocks::new(0, 1 << 20, 0);
            match Source::new(target, &config.store, blocks) {
                Ok(source) => reconcile_rule(&state, rule, Arc::new(source)).await,
                Err(e) => {
                    tracing::error!(to = %target.url, error = %e, "recordings cannot be uploaded")
                }
            }
        }
        drop(config);
        tokio::time::sleep(every).await;
    }
}

async fn reconcile_rule(state: &Arc<State>, rule: &super::Rule, source: Arc<Source>) {
    let listed = match source.list().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(to = %source.url, error = %e, "cannot list the recordings' bucket; missing uploads are tried later");
            return;
        }
    };
    let have: std::collections::HashMap<String, u64> =
        listed.into_iter().map(|l| (l.id, l.len)).collect();
    let rule2 = rule.clone();
    let Ok(files) = tokio::task::spawn_blocking(move || finished_files(&rule2)).await else {
        return;
    };
    for (path, id, len) in files {
        if have.get(&id) == Some(&len) || !enqueue(&id, len) {
            continue;
        }
        let p = path.clone();
        let Ok(Ok(bytes)) = tokio::task::spawn_blocking(move || map(&p)).await else {
            dequeue(&id);
            continue;
        };
        tracing::info!(file = %path.display(), to = %source.url, %id, "recording missing from the bucket; uploading it");
        upload(state.clone(), source.clone(), path, id, bytes).await;
    }
}

/// The rule's finished recordings (not being written, last written more than [`SETTLE`] ago):
/// (path, title id, length).
fn finished_files(rule: &super::Rule) -> Vec<(PathBuf, String, u64)> {
    let mut out = Vec::new();
    let Ok(streams) = std::fs::read_dir(&rule.dir) else {
        return out;
    };
    for stream in streams.flatten() {
        let Some(name) = stream.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let (dir, prefix) = rule.of_stream(&name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Some(file) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if file.starts_with('.') || live::record::started(&file).is_none() {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            let settled = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age >= SETTLE);
            if meta.is_file() && settled {
                out.push((e.path(), format!("{prefix}/{file}"), meta.len()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upload_queue_takes_each_file_once_and_no_more_than_its_bound() {
        let quarter = MAX_QUEUED_BYTES / 4;
        let ids: Vec<String> = (0..4).map(|i| format!("test-queue/{i}")).collect();
        for id in &ids {
            assert!(enqueue(id, quarter));
        }
        let full = !enqueue("test-queue/one-more", 1);
        assert!(full, "full: left to the next pass");
        dequeue(&ids[0]);
        let twice = !enqueue(&ids[1], 1);
        assert!(twice, "queued already (the pass over the bucket skips it)");
        assert!(enqueue("test-queue/one-more", quarter));
        dequeue("test-queue/one-more");
        for id in &ids[1..] {
            dequeue(id);
        }
        assert!(QUEUED.lock().unwrap().is_empty());
        assert!(
            enqueue("test-queue/huge", 2 * MAX_QUEUED_BYTES),
            "one file is always taken"
        );
        dequeue("test-queue/huge");
    }
}
