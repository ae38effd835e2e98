//! A clip of an MP4 that is itself a valid MP4: a new `ftyp` + `moov` for the samples between two
//! times, then an `mdat` whose body is ranges of the title's own bytes: in an interleaved file,
//! one.
//!
//! ```text
//! title: ftyp | moov | mdat [ .... v v a v a v v a .... ]
//!                                  ^ lo            hi ^   the samples kept (all tracks)
//! clip:  ftyp | moov' | mdat header | title[lo..hi]       moov' chunk offsets = offset - lo + head
//! ```
//! The caller sends the head it gets here and then each range as a slice of the cached title:
//! the sample bytes are never copied, and `moov` comes first, so the clip plays progressively.
//! Bytes of samples that are not kept but lie between kept ones (the other tracks' samples just
//! outside the span, interleaved) travel along unreferenced when they are fewer than [`GAP`]: a
//! few frames at most in an interleaved file. A file that is not interleaved (all its video,
//! then all its audio) gives a range per track, not the whole file between them.
//!
//! The clip starts at the keyframe at or before `from` and ends just before the first keyframe at
//! or after `to`: whole GOPs, so every frame in it decodes ([`select`]).

mod movie;
mod segment;
mod select;
mod write;

pub use movie::{Movie, MovieTrack};
pub use segment::{init, plan, segment, Segment, Slot};

use crate::clip::Clip;
use crate::error::Result;
use crate::time::MediaTime;
use select::Span;
use std::ops::Range;
use write::Kept;

/// The clip of `movie` from the keyframe at or before `from` to the keyframe at or after `to`
/// (`None`: to the end), title times counted from the lead track's first frame. Errors for a
/// time past the end or an end not after the start.
pub fn clip(movie: &Movie, from: MediaTime, to: Option<MediaTime>) -> Result<Clip> {
    clip_in(Vec::new(), movie, from, to)
}

/// [`clip`], its head written into `buf` (emptied first): a server that reuses the buffers of
/// heads it no longer holds writes into memory already mapped.
pub fn clip_in(
    buf: Vec<u8>,
    movie: &Movie,
    from: MediaTime,
    to: Option<MediaTime>,
) -> Result<Clip> {
    let lead = &movie.tracks[movie.lead];
    let lead_col = lead.column();
    let span = select::lead(&lead_col, from, to)?;
    let first = lead_col.first();
    let scale = lead_col.timescale;
    let kept = keep(movie, &span);
    let body = layout(&kept);
    let head = write::head(
        buf,
        movie.ftyp.as_deref(),
        &movie.mvhd,
        movie.movie_scale,
        &kept,
        &write::Placement::new(&body),
    )?;
    Ok(Clip {
        head,
        body,
        start: MediaTime::new((span.start - first).max(0), scale),
        end: MediaTime::new(span.end - first, scale),
    })
}

/// Each track's samples for the lead's `span`: the lead's own, and every other track's samples
/// presented within it.
fn keep<'m>(movie: &'m Movie, span: &Span) -> Vec<Kept<'m, 'm>> {
    let lead = movie.tracks[movie.lead].column();
    let start = MediaTime::new(span.start, lead.timescale);
    let end = MediaTime::new(span.end, lead.timescale);
    let mut kept = Vec::new();
    for (i, t) in movie.tracks.iter().enumerate() {
        let col = t.column();
        let samples = if i == movie.lead {
            span.samples.clone()
        } else {
            // A span from the lead's first sample or to its last takes the other tracks' samples
            // before or after the lead's too (AAC priming, audio that outlasts the video).
            let mut r = select::follower(&col, start, end);
            if span.samples.start == 0 {
                r.start = 0;
            }
            if span.samples.end == lead.table.len() {
                r.end = col.table.len();
            }
            r
        };
        if samples.is_empty() {
            continue;
        }
        // The clip shows the track from its start, or from where the title first shows it (the
        // end of its empty edits): samples before that (an AAC encoder's priming) are skipped
        // by the clip's edit list too, and a track that starts late starts late in the clip.
        // The clip's time 0: the span's start, never before the movie's (frames an edit list
        // hides there stay hidden).
        let zero = start.rescale(col.timescale).max(0);
        let shown_from = zero.max(t.delay);
        let first = col.pts(samples.start);
        let skip = shown_from.saturating_sub(first).max(0);
        let late = first.saturating_add(skip).saturating_sub(zero);
        let delay = MediaTime::new(late.max(0), col.timescale).rescale(movie.movie_scale) as u64;
        kept.push(Kept {
            trak: t.trak(),
            track: t,
            col,
            has_stss: t.has_stss,
            samples,
            delay,
            skip,
        });
    }
    kept
}

/// Bytes of a title between two tracks' kept samples that a clip sends along rather than cut
/// out there (one range more to send costs more than a few frames unreferenced).
const GAP: u64 = 16 << 10;

/// The ranges of the title's bytes that hold every kept sample, in file order: each track's
/// span (from its first kept sample's offset to its last one's end), joined where they overlap
/// or less than [`GAP`] lies between them. Interleaved tracks make one range; tracks that are
/// not (all the video, then all the audio) one each. O(1) per track whose samples lie in file
/// order: a clip of an interleaved title costs what it did with one range.
fn layout(kept: &[Kept<'_, '_>]) -> Vec<Range<u64>> {
    let mut spans: Vec<Range<u64>> = kept.iter().filter_map(span).collect();
    spans.sort_unstable_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::new();
    for r in spans {
        match out.last_mut() {
            Some(o) if o.end.saturating_add(GAP) >= r.start => o.end = o.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// The bytes that hold a track's kept samples (`None`: they hold none).
fn span(k: &Kept<'_, '_>) -> Option<Range<u64>> {
    let t = k.col.table;
    let (offset, size) = (&t.offset[k.samples.clone()], &t.size[k.samples.clone()]);
    let ends = offset
        .iter()
        .zip(size)
        .map(|(&o, &s)| (o, o.saturating_add(u64::from(s))));
    // In file order: the first sample's offset and the last one's end (O(1)).
    let (lo, hi) = match (ends.clone().next(), ends.clone().next_back()) {
        (Some((lo, _)), Some((_, hi))) if k.col.facts.in_file_order => (lo, hi),
        _ => ends.fold((u64::MAX, 0), |(lo, hi), (a, b)| (lo.min(a), hi.max(b))),
    };
    (hi > lo).then_some(lo..hi)
}

#[cfg(test)]
mod movie_tests;
#[cfg(test)]
mod tests;
