//! Reading a title's pages from disk off the workers (HTTP/1.1: `h1::write`). A title held in
//! memory (a sealed memfd) never waits for a disk; one mapped from its file (beyond the memory
//! budget, or a recording) may have pages that are not in the page cache, and `sendfile` from it
//! would wait for the disk on the worker, holding up every connection the worker serves.
//!
//! So before each stretch of such a body is sent, the stretch's first and last pages are looked
//! up in the title's mapping (`mincore`, without waiting; it counts a page only once its read
//! has completed, so a page the kernel's readahead is still reading counts as missing). Pages
//! come in and go out in runs, and looking up every page would cost about 13 µs per 2 MiB, a few
//! per cent of sending them. When either end is missing, the stretch is read in on the blocking
//! pool: `sendfile` to `/dev/null`, which waits for its pages to be in the page cache and copies
//! nothing. The worker then sends them from memory. (nginx offloads its reads to threads the
//! same way with `aio threads`, which it leaves off by default.)

use bytes::Bytes;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

/// How much of a body is looked up, and read in, at a time: more than a socket's send buffer
/// takes at once (4 MiB at most by default), so that sending the stretch costs no more
/// `sendfile` calls than sending the body whole.
pub(crate) const STRETCH: u64 = 8 << 20;

/// The page size the lookups count in (the smallest there is).
const PAGE: u64 = 4096;

/// Bytes read in off the workers since the start (`vod_read_in_bytes_total`).
pub(crate) static READ_IN: AtomicU64 = AtomicU64::new(0);

/// Makes sure the pages of `len` bytes at `offset` of `file` (mapped as `map`, from its first
/// byte) are in the page cache, reading them in on the blocking pool if they are not; returns
/// once they are (or could not be: the send that follows then reads them itself). Returns how
/// many bytes it read in.
pub(crate) async fn ensure(file: &Arc<File>, map: &Bytes, offset: u64, len: u64) -> u64 {
    if len == 0 {
        return 0;
    }
    let last = (offset + len - 1) / PAGE * PAGE;
    if [offset / PAGE * PAGE, last]
        .iter()
        .all(|&at| resident(map, at))
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

/// Whether the page at `at` (a multiple of [`PAGE`]) of the file mapped as `map` is in memory
/// with its bytes read; `false` outside the mapping or when it cannot be told.
fn resident(map: &Bytes, at: u64) -> bool {
    let Ok(at) = usize::try_from(at) else {
        return false;
    };
    if at >= map.len() || !(map.as_ptr() as usize).is_multiple_of(PAGE as usize) {
        return false;
    }
    let mut vec = 0u8;
    // SAFETY: `map` is a live file mapping that starts on a page boundary (checked), `at` is a
    // page boundary inside it, so the page queried is one of the mapping's; mincore writes one
    // byte per page queried (one) into `vec`, and reads no memory of the mapping itself.
    let r = unsafe {
        libc::mincore(
            map.as_ptr().add(at) as *mut libc::c_void,
            PAGE as usize,
            &mut vec,
        )
    };
    r == 0 && vec & 1 == 1
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A file of `len` bytes, mapped, whose pages are then dropped from the page cache (its clean
    /// pages, as nothing has touched the mapping yet).
    pub(crate) fn cold_file(len: usize) -> (tempfile::NamedTempFile, Arc<File>, Bytes) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let mut rng = fastrand::Rng::with_seed(len as u64);
        f.write_all(&(0..len).map(|_| rng.u8(..)).collect::<Vec<u8>>())
            .unwrap();
        f.as_file().sync_all().unwrap();
        let file = Arc::new(File::open(f.path()).unwrap());
        // SAFETY: a read-only mapping of a file this test owns and does not change.
        let map = unsafe { memmap2::Mmap::map(&*file).unwrap() };
        rustix::fs::fadvise(&*file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        (f, file, Bytes::from_owner(map))
    }

    #[test]
    fn pages_dropped_from_the_cache_are_found_missing_read_in_and_then_found() {
        let (_f, file, map) = cold_file(3 << 20);
        assert!(!resident(&map, 4096));
        assert_eq!(read_in(&file, 4096, 2 << 20), Some(2 << 20));
        assert!(resident(&map, 4096) && resident(&map, 4096 + (2 << 20) - 4096));
        assert!(!resident(&map, 3 << 20), "past the mapping");
    }

    #[tokio::test]
    async fn ensure_reads_in_a_stretch_that_is_missing_and_not_one_that_is_there() {
        let (_f, file, map) = cold_file(3 << 20);
        assert_eq!(ensure(&file, &map, 0, 2 << 20).await, 2 << 20);
        assert!(resident(&map, 0) && resident(&map, (2 << 20) - 4096));
        assert_eq!(ensure(&file, &map, 0, 2 << 20).await, 0);
    }

    #[test]
    fn reading_in_stops_at_the_end_of_the_file() {
        let (_f, file, _map) = cold_file(10_000);
        assert_eq!(read_in(&file, 5_000, 1 << 20), Some(5_000));
        assert_eq!(read_in(&file, 20_000, 10), Some(0));
    }
}
