//! A clip of a fragmented MP4: its `ftyp` and `moov` (the movie's fragment duration, `mehd`,
//! dropped, since the clip is shorter; each track's edit list starting at the clip's first
//! decode time, so that its timeline begins at zero, and keeping the tracks' offsets against
//! each other: a track that starts late in the title starts as late in the clip), then the
//! whole fragments (`moof` + `mdat`) from the one holding the keyframe at or before the start
//! to the one that begins at or after the end.

use crate::clip::Clip;
use crate::cmaf::boxes::{bx, full, u32 as put32, u64 as put64};
use crate::error::{Error, Result};
use crate::info::MediaInfo;
use crate::mp4::{full_box, next_box, parse_moov, parse_trak, FourCC, Track};
use crate::read::Reader;
use crate::time::MediaTime;

/// A fragmented MP4's layout, found in one walk of its top-level boxes: its `ftyp` and `moov`,
/// where each fragment (`moof`) begins, and where its media ends (after the last `mdat`, so an
/// `mfra` index behind it is not carried into a clip).
#[derive(Debug)]
pub struct Fragments<'a> {
    ftyp: Option<&'a [u8]>,
    moov: Reader<'a>,
    moofs: Vec<u64>,
    media_end: u64,
}

impl<'a> Fragments<'a> {
    pub fn scan(data: &'a [u8]) -> Result<Fragments<'a>> {
        let mut top = Reader::new(data, 0, "mp4");
        let (mut ftyp, mut moov) = (None, None);
        let mut moofs = Vec::new();
        let mut media_end = 0;
        loop {
            match next_box(&mut top, false) {
                Ok(Some(mut b)) => match &b.kind {
                    b"ftyp" => ftyp = Some(b.body.rest()),
                    b"moov" => moov = Some(b.body),
                    b"moof" => moofs.push(b.start),
                    b"mdat" => media_end = top.position(),
                    _ => {}
                },
                Ok(None) => break,
                // A truncated last box: the media ends before it.
                Err(Error::Truncated { .. }) => break,
                Err(e) => return Err(e),
            }
        }
        let moov = moov.ok_or_else(|| Error::malformed("mp4", "no moov box"))?;
        Ok(Fragments {
            ftyp,
            moov,
            moofs,
            media_end,
        })
    }

    /// The index of the fragment that holds a sample at `offset`.
    fn fragment(&self, offset: u64) -> Option<usize> {
        self.moofs.partition_point(|&m| m <= offset).checked_sub(1)
    }

    /// The first keyframe (of `info`, in time order) held by fragment `f`.
    fn first_in<'i>(&self, info: &'i MediaInfo, f: usize) -> Option<&'i crate::info::Keyframe> {
        let start = *self.moofs.get(f)?;
        let k = info.keyframes.partition_point(|k| k.offset < start);
        info.keyframes
            .get(k)
            .filter(|k| self.fragment(k.offset) == Some(f))
    }

    /// The bytes of the whole fragments for `[from, to)`, and their times: from the fragment
    /// holding the keyframe at or before `from` to the one that begins at or after `to`.
    pub fn span(
        &self,
        info: &MediaInfo,
        from: MediaTime,
        to: Option<MediaTime>,
    ) -> Result<(std::ops::Range<u64>, MediaTime, MediaTime)> {
        let (start, end) = info.clip_span(from, to)?;
        let f = self
            .fragment(start.keyframe.offset)
            .ok_or_else(|| Error::malformed("mp4 clip", "the keyframe is in no fragment"))?;
        let lo = self.moofs[f];
        let start_time = self
            .first_in(info, f)
            .map_or(start.keyframe.time, |k| k.time);
        let (hi, end_time) = match end.and_then(|e| Some((e, self.fragment(e.keyframe.offset)?))) {
            None => (self.media_end, info.duration),
            Some((e, g)) => {
                // The end keyframe begins its fragment: cut there; otherwise after that fragment,
                // before the next that holds a keyframe (fragments not cut at keyframes: the
                // time of one without any is not known here).
                let begins = self.first_in(info, g).map(|k| k.offset) == Some(e.keyframe.offset);
                let cut = if begins { g } else { g + 1 };
                let cut = (cut..self.moofs.len())
                    .find(|&c| self.first_in(info, c).is_some())
                    .unwrap_or(self.moofs.len());
                match self.moofs.get(cut) {
                    Some(&m) => (
                        m,
                        self.first_in(info, cut).map_or(info.duration, |k| k.time),
                    ),
                    None => (self.media_end, info.duration),
                }
            }
        };
        Ok((lo..hi.max(lo), start_time, end_time))
    }

    /// The id of the video track (the first), if there is one.
    pub fn video_track(&self) -> Option<u32> {
        let (_, _, tracks) = parse_moov(&self.moov).ok()?;
        tracks.iter().find(|t| &t.handler == b"vide").map(|t| t.id)
    }

    /// Whether the fragment whose `moof` is at `at` begins with a keyframe (of `info`): the
    /// first sample of its `video` track (from [`Fragments::video_track`]) is one, so a segment
    /// that begins with the fragment decodes on its own. Without video (fragments of audio
    /// alone): true.
    pub fn begins_with_keyframe(
        &self,
        data: &[u8],
        info: &MediaInfo,
        at: u64,
        video: Option<u32>,
    ) -> bool {
        let Some(video) = video else {
            return true;
        };
        first_sample(data, at, video).is_some_and(|first| {
            info.keyframes
                .binary_search_by_key(&first, |k| k.offset)
                .is_ok()
        })
    }

    /// An error when the fragments address their samples by absolute file offsets (they cannot
    /// be served apart from the file, as segments or behind a clip's head).
    pub fn check_movable(&self, data: &[u8]) -> Result<()> {
        decode_starts(data, &self.moofs).map(|_| ())
    }

    /// The title's own `ftyp` and `moov`: what its fragments play from (an HLS init segment).
    pub fn init(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(f) = self.ftyp {
            bx(&mut out, b"ftyp", |o| o.extend_from_slice(f));
        }
        bx(&mut out, b"moov", |o| {
            o.extend_from_slice(self.moov.clone().rest())
        });
        out
    }

    /// A clip's head for fragments from `lo`: `ftyp`, and `moov` without `mehd` and with edit
    /// lists from each track's first decode time there.
    fn head(&self, data: &[u8], lo: u64) -> Result<Vec<u8>> {
        let mut head = Vec::new();
        if let Some(f) = self.ftyp {
            bx(&mut head, b"ftyp", |o| o.extend_from_slice(f));
        }
        let first = self.moofs.partition_point(|&m| m < lo);
        let starts = decode_starts(data, self.moofs.get(first..).unwrap_or_default())?;
        let (movie_scale, _, tracks) = parse_moov(&self.moov)?;
        let edits = edits(&tracks, movie_scale, &starts);
        let mut moov_out = Vec::new();
        let mut r = self.moov.clone();
        while let Some(b) = next_box(&mut r, false)? {
            let body = b.body.clone().rest();
            match &b.kind {
                b"mvex" => {
                    let mut m = Reader::new(body, 0, "mp4 mvex");
                    let mut kept: Vec<(FourCC, &[u8])> = Vec::new();
                    while let Some(mut c) = next_box(&mut m, false)? {
                        if &c.kind != b"mehd" {
                            kept.push((c.kind, c.body.rest()));
                        }
                    }
                    bx(&mut moov_out, b"mvex", |o| {
                        for (k, body) in kept {
                            bx(o, &k, |o| o.extend_from_slice(body));
                        }
                    });
                }
                b"trak" => trak(&mut moov_out, &b.body, &edits)?,
                _ => bx(&mut moov_out, &b.kind, |o| o.extend_from_slice(body)),
            }
        }
        bx(&mut head, b"moov", |o| o.extend_from_slice(&moov_out));
        Ok(head)
    }
}

/// See the module documentation; `info` is the title's index.
pub fn fragmented(
    data: &[u8],
    info: &MediaInfo,
    from: MediaTime,
    to: Option<MediaTime>,
) -> Result<Clip> {
    let frags = Fragments::scan(data)?;
    let (body, start, end) = frags.span(info, from, to)?;
    let head = frags.head(data, body.start)?;
    Ok(Clip {
        head,
        body: std::iter::once(body).collect(),
        start,
        end,
    })
}

/// Each track's first decode time (its first `tfdt`) in the fragments at `moofs`, looked for in
/// the first few of them, by track id. Fragments whose `tfhd` gives an absolute base data
/// offset cannot be moved behind a new head: an error.
fn decode_starts(data: &[u8], moofs: &[u64]) -> Result<Vec<(u32, u64)>> {
    let mut out: Vec<(u32, u64)> = Vec::new();
    for &moof in moofs.iter().take(16) {
        let mut r = Reader::new(data.get(moof as usize..).unwrap_or(&[]), moof, "mp4");
        let Some(b) = next_box(&mut r, true)? else {
            break;
        };
        let mut m = b.body;
        while let Some(traf) = next_box(&mut m, false)? {
            if &traf.kind != b"traf" {
                continue;
            }
            let (mut id, mut start) = (None, None);
            let mut t = traf.body;
            while let Some(mut c) = next_box(&mut t, false)? {
                match &c.kind {
                    b"tfhd" => {
                        let (_, flags) = full_box(&mut c.body)?;
                        if flags & 0x01 != 0 {
                            return Err(Error::malformed(
                                "mp4 clip",
                                "its fragments address their samples by absolute file offsets \
                                 (tfhd base-data-offset); remux it with \
                                 -movflags +default_base_moof",
                            ));
                        }
                        id = Some(c.body.u32()?);
                    }
                    b"tfdt" => {
                        let (v, _) = full_box(&mut c.body)?;
                        start = Some(if v == 1 {
                            c.body.u64()?
                        } else {
                            u64::from(c.body.u32()?)
                        });
                    }
                    _ => {}
                }
            }
            if let (Some(id), Some(start)) = (id, start) {
                if !out.iter().any(|(i, _)| *i == id) {
                    out.push((id, start));
                }
            }
        }
    }
    Ok(out)
}

/// Where track `id`'s first sample in the fragment whose `moof` is at `moof` lies in the file:
/// its `trun`'s data offset from the `moof` (`default-base-is-moof`; fragments with a base data
/// offset are refused before, `check_movable`). `None`: not said, or the track has no sample
/// there.
fn first_sample(data: &[u8], moof: u64, id: u32) -> Option<u64> {
    let mut r = Reader::new(data.get(usize::try_from(moof).ok()?..)?, moof, "mp4");
    let mut m = next_box(&mut r, true).ok()??.body;
    while let Some(traf) = next_box(&mut m, false).ok()? {
        if &traf.kind != b"traf" {
            continue;
        }
        let (mut ours, mut t) = (false, traf.body);
        while let Some(mut c) = next_box(&mut t, false).ok()? {
            match &c.kind {
                b"tfhd" => {
                    full_box(&mut c.body).ok()?;
                    ours = c.body.u32().ok()? == id;
                }
                b"trun" if ours => {
                    let (_, flags) = full_box(&mut c.body).ok()?;
                    let count = c.body.u32().ok()?;
                    if flags & 0x01 == 0 || count == 0 {
                        return None;
                    }
                    let offset = c.body.u32().ok()? as i32;
                    return moof.checked_add_signed(i64::from(offset));
                }
                _ => {}
            }
        }
    }
    None
}

/// A track's edit in the clip: its id, how late it starts (an empty edit, movie ticks), and the
/// first media time it shows.
type Edit = (u32, u64, u64);

/// Each track's edit in a clip whose fragments begin at the decode times `starts`: the lead
/// track (the first video track, else the first track) is shown from its first decode time
/// there, at zero; every other track keeps its place against it as the title has it (its empty
/// edits and its edit's media time included), starting later (an empty edit) or with its
/// first samples skipped.
fn edits(tracks: &[Track<'_>], movie_scale: u32, starts: &[(u32, u64)]) -> Vec<Edit> {
    let with_start: Vec<(&Track<'_>, u64)> = tracks
        .iter()
        .filter_map(|t| Some((t, starts.iter().find(|(id, _)| *id == t.id)?.1)))
        .collect();
    // Where the title shows a track's media time `m`, in its ticks: its delay, then `m` less
    // its edit's first media time.
    let shown = |t: &Track<'_>, m: u64| {
        let delay = MediaTime::new(i64::try_from(t.delay).unwrap_or(i64::MAX), movie_scale);
        let m = i64::try_from(m).unwrap_or(i64::MAX);
        MediaTime::new(
            delay
                .rescale(t.timescale)
                .saturating_add(m.saturating_sub(t.media_time)),
            t.timescale,
        )
    };
    let lead = with_start
        .iter()
        .find(|(t, _)| &t.handler == b"vide")
        .or(with_start.first());
    let Some(&(lead, lead_start)) = lead else {
        return Vec::new();
    };
    // Each track is shown in the clip from the media time `base` (its edit's media time, from
    // its first decode time there): where the title shows that, against where it shows the
    // lead's.
    let base = |t: &Track<'_>, start: u64| {
        u64::try_from(t.media_time)
            .unwrap_or(0)
            .saturating_add(start)
    };
    let zero = shown(lead, base(lead, lead_start));
    with_start
        .iter()
        .map(|&(t, start)| {
            let base = base(t, start);
            let late = shown(t, base)
                .ticks
                .saturating_sub(zero.rescale(t.timescale));
            if late >= 0 {
                let empty = MediaTime::new(late, t.timescale).rescale(movie_scale);
                (t.id, empty.max(0) as u64, base)
            } else {
                (t.id, 0, base.saturating_add(late.unsigned_abs()))
            }
        })
        .collect()
}

/// A `trak` whose edit list is its `edits` entry (an empty edit for a track that starts late,
/// then the media from its first shown time), so the clip's timeline begins at zero like any
/// file's; its other boxes as they were.
fn trak(out: &mut Vec<u8>, body: &Reader<'_>, edits: &[Edit]) -> Result<()> {
    let t = parse_trak(body)?;
    let Some(&(_, empty, media_time)) = edits.iter().find(|(id, _, _)| *id == t.id) else {
        bx(out, b"trak", |o| o.extend_from_slice(body.clone().rest()));
        return Ok(());
    };
    let mut kids = Vec::new();
    let mut r = body.clone();
    while let Some(mut c) = next_box(&mut r, false)? {
        kids.push((c.kind, c.body.rest()));
    }
    bx(out, b"trak", |o| {
        for (kind, body) in kids {
            match &kind {
                b"edts" => {}
                b"tkhd" => {
                    bx(o, b"tkhd", |o| o.extend_from_slice(body));
                    // Duration 0: the whole of the (fragmented) media, from `media_time`.
                    bx(o, b"edts", |o| {
                        full(o, b"elst", 1, 0, |o| {
                            put32(o, if empty > 0 { 2 } else { 1 });
                            if empty > 0 {
                                put64(o, empty);
                                put64(o, u64::MAX); // -1: empty
                                put32(o, 0x0001_0000);
                            }
                            put64(o, 0);
                            put64(o, media_time);
                            put32(o, 0x0001_0000);
                        });
                    });
                }
                _ => bx(o, &kind, |o| o.extend_from_slice(body)),
            }
        }
    });
    Ok(())
}
