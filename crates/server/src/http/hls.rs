//! Live HLS over HTTP: the playlist (not cached), and segments as entities (immutable, strong
//! ETag, ranges), cut by `live::hls` from the same `Bytes` the ring holds.

use super::text;
use crate::body::Chunks;
use crate::entity::{self, Entity, Policy};
use crate::error::Error;
use crate::live::Live;
use crate::range::ByteRange;
use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL};
use http::{Request, Response, StatusCode};
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

/// `GET /live/{name}/index.m3u8`; `carry`: a signed link's query, appended to every segment URI
/// (so the segments open with the playlist's link).
pub(super) fn playlist(
    live: &Live,
    name: &str,
    carry: Option<&str>,
) -> Result<Response<Chunks>, Error> {
    let s = live
        .get(name)
        .ok_or_else(|| Error::UnknownStream(name.into()))?;
    s.stats.playlist_requests.fetch_add(1, Relaxed);
    let body = {
        let inner = s.read();
        let recorded = s.recorded.lock().unwrap_or_else(|p| p.into_inner());
        let c = recorded
            .as_ref()
            .filter(|(o, _)| *o == crate::live::Output::Ts)
            .map(|(_, c)| c);
        // Rendered once per change, shared by every request until the next.
        let floor = s.hls_floor.load(Relaxed);
        let mark = c.map_or((0, 0), |c| (c.len(), c.get(0).map_or(0, |k| k.seq)));
        let key = |floor| (inner.hls.version(), mark, floor);
        let mut cache = s.hls_playlist.lock().unwrap_or_else(|e| e.into_inner());
        match &*cache {
            Some((k, b)) if *k == key(floor) => b.clone(),
            _ => {
                let body = match c {
                    // A recorded stream: segments that left memory are listed while the
                    // recording holds them (`hls_dvr_secs`), never before where the last
                    // playlist began.
                    Some(c) => {
                        let holds = |a: u64, b: u64, bytes: u64| recorded_whole(c, a, b, bytes);
                        let body = inner.hls.playlist_with(holds, floor);
                        s.hls_floor
                            .fetch_max(inner.hls.first_listed(Some((&holds, floor))), Relaxed);
                        body
                    }
                    None => {
                        let body = inner.hls.playlist();
                        s.hls_floor.fetch_max(inner.hls.first_listed(None), Relaxed);
                        body
                    }
                };
                let body = Bytes::from(body);
                // Valid for the floor as raised by this render too: it lists nothing before it.
                *cache = Some((key(s.hls_floor.load(Relaxed)), body.clone()));
                body
            }
        }
    };
    let body = match carry {
        Some(q) => Bytes::from(
            String::from_utf8_lossy(&body)
                .lines()
                .map(|l| match l.starts_with('#') || l.is_empty() {
                    true => format!("{l}\n"),
                    false => format!("{l}?{q}\n"),
                })
                .collect::<String>(),
        ),
        None => body,
    };
    let mut r = text(StatusCode::OK, "application/vnd.apple.mpegurl", body);
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(r)
}

/// Whether a recording holds the bytes of a segment that left memory, from its first unit `a` up
/// to the next segment's `b`: both keyframes written and, when they are in one file, at least
/// `bytes` apart with the PAT and PMT (more when units that were never part of a segment came
/// between). (Across files the length is known only when it is read: a segment served from
/// there is checked then.)
fn recorded_whole(c: &live::record::checkpoints::Checkpoints, a: u64, b: u64, bytes: u64) -> bool {
    let (Some(from), Some(to)) = (c.by_seq(a), c.by_seq(b)) else {
        return false;
    };
    match (c.get(from), c.get(to)) {
        (Some(f), Some(t)) if f.file == t.file => {
            t.offset
                .checked_sub(f.offset)
                .and_then(|d| d.checked_add(f.psi.len() as u64))
                >= Some(bytes)
        }
        (Some(_), Some(_)) => true,
        _ => false,
    }
}

/// A live HLS segment (TS, or an LL-HLS segment, part or init segment): the `Bytes` it was cut
/// as, immutable once listed. Its ETag names the stream instance and the segment (a new stream of
/// the same name gets new tags).
pub(super) struct Segment {
    parts: Vec<Bytes>,
    len: u64,
    etag: String,
    etag_header: HeaderValue,
    content_type: &'static str,
}

impl Segment {
    /// `parts` of `stream`, named `id` within it (`None`: `id` cannot be a header value).
    pub(super) fn new(
        parts: Vec<Bytes>,
        instance: u64,
        id: &str,
        content_type: &'static str,
    ) -> Option<Segment> {
        let etag = format!("\"{instance:x}-{id}\"");
        Some(Segment {
            len: parts.iter().map(|b| b.len() as u64).sum(),
            parts,
            etag_header: HeaderValue::from_str(&etag).ok()?,
            etag,
            content_type,
        })
    }
}

impl Segment {
    /// Its answer to `req`, to be sent whole within `segment_send_limit`.
    pub(super) fn serve<B>(
        &self,
        live: &Live,
        policy: &Policy,
        req: &Request<B>,
    ) -> Response<Chunks> {
        let mut r = entity::serve(self, policy, req.method(), req.headers());
        let by = crate::response::SendBy::within(live.config.segment_send_limit);
        r.extensions_mut().insert(by);
        r
    }
}

impl Entity for Segment {
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

    /// Segments carry no Last-Modified: date conditions are ignored, the ETag decides.
    fn last_modified(&self) -> Option<(SystemTime, HeaderValue)> {
        None
    }

    fn cache_control(&self) -> Option<HeaderValue> {
        Some(HeaderValue::from_static("public, max-age=600, immutable"))
    }

    fn slice(&self, range: ByteRange) -> Chunks {
        entity::slice_parts(&self.parts, range)
    }
}

/// `GET|HEAD /live/{name}/{tag}/{seq}.ts`.
pub(super) fn segment<B>(
    live: &Live,
    library: &crate::library::Library,
    at: super::Instance<'_>,
    seq: &str,
    policy: &Policy,
    req: &Request<B>,
) -> Result<Response<Chunks>, Error> {
    let s = at.stream(live)?;
    let unknown = || Error::UnknownSegment {
        stream: s.name.clone(),
        seq: seq.to_string(),
    };
    let n: u64 = super::uri_number(seq).ok_or_else(unknown)?;
    // Read from the recording's mapping: the response carries it (`truncated::Mapped`).
    let mut mapped = None;
    let parts = {
        let inner = s.read();
        match inner.hls.get(n) {
            Some(seg) => seg.parts.clone(),
            // Left memory: from the recording, the same bytes (its PAT and PMT, then the units
            // from its keyframe up to the next segment's).
            None => {
                let (past, next) = inner.hls.past(n).ok_or_else(unknown)?;
                let recorded = s.recorded.lock().unwrap_or_else(|p| p.into_inner());
                let (_, c) = recorded
                    .as_ref()
                    .filter(|(o, _)| *o == crate::live::Output::Ts)
                    .ok_or_else(unknown)?;
                let from = c.by_seq(past.first_unit).ok_or_else(unknown)?;
                let to = c.by_seq(next).ok_or_else(unknown)?;
                let psi = c.get(from).ok_or_else(unknown)?.psi.clone();
                let mut pieces = c.pieces(from, to, true);
                // Its units alone, where they lie in one file with the next keyframe: not what
                // came between them and it that was never part of a segment (a reconnecting
                // publisher's tables before its keyframe, a segment dropped for its size).
                let units = past
                    .bytes
                    .checked_sub(psi.len() as u64)
                    .ok_or_else(unknown)?;
                // (The first file's run: to the next keyframe, or to the file's end where the
                // next keyframe began a new file.)
                if let Some(first) = pieces.first_mut() {
                    let end = first
                        .end
                        .or_else(|| library.get(&first.file).map(|t| t.data.len() as u64));
                    if end.is_some_and(|end| end.saturating_sub(first.start) >= units) {
                        first.end = Some(first.start + units);
                        pieces.truncate(1);
                    }
                }
                drop(recorded);
                drop(inner);
                let mut parts = vec![psi];
                crate::live::dvr::slices(library, &pieces, &mut parts, &mut Vec::new())
                    .ok_or_else(unknown)?;
                // Other bytes than it was served as (units the recorder lost, or across files,
                // units that were never part of it): a 404, never other bytes under its ETag.
                if parts.iter().map(|b| b.len() as u64).sum::<u64>() != past.bytes {
                    return Err(unknown());
                }
                mapped = crate::live::dvr::mapping(library, &pieces);
                parts
            }
        }
    };
    let seg = Segment::new(parts, s.instance, &n.to_string(), "video/mp2t").ok_or_else(unknown)?;
    s.stats.segment_requests.fetch_add(1, Relaxed);
    let mut resp = seg.serve(live, policy, req);
    if let Some(mapped) = mapped {
        resp.extensions_mut().insert(mapped);
    }
    Ok(resp)
}
