//! A response body made of `Bytes` that already exist: slices of a cached title, and for multipart
//! responses the small part headers between them. hyper writes the frames with `writev`
//! (`http1::Builder::writev(true)`), so video bytes are never copied in user space.

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

#[derive(Debug, Default)]
pub struct Chunks {
    parts: VecDeque<Bytes>,
    remaining: u64,
    file: Option<FileSource>,
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
}

impl Chunks {
    pub fn empty() -> Self {
        Chunks::default()
    }

    /// Marks this body's last `file.len` bytes (all of it, or what follows a head) as also
    /// readable from `file` (see [`FileSource`]).
    pub fn with_file(mut self, file: FileSource) -> Self {
        debug_assert!(file.len <= self.remaining);
        if file.len <= self.remaining {
            self.file = Some(file);
        }
        self
    }

    pub fn file(&self) -> Option<&FileSource> {
        self.file.as_ref()
    }

    /// How many bytes are still to send.
    pub fn len(&self) -> u64 {
        self.remaining
    }

    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// The frames still to send.
    pub fn parts(&self) -> impl Iterator<Item = &Bytes> {
        self.parts.iter()
    }

    /// Appends another body's frames (its file source, if any, is dropped: a body of several
    /// pieces is written with `writev`).
    pub fn append(&mut self, other: Chunks) {
        for b in other.parts {
            self.push(b);
        }
    }

    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.remaining += b.len() as u64;
            self.parts.push_back(b);
        }
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
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.parts.pop_front().map(|b| {
            self.remaining -= b.len() as u64;
            Ok(Frame::data(b))
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
