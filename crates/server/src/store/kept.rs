//! The indexes of titles in object storage, kept in the cache directory across restarts: a
//! server that starts again (or relists after a restart) reads each object's index from here
//! rather than from the store, when the object's key, length and ETag are those it was indexed
//! at (a store's ETag names one version of an object, and every read of the title is pinned to
//! it with `If-Match`, so a kept index is never applied to other bytes).
//!
//! One small JSON file per indexed object (`<cache>/s3-index/<hash of the source>/<hash of key,
//! ETag and length>.json`), removed when a listing of its source no longer names that version;
//! written after the object is indexed (to a temporary name, then renamed) and
//! read back through `serde_json` with every field checked (a file of another version, of
//! another object, too large, or whose keyframes lie past the object is ignored, and the object
//! indexed again). Where the directory cannot be written, indexes are built at every start.

use super::Listed;
use media::{AudioInfo, Container, FrameRate, Keyframe, MediaInfo, MediaTime, VideoInfo};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The format's and the indexers' version: a file of another is ignored (raise it whenever an
/// index would come out differently).
const VERSION: u32 = 2;
/// A kept index larger than this is ignored (a title of 10⁶ keyframes is about 40 MB).
const MAX_FILE: u64 = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
struct Doc {
    v: u32,
    source: String,
    key: String,
    etag: String,
    len: u64,
    container: String,
    /// (ticks, scale)
    duration: (i64, u32),
    video: Option<VideoDoc>,
    audio: Option<AudioDoc>,
    /// (ticks, scale, byte offset)
    keyframes: Vec<(i64, u32, u64)>,
    /// Indexed from its `moov` alone (an unfragmented MP4: packaged from its `moov`).
    moov: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct VideoDoc {
    codec: String,
    width: Option<u32>,
    height: Option<u32>,
    frame_rate: Option<(u32, u32)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct AudioDoc {
    codec: String,
    sample_rate: Option<u32>,
    channels: Option<u16>,
}

/// 32 hex digits of the SHA-256 of `parts` (each ended by a NUL).
fn hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let mut name = String::with_capacity(32);
    for b in &h.finalize()[..16] {
        let _ = write!(name, "{b:02x}");
    }
    name
}

/// The directory of the indexes kept for the source `source` under `dir`.
fn source_dir(dir: &Path, source: &str) -> PathBuf {
    dir.join("s3-index").join(hash(&[source]))
}

/// The file name of the index of `l` in its source's directory.
fn file_name(l: &Listed) -> String {
    format!("{}.json", hash(&[&l.key, &l.etag, &l.len.to_string()]))
}

/// Where the index of `l` (listed from the source `source`) is kept under `dir`.
fn path(dir: &Path, source: &str, l: &Listed) -> PathBuf {
    source_dir(dir, source).join(file_name(l))
}

/// Removes the kept indexes of `source` that its listing `listed` no longer names (objects
/// gone or replaced), and temporary files left older than [`STALE`]; returns how many. Called
/// after a listing that succeeded.
pub fn prune(dir: &Path, source: &str, listed: &[Listed]) -> usize {
    let keep: std::collections::HashSet<String> = listed.iter().map(file_name).collect();
    let Ok(entries) = std::fs::read_dir(source_dir(dir, source)) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        // And what a writer killed between its write and its rename left (not one that may be
        // writing now: another server sharing the directory).
        let stale = name.ends_with(".tmp")
            && e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| m.elapsed().is_ok_and(|age| age > STALE));
        let gone = name.ends_with(".json") && !keep.contains(name);
        if (gone || stale) && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn container(name: &str) -> Option<Container> {
    [
        Container::Mp4,
        Container::MpegTs,
        Container::WebM,
        Container::Matroska,
    ]
    .into_iter()
    .find(|c| c.name() == name)
}

/// The kept index of `l`, when there is one for exactly this version of it: its container, its
/// index, and whether it was read from the `moov` alone (see [`Doc::moov`]). An object the
/// store listed without an ETag has none: its length and time (the version the listing makes
/// up) do not tell an object overwritten with one of the same length in the same second.
pub fn load(dir: &Path, source: &str, l: &Listed) -> Option<(Container, MediaInfo, bool)> {
    if !l.store_etag {
        return None;
    }
    let p = path(dir, source, l);
    if std::fs::metadata(&p).ok()?.len() > MAX_FILE {
        return None;
    }
    let doc: Doc = serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?;
    decode(doc, source, l)
}

fn decode(doc: Doc, source: &str, l: &Listed) -> Option<(Container, MediaInfo, bool)> {
    let same = doc.v == VERSION
        && doc.source == source
        && doc.key == l.key
        && doc.etag == l.etag
        && doc.len == l.len;
    let c = container(&doc.container).filter(|_| same)?;
    let time = |(ticks, scale): (i64, u32)| (scale > 0).then(|| MediaTime::new(ticks, scale));
    let mut keyframes = Vec::with_capacity(doc.keyframes.len());
    for (ticks, scale, offset) in doc.keyframes {
        if offset >= l.len {
            return None;
        }
        keyframes.push(Keyframe {
            time: time((ticks, scale))?,
            offset,
        });
    }
    if keyframes.windows(2).any(|w| w[1].time < w[0].time) {
        return None;
    }
    let video = match doc.video {
        Some(v) => Some(VideoInfo {
            codec: v.codec,
            width: v.width,
            height: v.height,
            frame_rate: match v.frame_rate {
                // As the indexers give them: no more than 10,000 fps.
                Some((num, den)) if num > 0 && den > 0 && num / den <= 10_000 => {
                    Some(FrameRate { num, den })
                }
                Some(_) => return None,
                None => None,
            },
        }),
        None => None,
    };
    let info = MediaInfo {
        container: c,
        duration: time(doc.duration)?,
        video,
        audio: doc.audio.map(|a| AudioInfo {
            codec: a.codec,
            sample_rate: a.sample_rate,
            channels: a.channels,
        }),
        keyframes,
    };
    Some((c, info, doc.moov))
}

fn encode(source: &str, l: &Listed, c: Container, i: &MediaInfo, moov: bool) -> Doc {
    Doc {
        v: VERSION,
        source: source.to_string(),
        key: l.key.clone(),
        etag: l.etag.clone(),
        len: l.len,
        container: c.name().to_string(),
        duration: (i.duration.ticks, i.duration.scale),
        video: i.video.as_ref().map(|v| VideoDoc {
            codec: v.codec.clone(),
            width: v.width,
            height: v.height,
            frame_rate: v.frame_rate.map(|f| (f.num, f.den)),
        }),
        audio: i.audio.as_ref().map(|a| AudioDoc {
            codec: a.codec.clone(),
            sample_rate: a.sample_rate,
            channels: a.channels,
        }),
        keyframes: i
            .keyframes
            .iter()
            .map(|k| (k.time.ticks, k.time.scale, k.offset))
            .collect(),
        moov,
    }
}

/// Keeps the index of `l` (written to a temporary name, then renamed into place).
pub fn save(
    dir: &Path,
    source: &str,
    l: &Listed,
    c: Container,
    i: &MediaInfo,
    moov: bool,
) -> std::io::Result<()> {
    if !l.store_etag {
        return Ok(());
    }
    let p = path(dir, source, l);
    let parent = p.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent)?;
    let json = serde_json::to_vec(&encode(source, l, c, i, moov)).map_err(std::io::Error::other)?;
    // Unique to this writer: servers sharing the directory may index the same object at once.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = p.with_extension(format!("json.{}.{nanos}.tmp", std::process::id()));
    let written = std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, &p));
    if written.is_err() {
        // (A full disk: what was written of it must not stay and keep the disk full.)
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// How old a temporary file must be to be taken for one its writer left.
const STALE: std::time::Duration = std::time::Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(etag: &str) -> Listed {
        Listed {
            id: "a/b.mp4".into(),
            key: "videos/a/b.mp4".into(),
            len: 1_000_000,
            etag: etag.into(),
            store_etag: true,
            modified: None,
        }
    }

    fn info() -> MediaInfo {
        let data = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../demo/faststart.mp4"
        ))
        .unwrap();
        let mut i = media::index(&data).unwrap();
        i.keyframes.retain(|k| k.offset < 1_000_000);
        i
    }

    #[test]
    fn a_kept_index_reads_back_as_it_was_for_the_same_version_only() {
        let dir = tempfile::tempdir().unwrap();
        let (src, l, i) = ("s3://media/videos", listed("\"e1\""), info());
        assert!(load(dir.path(), src, &l).is_none(), "nothing kept yet");
        save(dir.path(), src, &l, Container::Mp4, &i, true).unwrap();
        assert_eq!(
            load(dir.path(), src, &l),
            Some((Container::Mp4, i.clone(), true))
        );
        assert!(
            load(dir.path(), src, &listed("\"e2\"")).is_none(),
            "another ETag"
        );
        assert!(
            load(dir.path(), "s3://other", &l).is_none(),
            "another source"
        );
    }

    /// A store that lists no ETag: the version the listing makes up (length and time) cannot
    /// tell an object overwritten with one of the same length, so no index is kept for it.
    #[test]
    fn no_index_is_kept_for_an_object_listed_without_an_etag() {
        let dir = tempfile::tempdir().unwrap();
        let (src, i) = ("s3://media/videos", info());
        let made_up = Listed {
            store_etag: false,
            ..listed("\"zc-f4240-0\"")
        };
        save(dir.path(), src, &made_up, Container::Mp4, &i, true).unwrap();
        assert!(load(dir.path(), src, &made_up).is_none());
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "nothing written"
        );
    }

    #[test]
    fn a_listing_that_no_longer_names_a_version_removes_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let (src, i) = ("s3://media/videos", info());
        let (old, new) = (listed("\"e1\""), listed("\"e2\""));
        save(dir.path(), src, &old, Container::Mp4, &i, true).unwrap();
        save(dir.path(), src, &new, Container::Mp4, &i, true).unwrap();
        save(dir.path(), "s3://other", &old, Container::Mp4, &i, true).unwrap();
        assert_eq!(prune(dir.path(), src, std::slice::from_ref(&new)), 1);
        assert!(
            load(dir.path(), src, &old).is_none(),
            "the replaced version's"
        );
        assert!(
            load(dir.path(), src, &new).is_some(),
            "the listed one's stays"
        );
        assert!(
            load(dir.path(), "s3://other", &old).is_some(),
            "another source's stays"
        );
    }

    #[test]
    fn a_temporary_file_a_writer_left_is_removed_once_old_and_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let (src, i) = ("s3://media/videos", info());
        let l = listed("\"e1\"");
        save(dir.path(), src, &l, Container::Mp4, &i, true).unwrap();
        let folder = source_dir(dir.path(), src);
        let (old, new) = (folder.join("x.json.1.2.tmp"), folder.join("y.json.3.4.tmp"));
        std::fs::write(&old, b"{").unwrap();
        std::fs::write(&new, b"{").unwrap();
        let then = std::time::SystemTime::now() - STALE - std::time::Duration::from_secs(1);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(then)
            .unwrap();
        assert_eq!(prune(dir.path(), src, std::slice::from_ref(&l)), 1);
        assert!(!old.exists() && new.exists());
        assert!(load(dir.path(), src, &l).is_some());
    }

    #[test]
    fn a_damaged_or_foreign_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (src, l, i) = ("s3://media/videos", listed("\"e1\""), info());
        save(dir.path(), src, &l, Container::Mp4, &i, true).unwrap();
        let p = path(dir.path(), src, &l);
        let good = std::fs::read(&p).unwrap();
        std::fs::write(&p, &good[..good.len() / 2]).unwrap();
        assert!(load(dir.path(), src, &l).is_none(), "cut short");
        // Another object's index under this name (a collision, or a copied file).
        let mut doc: Doc = serde_json::from_slice(&good).unwrap();
        doc.key = "videos/other.mp4".into();
        std::fs::write(&p, serde_json::to_vec(&doc).unwrap()).unwrap();
        assert!(load(dir.path(), src, &l).is_none(), "another key");
        // A keyframe past the object's end.
        let mut doc: Doc = serde_json::from_slice(&good).unwrap();
        doc.keyframes.push((i64::MAX, 1, l.len));
        std::fs::write(&p, serde_json::to_vec(&doc).unwrap()).unwrap();
        assert!(load(dir.path(), src, &l).is_none(), "offset past the end");
        // A zero time scale.
        let mut doc: Doc = serde_json::from_slice(&good).unwrap();
        doc.duration.1 = 0;
        std::fs::write(&p, serde_json::to_vec(&doc).unwrap()).unwrap();
        assert!(load(dir.path(), src, &l).is_none(), "zero scale");
    }
}
