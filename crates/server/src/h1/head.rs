//! Request heads on the fast path, sans-I/O: parse with `httparse`, route with the one router
//! ([`crate::http::route`]), and decide who serves the request ([`Kind`]): the fast path, a live
//! viewer or publisher loop, or hyper (anything unusual: other routes, a body where none is
//! expected, `Expect` other than `100-continue` on a publish, `Upgrade`, HTTP/1.0 plain requests,
//! codings other than chunked). Request framing it cannot trust (a malformed or ambiguous
//! `Content-Length`, or one beside `Transfer-Encoding`: RFC 9112 §6.3, as strict as hyper) is
//! [`Kind::Bad`], a 400.

use crate::http::{route, Route};
use crate::live::Output;
use http::{Method, Request};
use live::RequestBody;

/// Largest request head accepted (nginx's default large_client_header_buffers is 4 × 8 KiB).
pub(super) const MAX_HEAD: usize = 32 * 1024;
pub(super) const MAX_HEADERS: usize = 64;

/// The outcome of [`parse`]: returned and matched at once, never kept (so its size is moot).
#[allow(clippy::large_enum_variant)]
pub(super) enum Head {
    /// The head is `n` bytes long; `None`: hyper's.
    Complete(usize, Option<Kind>),
    Partial,
    Invalid,
}

/// A request the fast path serves.
#[derive(Debug)]
pub(super) enum Kind {
    /// Answered by `http::handle`; `close`: the client asked to close.
    Plain { req: Request<()>, close: bool },
    /// A live `.ts`/`.flv` viewer; `http10`: no chunked encoding; `close` for an error answer;
    /// its `Origin`, for the CORS headers.
    Watch {
        name: String,
        output: Output,
        http10: bool,
        close: bool,
        origin: Option<http::HeaderValue>,
        /// The request target (path and query), for a signed link's check.
        target: String,
        /// A JWT (`?jwt=` or Bearer), for the stream's rules.
        token: Option<String>,
        /// The edges the request came through (`x-zerocast-via`), to refuse a loop.
        via: Option<String>,
    },
    /// A publisher, its body's framing, and whether it expects `100 Continue`.
    Publish {
        req: Request<()>,
        name: String,
        body: RequestBody,
        expect: bool,
    },
    /// Framing that cannot be trusted (why): answered 400, and the connection closed.
    Bad(&'static str),
}

/// Parses a request head. Its own function so that the 2 KiB header array lives on the stack
/// for the parse only, not in every connection's future across its awaits (idle connections
/// are mostly that future).
pub(super) fn parse(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => Head::Complete(n, classify(&req)),
        Ok(httparse::Status::Partial) => Head::Partial,
        Err(_) => Head::Invalid,
    }
}

/// What plain HTTP does with a request when it redirects to HTTPS.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Redirect {
    /// To this URL: the same host and target, `https://`.
    To(String),
    /// Served as it is (`/healthz`, for load balancers).
    Serve,
    /// Refused: no usable host to redirect to (a missing or malformed `Host`).
    NoHost,
}

/// Where plain HTTP sends a request when it redirects to HTTPS on `port`.
pub(super) fn https_location(buf: &[u8], port: u16) -> Redirect {
    match location(buf, port) {
        Ok(Some(to)) => Redirect::To(to),
        Ok(None) => Redirect::Serve,
        Err(()) => Redirect::NoHost,
    }
}

/// The redirect's URL; `Ok(None)` for `/healthz`; `Err` without a usable host.
fn location(buf: &[u8], port: u16) -> Result<Option<String>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(buf).map_err(|_| ())?;
    let target = req.path.ok_or(())?;
    // Origin form (`/path`) with the Host header, or absolute form (`http://host/path`).
    if target.split('?').next() == Some("/healthz") {
        return Ok(None);
    }
    let (authority, target): (http::uri::Authority, String) = if target.starts_with('/') {
        let host = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("host"))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .ok_or(())?;
        (host.parse().map_err(|_| ())?, target.to_string())
    } else {
        let uri: http::Uri = target.parse().map_err(|_| ())?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        (uri.authority().ok_or(())?.clone(), path)
    };
    let name = authority.host();
    let name = if name.contains(':') && !name.starts_with('[') {
        format!("[{name}]")
    } else {
        name.to_owned()
    };
    Ok(Some(match port {
        443 => format!("https://{name}{target}"),
        _ => format!("https://{name}:{port}{target}"),
    }))
}

/// Sorts a parsed head. `None`: hyper's.
fn classify(parsed: &httparse::Request<'_, '_>) -> Option<Kind> {
    let method = match parsed.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        Some("PUT") => Method::PUT,
        Some("POST") => Method::POST,
        _ => return None,
    };
    let target = parsed.path?;
    let version = parsed.version?;
    let path = target.split('?').next().unwrap_or(target);
    let r = route(&method, path);
    let watch = match r {
        Some(Route::Watch(name, output)) if method == Method::GET => Some((name, output)),
        _ => None,
    };
    let publish = match r {
        Some(Route::Publish(name)) => Some(name),
        _ => None,
    };
    // Plain requests: video bytes and the live routes (an unknown `/live/` path is a 404 here).
    let plain = matches!(method, Method::GET | Method::HEAD)
        && version == 1
        && (r.is_some_and(|r| r.fast()) || (r.is_none() && path.starts_with("/live/")));
    if !(plain || watch.is_some() || publish.is_some()) {
        return None;
    }
    let mut builder = Request::builder().method(method).uri(target);
    let mut close = version == 0;
    let mut length = None;
    let mut chunked = false;
    let mut expect = false;
    for h in parsed.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("upgrade") {
            return None;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only chunked is understood (as the last coding); anything else is hyper's to refuse.
            let last = h.value.rsplit(|b| *b == b',').next().unwrap_or(b"");
            if !last.trim_ascii().eq_ignore_ascii_case(b"chunked") || publish.is_none() {
                return None;
            }
            // HTTP/1.0 has no chunked coding: faulty framing (RFC 9112 §6.1), as hyper has it.
            if version == 0 {
                return Some(Kind::Bad("Transfer-Encoding in an HTTP/1.0 request"));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = match content_length(h.value) {
                Ok(n) if length.is_none_or(|m| m == n) => n,
                Ok(_) => return Some(Kind::Bad("different Content-Length values")),
                Err(why) => return Some(Kind::Bad(why)),
            };
            if n != 0 && publish.is_none() {
                return None;
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("expect") {
            if publish.is_none() || !h.value.eq_ignore_ascii_case(b"100-continue") {
                return None;
            }
            // An HTTP/1.0 client may take a 100 for the answer: it gets none (RFC 9110 §10.1.1).
            expect = version == 1;
        } else if name.eq_ignore_ascii_case("connection") {
            close |= h
                .value
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
        builder = builder.header(name, h.value);
    }
    if chunked && length.is_some() {
        return Some(Kind::Bad("Content-Length with Transfer-Encoding"));
    }
    let req = builder.body(()).ok()?;
    Some(if let Some(name) = publish {
        let body = match (chunked, length) {
            (true, _) => RequestBody::chunked(),
            (false, Some(n)) => RequestBody::length(n),
            (false, None) => RequestBody::until_close(),
        };
        Kind::Publish {
            name: name.to_string(),
            req,
            body,
            expect,
        }
    } else if let Some((name, output)) = watch {
        Kind::Watch {
            name: name.to_string(),
            output,
            http10: version == 0,
            close,
            origin: req.headers().get(http::header::ORIGIN).cloned(),
            target: target.to_string(),
            token: crate::auth::token(req.uri(), req.headers()),
            via: crate::admit::via(req.headers()).map(str::to_string),
        }
    } else {
        Kind::Plain { req, close }
    })
}

/// A `Content-Length` field value (RFC 9112 §6.3): digits only (no sign, no inner space), fitting
/// a `u64`; a comma-separated list is accepted when every element is the same number (as hyper).
fn content_length(value: &[u8]) -> Result<u64, &'static str> {
    let mut n = None;
    for part in value.split(|b| *b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err("Content-Length is not a number");
        }
        let v = part.iter().try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        });
        let v = v.ok_or("Content-Length too large")?;
        if n.is_some_and(|m| m != v) {
            return Err("different Content-Length values");
        }
        n = Some(v);
    }
    n.ok_or("Content-Length is not a number")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_to_https_keeps_host_and_target_and_spares_healthz() {
        let loc = |head: &str, port| match https_location(head.as_bytes(), port) {
            Redirect::To(to) => Some(to),
            _ => None,
        };
        let get = "GET /videos/a.mp4?x=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n";
        assert_eq!(
            loc(get, 8443).as_deref(),
            Some("https://example.com:8443/videos/a.mp4?x=1")
        );
        assert_eq!(
            loc(get, 443).as_deref(),
            Some("https://example.com/videos/a.mp4?x=1")
        );
        let v6 = "GET / HTTP/1.1\r\nhost: [::1]:80\r\n\r\n";
        assert_eq!(loc(v6, 443).as_deref(), Some("https://[::1]/"));
        let what = |head: &str| https_location(head.as_bytes(), 443);
        assert_eq!(
            what("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"),
            Redirect::Serve
        );
        assert_eq!(
            what("GET / HTTP/1.0\r\n\r\n"),
            Redirect::NoHost,
            "no Host: refused, not served in the clear"
        );
        let bad = "GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n";
        assert_eq!(what(bad), Redirect::NoHost, "a Host that is no authority");
        let absolute = "GET http://example.com/videos/a.mp4 HTTP/1.1\r\nHost: other\r\n\r\n";
        assert_eq!(
            loc(absolute, 443).as_deref(),
            Some("https://example.com/videos/a.mp4"),
            "an absolute-form target is redirected too"
        );
    }

    /// What a head is sorted into, in short.
    fn kind(head: &str) -> String {
        match parse(head.as_bytes()) {
            Head::Partial => "partial".into(),
            Head::Invalid => "invalid".into(),
            Head::Complete(n, k) => {
                assert_eq!(n, head.len());
                match k {
                    None => "hyper".into(),
                    Some(Kind::Plain { close, .. }) => format!("plain close={close}"),
                    Some(Kind::Watch {
                        name,
                        output,
                        http10,
                        ..
                    }) => format!("watch {name} {output:?} http10={http10}"),
                    Some(Kind::Publish {
                        name, body, expect, ..
                    }) => format!("publish {name} {:?} expect={expect}", body.want()),
                    Some(Kind::Bad(why)) => format!("bad: {why}"),
                }
            }
        }
    }

    #[test]
    fn video_and_hls_requests_take_the_fast_path() {
        assert_eq!(
            kind("GET /videos/a.mp4 HTTP/1.1\r\nRange: bytes=0-1\r\n\r\n"),
            "plain close=false"
        );
        assert_eq!(
            kind("HEAD /videos/a.mp4 HTTP/1.1\r\nConnection: close\r\n\r\n"),
            "plain close=true"
        );
        assert_eq!(
            kind("GET /live/s/index.m3u8 HTTP/1.1\r\n\r\n"),
            "plain close=false"
        );
        assert_eq!(
            kind("GET /live/s/3.ts HTTP/1.1\r\n\r\n"),
            "plain close=false"
        );
        assert_eq!(
            kind("HEAD /live/s.ts HTTP/1.1\r\n\r\n"),
            "plain close=false"
        );
        assert_eq!(
            kind("GET /live/unknown HTTP/1.1\r\n\r\n"),
            "plain close=false",
            "a 404 here"
        );
    }

    #[test]
    fn live_viewers_and_publishers_get_their_loops() {
        assert_eq!(
            kind("GET /live/s.ts HTTP/1.1\r\n\r\n"),
            "watch s Ts http10=false"
        );
        assert_eq!(
            kind("GET /live/s.flv?x=1 HTTP/1.0\r\n\r\n"),
            "watch s Flv http10=true"
        );
        assert_eq!(
            kind("PUT /live/s?key=k HTTP/1.1\r\nContent-Length: 10\r\n\r\n"),
            "publish s Data(10) expect=false"
        );
        assert_eq!(
            kind("POST /live/s HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"),
            "publish s Framing expect=true"
        );
        assert_eq!(
            kind("PUT /live/s HTTP/1.0\r\n\r\n"),
            format!(
                "publish s {:?} expect=false",
                RequestBody::until_close().want()
            )
        );
    }

    #[test]
    fn anything_unusual_goes_to_hyper() {
        for head in [
            "GET /api/videos HTTP/1.1\r\n\r\n",
            "GET /videos/a.mp4 HTTP/1.0\r\n\r\n",
            "DELETE /videos/a.mp4 HTTP/1.1\r\n\r\n",
            "GET /videos/a.mp4 HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
            "GET /videos/a.mp4 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /videos/a.mp4 HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            "GET /videos/a.mp4 HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "PUT /live/s HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "PUT /live/s HTTP/1.1\r\nExpect: something\r\n\r\n",
            "PUT /live/s/x HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(kind(head), "hyper", "{head:?}");
        }
    }

    /// A publish head with these header lines.
    fn put(lines: &str) -> String {
        kind(&format!("PUT /live/s HTTP/1.1\r\n{lines}\r\n"))
    }

    #[test]
    fn a_content_length_is_digits_only() {
        for v in [
            "+0",
            "+188",
            "-1",
            "1 2",
            "x",
            "0x10",
            "1.0",
            "",
            " , ",
            "18446744073709551616",
        ] {
            let got = put(&format!("Content-Length: {v}\r\n"));
            assert!(got.starts_with("bad: Content-Length"), "{v:?}: {got}");
        }
        assert_eq!(
            put("Content-Length: 18446744073709551615\r\n"),
            format!("publish s Data({}) expect=false", u64::MAX)
        );
        assert_eq!(
            put("Content-Length:  188 \r\n"),
            "publish s Data(188) expect=false"
        );
    }

    #[test]
    fn different_content_lengths_are_refused_and_the_same_one_repeated_is_not() {
        let differ = "bad: different Content-Length values";
        assert_eq!(put("Content-Length: 10\r\nContent-Length: 20\r\n"), differ);
        assert_eq!(put("Content-Length: 10, 20\r\n"), differ);
        assert_eq!(
            kind("GET /videos/a HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 1\r\n\r\n"),
            differ
        );
        let same = "publish s Data(10) expect=false";
        assert_eq!(put("Content-Length: 10\r\nContent-Length: 10\r\n"), same);
        assert_eq!(put("Content-Length: 10,10\r\n"), same);
    }

    #[test]
    fn a_content_length_beside_transfer_encoding_is_refused() {
        let bad = "bad: Content-Length with Transfer-Encoding";
        assert_eq!(
            put("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
            bad
        );
        assert_eq!(
            put("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
            bad
        );
    }

    #[test]
    fn an_http_1_0_publish_is_not_chunked_and_gets_no_100_continue() {
        assert_eq!(
            kind("PUT /live/s HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            "bad: Transfer-Encoding in an HTTP/1.0 request"
        );
        assert_eq!(
            kind("PUT /live/s HTTP/1.0\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"),
            "publish s Data(10) expect=false"
        );
        assert_eq!(
            put("Content-Length: 10\r\nExpect: 100-continue\r\n"),
            "publish s Data(10) expect=true"
        );
    }

    #[test]
    fn partial_and_invalid_heads() {
        assert_eq!(kind("GET /videos/a.mp4 HTTP/1.1\r\nRange: by"), "partial");
        assert_eq!(kind("GET /videos/a\0.mp4 HTTP/1.1\r\n\r\n"), "invalid");
    }
}
