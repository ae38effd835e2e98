//! The library's files: walking the directory for titles, and reading one into memory (a
//! sealed memfd) or mapping it.

use bytes::Bytes;
use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn read(
    path: &Path,
    cache: bool,
) -> std::io::Result<(Bytes, Option<Arc<File>>, SystemTime)> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    if meta.len() == 0 {
        return Ok((Bytes::new(), None, modified));
    }
    if cache {
        // The cache is a memfd: the file is read into it, it is sealed so its bytes can never
        // change or shrink, and it is mapped read-only as the title's `Bytes`. One copy in memory
        // serves both `writev` (from the mapping) and `sendfile` (from the fd).
        let fd = rustix::fs::memfd_create(
            "zerocast-title",
            rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
        )?;
        let mem = File::from(fd);
        fill(&mut file, &mem, meta.len())?;
        use rustix::fs::SealFlags;
        rustix::fs::fcntl_add_seals(
            &mem,
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
        )?;
        // SAFETY: the memfd is sealed against writes, shrinking and growing, so the mapped bytes
        // can never change and no access inside the mapping can fault for lack of backing.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&mem)? };
        let _ = map.advise(memmap2::Advice::HugePage);
        Ok((Bytes::from_owner(map), Some(Arc::new(mem)), modified))
    } else {
        // SAFETY: the mapping is read-only and private to us. The library directory is expected not
        // to be truncated under a running server (as with any mmap- or sendfile-based server); if a
        // file is truncated anyway, reads past its new end fault, and `crate::truncated` maps
        // zeros there (the request fails, the library is rescanned). Titles beyond the memory
        // budget are mapped so the kernel's page cache can hold and evict them.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok((Bytes::from_owner(map), Some(Arc::new(file)), modified))
    }
}

impl super::Title {
    /// Whether its bytes may be served: always, unless they are a mapping of its file and a
    /// mapped file has been found cut short since it was read or last kept by a rescan (the
    /// pages cut off read as zeros, `crate::truncated`, and which file it was is not known):
    /// until the rescan that follows has read the changed file again and kept this one.
    pub(crate) fn readable(&self) -> bool {
        let faults = crate::truncated::FAULTS.load(std::sync::atomic::Ordering::Relaxed);
        self.readable_at(faults)
    }

    fn readable_at(&self, faults: u64) -> bool {
        let mapped = !self.cached && self.file.is_some();
        !mapped || self.faults_seen.load(std::sync::atomic::Ordering::Relaxed) == faults
    }

    /// Kept by a rescan that began when `faults` files had been found cut short: its file is
    /// unchanged since it was read.
    pub(super) fn kept(&self, faults: u64) {
        self.faults_seen
            .store(faults, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The most of a title's memory that may be held in 2 MiB pages: its whole 2 MiB stretches.
const HUGE: u64 = 2 << 20;

/// Reads `len` bytes of `file` into the empty memfd `mem`, through a shared mapping that asks for
/// transparent huge pages: where the system allows them for shared memory
/// (`/sys/kernel/mm/transparent_hugepage/shmem_enabled` set to `advise`), the title's memory is
/// then 2 MiB folios, and `sendfile` from it looks up one folio per 2 MiB instead of one page per
/// 4 KiB (a third of the CPU of serving a large range is that lookup with small pages). Elsewhere
/// the hint does nothing. An error if the file's length changes while it is read.
fn fill(file: &mut File, mem: &File, len: u64) -> std::io::Result<()> {
    use std::io::Read;
    mem.set_len(len)?;
    let size = usize::try_from(len).map_err(std::io::Error::other)?;
    // SAFETY: the memfd is ours alone (not sealed yet, no other mapping or descriptor of it, so
    // nothing else can shrink it), it is `len` bytes long from `set_len` (its pages are taken as
    // they are first written: the only writes are the kernel's, inside `read`, where a page it
    // cannot get is an error, not a fault), and the mapping is dropped before it is sealed.
    let mut map = unsafe { memmap2::MmapOptions::new().len(size).map_mut(mem)? };
    let whole = usize::try_from(len / HUGE * HUGE).map_err(std::io::Error::other)?;
    if whole > 0 {
        // Only whole 2 MiB stretches: a short tail would take a 2 MiB page for a few bytes.
        let _ = map.advise_range(memmap2::Advice::HugePage, 0, whole);
    }
    file.read_exact(&mut map[..]).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => std::io::Error::other(format!(
            "file changed while loading (shorter than {len} bytes)"
        )),
        _ => e,
    })?;
    if file.read(&mut [0u8])? != 0 {
        return Err(std::io::Error::other(format!(
            "file changed while loading (longer than {len} bytes)"
        )));
    }
    Ok(())
}

/// Collects (id, path, len) of regular files under `dir`.
pub(super) fn walk(
    root: &Path,
    dir: &Path,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<(String, PathBuf, u64)>,
    skipped: &mut Vec<(PathBuf, String)>,
) {
    if !seen.insert(dir.to_path_buf()) {
        return; // a symlink loop
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            skipped.push((dir.to_path_buf(), e.to_string()));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        // Resolve symlinks and keep only what stays inside the library.
        let real = match path.canonicalize() {
            Ok(r) => r,
            Err(e) => {
                skipped.push((path, e.to_string()));
                continue;
            }
        };
        if !real.starts_with(root) {
            skipped.push((path, "symlink leads outside the library".into()));
            continue;
        }
        let Ok(meta) = std::fs::metadata(&real) else {
            continue;
        };
        if meta.is_dir() {
            walk(root, &real, seen, out, skipped);
        } else if meta.is_file() {
            let Some(id) = id_of(root, dir, &path) else {
                skipped.push((path, "file name is not UTF-8".into()));
                continue;
            };
            out.push((id, real, meta.len()));
        }
    }
}

/// The id of `path` (found while walking `dir`, itself inside `root`).
fn id_of(root: &Path, dir: &Path, path: &Path) -> Option<String> {
    let rel_dir = dir.strip_prefix(root).ok()?;
    let name = path.file_name()?.to_str()?;
    let mut parts: Vec<&str> = rel_dir
        .components()
        .map(|c| c.as_os_str().to_str())
        .collect::<Option<_>>()?;
    parts.push(name);
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memfd() -> File {
        File::from(rustix::fs::memfd_create("test", rustix::fs::MemfdFlags::CLOEXEC).unwrap())
    }

    #[test]
    fn a_mapped_title_is_not_served_after_a_file_was_cut_short_until_a_rescan_keeps_it() {
        let title = |cached| {
            let mut t = super::super::Title::new(
                "a.ts".into(),
                Bytes::from_static(b"x"),
                cached,
                "\"e\"".into(),
                UNIX_EPOCH,
            );
            t.file = Some(Arc::new(memfd()));
            t
        };
        let mapped = title(false);
        let seen = mapped
            .faults_seen
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(mapped.readable_at(seen));
        assert!(!mapped.readable_at(seen + 1), "a file was cut short since");
        mapped.kept(seen + 1);
        assert!(
            mapped.readable_at(seen + 1),
            "kept by the rescan that followed"
        );
        // In memory (a sealed memfd): never at stake.
        assert!(title(true).readable_at(seen + 5));
    }

    #[test]
    fn a_title_read_into_memory_holds_the_files_bytes_and_a_length_that_changed_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.bin");
        let bytes: Vec<u8> = (0..(5u32 << 20) + 123).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let (data, file, _) = read(&path, true).unwrap();
        assert_eq!(&data[..], &bytes[..]);
        assert!(file.is_some(), "kept for sendfile");
        // The file is not the length it had when it was listed.
        let mut f = File::open(&path).unwrap();
        let shorter = fill(&mut f, &memfd(), bytes.len() as u64 + 1).unwrap_err();
        assert!(shorter.to_string().contains("shorter"), "{shorter}");
        let mut f = File::open(&path).unwrap();
        let longer = fill(&mut f, &memfd(), bytes.len() as u64 - 1).unwrap_err();
        assert!(longer.to_string().contains("longer"), "{longer}");
    }
}
