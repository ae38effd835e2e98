//! One stream's recorder: follows its MPEG-TS ring, writes every unit to the open file off the
//! async threads, rotates at keyframes, and keeps the growing title in the library current.

use super::files::{self, Part};
use crate::library::Title;
use crate::live::{Output, Stream};
use crate::state::State;
use bytes::Bytes;
use live::record::checkpoints::Checkpoint;
use live::record::index::{FileIndex, Growing};
use live::record::{Follow, Format, Open};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most bytes taken from the ring per write.
const MAX_BATCH: usize = 4 << 20;
/// A stream without a keyframe for this long is said not to be recorded.
const NO_KEYFRAME: Duration = Duration::from_secs(30);
/// The growing title is updated on each keyframe, and at least this often.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// What a recorder records, and where.
pub(super) struct Job {
    pub state: Arc<State>,
    pub stream: Arc<Stream>,
    /// The rule that records the stream: its directory, rotation, retention (which counts the
    /// files of every stream it records, `Rule::records`) and format.
    pub rule: super::Rule,
    /// This stream's directory in the rule's, and the start of its titles' ids.
    pub dir: PathBuf,
    pub prefix: String,
    /// Where finished files are also put (`[[record]] upload`).
    pub upload: Option<Arc<crate::store::Source>>,
}

/// The file being written.
struct Writing {
    part: Arc<Part>,
    /// Its title id.
    id: Arc<str>,
    /// When its first unit arrived, on the live clock.
    started: Duration,
    len: u64,
    index: FileIndex,
    /// The index could not follow the bytes (then the title has none).
    index_failed: Option<String>,
    /// The fMP4 init segment the file began with (a new one starts a new file).
    init: Option<Bytes>,
    keyframes: usize,
    published_keyframes: usize,
    published_at: Instant,
}

/// Bytes to append: a unit's parts (or the PAT/PMT or init segment that starts a file), where
/// they land, and whether the index reads them.
struct Chunk {
    parts: Vec<Bytes>,
    at: u64,
    indexed: bool,
    keyframe: bool,
}

/// Records until the stream ends or a write fails.
pub(super) async fn record(job: Job) {
    let stats = &job.state.record;
    stats.active.fetch_add(1, Relaxed);
    tracing::info!(stream = %job.stream.name, dir = %job.dir.display(), "recording");
    let mut writing = None;
    let result = follow(&job, &mut writing).await;
    if let Err(e) = &result {
        stats.failures.fetch_add(1, Relaxed);
        tracing::error!(stream = %job.stream.name, error = %e, "recording stopped (the live stream goes on)");
    }
    if let Some(w) = writing {
        if let Err(e) = close(&job, w).await {
            // One failure per recording that ended: counted above if following failed.
            if result.is_ok() {
                stats.failures.fetch_add(1, Relaxed);
            }
            tracing::error!(stream = %job.stream.name, error = %e, "could not finish the recording file");
        }
    }
    if result.is_ok() {
        tracing::info!(stream = %job.stream.name, "recording ended with the stream");
    }
    stats.active.fetch_sub(1, Relaxed);
}

async fn follow(job: &Job, writing: &mut Option<Writing>) -> io::Result<()> {
    let stats = &job.state.record;
    let output = match job.rule.format {
        Format::Ts => Output::Ts,
        Format::Fmp4 => Output::Mp4,
    };
    let live = &job.state.live;
    if output == Output::Mp4 && !job.stream.want_media(live.config.ring, live.config.ll_hls) {
        return Err(io::Error::other(
            "fmp4 needs H.264 or H.265 video; this stream's is neither",
        ));
    }
    let mut rx = job.stream.subscribe(output);
    let mut cursor = Follow::default();
    let mut psi = Psi::default();
    // When the first unit came, while no file could start yet (no keyframe).
    let mut waiting: Option<Duration> = None;
    loop {
        rx.borrow_and_update();
        let (taken, ended) = {
            let inner = job.stream.read();
            let ended = inner.lifecycle.is_ended();
            match inner.ring(output) {
                Some(ring) => {
                    stats.max_lag_units.fetch_max(cursor.lag(ring), Relaxed);
                    (cursor.take(ring, MAX_BATCH), ended)
                }
                None => (Default::default(), ended),
            }
        };
        if taken.lost > 0 {
            stats.lost_units.fetch_add(taken.lost, Relaxed);
            tracing::warn!(stream = %job.stream.name, units = taken.lost, "the recording fell behind the stream and lost units; a new file starts at the next keyframe");
            if let Some(w) = writing.take() {
                close(job, w).await?;
            }
        }
        if taken.units.is_empty() {
            if ended {
                return Ok(());
            }
            if rx.changed().await.is_err() {
                return Ok(());
            }
            continue;
        }
        let mut batch: Vec<Chunk> = Vec::new();
        let mut batched = 0u64;
        // Keyframes of this batch, pushed once they are written.
        let mut marks: Vec<Checkpoint> = Vec::new();
        for u in taken.units {
            // An fMP4 stream's new init segment, inline for its viewers: a file cannot hold a
            // second one, so the next file starts with it, at the next keyframe.
            if output == Output::Mp4 && !u.keyframe && is_init(&u.data) {
                continue;
            }
            let open = writing.as_ref().map(|w| Open {
                started: w.started,
                bytes: w.len + batched,
            });
            let new_init = u.keyframe
                && output == Output::Mp4
                && writing
                    .as_ref()
                    .is_some_and(|w| w.init.as_ref() != u.psi.first());
            if new_init || job.rule.rotation.starts_file(open, u.keyframe, u.arrived) {
                if let Some(w) = writing.as_mut() {
                    // On failure the file stays in `writing`, for `record` to finish.
                    write(job, w, std::mem::take(&mut batch)).await?;
                    publish(job, w, true);
                    mark(job, output, std::mem::take(&mut marks));
                }
                if let Some(w) = writing.take() {
                    close(job, w).await?;
                }
                *writing = Some(start(job, u.arrived, u.psi.first()).await?);
                waiting = None;
                batched = u.psi.iter().map(|p| p.len() as u64).sum();
                batch.push(Chunk {
                    parts: u.psi.clone(),
                    at: 0,
                    indexed: output == Output::Ts,
                    keyframe: false,
                });
            }
            let Some(w) = writing.as_ref() else {
                // Before the first keyframe: say so once if none comes (an audio-only stream,
                // or video whose keyframes are not marked, is not recorded).
                let since = *waiting.get_or_insert(u.arrived);
                if u.arrived.saturating_sub(since) >= NO_KEYFRAME && since != Duration::MAX {
                    tracing::warn!(stream = %job.stream.name, "nothing recorded: no video keyframe in {NO_KEYFRAME:?} of stream (a file starts at one)");
                    waiting = Some(Duration::MAX);
                }
                continue;
            };
            let at = w.len + batched;
            if u.keyframe {
                marks.push(Checkpoint {
                    seq: u.seq,
                    arrived: u.arrived,
                    file: w.id.clone(),
                    offset: at,
                    psi: psi.of(&u.psi),
                });
            }
            batched += u.len() as u64;
            let mut parts = Vec::with_capacity(1 + u.more.len());
            parts.push(u.data);
            parts.extend(u.more);
            batch.push(Chunk {
                parts,
                at,
                indexed: true,
                keyframe: u.keyframe,
            });
        }
        if let Some(w) = writing.as_mut() {
            write(job, w, batch).await?;
            publish(job, w, false);
            mark(job, output, marks);
        }
    }
}

/// An init segment (`ftyp` first) rather than a fragment.
fn is_init(data: &[u8]) -> bool {
    data.get(4..8) == Some(b"ftyp")
}

/// Notes keyframes of `output` as written (DVR reads the recording from them).
fn mark(job: &Job, output: Output, marks: Vec<Checkpoint>) {
    if marks.is_empty() {
        return;
    }
    let mut g = job
        .stream
        .recorded
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let (_, c) = g.get_or_insert_with(|| (output, Default::default()));
    for m in marks {
        c.push(m);
    }
}

/// The PAT and PMT of the newest keyframe, copied once each time they change: a checkpoint
/// holds them for hours, and must not hold the receive slabs they were sliced from.
#[derive(Default)]
struct Psi(Bytes);

impl Psi {
    fn of(&mut self, parts: &[Bytes]) -> Bytes {
        let same = self.0.len() == parts.iter().map(Bytes::len).sum::<usize>()
            && parts
                .iter()
                .scan(0, |at, p| {
                    let i = *at;
                    *at += p.len();
                    Some(self.0[i..i + p.len()] == p[..])
                })
                .all(|eq| eq);
        if !same {
            self.0 = Bytes::from(parts.concat());
        }
        self.0.clone()
    }
}

/// Opens the next file, for a recording whose first unit arrived at `arrived` (live clock);
/// `init`: an fMP4 file's init segment.
async fn start(job: &Job, arrived: Duration, init: Option<&Bytes>) -> io::Result<Writing> {
    let ntp = job.state.live.ntp(arrived);
    let started_ms = live::llhls::wallclock::ntp_to_unix_ms(ntp).unwrap_or(0);
    let index = match job.rule.format {
        Format::Ts => FileIndex::Ts(Growing::default()),
        Format::Fmp4 => {
            let init =
                init.ok_or_else(|| io::Error::other("an fMP4 keyframe without an init segment"))?;
            let g = media::mp4::growing::Growing::new(init)
                .map_err(|e| io::Error::other(format!("the stream's init segment: {e}")))?;
            FileIndex::Mp4(g)
        }
    };
    let (dir, ext) = (job.dir.clone(), job.rule.format.ext());
    let part = blocking(move || files::open(&dir, started_ms, ext)).await?;
    tracing::info!(stream = %job.stream.name, file = %part.path.display(), "recording to a new file");
    let id: Arc<str> = format!("{}/{}", job.prefix, part.name).into();
    job.state.recording_started(&id);
    Ok(Writing {
        id,
        part: Arc::new(part),
        started: arrived,
        len: 0,
        index,
        index_failed: None,
        init: init.cloned(),
        keyframes: 0,
        published_keyframes: 0,
        published_at: Instant::now(),
    })
}

/// Appends the chunks to the file (off the async threads), and to its index.
async fn write(job: &Job, w: &mut Writing, chunks: Vec<Chunk>) -> io::Result<()> {
    if chunks.is_empty() {
        return Ok(());
    }
    let part = w.part.clone();
    let whole = w.len;
    let chunks = blocking(move || {
        let mut f: &std::fs::File = &part.file;
        for p in chunks.iter().flat_map(|c| &c.parts) {
            if let Err(e) = f.write_all(p) {
                // Part of a unit may have gone in: the file ends with its last whole one.
                let _ = part.file.set_len(whole);
                return Err(e);
            }
        }
        Ok(chunks)
    })
    .await?;
    let mut bytes = 0;
    for c in &chunks {
        bytes += c.parts.iter().map(|p| p.len() as u64).sum::<u64>();
        w.keyframes += usize::from(c.keyframe);
        if c.indexed && w.index_failed.is_none() {
            if let Err(e) = w.index.feed(&c.parts, c.at) {
                tracing::warn!(stream = %job.stream.name, error = %e, "the recording's index stops here; the file is indexed when finished");
                w.index_failed = Some(e.to_string());
            }
        }
    }
    w.len += bytes;
    job.state.record.bytes.fetch_add(bytes, Relaxed);
    Ok(())
}

/// Puts the file's state now into the library as a growing title, when a keyframe was written
/// since the last time or `PUBLISH_EVERY` passed (`force`: in any case).
fn publish(job: &Job, w: &mut Writing, force: bool) {
    let due = w.keyframes > w.published_keyframes || w.published_at.elapsed() >= PUBLISH_EVERY;
    if !(force || due) || w.len == 0 {
        return;
    }
    let Ok(len) = usize::try_from(w.len) else {
        return;
    };
    // SAFETY: the mapping covers the first `len` bytes of a file that holds them already (they
    // were written before) and that nothing truncates: the recorder only appends, retention
    // removes finished files only (and removing a mapped file keeps its pages), and recovery
    // runs before the server starts. The mapping is read-only.
    let map = unsafe { crate::truncated::Mapping::map(&w.part.file, Some(len)) };
    let map = match map {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(stream = %job.stream.name, error = %e, "cannot map the recording; its title is not updated");
            return;
        }
    };
    let (map, mapped) = map;
    let data = Bytes::from_owner(map);
    let index = match &w.index_failed {
        Some(e) => Err(e.clone()),
        None => w.index.info(&data),
    };
    let container = match job.rule.format {
        Format::Ts => media::Container::MpegTs,
        Format::Fmp4 => media::Container::Mp4,
    };
    let mut title = Title::growing(
        w.id.to_string(),
        container,
        data,
        w.part.file.clone(),
        index,
        w.part.started_ms,
    );
    title.mapped = mapped;
    job.state.put_title(title);
    w.published_keyframes = w.keyframes;
    w.published_at = Instant::now();
}

/// Finishes a file: its last bytes into the growing title, then to disk, its name, a library
/// rescan (which turns it into an ordinary title), and retention.
async fn close(job: &Job, mut w: Writing) -> io::Result<()> {
    publish(job, &mut w, true);
    let part = w.part.clone();
    let finished = blocking(move || {
        part.file.sync_data()?;
        files::finish(&part)
    })
    .await;
    // Whatever happened, it is no longer being written: the next rescan shows the file as it
    // is (finished under its name; or, not renamed, left out until the next start recovers it).
    job.state.recording_finished(&w.id);
    if let Err(e) = finished {
        job.state.library_changed.notify_one();
        return Err(e);
    }
    job.state.record.files.fetch_add(1, Relaxed);
    tracing::info!(stream = %job.stream.name, file = %w.part.path.display(), bytes = w.len, "recording file finished");
    job.state.library_changed.notify_one();
    let queued = job
        .upload
        .as_ref()
        .filter(|_| super::upload::enqueue(&w.id, w.len));
    if job.upload.is_some() && queued.is_none() {
        let file = w.part.path.display();
        tracing::warn!(%file, "uploads are 4 GiB behind; this file is left to the next pass over the bucket (lost to it if retention removes it first)");
    }
    if let Some(source) = queued {
        let path = w.part.path.clone();
        // The file as written, by its handle (not its name, which another stream's retention
        // could have removed by now).
        let (file, len) = (w.part.file.clone(), w.len);
        match blocking(move || super::upload::map(&file, len)).await {
            Ok(mapped) => {
                let (state, id) = (job.state.clone(), w.id.to_string());
                tokio::spawn(super::upload::upload(
                    state,
                    source.clone(),
                    path,
                    id,
                    mapped,
                ));
            }
            Err(e) => {
                super::upload::dequeue(&w.id);
                super::upload::failed(&job.state, &path, source, &e.to_string());
            }
        }
    }
    let (dir, keep) = (job.rule.dir.clone(), job.rule.keep);
    let now_ms = live::llhls::wallclock::ntp_to_unix_ms(job.state.live.ntp(job.state.live.now()))
        .unwrap_or(0);
    // The ids of the rule's files are its prefix and their path in its directory.
    let rule_prefix = job
        .prefix
        .strip_suffix(job.stream.name.as_str())
        .unwrap_or_default()
        .to_string();
    let id_of = {
        let (dir, rule_prefix) = (job.rule.dir.clone(), rule_prefix.clone());
        move |p: &std::path::Path| {
            let rel = p.strip_prefix(&dir).ok()?.to_str()?;
            Some(format!("{rule_prefix}{rel}"))
        }
    };
    let (rule, rules) = (job.rule.clone(), job.state.config().record.clone());
    let uploads = job.upload.is_some();
    let id = id_of.clone();
    let removed = blocking(move || {
        let owns = |stream: &str| rule.records(&rules, stream);
        // Of a rule with uploads, only files in the bucket (nothing stored is lost).
        let may_remove = |p: &std::path::Path| {
            !uploads || id(p).is_some_and(|id| super::upload::uploaded(&id, p))
        };
        Ok(files::apply_retention(
            &dir,
            keep,
            now_ms,
            &owns,
            &may_remove,
        ))
    })
    .await?;
    if !removed.is_empty() {
        tracing::info!(stream = %job.stream.name, files = ?removed, "retention removed recordings");
        // DVR no longer reaches into the removed files, of this stream or of any other the
        // rule records (retention counts them all).
        let gone: Vec<String> = removed.iter().filter_map(|p| id_of(p)).collect();
        gone.iter().for_each(|id| super::upload::forget(id));
        for stream in job.state.live.list() {
            if let Some((_, c)) = stream
                .recorded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
            {
                c.retain_files(|f| !gone.iter().any(|g| g == f));
            }
        }
        job.state.library_changed.notify_one();
    }
    Ok(())
}

/// Runs blocking file work on tokio's blocking threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
}
