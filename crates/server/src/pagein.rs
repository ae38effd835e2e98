//! Reading a title's pages from disk off the workers. A title held in memory (a sealed memfd)
//! never waits for a disk; one mapped from its file (beyond the memory budget, or a recording)
//! may have pages that are not in the page cache, and `sendfile` from it would wait for the disk
//! on the worker, holding up every connection the worker serves. So before each stretch of such
//! a body is sent, the stretch's first and last pages are looked up (`cachestat`, without
//! waiting: pages come in and go out in runs, and looking up every page would cost 13 µs per
//! 2 MiB, a few per cent of sending them) and, when either is missing, the stretch is read in on
//! the blocking pool: `sendfile` to `/dev/null`, which puts its pages in the page cache and
//! copies nothing. The worker then sends them from memory. (nginx does the same with `aio
//! threads`, which it leaves off by default.)

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

/// How much of a body is looked up, and read in, at a time.
pub(crate) const STRETCH: u64 = 2 << 20;

/// The page size the lookups count in (the smallest there is).
const PAGE: u64 = 4096;

/// Bytes read in off the workers since the start (`vod_read_in_bytes_total`).
pub(crate) static READ_IN: AtomicU64 = AtomicU64::new(0);

/// Makes sure the pages of `len` bytes at `offset` of `file` are in the page cache, reading them
/// in on the blocking pool if they are not; returns once they are (or could not be: the send
/// that follows then reads them itself).
pub(crate) async fn ensure(file: &Arc<File>, offset: u64, len: u64) {
    let last = (offset + len).saturating_sub(1) / PAGE * PAGE;
    let ends = [offset / PAGE * PAGE, last].map(|at| cached(file, at, PAGE));
    if len == 0 || ends == [Some(true); 2] {
        return;
    }
    let file = file.clone();
    let read = tokio::task::spawn_blocking(move || read_in(&file, offset, len)).await;
    if let Ok(Some(n)) = read {
        READ_IN.fetch_add(n, Relaxed);
    }
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

/// Whether every page of the range is in the page cache (`None`: not known here).
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn cached(file: &File, offset: u64, len: u64) -> Option<bool> {
    use std::os::fd::AsRawFd;
    /// `cachestat(2)` (Linux 6.5), the same number on these architectures.
    const SYS_CACHESTAT: libc::c_long = 451;
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    let range = Range { off: offset, len };
    let mut stat = Stat::default();
    // SAFETY: `cachestat(fd, range, stat, flags)` reads one `struct cachestat_range` and writes
    // one `struct cachestat`, both `repr(C)` with the kernel's layout (u64 fields) and alive for
    // the call; the fd is open for as long as `file` is borrowed. A kernel without the call
    // answers ENOSYS.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const Range,
            &mut stat as *mut Stat,
            0u32,
        )
    };
    if r != 0 {
        return None;
    }
    // The range's pages, its ends rounded out.
    let pages = (offset + len).div_ceil(PAGE) - offset / PAGE;
    Some(stat.nr_cache >= pages)
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn cached(_: &File, _: u64, _: u64) -> Option<bool> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A file of `len` bytes whose pages are then dropped from the page cache (its clean pages,
    /// when nothing maps them).
    fn cold_file(len: usize) -> (tempfile::NamedTempFile, Arc<File>) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&vec![7u8; len]).unwrap();
        f.as_file().sync_all().unwrap();
        let file = Arc::new(File::open(f.path()).unwrap());
        rustix::fs::fadvise(&*file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        (f, file)
    }

    #[test]
    fn pages_dropped_from_the_cache_are_read_in_and_then_found() {
        let (_f, file) = cold_file(3 << 20);
        if cached(&file, 0, 3 << 20).is_none() {
            // No cachestat here: nothing to look up with (the pages are read in every time).
            return;
        }
        assert_eq!(cached(&file, 0, 3 << 20), Some(false));
        assert_eq!(read_in(&file, 4096, 2 << 20), Some(2 << 20));
        assert_eq!(cached(&file, 4096, 2 << 20), Some(true));
        assert_eq!(
            cached(&file, 0, 3 << 20),
            Some(false),
            "the rest is still out"
        );
    }

    #[test]
    fn reading_in_stops_at_the_end_of_the_file() {
        let (_f, file) = cold_file(10_000);
        assert_eq!(read_in(&file, 5_000, 1 << 20), Some(5_000));
        assert_eq!(read_in(&file, 20_000, 10), Some(0));
    }
}
