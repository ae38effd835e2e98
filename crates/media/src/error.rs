//! The one error type of the media crate.

use crate::time::MediaTime;

/// Why a title could not be indexed or a time could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The bytes end before a structure that they declare.
    #[error("truncated {what}: needs {needed} bytes at offset {offset}, {available} present")]
    Truncated {
        what: &'static str,
        offset: u64,
        needed: u64,
        available: u64,
    },
    /// The bytes are present but make no sense for the container.
    #[error("malformed {what}: {why}")]
    Malformed { what: &'static str, why: String },
    /// The container was not recognised from its bytes.
    #[error("unknown container (not MP4, MPEG-TS or WebM/Matroska)")]
    UnknownContainer,
    /// The title parsed but has no video track with keyframes to seek to.
    #[error("no video keyframes to seek to")]
    NoKeyframes,
    /// A time string could not be parsed or does not exist at this frame rate.
    #[error("{0}")]
    Timecode(String),
    /// A time beyond the end of the title.
    #[error("time {requested} s is past the end of the title ({duration} s)")]
    PastEnd {
        requested: MediaTime,
        duration: MediaTime,
    },
}

impl Error {
    pub(crate) fn malformed(what: &'static str, why: impl Into<String>) -> Self {
        Error::Malformed {
            what,
            why: why.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
