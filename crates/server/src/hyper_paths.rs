//! The answer on the paths hyper serves: HTTP/2, and HTTP/1.1 connections the fast path handed
//! over (h1/handover.rs). A live viewer gets its endless body (live/frames.rs), a playlist or an
//! LL-HLS part waits as on the fast path (a part still being written is sent as it arrives), and
//! the rest is `http::handle`'s.

use crate::body::Chunks;
use crate::error::Error;
use crate::http::Route;
use crate::state::State;
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use std::sync::Arc;
use tokio::sync::watch;

/// A response body; an error resets the stream or ends the connection (a part that was cut
/// short, live/llhls.rs).
pub(crate) type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Which hyper path a request came by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct How {
    pub http2: bool,
    /// Over TLS (HSTS applies; `https` for the callbacks).
    pub secure: bool,
}

/// One request on a hyper path.
pub(crate) async fn answer<B>(
    state: &Arc<State>,
    req: Request<B>,
    peer: std::net::SocketAddr,
    shutdown: watch::Receiver<bool>,
    how: How,
) -> Response<Body> {
    let boxed = |r: Response<Chunks>| {
        // Read from a mapping of a title's file: copied first, its file checked (truncated.rs).
        let mapped = r.extensions().get::<crate::truncated::Mapped>().cloned();
        match mapped.filter(|m| r.body().parts().any(|p| m.locate(p).is_some())) {
            Some(m) => r.map(|b| crate::truncated::Copied::new(b, m).boxed_unsync()),
            None => r.map(BodyExt::boxed_unsync),
        }
    };
    let (m, path) = (req.method().clone(), req.uri().path().to_owned());
    let protocol = if how.secure { "https" } else { "http" };
    match crate::http::route(&m, &path) {
        Some(Route::Publish(_)) if how.http2 => {
            let e = Error::Http2Publish;
            return boxed(crate::answer::with_cors(
                e.response(),
                &state.config(),
                req.headers().get(http::header::ORIGIN),
            ));
        }
        Some(Route::Watch(name, output)) if m == Method::GET => {
            let origin = req.headers().get(http::header::ORIGIN);
            let admitted = crate::http::signed_link(&state.config(), &req)
                .and_then(|_| crate::admit::viewer_request(state, name, &req));
            let q = req.uri().query();
            // On an edge, the callback before the pull the viewer would start.
            let asked = match admitted {
                Ok(()) => crate::admit::before_pull(state, name, peer, protocol, q).await,
                Err(e) => Err(e),
            };
            let watched = match asked {
                Ok(asked) => crate::admit::pulled(state, name, crate::admit::via(req.headers()))
                    .await
                    .and_then(|()| state.live.watchable(name, output))
                    .map(|s| (s, asked)),
                Err(e) => Err(e),
            };
            let hook = crate::auth::hooks::Event::Play;
            let watched = match watched {
                Ok((s, true)) => Ok(s),
                Ok((s, false)) => crate::admit::hook(state, hook, name, peer, protocol, q)
                    .await
                    .map(|()| s),
                Err(e) => Err(e),
            };
            // DVR (`?t=-S`): where in the ring this viewer starts.
            let watched = watched.and_then(|s| {
                let start = crate::auth::query_param(q, "t")
                    .map(|t| state.dvr_start(&s, output, &t))
                    .transpose()?;
                Ok((s, start))
            });
            return match watched {
                Ok((s, start)) => {
                    let live = state.live.clone();
                    let mut r = crate::live::frames::response(s, live, output, shutdown, start);
                    state.config().cors.apply(origin, r.headers_mut());
                    r
                }
                Err(e) => boxed(crate::answer::with_cors(
                    e.response(),
                    &state.config(),
                    origin,
                )),
            };
        }
        Some(r) if r.waits() => {
            let streamed = crate::http::llhls::streamable(r, &req);
            let waited =
                crate::answer::wait(state, &req, r, streamed.is_some(), (peer, how.secure));
            let asked = match waited.await {
                Ok(asked) => asked,
                Err(refused) => return boxed(refused),
            };
            // A part still being written: its fragments as they arrive.
            let follow = streamed.and_then(|(at, what)| state.live.follow(at.name, at.tag, what));
            if let Some(f) = follow {
                let mut r = crate::live::llhls::part_response(f, &state.live);
                let headers = crate::http::streamed_headers(state, &req, how.secure);
                r.headers_mut().extend(headers);
                return r;
            }
            // (Asked already when the request started a pull on an edge.)
            let refused = match asked {
                true => None,
                false => crate::answer::refused_playlist(state, &req, peer, how.secure).await,
            };
            if let Some(refused) = refused {
                return boxed(refused);
            }
        }
        _ => {}
    }
    let mut r = crate::answer::answer(state, &req, how.secure);
    if crate::answer::loads(&r) {
        r = crate::answer::after_loading(state, &req, how.secure, r).await;
    }
    // A title in object storage: its first block before the head, so that a store that cannot
    // be read gives an error status rather than a cut body.
    if r.body().is_remote() {
        if let Err(e) = r.body_mut().prime().await {
            let origin = req.headers().get(http::header::ORIGIN);
            r = crate::answer::with_cors(Error::Store(e).response(), &state.config(), origin);
        }
    }
    boxed(r)
}
