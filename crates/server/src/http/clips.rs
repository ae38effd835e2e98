//! `GET|HEAD /videos/{id}?start=T&end=T`: the part of a title between two times as a file of its
//! own container ([`media::clip`]), served as an [`Entity`]: Range, preconditions and `HEAD`
//! like the title itself. The body is the clip's small head followed by a slice of the cached
//! title (never copied); a range inside that slice goes out with `sendfile` from the title's file.

use crate::body::{Chunks, FileSource};
use crate::entity::{self, Entity, Policy};
use crate::error::Error;
use crate::library::Title;
use crate::range::ByteRange;
use crate::recent::CutClip;
use bytes::Bytes;
use http::header::HeaderValue;
use http::{Request, Response};
use media::MediaTime;
use std::sync::Arc;
use std::time::SystemTime;

/// A clip of a title.
#[derive(Debug)]
struct Clip {
    title: Arc<Title>,
    head: Bytes,
    body: std::ops::Range<u64>,
    etag: String,
    etag_header: HeaderValue,
}

impl Entity for Clip {
    fn len(&self) -> u64 {
        self.head.len() as u64 + (self.body.end - self.body.start)
    }

    fn content_type(&self) -> &'static str {
        self.title.content_type()
    }

    fn etag(&self) -> &str {
        &self.etag
    }

    fn etag_header(&self) -> HeaderValue {
        self.etag_header.clone()
    }

    fn last_modified(&self) -> Option<(SystemTime, HeaderValue)> {
        self.title.last_modified()
    }

    fn cache_control(&self) -> Option<HeaderValue> {
        None
    }

    fn slice(&self, range: ByteRange) -> Chunks {
        let head = self.head.len() as u64;
        if range.start >= head {
            // Inside the title's bytes: a slice of the title, and of its file for sendfile.
            let inner = ByteRange {
                start: self.body.start + (range.start - head),
                end: self.body.start + (range.end - head),
            };
            return entity::file_backed(&self.title.data, self.title.file.as_ref(), inner);
        }
        let body = self
            .title
            .data
            .slice(self.body.start as usize..self.body.end as usize);
        let chunks = entity::slice_parts(&[self.head.clone(), body], range);
        // The part after the head is also in the title's file: sendfile it after the head.
        match &self.title.file {
            Some(file) if range.end > head => chunks.with_file(FileSource {
                file: file.clone(),
                offset: self.body.start,
                len: range.end - head,
            }),
            _ => chunks,
        }
    }
}

/// The clip's times from the query (`start`, `end`), or `None` when it names neither.
fn times(query: Option<&str>) -> Option<(Option<String>, Option<String>)> {
    let start = crate::auth::query_param(query, "start");
    let end = crate::auth::query_param(query, "end");
    (start.is_some() || end.is_some()).then_some((start, end))
}

/// Whether a request for a title asks for a clip of it.
pub(super) fn wanted(query: Option<&str>) -> bool {
    times(query).is_some()
}

/// Answers a clip request for `t`.
pub(super) fn serve<B>(
    t: &Arc<Title>,
    policy: &Policy,
    req: &Request<B>,
) -> Result<Response<Chunks>, Error> {
    let (start, end) = times(req.uri().query()).unwrap_or_default();
    let info = t.index.as_ref().map_err(|reason| Error::NotSeekable {
        id: t.id.clone(),
        reason: reason.clone(),
    })?;
    let rate = info.frame_rate();
    let parse =
        |v: &str| media::timecode::parse(v, rate).map_err(|e| super::vod::time_error(t, v, e));
    let from = match &start {
        Some(v) => parse(v)?,
        None => MediaTime::ZERO,
    };
    let to = end.as_deref().map(parse).transpose()?;
    let clip = t.clips.get_or_make((from, to), || {
        // An MP4's movie is parsed once and kept with the title (its packaging).
        let clip = match t.package().ok().map(|p| &**p) {
            Some(crate::package::Package::Movie { movie, .. }) => {
                media::clip::mp4::clip(movie, from, to)
            }
            _ => media::clip::clip(&t.data, info, from, to),
        };
        clip.map(|c| CutClip {
            head: Bytes::from(c.head),
            body: c.body,
            start: c.start,
            end: c.end,
        })
        .map_err(|e| match e {
            media::Error::Malformed { .. } | media::Error::Truncated { .. } => {
                Error::NotClippable {
                    id: t.id.clone(),
                    reason: e.to_string(),
                }
            }
            e => super::vod::time_error(t, start.as_deref().unwrap_or("0"), e),
        })
    })?;
    let inner = t.etag.trim_matches('"');
    let etag = format!(
        "\"{inner}-clip-{}.{}-{}.{}\"",
        clip.start.ticks, clip.start.scale, clip.end.ticks, clip.end.scale
    );
    let etag_header = HeaderValue::from_str(&etag).map_err(|_| Error::NotClippable {
        id: t.id.clone(),
        reason: "its entity tag cannot be extended".into(),
    })?;
    let e = Clip {
        title: t.clone(),
        head: clip.head.clone(),
        body: clip.body.clone(),
        etag,
        etag_header,
    };
    Ok(entity::serve(&e, policy, req.method(), req.headers()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_request_is_a_clip_request_when_it_names_a_start_or_an_end() {
        assert!(!wanted(None));
        assert!(!wanted(Some("x=1")));
        assert!(wanted(Some("start=10")));
        assert!(wanted(Some("end=00:00:05:00")));
        assert_eq!(
            times(Some("start=1m&end=2m")),
            Some((Some("1m".into()), Some("2m".into())))
        );
    }
}
