//! The mappings of title files, as the SIGBUS handler finds them: a table it can read without
//! a lock or an allocation (atomics only), so that it knows whether a fault is in a file of
//! ours, and which, and counts it there.
//!
//! The table is chunks of [`CHUNK`] slots, allocated as needed and never freed (a slot is
//! 32 bytes; [`CHUNKS`] chunks cover more mappings than Linux lets a process hold by default,
//! `vm.max_map_count`, 65,530). A slot is taken by a [`Mapping`] when it is made and given back
//! when it is dropped, before its pages are unmapped; its fault count only grows, so a
//! [`Mapped`] snapshot taken from a slot that was given back and taken again can only see
//! faults that are not its own (a response failed for nothing), never miss one of its own.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// Slots per chunk.
const CHUNK: usize = 1024;
/// Chunks at most.
const CHUNKS: usize = 128;

pub(super) struct Slot {
    taken: AtomicBool,
    /// The mapping's first address (0: none; written last when taken, first when given back).
    start: AtomicUsize,
    len: AtomicUsize,
    /// Faults in the mappings that held this slot.
    faults: AtomicU64,
}

type Chunk = [Slot; CHUNK];

static TABLE: [AtomicPtr<Chunk>; CHUNKS] = [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNKS];

/// Where the search for a free slot begins (the slot after the last one taken).
static NEXT: AtomicUsize = AtomicUsize::new(0);

fn chunk(i: usize) -> Option<&'static Chunk> {
    let p = TABLE.get(i)?.load(Ordering::Acquire);
    // SAFETY: a non-null pointer in the table is a chunk leaked by `grow`, valid for the life
    // of the process and only ever accessed through atomics.
    unsafe { p.as_ref() }
}

/// The chunk `i`, allocated if it is not yet.
fn grow(i: usize) -> Option<&'static Chunk> {
    if let Some(c) = chunk(i) {
        return Some(c);
    }
    let new: Box<Chunk> = Box::new(std::array::from_fn(|_| Slot {
        taken: AtomicBool::new(false),
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        faults: AtomicU64::new(0),
    }));
    let new = Box::into_raw(new);
    let entry = TABLE.get(i)?;
    if let Err(other) = entry.compare_exchange(
        std::ptr::null_mut(),
        new,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        // SAFETY: `new` came from `Box::into_raw` above and was not published.
        drop(unsafe { Box::from_raw(new) });
        // SAFETY: as in `chunk`.
        return unsafe { other.as_ref() };
    }
    // SAFETY: as in `chunk`: `new` is now in the table, never freed.
    unsafe { new.as_ref() }
}

/// Takes a free slot for `len` bytes at `start`; `None` when the table is full.
fn take(start: usize, len: usize) -> Option<&'static Slot> {
    let from = NEXT.load(Ordering::Relaxed);
    for n in 0..CHUNK * CHUNKS {
        let at = (from + n) % (CHUNK * CHUNKS);
        let slot = &grow(at / CHUNK)?[at % CHUNK];
        if slot
            .taken
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            slot.len.store(len, Ordering::Release);
            // Last: the handler reads `start` first and, when it names a mapping, `len` after.
            slot.start.store(start, Ordering::Release);
            NEXT.store(at + 1, Ordering::Relaxed);
            return Some(slot);
        }
    }
    None
}

/// The slot of the mapping that holds `addr`, for the handler: atomics only.
pub(super) fn find(addr: usize) -> Option<&'static Slot> {
    for i in 0..CHUNKS {
        let Some(c) = chunk(i) else {
            continue;
        };
        for slot in c.iter() {
            let start = slot.start.load(Ordering::Acquire);
            if start == 0 || addr < start {
                continue;
            }
            let len = slot.len.load(Ordering::Acquire);
            // Still the same mapping (not given back and taken again between the two loads,
            // which could pair an old start with a new length).
            if addr - start < len && slot.start.load(Ordering::Acquire) == start {
                return Some(slot);
            }
        }
    }
    None
}

impl Slot {
    /// A read of its mapping found its page cut off (the handler, before it maps the zeros
    /// that another thread may then read: counted first, so that whoever reads them sees it).
    pub(super) fn fault(&self) {
        self.faults.fetch_add(1, Ordering::SeqCst);
    }
}

/// A read-only mapping of a title's file, in the table while it lives: a fault in it is the
/// handler's to mend (zeros) and is counted in its slot.
pub(crate) struct Mapping {
    map: memmap2::Mmap,
    /// `None`: the table was full (then a fault in it ends the process, as it would with no
    /// handler).
    slot: Option<&'static Slot>,
}

impl Mapping {
    /// Maps the first `len` bytes of `file` (all of it: `None`).
    ///
    /// # Safety
    /// As for [`memmap2::Mmap::map`]: the file's bytes may change under the mapping. Shrinking
    /// it is what this module mends (reads past its new end see zeros, and the fault is counted
    /// in [`Mapped`]); other writers to it must be accepted by the caller.
    pub(crate) unsafe fn map(
        file: &std::sync::Arc<std::fs::File>,
        len: Option<usize>,
    ) -> std::io::Result<(Mapping, Option<Mapped>)> {
        let mut options = memmap2::MmapOptions::new();
        if let Some(len) = len {
            options.len(len);
        }
        // SAFETY: the caller's (above).
        let map = unsafe { options.map(&**file)? };
        let slot = match map.len() {
            0 => None,
            n => take(map.as_ptr() as usize, n),
        };
        if slot.is_none() && !map.is_empty() {
            tracing::warn!(
                "more title files mapped than the SIGBUS handler keeps: one of them cut short \
                 under the server would end the process"
            );
        }
        let mapped = slot.map(|slot| Mapped {
            slot,
            at: slot.faults.load(Ordering::SeqCst),
            base: map.as_ptr() as usize,
            len: map.len(),
            file: file.clone(),
            others: Vec::new(),
        });
        Ok((Mapping { map, slot }, mapped))
    }
}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Out of the table before `map` is unmapped (fields drop after this).
        if let Some(slot) = self.slot {
            slot.start.store(0, Ordering::Release);
            slot.taken.store(false, Ordering::Release);
        }
    }
}

/// A title's mapping as it was when the title was read: whether a read of it has found its
/// file cut short since (then what was read past the new end was zeros). A response of a mapped
/// title carries it (an extension), so that a sender that copies the bytes itself fails the
/// response rather than finish it with them (h1/write.rs, [`super::Copied`]); the title is not
/// served again until a rescan has read its file anew (`Title::readable`).
#[derive(Clone)]
pub(crate) struct Mapped {
    slot: &'static Slot,
    at: u64,
    /// Where the mapping lies (the file's byte 0, and its length).
    base: usize,
    len: usize,
    /// The file mapped (its pages are read in off the workers before they are sent, `pagein`).
    file: std::sync::Arc<std::fs::File>,
    /// Other titles' mappings the same body reads from (a DVR segment that spans two recording
    /// files, [`Mapped::with`]); each has none of its own.
    others: Vec<Mapped>,
}

impl std::fmt::Debug for Mapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapped").field("cut", &self.cut()).finish()
    }
}

impl Mapped {
    /// Whether a read of the mapping found its file cut short. (After the bytes it vouches for
    /// were read: the handler counts a fault before it maps the zeros that could be read.)
    /// Of this mapping and the ones it was joined [`with`](Mapped::with).
    pub(crate) fn cut(&self) -> bool {
        std::sync::atomic::fence(Ordering::SeqCst);
        self.slot.faults.load(Ordering::SeqCst) != self.at || self.others.iter().any(Mapped::cut)
    }

    /// This mapping and `other`'s (with the ones joined to it): a body that reads from both.
    pub(crate) fn with(mut self, mut other: Mapped) -> Mapped {
        let more = std::mem::take(&mut other.others);
        self.others.push(other);
        self.others.extend(more);
        self
    }

    /// The file and the offset in it where `bytes` lie, when they are in this mapping or one
    /// joined to it (a body's slice of a title, not a head written for it).
    pub(crate) fn locate(&self, bytes: &[u8]) -> Option<(&std::sync::Arc<std::fs::File>, u64)> {
        let own = || {
            let at = (bytes.as_ptr() as usize).checked_sub(self.base)?;
            (at.checked_add(bytes.len())? <= self.len).then_some((&self.file, at as u64))
        };
        own().or_else(|| self.others.iter().find_map(|m| m.locate(bytes)))
    }
}
