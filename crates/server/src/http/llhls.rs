//! LL-HLS over HTTP: the playlist (held until it has what `_HLS_msn`/`_HLS_part` ask for, then
//! rendered by `live::llhls`), and the init segment, segments and parts as entities (immutable,
//! strong ETag, ranges) made of the `Bytes` the MP4 ring holds.
//!
//! A held request waits in [`hold`], before `http::handle` answers it: on HTTP/1.1 in h1/, on
//! HTTP/2 in h2.rs. A blocking playlist answer may be cached for a second (about a part's
//! duration), keyed on its URL with the query: what a CDN needs to collapse the requests of all
//! the players waiting for the same part into one (docs/live.md).

use super::hls::Segment;
use super::{text, uri_number};
use crate::body::Chunks;
use crate::entity::Policy;
use crate::error::Error;
use crate::http::{Instance, Route};
use crate::library::Library;
use crate::live::llhls::Followed;
use crate::live::{Held, Live, Output, Stream};
use crate::state::State;
use ::live::llhls::{Awaited, Dvr, Query};
use ::live::record::checkpoints::Piece;
use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL};
use http::{Request, Response, StatusCode};
use std::sync::atomic::Ordering::Relaxed;

/// A segment (`7`) or a part (`7.2`) of an LL-HLS media URI.
pub(crate) fn parse_media(media: &str) -> Option<(u64, Option<usize>)> {
    match media.split_once('.') {
        None => Some((uri_number(media)?, None)),
        Some((msn, part)) => Some((uri_number(msn)?, Some(uri_number(part)?))),
    }
}

/// A request that may be streamed while what it asks for is written: a GET of an LL-HLS part or
/// a DASH segment, without `Range`, over HTTP/1.1 or later. Its stream instance, and what it
/// follows.
pub(crate) fn streamable<'a, B>(
    route: Route<'a>,
    req: &Request<B>,
) -> Option<(Instance<'a>, Followed)> {
    let ranged = req.headers().contains_key(http::header::RANGE);
    if req.method() != http::Method::GET || ranged || req.version() < http::Version::HTTP_11 {
        return None;
    }
    match route {
        Route::LlMedia(at, media) => {
            let (msn, part) = parse_media(media)?;
            Some((at, Followed::Part { msn, part: part? }))
        }
        Route::DashMedia(at, file) => {
            let (track, msn) = super::dash::parse_media(file)?;
            Some((at, Followed::Track { msn, track }))
        }
        _ => None,
    }
}

/// Holds an LL-HLS playlist request until the playlist has the segment or part it names (or, with
/// no `_HLS_msn`, until a stream that just started has a first segment), and a part request until
/// the part is complete, or, when the caller can stream it (`stream_open`), until it is begun.
/// Other routes pass at once.
pub(crate) async fn hold<B>(
    state: &State,
    route: Route<'_>,
    req: &Request<B>,
    stream_open: bool,
) -> Result<(), Error> {
    // A preflight or any other method is answered at once (and never asks for credentials).
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return Ok(());
    }
    let (name, awaited) = match route {
        Route::LlPlaylist(name) => {
            let q = Query::parse(req.uri().query()).map_err(Error::LlQuery)?;
            (name, Awaited::Playlist(q))
        }
        Route::LlMedia(at, media) => match parse_media(media) {
            Some((msn, Some(part))) => (
                at.name,
                Awaited::Part {
                    msn,
                    part,
                    begun: stream_open,
                },
            ),
            _ => return Ok(()),
        },
        // A manifest waits, as a playlist without `_HLS_msn`, for a first segment.
        Route::DashManifest(name) => (name, Awaited::Playlist(Query::default())),
        Route::DashMedia(at, file) => match super::dash::parse_media(file) {
            Some((_, msn)) => (
                at.name,
                Awaited::Segment {
                    msn,
                    begun: stream_open,
                },
            ),
            None => return Ok(()),
        },
        _ => return Ok(()),
    };
    // Checked before the wait, and for a streamed part, which `http::handle` never sees.
    crate::http::signed_link(&state.config(), req)?;
    crate::admit::viewer_request(state, name, req)?;
    // A part or segment of an earlier publish under this name is never waited for.
    if let Route::LlMedia(at, _) | Route::DashMedia(at, _) = route {
        at.stream(&state.live)?;
    }
    let (asked, blocking) = match awaited {
        Awaited::Playlist(q) => (q.msn.unwrap_or(0), q.is_blocking()),
        Awaited::Part { msn, .. } | Awaited::Segment { msn, .. } => (msn, true),
    };
    let held = state.live.hold_ll(name, |ll| ll.awaited(&awaited)).await?;
    if let Route::DashMedia(at, file) = route {
        // One that left memory is split from the recording on the worker: its pages first.
        // (Boxed: only these requests carry its future.)
        Box::pin(super::dash::read_in_recorded(state, at, file)).await;
    }
    match held {
        Held::Ready => Ok(()),
        // A DASH segment that is not the next to begin: not there (404).
        Held::TooFar { .. } if matches!(route, Route::DashMedia(..)) => Ok(()),
        Held::TooFar { newest } => Err(Error::LlTooFar {
            stream: name.into(),
            asked,
            newest,
        }),
        // A first playlist is answered as it is; a blocking reload or a part that did not come
        // in three target durations is refused (RFC 8216bis §6.2.5.2: 503).
        Held::TimedOut if blocking => Err(Error::LlHoldTimeout(name.into())),
        Held::TimedOut => Ok(()),
        // Answered by the route: 404.
        Held::Gone => Ok(()),
    }
}

/// A playlist or manifest of stream `name`: counts the request, then `f` renders it from the
/// stream and its LL-HLS state under the stream's read lock. 404 without the stream, or without
/// its fMP4 output.
pub(super) fn render<T>(
    live: &Live,
    name: &str,
    f: impl FnOnce(&Stream, &::live::LlHls) -> T,
) -> Result<T, Error> {
    let s = live
        .get(name)
        .ok_or_else(|| Error::UnknownStream(name.into()))?;
    s.stats.playlist_requests.fetch_add(1, Relaxed);
    let inner = s.read();
    let media = inner
        .media
        .as_ref()
        .ok_or_else(|| Error::NoFlvOutput(name.into()))?;
    Ok(f(&s, &media.llhls))
}

/// `GET /live/{name}/ll.m3u8`, once [`hold`] let it through.
pub(super) fn playlist(
    live: &Live,
    name: &str,
    query: Option<&str>,
    carry: Option<&str>,
) -> Result<Response<Chunks>, Error> {
    let q = Query::parse(query).map_err(Error::LlQuery)?;
    let body = render(live, name, |s, ll| {
        // Rendered once per change of the playlist, shared by every request until the next.
        let mut cache = s.ll_playlist.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut cache[usize::from(q.skip)];
        // What else it depends on: what the recording holds, where it may begin (as after the
        // render, which may raise it: it lists nothing before that anyway).
        match slot {
            Some((k, b)) if *k == (ll.version(), dvr_mark(s, ll)) => b.clone(),
            _ => {
                let (b, mark) = with_dvr(s, ll, q.skip);
                let b = Bytes::from(b);
                *slot = Some(((ll.version(), mark), b.clone()));
                b
            }
        }
    })?;
    // A signed link's query is written into every URI of the shared playlist.
    // It is the link alone (`auth::signed`) and the JWT, never the `_HLS_` directives: every
    // reload would otherwise name the same part by another URL (and split a CDN's cache).
    let body = match carry.filter(|c| !c.is_empty()) {
        Some(carry) => Bytes::from(::live::llhls::playlist::with_query(
            &String::from_utf8_lossy(&body),
            carry,
        )),
        None => body,
    };
    let mut r = text(StatusCode::OK, "application/vnd.apple.mpegurl", body);
    let cache = match q.is_blocking() {
        // What it answers only grows: a second-old copy is at most a part behind.
        true => "public, max-age=1",
        false => "no-cache",
    };
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    Ok(r)
}

/// The LL-HLS playlist of `s`; for a stream recorded as fMP4, with a DVR window of the segments
/// that left memory and whose bytes the recording holds (`hls_dvr_secs`).
fn with_dvr(s: &Stream, ll: &::live::LlHls, skip: bool) -> (String, DvrMark) {
    with_recording(s, ll, |recorded| ll.playlist_with(skip, None, recorded))
}

/// `f` given the DVR window of `s` (`None`: none): a stream recorded as fMP4 with
/// `hls_dvr_secs` lists the segments that left memory whose bytes its recording holds (the
/// checkpoints of both ends in one file the segment's length apart; across two files, checked
/// when it is read). Every playlist or manifest begins no earlier than the last one did.
/// Also returns what it was rendered for ([`dvr_mark`], the floor as this render left it: it
/// lists nothing before that anyway), read under the same lock as the render.
pub(super) fn with_recording<T>(
    s: &Stream,
    ll: &::live::LlHls,
    f: impl FnOnce(Option<&Dvr<'_>>) -> T,
) -> (T, DvrMark) {
    let recorded = s.recorded.lock().unwrap_or_else(|p| p.into_inner());
    let Some(c) = dvr_recording(&recorded, ll) else {
        drop(recorded);
        let out = f(None);
        s.ll_floor.fetch_max(ll.first_listed(None), Relaxed);
        return (out, (0, 0, s.ll_floor.load(Relaxed)));
    };
    let holds = |a: u64, b: u64, bytes: u64| {
        let (Some(x), Some(y)) = (
            c.by_seq(a).and_then(|i| c.get(i)),
            c.by_seq(b).and_then(|i| c.get(i)),
        ) else {
            return false;
        };
        x.file != y.file || y.offset.checked_sub(x.offset) == Some(bytes)
    };
    let dvr = Dvr {
        recorded: &holds,
        floor: s.ll_floor.load(Relaxed),
    };
    let out = f(Some(&dvr));
    s.ll_floor.fetch_max(ll.first_listed(Some(&dvr)), Relaxed);
    let mark = (c.len(), c.get(0).map_or(0, |k| k.seq));
    (out, (mark.0, mark.1, s.ll_floor.load(Relaxed)))
}

/// What a DVR listing depends on besides its LL-HLS state: how many checkpoints the recording
/// it lists from holds and the oldest (retention removes files; `(0, 0)`: none), and where a
/// listing may begin.
pub(crate) type DvrMark = (usize, u64, u64);

/// The checkpoints an LL-HLS or DASH DVR window lists from: those of a stream recorded as fMP4,
/// when the window is asked for.
fn dvr_recording<'a>(
    recorded: &'a Option<(Output, ::live::record::checkpoints::Checkpoints)>,
    ll: &::live::LlHls,
) -> Option<&'a ::live::record::checkpoints::Checkpoints> {
    match recorded {
        Some((Output::Mp4, c)) if ll.limits().dvr > 0 => Some(c),
        _ => None,
    }
}

/// The [`DvrMark`] of `s` now.
pub(super) fn dvr_mark(s: &Stream, ll: &::live::LlHls) -> DvrMark {
    let recorded = s.recorded.lock().unwrap_or_else(|p| p.into_inner());
    let (len, oldest) =
        dvr_recording(&recorded, ll).map_or((0, 0), |c| (c.len(), c.get(0).map_or(0, |k| k.seq)));
    (len, oldest, s.ll_floor.load(Relaxed))
}

/// `GET|HEAD /live/{name}/{tag}/{msn}.m4s` (a complete segment) or `/{msn}.{part}.m4s` (a
/// complete part).
/// A segment that left memory is read from the stream's fMP4 recording: the same bytes, under
/// the same ETag.
pub(super) fn media<B>(
    live: &Live,
    library: &Library,
    at: Instance<'_>,
    media: &str,
    policy: &Policy,
    req: &Request<B>,
) -> Result<Response<Chunks>, Error> {
    let (msn, part) = parse_media(media).unwrap_or((u64::MAX, None));
    let pieces = std::cell::Cell::new(None);
    let kept = |s: &Stream, ll: &::live::LlHls| match part {
        Some(i) => Some(ll.part(msn, i).filter(|p| p.complete)?.data.clone()),
        None => match ll.segment(msn) {
            Some(seg) => {
                let seg = Some(seg).filter(|s| s.complete)?;
                Some(
                    seg.parts
                        .iter()
                        .flat_map(|p| p.data.iter().cloned())
                        .collect(),
                )
            }
            None => {
                pieces.set(recorded_pieces(s, ll, msn).map(|(p, past)| (p, past.bytes)));
                None
            }
        },
    };
    serve(
        live,
        at,
        &format!("ll{media}"),
        "video/mp4",
        policy,
        req,
        kept,
        || {
            // Read after the stream's lock is let go.
            let (pieces, len) = pieces.take()?;
            let mut parts = Vec::new();
            crate::live::dvr::slices(library, &pieces, &mut parts, &mut Vec::new())?;
            // Never another segment's bytes under this one's name.
            let read: u64 = parts.iter().map(|b| b.len() as u64).sum();
            let mapped = crate::live::dvr::mapping(library, &pieces);
            (read == len).then_some((parts, mapped))
        },
    )
}

/// Where the fMP4 recording holds segment `msn` that left memory, and what is remembered of it.
pub(super) fn recorded_pieces(
    s: &Stream,
    ll: &::live::LlHls,
    msn: u64,
) -> Option<(Vec<Piece>, ::live::llhls::LlPast)> {
    let (past, next) = ll.past(msn)?;
    let recorded = s.recorded.lock().unwrap_or_else(|p| p.into_inner());
    let (_, c) = recorded.as_ref().filter(|(o, _)| *o == Output::Mp4)?;
    let from = c.by_seq(past.first_unit?)?;
    let to = c.by_seq(next)?;
    Some((c.pieces(from, to, true), past))
}

/// `GET|HEAD /live/{name}/{tag}/init{version}.mp4`.
pub(super) fn init<B>(
    live: &Live,
    at: Instance<'_>,
    version: &str,
    policy: &Policy,
    req: &Request<B>,
) -> Result<Response<Chunks>, Error> {
    let v: Option<u64> = uri_number(version);
    let id = format!("init{version}");
    let pick = |_: &Stream, ll: &::live::LlHls| Some(vec![ll.init_segment(v?)?.clone()]);
    serve(live, at, &id, "video/mp4", policy, req, pick, || None)
}

/// One LL-HLS (or DASH) file of stream instance `at` as an entity: `pick` takes its `Bytes` from the
/// stream's LL-HLS state, under the stream's read lock, or else `after` once the lock is let go
/// (`None` from both: no such file, 404); `id` names it in the ETag and the message.
#[allow(clippy::too_many_arguments)]
pub(super) fn serve<B>(
    live: &Live,
    at: Instance<'_>,
    id: &str,
    content_type: &'static str,
    policy: &Policy,
    req: &Request<B>,
    pick: impl FnOnce(&Stream, &::live::LlHls) -> Option<Vec<Bytes>>,
    after: impl FnOnce() -> Option<(Vec<Bytes>, Option<crate::truncated::Mapped>)>,
) -> Result<Response<Chunks>, Error> {
    let s = at.stream(live)?;
    let unknown = || Error::UnknownSegment {
        stream: s.name.clone(),
        seq: id.to_string(),
    };
    let data = {
        let inner = s.read();
        inner.media.as_ref().and_then(|m| pick(&s, &m.llhls))
    };
    // From memory, or else from the recording (whose mapping the response carries).
    let (data, mapped) = match data {
        Some(data) => (data, None),
        None => after().ok_or_else(unknown)?,
    };
    let seg = Segment::new(data, s.instance, id, content_type).ok_or_else(unknown)?;
    s.stats.segment_requests.fetch_add(1, Relaxed);
    let mut resp = seg.serve(live, policy, req);
    if let Some(mapped) = mapped {
        resp.extensions_mut().insert(mapped);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_uris_name_a_segment_or_a_part() {
        assert_eq!(parse_media("7"), Some((7, None)));
        assert_eq!(parse_media("7.2"), Some((7, Some(2))));
        assert_eq!(parse_media("7.x"), None);
        assert_eq!(parse_media("-1"), None);
        assert_eq!(parse_media("1.2.3"), None);
        assert_eq!(parse_media(""), None);
        // One URL per resource: no sign, no leading zero.
        for alias in ["+7", "07", "7.02", "7.+2", "00", " 7"] {
            assert_eq!(parse_media(alias), None, "{alias}");
        }
        assert_eq!(parse_media("0.0"), Some((0, Some(0))));
    }
}
