//! The server crate's errors, and the one place where they become HTTP responses and RTMP status
//! codes.
//!
//! Three kinds, for three audiences:
//! - [`Error`]: a request refused; it reaches the client, as an HTTP status with a JSON body
//!   ([`Error::response`]) or as an RTMP `_error`/`onStatus` code ([`Error::rtmp_code`]).
//! - [`ConnError`]: why a connection's task ended (I/O, a timeout, a protocol violation); logged,
//!   never answered.
//! - [`StartError`]: why the server could not start (library, listener); for the operator.
//!
//! Request-derived text in a message (ids, names, timecodes) is clipped ([`Clip`]).
//!
//! A message includes its cause (`: {0}`) and no error here has a `source()`: they are printed
//! with `Display` (logs, JSON bodies, RTMP statuses), and a chain printer (`{:#}` in the binary)
//! would otherwise print the cause twice. Conversions are plain `From` impls, not `#[from]`
//! (which would make the cause a source too).

use crate::body::Chunks;
use crate::clip::Clip;
pub use crate::store::StoreError;
use http::header::{HeaderValue, ALLOW, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

/// The JSON body of an error response.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ErrorDoc {
    pub error: String,
    pub status: u16,
}

/// A request refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no title with id '{}'", Clip(.0))]
    UnknownTitle(String),
    #[error("publish over HTTP/1.1 (this request came over HTTP/2)")]
    Http2Publish,
    #[error("{0}")]
    Token(crate::auth::TokenError),
    #[error("{0}")]
    Hook(crate::auth::hooks::HookError),
    #[error("not found")]
    NoRoute,
    #[error("method {} not allowed here", Clip(.0.as_str()))]
    Method(http::Method),
    #[error("missing query parameter 't' (a timecode such as 01:09:14:28, 4154.93 or 1h9m14s)")]
    MissingTime,
    #[error("{}", Clip(&.0.to_string()))]
    BadTime(media::Error),
    #[error("'{}' cannot be searched by time: {reason}", Clip(.id))]
    NotSeekable { id: String, reason: String },
    #[error("'{}' cannot be clipped: {reason}", Clip(.id))]
    NotClippable { id: String, reason: String },
    #[error(
        "{asked:.1} s back is outside the DVR window: the stream holds its last {window:.1} s \
         (its ring, live.window_secs, and its recording when it is recorded)"
    )]
    OutsideDvr { asked: f64, window: f64 },
    #[error("'{}' has no HLS or DASH: {reason}", Clip(.id))]
    NotPackaged { id: String, reason: String },
    /// A title in object storage whose packaging is being read (the async shells read it and
    /// answer again, so a client sees this only if that did not happen).
    #[error("'{}' is being read from object storage; ask again", Clip(.0))]
    Pending(String),
    #[error("'{}': {what}", Clip(.id))]
    NoSuchPart { id: String, what: String },
    #[error("bad stream name '{}' (1 to 128 of A-Z a-z 0-9 _ - .)", Clip(.0))]
    BadStreamName(String),
    #[error("no live stream '{}'", Clip(.0))]
    UnknownStream(String),
    #[error(
        "no live stream '{}' with H.264 or H.265 video (FLV, RTMP and MP4 carry only those from TS sources)",
        Clip(.0)
    )]
    NoFlvOutput(String),
    #[error(
        "no segment {} in stream '{}' (it slid out of the window, or is not cut yet)",
        Clip(.seq),
        Clip(.stream)
    )]
    UnknownSegment { stream: String, seq: String },
    #[error(
        "no directory '{}' in live stream '{}': its playlist names where its segments are \
         (those of an earlier publish under that name are gone)",
        Clip(.tag), Clip(.stream)
    )]
    OtherInstance { stream: String, tag: String },
    #[error(
        "a title file was cut short while the server had it mapped: '{}' is served again once \
         the library has been read again (in a moment)",
        Clip(.0)
    )]
    TitleRereading(String),
    #[error("publishing '{}' needs a stream key (?key= or Authorization: Bearer)", Clip(.0))]
    KeyRequired(String),
    #[error("wrong stream key for '{}'", Clip(.0))]
    WrongKey(String),
    #[error("no publish key is configured, so only loopback publishers are accepted (not {0}); set --publish-key")]
    PublishNotConfigured(std::net::IpAddr),
    #[error("stream '{}' already has a publisher", Clip(.0))]
    StreamBusy(String),
    #[error("too many live streams (limit {0})")]
    TooManyStreams(usize),
    #[error("{0}; try again later")]
    MemoryBudget(live::OverBudget),
    #[error("the control API needs the admin token (Authorization: Bearer)")]
    AdminRequired,
    #[error("wrong admin token")]
    WrongAdminToken,
    #[error("the control API is off: set admin_token in the config file")]
    AdminNotConfigured,
    #[error("stream '{}' has no publisher connected", Clip(.0))]
    NoPublisher(String),
    #[error("{0}")]
    Link(crate::auth::signed::LinkError),
    #[error("bad live input: {0}")]
    BadIngest(IngestError),
    #[error("unknown RTMP application '{}' (the application is 'live': rtmp://host/live/NAME)", Clip(.0))]
    UnknownApp(String),
    #[error("play on RTMP message stream {0}; only stream 1 is served")]
    PlayStreamId(u32),
    /// Over the connection cap, or out of descriptors (accept.rs).
    #[error("the server is at its connection limit; try again shortly")]
    Overloaded,
    #[error("bad LL-HLS query: {0}")]
    LlQuery(live::llhls::QueryError),
    #[error(
        "stream '{}' has segments up to {newest}: segment {asked} is too far ahead to wait for",
        Clip(.stream)
    )]
    LlTooFar {
        stream: String,
        asked: u64,
        newest: u64,
    },
    #[error("stream '{}' did not reach the requested segment or part in time", Clip(.0))]
    LlHoldTimeout(String),
    #[error("live stream '{}' could not be pulled from the origins: {why}", Clip(.stream))]
    Upstream { stream: String, why: String },
    #[error("live stream '{}': no origin answered within {}s", Clip(.0), .1.as_secs())]
    UpstreamTimeout(String, std::time::Duration),
    #[error("live stream '{}' cannot be pulled here now: {}; try again later", Clip(.0), .1)]
    EdgeBusy(String, String),
    #[error("live stream '{}': a loop of edges (this server's pull of it asks for it back)", Clip(.0))]
    EdgeLoop(String),
    /// A title in object storage whose bytes could not be fetched.
    #[error("the title's bytes could not be read: {0}")]
    Store(StoreError),
    /// Request framing that cannot be trusted (RFC 9112 §6.3).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
}

impl Error {
    /// The HTTP status of a refused request.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::UnknownTitle(_)
            | Error::NoRoute
            | Error::UnknownStream(_)
            | Error::NoFlvOutput(_)
            | Error::UnknownSegment { .. }
            | Error::OtherInstance { .. }
            | Error::NoSuchPart { .. } => StatusCode::NOT_FOUND,
            Error::BadIngest(IngestError::Kicked) => StatusCode::FORBIDDEN,
            Error::BadStreamName(_) | Error::BadIngest(_) => StatusCode::BAD_REQUEST,
            Error::KeyRequired(_) | Error::AdminRequired => StatusCode::UNAUTHORIZED,
            Error::WrongAdminToken | Error::AdminNotConfigured | Error::Link(_) => {
                StatusCode::FORBIDDEN
            }
            Error::NoPublisher(_) => StatusCode::CONFLICT,
            Error::WrongKey(_) | Error::PublishNotConfigured(_) => StatusCode::FORBIDDEN,
            Error::StreamBusy(_) => StatusCode::CONFLICT,
            Error::TooManyStreams(_) | Error::MemoryBudget(_) | Error::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Method(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::MissingTime | Error::BadTime(_) => StatusCode::BAD_REQUEST,
            Error::OutsideDvr { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Error::NotSeekable { .. } | Error::NotClippable { .. } | Error::NotPackaged { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Error::UnknownApp(_) | Error::PlayStreamId(_) => StatusCode::BAD_REQUEST,
            Error::BadRequest(_) | Error::LlQuery(_) | Error::LlTooFar { .. } => {
                StatusCode::BAD_REQUEST
            }
            Error::LlHoldTimeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Error::UpstreamTimeout(..) => StatusCode::GATEWAY_TIMEOUT,
            Error::Pending(_) | Error::TitleRereading(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Store(StoreError::Timeout(_)) => StatusCode::GATEWAY_TIMEOUT,
            Error::Store(_) => StatusCode::BAD_GATEWAY,
            Error::EdgeBusy(..) => StatusCode::SERVICE_UNAVAILABLE,
            Error::EdgeLoop(_) => StatusCode::LOOP_DETECTED,
            Error::Http2Publish => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            Error::Token(crate::auth::TokenError::Missing) => StatusCode::UNAUTHORIZED,
            Error::Token(_) | Error::Hook(_) => StatusCode::FORBIDDEN,
        }
    }

    /// The RTMP status code of a refused `connect`, `publish` or `play` (`play`: a play).
    pub fn rtmp_code(&self, play: bool) -> &'static str {
        match self {
            Error::UnknownApp(_) => "NetConnection.Connect.Rejected",
            Error::StreamBusy(_) => "NetStream.Publish.BadName",
            Error::TooManyStreams(_) | Error::MemoryBudget(_) => "NetStream.Publish.Rejected",
            Error::UnknownStream(_) | Error::NoFlvOutput(_) | Error::PlayStreamId(_) => {
                "NetStream.Play.StreamNotFound"
            }
            // A token or a callback refused: a player's play failed; a publisher's name is bad.
            Error::Token(_)
            | Error::Hook(_)
            | Error::Link(_)
            | Error::Upstream { .. }
            | Error::UpstreamTimeout(..)
            | Error::EdgeBusy(..)
            | Error::EdgeLoop(_)
                if play =>
            {
                "NetStream.Play.Failed"
            }
            Error::Token(_) | Error::Hook(_) => "NetStream.Publish.BadName",
            _ => "NetStream.Publish.Unauthorized",
        }
    }

    /// The response to a refused request: its status, a JSON body, and the headers the status
    /// calls for (`Allow` with 405, `WWW-Authenticate` with 401, `Retry-After` when overloaded).
    pub fn response(self) -> Response<Chunks> {
        let status = self.status();
        let doc = ErrorDoc {
            error: self.to_string(),
            status: status.as_u16(),
        };
        let mut resp = crate::response::json(status, &doc);
        let h = resp.headers_mut();
        match self {
            Error::Method(_) => {
                h.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            Error::TooManyStreams(_) | Error::MemoryBudget(_) | Error::EdgeBusy(..) => {
                h.insert(RETRY_AFTER, HeaderValue::from_static("5"));
            }
            Error::KeyRequired(_) => {
                h.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"zerocast publish\""),
                );
            }
            Error::AdminRequired => {
                h.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"zerocast admin\""),
                );
            }
            Error::Overloaded | Error::Pending(_) | Error::TitleRereading(_) => {
                h.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}

/// Live input that cannot be published; the stream ends and the publisher is told why.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Ts(media::Error),
    #[error("bad {} tag: {error}", if *.video { "video" } else { "audio" })]
    Tag { video: bool, error: media::Error },
    #[error(
        "a {} sequence header of {len} bytes (a codec configuration is at most {} KiB)",
        if *.video { "video" } else { "audio" },
        max >> 10
    )]
    SequenceHeader { video: bool, len: usize, max: usize },
    #[error("{0}")]
    Body(live::BodyError),
    #[error("the publisher was disconnected through the control API")]
    Kicked,
}

/// Why a connection's task ended early. Logged, not answered.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("{0}")]
    Io(std::io::Error),
    #[error("{0}")]
    Timeout(&'static str),
    #[error("closed {0}")]
    Closed(&'static str),
    #[error("RTMP handshake: {0}")]
    Handshake(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("RTMP: {0}")]
    Rtmp(String),
    #[error("refused: {0}")]
    Refused(Error),
    #[error("{0}")]
    Ingest(IngestError),
}

/// `From` impls without `#[from]`, which would also make the cause the error's `source()`.
macro_rules! wraps {
    ($($from:ty => $to:ident :: $variant:ident),* $(,)?) => {$(
        impl From<$from> for $to {
            fn from(e: $from) -> Self {
                $to::$variant(e)
            }
        }
    )*};
}
wraps! {
    IngestError => Error::BadIngest,
    live::BodyError => IngestError::Body,
    std::io::Error => ConnError::Io,
    Error => ConnError::Refused,
    IngestError => ConnError::Ingest,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("library directory {path}: {error}")]
    Library { path: String, error: std::io::Error },
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        addr: std::net::SocketAddr,
        error: std::io::Error,
    },
    /// The RTMP listener, with the way out: RTMP off, or another address.
    #[error(
        "cannot listen for RTMP on {addr}: {error}; serve without RTMP with --rtmp-listen off \
         (rtmp_listen = \"off\"), or give another --rtmp-listen ADDR"
    )]
    RtmpBind {
        addr: std::net::SocketAddr,
        error: std::io::Error,
    },
    #[error("TLS certificate: {0}")]
    Tls(CertError),
}

/// Why a certificate or key was not taken.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{}: {error}", path.display())]
    Read {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    #[error("{}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { path: std::path::PathBuf },
    #[error("{}: a PEM certificate that does not parse: {why}", path.display())]
    BadCertificate {
        path: std::path::PathBuf,
        why: String,
    },
    #[error("{}: no usable private key in it (PKCS#8, PKCS#1 RSA or SEC1 EC, PEM): {why}", path.display())]
    BadKey {
        path: std::path::PathBuf,
        why: String,
    },
    #[error("TLS setup: {0}")]
    Setup(String),
    #[error("{} does not belong to the certificate in {}: {why}", key.display(), cert.display())]
    Mismatch {
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
        why: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::CONTENT_TYPE;

    #[test]
    fn a_refusal_is_json_with_its_status_and_the_headers_the_status_calls_for() {
        let r = Error::KeyRequired("show".into()).response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"zerocast publish\""
        );
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        let body: Vec<u8> = r.body().parts().flat_map(|b| b.to_vec()).collect();
        let doc: ErrorDoc = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc.status, 401);
        assert_eq!(
            doc.error,
            "publishing 'show' needs a stream key (?key= or Authorization: Bearer)"
        );
        let m = Error::Method(http::Method::DELETE).response();
        assert_eq!(m.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(m.headers()[ALLOW], "GET, HEAD");
    }

    #[test]
    fn rtmp_refusals_carry_the_codes_players_and_encoders_know() {
        assert_eq!(
            Error::StreamBusy("s".into()).rtmp_code(false),
            "NetStream.Publish.BadName"
        );
        assert_eq!(
            Error::WrongKey("s".into()).rtmp_code(false),
            "NetStream.Publish.Unauthorized"
        );
        assert_eq!(
            Error::UnknownStream("s".into()).rtmp_code(false),
            "NetStream.Play.StreamNotFound"
        );
        assert_eq!(
            Error::UnknownApp("x".into()).rtmp_code(false),
            "NetConnection.Connect.Rejected"
        );
        let expired = || Error::Token(crate::auth::TokenError::Expired(1));
        assert_eq!(expired().rtmp_code(true), "NetStream.Play.Failed");
        assert_eq!(expired().rtmp_code(false), "NetStream.Publish.BadName");
    }
}
