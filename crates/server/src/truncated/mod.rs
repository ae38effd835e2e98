//! A title's file cut short while the server has it mapped. A title beyond the memory budget
//! is a read-only mapping of its file, and an operator may shorten the file under it: `cp` over
//! it and `ffmpeg -y` writing to it truncate it first, as does `rsync --inplace`. The kernel's own
//! reads of it then see an error or a short file and end that one response (`writev` from the
//! mapping: `EFAULT`; `sendfile`: fewer bytes). But a read of ours past the file's new end (a
//! clip's or a segment's head made from the title's `moov`, its clusters, its PSI) raises
//! SIGBUS, which ends the process, every viewer and publisher on it with it.
//!
//! So SIGBUS has a handler ([`install`]). A fault of kind `BUS_ADRERR` (an access to a mapped
//! page beyond its file's end) at an address inside a title's mapping (made by [`Mapping`],
//! which keeps a table the handler can read, regions.rs) gets a page of zeros mapped read-only
//! in place of the missing one, and the read goes on. It reads zeros where the file's bytes
//! were: the head made from them fails to parse and the request gets an error, never a crash.
//! The handler counts the fault against that mapping and wakes [`watch`] through an eventfd (a
//! `write` is async-signal-safe), which logs it and has the library rescanned at once: the
//! title is reloaded from what its file holds now, and the zero pages go with the old mapping
//! when its last response ends. Until then that title (and no other) is not served
//! (`Title::readable`, 503), and a response of it that a sender copies in user space (over TLS,
//! or any body that is not sent with `sendfile`) fails rather than finish when its mapping
//! faults ([`Mapped`], [`Copied`]). Any other SIGBUS (another cause, or an address outside the
//! titles' mappings) goes to the handler that was there before (Rust's, then the default: the
//! process ends, as it should).

mod copied;
mod regions;

pub(crate) use copied::Copied;
pub(crate) use regions::{Mapped, Mapping};

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

/// Reads that found their page cut off, in all mappings (`library_truncated_reads_total`).
pub(crate) static FAULTS: AtomicU64 = AtomicU64::new(0);

/// The eventfd the handler wakes [`watch`] through (-1: not installed).
static WAKE: AtomicI32 = AtomicI32::new(-1);

/// The page size, for the handler (which must not ask for it).
static PAGE: AtomicUsize = AtomicUsize::new(0);

/// The SIGBUS action before ours: what a fault that is not ours goes to.
static PREVIOUS: OnceLock<Previous> = OnceLock::new();

struct Previous(libc::sigaction);

// SAFETY: a `sigaction` is plain data (a handler address, flags and a signal mask), written once
// before the handler is installed and only read after.
unsafe impl Sync for Previous {}
// SAFETY: as above.
unsafe impl Send for Previous {}

/// Installs the SIGBUS handler, once per process (later calls return the first's result).
pub fn install() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let os = || std::io::Error::last_os_error().to_string();
        // SAFETY: asks for a constant of the system; touches no memory of ours.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        PAGE.store(usize::try_from(page).map_err(|_| os())?, Relaxed);
        // SAFETY: creates a descriptor; no memory of ours is touched.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(os());
        }
        WAKE.store(fd, Relaxed);
        // SAFETY: an all-zero `sigaction` is a valid value to be written over.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: reads the current action into `old`, a valid `sigaction`.
        if unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) } != 0 {
            return Err(os());
        }
        let _ = PREVIOUS.set(Previous(old));
        // SAFETY: as for `old`.
        let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
        new.sa_sigaction = on_sigbus as *const () as usize;
        new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: `new.sa_mask` is a valid signal set to empty; `new` is a complete action
        // whose handler has the SA_SIGINFO signature.
        let set = unsafe {
            libc::sigemptyset(&mut new.sa_mask);
            libc::sigaction(libc::SIGBUS, &new, std::ptr::null_mut())
        };
        if set != 0 {
            return Err(os());
        }
        Ok(())
    })
    .clone()
}

/// The handler. Only async-signal-safe calls: `mmap`, `write`, `sigaction`, `raise`, atomics;
/// `errno` is left as it was found.
extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: `__errno_location` gives this thread's errno, valid for the thread's life.
    let errno = unsafe { *libc::__errno_location() };
    handle(info);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

fn handle(info: *mut libc::siginfo_t) {
    // SAFETY: for an SA_SIGINFO handler the kernel passes a valid `siginfo_t`, whose address
    // field is the one a SIGBUS fills in.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    let page = PAGE.load(Relaxed);
    let ours = match code == libc::BUS_ADRERR && page != 0 {
        true => regions::find(addr),
        false => None,
    };
    if let Some(slot) = ours {
        let at = addr & !(page - 1);
        // Counted before the zeros can be read (`Mapped::cut`); should the mapping below fail,
        // the process ends anyway.
        slot.fault();
        FAULTS.fetch_add(1, Relaxed);
        // SAFETY: `at` is the page of a title's mapping (the table says so) that the kernel has
        // no backing for (its file ends before it): replacing that one page with zeros,
        // read-only, changes no byte that could be read before, and the mapping's owner unmaps
        // the whole range, this page with it, when it is dropped.
        let zeros = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                page,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if zeros != libc::MAP_FAILED {
            let one: u64 = 1;
            // SAFETY: writes the 8 bytes of `one` to the eventfd (a full counter only makes
            // the write fail: the watcher is woken already).
            unsafe {
                libc::write(
                    WAKE.load(Relaxed),
                    (&one as *const u64).cast::<libc::c_void>(),
                    8,
                );
            }
            return;
        }
    }
    // Sent by a process (`kill -BUS`: nothing runs again on return): what it asks for, the
    // default action.
    if code <= 0 {
        // SAFETY: the default action, then the signal again (blocked in this handler, it is
        // taken as it returns).
        unsafe {
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
            libc::raise(libc::SIGBUS);
        }
        return;
    }
    // Not ours: the action before ours takes it when the access runs again on return.
    match PREVIOUS.get() {
        // SAFETY: restores the action that was installed before ours, as it was read.
        Some(p) => unsafe {
            libc::sigaction(libc::SIGBUS, &p.0, std::ptr::null_mut());
        },
        // SAFETY: the default action (the process ends).
        None => unsafe {
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
        },
    }
}

/// Installs the handler (the binary did before the library was read) and spawns [`watch`]: a
/// title's file cut short under its mapping is then not the end of the process.
pub(crate) fn watching(changed: Arc<tokio::sync::Notify>) -> Option<tokio::task::JoinHandle<()>> {
    match install() {
        Ok(()) => Some(tokio::spawn(watch(changed))),
        Err(e) => {
            tracing::warn!(
                error = %e,
                "no SIGBUS handler: a title file cut short while mapped ends the process"
            );
            None
        }
    }
}

/// The eventfd, as tokio takes it (never closed: it lives as long as the process).
struct Wake(RawFd);

impl AsRawFd for Wake {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// The library is read again this long after a fault, each time: a file cut short is usually
/// being written (`cp`), and a rescan in the middle of that reads it half written.
const AGAIN: [std::time::Duration; 3] = [
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(5),
    std::time::Duration::from_secs(30),
];

/// Waits for the handler's wake-ups: each is logged, and has the library rescanned (`changed`)
/// at once and then [`AGAIN`]. Returns at once when the handler is not installed.
async fn watch(changed: Arc<tokio::sync::Notify>) {
    let fd = WAKE.load(Relaxed);
    if fd < 0 {
        return;
    }
    // SAFETY: the eventfd is open for the life of the process, never closed or replaced.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(Wake(fd), tokio::io::Interest::READABLE)
    };
    // (One server per process in practice; where tests run several, each wake-up is read by
    // one of them, and a runtime that watches it already refuses a second registration.)
    let Ok(wake) = registered else {
        return;
    };
    // The rescans still to come: when the last fault came, and how many were made since.
    let mut again: Option<(tokio::time::Instant, usize)> = None;
    loop {
        let next = again.and_then(|(at, done)| Some(at + *AGAIN.get(done)?));
        let woken = tokio::select! {
            r = wake.readable() => Some(r),
            () = tokio::time::sleep_until(next.unwrap_or_else(tokio::time::Instant::now)),
                if next.is_some() => None,
        };
        let Some(woken) = woken else {
            again = again.map(|(at, done)| (at, done + 1));
            changed.notify_one();
            continue;
        };
        let Ok(mut ready) = woken else {
            return;
        };
        let mut n = [0u8; 8];
        match rustix::io::read(
            // SAFETY: the eventfd stays open for the life of the process.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
            &mut n,
        ) {
            Ok(_) => {
                tracing::warn!(
                    reads = FAULTS.load(Relaxed),
                    "a title's file was cut short while it was mapped (copied over or \
                     rewritten in place): what lay past its new end was read as zeros and the \
                     requests that read it failed; rescanning the library now"
                );
                changed.notify_one();
                again = Some((tokio::time::Instant::now(), 0));
            }
            Err(rustix::io::Errno::AGAIN) => ready.clear_ready(),
            Err(_) => return,
        }
    }
}

/// The system's page size (for tests that cut a mapped file short).
#[cfg(test)]
pub(crate) fn page_size() -> usize {
    // SAFETY: asks for a constant of the system; touches no memory of ours.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    /// Set in the child process of the test below.
    const CHILD: &str = "ZEROCAST_TEST_SIGBUS_CHILD";

    #[test]
    fn a_fault_outside_the_titles_mappings_still_ends_the_process() {
        if std::env::var_os(CHILD).is_some() {
            super::install().unwrap();
            let page = crate::truncated::page_size();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("not-a-title");
            std::fs::write(&path, vec![1u8; 2 * page]).unwrap();
            let file = std::fs::File::open(&path).unwrap();
            // SAFETY: a mapping this test then cuts short on purpose: the read below faults.
            let map = unsafe { memmap2::Mmap::map(&file).unwrap() };
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(1)
                .unwrap();
            // SAFETY: inside the mapping (its second page, past the file's new end).
            let byte = unsafe { std::ptr::read_volatile(map.as_ptr().add(page)) };
            println!("read {byte} and lived");
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "truncated::tests::a_fault_outside_the_titles_mappings_still_ends_the_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGBUS),
            "{:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
