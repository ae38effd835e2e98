//! `GET|HEAD /videos/{id}?start=T&end=T`: the part of a title between two times as a file of its
//! own container ([`media::clip`]), served as an entity (`Pieces`): Range, preconditions and `HEAD`
//! like the title itself. The body is the clip's small head followed by a slice of the cached
//! title (never copied); a range inside that slice goes out with `sendfile` from the title's file.

use super::pieces::{Piece, Pieces};
use crate::body::Chunks;
use crate::entity::{self, Policy};
use crate::error::Error;
use crate::library::Title;
use crate::recent::CutClip;
use http::{Request, Response};
use media::MediaTime;
use std::sync::Arc;

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
    // A title in object storage: its movie is read from the store first (then asked again).
    if t.package_pending() {
        return Ok(super::pieces::pending(t));
    }
    // Of a title in object storage, only an unfragmented MP4's movie is read (its `moov`).
    if let (Some(_), Err(reason)) = (&t.remote, t.package()) {
        return Err(Error::NotClippable {
            id: t.id.clone(),
            reason: reason.to_string(),
        });
    }
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
        let movie = (t.container == media::Container::Mp4 && !t.is_fragmented())
            .then(|| t.package().ok())
            .flatten();
        let clip = match movie.map(|p| &**p) {
            Some(crate::package::Package::Movie { movie, .. }) => {
                media::clip::mp4::clip_in(crate::heads::take(), movie, from, to)
            }
            _ => media::clip::clip(&t.data, info, from, to),
        };
        clip.map(|c| CutClip {
            head: crate::heads::shared(c.head),
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
    let mut parts = vec![clip.head.clone().into()];
    parts.extend(clip.body.iter().map(|r| Piece::of(t, r.clone())));
    // The body's end too (a clip to the end of a growing recording grows between keyframes),
    // and its length (the same times of the same title made into other bytes, as an MP4 whose
    // tracks are not interleaved became when it was first clipped to its own samples: a resumed
    // download must not splice them).
    let len: u64 = clip.head.len() as u64 + clip.body.iter().map(|r| r.end - r.start).sum::<u64>();
    let tag = format!(
        "clip-{}.{}-{}.{}-{}-{len}",
        clip.start.ticks,
        clip.start.scale,
        clip.end.ticks,
        clip.end.scale,
        clip.body.last().map_or(0, |r| r.end)
    );
    let tail = clip.body.last().map(|r| r.start);
    let mut e = Pieces::of_title(t, parts, t.container.mime(), &tag, tail).ok_or_else(|| {
        Error::NotClippable {
            id: t.id.clone(),
            reason: "its entity tag cannot be extended".into(),
        }
    })?;
    if t.is_growing() {
        // A clip of a recording being written grows with it (as the title does, no-cache):
        // a cache must ask again rather than keep a short one for an hour.
        e.no_cache();
    }
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
