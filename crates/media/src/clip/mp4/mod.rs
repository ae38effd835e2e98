//! A clip of an MP4 that is itself a valid MP4: a new `ftyp` + `moov` for the samples between two
//! times, then an `mdat` whose body is one contiguous range of the title's own bytes.
//!
//! ```text
//! title: ftyp | moov | mdat [ .... v v a v a v v a .... ]
//!                                  ^ lo            hi ^   the samples kept (all tracks)
//! clip:  ftyp | moov' | mdat header | title[lo..hi]       moov' chunk offsets = offset - lo + head
//! ```
//! The caller sends the head it gets here and then `title[lo..hi]` as a slice of the cached title:
//! the sample bytes are never copied, and `moov` comes first, so the clip plays progressively.
//! Bytes of samples that are not kept but lie between kept ones (the other tracks' samples just
//! outside the span, interleaved) travel along unreferenced, a few frames at most in an
//! interleaved file.
//!
//! The clip starts at the keyframe at or before `from` and ends just before the first keyframe at
//! or after `to`: whole GOPs, so every frame in it decodes ([`select`]).

mod select;
mod write;

use crate::clip::Clip;
use crate::error::{Error, Result};
use crate::mp4::{child, next_box, parse_trak, stbl};
use crate::read::Reader;
use crate::time::MediaTime;
use select::Column;
use write::Kept;

/// The clip of `data` (an unfragmented MP4 in memory) from the keyframe at or before `from` to the
/// keyframe at or after `to` (`None`: to the end). Errors for a time past the end, an end not
/// after the start, a fragmented file, or a file without video or audio samples.
pub(super) fn clip(data: &[u8], from: MediaTime, to: Option<MediaTime>) -> Result<Clip> {
    let mut top = Reader::new(data, 0, "mp4");
    let (mut ftyp, mut moov) = (None, None);
    while let Some(mut b) = next_box(&mut top, true)? {
        match &b.kind {
            b"ftyp" => ftyp = Some(b.body.rest()),
            b"moov" => moov = Some(b.body),
            b"moof" => {
                return Err(Error::malformed(
                    "mp4 clip",
                    "fragmented MP4 is clipped by fragments, not by sample tables",
                ))
            }
            _ => {}
        }
    }
    let moov = moov.ok_or_else(|| Error::malformed("mp4", "no moov box"))?;
    let mvhd = child(&moov, b"mvhd")?.ok_or_else(|| Error::malformed("mp4", "no mvhd box"))?;
    let movie_scale = {
        let mut m = mvhd.clone();
        let v = m.u8()?;
        m.skip(if v == 1 { 19 } else { 11 })?;
        m.u32()?.max(1)
    };

    // The video and audio tracks with samples, in file order.
    let data_len = data.len() as u64;
    let mut found = Vec::new();
    let mut r = moov.clone();
    while let Some(b) = next_box(&mut r, false)? {
        if &b.kind != b"trak" {
            continue;
        }
        let t = parse_trak(&b.body)?;
        let (Some(stbl_box), true) = (&t.stbl, matches!(&t.handler, b"vide" | b"soun")) else {
            continue;
        };
        let mut table = stbl::expand(stbl_box, data_len)?;
        table.clip_to(data_len);
        if table.is_empty() {
            continue;
        }
        let has_stss = child(stbl_box, b"stss")?.is_some();
        found.push((b.body, t, table, has_stss));
    }
    let lead = found
        .iter()
        .position(|(_, t, _, _)| &t.handler == b"vide")
        .or_else(|| (!found.is_empty()).then_some(0))
        .ok_or_else(|| Error::malformed("mp4 clip", "no video or audio samples"))?;
    let column = |i: usize| Column {
        table: &found[i].2,
        timescale: found[i].1.timescale,
        media_time: found[i].1.media_time,
    };
    let lead_col = column(lead);
    let span = select::lead(&lead_col, from, to)?;
    let start = MediaTime::new(span.start, lead_col.timescale);
    let end = MediaTime::new(span.end, lead_col.timescale);

    let mut kept = Vec::new();
    for (i, (trak, _, _, has_stss)) in found.iter().enumerate() {
        let col = column(i);
        let samples = if i == lead {
            span.samples.clone()
        } else {
            select::follower(&col, start, end)
        };
        if samples.is_empty() {
            continue;
        }
        let late = col.pts(samples.start) - start.rescale(col.timescale);
        let delay = MediaTime::new(late.max(0), col.timescale).rescale(movie_scale) as u64;
        kept.push(Kept {
            trak: trak.clone(),
            col,
            samples,
            has_stss: *has_stss,
            delay,
        });
    }
    let bounds = kept.iter().flat_map(|k| {
        k.samples.clone().map(|i| {
            let o = k.col.table.offset[i];
            (o, o.saturating_add(u64::from(k.col.table.size[i])))
        })
    });
    let (lo, hi) = bounds.fold((u64::MAX, 0), |(lo, hi), (a, b)| (lo.min(a), hi.max(b)));
    let body = lo..hi.max(lo);
    let head = write::head(ftyp, mvhd.clone().rest(), movie_scale, &kept, body.clone())?;
    Ok(Clip {
        head,
        body,
        start,
        end,
    })
}

#[cfg(test)]
mod tests;
