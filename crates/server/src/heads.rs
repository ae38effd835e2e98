//! Buffers of MP4 clip heads (a `moov` of a few hundred KB for a clip of minutes), reused. A new
//! buffer that size is a new mapping (the allocator maps anything over 128 KiB, main.rs): its
//! first writes fault every page in, and its release unmaps it again; together about a quarter
//! of a clip's time to first byte (docs/benchmarks.md §12). A head's `Bytes` give its buffer
//! back here when the last of them goes (the clip left the title's recent clips and no response
//! still sends it), and the next clip is written into it.

use bytes::Bytes;
use std::sync::Mutex;

/// The most bytes of buffers kept for reuse.
const KEPT_BYTES: usize = 16 << 20;

/// Free buffers, and their capacity in all.
static FREE: Mutex<(Vec<Vec<u8>>, usize)> = Mutex::new((Vec::new(), 0));

/// A buffer to write a head into: one given back before, or a new one.
pub(crate) fn take() -> Vec<u8> {
    let Ok(mut free) = FREE.lock() else {
        return Vec::new();
    };
    let buf = free.0.pop().unwrap_or_default();
    free.1 -= buf.capacity();
    buf
}

/// `head` as `Bytes` that give its buffer back when the last of them is dropped.
pub(crate) fn shared(head: Vec<u8>) -> Bytes {
    Bytes::from_owner(Head(head))
}

struct Head(Vec<u8>);

impl AsRef<[u8]> for Head {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Head {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        if let Ok(mut free) = FREE.lock() {
            if free.1 + buf.capacity() <= KEPT_BYTES {
                free.1 += buf.capacity();
                free.0.push(buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heads_buffer_comes_back_for_the_next_head_once_its_bytes_are_gone() {
        let mut buf = take();
        buf.extend_from_slice(&[7u8; 300_000]);
        let at = buf.as_ptr();
        let head = shared(buf);
        let copy = head.clone();
        drop(head);
        assert_eq!(&copy[..3], &[7, 7, 7], "still held");
        drop(copy);
        // Other tests may take buffers meanwhile: look for ours among a few.
        let taken: Vec<Vec<u8>> = (0..4).map(|_| take()).collect();
        assert!(taken
            .iter()
            .any(|b| b.as_ptr() == at && b.capacity() >= 300_000));
    }
}
