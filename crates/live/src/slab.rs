//! Receive buffers for live ingest: the socket is read straight into the free tail of a
//! preallocated slab, and the whole TS packets received are cut off the front as the units that
//! the ring and every viewer share. Nothing is spliced together afterwards.
//!
//! ```text
//!   slab:  [ units already cut off (shared, frozen) | partial packet | free tail ............ ]
//!                                                     ^ the next read lands here ------------->
//! ```
//! Before each read the free tail is checked: when fewer than `min_read` bytes are left, the slab
//! is retired and the next read goes to a retired slab that no viewer holds any unit of any more
//! (`BytesMut::try_reclaim`), or to a new one when all are still held. Either way the partial packet (< 188 bytes) moves to the front: that is
//! the one copy in this path, counted in [`Slab::carried`]. A read never grows the buffer itself,
//! so it never silently reallocates and copies.

use bytes::BytesMut;

/// Retired slabs kept for reuse (a ring of a few seconds spans a handful of slabs).
const RETIRED: usize = 4;

#[derive(Debug)]
pub struct Slab {
    buf: BytesMut,
    /// Slabs that units are still cut from, kept to be reused once no one holds those units.
    retired: Vec<BytesMut>,
    size: usize,
    min_read: usize,
    /// Slabs allocated (the first one included).
    pub allocations: u64,
    /// Slabs reused in place because no viewer held any of their units any more.
    pub reclaims: u64,
    /// Bytes copied: partial packets moved to a new or reclaimed slab, and body bytes that arrived
    /// in a small framing read (see `RequestBody`).
    pub carried: u64,
}

impl Slab {
    /// A slab of `size` bytes that offers at least `min_read` bytes to each read.
    pub fn new(size: usize, min_read: usize) -> Self {
        let size = size.max(min_read * 2);
        Slab {
            buf: BytesMut::with_capacity(size),
            retired: Vec::new(),
            size,
            min_read,
            allocations: 1,
            reclaims: 0,
            carried: 0,
        }
    }

    /// The buffer to read into, with at least `min_read` bytes of spare capacity. Read into its
    /// spare capacity only (`read_buf`), never more.
    pub fn spare(&mut self) -> &mut BytesMut {
        if self.buf.capacity() - self.buf.len() >= self.min_read {
            return &mut self.buf;
        }
        let pending = self.buf.len();
        let want = self.size.max(pending + self.min_read);
        if self.buf.try_reclaim(want - pending) {
            // No unit cut from this slab is held any more: start over at its beginning.
            self.reclaims += 1;
            self.carried += pending as u64;
            return &mut self.buf;
        }
        // The newest units are still held (they always are while viewers watch): retire this
        // slab, and take a retired one that no one holds any more, or a new one.
        let free = self.retired.iter_mut().position(|b| b.try_reclaim(want));
        let mut next = match free {
            Some(i) => {
                self.reclaims += 1;
                self.retired.swap_remove(i)
            }
            None => {
                self.allocations += 1;
                BytesMut::with_capacity(want)
            }
        };
        next.extend_from_slice(&self.buf);
        self.carried += pending as u64;
        let mut old = std::mem::replace(&mut self.buf, next);
        old.clear();
        if self.retired.len() >= RETIRED {
            // Its memory is freed when the last unit cut from it is dropped.
            self.retired.remove(0);
        }
        self.retired.push(old);
        &mut self.buf
    }

    /// Appends bytes that were read elsewhere (counted as carried).
    pub fn extend(&mut self, data: &[u8]) {
        let mut rest = data;
        while !rest.is_empty() {
            let buf = self.spare();
            let n = rest.len().min(buf.capacity() - buf.len());
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
        self.carried += data.len() as u64;
    }

    /// Cuts off the whole `packet`-sized packets received so far, leaving a partial one in place.
    pub fn take_whole(&mut self, packet: usize) -> Option<BytesMut> {
        let whole = self.buf.len() / packet * packet;
        (whole > 0).then(|| self.buf.split_to(whole))
    }

    /// Bytes received but not yet cut off (a partial packet).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_never_reallocate_and_free_slabs_are_reused() {
        let mut slab = Slab::new(4096, 1024);
        let first = slab.spare().as_ptr();
        // Simulate reads of 1000 bytes; cut whole 188-byte packets after each.
        let mut held = Vec::new();
        let mut total = 0;
        for i in 0..40 {
            let buf = slab.spare();
            let (cap, len) = (buf.capacity(), buf.len());
            assert!(cap - len >= 1024, "room checked before the read");
            let start = buf.as_ptr() as usize + len;
            buf.extend_from_slice(&[i as u8; 1000]);
            assert_eq!(buf.capacity(), cap, "the read did not reallocate");
            assert_eq!(buf.as_ptr() as usize + len, start);
            total += 1000;
            if let Some(units) = slab.take_whole(188) {
                held.push(units.freeze());
            }
            // Viewers let go of everything but the last 3 units.
            if held.len() > 3 {
                held.remove(0);
            }
        }
        let cut: usize = total / 188 * 188;
        assert_eq!(slab.pending(), total - cut);
        assert!(slab.reclaims > 0, "slabs no one holds are reused");
        assert!(
            slab.allocations < 20,
            "{} allocations for 40 reads",
            slab.allocations
        );
        assert!(slab.carried < 188 * (slab.allocations + slab.reclaims));
        // Held units keep their bytes whatever happens to the slab.
        drop(held);
        let _ = first;
    }

    #[test]
    fn a_held_slab_is_not_overwritten() {
        let mut slab = Slab::new(1000, 500);
        slab.spare().extend_from_slice(&[7; 376]);
        let unit = slab.take_whole(188).unwrap().freeze();
        slab.spare().extend_from_slice(&[8; 400]);
        // Not enough room now: the slab is still held by `unit`, so a new one is allocated.
        slab.spare().extend_from_slice(&[9; 500]);
        assert_eq!(slab.allocations, 2);
        assert!(unit.iter().all(|&b| b == 7));
        let mut all = Vec::new();
        while let Some(u) = slab.take_whole(188) {
            all.extend_from_slice(&u);
        }
        assert_eq!(all.len(), 752);
        assert!(all[..400].iter().all(|&b| b == 8) && all[400..].iter().all(|&b| b == 9));
        slab.extend(&[1; 3000]);
        assert_eq!(slab.pending(), 148 + 3000);
    }
}
