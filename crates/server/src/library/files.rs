//! The library's files: walking the directory for titles, and reading one into memory (a
//! sealed memfd) or mapping it.

use bytes::Bytes;
use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A title's file, read.
pub(crate) struct Read {
    pub data: Bytes,
    /// A file holding exactly `data` (for `sendfile`): the sealed memfd, or the file itself.
    pub file: Option<Arc<File>>,
    pub modified: SystemTime,
    /// When `data` is a mapping of the file: whether the file was found cut short under it.
    pub mapped: Option<crate::truncated::Mapped>,
}

/// Opens `path`, which the walk found inside the library at `root` with no symlink on its way
/// (it is canonical), as it is now: a file or directory swapped meanwhile for a symlink (out of
/// the library) is not followed, whatever its place on the path (`openat2` beneath the root,
/// with no symlinks; where there is no `openat2`, a kernel before 5.6 or a seccomp filter that
/// refuses it, only the file itself is not followed). Non-blocking, so that a FIFO does not block the scan.
fn open_beneath(root: &Path, path: &Path) -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let inside = path
        .strip_prefix(root)
        .map_err(|_| std::io::Error::other("not inside the library"))?;
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
    match rustix::fs::openat2(&dir, inside, flags, Mode::empty(), resolve) {
        Ok(fd) => Ok(File::from(fd)),
        // No `openat2` (a kernel before 5.6), or a seccomp filter that refuses system calls it
        // does not know with `EPERM` (Docker before 20.10): opened as before it.
        Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {
            Ok(File::from(rustix::fs::open(path, flags, Mode::empty())?))
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads (or maps) the title at `path`, inside the library at `root`.
pub(crate) fn read(root: &Path, path: &Path, cache: bool) -> std::io::Result<Read> {
    // The walk found a regular file inside the library here; what is opened must still be one
    // (a FIFO does not block the scan: non-blocking, then refused as not a regular file).
    let mut file = open_beneath(root, path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    if meta.len() == 0 {
        return Ok(Read {
            data: Bytes::new(),
            file: None,
            modified,
            mapped: None,
        });
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
        Ok(Read {
            data: Bytes::from_owner(map),
            file: Some(Arc::new(mem)),
            modified,
            mapped: None,
        })
    } else {
        let file = Arc::new(file);
        // SAFETY: the mapping is read-only and private to us. The library directory is expected not
        // to be truncated under a running server (as with any mmap- or sendfile-based server); if a
        // file is truncated anyway, reads past its new end fault, and `crate::truncated` maps
        // zeros there (the request fails, the title is not served until a rescan has read it
        // again). Titles beyond the memory budget are mapped so the kernel's page cache can hold
        // and evict them.
        let (map, mapped) = unsafe { crate::truncated::Mapping::map(&file, None)? };
        Ok(Read {
            data: Bytes::from_owner(map),
            file: Some(file),
            modified,
            mapped,
        })
    }
}

impl super::Title {
    /// Whether its bytes may be served: always, unless they are a mapping of its file and a
    /// read of that mapping has found the file cut short (the pages cut off read as zeros,
    /// `crate::truncated`): until the rescan that follows has read the file again.
    pub(crate) fn readable(&self) -> bool {
        !self.mapped.as_ref().is_some_and(|m| m.cut())
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

    /// A title's file swapped, between the walk and its read, for a symlink (out of the
    /// library) or a FIFO: neither is followed nor waited on.
    #[test]
    fn a_file_swapped_for_a_symlink_or_a_fifo_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.bin");
        std::fs::write(&outside, b"secret").unwrap();
        let link = dir.path().join("title.mp4");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        assert!(read(dir.path(), &link, false).is_err());
        assert!(read(dir.path(), &link, true).is_err());
        let fifo = dir.path().join("fifo.mp4");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path in a directory of our own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read(dir.path(), &fifo, true).err().expect("refused");
        assert_eq!(e.to_string(), "not a regular file");
    }

    /// A directory of the library swapped, between the walk and the read of a title in it, for
    /// a symlink to a directory outside the library: not followed.
    #[test]
    fn a_directory_swapped_for_a_symlink_out_of_the_library_is_not_followed() {
        let top = tempfile::tempdir().unwrap();
        let (lib, outside) = (top.path().join("lib"), top.path().join("outside"));
        for d in [lib.join("shows"), outside.clone()] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(lib.join("shows/a.ts"), b"a title").unwrap();
        std::fs::write(outside.join("a.ts"), b"a secret").unwrap();
        let path = lib.join("shows/a.ts");
        assert_eq!(&read(&lib, &path, true).unwrap().data[..], b"a title");
        std::fs::remove_dir_all(lib.join("shows")).unwrap();
        std::os::unix::fs::symlink(&outside, lib.join("shows")).unwrap();
        assert!(read(&lib, &path, true).is_err());
        assert!(read(&lib, &path, false).is_err());
    }

    #[test]
    fn a_title_file_cut_short_stops_that_title_being_served_and_no_other() {
        crate::truncated::install().unwrap();
        let page = crate::truncated::page_size();
        let dir = tempfile::tempdir().unwrap();
        let title = |name: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, vec![7u8; 3 * page]).unwrap();
            let r = read(dir.path(), &path, false).unwrap();
            let mut t =
                super::super::Title::new(name.into(), r.data, false, "\"e\"".into(), UNIX_EPOCH);
            t.file = r.file;
            t.mapped = r.mapped;
            (t, path)
        };
        let (cut, path) = title("cut.ts");
        let (other, _) = title("other.ts");
        assert!(cut.readable() && other.readable());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(100)
            .unwrap();
        // Past the new end: a page of zeros in place of the one cut off, and the server lives.
        // SAFETY: the address is inside the mapping (its third page).
        let byte = unsafe { std::ptr::read_volatile(cut.data.as_ptr().add(2 * page)) };
        assert_eq!(byte, 0);
        assert!(
            !cut.readable(),
            "its mapping reads zeros: not served until read again"
        );
        assert!(other.readable(), "another title's mapping is whole");
        assert_eq!(other.data[2 * page], 7);
        // In memory (a sealed memfd): never at stake.
        let mut held =
            super::super::Title::new("a".into(), Bytes::new(), true, "\"e\"".into(), UNIX_EPOCH);
        held.file = Some(Arc::new(memfd()));
        assert!(held.readable());
    }

    /// A body made of slices of two files (a DVR segment across two recording files): the
    /// joined mapping names each slice's own file and offset, and a cut in the second file is
    /// seen.
    #[test]
    fn a_body_from_two_mapped_files_is_checked_against_both() {
        crate::truncated::install().unwrap();
        let page = crate::truncated::page_size();
        let dir = tempfile::tempdir().unwrap();
        let map = |name: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, vec![7u8; 3 * page]).unwrap();
            (read(dir.path(), &path, false).unwrap(), path)
        };
        let (first, _) = map("1.ts");
        let (second, path) = map("2.ts");
        let joined = first
            .mapped
            .clone()
            .unwrap()
            .with(second.mapped.clone().unwrap());
        let (a, b) = (
            first.data.slice(page..2 * page),
            second.data.slice(2 * page..),
        );
        let located = |bytes: &[u8]| joined.locate(bytes).map(|(f, at)| (Arc::as_ptr(f), at));
        assert_eq!(
            located(&a),
            Some((Arc::as_ptr(first.file.as_ref().unwrap()), page as u64))
        );
        let second_file = Arc::as_ptr(second.file.as_ref().unwrap());
        assert_eq!(located(&b), Some((second_file, 2 * page as u64)));
        assert!(!joined.cut());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(100)
            .unwrap();
        // SAFETY: inside the second mapping (its third page, past the file's new end).
        let byte = unsafe { std::ptr::read_volatile(b.as_ptr()) };
        assert_eq!(byte, 0);
        assert!(joined.cut(), "the second file was cut short under the body");
        assert!(!first.mapped.unwrap().cut());
    }

    #[test]
    fn a_title_read_into_memory_holds_the_files_bytes_and_a_length_that_changed_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.bin");
        let bytes: Vec<u8> = (0..(5u32 << 20) + 123).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let Read { data, file, .. } = read(dir.path(), &path, true).unwrap();
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
