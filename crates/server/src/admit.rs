//! Admission of publishers and viewers, on every protocol: the stream rules and JWTs
//! (`auth::Rules`, pure, on the wall clock) with the publish keys (`live::registry`), then the
//! HTTP callbacks (`auth::hooks`, the only waiting). The shells (h1, h2, RTMP, `http::handle`
//! for HLS) call these and answer refusals with the one error mapping (`error.rs`).

use crate::auth::hooks::{Call, Event};
use crate::auth::{self, Action, Denied, Presented};
use crate::error::Error;
use crate::state::State;
use std::net::SocketAddr;

/// A publisher's credentials, checked without waiting: the rules, else the key defaults.
pub(crate) fn publisher(
    state: &State,
    name: &str,
    presented: Presented<'_>,
    peer: SocketAddr,
) -> Result<(), Error> {
    let live = &state.live;
    if !crate::live::valid_name(name) {
        return Err(Error::BadStreamName(name.to_string()));
    }
    let key_ok = || live.authorize(name, presented.key, peer.ip()).is_ok();
    let rules = &state.config().auth;
    match rules.check(Action::Publish, name, presented, key_ok, auth::unix_now()) {
        Ok(true) => Ok(()),
        // No rule, or a rule that takes keys and got none that fits: the registry says why.
        Ok(false) | Err(Denied::Key) => live.authorize(name, presented.key, peer.ip()),
        Err(Denied::Token(e)) => Err(Error::Token(e)),
    }
}

/// On an edge, pulls a stream that is not here from the origins (`edge::Edge::ensure`), for an
/// admitted viewer; nothing to do elsewhere.
/// `via`: the request's `x-zerocast-via` (the edges it came through), to refuse a loop.
pub(crate) async fn pulled(state: &State, name: &str, via: Option<&str>) -> Result<(), Error> {
    match &state.edge {
        // Boxed: the pull's wait stays out of futures that never pull.
        Some(edge) => Box::pin(edge.ensure(name, via)).await,
        None => Ok(()),
    }
}

/// The `x-zerocast-via` of a request (see [`pulled`]).
pub(crate) fn via(headers: &http::HeaderMap) -> Option<&str> {
    headers.get(crate::edge::VIA).and_then(|v| v.to_str().ok())
}

/// A viewer's credentials (HTTP `.ts`/`.flv`, RTMP play, HLS playlists and segments).
pub(crate) fn viewer(state: &State, name: &str, token: Option<&str>) -> Result<(), Error> {
    let presented = Presented { key: None, token };
    let rules = &state.config().auth;
    match rules.check(Action::Read, name, presented, || false, auth::unix_now()) {
        Ok(_) => Ok(()),
        Err(Denied::Token(e)) => Err(Error::Token(e)),
        Err(Denied::Key) => Err(Error::Token(auth::TokenError::Missing)),
    }
}

/// An RTMP player's signed link (`auth::signed`), where the config asks for them: the stream
/// `NAME` is the path `/live/NAME.rtmp`, and the link is the query after the name
/// (`rtmp://host/live/NAME?expires=..&sig=..`). (Not `/live/NAME`: stream names may end in
/// `.ts`, and a link for stream `a.ts` would then be one for stream `a`'s `.ts` output.)
pub(crate) fn signed_play(state: &State, name: &str, query: Option<&str>) -> Result<(), Error> {
    let Some(signed) = &state.config().signed else {
        return Ok(());
    };
    signed
        .check(&format!("/live/{name}.rtmp"), query, auth::unix_now())
        .map(|_| ())
        .map_err(Error::Link)
}

/// A viewer's credentials from its request (`?jwt=` or Bearer), read only when a rule covers the
/// stream.
pub(crate) fn viewer_request<B>(
    state: &State,
    name: &str,
    req: &http::Request<B>,
) -> Result<(), Error> {
    if state.config().auth.for_stream(Action::Read, name).is_none() {
        return Ok(());
    }
    let token = auth::token(req.uri(), req.headers());
    viewer(state, name, token.as_deref())
}

/// The `on_play` callback for an HLS playlist or DASH manifest request (credentials first, and
/// the caller checks a signed link first, so that the callback only hears of viewers the rules
/// let in); nothing to do without an `on_play` callback.
pub(crate) async fn playlist<B>(
    state: &State,
    name: &str,
    req: &http::Request<B>,
    peer: SocketAddr,
    secure: bool,
) -> Result<(), Error> {
    let Some(_) = state
        .config()
        .hooks
        .as_ref()
        .and_then(|h| h.on_play.as_ref())
    else {
        return Ok(());
    };
    viewer_request(state, name, req)?;
    // Only for a stream that exists: junk names get their 404 without a call to the service
    // (here, not after: a publish that begins meanwhile must not be served unasked).
    if state.live.get(name).is_none() {
        return Err(Error::UnknownStream(name.into()));
    }
    let protocol = if secure { "https" } else { "http" };
    hook(state, Event::Play, name, peer, protocol, req.uri().query()).await
}

/// Asks the `on_publish` or `on_play` callback, when configured.
pub(crate) async fn hook(
    state: &State,
    event: Event,
    stream: &str,
    client: SocketAddr,
    protocol: &'static str,
    query: Option<&str>,
) -> Result<(), Error> {
    let Some(hooks) = &state.config().hooks else {
        return Ok(());
    };
    // Credentials stay here: the service hears the rest of the query.
    let query = query.map(auth::redact);
    let call = Call {
        event,
        stream,
        client,
        protocol,
        query: query.as_deref(),
    };
    hooks.ask(call).await.map_err(Error::Hook)
}

/// On an edge, a viewer (or playlist request) of a stream that is not here: the `on_play`
/// callback is asked before the pull the request would start, so that a viewer the callback
/// refuses never makes the edge pull a stream (RTMP play asks in this order too). `Ok(true)`:
/// asked, and admitted (the caller does not ask again); `Ok(false)`: not asked (no callback, not
/// an edge, or the stream is here).
pub(crate) async fn before_pull(
    state: &State,
    stream: &str,
    client: SocketAddr,
    protocol: &'static str,
    query: Option<&str>,
) -> Result<bool, Error> {
    let hooked = state
        .config()
        .hooks
        .as_ref()
        .is_some_and(|h| h.on_play.is_some());
    let pulls = state.edge.as_ref().is_some_and(|e| !e.here(stream));
    if !(hooked && pulls && crate::live::valid_name(stream)) {
        return Ok(false);
    }
    hook(state, Event::Play, stream, client, protocol, query)
        .await
        .map(|()| true)
}

/// Tells `on_unpublish` that a publisher's session ended, when configured.
pub(crate) fn unpublished(state: &State, stream: &str, client: SocketAddr, protocol: &'static str) {
    if let Some(hooks) = &state.config().hooks {
        hooks.tell(Call {
            event: Event::Unpublish,
            stream,
            client,
            protocol,
            query: None,
        });
    }
}
