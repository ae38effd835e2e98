//! The library's routes: a title's bytes (an [`Entity`](crate::entity::Entity), so decide then
//! render with ranges and preconditions), its JSON, and seek by time.

use super::json;
use crate::api::{SeekDoc, TitleDoc};
use crate::body::Chunks;
use crate::entity::{self, Policy};
use crate::error::Error;
use crate::library::{Library, Title};
use http::{Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use std::sync::Arc;

fn lookup<'l>(lib: &'l Library, raw: &str) -> Result<&'l Arc<Title>, Error> {
    let id = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| Error::UnknownTitle(raw.to_string()))?;
    lib.get(&id)
        .ok_or_else(|| Error::UnknownTitle(id.into_owned()))
}

/// The live stream a recording title was recorded from (the folder it lies in, the stream's
/// name: `{dir}/{stream}/{started}.ts`), for `id` as routed (a title, or an HLS or DASH asset of
/// one): its viewers' rules apply to it. `None`: not a recording.
pub(super) fn recorded_stream(lib: &Library, id: &str) -> Option<String> {
    let decoded = percent_decode_str(id).decode_utf8().ok()?;
    let t = match lib.get(&decoded) {
        Some(t) => t,
        None => lib.get(super::packaged::split(&decoded)?.0)?,
    };
    t.recording?;
    let (dir, _) = t.id.rsplit_once('/')?;
    let stream = dir.rsplit('/').next()?;
    Some(stream.to_string())
}

/// `GET|HEAD /videos/{id}`; `carry`: the query its HLS playlist or DASH manifest passes on.
pub(super) fn video<B>(
    lib: &Library,
    id: &str,
    policy: &Policy,
    req: &Request<B>,
    carry: Option<&str>,
) -> Result<Response<Chunks>, Error> {
    let (t, mut resp) = match lookup(lib, id) {
        Ok(t) => {
            readable(t)?;
            let resp = match super::clips::wanted(req.uri().query()) {
                true => super::clips::serve(t, policy, req)?,
                false => entity::serve(&**t, policy, req.method(), req.headers()),
            };
            (t, resp)
        }
        Err(e) => {
            // Not a title: perhaps an HLS or DASH asset of one (`{id}/index.m3u8`, ...).
            let decoded = percent_decode_str(id).decode_utf8().map_err(|_| e)?;
            let Some((title, asset)) = super::packaged::split(&decoded) else {
                return Err(Error::UnknownTitle(decoded.into_owned()));
            };
            let t = lib
                .get(title)
                .ok_or_else(|| Error::UnknownTitle(title.to_string()))?;
            readable(t)?;
            (t, super::packaged::serve(t, asset, policy, req, carry)?)
        }
    };
    // Read from a mapping of the title's file: a sender that copies its bytes checks that the
    // file was not cut short under the copy (`crate::truncated`).
    if let Some(mapped) = t.mapped.clone() {
        resp.extensions_mut().insert(mapped);
    }
    Ok(resp)
}

/// 503 while a mapped title may read as zeros: a mapped file was found cut short, and the
/// rescan that follows has not yet read it again or kept this one (`Title::readable`).
fn readable(t: &Title) -> Result<(), Error> {
    match t.readable() {
        true => Ok(()),
        false => Err(Error::TitleRereading(t.id.clone())),
    }
}

/// The title in object storage whose packaging a `GET|HEAD /videos/{id}` (a clip, or an HLS or
/// DASH asset of it) needs read from its store before it can be answered.
pub(super) fn pending<B>(lib: &Library, id: &str, req: &Request<B>) -> Option<Arc<Title>> {
    let decoded = percent_decode_str(id).decode_utf8().ok()?;
    let t = match lib.get(&decoded) {
        Some(t) if super::clips::wanted(req.uri().query()) => t,
        Some(_) => return None,
        None => lib.get(super::packaged::split(&decoded)?.0)?,
    };
    t.package_pending().then(|| t.clone())
}

/// `GET /api/videos` (rendered at most once a second: `crate::rendered`).
pub(super) fn list(state: &crate::state::State, lib: &Arc<Library>) -> Response<Chunks> {
    let body = state.listing.get(lib, || {
        let docs: Vec<TitleDoc> = lib.titles().map(|t| TitleDoc::new(t)).collect();
        crate::response::json_body(&docs)
    });
    crate::response::json_bytes(StatusCode::OK, body)
}

/// `GET /api/videos/{id}`.
pub(super) fn info(lib: &Library, id: &str) -> Result<Response<Chunks>, Error> {
    lookup(lib, id).map(|t| json(StatusCode::OK, &TitleDoc::new(t)))
}

/// `GET /api/videos/{id}/seek?t=T`: the keyframe at or before T.
pub(super) fn seek(
    lib: &Library,
    id: &str,
    query: Option<&str>,
) -> Result<Response<Chunks>, Error> {
    let t = lookup(lib, id)?;
    let raw = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("t="))
        .ok_or(Error::MissingTime)?;
    let value = percent_decode_str(&raw.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned();
    let info = t.index.as_ref().map_err(|reason| Error::NotSeekable {
        id: t.id.clone(),
        reason: reason.clone(),
    })?;
    let rate = info.frame_rate();
    let at = match ::live::llhls::wallclock::parse_rfc3339_ms(&value) {
        Some(wall) => wall_clock(t, &value, wall)?,
        None => media::timecode::parse(&value, rate).map_err(Error::BadTime)?,
    };
    let point = info.seek(at).map_err(|e| time_error(t, &value, e))?;
    Ok(json(StatusCode::OK, &SeekDoc::new(t, at, point, rate)))
}

/// A wall-clock time (Unix milliseconds) as a time in the recording `t`: from when its first
/// frame was received. A title that is not a recording, or a time before it began, is a 400.
fn wall_clock(t: &Title, value: &str, wall_ms: u64) -> Result<media::MediaTime, Error> {
    let bad = |why: String| Error::BadTime(media::Error::Timecode(why));
    let Some(rec) = t.recording else {
        return Err(bad(format!(
            "'{value}' is a wall-clock time, and {} is not a recording (it has no start time)",
            t.id
        )));
    };
    let since = wall_ms.checked_sub(rec.started_ms).ok_or_else(|| {
        bad(format!(
            "'{value}' is before {} began ({})",
            t.id,
            ::live::llhls::wallclock::rfc3339_ms(rec.started_ms)
        ))
    })?;
    Ok(media::MediaTime::new(
        i64::try_from(since).unwrap_or(i64::MAX),
        1000,
    ))
}

/// Why a time in a request for `t` cannot be used: no keyframes (422), past the end (400, with
/// the title's duration), or not a time (400).
pub(super) fn time_error(t: &Title, value: &str, e: media::Error) -> Error {
    match e {
        media::Error::NoKeyframes => Error::NotSeekable {
            id: t.id.clone(),
            reason: e.to_string(),
        },
        media::Error::PastEnd {
            requested,
            duration,
        } => Error::BadTime(media::Error::Timecode(format!(
            "'{value}' ({requested} s) is past the end of {} ({duration} s)",
            t.id
        ))),
        e => Error::BadTime(e),
    }
}
