//! What a response serves, and how a request for it is answered: decide, then render.
//!
//! An [`Entity`] is a representation held in memory: its length, a strong validator, perhaps a
//! modification date, and a way to cut a byte range out of it as `Bytes` slices (and, where the
//! same bytes live in a file, the file range for `sendfile`). Library titles and live HLS
//! segments are entities; every future segment type (fMP4 parts, recordings, clips) is one more
//! `impl Entity`, and gets RFC 9110 preconditions, single, suffix and multi-range requests with
//! no code of its own.
//!
//! [`decide`] turns a request into an [`Outcome`] from the validators and the `Range` header
//! alone (§13.2.2, then §14.2); [`render`] only writes that outcome out. Bodies are slices of the
//! entity's `Bytes`: O(1) whatever their size, never copied.

use crate::body::{Chunks, FileSource};
use crate::precondition::{self, Precondition, Validators};
use crate::range::{self, ByteRange, Resolution};
use bytes::Bytes;
use http::header::{
    HeaderValue, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG,
    LAST_MODIFIED, RANGE,
};
use http::{HeaderMap, Method, Response, StatusCode};
use std::sync::Arc;
use std::time::SystemTime;

/// Settings that shape responses.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Most ranges accepted in one request (more: 416).
    pub max_ranges: usize,
    /// `Cache-Control` for library titles.
    pub cache_control: HeaderValue,
    /// The boundary of multipart/byteranges responses.
    pub boundary: String,
    /// Single-part bodies at least this long are sent with `sendfile` from the entity's file when
    /// it has one (see h1/write.rs); shorter ones with `writev`. Measured in docs/benchmarks.md.
    pub sendfile_min: u64,
}

impl Default for Policy {
    fn default() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            ^ u128::from(std::process::id());
        Policy {
            max_ranges: 100,
            cache_control: HeaderValue::from_static("public, max-age=3600"),
            boundary: format!("zerocast-{:024x}", seed & ((1 << 96) - 1)),
            sendfile_min: 1 << 20,
        }
    }
}

/// The most blocks of object storage the ranges of one multi-range request may read (more:
/// 416), whatever `max_ranges` allows.
pub const MULTI_RANGE_STORE_BLOCKS: u64 = 16;

/// A representation served by byte ranges.
pub trait Entity {
    /// Its length in bytes.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn content_type(&self) -> &'static str;
    /// The entity tag, with its quotes: strong, or weak (`W/"…"`) for a growing recording.
    fn etag(&self) -> &str;
    /// The same, as a header value (formatted once, not per response).
    fn etag_header(&self) -> HeaderValue;
    /// Whole seconds, with its header value; `None` when it has no modification date.
    fn last_modified(&self) -> Option<(SystemTime, HeaderValue)>;
    /// Its own `Cache-Control`, or `None` for the policy's.
    fn cache_control(&self) -> Option<HeaderValue>;
    /// The bytes of `range` (within `0..len`), as slices of what it holds.
    fn slice(&self, range: ByteRange) -> Chunks;
}

/// What to send, decided before rendering.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Full,
    Partial(Vec<ByteRange>),
    NotModified,
    PreconditionFailed,
    Unsatisfiable,
}

/// Decides the outcome of a request for an entity (RFC 9110 §13.2.2, then §14.2).
pub fn decide(method: &Method, headers: &HeaderMap, e: &dyn Entity, policy: &Policy) -> Outcome {
    let range = headers.get(RANGE).and_then(|v| v.to_str().ok());
    // Range handling is defined for GET only (RFC 9110 §14.2).
    let range = range.filter(|_| method == Method::GET);
    let v = Validators {
        etag: e.etag(),
        last_modified: e.last_modified().map(|(t, _)| t),
    };
    match precondition::evaluate(headers, v, range.is_some()) {
        Precondition::NotModified => return Outcome::NotModified,
        Precondition::Failed => return Outcome::PreconditionFailed,
        Precondition::Proceed {
            ranges_allowed: false,
        } => return Outcome::Full,
        Precondition::Proceed {
            ranges_allowed: true,
        } => {}
    }
    let Some(specs) = range.and_then(range::parse) else {
        return Outcome::Full;
    };
    match range::resolve(&specs, e.len(), policy.max_ranges) {
        Resolution::Full => Outcome::Full,
        // Many small ranges over a title in object storage: each would fetch a block of its
        // own, a few bytes sent for every block read (RFC 9110 §14.2 lets a server refuse
        // them). One range is sent however long it is.
        Resolution::Partial(r) if r.len() > 1 && store_blocks(e, &r) > MULTI_RANGE_STORE_BLOCKS => {
            Outcome::Unsatisfiable
        }
        Resolution::Partial(r) => Outcome::Partial(r),
        Resolution::Unsatisfiable => Outcome::Unsatisfiable,
    }
}

/// The distinct blocks of object storage that sending `ranges` of `e` reads.
fn store_blocks(e: &dyn Entity, ranges: &[ByteRange]) -> u64 {
    let mut spans: Vec<(u64, u64, u64)> = ranges
        .iter()
        .flat_map(|&r| e.slice(r).store_blocks().collect::<Vec<_>>())
        .collect();
    spans.sort_unstable();
    let mut count = 0u64;
    // The last block counted, per object (the spans come sorted by object, then first block).
    let mut counted: Option<(u64, u64)> = None;
    for (obj, first, last) in spans {
        let from = match counted {
            Some((o, upto)) if o == obj => first.max(upto.saturating_add(1)),
            _ => first,
        };
        if last >= from {
            count += last - from + 1;
        }
        counted = Some(match counted {
            Some((o, upto)) if o == obj => (obj, upto.max(last)),
            _ => (obj, last),
        });
    }
    count
}

/// Renders an outcome.
pub fn render(e: &dyn Entity, policy: &Policy, outcome: Outcome) -> Response<Chunks> {
    let len = e.len();
    // Room for every header below without growing the map.
    let mut h = HeaderMap::with_capacity(8);
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(ETAG, e.etag_header());
    if let Some((_, lm)) = e.last_modified() {
        h.insert(LAST_MODIFIED, lm);
    }
    // What a cache may keep: the entity and its 304, never a 412 or 416 (one client's odd
    // conditions or ranges would fail the title for everyone behind a shared cache).
    if !matches!(
        outcome,
        Outcome::PreconditionFailed | Outcome::Unsatisfiable
    ) {
        h.insert(
            CACHE_CONTROL,
            e.cache_control()
                .unwrap_or_else(|| policy.cache_control.clone()),
        );
    } else {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let ctype = HeaderValue::from_static(e.content_type());
    let (status, body) = match outcome {
        Outcome::NotModified => (StatusCode::NOT_MODIFIED, Chunks::empty()),
        Outcome::PreconditionFailed => {
            h.insert(CONTENT_LENGTH, HeaderValue::from(0));
            (StatusCode::PRECONDITION_FAILED, Chunks::empty())
        }
        Outcome::Unsatisfiable => {
            h.insert(CONTENT_LENGTH, HeaderValue::from(0));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                h.insert(CONTENT_RANGE, v);
            }
            (StatusCode::RANGE_NOT_SATISFIABLE, Chunks::empty())
        }
        Outcome::Full => {
            h.insert(CONTENT_TYPE, ctype);
            h.insert(CONTENT_LENGTH, HeaderValue::from(len));
            (StatusCode::OK, e.slice(ByteRange { start: 0, end: len }))
        }
        Outcome::Partial(ranges) if ranges.len() == 1 => {
            let one = ranges[0];
            h.insert(CONTENT_TYPE, ctype);
            h.insert(CONTENT_LENGTH, HeaderValue::from(one.len()));
            if let Ok(v) = HeaderValue::from_str(&one.content_range(len)) {
                h.insert(CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, e.slice(one))
        }
        Outcome::Partial(ranges) => {
            let b = &policy.boundary;
            let mut body = Chunks::empty();
            for x in &ranges {
                let head = format!(
                    "\r\n--{b}\r\nContent-Type: {}\r\nContent-Range: {}\r\n\r\n",
                    e.content_type(),
                    x.content_range(len)
                );
                body.push(Bytes::from(head));
                body.append(e.slice(*x));
            }
            body.push(Bytes::from(format!("\r\n--{b}--\r\n")));
            let total = http_body::Body::size_hint(&body).exact().unwrap_or(0);
            if let Ok(v) = HeaderValue::from_str(&format!("multipart/byteranges; boundary={b}")) {
                h.insert(CONTENT_TYPE, v);
            }
            h.insert(CONTENT_LENGTH, HeaderValue::from(total));
            (StatusCode::PARTIAL_CONTENT, body)
        }
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = h;
    r
}

/// Decides and renders in one go.
pub fn serve(
    e: &dyn Entity,
    policy: &Policy,
    method: &Method,
    headers: &HeaderMap,
) -> Response<Chunks> {
    let outcome = decide(method, headers, e, policy);
    render(e, policy, outcome)
}

/// The bytes of `range` across a list of `Bytes` (a segment's units), as slices of them.
pub fn slice_parts(parts: &[Bytes], range: ByteRange) -> Chunks {
    let mut body = Chunks::empty();
    let mut at = 0u64;
    for p in parts {
        let (start, end) = (at, at + p.len() as u64);
        at = end;
        if end <= range.start {
            continue;
        }
        if start >= range.end {
            break;
        }
        let from = range.start.saturating_sub(start) as usize;
        let to = (range.end.min(end) - start) as usize;
        body.push(p.slice(from..to));
    }
    body
}

/// A slice of `data` that also lives at the same offsets in `file` (for `sendfile`; `on_disk`:
/// the file is on disk, not in memory).
pub fn file_backed(
    data: &Bytes,
    file: Option<&Arc<std::fs::File>>,
    range: ByteRange,
    on_disk: bool,
) -> Chunks {
    let body = Chunks::from(data.slice(range.start as usize..range.end as usize));
    match file {
        Some(file) if !range.is_empty() => body.with_file(FileSource {
            file: file.clone(),
            offset: range.start,
            len: range.len(),
            on_disk,
        }),
        _ => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment-like entity of several parts, without a date.
    struct Parts(Vec<Bytes>, u64);

    impl Entity for Parts {
        fn len(&self) -> u64 {
            self.1
        }
        fn content_type(&self) -> &'static str {
            "video/mp2t"
        }
        fn etag(&self) -> &str {
            "\"p\""
        }
        fn etag_header(&self) -> HeaderValue {
            HeaderValue::from_static("\"p\"")
        }
        fn last_modified(&self) -> Option<(SystemTime, HeaderValue)> {
            None
        }
        fn cache_control(&self) -> Option<HeaderValue> {
            Some(HeaderValue::from_static("immutable"))
        }
        fn slice(&self, range: ByteRange) -> Chunks {
            slice_parts(&self.0, range)
        }
    }

    fn parts() -> Parts {
        let p: Vec<Bytes> = [&b"abc"[..], b"", b"defg", b"h"]
            .iter()
            .map(|s| Bytes::from_static(s))
            .collect();
        Parts(p, 8)
    }

    fn body(c: &Chunks) -> Vec<u8> {
        c.parts().flat_map(|b| b.to_vec()).collect()
    }

    #[test]
    fn slices_across_parts_match_slicing_the_concatenation() {
        let p = parts();
        let whole = b"abcdefgh";
        for start in 0..=8u64 {
            for end in start..=8u64 {
                let got = body(&slice_parts(&p.0, ByteRange { start, end }));
                assert_eq!(got, &whole[start as usize..end as usize], "{start}..{end}");
            }
        }
    }

    #[test]
    fn a_range_of_a_multi_part_entity_is_a_206_of_those_bytes() {
        let mut h = HeaderMap::new();
        h.insert(RANGE, "bytes=2-4".parse().unwrap());
        let r = serve(&parts(), &Policy::default(), &Method::GET, &h);
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(r.headers()[CONTENT_RANGE], "bytes 2-4/8");
        assert_eq!(r.headers()[CACHE_CONTROL], "immutable");
        assert!(r.headers().get(LAST_MODIFIED).is_none());
        assert_eq!(body(r.body()), b"cde");
    }

    #[test]
    fn a_matching_etag_is_a_304_and_a_date_is_ignored_without_last_modified() {
        let mut h = HeaderMap::new();
        h.insert(http::header::IF_NONE_MATCH, "\"p\"".parse().unwrap());
        let r = serve(&parts(), &Policy::default(), &Method::GET, &h);
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        let mut h = HeaderMap::new();
        h.insert(
            http::header::IF_MODIFIED_SINCE,
            "Tue, 14 Nov 2023 22:13:20 GMT".parse().unwrap(),
        );
        let r = serve(&parts(), &Policy::default(), &Method::GET, &h);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r.body()), b"abcdefgh");
    }
}
