//! Small responses built from a `String` (or `Bytes`): a text body with its type and length, and JSON (pretty,
//! newline-terminated, not cached). Used by the routes (http/) and by error responses (error.rs).
//! And the Prometheus text format's two line kinds, for every family of `/metrics`.

use crate::body::Chunks;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Response, StatusCode};

/// A response to be sent whole by this instant, or its connection reset (HTTP/1.1, h1/) or its
/// stream reset (HTTP/2, h2.rs): a live segment, part or init segment
/// (`LiveConfig::segment_send_limit`). Carried as a response extension.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendBy(pub tokio::time::Instant);

impl SendBy {
    /// Sent whole within `limit` from now.
    pub(crate) fn within(limit: std::time::Duration) -> SendBy {
        SendBy(tokio::time::Instant::now() + limit)
    }

    /// The instant `resp` must be sent by, if any.
    pub(crate) fn of<B>(resp: &Response<B>) -> Option<tokio::time::Instant> {
        resp.extensions().get::<SendBy>().map(|s| s.0)
    }
}

pub(crate) fn text(
    status: StatusCode,
    ctype: &'static str,
    body: impl Into<bytes::Bytes>,
) -> Response<Chunks> {
    let body: bytes::Bytes = body.into();
    let len = body.len();
    let mut r = Response::new(Chunks::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len));
    r
}

pub(crate) fn json<T: serde::Serialize>(status: StatusCode, doc: &T) -> Response<Chunks> {
    json_bytes(status, json_body(doc))
}

/// A JSON document as [`json`] writes it.
pub(crate) fn json_body<T: serde::Serialize>(doc: &T) -> bytes::Bytes {
    let mut s =
        serde_json::to_string_pretty(doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s.into()
}

/// A JSON answer of a body already written.
pub(crate) fn json_bytes(status: StatusCode, body: bytes::Bytes) -> Response<Chunks> {
    let mut r = text(status, "application/json", body);
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `308 Permanent Redirect` to `to` (the method and body are kept: a publisher's `PUT` stays a
/// `PUT`), with a short text body.
pub(crate) fn redirect(to: &str) -> Response<Chunks> {
    let mut r = text(
        StatusCode::PERMANENT_REDIRECT,
        "text/plain",
        format!("{to}\n"),
    );
    match HeaderValue::from_str(to) {
        Ok(v) => {
            r.headers_mut().insert(http::header::LOCATION, v);
        }
        Err(_) => *r.status_mut() = StatusCode::BAD_REQUEST,
    }
    r
}

/// The head of a Prometheus family: `# HELP` and `# TYPE` lines for `zerocast_{name}`.
pub(crate) fn metric_family(out: &mut String, name: &str, kind: &str, help: &str) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "# HELP zerocast_{name} {help}\n# TYPE zerocast_{name} {kind}"
    );
}

/// One sample of `zerocast_{name}`; `labels` is `key="value"` (or empty).
pub(crate) fn metric_sample(out: &mut String, name: &str, labels: &str, value: u64) {
    use std::fmt::Write;
    let _ = match labels {
        "" => writeln!(out, "zerocast_{name} {value}"),
        _ => writeln!(out, "zerocast_{name}{{{labels}}} {value}"),
    };
}

/// A family of one unlabelled sample.
pub(crate) fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    metric_family(out, name, kind, help);
    metric_sample(out, name, "", value);
}
