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
            Error::UnknownTitle(_) | Error::NoRoute => StatusCode::NOT_FOUND,
            Error::Method(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::MissingTime | Error::BadTime(_) => StatusCode::BAD_REQUEST,
            Error::NotSeekable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Library { .. } | Error::Bind { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
