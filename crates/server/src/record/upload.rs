//! Finished recording files put into their rule's bucket (`[[record]] upload`), off the
//! recorder: the file is mapped by its handle when it is finished and handed to the request as
//! it is (no copy), two uploads at a time, tried again by `Source::put`. The local file stays
//! whatever happens, and retention removes it only once it is known to be in the bucket
//! ([`uploaded`]: put here, or listed there with its length by [`reconcile`]).

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

/// Title ids of recordings known to be in their bucket whole: put by this process, or found
/// there with their length by [`reconcile`] (which runs at start). Retention of a rule with
/// uploads removes only these; an id goes when its file does ([`forget`]).
static UPLOADED: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Whether the recording `id` (its file `path`) is known to be in its bucket whole: put or
/// listed since the start, or marked so on disk by an earlier run ([`marker`]), which a bucket
/// whose credentials may put but not list needs after a restart.
pub(super) fn uploaded(id: &str, path: &std::path::Path) -> bool {
    let done = UPLOADED.lock().unwrap_or_else(|p| p.into_inner());
    done.contains(id) || marker(path).is_some_and(|m| m.exists())
}

/// The dotfile beside a recording that says it is in its bucket (`.NAME.uploaded`: scans and
/// retention leave dotfiles alone; retention removes it with the file).
pub(super) fn marker(path: &std::path::Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    Some(path.with_file_name(format!(".{name}.uploaded")))
}

/// `id` (its file `path`) is in its bucket whole: remembered, and marked on disk.
fn confirm(id: &str, path: &std::path::Path) {
    let mut done = UPLOADED.lock().unwrap_or_else(|p| p.into_inner());
    done.insert(id.to_string());
    drop(done);
    if let Some(m) = marker(path).filter(|m| !m.exists()) {
        if let Err(e) = std::fs::write(&m, b"") {
            tracing::warn!(file = %m.display(), error = %e, "cannot mark a recording as uploaded; retention keeps it after a restart until the bucket is listed");
        }
    }
}

/// The recording `id` was removed (by retention).
pub(super) fn forget(id: &str) {
    let mut done = UPLOADED.lock().unwrap_or_else(|p| p.into_inner());
    done.remove(id);
}

/// A finished file mapped for its upload, and whether it was found cut short under it since.
pub(super) struct Mapped {
    bytes: bytes::Bytes,
    since: Option<crate::truncated::Mapped>,
}

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

/// Puts `mapped`, the finished file `path`, as `id` (its title id, given a place by
/// [`enqueue`]) into `source`; `Source::put` tries it again after a failure. A file found cut
/// short under the upload (what was read past its new end was zeros) does not count as
/// uploaded: its local file stays, and the next [`reconcile`] puts it again (its length now
/// differs from the object's).
pub(super) async fn upload(
    state: Arc<State>,
    source: Arc<Source>,
    path: PathBuf,
    id: String,
    mapped: Mapped,
) {
    let _place = Queued(id.clone());
    let _turn = AT_ONCE.acquire().await;
    let len = mapped.bytes.len() as u64;
    let put = source.put(&id, mapped.bytes).await;
    let cut = mapped.since.is_some_and(|m| m.cut());
    match put {
        Ok(()) if cut => failed(
            &state,
            &path,
            &source,
            "the file was cut short while it was uploaded",
        ),
        Ok(()) => {
            let (i, p) = (id.clone(), path.clone());
            let _ = tokio::task::spawn_blocking(move || confirm(&i, &p)).await;
            state.record.uploads.fetch_add(1, Relaxed);
            state.record.upload_bytes.fetch_add(len, Relaxed);
            tracing::info!(file = %path.display(), to = %source.url, %id, bytes = len, "recording uploaded");
        }
        Err(e) => failed(&state, &path, &source, &e.to_string()),
    }
}

/// Maps the first `len` bytes of the finished file `file` for [`upload`] (it is not modified
/// again; removing it later keeps the mapping valid).
pub(super) fn map(file: &Arc<std::fs::File>, len: u64) -> std::io::Result<Mapped> {
    let len = usize::try_from(len).map_err(std::io::Error::other)?;
    if len == 0 {
        let (bytes, since) = (bytes::Bytes::new(), None);
        return Ok(Mapped { bytes, since });
    }
    // SAFETY: a read-only mapping of a finished recording, which nothing writes or truncates
    // (the recorder is done with it, retention removes files whole, and removing a mapped file
    // keeps its pages); a file cut short anyway reads as zeros past its end
    // (`crate::truncated`), which `since` tells.
    let (map, since) = unsafe { crate::truncated::Mapping::map(file, Some(len))? };
    Ok(Mapped {
        bytes: bytes::Bytes::from_owner(map),
        since,
    })
}

/// Opens and maps the finished file `path` for [`upload`].
fn map_path(path: &std::path::Path) -> std::io::Result<Mapped> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    map(&Arc::new(file), len)
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
    let (rule2, rules) = (rule.clone(), state.config().record.clone());
    let found = tokio::task::spawn_blocking(move || finished_files(&rule2, &rules));
    let Ok(files) = found.await else {
        return;
    };
    for (path, id, len) in files {
        if have.get(&id) == Some(&len) {
            let (i, p) = (id.clone(), path.clone());
            let _ = tokio::task::spawn_blocking(move || confirm(&i, &p)).await;
            continue;
        }
        if !enqueue(&id, len) {
            continue;
        }
        let p = path.clone();
        let Ok(Ok(bytes)) = tokio::task::spawn_blocking(move || map_path(&p)).await else {
            dequeue(&id);
            continue;
        };
        tracing::info!(file = %path.display(), to = %source.url, %id, "recording missing from the bucket; uploading it");
        upload(state.clone(), source.clone(), path, id, bytes).await;
    }
}

/// The rule's finished recordings (of the streams it records, of the settings' `rules`; not
/// being written, last written more than [`SETTLE`] ago): (path, title id, length).
fn finished_files(rule: &super::Rule, rules: &[super::Rule]) -> Vec<(PathBuf, String, u64)> {
    let mut out = Vec::new();
    let Ok(streams) = std::fs::read_dir(&rule.dir) else {
        return out;
    };
    for stream in streams.flatten() {
        let Some(name) = stream.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !rule.records(rules, &name) {
            continue;
        }
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
