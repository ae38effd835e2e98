//! ISO base media file format (MP4, fragmented MP4): the seek index.
//!
//! ```text
//! ftyp | moov ----------------------------------------- | mdat ... | moof mdat | moof mdat ...
//!        mvhd  trak* ------------------------  mvex
//!              tkhd edts/elst mdia ----------   trex*
//!                             mdhd hdlr minf/stbl (see stbl.rs)
//! moof: mfhd traf* (tfhd tfdt trun*)            (fragments, ISO/IEC 14496-12 §8.8)
//! ```
//! The index may sit before or after `mdat`: the whole file is in memory, so the top level is walked
//! box by box (O(number of top-level boxes)) and `moov` is found wherever it is. Fragmented files
//! are indexed by walking every `moof`, which makes `sidx` and `mfra` unnecessary (they are skipped).

pub mod growing;
pub mod remux;
pub mod stbl;

use crate::error::{Error, Result};
use crate::info::{AudioInfo, Container, Keyframe, MediaInfo, VideoInfo};
use crate::read::Reader;
use crate::time::{FrameRate, MediaTime};
use stbl::SampleTable;

pub(crate) type FourCC = [u8; 4];

/// One box: its type, its body, and the absolute offset of its first header byte.
pub(crate) struct Mp4Box<'a> {
    pub kind: FourCC,
    pub body: Reader<'a>,
    pub start: u64,
}

/// Reads the next box header from `r`; `Ok(None)` at the end. A box that claims more bytes than its
/// parent holds is an error, except an `mdat` at the top level of a truncated file, which is clamped
/// (`lenient`).
pub(crate) fn next_box<'a>(r: &mut Reader<'a>, lenient: bool) -> Result<Option<Mp4Box<'a>>> {
    if r.remaining() == 0 {
        return Ok(None);
    }
    let start = r.position();
    let size = u64::from(r.u32()?);
    let kind = r.fourcc()?;
    let (header, size) = match size {
        1 => (16u64, r.u64()?),
        0 => (8, 8 + r.remaining() as u64),
        s => (8, s),
    };
    let body_len = size.checked_sub(header).ok_or_else(|| {
        Error::malformed(
            "mp4 box",
            format!("{} at {start} has size {size}", show(kind)),
        )
    })?;
    let body_len = if body_len > r.remaining() as u64 {
        if lenient && &kind == b"mdat" {
            r.remaining() as u64
        } else {
            return Err(Error::Truncated {
                what: "mp4 box",
                offset: start,
                needed: size,
                available: r.remaining() as u64 + header,
            });
        }
    } else {
        body_len
    };
    let body = r.sub(body_len as usize, "mp4 box")?;
    Ok(Some(Mp4Box { kind, body, start }))
}

pub(crate) fn show(k: FourCC) -> String {
    k.iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

/// Finds the first child box of the given type.
pub(crate) fn child<'a>(parent: &Reader<'a>, kind: &FourCC) -> Result<Option<Reader<'a>>> {
    let mut r = parent.clone();
    while let Some(b) = next_box(&mut r, false)? {
        if &b.kind == kind {
            return Ok(Some(b.body));
        }
    }
    Ok(None)
}

/// Version and flags of a full box.
pub(crate) fn full_box(r: &mut Reader<'_>) -> Result<(u8, u32)> {
    let v = r.u32()?;
    Ok(((v >> 24) as u8, v & 0x00ff_ffff))
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Trex {
    duration: u32,
    size: u32,
    flags: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Track<'a> {
    pub(crate) id: u32,
    pub(crate) handler: FourCC,
    pub(crate) timescale: u32,
    /// First media time shown, from the edit list (0 without one).
    pub(crate) media_time: i64,
    /// How late that media time is shown: the empty edits before it (movie ticks; a track that
    /// starts after the others).
    pub(crate) delay: u64,
    pub(crate) codec: String,
    pub(crate) width: Option<u32>,
    pub(crate) height: Option<u32>,
    pub(crate) channels: Option<u16>,
    pub(crate) sample_rate: Option<u32>,
    pub(crate) stbl: Option<Reader<'a>>,
    /// The first sample entry: its type and body (codec configuration boxes inside).
    pub(crate) entry: Option<(FourCC, Reader<'a>)>,
    pub(crate) trex: Trex,
}

/// Whether an MP4 holds movie fragments (`moof` at the top level).
pub fn is_fragmented(data: &[u8]) -> bool {
    let mut top = Reader::new(data, 0, "mp4");
    while let Ok(Some(b)) = next_box(&mut top, true) {
        if &b.kind == b"moof" {
            return true;
        }
    }
    false
}

/// Indexes an MP4 held in memory.
pub fn index(data: &[u8]) -> Result<MediaInfo> {
    let mut top = Reader::new(data, 0, "mp4");
    let mut moov = None;
    let mut moofs = Vec::new();
    loop {
        match next_box(&mut top, true) {
            Ok(Some(b)) => match &b.kind {
                // The first, as players take it (ffmpeg skips a duplicated moov).
                b"moov" if moov.is_none() => moov = Some(b.body),
                b"moof" => moofs.push((b.start, b.body)),
                _ => {}
            },
            Ok(None) => break,
            // A truncated file: index what is complete.
            Err(Error::Truncated { .. }) if moov.is_some() => break,
            Err(e) => return Err(e),
        }
    }
    let moov = moov.ok_or_else(|| {
        Error::malformed(
            "mp4",
            "no moov box (the index is missing; the file may be truncated)",
        )
    })?;
    from_boxes(&moov, &moofs, data.len() as u64)
}

/// Indexes an unfragmented MP4 of `file_len` bytes from its `moov` box alone (header included),
/// found at `at`: what a title whose bytes are elsewhere (object storage) reads to be indexed.
/// Sample offsets are checked against `file_len` as they would be against the whole file.
pub fn index_moov(moov_box: &[u8], at: u64, file_len: u64) -> Result<MediaInfo> {
    let mut top = Reader::new(moov_box, at, "mp4");
    match next_box(&mut top, false)? {
        Some(b) if &b.kind == b"moov" => from_boxes(&b.body, &[], file_len),
        _ => Err(Error::malformed("mp4", "not a moov box")),
    }
}

/// A top-level box as its header says: its type, where it starts, and its whole size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopBox {
    pub kind: [u8; 4],
    pub start: u64,
    pub size: u64,
}

/// Reads the top-level box header at `at` from `head` (the file's bytes from `at`: 16 are enough;
/// fewer only at its end) in a file of `file_len` bytes. A box that claims more than the file
/// holds is an error, except `mdat` (clamped, as a truncated file's is when it is in memory).
pub fn top_box(head: &[u8], at: u64, file_len: u64) -> Result<TopBox> {
    let mut r = Reader::new(head, at, "mp4 box");
    let size = u64::from(r.u32()?);
    let kind = r.fourcc()?;
    let left = file_len.saturating_sub(at);
    let (header, size) = match size {
        1 => (16u64, r.u64()?),
        0 => (8, left),
        s => (8, s),
    };
    if size < header {
        return Err(Error::malformed(
            "mp4 box",
            format!("{} at {at} has size {size}", show(kind)),
        ));
    }
    let size = if size > left {
        if &kind != b"mdat" {
            return Err(Error::Truncated {
                what: "mp4 box",
                offset: at,
                needed: size,
                available: left,
            });
        }
        left
    } else {
        size
    };
    Ok(TopBox {
        kind,
        start: at,
        size,
    })
}

/// The index from a `moov` body and the `moof`s after it (with where each starts).
fn from_boxes(moov: &Reader<'_>, moofs: &[(u64, Reader<'_>)], data_len: u64) -> Result<MediaInfo> {
    let (movie_scale, movie_duration, mut tracks) = parse_moov(moov)?;

    let video_pos = tracks.iter().position(|t| &t.handler == b"vide");
    let audio = audio_info(&tracks);
    // Without video, a fragmented title is cut at its fragments: the first sample of the first
    // audio track in each is a cut point.
    let audio_pos = (video_pos.is_none() && !moofs.is_empty())
        .then(|| tracks.iter().position(|t| &t.handler == b"soun"))
        .flatten();
    let Some(vi) = video_pos.or(audio_pos) else {
        return Ok(MediaInfo {
            container: Container::Mp4,
            duration: MediaTime::new(movie_duration as i64, movie_scale),
            video: None,
            audio,
            keyframes: Vec::new(),
        });
    };
    let track = tracks.swap_remove(vi);
    let mut table = match &track.stbl {
        Some(stbl) => stbl::expand(stbl, data_len)?,
        None => SampleTable::default(),
    };
    let mut fragment_starts = Vec::with_capacity(moofs.len());
    for (start, body) in moofs {
        fragment_starts.push(table.len());
        stbl::append_fragment(&mut table, *start, body, track.id, track.trex, data_len)?;
    }
    table.clip_to(data_len);
    if audio_pos.is_some() {
        table.keyframe.iter_mut().for_each(|k| *k = false);
        for &i in &fragment_starts {
            if let Some(k) = table.keyframe.get_mut(i) {
                *k = true;
            }
        }
    }
    // (A fragmented title's clips keep its fragments and edit lists: it counts from its first
    // frame as before.)
    let (keyframes, duration, frame_delta) = table.keyframes(track.media_time, moofs.is_empty());
    let frame_rate =
        frame_delta.and_then(|d| FrameRate::from_frame_duration(u64::from(track.timescale), d));
    Ok(MediaInfo {
        container: Container::Mp4,
        duration: MediaTime::new(duration, track.timescale),
        video: video_pos.map(|_| VideoInfo {
            codec: track.codec,
            width: track.width,
            height: track.height,
            frame_rate,
        }),
        audio,
        keyframes: keyframes
            .into_iter()
            .map(|(t, offset)| Keyframe {
                time: MediaTime::new(t, track.timescale),
                offset,
            })
            .collect(),
    })
}

/// The first audio track's description.
fn audio_info(tracks: &[Track<'_>]) -> Option<AudioInfo> {
    tracks
        .iter()
        .find(|t| &t.handler == b"soun")
        .map(|t| AudioInfo {
            codec: t.codec.clone(),
            sample_rate: t.sample_rate,
            channels: t.channels,
        })
}

pub(crate) fn parse_moov<'a>(moov: &Reader<'a>) -> Result<(u32, u64, Vec<Track<'a>>)> {
    let mut scale = 1;
    let mut duration = 0;
    let mut tracks = Vec::new();
    let mut trexes = Vec::new();
    let mut r = moov.clone();
    while let Some(b) = next_box(&mut r, false)? {
        let mut body = b.body;
        match &b.kind {
            b"mvhd" => {
                let (v, _) = full_box(&mut body)?;
                if v == 1 {
                    body.skip(16)?;
                    scale = body.u32()?;
                    duration = body.u64()?;
                } else {
                    body.skip(8)?;
                    scale = body.u32()?;
                    duration = u64::from(body.u32()?);
                }
            }
            b"trak" => tracks.push(parse_trak(&body)?),
            b"mvex" => {
                let mut m = body;
                while let Some(t) = next_box(&mut m, false)? {
                    if &t.kind == b"trex" {
                        let mut t = t.body;
                        full_box(&mut t)?;
                        let id = t.u32()?;
                        t.u32()?; // default_sample_description_index
                        let trex = Trex {
                            duration: t.u32()?,
                            size: t.u32()?,
                            flags: t.u32()?,
                        };
                        trexes.push((id, trex));
                    }
                }
            }
            _ => {}
        }
    }
    for t in &mut tracks {
        if let Some((_, trex)) = trexes.iter().find(|(id, _)| *id == t.id) {
            t.trex = *trex;
        }
    }
    Ok((scale.max(1), duration, tracks))
}

pub(crate) fn parse_trak<'a>(trak: &Reader<'a>) -> Result<Track<'a>> {
    let mut t = Track::default();
    if let Some(mut tkhd) = child(trak, b"tkhd")? {
        let (v, _) = full_box(&mut tkhd)?;
        tkhd.skip(if v == 1 { 16 } else { 8 })?;
        t.id = tkhd.u32()?;
    }
    if let Some(edts) = child(trak, b"edts")? {
        if let Some(mut elst) = child(&edts, b"elst")? {
            let (v, _) = full_box(&mut elst)?;
            let n = elst.u32()?;
            let entry = if v == 1 { 20 } else { 12 };
            let n = elst.check_count(u64::from(n), entry)?;
            for _ in 0..n {
                let (duration, media_time) = if v == 1 {
                    (elst.u64()?, elst.u64()? as i64)
                } else {
                    (u64::from(elst.u32()?), i64::from(elst.u32()? as i32))
                };
                elst.skip(4)?; // media rate
                if media_time >= 0 {
                    t.media_time = media_time;
                    break;
                }
                // An empty edit (-1): the track is shown that much later than the movie starts.
                t.delay = t.delay.saturating_add(duration);
            }
        }
    }
    let mdia = child(trak, b"mdia")?.ok_or_else(|| Error::malformed("mp4 trak", "no mdia box"))?;
    if let Some(mut mdhd) = child(&mdia, b"mdhd")? {
        let (v, _) = full_box(&mut mdhd)?;
        mdhd.skip(if v == 1 { 16 } else { 8 })?;
        t.timescale = mdhd.u32()?.max(1);
    }
    if let Some(mut hdlr) = child(&mdia, b"hdlr")? {
        full_box(&mut hdlr)?;
        hdlr.skip(4)?;
        t.handler = hdlr.fourcc()?;
    }
    if let Some(minf) = child(&mdia, b"minf")? {
        if let Some(stbl) = child(&minf, b"stbl")? {
            if let Some(mut stsd) = child(&stbl, b"stsd")? {
                full_box(&mut stsd)?;
                if stsd.u32()? > 0 {
                    if let Some(entry) = next_box(&mut stsd, false)? {
                        t.entry = Some((entry.kind, entry.body.clone()));
                        describe(&mut t, entry.kind, entry.body)?;
                    }
                }
            }
            t.stbl = Some(stbl);
        }
    }
    Ok(t)
}

/// Codec and picture/sound parameters from the first sample entry.
fn describe(t: &mut Track<'_>, kind: FourCC, mut e: Reader<'_>) -> Result<()> {
    t.codec = match &kind {
        b"avc1" | b"avc3" => "h264".into(),
        b"hvc1" | b"hev1" => "hevc".into(),
        b"vp09" => "vp9".into(),
        b"vp08" => "vp8".into(),
        b"av01" => "av1".into(),
        b"mp4a" => "aac".into(),
        b"Opus" => "opus".into(),
        b"ac-3" => "ac3".into(),
        b"ec-3" => "eac3".into(),
        b".mp3" => "mp3".into(),
        other => show(*other),
    };
    match &t.handler {
        b"vide" => {
            e.skip(24)?; // reserved, data_reference_index, pre_defined, reserved
            t.width = Some(u32::from(e.u16()?));
            t.height = Some(u32::from(e.u16()?));
        }
        b"soun" => {
            e.skip(8)?; // reserved, data_reference_index
            let version = e.u16()?;
            e.skip(6)?; // revision, vendor
            t.channels = Some(e.u16()?);
            e.skip(6)?; // sample size, pre_defined, reserved
            t.sample_rate = Some(e.u32()? >> 16);
            if version == 2 {
                // QuickTime's version 2: the fields above are placeholders; the rate (a
                // 64-bit float) and the channels follow the size of the structure.
                e.skip(4)?;
                let rate = f64::from_bits(e.u64()?);
                let channels = e.u32()?;
                if rate.is_finite() && (1.0..=1_000_000.0).contains(&rate) {
                    t.sample_rate = Some(rate.round() as u32);
                }
                t.channels = u16::try_from(channels).ok().filter(|c| *c > 0);
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn boxes_that_overrun_their_parent_are_errors() {
        let mut data = bx(b"moov", &bx(b"trak", &[]));
        data[3] = 200; // moov claims 200 bytes
        assert!(matches!(index(&data), Err(Error::Truncated { .. })));
        // size 3 is smaller than its own header
        let bad = [0, 0, 0, 3, b'f', b'r', b'e', b'e'];
        assert!(index(&bad).is_err());
    }

    /// A QuickTime sound description of version 2 (more than two channels, high rates): its
    /// rate and channels are past the placeholders of version 0's fields.
    #[test]
    fn a_version_2_sound_entry_gives_its_own_rate_and_channels() {
        let mut e = vec![0; 6];
        e.extend_from_slice(&1u16.to_be_bytes()); // data_reference_index
        e.extend_from_slice(&2u16.to_be_bytes()); // version
        e.extend_from_slice(&[0; 6]); // revision, vendor
        e.extend_from_slice(&[0, 3, 0, 16, 0xff, 0xfe, 0, 0]); // placeholders
        e.extend_from_slice(&0x0001_0000u32.to_be_bytes()); // rate 1.0
        e.extend_from_slice(&72u32.to_be_bytes()); // size of the structure
        e.extend_from_slice(&96_000f64.to_bits().to_be_bytes());
        e.extend_from_slice(&6u32.to_be_bytes());
        let mut t = Track {
            handler: *b"soun",
            ..Track::default()
        };
        describe(&mut t, *b"lpcm", Reader::new(&e, 0, "stsd")).unwrap();
        assert_eq!((t.sample_rate, t.channels), (Some(96_000), Some(6)));
    }

    #[test]
    fn missing_moov_is_reported() {
        let data = bx(b"ftyp", b"isom");
        let e = index(&data).unwrap_err().to_string();
        assert!(e.contains("no moov"), "{e}");
    }

    /// Walks the top level with `top_box` (as a title in object storage is indexed) and
    /// indexes its `moov` alone.
    fn by_headers(data: &[u8]) -> Result<MediaInfo> {
        let (mut at, len) = (0u64, data.len() as u64);
        while at < len {
            let b = top_box(&data[at as usize..], at, len)?;
            if &b.kind == b"moov" {
                let moov = &data[at as usize..(at + b.size) as usize];
                return index_moov(moov, at, len);
            }
            at += b.size;
        }
        Err(Error::malformed("mp4", "no moov"))
    }

    #[test]
    fn box_headers_and_the_moov_alone_give_the_whole_files_index() {
        for name in ["faststart.mp4", "ntsc-moov-at-end.mp4"] {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/").to_string() + name;
            let data = std::fs::read(path).unwrap();
            let whole = index(&data).unwrap();
            assert!(!whole.keyframes.is_empty());
            assert_eq!(by_headers(&data).unwrap(), whole, "{name}");
        }
    }

    #[test]
    fn a_second_moov_is_ignored_as_players_ignore_it_whole_or_by_headers() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/faststart.mp4");
        let data = std::fs::read(path).unwrap();
        let first = index(&data).unwrap();
        // A copy of the file with a second, broken moov (an empty one) right after the first.
        let mut at = 0usize;
        let mut twice = Vec::new();
        while at < data.len() {
            let b = top_box(&data[at..], at as u64, data.len() as u64).unwrap();
            let end = at + b.size as usize;
            twice.extend_from_slice(&data[at..end]);
            if &b.kind == b"moov" {
                twice.extend_from_slice(&bx(b"moov", &[]));
            }
            at = end;
        }
        // Its samples moved by 8 bytes: compare what does not depend on offsets.
        let whole = index(&twice).unwrap();
        assert_eq!(whole.keyframes.len(), first.keyframes.len());
        assert_eq!(by_headers(&twice).unwrap(), whole);
    }

    #[test]
    fn a_top_box_header_gives_its_size_64_bit_or_to_the_end_and_past_the_end_is_refused() {
        let mut large = vec![0, 0, 0, 1];
        large.extend_from_slice(b"mdat");
        large.extend_from_slice(&100u64.to_be_bytes());
        let b = top_box(&large, 40, 140).unwrap();
        assert_eq!((b.kind, b.start, b.size), (*b"mdat", 40, 100));
        let to_end = [0, 0, 0, 0, b'm', b'o', b'o', b'v'];
        assert_eq!(top_box(&to_end, 10, 50).unwrap().size, 40);
        // A moov past the end is an error; an mdat past it is clamped (a truncated file).
        let over = [0, 0, 1, 0, b'm', b'o', b'o', b'v'];
        assert!(matches!(
            top_box(&over, 0, 100),
            Err(Error::Truncated { .. })
        ));
        let over = [0, 0, 1, 0, b'm', b'd', b'a', b't'];
        assert_eq!(top_box(&over, 0, 100).unwrap().size, 100);
        assert!(top_box(&[0, 0, 0, 7, b'f', b'r', b'e', b'e'], 0, 100).is_err());
        assert!(top_box(&[0, 0, 0], 0, 100).is_err());
        assert!(index_moov(&bx(b"free", &[]), 0, 8).is_err());
    }

    #[test]
    fn random_mutations_of_a_moov_read_alone_never_panic() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/faststart.mp4");
        let data = std::fs::read(path).unwrap();
        let mut at = 0u64;
        let moov = loop {
            let b = top_box(&data[at as usize..], at, data.len() as u64).unwrap();
            if &b.kind == b"moov" {
                break data[at as usize..(at + b.size) as usize].to_vec();
            }
            at += b.size;
        };
        crate::mutations(&moov, 11, 3_000, |d| {
            let _ = index_moov(d, at, data.len() as u64);
            let _ = top_box(d, at, data.len() as u64);
        });
    }

    #[test]
    fn random_mutations_never_panic() {
        let mut base = bx(b"ftyp", b"isom\0\0\0\0");
        base.extend(bx(
            b"moov",
            &bx(b"trak", &bx(b"mdia", &bx(b"hdlr", b"\0\0\0\0\0\0\0\0vide"))),
        ));
        crate::mutations(&base, 3, 20_000, |d| {
            let _ = index(d);
        });
    }
}
