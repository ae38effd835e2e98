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
        // The cache is a memfd: the kernel copies the file into it (copy_file_range), it is sealed
        // so its bytes can never change or shrink, and it is mapped read-only as the title's
        // `Bytes`. One copy in memory serves both `writev` (from the mapping) and `sendfile`
        // (from the fd).
        let fd = rustix::fs::memfd_create(
            "zerocast-title",
            rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
        )?;
        let mut mem = File::from(fd);
        let copied = std::io::copy(&mut file, &mut mem)?;
        if copied != meta.len() {
            return Err(std::io::Error::other(format!(
                "file changed while loading ({copied} of {} bytes)",
                meta.len()
            )));
        }
        use rustix::fs::SealFlags;
        rustix::fs::fcntl_add_seals(
            &mem,
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
        )?;
        // SAFETY: the memfd is sealed against writes, shrinking and growing, so the mapped bytes
        // can never change and no access inside the mapping can fault for lack of backing.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&mem)? };
        Ok((Bytes::from_owner(map), Some(Arc::new(mem)), modified))
    } else {
        // SAFETY: the mapping is read-only and private to us. The library directory is expected not
        // to be truncated under a running server (as with any mmap- or sendfile-based server); if a
        // file is truncated anyway, reads past its new end would fault. Titles beyond the memory
        // budget are mapped so the kernel's page cache can hold and evict them.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok((Bytes::from_owner(map), Some(Arc::new(file)), modified))
    }
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
