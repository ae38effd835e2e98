//! Reading a title's pages from disk off the workers (HTTP/1.1: `h1::write`). A title held in
//! memory (a sealed memfd) never waits for a disk; one mapped from its file (beyond the memory
//! budget, or a recording) may have pages that are not in the page cache, and `sendfile` from it
//! would wait for the disk on the worker, holding up every connection the worker serves.
//!
//! So before each stretch of such a body is sent, the stretch's first and last pages are looked
//! up: a one-byte `preadv2` with `RWF_NOWAIT`, which answers at once, with the byte only if its
//! page is in memory with its read completed (a page the kernel's readahead is still reading
//! counts as missing; and it needs no more than read permission, where `mincore` and `cachestat`
//! tell a reader that cannot write the file nothing). Pages come in and go out in runs, and
//! looking up every page would cost about 13 µs per 2 MiB, a few per cent of sending them. When
//! either end is missing, the stretch is read in on the blocking pool: `sendfile` to
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

/// Bytes read in off the workers since the start (`vod_read_in_bytes_total`).
pub(crate) static READ_IN: AtomicU64 = AtomicU64::new(0);

/// Makes sure the pages of `len` bytes at `offset` of `file` are in the page cache, reading them
/// in on the blocking pool if they are not; returns once they are (or could not be: the send
/// that follows then reads them itself). Returns how many bytes it read in.
pub(crate) async fn ensure(file: &Arc<File>, offset: u64, len: u64) -> u64 {
    if len == 0 {
        return 0;
    }
    if [offset, offset + len - 1]
        .iter()
        .all(|&at| in_memory(file, at))
    {
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

    /// A file of `len` bytes whose pages are then dropped from the page cache (once they are on
    /// disk).
    pub(crate) fn cold_file(len: usize) -> (tempfile::NamedTempFile, Arc<File>, Vec<u8>) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let mut rng = fastrand::Rng::with_seed(len as u64);
        let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        f.write_all(&bytes).unwrap();
        f.as_file().sync_all().unwrap();
        let file = Arc::new(File::open(f.path()).unwrap());
        rustix::fs::fadvise(&*file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        (f, file, bytes)
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

    #[test]
    fn reading_in_stops_at_the_end_of_the_file() {
        let (_f, file, _) = cold_file(10_000);
        assert_eq!(read_in(&file, 5_000, 1 << 20), Some(5_000));
        assert_eq!(read_in(&file, 20_000, 10), Some(0));
    }
}
