//! Routes and responses: the one router ([`route`]) for every HTTP request, and [`handle`], which
//! answers the request/response routes (the two long-lived live routes, a publisher's body and a
//! viewer's stream, are the HTTP/1.1 loop's: see h1/).
//!
//! | route                              | what                                      | where      |
//! |------------------------------------|-------------------------------------------|------------|
//! | `GET|HEAD /videos/{id}`            | the title's bytes, RFC 9110 ranges        | vod.rs     |
//! | `GET /api/videos`                  | JSON list of titles                       | vod.rs     |
//! | `GET /api/videos/{id}`             | JSON of one title                         | vod.rs     |
//! | `GET /api/videos/{id}/seek?t=T`    | JSON: offset of the keyframe at or before T | vod.rs   |
//! | `PUT|POST /live/{name}`            | publish MPEG-TS                           | live/ingest.rs |
//! | `GET /live/{name}.ts`, `.flv`      | watch from the latest keyframe            | live/follow.rs |
//! | `GET /live/{name}/index.m3u8`      | live HLS playlist                         | hls.rs     |
//! | `GET /live/{name}/{tag}/{seq}.ts`  | live HLS segment (immutable, ranges)      | hls.rs     |
//! | `GET /live/{name}/ll.m3u8`         | LL-HLS playlist (blocking reload, delta)  | llhls.rs   |
//! | `GET /live/{name}/{tag}/init{v}.mp4`, `/{msn}.m4s`, `/{msn}.{part}.m4s` | LL-HLS init, segment, part | llhls.rs |
//! | `GET /live/{name}/manifest.mpd`, `/{tag}/dash/...` | LL-DASH manifest, init segments, segments | dash.rs |
//! | `GET /api/streams[/{name}]`        | JSON of live streams                      | live/api.rs |
//! | `GET /metrics`                     | Prometheus text: live, connections, VOD   | live/api.rs, conns.rs, vod_metrics.rs |
//! | `GET /healthz`                     | `ok`                                      | here       |
//! | `DELETE /api/streams/{name}/publisher`, `/viewers` | control API (admin token) | admin.rs |
//! | `GET /`                            | an HTML page with a player per title      | page.rs    |
//! | `OPTIONS` any of the above         | 204: the path's methods; a CORS preflight | cors.rs    |
//!
//! `{tag}`: the stream instance, in hex ([`live::Stream::dir`]); the playlists name it.
//!
//! Every answer is decided first (an [`Error`] or an entity and its [`crate::entity::Outcome`]),
//! then rendered; errors become responses in one place, [`Error::response`].

mod access;
pub(crate) use access::signed_link;
use access::{carried_query, recording_admitted};
mod admin;
mod clips;
mod dash;
mod hls;
mod instance;
pub use instance::Instance;
pub(crate) mod llhls;
mod packaged;
mod page;
mod pieces;
mod private;
pub(crate) use private::streamed_headers;
use private::{cap_to_link, credentialed, private};
mod vod;

use crate::body::Chunks;
use crate::error::Error;
use crate::live::{self, Output};
pub(crate) use crate::response::{json, text};
use crate::state::State;
use http::header::{CONTENT_LENGTH, ORIGIN};
use http::{Method, Request, Response, StatusCode};

/// A number in a media URI as the server writes it: decimal digits, no sign and no leading zero
/// (`7`, not `+7` or `07`), so that one resource has one URL (and one ETag, one CDN entry).
pub(crate) fn uri_number<T: std::str::FromStr>(s: &str) -> Option<T> {
    let canonical = match s.as_bytes() {
        [b'0'] => true,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    canonical.then(|| s.parse().ok()).flatten()
}

/// What a request asks for, from its method and path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    Video(&'a str),
    List,
    Info(&'a str),
    Seek(&'a str),
    Health,
    /// `/readyz`: 200 while serving, 503 once draining.
    Ready,
    /// `POST /api/drain` (control API).
    Drain,
    Index,
    /// `PUT|POST /live/{name}`: a publisher.
    Publish(&'a str),
    /// `GET|HEAD /live/{name}.ts|.flv`: a viewer (GET: the viewer loop; HEAD: answered here).
    Watch(&'a str, Output),
    Playlist(&'a str),
    /// `GET /live/{name}/{tag}/{seq}.ts`.
    Segment(Instance<'a>, &'a str),
    /// `GET /live/{name}/ll.m3u8`: LL-HLS (may be held: `_HLS_msn`, `_HLS_part`).
    LlPlaylist(&'a str),
    /// `GET /live/{name}/{tag}/init{version}.mp4`.
    LlInit(Instance<'a>, &'a str),
    /// `GET /live/{name}/{tag}/{msn}.m4s` (a segment) or `/{msn}.{part}.m4s` (a part, may be
    /// held).
    LlMedia(Instance<'a>, &'a str),
    /// `GET /live/{name}/manifest.mpd`: LL-DASH (waits for a first segment).
    DashManifest(&'a str),
    /// `GET /live/{name}/{tag}/dash/init-{v|a}{version}.mp4`: a track's init segment.
    DashInit(Instance<'a>, &'a str),
    /// `GET /live/{name}/{tag}/dash/{v|a}{msn}.m4s`: a track's segment (may be held, streamed
    /// while it is written).
    DashMedia(Instance<'a>, &'a str),
    /// `GET /api/time`: the server's clock (DASH `UTCTiming`).
    Clock,
    Streams,
    StreamInfo(&'a str),
    Metrics,
    /// `DELETE /api/streams/{name}/publisher` (control API).
    KickPublisher(&'a str),
    /// `DELETE /api/streams/{name}/viewers` (control API).
    DropViewers(&'a str),
}

impl Route<'_> {
    /// The read-only API (JSON and metrics), and the page at `/`, which shows what it lists:
    /// behind the admin token when `private_api` is set.
    pub fn is_api(&self) -> bool {
        matches!(
            self,
            Route::Index
                | Route::List
                | Route::Info(_)
                | Route::Seek(_)
                | Route::Streams
                | Route::StreamInfo(_)
                | Route::Metrics
        )
    }

    /// Whether the route is served by the HTTP/1.1 fast path rather than by hyper (see h1/):
    /// video bytes (for `sendfile`), live HLS and live viewers, and publishers.
    pub fn fast(&self) -> bool {
        matches!(
            self,
            Route::Video(_)
                | Route::Publish(_)
                | Route::Watch(..)
                | Route::Playlist(_)
                | Route::Segment(..)
                | Route::LlPlaylist(_)
                | Route::LlInit(..)
                | Route::LlMedia(..)
                | Route::DashManifest(_)
                | Route::DashInit(..)
                | Route::DashMedia(..)
        )
    }

    /// Whether the answer may wait for the stream (h1/ and h2.rs await [`llhls::hold`] or a
    /// first segment before answering).
    pub fn waits(&self) -> bool {
        matches!(
            self,
            Route::Playlist(_)
                | Route::LlPlaylist(_)
                | Route::LlMedia(..)
                | Route::DashManifest(_)
                | Route::DashMedia(..)
        )
    }
}

/// The one router. `None`: no such route (404).
pub fn route<'a>(method: &Method, path: &'a str) -> Option<Route<'a>> {
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
        return live_route(method, rest);
    }
    if let Some(rest) = path.strip_prefix("/api/streams") {
        return match rest {
            "" | "/" => Some(Route::Streams),
            _ if *method == Method::DELETE => match rest.strip_prefix('/')?.rsplit_once('/')? {
                (name, "publisher") => Some(Route::KickPublisher(name)),
                (name, "viewers") => Some(Route::DropViewers(name)),
                _ => None,
            },
            _ => rest.strip_prefix('/').map(Route::StreamInfo),
        };
    }
    match path {
        "/api/time" => Some(Route::Clock),
        "/metrics" => Some(Route::Metrics),
        "/healthz" => Some(Route::Health),
        "/readyz" => Some(Route::Ready),
        "/api/drain" if *method == Method::POST => Some(Route::Drain),
        "/" => Some(Route::Index),
        _ => None,
    }
}

/// Splits a `/live/...` path into its route.
fn live_route<'a>(method: &Method, rest: &'a str) -> Option<Route<'a>> {
    match rest.split_once('/') {
        None if matches!(*method, Method::PUT | Method::POST) => Some(Route::Publish(rest)),
        None => {
            if let Some(name) = rest.strip_suffix(".ts") {
                Some(Route::Watch(name, Output::Ts))
            } else if let Some(name) = rest.strip_suffix(".mp4") {
                Some(Route::Watch(name, Output::Mp4))
            } else {
                rest.strip_suffix(".flv")
                    .map(|name| Route::Watch(name, Output::Flv))
            }
        }
        Some((name, "index.m3u8")) => Some(Route::Playlist(name)),
        Some((name, "ll.m3u8")) => Some(Route::LlPlaylist(name)),
        Some((name, "manifest.mpd")) => Some(Route::DashManifest(name)),
        // The files of one publish of the stream, in its instance's directory.
        Some((name, path)) => {
            let (tag, file) = path.split_once('/')?;
            let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
            if tag.is_empty() || !tag.as_bytes().iter().all(hex) {
                return None;
            }
            let at = Instance { name, tag };
            if let Some(file) = file.strip_prefix("dash/") {
                match file.strip_prefix("init-") {
                    Some(init) => Some(Route::DashInit(at, init.strip_suffix(".mp4")?)),
                    None => Some(Route::DashMedia(at, file.strip_suffix(".m4s")?)),
                }
            } else if let Some(seq) = file.strip_suffix(".ts") {
                Some(Route::Segment(at, seq))
            } else if let Some(media) = file.strip_suffix(".m4s") {
                Some(Route::LlMedia(at, media))
            } else {
                let version = file.strip_prefix("init")?.strip_suffix(".mp4")?;
                Some(Route::LlInit(at, version))
            }
        }
    }
}

/// Answers one request/response route. Never fails: errors become responses here. Every answer
/// (errors and preflights included) carries the CORS headers for the request's `Origin`.
/// Whether `req` (on `route`) asks for a clip, playlist or segment of a title in object storage
/// whose packaging is still to be read from its store: the async shells then take the path that
/// reads it ([`crate::answer::after_loading`]) before answering. Free for a server without
/// object storage.
pub(crate) fn loads_first<B>(state: &State, route: Route<'_>, req: &Request<B>) -> bool {
    match route {
        Route::Video(id) if state.stores.get().is_some() => {
            vod::pending(&state.library(), id, req).is_some()
        }
        _ => false,
    }
}

pub(crate) fn handle<B>(state: &State, req: &Request<B>, secure: bool) -> Response<Chunks> {
    let m = req.method();
    let path = req.uri().path();
    let origin = req.headers().get(ORIGIN);
    // One snapshot of the settings for the whole request.
    let config = state.config();
    let cors = &config.cors;
    let routed = route(m, path);
    let result = if m == Method::OPTIONS {
        // A preflight, or a bare OPTIONS: what the path takes.
        methods(path)
            .map(|methods| cors.preflight(origin, methods))
            .ok_or(Error::NoRoute)
    } else {
        signed_link(&config, req).and_then(|carry| match routed {
            None => Err(Error::NoRoute),
            // A publisher the HTTP/1.1 loop could not take (it hands unusual framing to hyper).
            Some(Route::Publish(_)) => Err(Error::NoRoute),
            Some(r @ (Route::KickPublisher(_) | Route::DropViewers(_) | Route::Drain)) => {
                admin::control(r, state, req)
            }
            Some(_) if m != Method::GET && m != Method::HEAD => Err(Error::Method(m.clone())),
            Some(r) if r.is_api() && config.private_api => admin::authorize(state, req)
                .and_then(|()| answer(r, state, &config, req, None, secure)),
            Some(r) => answer(r, state, &config, req, carry.as_deref(), secure),
        })
    };
    let mut resp = result.unwrap_or_else(Error::response);
    cap_to_link(&config, req, resp.headers_mut());
    // (A 304 too: it says what the 200 said, RFC 9110 §15.4.5.)
    let kept = resp.status().is_success() || resp.status() == http::StatusCode::NOT_MODIFIED;
    if kept && credentialed(req) {
        private(resp.headers_mut());
    }
    if m == Method::HEAD {
        *resp.body_mut() = Chunks::empty();
    }
    // (Not the answer that asks for a title's packaging to be read: the one after it counts.)
    if let (Some(Route::Video(_)), false) = (routed, crate::library::LoadPackage::asked(&resp)) {
        state.vod.answered(resp.status(), resp.body().len());
    }
    cors.apply(origin, resp.headers_mut());
    resp
}

/// The publisher's address is shown to the admin alone (the token in `Authorization`).
fn addresses<B>(state: &State, req: &Request<B>) -> live::api::Addresses {
    match admin::authorize(state, req) {
        Ok(()) => live::api::Addresses::Shown,
        Err(_) => live::api::Addresses::Hidden,
    }
}

/// The methods a path takes (for `OPTIONS`), `None` if no route has it.
fn methods(path: &str) -> Option<&'static str> {
    if let Some(Route::KickPublisher(_) | Route::DropViewers(_)) = route(&Method::DELETE, path) {
        Some("DELETE, OPTIONS")
    } else if let Some(Route::Drain) = route(&Method::POST, path) {
        Some("POST, OPTIONS")
    } else if route(&Method::GET, path).is_some() {
        Some("GET, HEAD, OPTIONS")
    } else if route(&Method::PUT, path).is_some() {
        Some("PUT, POST, OPTIONS")
    } else {
        None
    }
}

/// Answers a route; `carry`: the signed-link query a playlist passes on to its segment URIs;
/// `secure`: the request came over TLS (what the manifest's clock URL says).
fn answer<B>(
    r: Route<'_>,
    state: &State,
    config: &crate::config::Config,
    req: &Request<B>,
    carry: Option<&str>,
    secure: bool,
) -> Result<Response<Chunks>, Error> {
    let library = state.library();
    let (lib, live, conns) = (&*library, &*state.live, &state.conns);
    let policy = &config.policy;
    match r {
        Route::Video(id) => {
            // A recording: its stream's viewers' rules, and the token carried on by its
            // playlists as by the live stream's.
            let carried = match vod::recorded_stream(lib, id) {
                Some(stream) => {
                    crate::admit::viewer_request(state, &stream, req)?;
                    carried_query(state, &stream, req, carry)
                }
                None => carry.map(str::to_string),
            };
            vod::video(lib, id, policy, req, carried.as_deref())
        }
        Route::List => Ok(vod::list(state, &library)),
        Route::Info(id) => {
            recording_admitted(state, lib, id, req)?;
            vod::info(lib, id)
        }
        Route::Seek(id) => {
            recording_admitted(state, lib, id, req)?;
            vod::seek(lib, id, req.uri().query())
        }
        Route::Health => Ok(text(StatusCode::OK, "text/plain", "ok\n")),
        Route::Ready if state.draining.load(std::sync::atomic::Ordering::SeqCst) => Ok(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "draining\n",
        )),
        Route::Ready if state.edge.as_ref().is_some_and(|e| !e.reachable()) => Ok(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "no origin reachable\n",
        )),
        Route::Ready => Ok(text(StatusCode::OK, "text/plain", "ready\n")),
        Route::Index => Ok(text(
            StatusCode::OK,
            "text/html; charset=utf-8",
            state
                .page
                .get(&library, || page::index(lib, state.rtmp_port).into()),
        )),
        Route::Watch(name, output) => {
            // A HEAD of a viewer route: what a GET would start with, without the endless body
            // (and only for whom the GET would be).
            crate::admit::viewer_request(state, name, req)?;
            let s = live
                .get(name)
                .ok_or_else(|| Error::UnknownStream(name.into()))?;
            let mut r = text(StatusCode::OK, output.content_type(), String::new());
            r.headers_mut().remove(CONTENT_LENGTH);
            drop(s);
            Ok(r)
        }
        Route::Playlist(name) => {
            crate::admit::viewer_request(state, name, req)?;
            let carried = carried_query(state, name, req, carry);
            hls::playlist(live, name, carried.as_deref())
        }
        Route::Segment(at, seq) => {
            crate::admit::viewer_request(state, at.name, req)?;
            hls::segment(live, lib, at, seq, policy, req)
        }
        Route::LlPlaylist(name) => {
            crate::admit::viewer_request(state, name, req)?;
            let carried = carried_query(state, name, req, carry);
            llhls::playlist(live, name, req.uri().query(), carried.as_deref())
        }
        Route::LlInit(at, version) => {
            crate::admit::viewer_request(state, at.name, req)?;
            llhls::init(live, at, version, policy, req)
        }
        Route::LlMedia(at, media) => {
            crate::admit::viewer_request(state, at.name, req)?;
            llhls::media(live, lib, at, media, policy, req)
        }
        Route::DashManifest(name) => {
            crate::admit::viewer_request(state, name, req)?;
            let carried = carried_query(state, name, req, carry);
            dash::manifest(
                live,
                name,
                carried.as_deref(),
                &dash::clock_url(req, secure),
            )
        }
        Route::DashInit(at, file) => {
            crate::admit::viewer_request(state, at.name, req)?;
            dash::init(live, at, file, policy, req)
        }
        Route::DashMedia(at, file) => {
            crate::admit::viewer_request(state, at.name, req)?;
            dash::media(live, lib, at, file, policy, req)
        }
        Route::Clock => Ok(dash::clock()),
        Route::Streams => Ok(json(
            StatusCode::OK,
            &live::api::docs(live, addresses(state, req)),
        )),
        Route::StreamInfo(name) => {
            let s = live
                .get(name)
                .ok_or_else(|| Error::UnknownStream(name.into()))?;
            Ok(json(
                StatusCode::OK,
                &live::api::doc(live, &s, addresses(state, req)),
            ))
        }
        Route::Metrics => {
            let mut out = String::new();
            live::api::metrics(live, &mut out);
            conns.metrics(&mut out);
            state.vod.metrics(lib, &mut out);
            state.record.metrics(&mut out);
            if let Some(stores) = state.stores.get() {
                crate::vod_metrics::stores(stores, &mut out);
            }
            if let Some(edge) = &state.edge {
                edge.metrics(&mut out);
            }
            if let Some(tls) = &state.tls {
                tls.metrics(&mut out);
            }
            Ok(text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                out,
            ))
        }
        Route::Publish(_) | Route::KickPublisher(_) | Route::DropViewers(_) | Route::Drain => {
            Err(Error::NoRoute)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_from_method_and_path() {
        let get = Method::GET;
        let put = Method::PUT;
        let at = Instance {
            name: "show",
            tag: "1a",
        };
        let cases: &[(&Method, &str, Option<Route<'_>>)] = &[
            (&get, "/videos/a/b.mp4", Some(Route::Video("a/b.mp4"))),
            (&get, "/api/videos", Some(Route::List)),
            (&get, "/api/videos/", Some(Route::List)),
            (&get, "/api/videos/a.mp4", Some(Route::Info("a.mp4"))),
            (&get, "/api/videos/a.mp4/seek", Some(Route::Seek("a.mp4"))),
            (
                &get,
                "/live/show.ts",
                Some(Route::Watch("show", Output::Ts)),
            ),
            (
                &get,
                "/live/show.flv",
                Some(Route::Watch("show", Output::Flv)),
            ),
            (
                &get,
                "/live/show.mp4",
                Some(Route::Watch("show", Output::Mp4)),
            ),
            (&get, "/live/show", None),
            // Exactly one output suffix is taken off: a stream may be named `cam2.ts`.
            (
                &get,
                "/live/cam2.ts.ts",
                Some(Route::Watch("cam2.ts", Output::Ts)),
            ),
            (
                &get,
                "/live/cam.ts.flv",
                Some(Route::Watch("cam.ts", Output::Flv)),
            ),
            (&put, "/live/show", Some(Route::Publish("show"))),
            (
                &Method::POST,
                "/live/show.ts",
                Some(Route::Publish("show.ts")),
            ),
            (&get, "/live/show/index.m3u8", Some(Route::Playlist("show"))),
            (&get, "/live/show/1a/12.ts", Some(Route::Segment(at, "12"))),
            (&get, "/live/show/1a/12.mp4", None),
            // A stream's files are in its instance's directory, never beside its playlists.
            (&get, "/live/show/12.ts", None),
            (&get, "/live/show/12.m4s", None),
            (&get, "/live/show/init0.mp4", None),
            (&get, "/live/show/dash/v3.m4s", None),
            (&get, "/live/show/ll.m3u8", Some(Route::LlPlaylist("show"))),
            (&get, "/live/show/1a/12.m4s", Some(Route::LlMedia(at, "12"))),
            (
                &get,
                "/live/show/1a/12.3.m4s",
                Some(Route::LlMedia(at, "12.3")),
            ),
            (
                &get,
                "/live/show/1a/init0.mp4",
                Some(Route::LlInit(at, "0")),
            ),
            (&get, "/live/show/1a/init.mp3", None),
            (
                &get,
                "/live/show/1a/dash/v3.m4s",
                Some(Route::DashMedia(at, "v3")),
            ),
            (
                &get,
                "/live/show/1a/dash/init-a0.mp4",
                Some(Route::DashInit(at, "a0")),
            ),
            (
                &get,
                "/live/show/manifest.mpd",
                Some(Route::DashManifest("show")),
            ),
            (&get, "/api/streams", Some(Route::Streams)),
            (&get, "/api/streams/show", Some(Route::StreamInfo("show"))),
            (&get, "/metrics", Some(Route::Metrics)),
            (&get, "/healthz", Some(Route::Health)),
            (&get, "/", Some(Route::Index)),
            (&get, "/etc/passwd", None),
        ];
        for (m, path, want) in cases {
            assert_eq!(route(m, path), *want, "{m} {path}");
        }
    }
}
