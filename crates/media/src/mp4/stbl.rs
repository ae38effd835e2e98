//! The sample table (`stbl`, ISO/IEC 14496-12 §8.5-8.7) expanded into per-sample columns.
//!
//! ```text
//! stts  (count, delta)*          -> dts      decode times, run-length coded
//! ctts  (count, offset)*         -> cto      composition offsets (pts = dts + cto)
//! stss  sample_number*           -> keyframe sync samples (absent: every sample is sync)
//! stsz  size | size*  (stz2)     -> size     per-sample byte sizes
//! stsc  (first_chunk, per_chunk, desc)* + stco/co64 chunk_offset*  -> offset
//! ```
//! Every declared count is checked against the bytes present before anything is allocated, and the
//! number of samples is bounded by the file size (a sample needs at least one byte in the file).

use super::{full_box, next_box, Trex};
use crate::error::{Error, Result};
use crate::info::most_common;
use crate::read::Reader;

/// Per-sample columns of one track, in decode order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SampleTable {
    pub offset: Vec<u64>,
    pub size: Vec<u32>,
    pub dts: Vec<i64>,
    pub cto: Vec<i32>,
    pub keyframe: Vec<bool>,
}

impl SampleTable {
    pub fn len(&self) -> usize {
        self.offset.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offset.is_empty()
    }

    /// Drops samples whose bytes are not all inside the file (a truncated download): they cannot be
    /// served, so they are not indexed.
    pub fn clip_to(&mut self, data_len: u64) {
        let keep = self
            .offset
            .iter()
            .zip(&self.size)
            .position(|(o, s)| {
                o.checked_add(u64::from(*s))
                    .is_none_or(|end| end > data_len)
            })
            .unwrap_or(self.len());
        self.offset.truncate(keep);
        self.size.truncate(keep);
        self.dts.truncate(keep);
        self.cto.truncate(keep);
        self.keyframe.truncate(keep);
    }

    /// Keyframes as (presentation time relative to the first frame, byte offset), in presentation
    /// order; the presentation duration; and the most common frame duration, all in track ticks.
    /// `media_time` is the edit list's first shown media time. `from_movie_start`: frames the
    /// edit list hides before it are not title time (an unfragmented file cut with
    /// `ffmpeg -ss … -c copy` keeps the GOP before the cut, hidden; an AAC encoder's priming):
    /// the title counts from the movie's start, and a keyframe among the hidden frames is at 0
    /// (a clip from there hides them again, `clip::mp4`).
    pub fn keyframes(
        &self,
        media_time: i64,
        from_movie_start: bool,
    ) -> (Vec<(i64, u64)>, i64, Option<u64>) {
        let pts = |i: usize| {
            self.dts[i]
                .saturating_add(i64::from(self.cto[i]))
                .saturating_sub(media_time)
        };
        let n = self.len();
        if n == 0 {
            return (Vec::new(), 0, None);
        }
        let deltas = || (1..n).map(|i| self.dts[i].saturating_sub(self.dts[i - 1]).max(0) as u64);
        let frame = most_common(deltas());
        let first = (0..n).map(pts).min().unwrap_or(0);
        let first = if from_movie_start {
            first.max(0)
        } else {
            first
        };
        let end = (0..n)
            .map(|i| {
                let d = if i + 1 < n {
                    self.dts[i + 1].saturating_sub(self.dts[i])
                } else {
                    frame.unwrap_or(0) as i64
                };
                pts(i).saturating_add(d)
            })
            .max()
            .unwrap_or(0);
        let mut keys: Vec<(i64, u64)> = (0..n)
            .filter(|&i| self.keyframe[i])
            .map(|i| (pts(i).saturating_sub(first).max(0), self.offset[i]))
            .collect();
        keys.sort_by_key(|k| k.0);
        (keys, end.saturating_sub(first), frame)
    }

    fn push(&mut self, offset: u64, size: u32, dts: i64, cto: i32, keyframe: bool) {
        self.offset.push(offset);
        self.size.push(size);
        self.dts.push(dts);
        self.cto.push(cto);
        self.keyframe.push(keyframe);
    }
}

/// The most samples a track's table is expanded to (25 bytes a sample in memory: about 420 MB):
/// two hours of 60 fps video are 432,000; a longer track is not expanded (only PCM audio
/// stored a sample per frame gets there: 5.8 minutes at 48 kHz).
pub(crate) const MAX_SAMPLES: u64 = 1 << 24;

/// A declared sample count must fit the file (every sample needs at least one byte of it) and
/// [`MAX_SAMPLES`].
fn bound_samples(count: u64, data_len: u64) -> Result<usize> {
    if count > MAX_SAMPLES {
        return Err(Error::malformed(
            "mp4 sample table",
            format!("{count} samples in a track: more than {MAX_SAMPLES} are not expanded"),
        ));
    }
    if count > data_len {
        return Err(Error::malformed(
            "mp4 sample table",
            format!("{count} samples cannot fit in a file of {data_len} bytes"),
        ));
    }
    Ok(count as usize)
}

fn find<'a>(stbl: &Reader<'a>, kind: &[u8; 4]) -> Result<Option<Reader<'a>>> {
    let mut r = stbl.clone();
    while let Some(b) = next_box(&mut r, false)? {
        if &b.kind == kind {
            return Ok(Some(b.body));
        }
    }
    Ok(None)
}

fn sizes(stbl: &Reader<'_>, data_len: u64) -> Result<Vec<u32>> {
    if let Some(mut stsz) = find(stbl, b"stsz")? {
        full_box(&mut stsz)?;
        let constant = stsz.u32()?;
        let count = u64::from(stsz.u32()?);
        if constant != 0 {
            bound_samples(count, data_len)?;
            if count.saturating_mul(u64::from(constant)) > data_len {
                return Err(Error::malformed(
                    "mp4 stsz",
                    format!("{count} samples of {constant} bytes exceed the file"),
                ));
            }
            return Ok(vec![constant; count as usize]);
        }
        let n = stsz.check_count(count, 4)?;
        return (0..n).map(|_| stsz.u32()).collect();
    }
    if let Some(mut stz2) = find(stbl, b"stz2")? {
        full_box(&mut stz2)?;
        stz2.skip(3)?;
        let field = stz2.u8()?;
        let count = u64::from(stz2.u32()?);
        let bits = match field {
            4 | 8 | 16 => u64::from(field),
            f => return Err(Error::malformed("mp4 stz2", format!("field size {f}"))),
        };
        let needed = count
            .checked_mul(bits)
            .ok_or_else(|| Error::malformed("mp4 stz2", "sample count overflows"))?
            .div_ceil(8);
        let n = stz2.check_count(needed, 1)?;
        let bytes = stz2.bytes(n)?;
        return Ok((0..count as usize)
            .map(|i| match bits {
                4 => u32::from((bytes[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0xf),
                8 => u32::from(bytes[i]),
                _ => u32::from(u16::from_be_bytes([bytes[2 * i], bytes[2 * i + 1]])),
            })
            .collect());
    }
    Ok(Vec::new())
}

/// The most video and audio tracks a movie (`clip::mp4::Movie`) is expanded with: every one
/// is kept in memory with its sample table, so a `moov` of many small tracks must not add up.
/// Real titles have a few (video, some audio languages); 64 leaves room for any of them.
pub(crate) const MAX_TRACKS: usize = 64;

/// The most samples of all a movie's tracks together (about 840 MB expanded): two tracks at
/// [`MAX_SAMPLES`], as a long PCM track stored a sample per frame beside its video comes to.
/// [`MAX_SAMPLES`] alone bounds one track, not 64 of them (tens of GB from a 16 MB file).
pub(crate) const MAX_MOVIE_SAMPLES: u64 = 1 << 25;

/// The number of samples a track's `stsz` (or `stz2`) declares, read before anything is
/// expanded (0 without either).
pub(crate) fn declared_samples(stbl: &Reader<'_>) -> Result<u64> {
    if let Some(mut stsz) = find(stbl, b"stsz")? {
        full_box(&mut stsz)?;
        stsz.u32()?; // sample_size
        return Ok(u64::from(stsz.u32()?));
    }
    if let Some(mut stz2) = find(stbl, b"stz2")? {
        full_box(&mut stz2)?;
        stz2.skip(4)?; // reserved, field_size
        return Ok(u64::from(stz2.u32()?));
    }
    Ok(0)
}

/// Refuses a movie of more than [`MAX_TRACKS`] tracks or [`MAX_MOVIE_SAMPLES`] samples (as
/// their `stbl`s declare them), before any is expanded.
pub(crate) fn bound_movie(stbls: &[&Reader<'_>]) -> Result<()> {
    if stbls.len() > MAX_TRACKS {
        return Err(Error::malformed(
            "mp4 moov",
            format!(
                "{} video and audio tracks: more than {MAX_TRACKS} are not expanded",
                stbls.len()
            ),
        ));
    }
    let mut total = 0u64;
    for stbl in stbls {
        total = total.saturating_add(declared_samples(stbl)?);
    }
    if total > MAX_MOVIE_SAMPLES {
        return Err(Error::malformed(
            "mp4 moov",
            format!(
                "{total} samples in all tracks: more than {MAX_MOVIE_SAMPLES} are not expanded"
            ),
        ));
    }
    Ok(())
}

/// Expands a track's `stbl` into columns.
pub fn expand(stbl: &Reader<'_>, data_len: u64) -> Result<SampleTable> {
    expand_described(stbl, data_len).map(|(table, _)| table)
}

/// [`expand`], and the first sample description index other than 1 that a sample uses (from
/// `stsc`), if any: such a track's samples are not all described by its first sample entry.
pub(crate) fn expand_described(
    stbl: &Reader<'_>,
    data_len: u64,
) -> Result<(SampleTable, Option<u32>)> {
    let size = sizes(stbl, data_len)?;
    let n = bound_samples(size.len() as u64, data_len)?;
    if n == 0 {
        return Ok((SampleTable::default(), None));
    }

    // Chunk offsets.
    let chunks: Vec<u64> = if let Some(mut stco) = find(stbl, b"stco")? {
        full_box(&mut stco)?;
        let c = stco.u32()?;
        let c = stco.check_count(u64::from(c), 4)?;
        (0..c)
            .map(|_| stco.u32().map(u64::from))
            .collect::<Result<_>>()?
    } else if let Some(mut co64) = find(stbl, b"co64")? {
        full_box(&mut co64)?;
        let c = co64.u32()?;
        let c = co64.check_count(u64::from(c), 8)?;
        (0..c).map(|_| co64.u64()).collect::<Result<_>>()?
    } else {
        return Err(Error::malformed("mp4 stbl", "no stco or co64 box"));
    };

    // Sample offsets: walk chunks with the sample-to-chunk runs.
    let mut stsc =
        find(stbl, b"stsc")?.ok_or_else(|| Error::malformed("mp4 stbl", "no stsc box"))?;
    full_box(&mut stsc)?;
    let runs = stsc.u32()?;
    let runs = stsc.check_count(u64::from(runs), 12)?;
    let mut run_list = Vec::with_capacity(runs);
    for _ in 0..runs {
        let first = stsc.u32()?;
        let per = stsc.u32()?;
        let description = stsc.u32()?;
        run_list.push((first, per, description));
    }
    let mut offset = Vec::with_capacity(n);
    let mut other_description = None;
    'runs: for (i, &(first, per, description)) in run_list.iter().enumerate() {
        let next_first = run_list.get(i + 1).map_or(u64::MAX, |r| u64::from(r.0));
        if first == 0 || u64::from(first) >= next_first {
            return Err(Error::malformed(
                "mp4 stsc",
                format!("run {i} starts at chunk {first}"),
            ));
        }
        let mut chunk = u64::from(first);
        while chunk < next_first && (chunk as usize) <= chunks.len() {
            let mut at = chunks[chunk as usize - 1];
            for _ in 0..per {
                if offset.len() == n {
                    break 'runs;
                }
                if description != 1 && other_description.is_none() {
                    other_description = Some(description);
                }
                offset.push(at);
                at = at.saturating_add(u64::from(size[offset.len() - 1]));
            }
            chunk += 1;
        }
    }
    if offset.len() < n {
        return Err(Error::malformed(
            "mp4 stsc",
            format!("chunks hold {} samples, stsz declares {n}", offset.len()),
        ));
    }

    // Decode times.
    let mut stts =
        find(stbl, b"stts")?.ok_or_else(|| Error::malformed("mp4 stbl", "no stts box"))?;
    full_box(&mut stts)?;
    let e = stts.u32()?;
    let e = stts.check_count(u64::from(e), 8)?;
    let mut dts = Vec::with_capacity(n);
    let mut t: i64 = 0;
    'stts: for _ in 0..e {
        let count = stts.u32()?;
        let delta = i64::from(stts.u32()?);
        for _ in 0..count {
            if dts.len() == n {
                break 'stts;
            }
            dts.push(t);
            t = t.saturating_add(delta);
        }
    }
    if dts.len() < n {
        return Err(Error::malformed(
            "mp4 stts",
            format!("times for {} samples, stsz declares {n}", dts.len()),
        ));
    }

    // Composition offsets.
    let mut cto = vec![0i32; n];
    if let Some(mut ctts) = find(stbl, b"ctts")? {
        let (v, _) = full_box(&mut ctts)?;
        let e = ctts.u32()?;
        let e = ctts.check_count(u64::from(e), 8)?;
        let mut i = 0usize;
        'ctts: for _ in 0..e {
            let count = ctts.u32()?;
            let raw = ctts.u32()?;
            // Version 0 is unsigned, but writers put negative values there too: read as signed,
            // as every demuxer does.
            let off = if v == 0 && raw > i32::MAX as u32 && raw < 0xf000_0000 {
                i32::MAX
            } else {
                raw as i32
            };
            for _ in 0..count {
                if i == n {
                    break 'ctts;
                }
                cto[i] = off;
                i += 1;
            }
        }
    }

    // Sync samples.
    let keyframe = match find(stbl, b"stss")? {
        None => vec![true; n],
        Some(mut stss) => {
            full_box(&mut stss)?;
            let e = stss.u32()?;
            let e = stss.check_count(u64::from(e), 4)?;
            let mut k = vec![false; n];
            for _ in 0..e {
                let s = stss.u32()? as usize;
                if s >= 1 && s <= n {
                    k[s - 1] = true;
                }
            }
            k
        }
    };
    let table = SampleTable {
        offset,
        size,
        dts,
        cto,
        keyframe,
    };
    Ok((table, other_description))
}

const NON_SYNC: u32 = 0x0001_0000;

/// Appends the samples of `track_id` in one `moof` (ISO/IEC 14496-12 §8.8) to the table.
pub(crate) fn append_fragment(
    table: &mut SampleTable,
    moof_start: u64,
    moof: &Reader<'_>,
    track_id: u32,
    trex: Trex,
    data_len: u64,
) -> Result<()> {
    let mut r = moof.clone();
    while let Some(traf) = next_box(&mut r, false)? {
        if &traf.kind != b"traf" {
            continue;
        }
        let mut base = moof_start;
        let (mut dflt_dur, mut dflt_size, mut dflt_flags) = (trex.duration, trex.size, trex.flags);
        let mut decode_time: Option<i64> = None;
        let mut this_track = false;
        let mut next_data: Option<u64> = None;
        let mut t = traf.body;
        while let Some(b) = next_box(&mut t, false)? {
            let mut body = b.body;
            match &b.kind {
                b"tfhd" => {
                    let (_, flags) = full_box(&mut body)?;
                    this_track = body.u32()? == track_id;
                    if flags & 0x1 != 0 {
                        base = body.u64()?;
                    }
                    if flags & 0x2 != 0 {
                        body.u32()?;
                    }
                    if flags & 0x8 != 0 {
                        dflt_dur = body.u32()?;
                    }
                    if flags & 0x10 != 0 {
                        dflt_size = body.u32()?;
                    }
                    if flags & 0x20 != 0 {
                        dflt_flags = body.u32()?;
                    }
                }
                b"tfdt" if this_track => {
                    let (v, _) = full_box(&mut body)?;
                    let t = if v == 1 {
                        body.u64()?
                    } else {
                        u64::from(body.u32()?)
                    };
                    decode_time = Some(t.min(i64::MAX as u64) as i64);
                }
                b"trun" if this_track => {
                    let (v, flags) = full_box(&mut body)?;
                    let count = u64::from(body.u32()?);
                    let mut data = match flags & 0x1 {
                        0 => next_data.unwrap_or(base),
                        _ => base.saturating_add_signed(i64::from(body.u32()? as i32)),
                    };
                    let first_flags = if flags & 0x4 != 0 {
                        Some(body.u32()?)
                    } else {
                        None
                    };
                    let per_sample = [0x100, 0x200, 0x400, 0x800]
                        .iter()
                        .filter(|f| flags & **f != 0)
                        .count() as u64
                        * 4;
                    let count = if per_sample > 0 {
                        body.check_count(count, per_sample)?
                    } else {
                        bound_samples(count, data_len)?
                    };
                    bound_samples((table.len() + count) as u64, data_len)?;
                    // Saturating: a hostile earlier `trun` may have left the clock at i64::MAX.
                    let mut dts = decode_time.unwrap_or_else(|| {
                        table
                            .dts
                            .last()
                            .map_or(0, |d| d.saturating_add(i64::from(dflt_dur)))
                    });
                    for i in 0..count {
                        let dur = if flags & 0x100 != 0 {
                            body.u32()?
                        } else {
                            dflt_dur
                        };
                        let size = if flags & 0x200 != 0 {
                            body.u32()?
                        } else {
                            dflt_size
                        };
                        let sflags = if flags & 0x400 != 0 {
                            body.u32()?
                        } else if i == 0 {
                            first_flags.unwrap_or(dflt_flags)
                        } else {
                            dflt_flags
                        };
                        let cto = if flags & 0x800 != 0 {
                            let raw = body.u32()?;
                            if v == 0 && raw > i32::MAX as u32 {
                                i32::MAX
                            } else {
                                raw as i32
                            }
                        } else {
                            0
                        };
                        table.push(data, size, dts, cto, sflags & NON_SYNC == 0);
                        data = data.saturating_add(u64::from(size));
                        dts = dts.saturating_add(i64::from(dur));
                    }
                    decode_time = Some(dts);
                    next_data = Some(data);
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_times_saturate_when_the_declared_times_span_more_than_i64() {
        // A hostile ctts can push one frame's presentation time to the top of i64 while another
        // sits near the bottom (found by the media_index fuzzer).
        let t = SampleTable {
            offset: vec![0, 10],
            size: vec![1, 1],
            dts: vec![i64::MIN + 1, i64::MAX - 1],
            cto: vec![0, i32::MAX],
            keyframe: vec![true, true],
        };
        let (keys, duration, _) = t.keyframes(0, true);
        assert_eq!(keys, vec![(0, 0), (i64::MAX, 10)]);
        assert_eq!(duration, i64::MAX);
    }
}
