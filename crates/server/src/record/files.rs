//! What recording does to the directory: opening a new file under its dotfile name, renaming it
//! when it is finished, recovering the dotfile a crash left, and retention. Blocking calls: the
//! recorder runs them off the async threads.

use live::record::retention::{self, Finished, Keep};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// The TS packet: a recovered file is cut to whole packets.
const PACKET: u64 = 188;

/// A file being written: where it is now, and the name it gets when finished.
#[derive(Debug)]
pub(super) struct Part {
    pub file: std::sync::Arc<File>,
    pub part: PathBuf,
    pub path: PathBuf,
    /// Its final file name.
    pub name: String,
    pub started_ms: u64,
}

/// The dotfile a file named `name` is written as (library scans leave dotfiles out).
fn part_name(name: &str) -> String {
    format!(".{name}.part")
}

/// Opens a new recording file in `dir` (made if missing) for a recording that began at
/// `started_ms`; a name already taken moves on by a millisecond.
pub(super) fn open(dir: &Path, started_ms: u64, ext: &str) -> io::Result<Part> {
    std::fs::create_dir_all(dir)?;
    for ms in started_ms..started_ms + 1000 {
        let name = live::record::file_name(ms, ext);
        let path = dir.join(&name);
        let part = dir.join(part_name(&name));
        if path.exists() {
            continue;
        }
        // Read too: the growing title maps what is written so far.
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&part)
        {
            Ok(file) => {
                return Ok(Part {
                    file: std::sync::Arc::new(file),
                    part,
                    path,
                    name,
                    started_ms: ms,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free recording file name"))
}

/// Gives a finished file its name.
pub(super) fn finish(part: &Part) -> io::Result<()> {
    std::fs::rename(&part.part, &part.path)
}

/// Takes each rule directory for this process (made if missing): an exclusive lock on its
/// `.lock` file, held as long as the files returned are open. A second server recording into
/// the same directory would "recover" (cut and rename) the files this one is writing: that is
/// an error. A directory that cannot be written (a read-only mount, another owner) is not:
/// it is logged, left out (its rules' recordings fail as they start, each with a log line),
/// and live and VOD are served all the same.
pub fn lock(dirs: &[PathBuf]) -> io::Result<Vec<(PathBuf, File)>> {
    let mut held = Vec::new();
    for dir in dirs {
        let opened = std::fs::create_dir_all(dir).and_then(|()| {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(".lock"))
        });
        let f = match opened {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "the recordings directory cannot be written: nothing is recorded there until it can");
                continue;
            }
        };
        match f.try_lock() {
            Ok(()) => held.push((dir.clone(), f)),
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::other(format!(
                    "another zerocast is recording into {}",
                    dir.display()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
    Ok(held)
}

/// Finishes the files a stopped server left being written under the rule directories `dirs`:
/// each is cut to whole TS packets or whole MP4 fragments (a write cut short by the crash leaves
/// part of one) and given its name, so the library loads it as a title. Returns the files recovered and the bytes cut.
pub fn recover(dirs: &[PathBuf]) -> Vec<(PathBuf, u64)> {
    let mut done = Vec::new();
    for dir in dirs {
        let Ok(streams) = std::fs::read_dir(dir) else {
            continue;
        };
        for stream in streams.flatten() {
            let Ok(entries) = std::fs::read_dir(stream.path()) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                let Some(name) = name.to_str() else { continue };
                let Some(real) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".part"))
                else {
                    continue;
                };
                if live::record::started(real).is_none() {
                    continue;
                }
                let mp4 = real.ends_with(".mp4");
                let (from, to) = (e.path(), stream.path().join(real));
                match recover_one(&from, &to, mp4) {
                    Ok(cut) => done.push((to, cut)),
                    Err(err) => {
                        tracing::error!(file = %from.display(), error = %err, "could not recover a recording file")
                    }
                }
            }
        }
    }
    done
}

fn recover_one(from: &Path, to: &Path, mp4: bool) -> io::Result<u64> {
    let f = OpenOptions::new().read(true).write(true).open(from)?;
    let len = f.metadata()?.len();
    let whole = if mp4 {
        whole_fragments(&f, len)?
    } else {
        // Whole packets, and no video frame the crash cut: a PES of video has no length (it
        // ends where the next one begins), so the last one is not known to be whole.
        let packets = len / PACKET * PACKET;
        last_video_pes(&f, packets)?.unwrap_or(packets)
    };
    if whole != len {
        f.set_len(whole)?;
    }
    drop(f);
    if to.exists() {
        return Err(io::Error::other(format!("{} exists", to.display())));
    }
    std::fs::rename(from, to)?;
    Ok(len - whole)
}

/// How far back from the end [`last_video_pes`] looks (a frame larger than this keeps its
/// file's end as it is).
const TAIL: u64 = (8 << 20) / PACKET * PACKET;

/// Where the last video PES of the TS file `f` (its first `len` bytes, whole packets from the
/// start) begins, when it begins within [`TAIL`] of the end: a packet that starts a payload
/// with a PES header of a video stream (stream id `0xE0`–`0xEF`).
fn last_video_pes(f: &File, len: u64) -> io::Result<Option<u64>> {
    use std::os::unix::fs::FileExt;
    let from = len.saturating_sub(TAIL);
    let mut tail = vec![0u8; (len - from) as usize];
    f.read_exact_at(&mut tail, from)?;
    let starts = |p: &[u8]| {
        let pusi = p[1] & 0x40 != 0;
        let payload = match (p[3] >> 4) & 3 {
            1 => Some(4),
            3 => Some(5 + usize::from(p[4])),
            _ => None,
        };
        let pes = payload.and_then(|at| p.get(at..at + 4));
        pusi && pes.is_some_and(|h| h[..3] == [0, 0, 1] && (0xe0..=0xef).contains(&h[3]))
    };
    let found = tail
        .chunks_exact(PACKET as usize)
        .rposition(|p| p[0] == 0x47 && starts(p));
    Ok(found.map(|i| from + i as u64 * PACKET))
}

/// Where a fragmented MP4 cut short by a crash ends usefully: after its last whole `mdat` (or
/// the init segment's `moov`, when no fragment is whole). What follows is a fragment cut short
/// (its `prft` and `moof` without all of its `mdat`).
fn whole_fragments(f: &File, len: u64) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let (mut at, mut keep) = (0u64, 0u64);
    let mut head = [0u8; 16];
    while at + 8 <= len {
        f.read_exact_at(&mut head[..8], at)?;
        let size32 = u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
        let size = match size32 {
            1 if at + 16 <= len => {
                f.read_exact_at(&mut head[8..16], at + 8)?;
                u64::from_be_bytes([
                    head[8], head[9], head[10], head[11], head[12], head[13], head[14], head[15],
                ])
            }
            _ => size32,
        };
        let Some(end) = at.checked_add(size).filter(|&e| size >= 8 && e <= len) else {
            break; // cut off (or a box to the end of the file, which only a finished file has)
        };
        if matches!(&head[4..8], b"mdat" | b"moov") {
            keep = end;
        }
        at = end;
    }
    Ok(keep)
}

/// Removes the finished recordings under the rule directory `dir` that `keep` no longer keeps
/// at `now_ms`; returns them. Only the stream folders the rule records are counted (`owns`, by
/// stream name: rules may share a directory, each keeps its own streams' files), and a file
/// `may_remove` refuses (one not in its rule's bucket yet) stays, logged.
pub(super) fn apply_retention(
    dir: &Path,
    keep: Keep,
    now_ms: u64,
    owns: &dyn Fn(&str) -> bool,
    may_remove: &dyn Fn(&Path) -> bool,
) -> Vec<PathBuf> {
    if keep == Keep::default() {
        return Vec::new();
    }
    let mut found: Vec<(PathBuf, Finished)> = Vec::new();
    for stream in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if !stream.file_name().to_str().is_some_and(owns) {
            continue;
        }
        for e in std::fs::read_dir(stream.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name();
            let Some(started_ms) = name.to_str().and_then(live::record::started) else {
                continue;
            };
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_file() {
                found.push((
                    e.path(),
                    Finished {
                        started_ms,
                        bytes: meta.len(),
                    },
                ));
            }
        }
    }
    let files: Vec<Finished> = found.iter().map(|f| f.1.clone()).collect();
    let mut removed = Vec::new();
    let mut held = Vec::new();
    for i in retention::expired(&files, now_ms, keep) {
        let path = &found[i].0;
        if !may_remove(path) {
            held.push(path.display().to_string());
            continue;
        }
        match std::fs::remove_file(path) {
            Ok(()) => {
                // Its upload's mark, if it has one.
                if let Some(mark) = super::upload::marker(path) {
                    let _ = std::fs::remove_file(mark);
                }
                removed.push(path.clone());
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "retention could not remove a recording")
            }
        }
    }
    if !held.is_empty() {
        let (n, first) = (held.len(), &held[..held.len().min(5)]);
        tracing::warn!(files = n, first = ?first, "retention keeps recordings that are not in their bucket yet");
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the demo clip's video PES begin.
    fn video_pes_starts(ts: &[u8]) -> Vec<u64> {
        let file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut &file, ts).unwrap();
        let mut starts = Vec::new();
        let mut len = ts.len() as u64;
        while let Some(at) = last_video_pes(&file, len).unwrap() {
            starts.push(at);
            len = at;
        }
        starts.reverse();
        starts
    }

    /// A crash in the middle of a video frame's packets: the recovered file ends where that
    /// frame's PES began (not with part of it, which the index would take as a frame).
    #[test]
    fn a_ts_recording_a_crash_cut_inside_a_frame_is_recovered_up_to_that_frame() {
        let ts = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/clip.ts")).unwrap();
        let starts = video_pes_starts(&ts);
        assert!(starts.len() > 20, "{} video frames", starts.len());
        // A frame of several packets; the file ends two packets into it, and with part of one.
        let i = (10..starts.len() - 1)
            .find(|&i| starts[i + 1] - starts[i] > 3 * PACKET)
            .unwrap();
        let cut = (starts[i] + 2 * PACKET + 100) as usize;
        let dir = tempfile::tempdir().unwrap();
        let (part, to) = (dir.path().join(".a.ts.part"), dir.path().join("a.ts"));
        std::fs::write(&part, &ts[..cut]).unwrap();
        let dropped = recover_one(&part, &to, false).unwrap();
        let got = std::fs::read(&to).unwrap();
        assert_eq!(
            got.len() as u64,
            starts[i],
            "ends where the cut frame began"
        );
        assert_eq!(dropped, cut as u64 - starts[i]);
        assert!(got[..] == ts[..got.len()]);
    }
}
