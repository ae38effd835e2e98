//! A movie as CMAF: an init segment (`moov` with empty sample tables and `mvex`) and media
//! segments of whole GOPs, each a `moof` written here followed by the title's own sample bytes.
//!
//! ```text
//! segment: moof (mfhd, traf per track (tfhd, tfdt, trun per chunk run)) | mdat header | runs
//! ```
//! The samples stay where the title has them: a chunk run (samples of one track that follow each
//! other in the file) is one `trun` whose data offset points at that run's place in the `mdat`,
//! and the `mdat`'s body is the runs in file order, which in an interleaved file is one range of
//! the title. The caller sends the head, then each body range as a slice of the title.

use super::select::{self, Span};
use super::write::{children, with_duration};
use super::{keep, Movie};
use crate::cmaf::boxes::{bx, full, u32 as put32, u64 as put64};
use crate::error::{Error, Result};
use crate::read::Reader;
use crate::time::MediaTime;
use std::ops::Range;

/// `tfhd` flags: the base of data offsets is the `moof`.
const DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// `trun` flags: data offset, then per sample duration, size, flags, composition offset.
const TRUN_FLAGS: u32 = 0x0001 | 0x0100 | 0x0200 | 0x0400 | 0x0800;
const SYNC: u32 = 0x0200_0000;
const NON_SYNC: u32 = 0x0101_0000;

/// A media segment: the head to send, then the title's bytes `body`, range after range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub head: Vec<u8>,
    pub body: Vec<Range<u64>>,
}

impl Segment {
    pub fn len(&self) -> u64 {
        self.head.len() as u64 + self.body.iter().map(|r| r.end - r.start).sum::<u64>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a segment sits on the title's timeline (from the lead track's first frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub(crate) span: Span,
    pub start: MediaTime,
    pub duration: MediaTime,
}

/// The movie cut into segments of whole GOPs of at least `target` (where the GOPs allow).
pub fn plan(movie: &Movie, target: MediaTime) -> Vec<Slot> {
    let lead = movie.tracks[movie.lead].column();
    let first = lead.first();
    let scale = lead.timescale;
    select::spans(&lead, target)
        .into_iter()
        // A segment wholly hidden by the edit list is no segment (the next begins at a
        // keyframe at or before the title's start).
        .filter(|span| span.end > first)
        .map(|span| {
            // (A first segment that begins with frames the edit list hides before the title's
            // start lasts what it shows, from the title's start.)
            let shown = span.start.max(first);
            Slot {
                start: MediaTime::new(shown - first, scale),
                duration: MediaTime::new(span.end - shown, scale),
                span,
            }
        })
        .collect()
}

/// The init segment of all the movie's tracks (`track = None`: muxed, for HLS) or of one.
pub fn init(movie: &Movie, track: Option<usize>) -> Result<Vec<u8>> {
    let chosen: Vec<usize> = match track {
        Some(t) if t < movie.tracks.len() => vec![t],
        Some(t) => return Err(Error::malformed("cmaf init", format!("no track {t}"))),
        None => (0..movie.tracks.len()).collect(),
    };
    let mvhd = with_duration(&movie.mvhd, 16, 24, 0)?;
    let mut traks = Vec::new();
    for &i in &chosen {
        traks.push(init_trak(&movie.tracks[i].trak())?);
    }
    let mut out = Vec::new();
    bx(&mut out, b"ftyp", |o| {
        o.extend_from_slice(b"iso6");
        put32(o, 0);
        o.extend_from_slice(b"iso6mp41dash");
    });
    bx(&mut out, b"moov", |o| {
        bx(o, b"mvhd", |o| o.extend_from_slice(&mvhd));
        for t in &traks {
            o.extend_from_slice(t);
        }
        bx(o, b"mvex", |o| {
            for &i in &chosen {
                full(o, b"trex", 0, 0, |o| {
                    put32(o, movie.tracks[i].id);
                    put32(o, 1); // sample description index
                    put32(o, 0);
                    put32(o, 0);
                    put32(o, 0);
                });
            }
        });
    });
    Ok(out)
}

/// A `trak` for an init segment: the original boxes with durations 0 and empty sample tables.
fn init_trak(trak: &Reader<'_>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut body = Vec::new();
    for (kind, b) in children(trak)? {
        match &kind {
            b"tkhd" => {
                let d = with_duration(b, 20, 28, 0)?;
                bx(&mut body, b"tkhd", |o| o.extend_from_slice(&d));
            }
            b"edts" => bx(&mut body, b"edts", |o| o.extend_from_slice(b)),
            b"mdia" => {
                let m = init_mdia(b)?;
                bx(&mut body, b"mdia", |o| o.extend_from_slice(&m));
            }
            _ => {}
        }
    }
    bx(&mut out, b"trak", |o| o.extend_from_slice(&body));
    Ok(out)
}

fn init_mdia(mdia: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (kind, b) in children(&Reader::new(mdia, 0, "mp4 mdia"))? {
        match &kind {
            b"mdhd" => {
                let d = with_duration(b, 16, 24, 0)?;
                bx(&mut out, b"mdhd", |o| o.extend_from_slice(&d));
            }
            b"minf" => {
                let mut minf = Vec::new();
                for (kind, b) in children(&Reader::new(b, 0, "mp4 minf"))? {
                    if &kind != b"stbl" {
                        bx(&mut minf, &kind, |o| o.extend_from_slice(b));
                        continue;
                    }
                    let stbl = Reader::new(b, 0, "mp4 stbl");
                    let stsd = crate::mp4::child(&stbl, b"stsd")?
                        .ok_or_else(|| Error::malformed("mp4 stbl", "no stsd box"))?
                        .rest();
                    bx(&mut minf, b"stbl", |o| {
                        bx(o, b"stsd", |o| o.extend_from_slice(stsd));
                        for kind in [b"stts", b"stsc", b"stco"] {
                            full(o, kind, 0, 0, |o| put32(o, 0));
                        }
                        full(o, b"stsz", 0, 0, |o| {
                            put32(o, 0);
                            put32(o, 0);
                        });
                    });
                }
                bx(&mut out, b"minf", |o| o.extend_from_slice(&minf));
            }
            _ => bx(&mut out, &kind, |o| o.extend_from_slice(b)),
        }
    }
    Ok(out)
}

/// One chunk run: a track's samples `samples` that lie one after another at `offset`.
struct ChunkRun {
    kept: usize,
    samples: Range<usize>,
    offset: u64,
    len: u64,
}

/// Media segment `sequence` (from 1) for `slot`: all tracks (`track = None`) or one.
pub fn segment(movie: &Movie, slot: &Slot, sequence: u32, track: Option<usize>) -> Result<Segment> {
    let mut kept = keep(movie, &slot.span);
    if let Some(t) = track {
        let id = movie
            .tracks
            .get(t)
            .ok_or_else(|| Error::malformed("cmaf segment", format!("no track {t}")))?
            .id;
        kept.retain(|k| k.track.id == id);
    }
    let mut runs: Vec<ChunkRun> = Vec::new();
    for (k, kt) in kept.iter().enumerate() {
        let table = kt.col.table;
        for i in kt.samples.clone() {
            let (o, s) = (table.offset[i], u64::from(table.size[i]));
            match runs.last_mut() {
                Some(r) if r.kept == k && r.offset + r.len == o => {
                    r.samples.end = i + 1;
                    r.len += s;
                }
                _ => runs.push(ChunkRun {
                    kept: k,
                    samples: i..i + 1,
                    offset: o,
                    len: s,
                }),
            }
        }
    }
    runs.sort_by_key(|r| r.offset);
    // Samples that share bytes (crafted tables) would make a segment larger than the title.
    if runs
        .windows(2)
        .any(|w| w[0].offset.saturating_add(w[0].len) > w[1].offset)
    {
        return Err(Error::malformed(
            "cmaf segment",
            "samples overlap in the file",
        ));
    }
    // Each run's place in the mdat body.
    let mut at = Vec::with_capacity(runs.len());
    let mut total = 0u64;
    for r in &runs {
        at.push(total);
        total += r.len;
    }
    let wide = total + 8 > u64::from(u32::MAX);
    let mut head = Vec::new();
    let mut slots = Vec::new();
    bx(&mut head, b"moof", |o| {
        full(o, b"mfhd", 0, 0, |o| put32(o, sequence));
        for (k, kt) in kept.iter().enumerate() {
            let table = kt.col.table;
            bx(o, b"traf", |o| {
                full(o, b"tfhd", 0, DEFAULT_BASE_IS_MOOF, |o| {
                    put32(o, kt.track.id)
                });
                let base = table.dts[kt.samples.start].max(0) as u64;
                full(o, b"tfdt", 1, 0, |o| put64(o, base));
                for (r, place) in runs.iter().zip(&at).filter(|(r, _)| r.kept == k) {
                    full(o, b"trun", 1, TRUN_FLAGS, |o| {
                        put32(o, r.samples.len() as u32);
                        slots.push((o.len(), *place));
                        put32(o, 0); // data offset, patched below
                        for i in r.samples.clone() {
                            put32(o, u32::try_from(kt.col.duration(i)).unwrap_or(u32::MAX));
                            put32(o, table.size[i]);
                            put32(o, if table.keyframe[i] { SYNC } else { NON_SYNC });
                            o.extend_from_slice(&table.cto[i].to_be_bytes());
                        }
                    });
                }
            });
        }
    });
    let mdat_header = if wide { 16 } else { 8 };
    let moof = head.len() as u64;
    for (pos, place) in slots {
        let offset = i32::try_from(moof + mdat_header + place)
            .map_err(|_| Error::malformed("cmaf segment", "a segment over 2 GiB"))?;
        head[pos..pos + 4].copy_from_slice(&offset.to_be_bytes());
    }
    if wide {
        put32(&mut head, 1);
        head.extend_from_slice(b"mdat");
        put64(&mut head, total + 16);
    } else {
        put32(&mut head, (total + 8) as u32);
        head.extend_from_slice(b"mdat");
    }
    let mut body: Vec<Range<u64>> = Vec::new();
    for r in &runs {
        match body.last_mut() {
            Some(b) if b.end == r.offset => b.end += r.len,
            _ => body.push(r.offset..r.offset + r.len),
        }
    }
    Ok(Segment { head, body })
}
