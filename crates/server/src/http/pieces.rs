//! An answer made of a few pieces derived from a library title (a clip, a VOD playlist, a
//! segment): the written head and ranges of the title (slices of its bytes, or of its object's
//! cached blocks for a title in object storage). Its ETag is the title's with a tag for what
//! was derived, so it changes exactly when the title does; when its last piece is a slice of
//! the title, a range reaching into it goes out with `sendfile` from the title's file.

use crate::body::{Chunks, FileSource};
use crate::entity::Entity;
use crate::library::Title;
use crate::range::ByteRange;
use bytes::Bytes;
use http::header::HeaderValue;
use std::sync::Arc;
use std::time::SystemTime;

/// One piece of an answer: written bytes, or a range of a title in object storage.
#[derive(Debug, Clone)]
pub(super) enum Piece {
    Held(Bytes),
    Stored(Arc<crate::store::Object>, std::ops::Range<u64>),
}

impl From<Bytes> for Piece {
    fn from(b: Bytes) -> Piece {
        Piece::Held(b)
    }
}

impl Piece {
    /// The bytes `r` of title `t`: a slice of its bytes, or a range of its object.
    pub(super) fn of(t: &Title, r: std::ops::Range<u64>) -> Piece {
        match &t.remote {
            Some(obj) => Piece::Stored(obj.clone(), r),
            None => Piece::Held(t.data.slice(r.start as usize..r.end as usize)),
        }
    }

    fn len(&self) -> u64 {
        match self {
            Piece::Held(b) => b.len() as u64,
            Piece::Stored(_, r) => r.end - r.start,
        }
    }
}

/// The answer for a title in object storage whose packaging is still to be read: it carries
/// the title, for the async shell to read it and answer again ([`crate::library::LoadPackage`]).
pub(super) fn pending(t: &Arc<Title>) -> http::Response<Chunks> {
    let mut r = crate::error::Error::Pending(t.id.clone()).response();
    r.extensions_mut()
        .insert(crate::library::LoadPackage(t.clone()));
    r
}

#[derive(Debug)]
pub(super) struct Pieces {
    parts: Vec<Piece>,
    len: u64,
    content_type: &'static str,
    etag: String,
    etag_header: HeaderValue,
    modified: Option<(SystemTime, HeaderValue)>,
    /// Where the last part also lies in a file (the title's), for `sendfile`, and whether that
    /// file is on disk.
    file: Option<(Arc<std::fs::File>, u64, bool)>,
    /// `Cache-Control: no-cache` (a growing recording's playlist).
    no_cache: bool,
}

impl Pieces {
    /// `parts` derived from `t` (ETag: the title's and `tag`); `tail`: the title offset of the
    /// last part when it is a slice of the title. `None` when the tag makes no header value.
    pub(super) fn of_title(
        t: &Title,
        parts: Vec<Piece>,
        content_type: &'static str,
        tag: &str,
        tail: Option<u64>,
    ) -> Option<Pieces> {
        // A growing recording's tag is weak (`W/"..."`) and names its length; what is derived
        // from it is whole (a segment never changes, a playlist's or clip's tag names its
        // length), so the derived tag is strong, from the part of the title's that stays.
        let etag = format!("\"{}-{tag}\"", t.tag_base);
        let etag_header = HeaderValue::from_str(&etag).ok()?;
        Some(Pieces {
            len: parts.iter().map(Piece::len).sum(),
            parts,
            content_type,
            etag,
            etag_header,
            modified: t.last_modified(),
            file: tail.and_then(|at| Some((t.file.clone()?, at, !t.cached))),
            no_cache: false,
        })
    }

    /// Caches must ask again each time (a playlist that grows).
    pub(super) fn no_cache(&mut self) {
        self.no_cache = true;
    }
}

impl Pieces {
    /// The body of `range`: slices of the held pieces, ranges of the object for the stored.
    fn chunks(&self, range: ByteRange) -> Chunks {
        let mut body = Chunks::empty();
        let mut at = 0u64;
        for p in &self.parts {
            let (start, end) = (at, at + p.len());
            at = end;
            if end <= range.start {
                continue;
            }
            if start >= range.end {
                break;
            }
            let (from, to) = (
                range.start.saturating_sub(start),
                range.end.min(end) - start,
            );
            match p {
                Piece::Held(b) => body.push(b.slice(from as usize..to as usize)),
                Piece::Stored(obj, r) => {
                    body.append(Chunks::remote(obj.clone(), r.start + from..r.start + to));
                }
            }
        }
        body
    }
}

impl Entity for Pieces {
    fn len(&self) -> u64 {
        self.len
    }
    fn content_type(&self) -> &'static str {
        self.content_type
    }
    fn etag(&self) -> &str {
        &self.etag
    }
    fn etag_header(&self) -> HeaderValue {
        self.etag_header.clone()
    }
    fn last_modified(&self) -> Option<(SystemTime, HeaderValue)> {
        self.modified.clone()
    }
    fn cache_control(&self) -> Option<HeaderValue> {
        self.no_cache.then(|| HeaderValue::from_static("no-cache"))
    }
    fn slice(&self, range: ByteRange) -> Chunks {
        let chunks = self.chunks(range);
        let last = self.len - self.parts.last().map_or(0, Piece::len);
        match &self.file {
            Some((file, offset, on_disk)) if range.end > last => {
                let from = range.start.max(last);
                chunks.with_file(FileSource {
                    file: file.clone(),
                    offset: offset + (from - last),
                    len: range.end - from,
                    on_disk: *on_disk,
                })
            }
            _ => chunks,
        }
    }
}
