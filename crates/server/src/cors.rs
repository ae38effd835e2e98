//! CORS, decided without I/O: which origins may read zerocast's responses from a page of another
//! origin (an HTTPS site embedding a player, hls.js on a CDN's page), the headers that say so,
//! and the answer to a preflight. Every response of the router gets them in one place
//! (`http::handle`), and the live viewers' hand-written heads the same lines ([`Cors::lines`]).
//!
//! Credentials (cookies, `Access-Control-Allow-Credentials`) are never allowed: nothing here is
//! authorised by a cookie, so `*` is safe to answer, and a listed origin is echoed only when it
//! is on the list.

use crate::body::Chunks;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

/// Response headers a script may read besides the CORS-safelisted ones (players read these to
/// follow ranges and validators).
const EXPOSE: &str = "Content-Range, Content-Length, ETag, Accept-Ranges";
/// Request headers a player may send (preflight answer): ranges, conditions, a bearer token.
const ALLOW_HEADERS: &str = "Range, If-Match, If-None-Match, If-Modified-Since, \
                             If-Unmodified-Since, If-Range, Authorization, Content-Type";
/// How long a browser may keep a preflight's answer.
const MAX_AGE_SECS: &str = "86400";

/// Which origins may read responses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cors {
    /// Any origin (`*`), the default.
    #[default]
    Any,
    /// These origins only (`https://example.com`, compared without regard to ASCII case).
    Origins(Vec<String>),
    /// No CORS headers at all: only same-origin pages can read responses.
    Off,
}

impl Cors {
    /// From the config's list: `["*"]` is any origin, `[]` is off, otherwise each entry must be
    /// an origin: `scheme://host[:port]`, nothing after it.
    pub fn from_list(list: &[String]) -> Result<Cors, String> {
        if list.is_empty() {
            return Ok(Cors::Off);
        }
        if list.iter().any(|o| o == "*") {
            return if list.len() == 1 {
                Ok(Cors::Any)
            } else {
                Err("'*' cannot be listed with other origins".into())
            };
        }
        for o in list {
            let rest = o
                .strip_prefix("https://")
                .or_else(|| o.strip_prefix("http://"))
                .ok_or_else(|| format!("'{o}': an origin starts with https:// or http://"))?;
            let ok = !rest.is_empty()
                && rest.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                });
            if !ok {
                return Err(format!(
                    "'{o}': an origin is scheme://host[:port], with no path"
                ));
            }
        }
        Ok(Cors::Origins(list.to_vec()))
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if it may read.
    fn allow(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        match self {
            Cors::Any => Some(HeaderValue::from_static("*")),
            Cors::Origins(list) => {
                let o = origin?;
                let s = o.to_str().ok()?;
                list.iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(s))
                    .then(|| o.clone())
            }
            Cors::Off => None,
        }
    }

    /// Adds the CORS headers of a response to a request from `origin`.
    pub fn apply(&self, origin: Option<&HeaderValue>, h: &mut HeaderMap) {
        if let Cors::Origins(_) = self {
            // The answer depends on the request's Origin: caches must keep one per origin.
            h.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        if let Some(allow) = self.allow(origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE),
            );
        }
    }

    /// The answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`) for a route
    /// that takes `methods`: 204, and, for an origin that may read, what it may send.
    pub fn preflight(
        &self,
        origin: Option<&HeaderValue>,
        methods: &'static str,
    ) -> Response<Chunks> {
        let mut resp = Response::new(Chunks::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.insert(header::ALLOW, HeaderValue::from_static(methods));
        self.apply(origin, h);
        if h.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(methods),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOW_HEADERS),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(MAX_AGE_SECS),
            );
        }
        resp
    }

    /// The same headers as [`Cors::apply`], as lines of an HTTP/1.1 head (each ending in CRLF).
    pub fn lines(&self, origin: Option<&HeaderValue>) -> String {
        let mut h = HeaderMap::new();
        self.apply(origin, &mut h);
        let mut out = String::new();
        for (name, value) in &h {
            // Values come from the list, `*`, or an Origin that matched the list: printable.
            if let Ok(v) = value.to_str() {
                out.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    fn listed() -> Cors {
        Cors::from_list(&[
            "https://player.example".into(),
            "http://localhost:3000".into(),
        ])
        .unwrap()
    }

    #[test]
    fn any_origin_gets_a_star_and_the_exposed_headers() {
        let mut h = HeaderMap::new();
        Cors::Any.apply(Some(&origin("https://else.example")), &mut h);
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(
            h[header::ACCESS_CONTROL_EXPOSE_HEADERS],
            "Content-Range, Content-Length, ETag, Accept-Ranges"
        );
        assert!(
            h.get(header::VARY).is_none(),
            "the same answer for every origin"
        );
    }

    #[test]
    fn a_listed_origin_is_echoed_and_the_answer_varies_by_origin() {
        let mut h = HeaderMap::new();
        listed().apply(Some(&origin("https://PLAYER.example")), &mut h);
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://PLAYER.example"
        );
        assert_eq!(h[header::VARY], "Origin");
    }

    #[test]
    fn an_unlisted_or_missing_origin_gets_no_allow_origin() {
        for o in [Some(origin("https://evil.example")), None] {
            let mut h = HeaderMap::new();
            listed().apply(o.as_ref(), &mut h);
            assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
            assert_eq!(h[header::VARY], "Origin");
        }
    }

    #[test]
    fn off_adds_nothing() {
        let mut h = HeaderMap::new();
        Cors::from_list(&[])
            .unwrap()
            .apply(Some(&origin("https://a.example")), &mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn a_preflight_allows_the_routes_methods_and_range() {
        let r = Cors::Any.preflight(Some(&origin("https://a.example")), "GET, HEAD, OPTIONS");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let h = r.headers();
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_METHODS],
            "GET, HEAD, OPTIONS"
        );
        assert!(h[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap()
            .starts_with("Range, "));
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "86400");
    }

    #[test]
    fn a_preflight_from_an_unlisted_origin_allows_nothing() {
        let r = listed().preflight(Some(&origin("https://evil.example")), "GET, HEAD, OPTIONS");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert!(r
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_METHODS)
            .is_none());
        assert!(r
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none());
    }

    #[test]
    fn the_list_is_checked_when_read() {
        assert_eq!(Cors::from_list(&["*".into()]), Ok(Cors::Any));
        for bad in [
            "example.com",
            "https://a.example/path",
            "https://",
            "*,https://a.example",
        ] {
            let list: Vec<String> = bad.split(',').map(String::from).collect();
            assert!(Cors::from_list(&list).is_err(), "{bad}");
        }
    }

    #[test]
    fn head_lines_match_the_headers() {
        assert_eq!(
            Cors::Any.lines(None),
            "access-control-allow-origin: *\r\n\
             access-control-expose-headers: Content-Range, Content-Length, ETag, Accept-Ranges\r\n"
        );
        assert_eq!(Cors::Off.lines(None), "");
    }
}
