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
/// The largest buffer kept (a title keeps heads up to this long, `recent::MAX_KEPT_HEAD`).
const LARGEST: usize = 4 << 20;

/// Free buffers, and their capacity in all.
#[derive(Debug, Default)]
struct Pool(Mutex<(Vec<Vec<u8>>, usize)>);

static POOL: Pool = Pool(Mutex::new((Vec::new(), 0)));

impl Pool {
    fn take(&self) -> Vec<u8> {
        let Ok(mut free) = self.0.lock() else {
            return Vec::new();
        };
        let buf = free.0.pop().unwrap_or_default();
        free.1 -= buf.capacity();
        buf
    }

    fn give(&self, buf: Vec<u8>) {
        if buf.capacity() > LARGEST {
            return;
        }
        if let Ok(mut free) = self.0.lock() {
            if free.1 + buf.capacity() <= KEPT_BYTES {
                free.1 += buf.capacity();
                free.0.push(buf);
            }
        }
    }
}

/// A buffer to write a head into: one given back before, or a new one.
pub(crate) fn take() -> Vec<u8> {
    POOL.take()
}

/// `head` as `Bytes` that give its buffer back when the last of them is dropped. A buffer much
/// larger than its head (a short clip written into a long one's) is shrunk first: a title keeps
/// its recent clips' heads, and must not keep more memory than they are long.
pub(crate) fn shared(head: Vec<u8>) -> Bytes {
    shared_in(&POOL, head)
}

fn shared_in(pool: &'static Pool, mut head: Vec<u8>) -> Bytes {
    if head.capacity() > 2 * head.len() + (64 << 10) {
        head.shrink_to_fit();
    }
    Bytes::from_owner(Head(head, pool))
}

struct Head(Vec<u8>, &'static Pool);

impl AsRef<[u8]> for Head {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Head {
    fn drop(&mut self) {
        self.1.give(std::mem::take(&mut self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> &'static Pool {
        Box::leak(Box::default())
    }

    #[test]
    fn a_heads_buffer_comes_back_for_the_next_head_once_its_bytes_are_gone() {
        let pool = pool();
        let mut buf = pool.take();
        buf.extend_from_slice(&[7u8; 300_000]);
        let at = buf.as_ptr();
        let head = shared_in(pool, buf);
        let copy = head.clone();
        drop(head);
        assert_eq!(&copy[..3], &[7, 7, 7], "still held");
        assert_eq!(pool.take().capacity(), 0, "not back while a copy is held");
        drop(copy);
        let again = pool.take();
        assert_eq!(again.as_ptr(), at);
        assert!(again.capacity() >= 300_000);
    }

    #[test]
    fn a_short_head_in_a_long_heads_buffer_keeps_only_about_its_own_length() {
        let pool = pool();
        let mut buf = Vec::with_capacity(3 << 20);
        buf.extend_from_slice(&[1u8; 1000]);
        let head = shared_in(pool, buf);
        drop(head);
        assert!(pool.take().capacity() < 64 << 10);
    }

    #[test]
    fn buffers_beyond_the_largest_kept_or_the_total_are_let_go() {
        let pool = pool();
        pool.give(Vec::with_capacity(LARGEST + 1));
        assert_eq!(pool.take().capacity(), 0);
        for _ in 0..5 {
            pool.give(Vec::with_capacity(LARGEST));
        }
        assert_eq!(pool.0.lock().unwrap().1, KEPT_BYTES);
    }
}
