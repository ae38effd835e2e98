//! Routes and responses. Each request is first resolved into an outcome (which title, which
//! precondition result, which ranges), and only then rendered.
//!
//! | route                              | what                                               |
//! |------------------------------------|----------------------------------------------------|
//! | `GET|HEAD /videos/{id}`            | the title's bytes, RFC 9110 ranges and conditions  |
//! | `GET /api/videos`                  | JSON list of titles                                |
//! | `GET /api/videos/{id}`             | JSON of one title                                  |
//! | `GET /api/videos/{id}/seek?t=T`    | JSON: byte offset of the keyframe at or before T   |
//! | `PUT|POST /live/{name}`            | publish MPEG-TS (the ingest loop, see live.rs)     |
//! | `GET /live/{name}.ts`              | watch: chunked MPEG-TS from the latest keyframe    |
//! | `GET /live/{name}/index.m3u8`      | live HLS playlist                                  |
//! | `GET /live/{name}/{seq}.ts`        | live HLS segment (immutable)                       |
//! | `GET /api/streams[/{name}]`        | JSON of live streams                               |
//! | `GET /metrics`                     | Prometheus text of the live counters               |
//! | `GET /healthz`                     | `ok`                                               |
//! | `GET /`                            | an HTML page with a player per title               |

use crate::api::{ErrorDoc, SeekDoc, TitleDoc};
use crate::body::{Chunks, FileSource};
use crate::error::Error;
use crate::library::{Library, Title};
use crate::live::Live;
use crate::precondition::{self, Precondition, Validators};
use crate::range::{self, ByteRange, Resolution};
use bytes::Bytes;
use http::header::{
    HeaderValue, ACCEPT_RANGES, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    ETAG, LAST_MODIFIED, RANGE, WWW_AUTHENTICATE,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

/// Settings that shape responses.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Most ranges accepted in one request (more: 416).
    pub max_ranges: usize,
    /// `Cache-Control` for video bytes.
    pub cache_control: HeaderValue,
    /// The boundary of multipart/byteranges responses.
    pub boundary: String,
    /// Single-part bodies at least this long are sent with `sendfile` from the title's file when
    /// it has one (see h1.rs); shorter ones with `writev`. Measured in docs/benchmarks.md.
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

const ID_SET: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'?')
    .add(b'<')
    .add(b'>');

/// A title id as it goes into a URL path.
pub fn encode_id(id: &str) -> String {
    utf8_percent_encode(id, ID_SET).to_string()
}

/// What a request asks for, before anything is looked up.
enum Route<'a> {
    Video(&'a str),
    List,
    Info(&'a str),
    Seek(&'a str),
    Health,
    Index,
    /// `/live/{name}.ts`: served by the viewer loop (h1.rs); here only HEAD.
    LiveTs(&'a str),
    Playlist(&'a str),
    Segment(&'a str, &'a str),
    Streams,
    StreamInfo(&'a str),
    Metrics,
}

/// Splits a `/live/...` path into its route.
fn live_route(rest: &str) -> Option<Route<'_>> {
    match rest.split_once('/') {
        None => rest.strip_suffix(".ts").map(Route::LiveTs),
        Some((name, "index.m3u8")) => Some(Route::Playlist(name)),
        Some((name, seg)) => seg.strip_suffix(".ts").map(|seq| Route::Segment(name, seq)),
    }
}

fn route(path: &str) -> Option<Route<'_>> {
    if let Some(id) = path.strip_prefix("/videos/") {
        return Some(Route::Video(id));
    }
    if let Some(rest) = path.strip_prefix("/api/videos") {
        return match rest {
            "" | "/" => Some(Route::List),
            _ => {
                let rest = rest.strip_prefix('/')?;
                Some(match rest.strip_suffix("/seek") {
                    Some(id) => Route::Seek(id),
                    None => Route::Info(rest),
                })
            }
        };
    }
    if let Some(rest) = path.strip_prefix("/live/") {
        return live_route(rest);
    }
    if let Some(rest) = path.strip_prefix("/api/streams") {
        return match rest {
            "" | "/" => Some(Route::Streams),
            _ => rest.strip_prefix('/').map(Route::StreamInfo),
        };
    }
    match path {
        "/metrics" => Some(Route::Metrics),
        "/healthz" => Some(Route::Health),
        "/" => Some(Route::Index),
        _ => None,
    }
}

fn lookup<'l>(lib: &'l Library, raw: &str) -> Result<&'l std::sync::Arc<Title>, Error> {
    let id = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| Error::UnknownTitle(raw.to_string()))?;
    lib.get(&id)
        .ok_or_else(|| Error::UnknownTitle(id.into_owned()))
}

/// Handles one request. Never fails: errors become responses here.
pub fn handle<B>(
    lib: &Library,
    live: &Live,
    policy: &Policy,
    req: &Request<B>,
) -> Response<Chunks> {
    let path = req.uri().path();
    let result = match route(path) {
        None => Err(Error::NoRoute),
        Some(r) => {
            let m = req.method();
            if m != Method::GET && m != Method::HEAD {
                Err(Error::Method(m.clone()))
            } else {
                match r {
                    Route::Video(id) => lookup(lib, id).map(|t| video(t, policy, m, req.headers())),
                    Route::List => {
                        let docs: Vec<TitleDoc> = lib.titles().map(|t| TitleDoc::new(t)).collect();
                        Ok(json(StatusCode::OK, &docs))
                    }
                    Route::Info(id) => {
                        lookup(lib, id).map(|t| json(StatusCode::OK, &TitleDoc::new(t)))
                    }
                    Route::Seek(id) => lookup(lib, id).and_then(|t| seek(t, req.uri().query())),
                    Route::Health => Ok(text(StatusCode::OK, "text/plain", "ok\n".into())),
                    Route::Index => Ok(text(
                        StatusCode::OK,
                        "text/html; charset=utf-8",
                        index_page(lib, live),
                    )),
                    Route::LiveTs(name) => stream(live, name).map(|_| {
                        let mut r = text(StatusCode::OK, "video/mp2t", String::new());
                        r.headers_mut().remove(CONTENT_LENGTH);
                        r
                    }),
                    Route::Playlist(name) => stream(live, name).map(|s| {
                        s.stats.playlist_requests.fetch_add(1, Relaxed);
                        let body = s.read().hls.playlist();
                        let mut r = text(StatusCode::OK, "application/vnd.apple.mpegurl", body);
                        r.headers_mut()
                            .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                        r
                    }),
                    Route::Segment(name, seq) => {
                        stream(live, name).and_then(|s| segment(&s, seq, req.headers()))
                    }
                    Route::Streams => {
                        let docs: Vec<_> = live.list().iter().map(|s| live.doc(s)).collect();
                        Ok(json(StatusCode::OK, &docs))
                    }
                    Route::StreamInfo(name) => {
                        stream(live, name).map(|s| json(StatusCode::OK, &live.doc(&s)))
                    }
                    Route::Metrics => {
                        let mut out = String::new();
                        live.metrics(&mut out);
                        Ok(text(
                            StatusCode::OK,
                            "text/plain; version=0.0.4; charset=utf-8",
                            out,
                        ))
                    }
                }
            }
        }
    };
    let mut resp = result.unwrap_or_else(error_response);
    if req.method() == Method::HEAD {
        *resp.body_mut() = Chunks::empty();
    }
    resp
}

fn stream(live: &Live, name: &str) -> Result<std::sync::Arc<crate::live::Stream>, Error> {
    live.get(name)
        .ok_or_else(|| Error::UnknownStream(name.to_string()))
}

/// A live HLS segment: the `Bytes` it was cut as, immutable once listed.
fn segment(
    s: &crate::live::Stream,
    seq: &str,
    headers: &HeaderMap,
) -> Result<Response<Chunks>, Error> {
    let unknown = || Error::UnknownSegment {
        stream: s.name.clone(),
        seq: seq.to_string(),
    };
    let n: u64 = seq.parse().map_err(|_| unknown())?;
    let inner = s.read();
    let seg = inner.hls.get(n).ok_or_else(unknown)?;
    s.stats.segment_requests.fetch_add(1, Relaxed);
    let etag = format!("\"{:x}-{n}\"", s.instance);
    let mut h = HeaderMap::new();
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=600, immutable"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, v);
    }
    // Segments carry no Last-Modified, so If-Modified-Since never matches.
    let v = Validators {
        etag: &etag,
        last_modified: std::time::SystemTime::now(),
    };
    let (status, body) = match precondition::evaluate(headers, v, false) {
        Precondition::NotModified => (StatusCode::NOT_MODIFIED, Chunks::empty()),
        Precondition::Failed => {
            h.insert(CONTENT_LENGTH, HeaderValue::from(0));
            (StatusCode::PRECONDITION_FAILED, Chunks::empty())
        }
        Precondition::Proceed { .. } => {
            h.insert(CONTENT_TYPE, HeaderValue::from_static("video/mp2t"));
            h.insert(CONTENT_LENGTH, HeaderValue::from(seg.bytes));
            let mut body = Chunks::empty();
            for p in &seg.parts {
                body.push(p.clone());
            }
            (StatusCode::OK, body)
        }
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = h;
    Ok(r)
}

/// Maps an error to its response: the only place where errors become statuses.
pub(crate) fn error_response(e: Error) -> Response<Chunks> {
    let status = e.status();
    let mut resp = json(
        status,
        &ErrorDoc {
            error: e.to_string(),
            status: status.as_u16(),
        },
    );
    match e {
        Error::Method(_) => {
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        Error::KeyRequired(_) => {
            resp.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"zerocast publish\""),
            );
        }
        _ => {}
    }
    resp
}

pub(crate) fn json<T: serde::Serialize>(status: StatusCode, doc: &T) -> Response<Chunks> {
    let mut s =
        serde_json::to_string_pretty(doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    let mut r = text(status, "application/json", s);
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn text(status: StatusCode, ctype: &'static str, body: String) -> Response<Chunks> {
    let len = body.len();
    let mut r = Response::new(Chunks::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len));
    r
}

fn seek(t: &Title, query: Option<&str>) -> Result<Response<Chunks>, Error> {
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
    let at = media::timecode::parse(&value, rate).map_err(Error::BadTime)?;
    let point = info.seek(at).map_err(|e| match e {
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
    })?;
    Ok(json(StatusCode::OK, &SeekDoc::new(t, at, point, rate)))
}

/// What to send for `GET|HEAD /videos/{id}`, decided before rendering.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Full,
    Partial(Vec<ByteRange>),
    NotModified,
    PreconditionFailed,
    Unsatisfiable,
}

/// Decides the outcome of a request for a title (RFC 9110 §13.2.2 then §14.2).
pub fn decide(method: &Method, headers: &HeaderMap, t: &Title, policy: &Policy) -> Outcome {
    let range = headers.get(RANGE).and_then(|v| v.to_str().ok());
    // Range handling is defined for GET only (RFC 9110 §14.2).
    let range = range.filter(|_| method == Method::GET);
    let v = Validators {
        etag: &t.etag,
        last_modified: t.last_modified,
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
    match range::resolve(&specs, t.data.len() as u64, policy.max_ranges) {
        Resolution::Full => Outcome::Full,
        Resolution::Partial(r) => Outcome::Partial(r),
        Resolution::Unsatisfiable => Outcome::Unsatisfiable,
    }
}

fn video(t: &Title, policy: &Policy, method: &Method, headers: &HeaderMap) -> Response<Chunks> {
    let outcome = decide(method, headers, t, policy);
    render(t, policy, outcome)
}

/// Renders an outcome. Bodies are slices of the title's `Bytes`: O(1), no copy.
pub fn render(t: &Title, policy: &Policy, outcome: Outcome) -> Response<Chunks> {
    let len = t.data.len() as u64;
    // Room for every header below without growing the map.
    let mut h = HeaderMap::with_capacity(8);
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(ETAG, t.etag_header.clone());
    h.insert(LAST_MODIFIED, t.last_modified_header.clone());
    h.insert(CACHE_CONTROL, policy.cache_control.clone());
    let ctype = HeaderValue::from_static(t.container.mime());
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
            (
                StatusCode::OK,
                file_backed(t, 0, len, Chunks::from(t.data.clone())),
            )
        }
        Outcome::Partial(ranges) if ranges.len() == 1 => {
            let one = ranges[0];
            h.insert(CONTENT_TYPE, ctype);
            h.insert(CONTENT_LENGTH, HeaderValue::from(one.len()));
            if let Ok(v) = HeaderValue::from_str(&one.content_range(len)) {
                h.insert(CONTENT_RANGE, v);
            }
            let slice = t.data.slice(one.start as usize..one.end as usize);
            let body = file_backed(t, one.start, one.len(), Chunks::from(slice));
            (StatusCode::PARTIAL_CONTENT, body)
        }
        Outcome::Partial(ranges) => {
            let b = &policy.boundary;
            let mut body = Chunks::empty();
            for x in &ranges {
                let head = format!(
                    "\r\n--{b}\r\nContent-Type: {}\r\nContent-Range: {}\r\n\r\n",
                    t.container.mime(),
                    x.content_range(len)
                );
                body.push(Bytes::from(head));
                body.push(t.data.slice(x.start as usize..x.end as usize));
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

fn file_backed(t: &Title, offset: u64, len: u64, body: Chunks) -> Chunks {
    match &t.file {
        Some(file) if len > 0 => body.with_file(FileSource {
            file: file.clone(),
            offset,
            len,
        }),
        _ => body,
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn index_page(lib: &Library, live: &Live) -> String {
    let mut s = String::from(
        "<!doctype html><meta charset=utf-8><title>zerocast</title>\
         <style>body{font-family:sans-serif;margin:2em}video{max-width:480px;display:block}</style>\
         <h1>zerocast library</h1>",
    );
    let streams = live.list();
    if !streams.is_empty() {
        s.push_str("<h1>live</h1><ul>");
        for st in streams {
            let n = html_escape(&st.name);
            let _ = write!(
                s,
                "<li>{n} ({}): <a href=\"/live/{n}.ts\">MPEG-TS</a> · \
                 <a href=\"/live/{n}/index.m3u8\">HLS</a> · <a href=\"/api/streams/{n}\">info</a></li>",
                st.read().state.name()
            );
        }
        s.push_str("</ul>");
    }
    for t in lib.titles() {
        let url = format!("/videos/{}", encode_id(&t.id));
        let id = html_escape(&t.id);
        let _ = write!(
            s,
            "<h2>{id}</h2><p>{} · {} bytes · <a href=\"/api/videos/{}\">info</a></p>",
            t.container.name(),
            t.data.len(),
            encode_id(&t.id)
        );
        if matches!(t.container, media::Container::Mp4 | media::Container::WebM) {
            let _ = write!(s, "<video controls preload=metadata src=\"{url}\"></video>");
        } else {
            let _ = write!(s, "<p><a href=\"{url}\">download</a></p>");
        }
    }
    s
}
