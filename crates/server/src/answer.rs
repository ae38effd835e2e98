//! What every path does around `http::handle` (the HTTP/1.1 fast path in h1/, hyper's HTTP/1.1
//! and HTTP/2 in hyper_paths.rs): the wait of a route that may wait, the `on_play` callback of a
//! playlist, CORS on answers made outside `handle`, and the answer itself with HSTS and its log
//! line.

use crate::body::Chunks;
use crate::clip::Clip;
use crate::http::Route;
use crate::state::State;
use http::{Method, Request, Response};
use std::net::SocketAddr;
use std::time::Duration;

/// How long a playlist request waits for the first segment of a stream that just started.
pub(crate) const FIRST_SEGMENT_WAIT: Duration = Duration::from_secs(10);

/// The wait of a [`Route::waits`] route, on any path; `Err`: the request is refused (with CORS);
/// `Ok(true)`: the `on_play` callback was asked (and admitted) before a pull the request started
/// on an edge, so [`refused_playlist`] is not asked again.
pub(crate) async fn wait<B>(
    state: &State,
    req: &Request<B>,
    route: Route<'_>,
    stream_open: bool,
    (peer, secure): (SocketAddr, bool),
) -> Result<bool, Response<Chunks>> {
    // On an edge, a player's first playlist or manifest pulls the stream (admitted players only:
    // the route's own checks answer the others).
    // (Checked only on an edge: a blocking playlist request elsewhere pays nothing for it.)
    let edge = state.edge.is_some() && req.method() == Method::GET;
    let mut asked = false;
    if let (Route::Playlist(name) | Route::LlPlaylist(name) | Route::DashManifest(name), true) =
        (route, edge)
    {
        let admitted = crate::http::signed_link(&state.config(), req).is_ok()
            && crate::admit::viewer_request(state, name, req).is_ok();
        if admitted {
            let via = crate::admit::via(req.headers());
            let protocol = if secure { "https" } else { "http" };
            let q = req.uri().query();
            // The callback first: a player it refuses starts no pull.
            let pulled = match crate::admit::before_pull(state, name, peer, protocol, q).await {
                Ok(asked) => crate::admit::pulled(state, name, via).await.map(|()| asked),
                Err(e) => Err(e),
            };
            match pulled {
                Ok(true) => asked = true,
                Ok(false) => {}
                Err(e) => {
                    let origin = req.headers().get(::http::header::ORIGIN);
                    return Err(with_cors(e.response(), &state.config(), origin));
                }
            }
        }
    }
    match route {
        Route::Playlist(name) if req.method() == Method::GET => {
            state.live.wait_for_segment(name, FIRST_SEGMENT_WAIT).await;
            Ok(asked)
        }
        Route::Playlist(_) => Ok(asked),
        _ => crate::http::llhls::hold(state, route, req, stream_open)
            .await
            .map(|()| asked)
            .map_err(|e| {
                let origin = req.headers().get(::http::header::ORIGIN);
                with_cors(e.response(), &state.config(), origin)
            }),
    }
}

/// A playlist or DASH manifest request refused by the `on_play` callback (on every path),
/// answered with CORS; `None`: not a playlist, or admitted.
pub(crate) async fn refused_playlist<B>(
    state: &State,
    req: &Request<B>,
    peer: SocketAddr,
    secure: bool,
) -> Option<Response<Chunks>> {
    let (Route::Playlist(name) | Route::LlPlaylist(name) | Route::DashManifest(name)) =
        crate::http::route(req.method(), req.uri().path())?
    else {
        return None;
    };
    // A preflight carries no credentials and starts no playback: the callback is not asked.
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return None;
    }
    // Nor for a request whose signed link fails: the answer refuses it (403).
    if crate::http::signed_link(&state.config(), req).is_err() {
        return None;
    }
    let e = crate::admit::playlist(state, name, req, peer, secure)
        .await
        .err()?;
    let origin = req.headers().get(::http::header::ORIGIN);
    Some(with_cors(e.response(), &state.config(), origin))
}

/// A response answered outside `http::handle` (a refused viewer or publisher), with the CORS
/// headers for the request's origin. (A function of its own: a local borrowed in an async fn
/// stays in its future across later awaits.)
pub(crate) fn with_cors(
    mut resp: Response<Chunks>,
    c: &crate::config::Config,
    origin: Option<&::http::HeaderValue>,
) -> Response<Chunks> {
    c.cors.apply(origin, resp.headers_mut());
    resp
}

/// `resp` as the answer to `req`, unless it asks for a title's packaging to be read from
/// object storage first ([`crate::library::LoadPackage`]: a clip, playlist or segment of a
/// bucket title asked for the first time): then that is read and the request answered again;
/// a store that cannot be read is a 502/504. Async, so the paths call it only when asked.
pub(crate) async fn after_loading<B>(
    state: &State,
    req: &Request<B>,
    secure: bool,
    resp: Response<Chunks>,
) -> Response<Chunks> {
    let Some(crate::library::LoadPackage(t)) = resp.extensions().get().cloned() else {
        return resp;
    };
    let index_max = state.stores.get().map_or(u64::MAX, |s| s.index_max);
    match t.load_package(index_max).await {
        Ok(()) => answer(state, req, secure),
        Err(e) => {
            let origin = req.headers().get(::http::header::ORIGIN);
            with_cors(
                crate::error::Error::Store(e).response(),
                &state.config(),
                origin,
            )
        }
    }
}

/// Whether an answer must wait for [`after_loading`].
pub(crate) fn loads(resp: &Response<Chunks>) -> bool {
    crate::library::LoadPackage::asked(resp)
}

/// Answers one request (on any path: fast, hyper's HTTP/1.1, HTTP/2) and logs it at debug
/// level. `secure`: it came over TLS (HSTS applies).
pub(crate) fn answer<B>(state: &State, req: &Request<B>, secure: bool) -> Response<Chunks> {
    let mut resp = crate::http::handle(state, req, secure);
    if secure {
        crate::tls::hsts(state.config().tls.as_ref(), resp.headers_mut());
    }
    if tracing::enabled!(tracing::Level::DEBUG) {
        // Credentials in the query (key, jwt, sig) are not logged.
        let query = req.uri().query().map(crate::auth::redact);
        let (path, query) = (req.uri().path(), query.as_deref().unwrap_or(""));
        tracing::debug!(method = %Clip(req.method().as_str()), path = %Clip(path), query = %Clip(query), status = resp.status().as_u16(), "request");
    }
    resp
}
