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
    body, children, doc_type, element, parse_track, put, put_head, put_uint, uint, vint,
    BLOCK_GROUP, CLUSTER, INFO, SEGMENT, SEGMENT_LEVEL, SIMPLE_BLOCK, TIMECODE, TIMECODE_SCALE,
    TRACKS, TRACK_ENTRY,
};
use crate::error::{Error, Result};
use crate::package::Seg;
use crate::time::MediaTime;
use std::ops::Range;

/// At most this many blocks are laid out (36 bytes each with their order): a bigger title (more
/// than 24 hours of 30 fps video and 50 audio packets a second) is not packaged.
pub const MAX_BLOCKS: usize = 1 << 23;
/// At most this many tracks are listed.
const MAX_TRACKS: usize = 16;

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
    /// Cluster time + the block's relative time, in ticks of the timecode scale.
    time: i64,
    len: u32,
    /// Its cluster (an index into `Layout::clusters`) and segment.
    cluster: u32,
    seg: u32,
    track: u16,
    key: bool,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Layout {
    pub tracks: Vec<Track>,
    /// The Timecode of each cluster that holds a block of a listed track.
    clusters: Vec<u64>,
    blocks: Vec<Block>,
    /// Block indices ordered by (segment, track), in file order within each.
    order: Vec<u32>,
    /// Nanoseconds per tick.
    scale: u64,
    /// Each segment's first tick (increasing).
    cuts: Vec<i64>,
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

fn malformed(why: impl Into<String>) -> Error {
    Error::malformed("webm dash", why.into())
}

impl Layout {
    /// Lays out a WebM title held in memory, its segments at least `target` long where the
    /// keyframes allow. Listed: the first video track and the Opus and Vorbis tracks; other
    /// tracks (subtitles, a second video) are left out; a first video track in another codec
    /// (AV1, H.264) is refused, with the reason.
    pub fn scan(data: &[u8], target: MediaTime) -> Result<Layout> {
        if doc_type(data) != Some(b"webm") {
            return Err(malformed(
                "DASH is defined for WebM, not other Matroska files",
            ));
        }
        let (header_end, seg) = super::segment(data)?;
        let seg_end = seg.end.unwrap_or(data.len()).min(data.len());
        let mut l = Layout {
            tracks: Vec::new(),
            clusters: Vec::new(),
            blocks: Vec::new(),
            order: Vec::new(),
            scale: 1_000_000,
            cuts: Vec::new(),
            end: 0,
        };
        let mut info = None;
        let mut duration = None;
        let mut entries: Vec<Range<usize>> = Vec::new();
        let mut numbers: Vec<u64> = Vec::new();
        let mut pos = seg.data;
        while pos < seg_end {
            let el = match element(data, pos, seg_end) {
                Ok(el) => el,
                Err(Error::Truncated { .. }) => break,
                Err(e) => return Err(e),
            };
            let end = el.end.unwrap_or(seg_end).min(seg_end);
            match el.id {
                INFO if info.is_none() => {
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
                TRACKS if numbers.is_empty() => children(data, el.data, end, |c| {
                    if c.id != TRACK_ENTRY {
                        return Ok(());
                    }
                    let t = parse_track(data, c)?;
                    if numbers.contains(&t.number) {
                        return Err(malformed(format!("two tracks numbered {}", t.number)));
                    }
                    if numbers.len() == 4 * MAX_TRACKS {
                        return Err(malformed("too many tracks"));
                    }
                    numbers.push(t.number);
                    let video = t.kind == 1;
                    let first_video = video && !l.tracks.iter().any(|t| t.video);
                    let codecs = match codecs(&t.codec) {
                        Some(c) if video == t.codec.starts_with("V_") => c,
                        _ if first_video => {
                            return Err(malformed(format!(
                                "DASH of WebM carries VP8 and VP9 video; track {} is {}",
                                t.number, t.codec
                            )))
                        }
                        _ => return Ok(()), // left out
                    };
                    if (video && !first_video) || l.tracks.len() == MAX_TRACKS {
                        return Ok(());
                    }
                    l.tracks.push(Track {
                        number: t.number,
                        video,
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
        let info = info.ok_or_else(|| malformed("no Info"))?;
        if l.tracks.is_empty() {
            return Err(malformed("no VP8, VP9, Opus or Vorbis track"));
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
    /// at the next segment-level element). Blocks before its (first) Timecode are left out, as
    /// is everything from a child of unknown size or past the cluster's end.
    fn cluster(&mut self, data: &[u8], c: super::El, limit: usize) -> Result<usize> {
        let end = c.end.unwrap_or(limit).min(limit);
        let index = u32::try_from(self.clusters.len()).unwrap_or(u32::MAX);
        let mut time = None;
        let mut taken = false;
        let mut pos = c.data;
        while pos < end {
            let Ok(el) = element(data, pos, end) else {
                return Ok(pos);
            };
            if c.end.is_none() && SEGMENT_LEVEL.contains(&el.id) {
                return Ok(pos);
            }
            let Some(el_end) = el.end.filter(|&e| e <= end) else {
                return Ok(pos);
            };
            let block = match (el.id, time) {
                (TIMECODE, None) => {
                    let t = uint(body(data, el));
                    time = Some(t);
                    None
                }
                (SIMPLE_BLOCK, Some(t)) => Some((el.data, el_end, None, t)),
                (BLOCK_GROUP, Some(t)) => super::block_group(data, el.data, el_end)?
                    .map(|(s, e, key)| (s, e, Some(key), t)),
                _ => None,
            };
            if let Some((s, e, key, t)) = block {
                if self.block(data, el.start..el_end, s, e, key, t, index)? && !taken {
                    taken = true;
                    self.clusters.push(t);
                }
            }
            pos = el_end;
        }
        Ok(end)
    }

    /// Takes a block element at `at` whose block header lies in `[s, e)`, in cluster `cluster`
    /// (of time `cluster_time`); whether it is of a listed track.
    #[allow(clippy::too_many_arguments)]
    fn block(
        &mut self,
        data: &[u8],
        at: Range<usize>,
        s: usize,
        e: usize,
        key: Option<bool>,
        cluster_time: u64,
        cluster: u32,
    ) -> Result<bool> {
        let (number, n, _) = vint(data, s, e, false)?;
        let Some(track) = self.tracks.iter().position(|t| t.number == number) else {
            return Ok(false);
        };
        let h = s + n;
        if h + 3 > e {
            return Err(malformed("block shorter than its header"));
        }
        if self.blocks.len() == MAX_BLOCKS {
            return Err(malformed(format!(
                "more than {MAX_BLOCKS} blocks: not packaged"
            )));
        }
        let len = u32::try_from(at.len()).map_err(|_| malformed("a block of 4 GiB or more"))?;
        let rel = i64::from(i16::from_be_bytes([data[h], data[h + 1]]));
        self.tracks[track].bytes += u64::from(len);
        self.blocks.push(Block {
            at: at.start as u64,
            time: (cluster_time.min(i64::MAX as u64) as i64).saturating_add(rel),
            len,
            cluster,
            seg: 0,
            track: track as u16,
            key: key.unwrap_or(data[h + 2] & 0x80 != 0),
        });
        Ok(true)
    }

    /// Cuts at the lead track's keyframes, `target` apart; `duration`: the title's, in ticks.
    fn plan(&mut self, target: MediaTime, duration: i64) -> Result<()> {
        let scale = i64::try_from(self.scale).map_err(|_| malformed("TimecodeScale too large"))?;
        let lead = self.tracks.iter().position(|t| t.video).unwrap_or(0) as u16;
        let target = (target.rescale(1_000_000_000) / scale).max(1);
        let (mut last, mut gap) = (None::<i64>, 1);
        for b in &self.blocks {
            if b.track != lead {
                continue;
            }
            if let Some(l) = last {
                gap = b.time.saturating_sub(l).max(1);
            }
            last = Some(b.time);
            if !b.key {
                continue;
            }
            match self.cuts.last() {
                Some(&c) if b.time.saturating_sub(c) < target => {}
                _ => self.cuts.push(b.time),
            }
        }
        if self.cuts.is_empty() {
            return Err(malformed("no keyframes to cut segments at"));
        }
        let latest = self.blocks.iter().map(|b| b.time).max().unwrap_or(0);
        let earliest = self.blocks.iter().map(|b| b.time).min().unwrap_or(0);
        self.end = duration.max(latest.saturating_add(gap));
        // Times go out in nanoseconds where the scale does not divide a second: they must fit.
        if 1_000_000_000 % scale != 0
            && [earliest, self.end]
                .iter()
                .any(|t| t.checked_mul(scale).is_none())
        {
            return Err(malformed("block times beyond what nanoseconds can count"));
        }
        for b in &mut self.blocks {
            b.seg = seg_of(&self.cuts, b.time) as u32;
        }
        let blocks = &self.blocks;
        self.order = (0..blocks.len() as u32).collect();
        self.order
            .sort_by_key(|&i| (blocks[i as usize].seg, blocks[i as usize].track));
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
    /// Its cost is its own blocks' (found by two binary searches).
    pub fn segment(&self, track: usize, n: usize) -> Option<Vec<Span>> {
        if track >= self.tracks.len() || n >= self.cuts.len() {
            return None;
        }
        let key = |i: &u32| {
            let b = &self.blocks[*i as usize];
            (b.seg as usize, usize::from(b.track))
        };
        let lo = self.order.partition_point(|i| key(i) < (n, track));
        let hi = self.order.partition_point(|i| key(i) <= (n, track));
        let block = |i: &u32| &self.blocks[*i as usize];
        let mut out = Vec::new();
        for run in self.order[lo..hi].chunk_by(|a, b| block(a).cluster == block(b).cluster) {
            let size: u64 = run.iter().map(|i| u64::from(block(i).len)).sum();
            let time = self
                .clusters
                .get(block(&run[0]).cluster as usize)
                .copied()?;
            let mut head = Vec::with_capacity(32);
            put_head(&mut head, CLUSTER, TIMECODE_LEN + size);
            put_uint(&mut head, TIMECODE, time);
            out.push(Span::Written(head));
            for b in run.iter().map(block) {
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
        self.blocks.len() * (std::mem::size_of::<Block>() + 4)
            + self.clusters.len() * 8
            + self.cuts.len() * 8
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
