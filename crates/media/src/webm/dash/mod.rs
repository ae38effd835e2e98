//! A WebM title laid out for DASH, as MSE's WebM byte stream format reads it: per track an
//! initialization segment (the title's EBML header, a Segment of unknown size, its Info, and a
//! Tracks element holding that track alone) and media segments of Clusters, each a written
//! Cluster head (ID, size, Timecode) followed by the title's own bytes of that track's blocks.
//! No block is copied: a media segment is a few written heads and slices of the title.
//!
//! ```text
//! title:    ... Cluster[Timecode | V0(key) A0 A1 V1 A2 ...] Cluster[Timecode | ...] ...
//! video n:  Cluster'[Timecode | V0 V1 ...] ...        (V0, V1, A0, ...: the title's bytes)
//! audio n:  Cluster'[Timecode | A0 A1 A2 ...] ...
//! ```
//! Segments begin at the lead track's keyframes (the first video track; for audio alone, the
//! first track) at least `target` apart. Every block goes to the segment whose span holds its
//! time, so the tracks' segments cover the same time. Cluster and block timestamps stay the
//! title's (block times are relative to their cluster's, which the written head repeats).

use super::{
    body, children, doc_type, element, parse_track, put, put_head, put_uint, uint, vint, BLOCK,
    BLOCK_GROUP, CLUSTER, INFO, REFERENCE_BLOCK, SEGMENT, SEGMENT_LEVEL, SIMPLE_BLOCK, TIMECODE,
    TIMECODE_SCALE, TRACKS, TRACK_ENTRY,
};
use crate::error::{Error, Result};
use crate::package::Seg;
use crate::time::MediaTime;
use std::ops::Range;

/// At most this many blocks are laid out (24 bytes each): a bigger title is not packaged.
pub const MAX_BLOCKS: usize = 1 << 24;
/// At most this many tracks.
const MAX_TRACKS: usize = 64;

/// One track of the title.
#[derive(Debug, Clone)]
pub struct Track {
    pub number: u64,
    pub video: bool,
    /// The codecs parameter of MSE and DASH (`vp9`, `vp8`, `opus`, `vorbis`).
    pub codecs: &'static str,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub sample_rate: Option<u32>,
    /// Bytes of its blocks in the title.
    pub bytes: u64,
    init: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Block {
    /// Title offset of the block element (SimpleBlock or BlockGroup) and its length.
    at: u64,
    len: u32,
    track: u16,
    key: bool,
    /// Cluster time + the block's relative time, in ticks of the timecode scale.
    time: i64,
}

#[derive(Debug, Clone)]
struct Cluster {
    time: u64,
    blocks: Range<usize>,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Layout {
    pub tracks: Vec<Track>,
    clusters: Vec<Cluster>,
    blocks: Vec<Block>,
    /// Nanoseconds per tick.
    scale: u64,
    /// Each segment's first tick (increasing), and the clusters its blocks lie in.
    cuts: Vec<i64>,
    spans: Vec<Range<usize>>,
    /// Where the last segment ends, in ticks.
    end: i64,
}

/// A piece of a media segment: written bytes, or a range of the title's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    Written(Vec<u8>),
    Title(Range<u64>),
}

fn codecs(id: &str) -> Option<&'static str> {
    Some(match id {
        "V_VP9" => "vp9",
        "V_VP8" => "vp8",
        "A_OPUS" => "opus",
        "A_VORBIS" => "vorbis",
        _ => return None,
    })
}

impl Layout {
    /// Lays out a WebM title held in memory, its segments at least `target` long where the
    /// keyframes allow.
    pub fn scan(data: &[u8], target: MediaTime) -> Result<Layout> {
        if doc_type(data) != Some(b"webm") {
            return Err(Error::malformed(
                "webm dash",
                "DASH is defined for WebM, not other Matroska files",
            ));
        }
        let (header_end, seg) = super::segment(data)?;
        let seg_end = seg.end.unwrap_or(data.len()).min(data.len());
        let mut l = Layout {
            tracks: Vec::new(),
            clusters: Vec::new(),
            blocks: Vec::new(),
            scale: 1_000_000,
            cuts: Vec::new(),
            spans: Vec::new(),
            end: 0,
        };
        let mut info = None;
        let mut duration = None;
        let mut entries: Vec<Range<usize>> = Vec::new();
        let mut pos = seg.data;
        while pos < seg_end {
            let el = match element(data, pos, seg_end) {
                Ok(el) => el,
                Err(Error::Truncated { .. }) => break,
                Err(e) => return Err(e),
            };
            let end = el.end.unwrap_or(seg_end).min(seg_end);
            match el.id {
                INFO => {
                    info = Some(el.start..end);
                    children(data, el.data, end, |c| {
                        match c.id {
                            TIMECODE_SCALE => l.scale = uint(body(data, c)).max(1),
                            super::DURATION => duration = super::float(body(data, c)),
                            _ => {}
                        }
                        Ok(())
                    })?;
                }
                TRACKS => children(data, el.data, end, |c| {
                    if c.id != TRACK_ENTRY {
                        return Ok(());
                    }
                    if l.tracks.len() == MAX_TRACKS {
                        return Err(Error::malformed("webm dash", "more than 64 tracks"));
                    }
                    let t = parse_track(data, c)?;
                    let Some(codecs) = codecs(&t.codec) else {
                        return Err(Error::malformed(
                            "webm dash",
                            format!(
                                "DASH of WebM carries VP8, VP9, Opus and Vorbis; track {} is {}",
                                t.number, t.codec
                            ),
                        ));
                    };
                    l.tracks.push(Track {
                        number: t.number,
                        video: t.kind == 1,
                        codecs,
                        width: t.width,
                        height: t.height,
                        sample_rate: t.sample_rate,
                        bytes: 0,
                        init: Vec::new(),
                    });
                    entries.push(c.start..c.end.unwrap_or(c.data).min(end));
                    Ok(())
                })?,
                CLUSTER => {
                    let next = l.cluster(data, el, seg_end)?;
                    if el.end.is_none() {
                        // Unknown size: it ends where its blocks end.
                        if next <= el.data {
                            break;
                        }
                        pos = next;
                        continue;
                    }
                }
                _ => {}
            }
            if el.end.is_none() {
                break;
            }
            pos = end;
        }
        let info = info.ok_or_else(|| Error::malformed("webm dash", "no Info"))?;
        if l.tracks.is_empty() {
            return Err(Error::malformed("webm dash", "no tracks"));
        }
        for (t, entry) in l.tracks.iter_mut().zip(entries) {
            let mut init = data[..header_end].to_vec();
            init.extend_from_slice(&SEGMENT.to_be_bytes());
            init.extend_from_slice(&[0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
            init.extend_from_slice(&data[info.clone()]);
            put(&mut init, TRACKS, &data[entry]);
            t.init = init;
        }
        let duration = duration.map_or(0, |d| d.clamp(0.0, 1e15) as i64);
        l.plan(target, duration)?;
        Ok(l)
    }

    /// Takes one cluster's blocks; returns where the cluster ends (for unknown-size clusters:
    /// at the next segment-level element).
    fn cluster(&mut self, data: &[u8], c: super::El, limit: usize) -> Result<usize> {
        let end = c.end.unwrap_or(limit).min(limit);
        let first = self.blocks.len();
        let mut time = 0u64;
        let mut pos = c.data;
        let mut stop = end;
        while pos < end {
            let Ok(el) = element(data, pos, end) else {
                stop = pos;
                break;
            };
            if c.end.is_none() && SEGMENT_LEVEL.contains(&el.id) {
                stop = pos;
                break;
            }
            let el_end = el.end.unwrap_or(end);
            if el_end > end {
                // A truncated last element: the cluster ends before it.
                stop = pos;
                break;
            }
            let block = match el.id {
                TIMECODE => {
                    time = uint(body(data, el));
                    None
                }
                SIMPLE_BLOCK => Some((el.data, el_end, None)),
                BLOCK_GROUP => {
                    let (mut b, mut referenced) = (None, false);
                    children(data, el.data, el_end, |g| {
                        match g.id {
                            BLOCK => b = Some((g.data, g.end.unwrap_or(g.data))),
                            REFERENCE_BLOCK => referenced = true,
                            _ => {}
                        }
                        Ok(())
                    })?;
                    b.map(|(s, e)| (s, e, Some(!referenced)))
                }
                _ => None,
            };
            if let Some((s, e, key)) = block {
                self.block(data, el.start..el_end, s, e, key, time)?;
            }
            pos = el_end;
        }
        self.clusters.push(Cluster {
            time,
            blocks: first..self.blocks.len(),
        });
        Ok(stop)
    }

    /// Takes a block element at `at` whose block header lies in `[s, e)`.
    fn block(
        &mut self,
        data: &[u8],
        at: Range<usize>,
        s: usize,
        e: usize,
        key: Option<bool>,
        cluster_time: u64,
    ) -> Result<()> {
        let (number, n, _) = vint(data, s, e, false)?;
        let Some(track) = self.tracks.iter().position(|t| t.number == number) else {
            return Ok(());
        };
        let h = s + n;
        if h + 3 > e {
            return Err(Error::malformed(
                "webm dash",
                "block shorter than its header",
            ));
        }
        if self.blocks.len() == MAX_BLOCKS {
            return Err(Error::malformed(
                "webm dash",
                "more than 16.7 million blocks: not packaged",
            ));
        }
        let len = u32::try_from(at.len())
            .map_err(|_| Error::malformed("webm dash", "a block of 4 GiB or more"))?;
        let rel = i64::from(i16::from_be_bytes([data[h], data[h + 1]]));
        self.tracks[track].bytes += u64::from(len);
        self.blocks.push(Block {
            at: at.start as u64,
            len,
            track: track as u16,
            key: key.unwrap_or(data[h + 2] & 0x80 != 0),
            time: (cluster_time.min(i64::MAX as u64) as i64).saturating_add(rel),
        });
        Ok(())
    }

    /// Cuts at the lead track's keyframes, `target` apart; `duration`: the title's, in ticks.
    fn plan(&mut self, target: MediaTime, duration: i64) -> Result<()> {
        let lead = self.tracks.iter().position(|t| t.video).unwrap_or(0) as u16;
        let target =
            (target.rescale(1_000_000_000) / self.scale.min(i64::MAX as u64) as i64).max(1);
        for b in &self.blocks {
            if b.track != lead || !b.key {
                continue;
            }
            match self.cuts.last() {
                Some(&c) if b.time.saturating_sub(c) < target => {}
                _ => self.cuts.push(b.time),
            }
        }
        if self.cuts.is_empty() {
            return Err(Error::malformed(
                "webm dash",
                "no keyframes to cut segments at",
            ));
        }
        let last = self.blocks.iter().map(|b| b.time).max().unwrap_or(0);
        self.end = duration.max(last.saturating_add(1));
        // (first, last + 1) cluster of each segment's blocks; none: (MAX, 0), made empty.
        let mut spans = vec![(usize::MAX, 0); self.cuts.len()];
        for (ci, c) in self.clusters.iter().enumerate() {
            for b in &self.blocks[c.blocks.clone()] {
                let s = &mut spans[seg_of(&self.cuts, b.time)];
                *s = (s.0.min(ci), s.1.max(ci + 1));
            }
        }
        self.spans = spans
            .into_iter()
            .map(|(a, b)| if a < b { a..b } else { 0..0 })
            .collect();
        Ok(())
    }

    /// The timescale of the segments' times (ticks per second).
    pub fn timescale(&self) -> u32 {
        match 1_000_000_000u64.checked_rem(self.scale) {
            Some(0) => (1_000_000_000 / self.scale) as u32,
            _ => 1_000_000_000,
        }
    }

    fn time(&self, ticks: i64) -> MediaTime {
        let ticks = if 1_000_000_000 % self.scale == 0 {
            ticks
        } else {
            ticks.saturating_mul(self.scale.min(i64::MAX as u64) as i64)
        };
        MediaTime::new(ticks, self.timescale())
    }

    /// The segments' times.
    pub fn segs(&self) -> Vec<Seg> {
        (0..self.cuts.len())
            .map(|n| {
                let (a, b) = (
                    self.cuts[n],
                    self.cuts.get(n + 1).copied().unwrap_or(self.end),
                );
                Seg {
                    start: self.time(a),
                    duration: self.time(b.saturating_sub(a).max(0)),
                }
            })
            .collect()
    }

    /// Track `track`'s initialization segment.
    pub fn init(&self, track: usize) -> Option<&[u8]> {
        self.tracks.get(track).map(|t| &t.init[..])
    }

    /// Track `track`'s media segment `n`: a Cluster head per cluster it draws on, each followed
    /// by the title's bytes of the track's blocks in that cluster (adjacent ones as one range).
    pub fn segment(&self, track: usize, n: usize) -> Option<Vec<Span>> {
        let span = self.spans.get(n)?.clone();
        if track >= self.tracks.len() {
            return None;
        }
        let mut out = Vec::new();
        for c in &self.clusters[span] {
            let mine = self.blocks[c.blocks.clone()]
                .iter()
                .filter(|b| usize::from(b.track) == track && seg_of(&self.cuts, b.time) == n);
            let size: u64 = mine.clone().map(|b| u64::from(b.len)).sum();
            if size == 0 {
                continue;
            }
            let mut head = Vec::with_capacity(32);
            put_head(&mut head, CLUSTER, TIMECODE_LEN + size);
            put_uint(&mut head, TIMECODE, c.time);
            out.push(Span::Written(head));
            for b in mine {
                let r = b.at..b.at + u64::from(b.len);
                match out.last_mut() {
                    Some(Span::Title(last)) if last.end == r.start => last.end = r.end,
                    _ => out.push(Span::Title(r)),
                }
            }
        }
        if out.is_empty() {
            // No block of this track in the segment's time: an empty cluster at its start.
            let mut head = Vec::with_capacity(32);
            put_head(&mut head, CLUSTER, TIMECODE_LEN);
            put_uint(&mut head, TIMECODE, self.cuts[n].max(0) as u64);
            out.push(Span::Written(head));
        }
        Some(out)
    }

    /// Bytes it holds.
    pub fn memory(&self) -> usize {
        self.blocks.len() * std::mem::size_of::<Block>()
            + self.clusters.len() * std::mem::size_of::<Cluster>()
            + self.cuts.len() * (8 + std::mem::size_of::<Range<usize>>())
            + self.tracks.iter().map(|t| t.init.len() + 64).sum::<usize>()
    }
}

/// A written Timecode element: ID, 8-byte size, 8-byte value.
const TIMECODE_LEN: u64 = 1 + 8 + 8;

/// The segment whose span holds `time` (before the first cut: the first).
fn seg_of(cuts: &[i64], time: i64) -> usize {
    cuts.partition_point(|&c| c <= time).saturating_sub(1)
}

#[cfg(test)]
mod tests;
