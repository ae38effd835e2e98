//! Where the block cache keeps its blocks: one memfd, mapped, cut into slots of `block_size`,
//! so that a block is both `Bytes` (a slice of the mapping, for `writev`, TLS and hyper) and a
//! range of a file (for `sendfile` on the HTTP/1.1 fast path: the kernel hands the pages to
//! the socket, as it does for local titles).
//!
//! A slot is written once, when a fetched block lands in it, and not again while any `Bytes`
//! of it lives. When the last one is dropped the slot's pages are punched out of the memfd
//! (`FALLOC_FL_PUNCH_HOLE`) before the slot is free again: a `sendfile` that returned may
//! still have those pages queued in a socket (on loopback, until the peer reads them), and
//! the punch leaves them to the socket, so the next block written there lands in fresh
//! pages instead of changing bytes already sent (tested below with a reader that has not
//! read yet). Shared-memory huge pages would make the punch zero a part of a huge page in
//! place, so the arena is not used where the kernel gives memfds huge pages by default.

use bytes::Bytes;
use std::fs::File;
use std::io;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// Slots start and end on multiples of this: whole pages for every page size Linux uses (4, 16
/// or 64 KiB), so a punch never reaches into a neighbouring slot's page (it would zero that
/// part in place instead of taking the page away).
const SLOT_ALIGN: u64 = 64 << 10;

/// The blocks' memory: `slots` slots of `slot` bytes in one memfd.
pub struct Arena {
    file: Arc<File>,
    map: memmap2::MmapRaw,
    slot: usize,
    free: Mutex<Vec<usize>>,
    /// Bytes sent from the arena with `sendfile` (counted by the writer).
    pub sent: AtomicU64,
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("slot", &self.slot)
            .field("slots", &(self.map.len() / self.slot))
            .field("free", &self.free().len())
            .finish()
    }
}

impl Arena {
    /// An arena for a cache of `limit` bytes of blocks of `block_size`: room for twice as many
    /// blocks (blocks let go by the cache live on while responses still send them), and
    /// address space only: pages are taken as blocks land and given back as they go.
    pub fn new(limit: u64, block_size: u64) -> io::Result<Arc<Arena>> {
        if let Some(mode) = crate::shmem::huge_mode()
            .filter(|m| ["always", "within_size", "force"].contains(&m.as_str()))
        {
            return Err(io::Error::other(format!(
                "{} is [{mode}]: memfds get huge pages, which a block let go \
                 cannot be punched out of without changing bytes a socket may still send",
                crate::shmem::SHMEM_HUGE
            )));
        }
        let slot = usize::try_from(block_size.max(1).div_ceil(SLOT_ALIGN) * SLOT_ALIGN)
            .map_err(|_| io::Error::other("block size too large"))?;
        let slots = usize::try_from(limit / block_size.max(1))
            .unwrap_or(usize::MAX / 2)
            .saturating_mul(2)
            .max(8);
        let len = slots
            .checked_mul(slot)
            .ok_or_else(|| io::Error::other("block cache too large to map"))?;
        let fd = rustix::fs::memfd_create("zerocast-blocks", rustix::fs::MemfdFlags::CLOEXEC)?;
        let file = File::from(fd);
        file.set_len(len as u64)?;
        let map = memmap2::MmapRaw::map_raw(&file)?;
        let _ = map.advise(memmap2::Advice::NoHugePage);
        Ok(Arc::new(Arena {
            file: Arc::new(file),
            map,
            slot,
            free: Mutex::new((0..slots).rev().collect()),
            sent: AtomicU64::new(0),
        }))
    }

    fn free(&self) -> std::sync::MutexGuard<'_, Vec<usize>> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `bytes` copied into a free slot, as `Bytes` that free it when the last of them (and of
    /// their slices) is dropped; `None` when every slot is taken (or it does not fit one).
    pub fn hold(self: &Arc<Self>, bytes: &[u8]) -> Option<Bytes> {
        if bytes.len() > self.slot || bytes.is_empty() {
            return None;
        }
        let n = self.free().pop()?;
        // SAFETY: slot `n` was on the free list, so no `Slot` (and so no `Bytes`) refers to
        // it and no other thread writes it; it lies inside the mapping (n < slots, and the
        // mapping is slots × slot bytes long); `bytes` is not in the slot (it is not ours).
        unsafe {
            let to = self.map.as_mut_ptr().add(n * self.slot);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), to, bytes.len());
        }
        Some(Bytes::from_owner(Slot {
            arena: self.clone(),
            n,
            len: bytes.len(),
        }))
    }

    /// Where `b` lies in the arena's file, when it is (a slice of) one of its blocks.
    pub fn locate(&self, b: &[u8]) -> Option<u64> {
        let base = self.map.as_ptr() as usize;
        let p = b.as_ptr() as usize;
        let end = p.checked_add(b.len())?;
        (p >= base && end <= base + self.map.len()).then(|| (p - base) as u64)
    }

    /// The arena's memfd (for `sendfile`).
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }
}

/// The mode in brackets of a sysfs choice list (`always [never] advise`).
/// One taken slot, owned by the `Bytes` of its block.
struct Slot {
    arena: Arc<Arena>,
    n: usize,
    len: usize,
}

impl AsRef<[u8]> for Slot {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the slot lies inside the mapping (see `hold`), its first `len` bytes were
        // written before this `Slot` existed, and nothing writes the slot until this `Slot` is
        // dropped and the slot is back on the free list; the mapping lives as long as the
        // arena, which this `Slot` keeps alive.
        unsafe {
            std::slice::from_raw_parts(
                self.arena.map.as_ptr().add(self.n * self.arena.slot),
                self.len,
            )
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let a = &self.arena;
        let flags = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
        let at = (self.n * a.slot) as u64;
        match rustix::fs::fallocate(&*a.file, flags, at, a.slot as u64) {
            Ok(()) => a.free().push(self.n),
            // Never reused (its pages may still be queued in a socket): the cache goes on in
            // the other slots and on the heap.
            Err(e) => {
                tracing::warn!(error = %e, slot = self.n, "block cache: a slot could not be let go")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_block_is_a_slice_of_the_arena_and_its_slot_is_free_again_when_the_last_slice_goes() {
        let a = Arena::new(8 << 10, 4096).unwrap();
        assert_eq!(a.slot, 64 << 10, "whole 64 KiB pages");
        let slots = a.free().len();
        let b = a.hold(b"block bytes").unwrap();
        assert_eq!(&b[..], b"block bytes");
        let part = b.slice(6..);
        assert_eq!(a.locate(&part), a.locate(&b).map(|at| at + 6));
        assert_eq!(a.free().len(), slots - 1);
        drop(b);
        assert_eq!(a.free().len(), slots - 1, "a slice still holds it");
        drop(part);
        assert_eq!(a.free().len(), slots);
        assert_eq!(a.locate(b"not in the arena"), None);
    }

    #[test]
    fn with_every_slot_taken_a_block_stays_where_it_was() {
        let a = Arena::new(4096, 4096).unwrap();
        let held: Vec<Bytes> = std::iter::from_fn(|| a.hold(b"x")).collect();
        assert_eq!(held.len(), 8, "the fewest slots");
        assert!(a.hold(b"y").is_none());
        assert!(a.hold(&[0; 4097]).is_none(), "larger than a slot");
    }

    /// A block sent with `sendfile` to a reader that has not read it yet, then let go and its
    /// slot written with another block: the reader still gets the first block's bytes.
    #[test]
    fn a_slot_reused_while_a_socket_still_holds_its_pages_does_not_change_what_was_sent() {
        let size = 256 << 10;
        let a = Arena::new(size as u64, size as u64).unwrap();
        // Every slot but one taken: the next block reuses the slot let go.
        let mut taken: Vec<Bytes> = std::iter::from_fn(|| a.hold(&[b'-'; 16])).collect();
        let first = taken.pop().unwrap();
        drop(first);
        let block = a.hold(&vec![b'A'; size]).unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut reader = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (writer, _) = l.accept().unwrap();
        let mut at = a.locate(&block).unwrap();
        let mut sent = 0;
        while sent < size {
            sent += rustix::fs::sendfile(&writer, &**a.file(), Some(&mut at), size - sent).unwrap();
        }
        drop(block);
        let again = a.hold(&vec![b'B'; size]).unwrap();
        assert_eq!(a.locate(&again), Some(at - size as u64), "the same slot");
        let mut got = vec![0; size];
        reader.read_exact(&mut got).unwrap();
        assert!(
            got.iter().all(|&c| c == b'A'),
            "the bytes sent, not the new block's"
        );
        taken.clear();
    }
}
