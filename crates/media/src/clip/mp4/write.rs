//! Writing a clip's `ftyp` and `moov`: the original boxes where they still hold (sample
//! descriptions, handlers, media headers with their durations patched) and new sample tables for
//! the samples kept, whose chunk offsets point into the clip's `mdat` (ranges of the title's
//! bytes, unchanged, one after another right after the head: [`Placement`]).

use super::select::Column;
use crate::cmaf::boxes::{bx, full, u32 as put32, u64 as put64};
use crate::error::{Error, Result};
use crate::mp4::{child, next_box, FourCC};
use crate::read::Reader;
use crate::time::MediaTime;
use std::ops::Range;

/// One track of the clip: its original `trak` body, its samples, and which of them are kept.
#[derive(Debug)]
pub(super) struct Kept<'a, 't> {
    pub trak: Reader<'a>,
    pub track: &'t super::MovieTrack,
    pub col: Column<'t>,
    pub samples: Range<usize>,
    /// Whether the original lists sync samples (`stss`); without one every sample is sync.
    pub has_stss: bool,
    /// How late the track's first sample is presented after the clip's start (movie ticks).
    pub delay: u64,
    /// How much of the track's first kept samples comes before the clip's start (track ticks):
    /// an AAC encoder's priming, which the original's edit list skipped and the clip's skips too.
    pub skip: i64,
}

impl Kept<'_, '_> {
    /// Media duration of the kept samples (track ticks): from the first one's decode time to the
    /// next sample's, or to the end of the last one (O(1): decode times only go up).
    fn duration(&self) -> u64 {
        let (a, b) = (self.samples.start, self.samples.end);
        let dts = &self.col.table.dts;
        if a >= b {
            return 0;
        }
        let end = match dts.get(b) {
            Some(&next) => next,
            None => dts[b - 1].saturating_add(self.col.duration(b - 1)),
        };
        end.saturating_sub(dts[a]).max(0) as u64
    }

    /// How long the clip shows the track (movie ticks): its empty edit, then its kept samples
    /// less those its edit list skips (what `tkhd` and `mvhd` say).
    fn movie_duration(&self, movie_scale: u32) -> u64 {
        let d = MediaTime::new(
            i64::try_from(self.duration()).unwrap_or(i64::MAX),
            self.col.timescale,
        );
        (d.rescale(movie_scale).max(0) as u64)
            .saturating_sub(self.skipped(movie_scale))
            .saturating_add(self.delay)
    }

    /// What its edit list skips of its kept samples (movie ticks).
    fn skipped(&self, movie_scale: u32) -> u64 {
        MediaTime::new(self.skip, self.col.timescale)
            .rescale(movie_scale)
            .max(0) as u64
    }
}

/// The children of a box body, in order, as (type, body).
pub(super) fn children<'a>(parent: &Reader<'a>) -> Result<Vec<(FourCC, &'a [u8])>> {
    let mut r = parent.clone();
    let mut out = Vec::new();
    while let Some(mut b) = next_box(&mut r, false)? {
        out.push((b.kind, b.body.rest()));
    }
    Ok(out)
}

/// A copy of a (version 0 or 1) full box body whose duration field is `duration`: at `v0_at`
/// (32 bits) or `v1_at` (64 bits). A 32-bit field saturates.
pub(super) fn with_duration(
    body: &[u8],
    v0_at: usize,
    v1_at: usize,
    duration: u64,
) -> Result<Vec<u8>> {
    let mut out = body.to_vec();
    let v1 = out.first() == Some(&1);
    let (at, len) = if v1 { (v1_at, 8) } else { (v0_at, 4) };
    let field = out
        .get_mut(at..at + len)
        .ok_or_else(|| Error::malformed("mp4 clip", "a header box is too short"))?;
    if v1 {
        field.copy_from_slice(&duration.to_be_bytes());
    } else {
        let d = u32::try_from(duration).unwrap_or(u32::MAX);
        field.copy_from_slice(&d.to_be_bytes());
    }
    Ok(out)
}

/// Where a clip's `mdat` body takes the title's bytes from: `ranges`, in file order, not
/// overlapping, one after another.
pub(super) struct Placement<'r> {
    ranges: &'r [Range<u64>],
    /// How much of the body comes before each range.
    before: Vec<u64>,
}

impl<'r> Placement<'r> {
    pub(super) fn new(ranges: &'r [Range<u64>]) -> Placement<'r> {
        let mut total = 0u64;
        let before = ranges
            .iter()
            .map(|r| {
                let at = total;
                total = total.saturating_add(r.end - r.start);
                at
            })
            .collect();
        Placement { ranges, before }
    }

    fn len(&self) -> u64 {
        match (self.ranges.last(), self.before.last()) {
            (Some(r), Some(b)) => b.saturating_add(r.end - r.start),
            _ => 0,
        }
    }

    /// Where the title's byte `offset` (inside one of the ranges) is in the body (a chunk of
    /// empty samples outside them all: within the body still).
    fn at(&self, offset: u64) -> u64 {
        let i = self
            .ranges
            .partition_point(|r| r.end <= offset)
            .min(self.ranges.len().saturating_sub(1));
        match (self.ranges.get(i), self.before.get(i)) {
            (Some(r), Some(b)) => b
                .saturating_add(offset.saturating_sub(r.start))
                .min(self.len()),
            _ => 0,
        }
    }
}

/// `ftyp`, `moov` and the `mdat` header of a clip whose `mdat` body is the title's bytes
/// `body`, written into `buf` (emptied first: a buffer used before keeps its memory).
pub(super) fn head(
    buf: Vec<u8>,
    ftyp: Option<&[u8]>,
    mvhd: &[u8],
    movie_scale: u32,
    tracks: &[Kept<'_, '_>],
    body: &Placement<'_>,
) -> Result<Vec<u8>> {
    let len = body.len();
    let mdat_header: u64 = if len + 8 > u64::from(u32::MAX) { 16 } else { 8 };
    // Chunk offsets depend on the head's length, which does not depend on their values (only on
    // 32 or 64 bits, decided from the largest possible offset): write with offsets from the
    // start of the mdat body, then add the head's length to each.
    let wide = |head: u64| head.saturating_add(len) > u64::from(u32::MAX);
    let narrow = moov(buf, ftyp, mvhd, movie_scale, tracks, body, false)?;
    let use_wide = wide(narrow.len() as u64 + mdat_header);
    let mut out = if use_wide {
        moov(Vec::new(), ftyp, mvhd, movie_scale, tracks, body, true)?
    } else {
        narrow
    };
    let base = out.len() as u64 + mdat_header;
    add_to_chunk_offsets(&mut out, base);
    debug_assert_eq!(out.len() as u64 + mdat_header, base);
    if mdat_header == 16 {
        put32(&mut out, 1);
        out.extend_from_slice(b"mdat");
        put64(&mut out, len + 16);
    } else {
        put32(&mut out, (len + 8) as u32);
        out.extend_from_slice(b"mdat");
    }
    Ok(out)
}

/// The boxes in `buf[from..to]` (ones this module wrote: 32-bit sizes) as (type, body range).
fn boxes(buf: &[u8], from: usize, to: usize) -> Vec<(FourCC, Range<usize>)> {
    let mut out = Vec::new();
    let mut at = from;
    while at + 8 <= to {
        let size = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        let kind = [buf[at + 4], buf[at + 5], buf[at + 6], buf[at + 7]];
        if size < 8 || at + size > to {
            break;
        }
        out.push((kind, at + 8..at + size));
        at += size;
    }
    out
}

/// Adds `base` to every chunk offset (`stco`, `co64`) of the `moov` in `head`.
fn add_to_chunk_offsets(head: &mut [u8], base: u64) {
    let path: [&FourCC; 5] = [b"moov", b"trak", b"mdia", b"minf", b"stbl"];
    let mut level: Vec<Range<usize>> = std::iter::once(0..head.len()).collect();
    for kind in path {
        level = level
            .into_iter()
            .flat_map(|r| boxes(head, r.start, r.end))
            .filter(|(k, _)| k == kind)
            .map(|(_, r)| r)
            .collect();
    }
    for stbl in level {
        for (kind, body) in boxes(head, stbl.start, stbl.end) {
            let width = match &kind {
                b"stco" => 4,
                b"co64" => 8,
                _ => continue,
            };
            // Version and flags, the entry count, then the entries.
            for at in (body.start + 8..body.end).step_by(width) {
                let Some(slot) = head.get_mut(at..at + width) else {
                    break;
                };
                if width == 4 {
                    let v = u32::from_be_bytes([slot[0], slot[1], slot[2], slot[3]]);
                    let v = u64::from(v).saturating_add(base).min(u64::from(u32::MAX)) as u32;
                    slot.copy_from_slice(&v.to_be_bytes());
                } else {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(slot);
                    let v = u64::from_be_bytes(b).saturating_add(base);
                    slot.copy_from_slice(&v.to_be_bytes());
                }
            }
        }
    }
}

/// A track's boxes, prepared (the fallible part: reading the original) before anything is
/// written, so that the whole head is written into one buffer.
struct Prepared<'a> {
    tkhd: Vec<u8>,
    /// `mdia`'s children: the original's, with `mdhd` patched and `minf`'s children listed.
    mdia: Vec<MdiaChild<'a>>,
    /// The original `stsd`.
    stsd: &'a [u8],
}

enum MdiaChild<'a> {
    Copy(FourCC, &'a [u8]),
    Mdhd(Vec<u8>),
    /// `minf`'s children, `None` where the new `stbl` goes.
    Minf(Vec<Option<(FourCC, &'a [u8])>>),
}

fn prepare<'a>(t: &Kept<'a, '_>, movie_scale: u32) -> Result<Prepared<'a>> {
    let tkhd = child(&t.trak, b"tkhd")?
        .ok_or_else(|| Error::malformed("mp4 trak", "no tkhd box"))?
        .rest();
    let tkhd = with_duration(tkhd, 20, 28, t.movie_duration(movie_scale))?;
    let mdia_box =
        child(&t.trak, b"mdia")?.ok_or_else(|| Error::malformed("mp4 trak", "no mdia box"))?;
    let mut mdia = Vec::new();
    let mut stsd = None;
    for (kind, body) in children(&mdia_box)? {
        mdia.push(match &kind {
            b"mdhd" => MdiaChild::Mdhd(with_duration(body, 16, 24, t.duration())?),
            b"minf" => {
                let mut minf = Vec::new();
                for (kind, body) in children(&Reader::new(body, 0, "mp4 minf"))? {
                    if &kind == b"stbl" {
                        let found = child(&Reader::new(body, 0, "mp4 stbl"), b"stsd")?
                            .ok_or_else(|| Error::malformed("mp4 stbl", "no stsd box"))?;
                        stsd = Some(found.clone().rest());
                        minf.push(None);
                    } else {
                        minf.push(Some((kind, body)));
                    }
                }
                MdiaChild::Minf(minf)
            }
            _ => MdiaChild::Copy(kind, body),
        });
    }
    let stsd = stsd.ok_or_else(|| Error::malformed("mp4 trak", "no stbl box"))?;
    Ok(Prepared { tkhd, mdia, stsd })
}

/// `ftyp` and `moov`, with chunk offsets from the start of the `mdat` body.
fn moov(
    mut out: Vec<u8>,
    ftyp: Option<&[u8]>,
    mvhd: &[u8],
    movie_scale: u32,
    tracks: &[Kept<'_, '_>],
    body: &Placement<'_>,
    wide: bool,
) -> Result<Vec<u8>> {
    let movie_duration = tracks
        .iter()
        .map(|t| t.movie_duration(movie_scale))
        .max()
        .unwrap_or(0);
    let mvhd = with_duration(mvhd, 16, 24, movie_duration)?;
    let prepared = tracks
        .iter()
        .map(|t| prepare(t, movie_scale))
        .collect::<Result<Vec<_>>>()?;
    // About 4 bytes per sample in stsz, 4 or 8 per chunk, a few per run of the other tables.
    let samples: usize = tracks.iter().map(|t| t.samples.len()).sum();
    out.clear();
    out.reserve(4096 + samples * 12);
    match ftyp {
        Some(f) => bx(&mut out, b"ftyp", |o| o.extend_from_slice(f)),
        None => bx(&mut out, b"ftyp", |o| {
            o.extend_from_slice(b"isom");
            put32(o, 0x200);
            o.extend_from_slice(b"isomiso2mp41");
        }),
    }
    bx(&mut out, b"moov", |o| {
        bx(o, b"mvhd", |o| o.extend_from_slice(&mvhd));
        for (t, p) in tracks.iter().zip(&prepared) {
            bx(o, b"trak", |o| {
                bx(o, b"tkhd", |o| o.extend_from_slice(&p.tkhd));
                edts(o, t, movie_scale);
                bx(o, b"mdia", |o| {
                    for c in &p.mdia {
                        match c {
                            MdiaChild::Copy(kind, body) => {
                                bx(o, kind, |o| o.extend_from_slice(body))
                            }
                            MdiaChild::Mdhd(body) => bx(o, b"mdhd", |o| o.extend_from_slice(body)),
                            MdiaChild::Minf(kids) => bx(o, b"minf", |o| {
                                for k in kids {
                                    match k {
                                        Some((kind, body)) => {
                                            bx(o, kind, |o| o.extend_from_slice(body))
                                        }
                                        None => stbl(o, t, p.stsd, body, wide),
                                    }
                                }
                            }),
                        }
                    }
                });
            });
        }
    });
    Ok(out)
}

/// The edit list: an empty edit for a track that starts after the clip, then the kept samples
/// from the first one's presentation (the keyframe the clip starts at). Samples that follow it
/// in decode order but are presented before it (the leading pictures of an open GOP: RASL
/// after an H.265 CRA, x264's `open-gop`) need the GOP before, which the clip does not have:
/// they stay hidden, and the clip shows from the keyframe, as its audio is placed.
fn edts(out: &mut Vec<u8>, t: &Kept<'_, '_>, movie_scale: u32) {
    let table = t.col.table;
    // The first kept sample's presentation, from its decode time (the clip's time 0).
    let first = table.cto.get(t.samples.start).copied().map_or(0, i64::from);
    let media_time = first.max(0).saturating_add(t.skip);
    let shown = t.movie_duration(movie_scale).saturating_sub(t.delay);
    let mut edits = Vec::new();
    if t.delay > 0 {
        edits.push((t.delay, -1i64));
    }
    edits.push((shown, media_time));
    let v1 = edits
        .iter()
        .any(|&(d, m)| d > u64::from(u32::MAX) || m > i64::from(i32::MAX));
    bx(out, b"edts", |o| {
        full(o, b"elst", u8::from(v1), 0, |o| {
            put32(o, edits.len() as u32);
            for (d, m) in edits {
                if v1 {
                    put64(o, d);
                    put64(o, m as u64);
                } else {
                    put32(o, d as u32);
                    put32(o, m as i32 as u32);
                }
                put32(o, 0x0001_0000); // media rate 1.0
            }
        });
    });
}

/// `stco` (32 bits) or `co64` (`wide`) entries: `n` chunk offsets in the clip's `mdat` body.
fn chunk_offsets(o: &mut Vec<u8>, wide: bool, n: usize, at: impl Iterator<Item = u64>) {
    if wide {
        for a in at {
            put64(o, a);
        }
    } else {
        put32s(o, n, at.map(|a| a as u32));
    }
}

/// Appends `n` big-endian u32 values (the first `n` of `values`) in one resize: the table
/// writers' inner loop, a copy per entry with no capacity check.
fn put32s(o: &mut Vec<u8>, n: usize, values: impl Iterator<Item = u32>) {
    let at = o.len();
    o.resize(at + 4 * n, 0);
    for (slot, v) in o[at..].chunks_exact_mut(4).zip(values) {
        slot.copy_from_slice(&v.to_be_bytes());
    }
}

/// A table of run-length entries: its entry count, then `entry(run length, value)` per run of
/// equal values, written as the runs close (no list of them is made). Returns the values seen.
fn runs<T: PartialEq + Copy>(
    o: &mut Vec<u8>,
    values: impl Iterator<Item = T>,
    mut entry: impl FnMut(&mut Vec<u8>, u32, T),
) -> u32 {
    let at = o.len();
    put32(o, 0);
    let (mut count, mut seen) = (0u32, 0u32);
    let mut run: Option<(u32, T)> = None;
    for v in values {
        seen += 1;
        match &mut run {
            Some((n, last)) if *last == v => *n += 1,
            _ => {
                if let Some((n, last)) = run.replace((1, v)) {
                    entry(o, n, last);
                    count += 1;
                }
            }
        }
    }
    if let Some((n, last)) = run {
        entry(o, n, last);
        count += 1;
    }
    o[at..at + 4].copy_from_slice(&count.to_be_bytes());
    seen
}

fn stbl(out: &mut Vec<u8>, t: &Kept<'_, '_>, stsd: &[u8], body: &Placement<'_>, wide: bool) {
    let table = t.col.table;
    let range = t.samples.clone();
    let count = range.len();
    let (dts, cto) = (&table.dts[range.clone()], &table.cto[range.clone()]);
    let size = &table.size[range.clone()];
    let facts = t.col.facts;
    bx(out, b"stbl", |o| {
        bx(o, b"stsd", |o| o.extend_from_slice(stsd));
        // Each sample's duration: to the next one's decode time (the last: `Column::duration`).
        let last = u32::try_from(t.col.duration(range.end.saturating_sub(1))).unwrap_or(u32::MAX);
        let durations = dts
            .windows(2)
            .map(|w| u32::try_from(w[1].saturating_sub(w[0]).max(0)).unwrap_or(u32::MAX))
            .chain((count > 0).then_some(last));
        full(o, b"stts", 0, 0, |o| {
            runs(o, durations, |o, n, d| {
                put32(o, n);
                put32(o, d);
            });
        });
        let (shifted, negative) = cto
            .iter()
            .fold((false, false), |(s, n), &c| (s || c != 0, n || c < 0));
        if shifted {
            full(o, b"ctts", u8::from(negative), 0, |o| {
                runs(o, cto.iter().copied(), |o, n, c| {
                    put32(o, n);
                    put32(o, c as u32);
                });
            });
        }
        if t.has_stss {
            let sync = &facts.sync;
            let a = sync.partition_point(|&i| i < range.start);
            let b = sync.partition_point(|&i| i < range.end);
            full(o, b"stss", 0, 0, |o| {
                put32(o, (b - a) as u32);
                let numbers = sync[a..b].iter().map(|&i| (i - range.start + 1) as u32);
                put32s(o, b - a, numbers);
            });
        }
        full(o, b"stsz", 0, 0, |o| {
            put32(o, 0);
            put32(o, count as u32);
            put32s(o, count, size.iter().copied());
        });
        // Chunks: runs of samples that follow each other in the file (the track's, found once,
        // cut at the first kept sample). Their lengths, from one start to the next.
        let (a, b) = (
            facts.chunks.partition_point(|&i| i <= range.start),
            facts.chunks.partition_point(|&i| i < range.end),
        );
        let b = b.max(a);
        let chunk_starts =
            || std::iter::once(range.start).chain(facts.chunks[a..b].iter().copied());
        let mut starts = chunk_starts().chain(std::iter::once(range.end)).peekable();
        let lengths = std::iter::from_fn(|| {
            let a = starts.next()?;
            let b = *starts.peek()?;
            Some((b - a) as u32)
        });
        let mut first = 1u32;
        let mut chunks = 0;
        full(o, b"stsc", 0, 0, |o| {
            chunks = runs(o, lengths, |o, n, per| {
                put32(o, first);
                put32(o, per);
                put32(o, 1); // sample description index
                first += n;
            }) as usize;
        });
        let kind = if wide { b"co64" } else { b"stco" };
        full(o, kind, 0, 0, |o| {
            put32(o, chunks as u32);
            let offsets = chunk_starts().map(|i| table.offset[i]);
            match body.ranges {
                // One range (an interleaved title): the plain subtraction, in the loop.
                [one] => {
                    let len = one.end - one.start;
                    let at = offsets.map(|a| (a - one.start.min(a)).min(len));
                    chunk_offsets(o, wide, chunks, at)
                }
                _ => chunk_offsets(o, wide, chunks, offsets.map(|a| body.at(a))),
            }
        });
    });
}
