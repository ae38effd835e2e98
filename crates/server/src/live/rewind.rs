//! The shell of an `.flv` or `.mp4` DVR viewer that rewinds past its ring into TS, or (`.flv`
//! and `.ts` of a stream recorded as fMP4) into fMP4 (`live::rewind`; a `.ts` one converts for
//! as long as it watches, it never joins its ring): it is sent the recording's stretch
//! (and the next ones while that ring no longer holds where they end, as a `.ts` DVR viewer is),
//! then that ring, each converted to its format (TS on the stream's FLV clock; fMP4 carries the
//! FLV times), until its ring goes on with exactly what comes next. The
//! caller then follows that ring from that unit (`live::Viewer::after`) like any viewer; over
//! HTTP/1.1 (follow.rs) and HTTP/2 (frames.rs), each with its own way to send.

use super::dvr::Start;
use super::{Live, Output, Stream};
use bytes::Bytes;
use live::rewind::{FlvRewind, Mp4Rewind, Rewind, TsRewind};
use live::{Step, Viewer};
use std::sync::Arc;
use tokio::sync::watch;

/// Where a viewer's bytes go: `false` when the viewer is gone (HTTP/1.1: a write to its socket;
/// HTTP/2: frames to its body).
pub(crate) trait Sink {
    fn send(&mut self, parts: Vec<Bytes>) -> impl std::future::Future<Output = bool> + Send;
    /// Completes when the viewer has gone (closed its connection, or sent what a viewer may
    /// not), for the waits between writes.
    fn gone(&mut self) -> impl std::future::Future<Output = ()> + Send;
}

/// How a converting DVR viewer's catch-up ended.
pub(crate) enum Caught {
    /// Go on in the viewer's ring at this unit.
    Up(u64),
    /// The viewer is done: the stream ended, it was dropped or fell behind too often, the
    /// server stops, or a write failed.
    Done,
}

/// Sends `start` (the recording's bytes, then the ring of `start.convert` from `start.seq`)
/// converted to `output` (FLV, fMP4, or TS from fMP4) through `to`, until the ring of `output`
/// can take over (never, for TS: `Caught::Done` when the viewer or the stream ends).
pub(crate) async fn catch_up(
    stream: &Arc<Stream>,
    live: &Live,
    output: Output,
    mut start: Start,
    to: &mut impl Sink,
    drops: &mut watch::Receiver<u64>,
    shutdown: &mut watch::Receiver<bool>,
) -> Caught {
    // What it converts: TS, or the fMP4 of a stream recorded as fMP4 (for `.flv` and `.ts`).
    let from = start.convert.unwrap_or(Output::Ts);
    let mut rewind = if from == Output::Mp4 && output == Output::Flv {
        // Made of the FLV tags, with their times: no clock to wait for.
        Rewind::Flv(Box::new(FlvRewind::of_fmp4()))
    } else {
        let Some(clock) = clock(stream, live, drops, shutdown).await else {
            return Caught::Done;
        };
        match (from, output) {
            (Output::Mp4, _) => Rewind::Ts(Box::new(TsRewind::of_fmp4(clock))),
            (_, Output::Mp4) => {
                let inner = stream.read();
                let (tracks, anchor) = match inner.media.as_ref() {
                    Some(m) => (m.tracks(), m.anchor()),
                    None => Default::default(),
                };
                drop(inner);
                Rewind::Mp4(Box::new(Mp4Rewind::new(clock, tracks, anchor)))
            }
            _ => Rewind::Flv(Box::new(FlvRewind::new(clock))),
        }
    };
    let _converting = Converting::new(&stream.stats);
    let index = |r: &mut Rewind| {
        if let Some(ring) = stream.read().ring(output) {
            r.index(ring);
        }
    };
    // The recording, a stretch at a time.
    let continuing = !start.prefix.is_empty();
    loop {
        rewind.realign();
        for (i, p) in std::mem::take(&mut start.prefix).into_iter().enumerate() {
            start.read_in(i, p.len()).await;
            index(&mut rewind);
            let mut out = Vec::new();
            let joined = rewind.feed(&p, &mut out);
            if !out.is_empty() && !to.send(out).await {
                return Caught::Done;
            }
            if let Some(seq) = joined {
                return joined_at(stream, output, seq);
            }
        }
        if drops.has_changed().unwrap_or(true) || *shutdown.borrow() {
            return Caught::Done;
        }
        let more = start.more.take();
        match more.as_ref().and_then(|m| m.next(start.seq)) {
            Some(next) if continuing && !next.prefix.is_empty() => {
                start = Start { more, ..next };
            }
            _ => break,
        }
    }
    // Then the ring it converts.
    rewind.realign();
    let mut ts = if continuing {
        Viewer::continuing_at(start.seq)
    } else {
        Viewer::starting_at(start.seq)
    };
    let policy = live.config.viewer;
    let mut rx = stream.subscribe(from);
    loop {
        if drops.has_changed().unwrap_or(true) {
            return Caught::Done;
        }
        rx.borrow_and_update();
        let now = live.now();
        let (step, ended) = {
            let inner = stream.read();
            if let Some(ring) = inner.ring(output) {
                rewind.index(ring);
            }
            let Some(ring) = inner.ring(from) else {
                return Caught::Done;
            };
            (ts.step(ring, now, &policy), inner.lifecycle.is_ended())
        };
        match step {
            Step::Send { parts, skipped } => {
                if skipped {
                    stream
                        .stats
                        .skips
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    super::follow::log_skip(stream, now, ts.total_skips);
                }
                let mut out = Vec::new();
                let joined = parts.iter().find_map(|p| rewind.feed(p, &mut out));
                if !out.is_empty() && !to.send(out).await {
                    return Caught::Done;
                }
                if let Some(seq) = joined {
                    return joined_at(stream, output, seq);
                }
            }
            Step::Disconnect => {
                stream
                    .stats
                    .slow_disconnects
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Caught::Done;
            }
            Step::Wait if ended => return Caught::Done,
            Step::Wait => {
                tokio::select! {
                    r = rx.changed() => if r.is_err() { return Caught::Done },
                    _ = drops.changed() => return Caught::Done,
                    _ = shutdown.changed() => return Caught::Done,
                    () = to.gone() => return Caught::Done,
                }
            }
        }
    }
}

/// The conversion joined `output`'s ring: go on there at `seq` (counted, and logged).
fn joined_at(stream: &Stream, output: Output, seq: u64) -> Caught {
    tracing::debug!(stream = %stream.name, seq, ?output, "DVR viewer joined its ring");
    stream
        .stats
        .dvr_joins
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Caught::Up(seq)
}

/// The stream's FLV clock (fMP4 is made from the FLV tags, on the same clock); a TS source's FLV
/// output begins with its first FLV or fMP4 viewer (this one, maybe), and has a clock once its
/// first frame is converted. `None`: none came within the
/// stall timeout, or the viewer is done.
async fn clock(
    stream: &Stream,
    live: &Live,
    drops: &mut watch::Receiver<u64>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<media::flv::Clock> {
    let mut rx = stream.subscribe(Output::Flv);
    let deadline = tokio::time::Instant::now() + live.config.stall_timeout;
    loop {
        rx.borrow_and_update();
        if let Some(c) = stream.read().media.as_ref().and_then(|m| m.flv_clock) {
            return Some(c);
        }
        tokio::select! {
            r = rx.changed() => r.ok()?,
            _ = drops.changed() => return None,
            _ = shutdown.changed() => return None,
            () = tokio::time::sleep_until(deadline) => {
                tracing::info!(stream = %stream.name, "no FLV output to rewind on; viewer ended");
                return None;
            }
        }
    }
}

/// Counts a converting DVR viewer while its conversion lives.
struct Converting<'a>(&'a super::Stats);

impl<'a> Converting<'a> {
    fn new(stats: &'a super::Stats) -> Self {
        stats
            .dvr_converting
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Converting(stats)
    }
}

impl Drop for Converting<'_> {
    fn drop(&mut self) {
        self.0
            .dvr_converting
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
