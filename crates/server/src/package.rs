//! A title's packaging for clips, HLS and DASH, built on first use and kept with the title
//! (`Title::package`): for an MP4 its parsed movie (sample tables expanded once) and the
//! segment plan; for MPEG-TS and fragmented MP4 each segment as a clip of the title (a small head
//! and one range of its bytes); for WebM where each track's blocks lie (DASH only: HLS carries
//! no WebM). Nothing here copies sample bytes.

use bytes::Bytes;
use media::clip::mp4::{self, Movie, Slot};
use media::package::{self, Seg};
use media::{Container, MediaTime};
use std::ops::Range;

/// Segments last at least this long where the keyframes allow (HLS's recommended 6 s).
pub const TARGET: MediaTime = MediaTime { ticks: 6, scale: 1 };

/// See the module documentation.
#[derive(Debug)]
pub enum Package {
    /// An unfragmented MP4: CMAF segments written over its samples, for HLS and DASH.
    Movie {
        movie: Movie,
        slots: Vec<Slot>,
        segs: Vec<Seg>,
    },
    /// MPEG-TS (`init: None`) or fragmented MP4: segments that are clips of the title.
    Clips {
        init: Option<Bytes>,
        segments: Vec<(Bytes, Range<u64>)>,
        segs: Vec<Seg>,
        /// Every segment begins with a keyframe: not so for a fragmented MP4 whose fragments
        /// are not cut at keyframes (a segment is whole fragments).
        independent: bool,
    },
    /// WebM: per track, an init segment and media segments of written Cluster heads over the
    /// title's blocks (DASH).
    Clusters {
        layout: media::webm::dash::Layout,
        segs: Vec<Seg>,
    },
}

impl Package {
    /// Packages a title (its bytes and its index), or says why it cannot be.
    /// `growing`: a recording still being written, whose last segment is not whole yet (it is
    /// left out: what is listed never changes as the title grows).
    pub fn build(
        data: &[u8],
        index: &Result<media::MediaInfo, String>,
        growing: bool,
    ) -> Result<Package, String> {
        let info = index.as_ref().map_err(Clone::clone)?;
        match info.container {
            Container::Mp4 if !media::mp4::is_fragmented(data) => {
                Self::movie(Movie::parse(data).map_err(|e| e.to_string())?)
            }
            Container::Mp4 | Container::MpegTs => {
                // The title's layout is found once; each segment is then a cut of it (no
                // rescan per segment: a title of many small fragments stays linear).
                let ts = info.container == Container::MpegTs;
                let err = |e: media::Error| e.to_string();
                let (tables, frags) = if ts {
                    (Some(media::clip::ts::Tables::find(data).map_err(err)?), None)
                } else {
                    let frags = media::clip::fragmented::Fragments::scan(data).map_err(err)?;
                    frags.check_movable(data).map_err(err)?;
                    (None, Some(frags))
                };
                let init = frags.as_ref().map(|f| Bytes::from(f.init()));
                let mut segments: Vec<(Bytes, Range<u64>)> = Vec::new();
                let mut segs: Vec<Seg> = Vec::new();
                let mut independent = true;
                let video = frags.as_ref().and_then(|f| f.video_track());
                for (a, b, mut seg) in package::by_keyframes(info, TARGET) {
                    if growing && b.is_none() {
                        continue;
                    }
                    let from = info.keyframes[a].time;
                    let to = b.map(|b| info.keyframes[b].time);
                    let (head, mut body) = match (&tables, &frags) {
                        (Some(t), _) => {
                            let c = media::clip::ts::clip_with(data, info, t, from, to)
                                .map_err(err)?;
                            let body = c.body_start()..c.body_end();
                            (Bytes::from(c.head), body)
                        }
                        (None, Some(f)) => {
                            let (body, start, end) = f.span(info, from, to).map_err(err)?;
                            // Whole fragments: the segment lasts from the first keyframe of its
                            // first to that of the one after its last (or from where the one
                            // before ended), not the keyframes it was asked for.
                            let start = segs
                                .last()
                                .map_or(start, |p| start.max(plus(p.start, p.duration)));
                            seg = package::Seg {
                                start,
                                duration: minus(end, start),
                            };
                            (Bytes::new(), body)
                        }
                        (None, None) => return Err("no layout".into()),
                    };
                    // Fragments holding several GOPs: a segment begins where the one before
                    // ended (never the same fragment twice); one left empty is in the one
                    // before, whole (its time too, for fragments).
                    if let Some(prev) = segments.last() {
                        body.start = body.start.max(prev.1.end);
                    }
                    match (segs.last_mut(), body.is_empty()) {
                        (Some(_), true) if frags.is_some() => {}
                        (Some(last), true) => {
                            let scale = last.duration.scale.max(seg.duration.scale);
                            last.duration = media::MediaTime::new(
                                last.duration.rescale(scale) + seg.duration.rescale(scale),
                                scale,
                            );
                        }
                        _ => {
                            // Whole fragments: it begins with a keyframe only if its first
                            // fragment does (fragments cut by duration, not at keyframes, begin
                            // with frames of the GOP before).
                            if let Some(f) = &frags {
                                independent &= f.begins_with_keyframe(data, info, body.start, video);
                            }
                            segments.push((head, body));
                            segs.push(seg);
                        }
                    }
                }
                if segments.is_empty() && growing {
                    return Err("no whole segment written yet".into());
                }
                if segments.is_empty() {
                    return Err("no keyframes to cut segments at".into());
                }
                Ok(Package::Clips {
                    init,
                    segments,
                    segs,
                    independent,
                })
            }
            Container::WebM | Container::Matroska => {
                let layout =
                    media::webm::dash::Layout::scan(data, TARGET).map_err(|e| e.to_string())?;
                let segs = layout.segs();
                Ok(Package::Clusters { layout, segs })
            }
            c => Err(format!(
                "HLS and DASH of {} titles are not served (MP4, fragmented MP4, MPEG-TS and WebM are)",
                c.name()
            )),
        }
    }

    /// Packages an unfragmented MP4 in object storage (of `file_len` bytes) from its `ftyp`
    /// and `moov` boxes alone (`boxes`, one after the other).
    pub fn build_stored(boxes: &[u8], file_len: u64) -> Result<Package, String> {
        let movie = Movie::parse_boxes(boxes, file_len).map_err(|e| e.to_string())?;
        Self::movie(movie)
    }

    fn movie(movie: Movie) -> Result<Package, String> {
        let slots = mp4::plan(&movie, TARGET);
        if slots.is_empty() {
            return Err("no keyframes to cut segments at".into());
        }
        let segs = slots
            .iter()
            .map(|s| Seg {
                start: s.start,
                duration: s.duration,
            })
            .collect();
        Ok(Package::Movie { movie, slots, segs })
    }

    /// Bytes it holds beyond the title's own.
    pub fn memory(&self) -> usize {
        let seg = std::mem::size_of::<Seg>();
        match self {
            Package::Movie { movie, slots, segs } => {
                movie.memory() + slots.len() * std::mem::size_of::<Slot>() + segs.len() * seg
            }
            Package::Clips {
                init,
                segments,
                segs,
                ..
            } => {
                init.as_ref().map_or(0, Bytes::len)
                    + segments.iter().map(|(h, _)| h.len() + 48).sum::<usize>()
                    + segs.len() * seg
            }
            Package::Clusters { layout, segs } => layout.memory() + segs.len() * seg,
        }
    }

    /// The segments' times.
    pub fn segs(&self) -> &[Seg] {
        match self {
            Package::Movie { segs, .. }
            | Package::Clips { segs, .. }
            | Package::Clusters { segs, .. } => segs,
        }
    }
}

/// `a + b`, exact, at the finer of the two timescales.
fn plus(a: media::MediaTime, b: media::MediaTime) -> media::MediaTime {
    let scale = a.scale.max(b.scale);
    media::MediaTime::new(a.rescale(scale).saturating_add(b.rescale(scale)), scale)
}

/// `a - b` (at least 0), exact, at the finer of the two timescales.
fn minus(a: media::MediaTime, b: media::MediaTime) -> media::MediaTime {
    let scale = a.scale.max(b.scale);
    media::MediaTime::new(
        a.rescale(scale).saturating_sub(b.rescale(scale)).max(0),
        scale,
    )
}
