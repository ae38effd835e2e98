//! The video library: titles found by scanning a directory, held in memory within a budget, each
//! indexed once at load.
//!
//! A title's bytes are one [`Bytes`]: a single heap allocation (cached) or, beyond the cache budget, a
//! read-only mapping of the file (served from the page cache). Either way the serving path only ever
//! slices it. A title's id is its path relative to the library with `/` separators; ids are looked up
//! in a map built at load time and never joined to a filesystem path, so no request can reach outside
//! the library.

mod entity;
mod files;
mod stored;

pub use stored::{list as list_stored, Listing, LoadPackage};

use crate::error::StartError;
use bytes::Bytes;
use files::{read, walk};
use media::{Container, MediaInfo};
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One video.
#[derive(Debug)]
pub struct Title {
    pub id: String,
    pub data: Bytes,
    /// True when the bytes sit in our own memory, false when mapped from the file (page cache).
    pub cached: bool,
    /// A file holding exactly `data`: the sealed memfd of a cached title, or the title's own file
    /// when it is mapped. `None` for static titles. Used for `sendfile`.
    pub file: Option<Arc<std::fs::File>>,
    pub container: Container,
    /// For a title in object storage (`data` is then empty): the object its bytes are read from.
    pub remote: Option<Arc<crate::store::Object>>,
    /// The seek index, or why the title could not be indexed (it is still served as bytes).
    pub index: Result<MediaInfo, String>,
    /// A strong entity tag, quoted.
    pub etag: String,
    /// Whole seconds.
    pub last_modified: SystemTime,
    /// `ETag` and `Last-Modified` as header values, formatted once at load rather than per response.
    pub etag_header: http::HeaderValue,
    pub last_modified_header: http::HeaderValue,
    /// What identified the file when it was read (a rescan keeps a title whose file still has it).
    pub stamp: Option<FileStamp>,
    /// When `data` is a mapping of its file: whether the file was found cut short under it.
    pub(crate) mapped: Option<crate::truncated::Mapped>,
    /// Its packaging for clips, HLS and DASH, built on first use (see [`Title::package`]).
    package: std::sync::OnceLock<Result<Arc<crate::package::Package>, String>>,
    /// An MP4 of fragments (see [`Title::is_fragmented`]), found out once.
    fragmented: std::sync::OnceLock<bool>,
    /// The clips made most recently (a player asks for one clip many times, by ranges).
    pub clips: crate::recent::RecentClips,
    /// A live recording's: when it began, and whether it is still being written.
    pub recording: Option<Recording>,
    /// What the tags of entities derived from the title (clips, segments, playlists) start with:
    /// its `ETag` unquoted; for a growing recording, a part that stays the same as it grows.
    pub tag_base: String,
}

/// What a title that is a live recording adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recording {
    /// When its first frame was received (Unix milliseconds): what wall-clock seeks count from.
    pub started_ms: u64,
    /// Still being written: its length and index grow, its `ETag` is weak and fixed until it is
    /// finished (then the file is read as any other title, with a content `ETag`).
    pub growing: bool,
}

/// A file's identity and version without reading it: length, modification and change times,
/// inode, device. (The change time, which cannot be set back, sees a file rewritten in place with
/// its length and modification time kept: `rsync --inplace -a`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    modified: SystemTime,
    changed_ns: i128,
    ino: u64,
    dev: u64,
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            len: meta.len(),
            modified: meta.modified().unwrap_or(UNIX_EPOCH),
            changed_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }
}

/// What a rescan changed, by title id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

impl Title {
    /// Builds a title from bytes already in memory and indexes it.
    pub fn new(id: String, data: Bytes, cached: bool, etag: String, modified: SystemTime) -> Self {
        let container = media::detect(&data);
        let index = if data.is_empty() {
            Err("empty file".to_string())
        } else {
            media::index(&data).map_err(|e| e.to_string())
        };
        let secs = modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last_modified = UNIX_EPOCH + Duration::from_secs(secs);
        // Built from hex digits, quotes and an HTTP date: always valid header values.
        let header = |s: String| {
            http::HeaderValue::try_from(s).unwrap_or(http::HeaderValue::from_static(""))
        };
        // A file named as a recording is (`20261126T135500.250Z.ts`) knows when it began.
        let recording = id
            .rsplit('/')
            .next()
            .and_then(::live::record::started)
            .map(|started_ms| Recording {
                started_ms,
                growing: false,
            });
        Title {
            recording,
            remote: None,
            file: None,
            stamp: None,
            etag_header: header(etag.clone()),
            tag_base: etag.trim_start_matches("W/").trim_matches('"').to_string(),
            last_modified_header: header(httpdate::fmt_http_date(last_modified)),
            id,
            data,
            cached,
            container,
            index,
            etag,
            last_modified,
            package: std::sync::OnceLock::new(),
            fragmented: std::sync::OnceLock::new(),
            clips: crate::recent::RecentClips::default(),
            mapped: None,
        }
    }

    /// A recording still being written: `data` is the file's bytes so far (a mapping of its first
    /// `data.len()` bytes; the file only grows), `index` what its keyframes say so far.
    pub fn growing(
        id: String,
        container: Container,
        data: Bytes,
        file: Arc<File>,
        index: Result<MediaInfo, String>,
        started_ms: u64,
    ) -> Self {
        // Last-Modified: now, as it grows (a client revalidating by date must not get a 304
        // for bytes it does not have).
        let started = SystemTime::now();
        // Weak (the bytes are not final: no cache may take them for the finished file, and
        // `If-Range` never matches), and naming the length written, so a client revalidating
        // is never told 304 for bytes it does not have. What is derived from the title (its
        // HLS segments, whose bytes never change) is tagged from `tag_base`, which stays.
        use sha2::Digest;
        let h = sha2::Sha256::digest(id.as_bytes());
        let base = format!(
            "rec-{started_ms:x}-{:02x}{:02x}{:02x}{:02x}",
            h[0], h[1], h[2], h[3]
        );
        let etag = format!("W/\"{base}-{:x}\"", data.len());
        let mut t = Title::new(String::new(), Bytes::new(), false, etag, started);
        t.tag_base = base;
        t.id = id;
        t.container = container;
        t.data = data;
        t.index = index;
        t.file = Some(file);
        t.recording = Some(Recording {
            started_ms,
            growing: true,
        });
        t
    }

    /// A recording still being written.
    pub fn is_growing(&self) -> bool {
        self.recording.is_some_and(|r| r.growing)
    }

    /// Whether it is an MP4 of fragments (`moof`s), which is packaged as its own fragments
    /// (HLS, no DASH): its top-level boxes are walked once; in object storage, one not indexed
    /// from its `moov` alone counts as one (its packaging is refused).
    pub fn is_fragmented(&self) -> bool {
        *self.fragmented.get_or_init(|| match &self.remote {
            Some(o) => !o.indexed_from_moov(),
            None => self.container == Container::Mp4 && media::mp4::is_fragmented(&self.data),
        })
    }

    /// Whether the packaging of this title (in object storage) is still to be read from its
    /// store ([`Title::load_package`]) before a clip, playlist or segment can be made of it.
    pub fn package_pending(&self) -> bool {
        self.remote.is_some()
            && self.container == Container::Mp4
            && self.index.is_ok()
            && self.package.get().is_none()
    }

    /// Bytes its packaging holds, once built (0 before).
    pub fn package_memory(&self) -> usize {
        match self.package.get() {
            Some(Ok(p)) => p.memory(),
            _ => 0,
        }
    }

    /// The title's packaging (its parsed movie for an MP4, its segments), built on first use and
    /// kept; or why it has none. Building it walks the title's sample tables once.
    /// A title in object storage has one once [`Title::load_package`] read it.
    pub fn package(&self) -> Result<&Arc<crate::package::Package>, &str> {
        if self.remote.is_some() {
            return match self.package.get() {
                Some(built) => built.as_ref().map_err(String::as_str),
                None if self.index.is_err() => Err("it has no index (see its index_error)"),
                None if self.container != Container::Mp4 => Err(
                    "HLS, DASH and clips of a title in object storage are made from an \
                     unfragmented MP4; this one is served as bytes and by seek",
                ),
                None => Err("its movie is not read from the store yet"),
            };
        }
        self.package
            .get_or_init(|| {
                crate::package::Package::build(&self.data, &self.index, self.is_growing())
                    .map(Arc::new)
            })
            .as_ref()
            .map_err(String::as_str)
    }
}

impl Title {
    /// Memory held by the seek index (not counting the title's bytes).
    pub fn index_bytes(&self) -> usize {
        self.index.as_ref().map_or(0, |i| {
            i.keyframes.capacity() * std::mem::size_of::<media::Keyframe>()
                + std::mem::size_of::<MediaInfo>()
        })
    }
}

/// What happened while loading, for a progress bar or log lines.
#[derive(Debug)]
pub enum LoadEvent<'a> {
    /// The scan found this many files and bytes in all.
    Found { files: usize, bytes: u64 },
    /// One title is loaded (its `index` may be an error: then it is served as bytes without seek).
    /// `read` is the time to bring its bytes into memory, `indexed` the time to build its index
    /// (and, for a title held in memory, its packaging).
    Loaded {
        title: &'a Title,
        bytes: u64,
        read: Duration,
        indexed: Duration,
    },
    /// A file was left out (unreadable, or a symlink that leads outside the library).
    Skipped { path: &'a Path, reason: String },
}

/// All titles by id: those a scan found (shared between the library's versions: a recording's
/// update copies only the few growing titles, however large the library) and the recordings
/// being written.
#[derive(Debug, Default, Clone)]
pub struct Library {
    titles: Arc<BTreeMap<String, Arc<Title>>>,
    growing: BTreeMap<String, Arc<Title>>,
    /// Titles in object storage (`stored.rs`); a local title of the same id comes first.
    stored: Arc<BTreeMap<String, Arc<Title>>>,
}

impl Library {
    pub fn get(&self, id: &str) -> Option<&Arc<Title>> {
        self.titles
            .get(id)
            .or_else(|| self.growing.get(id))
            .or_else(|| self.stored.get(id))
    }

    /// Every title, in id order (where two hold one id: the scanned, the growing, the stored).
    pub fn titles(&self) -> impl Iterator<Item = &Arc<Title>> {
        let mut all = [
            self.titles.iter().peekable(),
            self.growing.iter().peekable(),
            self.stored.iter().peekable(),
        ];
        std::iter::from_fn(move || {
            let min = all.iter_mut().filter_map(|i| i.peek().map(|p| p.0)).min()?;
            let mut first = None;
            for i in all.iter_mut() {
                if i.peek().is_some_and(|p| p.0 == min) {
                    let t = i.next().map(|p| p.1);
                    first = first.or(t);
                }
            }
            first
        })
    }

    pub fn len(&self) -> usize {
        self.titles().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn insert(&mut self, title: Title) {
        Arc::make_mut(&mut self.titles).insert(title.id.clone(), Arc::new(title));
    }

    /// Adds or replaces a recording being written.
    pub fn put_growing(&mut self, title: Title) {
        self.growing.insert(title.id.clone(), Arc::new(title));
    }

    /// `next`, a rescan of this library's directory, with this library's growing recordings
    /// that it does not hold (their files are still dotfiles, which a scan leaves out) and that
    /// are still being written (`writing`: their ids). A finished one is what the scan found:
    /// its file under its name, or nothing (removed by retention, or a failed rename).
    pub fn with_growing_of(
        &self,
        mut next: Library,
        writing: &std::collections::HashSet<String>,
    ) -> Library {
        next.stored = self.stored.clone();
        next.growing = self
            .growing
            .iter()
            .filter(|(id, _)| writing.contains(*id) && !next.titles.contains_key(*id))
            .map(|(id, t)| (id.clone(), t.clone()))
            .collect();
        next
    }

    /// A library of static byte strings (the embedded demo titles).
    pub fn from_static(files: &[(&str, &'static [u8])], modified: SystemTime) -> Self {
        let mut lib = Library::default();
        for (id, data) in files {
            let etag = crate::etags::of(data);
            let title = Title::new(
                id.to_string(),
                Bytes::from_static(data),
                true,
                etag,
                modified,
            );
            let _ = title.package();
            lib.insert(title);
        }
        lib
    }

    /// Scans `root` recursively and loads every regular file; the first `budget` bytes (in id order)
    /// are read into memory, the rest are mapped. Dotfiles are skipped; symlinks are followed only
    /// when they resolve inside `root`.
    pub fn load(
        root: &Path,
        budget: u64,
        events: impl FnMut(LoadEvent<'_>),
    ) -> Result<Self, StartError> {
        Library::scan(root, budget, None, events)
    }

    /// Scans `root` again: titles whose files are unchanged (same length, modification time and
    /// inode) are kept as they are, new and changed files are read and indexed, and titles whose
    /// files are gone are left out. Requests already running keep the `Bytes` of the titles they
    /// hold, so a replaced title's old bytes are served to them to the end.
    pub fn rescan(
        &self,
        root: &Path,
        budget: u64,
        events: impl FnMut(LoadEvent<'_>),
    ) -> Result<(Library, Changes), StartError> {
        let next = Library::scan(root, budget, Some(self), events)?;
        let mut changes = Changes::default();
        for (id, t) in next.titles.iter() {
            match self.titles.get(id) {
                None => changes.added.push(id.clone()),
                // (Not one read into memory again with the same bytes: its tag is the same.)
                Some(old) if !Arc::ptr_eq(old, t) && old.etag != t.etag => {
                    changes.changed.push(id.clone())
                }
                Some(_) => {}
            }
        }
        changes.removed = self
            .titles
            .keys()
            .filter(|id| !next.titles.contains_key(*id))
            .cloned()
            .collect();
        Ok((next, changes))
    }

    fn scan(
        root: &Path,
        budget: u64,
        previous: Option<&Library>,
        mut events: impl FnMut(LoadEvent<'_>),
    ) -> Result<Self, StartError> {
        let lib_err = |error| StartError::Library {
            path: root.display().to_string(),
            error,
        };
        let canon_root = root.canonicalize().map_err(lib_err)?;
        if !canon_root.is_dir() {
            return Err(lib_err(std::io::Error::other("not a directory")));
        }
        let mut files = Vec::new();
        let mut seen_dirs = HashSet::new();
        let mut skipped = Vec::new();
        walk(
            &canon_root,
            &canon_root,
            &mut seen_dirs,
            &mut files,
            &mut skipped,
        );
        for (path, reason) in &skipped {
            events(LoadEvent::Skipped {
                path,
                reason: reason.clone(),
            });
        }
        files.sort();
        let total: u64 = files.iter().map(|f| f.2).sum();
        events(LoadEvent::Found {
            files: files.len(),
            bytes: total,
        });
        let mut lib = Library::default();
        // Titles kept from the previous scan: their files are unchanged (same stamp).
        let mut kept = std::collections::HashMap::new();
        for (id, path, _) in &files {
            let stamp = std::fs::metadata(path).ok().map(|m| FileStamp::of(&m));
            if let Some(t) = previous.and_then(|p| p.titles.get(id)) {
                // (Not one whose file was found cut short under its mapping: its file may look
                // the same, `cp -p`, but the mapping reads zeros where the file ended.)
                if stamp.is_some() && t.stamp == stamp && t.readable() {
                    kept.insert(id.clone(), t.clone());
                }
            }
        }
        // What the library in use holds in memory counts first, whatever order the new files
        // come in: the titles kept, and those changed or gone too (their bytes are let go only
        // when this library replaces it: a rescan of a library whose every file changed must
        // not hold two copies of it). A changed title that does not fit is mapped this time.
        let mut used: u64 = previous.map_or(0, |p| {
            p.titles
                .values()
                .filter(|t| t.cached)
                .map(|t| t.data.len() as u64)
                .sum()
        });
        let mut etags = crate::etags::Etags::open(&canon_root);
        for (id, path, len) in files {
            // A title kept mapped from its file that fits in memory now (one a rescan left on
            // disk while the bytes it replaced were still held) is read into memory again.
            let kept_title = kept
                .remove(&id)
                .filter(|t| t.cached || t.is_growing() || used.saturating_add(len) > budget);
            if let Some(t) = kept_title {
                if let Some(st) = t.stamp {
                    let version = crate::etags::Version {
                        len: st.len,
                        modified_ns: st
                            .modified
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| d.as_nanos()),
                        changed_ns: st.changed_ns,
                        inode: st.ino,
                    };
                    etags.keep(&path, version, &t.etag);
                }
                Arc::make_mut(&mut lib.titles).insert(id, t);
                continue;
            }
            let stamp = std::fs::metadata(&path).ok().map(|m| FileStamp::of(&m));
            let cache = used.saturating_add(len) <= budget;
            let started = Instant::now();
            match read(&canon_root, &path, cache) {
                Ok(files::Read {
                    data,
                    file,
                    modified,
                    mapped,
                }) => {
                    if cache {
                        used += len;
                    }
                    let version = crate::etags::Version {
                        len: data.len() as u64,
                        modified_ns: modified
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| d.as_nanos()),
                        changed_ns: stamp.map_or(0, |s| s.changed_ns),
                        inode: stamp.map_or(0, |s| s.ino),
                    };
                    let etag = etags.tag(&path, version, &data);
                    let read = started.elapsed();
                    let mut title = Title::new(id, data, cache, etag, modified);
                    title.file = file;
                    title.mapped = mapped;
                    title.stamp = stamp;
                    if cache {
                        // Packaged as it loads (an MP4's sample tables expanded, about 0.5 % of
                        // its bytes), so that its first clip, playlist or segment does not pay
                        // for it; a mapped title is packaged on first use.
                        let _ = title.package();
                    }
                    events(LoadEvent::Loaded {
                        title: &title,
                        bytes: len,
                        read,
                        indexed: started.elapsed() - read,
                    });
                    lib.insert(title);
                }
                Err(e) => events(LoadEvent::Skipped {
                    path: &path,
                    reason: e.to_string(),
                }),
            }
        }
        if let Err(e) = etags.save() {
            tracing::warn!(
                "could not keep the titles' entity tags for the next start ({e}); \
                 they will be computed again"
            );
        }
        Ok(lib)
    }
}

/// Half of the machine's memory, or 1 GiB when that cannot be read.
pub fn default_cache_budget() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(1 << 30, |kib| kib * 1024 / 2)
}

/// What a title id's URL path escapes: besides what a path cannot hold, `\` (browsers read it
/// as `/`, and `..` between them would lead elsewhere) and `&` (an HTML attribute would read
/// `&amp;` in a name as a character reference).
const ID_SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'&');

/// A title id as it goes into a URL path.
pub fn encode_id(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, ID_SET).to_string()
}

#[cfg(test)]
mod tests;
