//! Reading a title's pages from disk off the workers (HTTP/1.1: `h1::write`). A title held in
//! memory (a sealed memfd) never waits for a disk; one mapped from its file (beyond the memory
//! budget, or a recording) may have pages that are not in the page cache, and `sendfile` from it
//! would wait for the disk on the worker, holding up every connection the worker serves.
//!
//! So before each stretch of such a body is sent, a page every MiB of it, and its last, are
//! looked up: a one-byte `preadv2` with `RWF_NOWAIT`, which answers at once, with the byte only if
//! its page is in memory with its read completed (a page the kernel's readahead is still reading
//! counts as missing; and it needs no more than read permission, where `mincore` and `cachestat`
//! tell a reader that cannot write the file nothing). Pages come in by readahead in runs, but go
//! out one by one as the kernel reclaims the least recently used, so a stretch whose ends are in
//! memory can have holes between them; nine lookups per 8 MiB stretch (under 1 µs each) cost
//! under 1 % of sending it, where looking up every page would cost a few per cent. When any
//! page looked up is missing, the stretch is read in on the blocking pool: `sendfile` to
//! `/dev/null`, which waits for its pages to be in the page cache and copies nothing. The worker
//! then sends them from memory. (nginx offloads its reads to threads the same way with `aio
//! threads`, which it leaves off by default.) Where the file system does not take `RWF_NOWAIT`
//! (some network file systems), every probe fails and every stretch is read in on the pool:
//! never on the worker, at the cost of one more pass over the pages.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

/// How much of a body is looked up, and read in, at a time: more than a socket's send buffer
/// takes at once (4 MiB at most by default), so that sending the stretch costs no more
/// `sendfile` calls than sending the body whole.
pub(crate) const STRETCH: u64 = 8 << 20;

/// How far apart the pages looked up in a stretch are.
const PROBE_EVERY: usize = 1 << 20;

/// Bytes read in off the workers since the start (`vod_read_in_bytes_total`).
pub(crate) static READ_IN: AtomicU64 = AtomicU64::new(0);

/// Makes sure the pages of `len` bytes at `offset` of `file` are in the page cache, reading them
/// in on the blocking pool if they are not; returns once they are (or could not be: the send
/// that follows then reads them itself). Returns how many bytes it read in.
pub(crate) async fn ensure(file: &Arc<File>, offset: u64, len: u64) -> u64 {
    if len == 0 {
        return 0;
    }
    let last = offset.saturating_add(len - 1);
    let probes = (offset..=last).step_by(PROBE_EVERY).chain([last]);
    if probes.into_iter().all(|at| in_memory(file, at)) {
        return 0;
    }
    let file = file.clone();
    let read = tokio::task::spawn_blocking(move || read_in(&file, offset, len)).await;
    let n = read.ok().flatten().unwrap_or(0);
    READ_IN.fetch_add(n, Relaxed);
    n
}

/// Reads `len` bytes at `offset` of `file` into the page cache (blocking); returns how many.
fn read_in(file: &File, offset: u64, len: u64) -> Option<u64> {
    static NULL: OnceLock<Option<File>> = OnceLock::new();
    let null = NULL
        .get_or_init(|| File::options().write(true).open("/dev/null").ok())
        .as_ref()?;
    let (mut at, end) = (offset, offset.checked_add(len)?);
    while at < end {
        let want = usize::try_from(end - at).ok()?;
        match rustix::fs::sendfile(null, file, Some(&mut at), want) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Some(at - offset)
}

/// Whether the byte at `at` of `file` can be read without waiting: its page is in memory with
/// its read completed, or it is past the end (nothing to read). One byte is read into the stack:
/// the probe, not video sent.
fn in_memory(file: &File, at: u64) -> bool {
    let mut probe = [0u8; 1];
    let mut bufs = [std::io::IoSliceMut::new(&mut probe)];
    rustix::io::preadv2(file, &mut bufs, at, rustix::io::ReadWriteFlags::NOWAIT).is_ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A directory whose files' pages can be put out of the page cache: the temporary directory,
    /// or `/var/tmp` where that is in memory (a `tmpfs` `/tmp`, as Debian 13 mounts it).
    fn on_disk() -> std::path::PathBuf {
        const TMPFS_MAGIC: u64 = 0x0102_1994;
        let tmp = std::env::temp_dir();
        match rustix::fs::statfs(&tmp) {
            Ok(fs) if fs.f_type as u64 == TMPFS_MAGIC => "/var/tmp".into(),
            _ => tmp,
        }
    }

    /// How many of `file`'s pages are in the page cache. (`mincore`, which reads no page in,
    /// where a probe would start the kernel's readahead, and which tells the truth to the
    /// file's owner.)
    fn resident(file: &File) -> usize {
        // SAFETY: a read-only mapping of a file only this test writes, not changed while mapped.
        let map = unsafe { memmap2::Mmap::map(file) }.unwrap();
        let mut pages = vec![0u8; map.len().div_ceil(4096)];
        let at = map.as_ptr() as *mut libc::c_void;
        // SAFETY: `map` is a live mapping of `map.len()` bytes at a page-aligned address, and
        // `pages` holds one byte per page of it.
        let r = unsafe { libc::mincore(at, map.len(), pages.as_mut_ptr()) };
        assert_eq!(r, 0);
        pages.iter().filter(|&&b| b & 1 == 1).count()
    }

    /// A file of `len` bytes whose pages are then dropped from the page cache (once they are on
    /// disk). The kernel keeps a page it is still writing back, or that the file system's
    /// journal still holds, so the advice is given again until no page is left (a busy machine
    /// takes a few tries; there is no event to wait for); a file one of whose large folios
    /// stays for a second anyway (seen under a full test run) is left for another, three at
    /// most.
    pub(crate) fn cold_file(len: usize) -> (tempfile::NamedTempFile, Arc<File>, Vec<u8>) {
        let mut rng = fastrand::Rng::with_seed(len as u64);
        let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        for _ in 0..3 {
            let mut f = tempfile::NamedTempFile::new_in(on_disk()).unwrap();
            f.write_all(&bytes).unwrap();
            let file = Arc::new(File::open(f.path()).unwrap());
            for _ in 0..100 {
                f.as_file().sync_all().unwrap();
                rustix::fs::fadvise(&*file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
                if resident(&file) == 0 {
                    return (f, file, bytes);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        panic!("the pages of three files of {len} bytes stayed in the page cache");
    }

    #[test]
    fn pages_dropped_from_the_cache_are_found_missing_read_in_and_then_found() {
        let (_f, file, _) = cold_file(3 << 20);
        assert!(!in_memory(&file, 4096));
        assert_eq!(read_in(&file, 4096, 2 << 20), Some(2 << 20));
        assert!(in_memory(&file, 4096) && in_memory(&file, 4096 + (2 << 20) - 1));
        assert!(
            in_memory(&file, 3 << 20),
            "past the end: nothing to wait for"
        );
    }

    #[tokio::test]
    async fn ensure_reads_in_a_stretch_that_is_missing_and_not_one_that_is_there() {
        let (_f, file, _) = cold_file(3 << 20);
        assert_eq!(ensure(&file, 0, 2 << 20).await, 2 << 20);
        assert!(in_memory(&file, 0) && in_memory(&file, (2 << 20) - 1));
        assert_eq!(ensure(&file, 0, 2 << 20).await, 0);
    }

    #[tokio::test]
    async fn a_stretch_whose_ends_are_in_memory_but_not_its_middle_is_read_in() {
        let (_f, file, _) = cold_file(8 << 20);
        assert_eq!(read_in(&file, 0, 8 << 20), Some(8 << 20));
        // The kernel reclaims pages one by one: a hole in the middle of the stretch (2 MiB,
        // aligned: a large folio the advice only partly covers would stay).
        // (Advised again until it holds, as in `cold_file`: no event to wait for.)
        let hole = std::num::NonZeroU64::new(2 << 20);
        for _ in 0..100 {
            rustix::fs::fadvise(&*file, 2 << 20, hole, rustix::fs::Advice::DontNeed).unwrap();
            if resident(&file) == 6 << 8 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(resident(&file), 6 << 8, "all but the hole's 512 pages");
        assert_eq!(ensure(&file, 0, 8 << 20).await, 8 << 20);
        assert_eq!(resident(&file), 8 << 8);
    }

    /// A frame of a whole mapped title, copied for hyper (a multipart range over HTTP/2): read
    /// in a stretch at a time as it goes, not whole before its first byte.
    #[tokio::test]
    async fn a_large_frame_of_a_mapped_title_is_read_in_a_stretch_at_a_time() {
        use http_body_util::BodyExt;
        crate::truncated::install().unwrap();
        let (_f, file, bytes) = cold_file(32 << 20);
        // SAFETY: a read-only mapping of a file only this test writes, not changed while mapped.
        let (map, mapped) = unsafe { crate::truncated::Mapping::map(&file, None) }.unwrap();
        let data = bytes::Bytes::from_owner(map);
        let body = crate::body::Chunks::from(data);
        let mut copied = crate::truncated::Copied::new(body, mapped.unwrap());
        let first = copied.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first[..], bytes[..first.len()]);
        let pages = resident(&file);
        assert!(
            pages < 16 << 8,
            "{pages} of 8192 pages read in before the first bytes went"
        );
    }

    #[test]
    fn reading_in_stops_at_the_end_of_the_file() {
        let (_f, file, _) = cold_file(10_000);
        assert_eq!(read_in(&file, 5_000, 1 << 20), Some(5_000));
        assert_eq!(read_in(&file, 20_000, 10), Some(0));
    }
}
