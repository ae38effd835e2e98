//! A response body made of `Bytes` that already exist: slices of a cached title, and for multipart
//! responses the small part headers between them. hyper writes the frames with `writev`
//! (`http1::Builder::writev(true)`), so video bytes are never copied in user space.
//!
//! A title in object storage adds one more kind of part, [`Part::Remote`]: a range whose bytes
//! are slices of the store's cached blocks, fetched as the body is written (block by block, so
//! a body longer than the cache streams through it). A fetch that fails ends the body with an
//! error: the connection is cut, never a short body that looks whole.
//!
//! A body whose bytes are pages of a file on disk (a title mapped beyond the memory budget, see
//! [`FileSource::on_disk`]) hands them out a stretch at a time, each read into the page cache
//! off the worker first ([`Part::Paging`], `pagein`).

use crate::store::Object;
use crate::store::StoreError;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// One piece of a body.
pub enum Part {
    Ready(Bytes),
    /// Bytes of an object in a store, fetched when they are due.
    Remote(Remote),
    /// The block of the remote part behind it being fetched (a `Mutex` only to make the body
    /// `Sync`; never contended). Kept among the parts, not beside them: every body (and so
    /// every connection's future) stays as small as before.
    Fetching(std::sync::Mutex<Fetch>),
    /// The next stretch of a body from a file on disk, its pages being read in off the worker
    /// (`pagein`) before it is handed out (a `Mutex` for the same reason).
    Paging(std::sync::Mutex<PageIn>),
}

impl std::fmt::Debug for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Part::Ready(b) => write!(f, "Ready({})", b.len()),
            Part::Remote(r) => write!(f, "Remote({}, {:?})", r.obj.key, r.range),
            Part::Fetching(_) => f.write_str("Fetching"),
            Part::Paging(_) => f.write_str("Paging"),
        }
    }
}

/// A range of a stored object still to be sent.
#[derive(Debug)]
pub struct Remote {
    obj: Arc<Object>,
    range: std::ops::Range<u64>,
    /// The last block fetched ahead while it is sent: its own last one, or a few more past it
    /// for a reader going through the object range after range.
    ahead_to: u64,
}

type Fetch = Pin<Box<dyn Future<Output = Result<Bytes, StoreError>> + Send>>;
type PageIn = Pin<Box<dyn Future<Output = Bytes> + Send>>;

#[derive(Default)]
pub struct Chunks {
    parts: VecDeque<Part>,
    remaining: u64,
    /// Boxed: a body (and so every connection's future that may hold one) stays small.
    file: Option<Box<FileSource>>,
}

impl std::fmt::Debug for Chunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunks")
            .field("parts", &self.parts.len())
            .field("remaining", &self.remaining)
            .field("file", &self.file)
            .finish()
    }
}

/// Where the last `len` bytes of a body also live in a file (a title's sealed memfd, or the
/// title's own file), so a writer that can use `sendfile` (the HTTP/1.1 fast path) may send them
/// from there instead of writing the `Bytes`: all of a plain range, or what follows the written
/// head of a clip or segment. hyper ignores it and writes the `Bytes`.
#[derive(Debug, Clone)]
pub struct FileSource {
    pub file: Arc<std::fs::File>,
    pub offset: u64,
    pub len: u64,
    /// The file is on disk (a title mapped from its file, not held in memory): `pagein` looks
    /// up which of its pages are in memory before they are sent, and reads the others in off
    /// the worker.
    pub on_disk: bool,
}

impl Chunks {
    pub fn empty() -> Self {
        Chunks::default()
    }

    /// The bytes `range` of a stored object, fetched as they are written.
    pub fn remote(obj: Arc<Object>, range: std::ops::Range<u64>) -> Self {
        let mut c = Chunks::default();
        if range.end > range.start {
            c.remaining = range.end - range.start;
            let ahead_to = obj.source.blocks.ahead_to(&obj, &range);
            c.parts.push_back(Part::Remote(Remote {
                obj,
                range,
                ahead_to,
            }));
        }
        c
    }

    /// The blocks of object storage this body reads (read-ahead aside), as (object, first,
    /// last block): what sending it costs the stores when none of them is cached.
    pub fn store_blocks(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Remote(r) => {
                let bs = r.obj.source.blocks.block_size;
                let first = r.range.start / bs;
                let last = r.range.end.saturating_sub(1) / bs;
                Some((r.obj.uid, first, last.max(first)))
            }
            _ => None,
        })
    }

    /// Marks this body's last `file.len` bytes (all of it, or what follows a head) as also
    /// readable from `file` (see [`FileSource`]).
    pub fn with_file(mut self, file: FileSource) -> Self {
        debug_assert!(file.len <= self.remaining);
        if file.len <= self.remaining {
            self.file = Some(Box::new(file));
        }
        self
    }

    pub fn file(&self) -> Option<&FileSource> {
        self.file.as_deref()
    }

    /// How many bytes are still to send.
    pub fn len(&self) -> u64 {
        self.remaining
    }

    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// The arena that holds the blocks of the body's first remote part, when its store's
    /// cache keeps them in one (a writer that can `sendfile` sends them from there).
    pub fn arena(&self) -> Option<Arc<crate::store::Arena>> {
        self.parts.iter().find_map(|p| match p {
            Part::Remote(r) => r.obj.source.blocks.arena.clone(),
            _ => None,
        })
    }

    /// Whether some of it is still to be fetched from a store (then write it frame by frame,
    /// [`http_body_util::BodyExt::frame`], after [`Chunks::prime`]).
    pub fn is_remote(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Remote(..) | Part::Fetching(_)))
    }

    /// The frames still to send (of a body that is not remote).
    pub fn parts(&self) -> impl Iterator<Item = &Bytes> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ready(b) => Some(b),
            Part::Remote(..) | Part::Fetching(_) | Part::Paging(_) => None,
        })
    }

    /// Appends another body's frames (its file source, if any, is dropped: a body of several
    /// pieces is written with `writev`).
    pub fn append(&mut self, other: Chunks) {
        for p in other.parts {
            match p {
                Part::Ready(b) => self.push(b),
                Part::Remote(r) => {
                    self.remaining += r.range.end - r.range.start;
                    self.parts.push_back(Part::Remote(r));
                }
                // Only a body being written has one; a body appended is a fresh one (and if
                // it were not, its block's bytes were counted by the part it came from).
                Part::Fetching(f) => self.parts.push_back(Part::Fetching(f)),
                Part::Paging(f) => self.parts.push_back(Part::Paging(f)),
            }
        }
    }

    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.remaining += b.len() as u64;
            self.parts.push_back(Part::Ready(b));
        }
    }

    /// Fetches the first block a remote body needs before anything is sent, so that a store
    /// that cannot be read makes an error response (502/504) rather than a cut body.
    pub async fn prime(&mut self) -> Result<(), StoreError> {
        let Some(i) = self
            .parts
            .iter()
            .position(|p| matches!(p, Part::Remote(..) | Part::Fetching(_)))
        else {
            return Ok(());
        };
        if matches!(self.parts.get(i), Some(Part::Fetching(_))) {
            return Ok(());
        }
        // The first remote part's first block takes its place in front of the rest of it (a
        // multipart body's part header stays before it).
        let fetch = self.next_fetch(i);
        let b = fetch.await?;
        self.parts.insert(i, Part::Ready(b));
        Ok(())
    }

    /// For the frame `b` about to be handed out (taken off the front): when some of it lies in a
    /// file on disk, what to hand out instead: the part of it before the file, or its next
    /// stretch (at most `pagein::STRETCH`) with its pages read in first; the rest of `b` goes
    /// back in front. `Err(b)`: hand `b` out as it is.
    fn page_in(&mut self, mut b: Bytes) -> Result<Part, Bytes> {
        let Some(src) = self.file.as_deref().filter(|f| f.on_disk) else {
            return Err(b);
        };
        let len = b.len() as u64;
        // Where `b` starts and ends, counted back from the body's end; the file is its last
        // `src.len` bytes.
        let start = self.remaining;
        if start.saturating_sub(len) >= src.len {
            return Err(b);
        }
        if start > src.len {
            // What comes before the file (a head) goes out as it is.
            let rest = b.split_off((start - src.len) as usize);
            self.parts.push_front(Part::Ready(rest));
            return Ok(Part::Ready(b));
        }
        if len > crate::pagein::STRETCH {
            let rest = b.split_off(crate::pagein::STRETCH as usize);
            self.parts.push_front(Part::Ready(rest));
        }
        let (file, offset) = (src.file.clone(), src.offset + (src.len - start));
        let n = b.len() as u64;
        Ok(Part::Paging(std::sync::Mutex::new(Box::pin(async move {
            crate::pagein::ensure(&file, offset, n).await;
            b
        }))))
    }

    /// The fetch of the next block of the remote part at `i` (the part shrinks by it, and goes
    /// when it is all handed out).
    fn next_fetch(&mut self, i: usize) -> Fetch {
        let Some(Part::Remote(Remote {
            obj,
            range,
            ahead_to,
        })) = self.parts.get_mut(i)
        else {
            return Box::pin(async { Ok(Bytes::new()) });
        };
        let ahead_to = *ahead_to;
        let bs = obj.source.blocks.block_size;
        let n = range.start / bs;
        let (from, to) = (
            range.start,
            range.end.min(n.saturating_add(1).saturating_mul(bs)),
        );
        range.start = to;
        let obj = obj.clone();
        if range.start >= range.end {
            self.parts.remove(i);
        }
        Box::pin(async move {
            let block = obj.source.blocks.get(&obj, n, ahead_to).await?;
            let (a, b) = ((from - n * bs) as usize, (to - n * bs) as usize);
            if b > block.len() {
                return Err(StoreError::Short {
                    got: block.len() as u64,
                    want: b as u64,
                });
            }
            Ok(block.slice(a..b))
        })
    }
}

impl From<Bytes> for Chunks {
    fn from(b: Bytes) -> Self {
        let mut c = Chunks::default();
        c.push(b);
        c
    }
}

impl From<String> for Chunks {
    fn from(s: String) -> Self {
        Bytes::from(s).into()
    }
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        loop {
            match self.parts.front_mut() {
                None => return Poll::Ready(None),
                Some(Part::Fetching(f)) => {
                    let f = f.get_mut().unwrap_or_else(|e| e.into_inner());
                    let r = std::task::ready!(f.as_mut().poll(cx));
                    self.parts.pop_front();
                    return Poll::Ready(Some(match r {
                        Ok(b) => {
                            self.remaining = self.remaining.saturating_sub(b.len() as u64);
                            Ok(Frame::data(b))
                        }
                        Err(e) => {
                            self.parts.clear();
                            self.remaining = 0;
                            Err(std::io::Error::other(e))
                        }
                    }));
                }
                Some(Part::Paging(f)) => {
                    let f = f.get_mut().unwrap_or_else(|e| e.into_inner());
                    let b = std::task::ready!(f.as_mut().poll(cx));
                    self.parts.pop_front();
                    self.remaining -= b.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                Some(Part::Ready(_)) => {
                    let Some(Part::Ready(b)) = self.parts.pop_front() else {
                        return Poll::Ready(None);
                    };
                    let b = match self.page_in(b) {
                        Ok(paging) => {
                            self.parts.push_front(paging);
                            continue;
                        }
                        Err(b) => b,
                    };
                    self.remaining -= b.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                Some(Part::Remote(..)) => {
                    let f = self.next_fetch(0);
                    self.parts
                        .push_front(Part::Fetching(std::sync::Mutex::new(f)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// The size of a body that holds `extra` bytes of a frame it took from `inner`, besides what
/// `inner` still says it holds (bodies that give a frame in pieces: h2.rs, truncated.rs).
pub(crate) fn size_hint_plus(inner: http_body::SizeHint, extra: usize) -> http_body::SizeHint {
    let extra = extra as u64;
    let mut h = http_body::SizeHint::new();
    h.set_lower(inner.lower().saturating_add(extra));
    if let Some(upper) = inner.upper() {
        // At least the lower bound (set_upper refuses less).
        h.set_upper(upper.saturating_add(extra).max(h.lower()));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_body_from_a_file_on_disk_comes_out_in_stretches_read_in_first_after_its_head() {
        let len = 20 << 20;
        let (_f, file, bytes) = crate::pagein::tests::cold_file(len);
        let map = Bytes::from(bytes);
        let before = crate::pagein::READ_IN.load(std::sync::atomic::Ordering::Relaxed);
        let head = Bytes::from_static(b"a head written before the file's bytes");
        let mut body = Chunks::from(head.clone());
        body.push(map.slice(1000..));
        let body = body.with_file(FileSource {
            file,
            offset: 1000,
            len: (len - 1000) as u64,
            on_disk: true,
        });
        let mut frames = Vec::new();
        let mut body = std::pin::pin!(body);
        while let Some(f) = body.frame().await {
            frames.push(f.unwrap().into_data().unwrap());
        }
        assert_eq!(frames[0], head);
        assert!(frames[1..]
            .iter()
            .all(|f| f.len() as u64 <= crate::pagein::STRETCH));
        assert_eq!(frames[1..].concat(), map[1000..]);
        let read = crate::pagein::READ_IN.load(std::sync::atomic::Ordering::Relaxed) - before;
        assert!(read >= crate::pagein::STRETCH, "{read}");
    }
}
