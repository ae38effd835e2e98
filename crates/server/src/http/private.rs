//! Who may keep an answer: one to a request that carried a viewer's credentials is private to
//! shared caches, on every path (what `handle` answers, and the parts streamed outside it).

use crate::state::State;
use http::header::ORIGIN;
use http::Request;

/// The headers of an LL-HLS part or DASH segment streamed as it is written, which is answered
/// outside [`super::handle`]: the same caching (private to a credentialed request, no longer
/// than a signed link lives), HSTS over TLS and CORS as every answer `handle` makes.
pub(crate) fn streamed_headers<B>(
    state: &State,
    req: &Request<B>,
    secure: bool,
) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, max-age=600, immutable"),
    );
    if credentialed(req) {
        private(&mut h);
    }
    let config = state.config();
    cap_to_link(&config, req, &mut h);
    if secure {
        crate::tls::hsts(config.tls.as_ref(), &mut h);
    }
    config.cors.apply(req.headers().get(ORIGIN), &mut h);
    h
}

/// Whether a request carried a viewer's credentials: an `Authorization` header, or a token or key
/// in its query. (Signed links are not: they are made to be cached by a CDN that keys on the
/// query, `auth::signed`.)
pub(super) fn credentialed<B>(req: &Request<B>) -> bool {
    let query = req.uri().query();
    req.headers().contains_key(http::header::AUTHORIZATION)
        || ["jwt", "key", "token"]
            .iter()
            .any(|k| crate::auth::query_param(query, k).is_some())
}

/// When the signed link a request came with (`auth::signed`: its path is covered, so it was
/// checked) expires, in Unix seconds.
fn link_expiry<B>(config: &crate::config::Config, req: &Request<B>) -> Option<u64> {
    let path = percent_encoding::percent_decode_str(req.uri().path()).decode_utf8_lossy();
    if !config.signed.as_ref()?.covers(&path) {
        return None;
    }
    crate::auth::query_param(req.uri().query(), "expires")?
        .parse()
        .ok()
}

/// Caps what a cache may keep an answer to `req` for at what its signed link has left, if it
/// came through one: a CDN keying on the link's query must not serve it after the link expires.
pub(super) fn cap_to_link<B>(
    config: &crate::config::Config,
    req: &Request<B>,
    h: &mut http::HeaderMap,
) {
    if let Some(expires) = link_expiry(config, req) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        keep_at_most(h, expires.saturating_sub(now));
    }
}

/// Caps what a cache may keep an answer for at `left` seconds.
fn keep_at_most(h: &mut http::HeaderMap, left: u64) {
    let Some(was) = h
        .get(http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
    else {
        return;
    };
    let capped: Vec<String> = was
        .split(',')
        .map(str::trim)
        .map(|d| match d.split_once('=') {
            Some((k @ ("max-age" | "s-maxage"), v)) => match v.parse::<u64>() {
                Ok(n) => format!("{k}={}", n.min(left)),
                Err(_) => d.to_string(),
            },
            _ => d.to_string(),
        })
        .collect();
    if let Ok(v) = http::HeaderValue::from_str(&capped.join(", ")) {
        h.insert(http::header::CACHE_CONTROL, v);
    }
}

/// Makes a response to a credentialed request private: a shared cache must not hand it to
/// someone else (RFC 9111 §5.2.2.7); a browser may still keep it as it was told.
pub(super) fn private(h: &mut http::HeaderMap) {
    let was = h
        .get(http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("no-cache")
        .replace("public", "private");
    let value = if was.contains("private") {
        was
    } else {
        format!("private, {was}")
    };
    if let Ok(v) = http::HeaderValue::from_str(&value) {
        h.insert(http::header::CACHE_CONTROL, v);
    }
}
