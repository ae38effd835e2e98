//! An answer made of a few `Bytes` derived from a library title (a clip, a VOD playlist, a
//! segment): the written head and slices of the title. Its ETag is the title's with a tag for
//! what was derived, so it changes exactly when the title does; when its last piece is a slice of
//! the title, a range reaching into it goes out with `sendfile` from the title's file.

use crate::body::{Chunks, FileSource};
use crate::entity::{self, Entity};
use crate::library::Title;
use crate::range::ByteRange;
use bytes::Bytes;
use http::header::HeaderValue;
use std::sync::Arc;
use std::time::SystemTime;

#[derive(Debug)]
pub(super) struct Pieces {
    parts: Vec<Bytes>,
    len: u64,
    content_type: &'static str,
    etag: String,
    etag_header: HeaderValue,
    modified: Option<(SystemTime, HeaderValue)>,
    /// Where the last part also lies in a file (the title's), for `sendfile`.
    file: Option<(Arc<std::fs::File>, u64)>,
    /// `Cache-Control: no-cache` (a growing recording's playlist).
    no_cache: bool,
}

impl Pieces {
    /// `parts` derived from `t` (ETag: the title's and `tag`); `tail`: the title offset of the
    /// last part when it is a slice of the title. `None` when the tag makes no header value.
    pub(super) fn of_title(
        t: &Title,
        parts: Vec<Bytes>,
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
            len: parts.iter().map(|p| p.len() as u64).sum(),
            parts,
            content_type,
            etag,
            etag_header,
            modified: t.last_modified(),
            file: tail.and_then(|at| Some((t.file.clone()?, at))),
            no_cache: false,
        })
    }

    /// Caches must ask again each time (a playlist that grows).
    pub(super) fn no_cache(&mut self) {
        self.no_cache = true;
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
        let chunks = entity::slice_parts(&self.parts, range);
        let last = self.len - self.parts.last().map_or(0, |p| p.len() as u64);
        match &self.file {
            Some((file, offset)) if range.end > last => {
                let from = range.start.max(last);
                chunks.with_file(FileSource {
                    file: file.clone(),
                    offset: offset + (from - last),
                    len: range.end - from,
                })
            }
            _ => chunks,
        }
    }
}
