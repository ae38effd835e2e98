//! LL-DASH over HTTP: the manifest (rendered by `live::dash` from the stream's LL-HLS segments),
//! each track's init segment and segments as entities (immutable, strong ETag, ranges), and the
//! server's clock that the manifest's `UTCTiming` names. A segment still being written is
//! streamed as it grows (`live::llhls::PartFollow`, on HTTP/1.1 in h1/part.rs, on HTTP/2 in
//! `live::llhls::part_response`); a request for the next segment waits until it begins
//! (`llhls::hold`).

use super::llhls::{dvr_mark, recorded_pieces, render, serve, with_recording};
use super::{text, uri_number, Instance};
use crate::body::Chunks;
use crate::entity::Policy;
use crate::error::Error;
use crate::library::Library;
use crate::live::{Live, Stream};
use ::live::llhls::wallclock::rfc3339_ms;
use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH};
use http::{Request, Response, StatusCode};

/// A track's letter in DASH URIs (`v`, `a`) to its index (0 video, 1 audio), and the rest.
fn track(file: &str) -> Option<(usize, &str)> {
    match file.split_at_checked(1)? {
        ("v", rest) => Some((0, rest)),
        ("a", rest) => Some((1, rest)),
        _ => None,
    }
}

/// `v12` (video segment 12) or `a3`: the track and the segment's number.
pub(crate) fn parse_media(file: &str) -> Option<(usize, u64)> {
    let (t, n) = track(file)?;
    Some((t, uri_number(n)?))
}

const CONTENT_TYPES: [&str; 2] = ["video/mp4", "audio/mp4"];

/// The absolute URL of `/api/time` as the client reached this server (the manifest is read
/// from another origin by players on other pages; ExoPlayer takes the URL as it is, resolving
/// nothing): `https` over TLS, and where a proxy or CDN that ends TLS says the client's request
/// was (`X-Forwarded-Proto: https`; only ever to https, which a page of either scheme may ask:
/// `http` would be blocked as mixed content on an https page).
pub(super) fn clock_url<B>(req: &Request<B>, secure: bool) -> String {
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        });
    match host.filter(|h| !h.contains(['"', '<', '>', '/', ' '])) {
        Some(h) => {
            let forwarded = req
                .headers()
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
            let scheme = if secure || forwarded { "https" } else { "http" };
            format!("{scheme}://{h}/api/time")
        }
        None => "/api/time".into(),
    }
}

/// `GET /live/{name}/manifest.mpd`, once `llhls::hold` let it through.
pub(super) fn manifest(
    live: &Live,
    name: &str,
    carry: Option<&str>,
    clock_url: &str,
) -> Result<Response<Chunks>, Error> {
    let body = render(live, name, |s, ll| {
        let m = ::live::dash::Manifest {
            now_ms: now_ms(),
            carry: None,
            clock_url,
        };
        // Rendered once per change, shared by every player until the next (its `publishTime`
        // is when it was rendered): the same key as the LL-HLS playlist's, which lists the
        // same segments. A stream recorded as fMP4 lists a DVR window from its recording
        // (`hls_dvr_secs`).
        let mut cache = s.dash_manifest.lock().unwrap_or_else(|e| e.into_inner());
        match &*cache {
            Some((k, b)) if *k == (ll.version(), dvr_mark(s, ll)) => Some(b.clone()),
            _ => {
                let (b, mark) = with_recording(s, ll, |recorded| {
                    ::live::dash::shared_with(ll, &m, recorded)
                });
                let b = Bytes::from(b?);
                *cache = Some(((ll.version(), mark), b.clone()));
                Some(b)
            }
        }
    })?;
    // No segment yet (the wait for one ran out): as for a playlist, the stream has no output.
    let body = body.ok_or_else(|| Error::NoFlvOutput(name.into()))?;
    // A signed link's query is written into every URI of the shared render.
    let body = match carry {
        Some(c) => Bytes::from(::live::dash::with_query(&String::from_utf8_lossy(&body), c)),
        None => body,
    };
    // Its end names the server's clock at the host this player asked.
    let clock = Bytes::from(::live::dash::clock(clock_url));
    let len = body.len() + clock.len();
    let mut r = text(StatusCode::OK, "application/dash+xml", body);
    r.body_mut().push(clock);
    r.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // (The clock's scheme follows that header: a cache keeps the answers apart.)
    r.headers_mut().append(
        http::header::VARY,
        HeaderValue::from_static("X-Forwarded-Proto"),
    );
    Ok(r)
}

/// `GET|HEAD /live/{name}/{tag}/dash/init-{v|a}{version}.mp4`.
pub(super) fn init<B>(
    live: &Live,
    at: Instance<'_>,
    file: &str,
    policy: &Policy,
    req: &Request<B>,
) -> Result<Response<Chunks>, Error> {
    let parsed = track(file).and_then(|(t, v)| Some((t, uri_number::<u64>(v)?)));
    let t = parsed.map_or(0, |(t, _)| t);
    let id = format!("dash-init-{file}");
    let pick = |_: &Stream, ll: &::live::LlHls| {
        let (t, version) = parsed?;
        let init = ll.init_version(version)?.tracks[t].as_ref()?;
        Some(vec![init.init.clone()])
    };
    serve(live, at, &id, CONTENT_TYPES[t], policy, req, pick, || None)
}

/// `GET|HEAD /live/{name}/{tag}/dash/{v|a}{msn}.m4s`: a complete segment of one track (one being
/// written is streamed before `http::handle`, see the module's doc). One that left memory is
/// read from the stream's fMP4 recording, its muxed fragments split into the track's own
/// (`media::cmaf::split`): the same bytes under the same ETag, the samples not copied.
pub(super) fn media<B>(
    live: &Live,
    library: &Library,
    at: Instance<'_>,
    file: &str,
    policy: &Policy,
    req: &Request<B>,
) -> Result<Response<Chunks>, Error> {
    let parsed = parse_media(file);
    let t = parsed.map_or(0, |(t, _)| t);
    let id = format!("dash-{file}");
    let pieces = std::cell::Cell::new(None);
    let pick = |s: &Stream, ll: &::live::LlHls| {
        let (t, msn) = parsed?;
        let Some(seg) = ll.segment(msn) else {
            pieces.set(recorded_pieces(s, ll, msn).map(|(p, past)| (p, past.track_bytes[t])));
            return None;
        };
        let seg = Some(seg).filter(|s| s.complete)?;
        let data: Vec<Bytes> = seg
            .parts
            .iter()
            .flat_map(|p| p.tracks[t].iter().cloned())
            .collect();
        // A track the stream does not have (or none of its frames in this segment): not there.
        (!data.is_empty()).then_some(data)
    };
    // Read after the stream's lock is let go.
    let recorded = || {
        let (pieces, len) = pieces.take()?;
        let mut data = Vec::new();
        for p in &pieces {
            let whole = crate::live::dvr::whole(library, p)?;
            for f in media::cmaf::split::split(&whole, t).ok()? {
                data.push(Bytes::from(f.head));
                data.push(whole.slice(f.samples));
            }
        }
        // Never another segment's bytes under this one's name.
        let read: u64 = data.iter().map(|b| b.len() as u64).sum();
        let mapped = crate::live::dvr::mapping(library, &pieces);
        (read == len && len > 0).then_some((data, mapped))
    };
    serve(live, at, &id, CONTENT_TYPES[t], policy, req, pick, recorded)
}

/// Reads in off the workers the pages of DASH segment `file` of `at` where it left memory and
/// is read from a recording on disk: [`media`] reads its fragment heads to split it, on the
/// worker. Nothing when it is in memory, or its recording is.
pub(crate) async fn read_in_recorded(state: &crate::state::State, at: Instance<'_>, file: &str) {
    let Some((_, msn)) = parse_media(file) else {
        return;
    };
    let Ok(s) = at.stream(&state.live) else {
        return;
    };
    let pieces = {
        let inner = s.read();
        let Some(ll) = inner.media.as_ref().map(|m| &m.llhls) else {
            return;
        };
        if ll.segment(msn).is_some() {
            return;
        }
        match recorded_pieces(&s, ll, msn) {
            Some((pieces, _)) => pieces,
            None => return,
        }
    };
    let library = state.library();
    for p in &pieces {
        let Some(bytes) = crate::live::dvr::whole(&library, p) else {
            continue;
        };
        let mapped = library.get(&p.file).and_then(|t| t.mapped.clone());
        if let Some((file, at)) = mapped.as_ref().and_then(|m| m.locate(&bytes)) {
            crate::pagein::ensure(file, at, bytes.len() as u64).await;
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `GET /api/time`: the server's clock in ISO 8601 with milliseconds (DASH's
/// `urn:mpeg:dash:utc:http-iso:2014`), never cached.
pub(super) fn clock() -> Response<Chunks> {
    let mut r = text(StatusCode::OK, "text/plain", rfc3339_ms(now_ms()));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_uris_name_a_track_and_a_segment() {
        assert_eq!(parse_media("v12"), Some((0, 12)));
        assert_eq!(parse_media("a0"), Some((1, 0)));
        for bad in [
            "x1",
            "v",
            "v+1",
            "v-1",
            "a1.2",
            "",
            "v99999999999999999999999",
        ] {
            assert_eq!(parse_media(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_clock_url_is_where_the_client_reached_the_server() {
        let req = Request::get("/live/a/manifest.mpd")
            .header("host", "cdn.example:8443")
            .body(())
            .unwrap();
        assert_eq!(clock_url(&req, true), "https://cdn.example:8443/api/time");
        let h2 = Request::get("http://127.0.0.1:8080/live/a/manifest.mpd")
            .body(())
            .unwrap();
        assert_eq!(clock_url(&h2, false), "http://127.0.0.1:8080/api/time");
        let odd = Request::get("/").header("host", "a\"b").body(()).unwrap();
        assert_eq!(clock_url(&odd, false), "/api/time");
        // Behind a proxy that ends TLS: https, as the client asked.
        let proxied = Request::get("/live/a/manifest.mpd")
            .header("host", "live.example")
            .header("x-forwarded-proto", "https")
            .body(())
            .unwrap();
        assert_eq!(clock_url(&proxied, false), "https://live.example/api/time");
        let down = Request::get("/live/a/manifest.mpd")
            .header("host", "live.example")
            .header("x-forwarded-proto", "http")
            .body(())
            .unwrap();
        assert_eq!(clock_url(&down, true), "https://live.example/api/time");
    }
}
