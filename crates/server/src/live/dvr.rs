//! DVR: a viewer asking for `?t=` starts at the keyframe that arrived at or before that time and
//! follows on to the live edge without a gap. The time is `-S` before the live edge (`-20`,
//! `-00:05:00`, `-1m30s`), a time from the stream's start (`01:09:14:28`, `95`), or a wall-clock
//! time (`2026-11-26T14:15:00Z`). From the ring while it holds that keyframe
//! (`live.window_secs`); further back, from the stream's recording (`.ts` of a TS recording,
//! `.mp4` of an fMP4 one; its first bytes are the PAT and PMT or the init segment): its
//! files from that keyframe on to the newest keyframe both hold, then the ring from there
//! (`live::record::checkpoints`). An `.flv` viewer (no recording is FLV), and an `.mp4` one of
//! a stream not recorded as fMP4, is sent the TS ring, or the TS recording and then the TS ring,
//! converted to its format on its own until its ring goes on with what comes next
//! (`live::rewind`, rewind.rs): a TS source's FLV and fMP4 outputs begin with their first
//! viewer, so the TS ring also reaches further back than theirs. An `.flv` viewer of a stream
//! recorded as fMP4 that reaches back past the TS ring is sent the fMP4 recording and then the
//! fMP4 ring, read back into FLV tags, the same way; a `.ts` one, the same read back into TS,
//! for as long as it watches (it cannot join the TS ring: `live::rewind`'s ts.rs). Past what
//! either holds: 416, with the window in the message; a time not before the live edge: 400.

use super::{Live, Output, Stream};
use crate::error::Error;
use crate::library::Library;
use bytes::Bytes;
use live::record::checkpoints::{Checkpoints, Piece};
use std::time::Duration;

/// Where a DVR viewer starts: the bytes of the recording to send first (empty when the ring
/// reaches back far enough), then the ring from keyframe unit `seq`.
#[derive(Debug, Default)]
pub(crate) struct Start {
    pub seq: u64,
    pub prefix: Vec<Bytes>,
    /// For each of `prefix` that is a slice of a recording mapped from disk: its file and
    /// where it lies there, to read its pages in off the workers before it is sent
    /// ([`Start::read_in`]).
    pub on_disk: Vec<Option<(std::sync::Arc<std::fs::File>, u64)>>,
    /// How to get the recording's next stretch when the ring no longer holds `seq` by the time
    /// the prefix is sent (see [`resume`]).
    pub more: Option<Resume>,
    /// A viewer that starts in the recording or ring of another output (TS for `.flv` and `.mp4`;
    /// fMP4 for `.flv` and `.ts` of a stream recorded as fMP4): `prefix` is of that format and
    /// `seq` a unit of its ring, to be converted to the viewer's (rewind.rs).
    pub convert: Option<Output>,
}

/// The output whose recording and ring a DVR viewer of `output` rewinds into, the stream being
/// recorded as `recorded`: its own, or another converted to it (rewind.rs): for `.flv`, the fMP4
/// of a stream recorded as fMP4, else TS; for `.mp4`, TS unless the recording is fMP4; for
/// `.ts`, the fMP4 of a stream recorded as fMP4.
fn recorded_as(output: Output, recorded: Option<Output>) -> Output {
    match (output, recorded) {
        (Output::Flv | Output::Ts, Some(Output::Mp4)) => Output::Mp4,
        (Output::Flv, _) => Output::Ts,
        (Output::Mp4, r) if r != Some(Output::Mp4) => Output::Ts,
        _ => output,
    }
}

/// What a DVR viewer that reads from the recording needs to read on from it.
pub(crate) struct Resume {
    pub stream: std::sync::Arc<Stream>,
    pub output: Output,
    /// The library now (a growing recording is a new title at each keyframe).
    pub library: Box<dyn Fn() -> std::sync::Arc<Library> + Send + Sync>,
}

impl std::fmt::Debug for Resume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resume").finish_non_exhaustive()
    }
}

impl Start {
    /// Reads the pages of `prefix[i]` in off the workers when it is a slice of a recording
    /// mapped from disk (`pagein`): a viewer far back must not make its worker wait for the
    /// disk, and every connection on it with it.
    pub async fn read_in(&self, i: usize, len: usize) {
        if let Some(Some((file, at))) = self.on_disk.get(i) {
            crate::pagein::ensure(file, *at, len as u64).await;
        }
    }
}

impl Resume {
    /// The next stretch after the keyframe unit `seq`, if the ring no longer holds it.
    pub fn next(&self, seq: u64) -> Option<Start> {
        resume(&self.stream, &*self.library, self.output, seq)
    }
}

/// The most bytes of one prefix slice (a write or a body frame).
const SLICE: usize = 256 << 10;

/// Where a viewer asking for `t` starts.
pub(crate) fn start(
    stream: &Stream,
    live: &Live,
    library: &dyn Fn() -> std::sync::Arc<Library>,
    output: Output,
    t: &str,
) -> Result<Start, Error> {
    let now = live.now();
    let (at, back) = when(stream, live, t, now)?;
    let format = stream
        .recorded
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|(o, _)| *o);
    let inner = stream.read();
    if let Some(seq) = at.and_then(|at| inner.ring(output)?.keyframe_at(at)) {
        return Ok(Start {
            seq,
            ..Start::default()
        });
    }
    let own = inner.ring(output);
    let convert = Some(recorded_as(output, format)).filter(|&o| o != output);
    // Its own ring did not reach back (a TS source's FLV and fMP4 outputs begin with their first
    // viewer), the TS ring may: converted (`.flv`, whatever the recording is; `.mp4` unless it
    // has an fMP4 recording).
    let ts = inner
        .ring(Output::Ts)
        .filter(|_| output == Output::Flv || convert == Some(Output::Ts));
    if let Some(seq) = at.and_then(|at| ts?.keyframe_at(at)) {
        return Ok(Start {
            seq,
            convert: Some(Output::Ts),
            ..Start::default()
        });
    }
    let asked = output;
    let output = recorded_as(output, format);
    // TS is muxed from the fMP4 at its video frames: a stream without video has none to give.
    let no_video = || inner.media.as_ref().is_none_or(|m| m.tracks().0.is_none());
    let usable = !(asked == Output::Ts && output == Output::Mp4 && no_video());
    let ring = inner.ring(output).filter(|_| usable);
    let guard = stream.recorded.lock().unwrap_or_else(|p| p.into_inner());
    // The recording this viewer reads: its own output's (a TS one for `.ts`, an fMP4 one for
    // `.mp4`), or the one it converts (TS for `.flv` and `.mp4`; fMP4 for `.flv` and `.ts`).
    let recorded = guard
        .as_ref()
        .filter(|(o, _)| *o == output && usable)
        .map(|(_, c)| c);
    let oldest = [
        own.and_then(live::Ring::oldest_keyframe),
        ts.and_then(live::Ring::oldest_keyframe),
        ring.and_then(live::Ring::oldest_keyframe),
        recorded.and_then(|c| c.oldest()),
    ]
    .into_iter()
    .flatten()
    .min();
    let outside = || Error::OutsideDvr {
        asked: back,
        window: oldest.map_or(0.0, |o| now.saturating_sub(o).as_secs_f64()),
    };
    let (Some(ring), Some(recorded)) = (ring, recorded) else {
        return Err(outside());
    };
    let from = at.and_then(|at| recorded.at(at)).ok_or_else(outside)?;
    let (psi, pieces, seq) = stretch(recorded, ring, output, from).ok_or_else(outside)?;
    drop(guard);
    drop(inner);
    let (mut prefix, mut on_disk) = (vec![psi], vec![None]);
    // The library as it is now, after the checkpoints were read: the recorder publishes a
    // file's growth before it notes the keyframe there.
    slices(&library(), &pieces, &mut prefix, &mut on_disk).ok_or_else(outside)?;
    Ok(Start {
        seq,
        prefix,
        on_disk,
        more: None,
        convert,
    })
}

/// The recording's next stretch for a DVR viewer that was sent it up to the keyframe unit `seq`
/// and whose ring no longer holds that keyframe (it read slower than the stream went on): from
/// there to the newest keyframe both the recording and the ring hold. `None`: that keyframe has
/// left the recording's checkpoints too, or nothing newer is written yet.
pub(crate) fn resume(
    stream: &Stream,
    library: &dyn Fn() -> std::sync::Arc<Library>,
    output: Output,
    seq: u64,
) -> Option<Start> {
    let inner = stream.read();
    let ring = inner.ring(output)?;
    if ring.get(seq).is_some_and(|u| u.keyframe) {
        return None; // still in the ring: go on from there
    }
    let guard = stream.recorded.lock().unwrap_or_else(|p| p.into_inner());
    let (o, recorded) = guard.as_ref()?;
    if *o != output {
        return None;
    }
    let from = recorded.by_seq(seq)?;
    let (_, pieces, seq) = stretch(recorded, ring, output, from)?;
    drop(guard);
    drop(inner);
    let (mut prefix, mut on_disk) = (Vec::new(), Vec::new());
    slices(&library(), &pieces, &mut prefix, &mut on_disk)?;
    Some(Start {
        seq,
        prefix,
        on_disk,
        more: None,
        convert: None,
    })
}

/// Most keyframes one stretch of the recording spans: a viewer far back is sent the recording a
/// stretch at a time, each made into slices when it is reached ([`Resume`]), not hours of
/// slices held at once.
const STRETCH_KEYFRAMES: usize = 64;

/// From checkpoint `from` to the newest keyframe both the recording and the ring hold, or
/// [`STRETCH_KEYFRAMES`] on: the headers a reader starting there needs, the file runs, and the
/// keyframe unit where they end.
fn stretch(
    recorded: &Checkpoints,
    ring: &live::Ring,
    output: Output,
    from: usize,
) -> Option<(Bytes, Vec<Piece>, u64)> {
    let to = recorded
        .newest_where(|seq| ring.get(seq).is_some_and(|u| u.keyframe))
        .filter(|&to| to > from)?
        .min(from.saturating_add(STRETCH_KEYFRAMES));
    let psi = recorded.get(from)?.psi.clone();
    let seq = recorded.get(to)?.seq;
    Some((psi, recorded.pieces(from, to, output == Output::Ts), seq))
}

/// The runs as slices of the titles' bytes, at most `SLICE` each; `None` when a title is gone,
/// or holds less than a run says (never a run cut short: the reader would miss bytes), or its
/// file was found cut short under its mapping (`Title::readable`). `on_disk`, one per slice:
/// its file and offset when the title is mapped from disk (not held in memory).
pub(crate) fn slices(
    library: &Library,
    pieces: &[Piece],
    out: &mut Vec<Bytes>,
    on_disk: &mut Vec<Option<(std::sync::Arc<std::fs::File>, u64)>>,
) -> Option<()> {
    for p in pieces {
        let title = library.get(&p.file).filter(|t| t.readable())?;
        let len = title.data.len() as u64;
        let end = p.end.unwrap_or(len);
        if p.start > end || end > len {
            return None;
        }
        let (mut a, end) = (usize::try_from(p.start).ok()?, usize::try_from(end).ok()?);
        let file = title.file.as_ref().filter(|_| !title.cached);
        while a < end {
            let b = end.min(a + SLICE);
            out.push(title.data.slice(a..b));
            on_disk.push(file.map(|f| (f.clone(), a as u64)));
            a = b;
        }
    }
    Some(())
}

/// The mappings from disk of the recordings that hold `pieces` (a segment may span two files),
/// joined (`None`: all in memory, or gone), for a response made of their slices to carry
/// (`truncated::Mapped`): their pages are read in off the workers before they are sent, and a
/// file cut short under them is not sent as zeros.
pub(crate) fn mapping(library: &Library, pieces: &[Piece]) -> Option<crate::truncated::Mapped> {
    let mut files: Vec<&str> = pieces.iter().map(|p| &*p.file).collect();
    files.dedup();
    let mut mapped = files
        .into_iter()
        .filter_map(|f| library.get(f)?.mapped.clone());
    let first = mapped.next()?;
    Some(mapped.fold(first, crate::truncated::Mapped::with))
}

/// All of piece `p` as one `Bytes` of its title's mapping (`None`: the title is gone, or holds
/// less than `p` says, or its file was found cut short under its mapping).
pub(crate) fn whole(library: &Library, p: &Piece) -> Option<Bytes> {
    let title = library.get(&p.file).filter(|t| t.readable())?;
    let len = title.data.len() as u64;
    let end = p.end.unwrap_or(len);
    if p.start > end || end > len {
        return None;
    }
    let (a, b) = (usize::try_from(p.start).ok()?, usize::try_from(end).ok()?);
    Some(title.data.slice(a..b))
}

/// The live-clock time `t` names (`None`: before the live clock began, so before anything the
/// stream holds), and how many seconds before the live edge that is.
fn when(
    stream: &Stream,
    live: &Live,
    t: &str,
    now: Duration,
) -> Result<(Option<Duration>, f64), Error> {
    let bad = |why: String| Error::BadTime(media::Error::Timecode(why));
    let shown = crate::clip::Clip(t);
    // A timecode that counts frames (`01:09:14:28`) is read at the stream's frame rate, as
    // measured on its fMP4 output (where that exists: an RTMP source, or a TS source with an
    // fMP4, LL-HLS or DASH player).
    let rate = {
        let inner = stream.read();
        let m = inner.media.as_ref().filter(|m| m.tracks().0.is_some());
        m.and_then(|m| m.llhls.frame_rate())
    };
    if let Some(back) = t.strip_prefix('-') {
        let back = media::timecode::parse(back, rate).map_err(Error::BadTime)?;
        if back.ticks < 0 {
            return Err(bad(format!("'{shown}' is not a time")));
        }
        let secs = back.as_secs_f64().min(1e9);
        if secs <= 0.0 {
            return Err(bad(format!(
                "'{shown}' is not before the live edge: play the stream without t"
            )));
        }
        return Ok((now.checked_sub(Duration::from_secs_f64(secs)), secs));
    }
    let at = if let Some(ms) = ::live::llhls::wallclock::parse_rfc3339_ms(t) {
        match live.at_wall(ms) {
            Some(at) => at,
            None => {
                let epoch_ms = ::live::llhls::wallclock::ntp_to_unix_ms(live.ntp(now))
                    .unwrap_or(0)
                    .saturating_sub(ms);
                return Ok((None, epoch_ms as f64 / 1000.0));
            }
        }
    } else {
        let since = media::timecode::parse(t, rate).map_err(|e| {
            let frames = t.split([':', ';']).count() == 4;
            let why = match e {
                // Frames without a rate known: the parser's words (give seconds instead).
                media::Error::Timecode(why) if frames => why,
                _ => format!(
                    "'{shown}': t is -SECONDS or -HH:MM:SS before the live edge, a time from \
                     the stream's start (HH:MM:SS, HH:MM:SS:FF, seconds), or a wall-clock time \
                     (2026-11-26T14:15:00Z)"
                ),
            };
            bad(why)
        })?;
        if since.ticks < 0 {
            return Err(bad(format!("'{shown}' is not a time")));
        }
        stream.created + Duration::from_secs_f64(since.as_secs_f64().min(1e9))
    };
    if at >= now {
        return Err(bad(format!(
            "'{shown}' is not before the live edge: play the stream without t"
        )));
    }
    Ok((Some(at), (now - at).as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use live::record::checkpoints::Checkpoint;
    use std::time::Duration;

    #[test]
    fn a_viewer_far_back_gets_the_recording_a_stretch_of_keyframes_at_a_time() {
        // 200 keyframes written to one file, 1000 bytes apart, all still in the ring.
        let mut c = Checkpoints::new(1000);
        let mut ring = live::Ring::new(live::Limits {
            max_bytes: 1 << 30,
            max_age: Duration::from_secs(3600),
        });
        for k in 0..200u64 {
            let seq = ring.push_keyframe(Bytes::from(vec![0; 1000]), Vec::new(), Duration::ZERO);
            c.push(Checkpoint {
                seq,
                arrived: Duration::from_secs(k),
                file: "rec/a.ts".into(),
                offset: k * 1000,
                psi: Bytes::new(),
            });
        }
        let (_, pieces, seq) = stretch(&c, &ring, Output::Ts, 0).unwrap();
        assert_eq!(
            seq, STRETCH_KEYFRAMES as u64,
            "the first stretch ends 64 keyframes on"
        );
        assert_eq!(pieces.len(), 1);
        assert_eq!((pieces[0].start, pieces[0].end), (0, Some(64_000)));
        // The last stretch ends at the newest keyframe the ring holds.
        let (_, _, seq) = stretch(&c, &ring, Output::Ts, 150).unwrap();
        assert_eq!(seq, 199);
    }
}
