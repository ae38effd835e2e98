//! DVR from the ring: a viewer asking for `?t=-S` (`-20`, `-00:05:00`, `-1m30s`) starts at the
//! keyframe that arrived at or before S seconds ago, while the stream's ring still holds it
//! (`live.window_secs`), and follows on to the live edge without a gap. Past the window: 416,
//! with the window in the message. Times from the stream's start and wall-clock times need a
//! recording, which zerocast does not make yet: 400.

use super::{Live, Output, Stream};
use crate::error::Error;
use std::time::Duration;

/// The keyframe unit (of `output`'s ring) a viewer asking for `t` starts at.
pub(crate) fn start(stream: &Stream, live: &Live, output: Output, t: &str) -> Result<u64, Error> {
    let bad = |why: String| Error::BadTime(media::Error::Timecode(why));
    let Some(back) = t.strip_prefix('-') else {
        return Err(bad(format!(
            "'{}': a live stream is rewound by a time before its live edge, t=-SECONDS or \
             t=-HH:MM:SS (times from its start and wall-clock times need a recording)",
            crate::clip::Clip(t)
        )));
    };
    let back = media::timecode::parse(back, None).map_err(Error::BadTime)?;
    if back.ticks < 0 {
        return Err(bad(format!("'{}' is not a time", crate::clip::Clip(t))));
    }
    let back = Duration::from_secs_f64(back.as_secs_f64().min(1e9));
    let now = live.now();
    let inner = stream.read();
    let ring = inner.ring(output);
    let window = ring
        .and_then(|r| r.oldest_keyframe())
        .map_or(Duration::ZERO, |t| now.saturating_sub(t));
    let outside = || Error::OutsideDvr {
        asked: back.as_secs_f64(),
        window: window.as_secs_f64(),
    };
    let at = now.checked_sub(back).ok_or_else(outside)?;
    ring.and_then(|r| r.keyframe_at(at)).ok_or_else(outside)
}
