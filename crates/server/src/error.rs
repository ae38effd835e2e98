//! The one error type of the server crate, and the one place where errors become HTTP statuses.

use http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no title with id '{0}'")]
    UnknownTitle(String),
    #[error("not found")]
    NoRoute,
    #[error("method {0} not allowed here")]
    Method(http::Method),
    #[error("missing query parameter 't' (a timecode such as 01:09:14:28, 4154.93 or 1h9m14s)")]
    MissingTime,
    #[error("{0}")]
    BadTime(media::Error),
    #[error("'{id}' cannot be searched by time: {reason}")]
    NotSeekable { id: String, reason: String },
    #[error("bad stream name '{0}' (1 to 128 of A-Z a-z 0-9 _ - .)")]
    BadStreamName(String),
    #[error("no live stream '{0}'")]
    UnknownStream(String),
    #[error(
        "no segment {seq} in stream '{stream}' (it slid out of the window, or is not cut yet)"
    )]
    UnknownSegment { stream: String, seq: String },
    #[error("publishing '{0}' needs a stream key (?key= or Authorization: Bearer)")]
    KeyRequired(String),
    #[error("wrong stream key for '{0}'")]
    WrongKey(String),
    #[error("no publish key is configured, so only loopback publishers are accepted (not {0}); set --publish-key")]
    PublishNotConfigured(std::net::IpAddr),
    #[error("stream '{0}' already has a publisher")]
    StreamBusy(String),
    #[error("too many live streams (limit {0})")]
    TooManyStreams(usize),
    #[error("bad live input: {0}")]
    BadIngest(String),
    #[error("library directory {path}: {source}")]
    Library {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

impl Error {
    /// The status code for an error answered to a client. Only request errors reach a client.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::UnknownTitle(_)
            | Error::NoRoute
            | Error::UnknownStream(_)
            | Error::UnknownSegment { .. } => StatusCode::NOT_FOUND,
            Error::BadStreamName(_) | Error::BadIngest(_) => StatusCode::BAD_REQUEST,
            Error::KeyRequired(_) => StatusCode::UNAUTHORIZED,
            Error::WrongKey(_) | Error::PublishNotConfigured(_) => StatusCode::FORBIDDEN,
            Error::StreamBusy(_) => StatusCode::CONFLICT,
            Error::TooManyStreams(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Method(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::MissingTime | Error::BadTime(_) => StatusCode::BAD_REQUEST,
            Error::NotSeekable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Library { .. } | Error::Bind { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
