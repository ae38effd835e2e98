//! A clip of a fragmented MP4: its `ftyp` and `moov` (the movie's fragment duration, `mehd`,
//! dropped, since the clip is shorter; each track's edit list starting at the clip's first
//! decode time, so that its timeline begins at zero), then the whole fragments (`moof` + `mdat`) from the one
//! holding the keyframe at or before the start to the one that begins at or after the end.

use crate::clip::Clip;
use crate::cmaf::boxes::{bx, full, u32 as put32, u64 as put64};
use crate::error::{Error, Result};
use crate::info::MediaInfo;
use crate::mp4::{full_box, next_box, parse_trak, FourCC};
use crate::read::Reader;
use crate::time::MediaTime;

/// See the module documentation; `info` is the title's index.
pub fn fragmented(
    data: &[u8],
    info: &MediaInfo,
    from: MediaTime,
    to: Option<MediaTime>,
) -> Result<Clip> {
    let (start, end) = info.clip_span(from, to)?;
    let mut top = Reader::new(data, 0, "mp4");
    let (mut ftyp, mut moov) = (None, None);
    let mut moofs = Vec::new();
    let mut whole = 0;
    loop {
        match next_box(&mut top, false) {
            Ok(Some(mut b)) => {
                match &b.kind {
                    b"ftyp" => ftyp = Some(b.body.rest()),
                    b"moov" => moov = Some(b.body),
                    b"moof" => moofs.push(b.start),
                    _ => {}
                }
                whole = top.position();
            }
            Ok(None) => break,
            // A truncated last box: the clip ends before it.
            Err(Error::Truncated { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    let moov = moov.ok_or_else(|| Error::malformed("mp4", "no moov box"))?;
    // The fragment (its moof's offset) that holds a sample at `offset`.
    let fragment = |offset: u64| {
        moofs[..moofs.partition_point(|&m| m <= offset)]
            .last()
            .copied()
    };
    let first_in = |f: Option<u64>| info.keyframes.iter().find(|k| fragment(k.offset) == f);
    let start_fragment = fragment(start.keyframe.offset);
    let lo = start_fragment
        .ok_or_else(|| Error::malformed("mp4 clip", "the keyframe is in no fragment"))?;
    let start_time = first_in(start_fragment).map_or(start.keyframe.time, |k| k.time);
    let (hi, end_time) = match end {
        None => (whole, info.duration),
        Some(e) => {
            let f = fragment(e.keyframe.offset);
            // The end keyframe begins its fragment: cut there; otherwise after that fragment.
            let cut = if first_in(f).map(|k| k.offset) == Some(e.keyframe.offset) {
                f
            } else {
                moofs.iter().copied().find(|&m| Some(m) > f)
            };
            match cut {
                Some(m) => (m, first_in(Some(m)).map_or(info.duration, |k| k.time)),
                None => (whole, info.duration),
            }
        }
    };
    let mut head = Vec::new();
    if let Some(f) = ftyp {
        bx(&mut head, b"ftyp", |o| o.extend_from_slice(f));
    }
    let starts = decode_starts(data, lo)?;
    let mut moov_out = Vec::new();
    let mut r = moov;
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
            b"trak" => trak(&mut moov_out, &b.body, &starts)?,
            _ => bx(&mut moov_out, &b.kind, |o| o.extend_from_slice(body)),
        }
    }
    bx(&mut head, b"moov", |o| o.extend_from_slice(&moov_out));
    Ok(Clip {
        head,
        body: lo..hi.max(lo),
        start: start_time,
        end: end_time,
    })
}

/// Each track's first decode time in the fragment at `moof` (its `tfdt`), by track id.
fn decode_starts(data: &[u8], moof: u64) -> Result<Vec<(u32, u64)>> {
    let mut r = Reader::new(data.get(moof as usize..).unwrap_or(&[]), moof, "mp4");
    let Some(b) = next_box(&mut r, true)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
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
                    full_box(&mut c.body)?;
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
            out.push((id, start));
        }
    }
    Ok(out)
}

/// A `trak` whose edit list starts presentation at the clip's first decode time (`starts`), so
/// the clip's timeline begins at zero like any file's; its other boxes as they were.
fn trak(out: &mut Vec<u8>, body: &Reader<'_>, starts: &[(u32, u64)]) -> Result<()> {
    let t = parse_trak(body)?;
    let Some(&(_, start)) = starts.iter().find(|(id, _)| *id == t.id) else {
        bx(out, b"trak", |o| o.extend_from_slice(body.clone().rest()));
        return Ok(());
    };
    let media_time = u64::try_from(t.media_time)
        .unwrap_or(0)
        .saturating_add(start);
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
                            put32(o, 1);
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

/// The title's own `ftyp` and `moov`: the init segment its fragments play from.
pub fn init(data: &[u8]) -> Result<Vec<u8>> {
    let mut top = Reader::new(data, 0, "mp4");
    let mut out = Vec::new();
    while let Some(mut b) = next_box(&mut top, true)? {
        match &b.kind {
            b"ftyp" | b"moov" => {
                let kind = b.kind;
                bx(&mut out, &kind, |o| o.extend_from_slice(b.body.rest()));
            }
            b"moof" => break,
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(Error::malformed("mp4", "no moov box"));
    }
    Ok(out)
}
