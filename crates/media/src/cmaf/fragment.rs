//! The head of one fragment: `moof` (a `traf` per track with samples) and the `mdat` header.
//! The samples' bytes follow it on the wire in the order of the runs, each run's samples in
//! order; `trun`'s data offsets (from the start of the `moof`, `default-base-is-moof`) point
//! there.

use super::boxes::{bx, full, u32, u64};
use super::{AUDIO_TRACK, VIDEO_TRACK};
use crate::error::{Error, Result};

/// One sample of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Ticks (of its track's timescale) until the next sample.
    pub duration: u32,
    /// Its bytes in the `mdat`.
    pub size: u32,
    /// A sync sample (a video keyframe; every audio frame).
    pub keyframe: bool,
    /// Presentation time minus decode time, in ticks.
    pub cto: i32,
}

/// The samples of one track in a fragment.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    pub track_id: u32,
    /// Decode time of the first sample, in ticks since the track's start.
    pub base_time: u64,
    pub samples: &'a [Sample],
}

/// `trun` flags: data offset, then per sample: duration, size, flags, composition offset.
pub(super) const TRUN_FLAGS: u32 = 0x0001 | 0x0100 | 0x0200 | 0x0400 | 0x0800;
/// `tfhd` flags: the base of data offsets is the `moof`.
const DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// Sample flags: depends on no other (sync), or depends on others and is not a sync sample.
pub(super) const SYNC: u32 = 0x0200_0000;
const NON_SYNC: u32 = 0x0101_0000;

/// `moof` and `mdat` header of fragment `sequence` (counting from 1) carrying `runs`. An error
/// if the samples add up to more than an `mdat` of 32-bit size holds.
pub fn fragment_head(sequence: u32, runs: &[Run<'_>]) -> Result<Vec<u8>> {
    let too_big = || Error::malformed("cmaf fragment", "samples exceed 4 GiB");
    let data: u64 = runs
        .iter()
        .flat_map(|r| r.samples)
        .map(|s| u64::from(s.size))
        .sum();
    let mdat_size = u32::try_from(data + 8).map_err(|_| too_big())?;
    // The moof's size does not depend on the offsets written in it: write it once with
    // offsets relative to the mdat's data, then add the moof's size and the mdat header.
    let mut o = Vec::with_capacity(
        64 + runs
            .iter()
            .map(|r| 40 + 16 * r.samples.len())
            .sum::<usize>(),
    );
    let mut offset_slots = Vec::with_capacity(runs.len());
    bx(&mut o, b"moof", |o| {
        full(o, b"mfhd", 0, 0, |o| u32(o, sequence));
        let mut before: u64 = 0;
        for r in runs {
            bx(o, b"traf", |o| {
                full(o, b"tfhd", 0, DEFAULT_BASE_IS_MOOF, |o| u32(o, r.track_id));
                full(o, b"tfdt", 1, 0, |o| u64(o, r.base_time));
                // Version 1: signed composition offsets.
                full(o, b"trun", 1, TRUN_FLAGS, |o| {
                    u32(o, u32::try_from(r.samples.len()).unwrap_or(u32::MAX));
                    offset_slots.push((o.len(), before));
                    u32(o, 0); // data_offset, patched below
                    for s in r.samples {
                        u32(o, s.duration);
                        u32(o, s.size);
                        u32(o, if s.keyframe { SYNC } else { NON_SYNC });
                        o.extend_from_slice(&s.cto.to_be_bytes());
                    }
                });
            });
            before += r.samples.iter().map(|s| u64::from(s.size)).sum::<u64>();
        }
    });
    let moof = o.len() as u64;
    for (at, before) in offset_slots {
        let offset = i32::try_from(moof + 8 + before).map_err(|_| too_big())?;
        o[at..at + 4].copy_from_slice(&offset.to_be_bytes());
    }
    u32(&mut o, mdat_size);
    o.extend_from_slice(b"mdat");
    Ok(o)
}

/// A producer reference time box: `media_time` (ticks of `track_id`) was received at
/// `ntp_time` (NTP 64-bit format: seconds since 1900 and a 32-bit fraction). Written before
/// the `moof` it refers to.
pub fn prft(track_id: u32, ntp_time: u64, media_time: u64) -> Vec<u8> {
    let mut o = Vec::with_capacity(32);
    // Version 1: 64-bit media time. Flags 8: the time was taken at an arbitrary but consistent
    // point of the chain (here: when the ingest received the frame).
    full(&mut o, b"prft", 1, 8, |o| {
        u32(o, track_id);
        u64(o, ntp_time);
        u64(o, media_time);
    });
    o
}

/// A fragment unit that begins with a [`prft`] (as the live wing writes them): the `prft`'s
/// media time, and where the `moof` after it begins. `None`: no such `prft` at its start.
pub fn read_prft(unit: &[u8]) -> Option<(u64, usize)> {
    let size = prft_size(unit)?;
    let time = u64::from_be_bytes(unit.get(24..32)?.try_into().ok()?);
    Some((time, size))
}

/// The wall clock (NTP format) of the [`prft`] a fragment unit begins with: when the ingest
/// received its frame. `None`: no such `prft` at its start.
pub fn read_prft_ntp(unit: &[u8]) -> Option<u64> {
    prft_size(unit)?;
    Some(u64::from_be_bytes(unit.get(16..24)?.try_into().ok()?))
}

/// The size of the version 1 `prft` box `unit` begins with, all of it present.
fn prft_size(unit: &[u8]) -> Option<usize> {
    let size = usize::try_from(u32::from_be_bytes(unit.get(..4)?.try_into().ok()?)).ok()?;
    if unit.get(4..8)? != b"prft" || *unit.get(8)? != 1 || size < 32 || size > unit.len() {
        return None;
    }
    Some(size)
}

/// What a fragment head's runs hold, per track (video, audio): the decode time of the first
/// sample (`tfdt`) and the number of samples; `None` for a track with no run. Two conversions of
/// a stream that agree here carry the same frames, whatever their bytes (an RTMP publisher's
/// frames hold NAL units its MPEG-TS does not).
pub fn fragment_runs(head: &[u8]) -> Result<[Option<(u64, u32)>; 2]> {
    use crate::mp4::next_box;
    let not = || Error::malformed("cmaf fragment", "no moof");
    let mut r = crate::read::Reader::new(head, 0, "cmaf fragment");
    let moof = match next_box(&mut r, true)? {
        Some(b) if &b.kind == b"moof" => b.body,
        _ => return Err(not()),
    };
    let mut runs = [None, None];
    let mut m = moof;
    while let Some(traf) = next_box(&mut m, false)? {
        if &traf.kind != b"traf" {
            continue;
        }
        let Traf {
            track,
            time,
            mut trun,
            ..
        } = read_traf(&traf.body)?;
        let count = trun.u32()?;
        match track {
            VIDEO_TRACK => runs[0] = Some((time, count)),
            AUDIO_TRACK => runs[1] = Some((time, count)),
            _ => {}
        }
    }
    Ok(runs)
}

/// A `traf`: its track, the decode time of its first sample, and its `trun`'s flags and body
/// (from the sample count on).
pub(super) struct Traf<'a> {
    pub track: u32,
    pub time: u64,
    pub trun_flags: u32,
    pub trun: crate::read::Reader<'a>,
}

pub(super) fn read_traf<'a>(traf: &crate::read::Reader<'a>) -> Result<Traf<'a>> {
    use crate::mp4::{child, full_box};
    let (Some(mut tfhd), Some(mut tfdt), Some(mut trun)) = (
        child(traf, b"tfhd")?,
        child(traf, b"tfdt")?,
        child(traf, b"trun")?,
    ) else {
        return Err(Error::malformed("cmaf fragment", "a traf without its runs"));
    };
    full_box(&mut tfhd)?;
    let track = tfhd.u32()?;
    let time = match full_box(&mut tfdt)?.0 {
        1 => tfdt.u64()?,
        _ => u64::from(tfdt.u32()?),
    };
    let trun_flags = full_box(&mut trun)?.1;
    Ok(Traf {
        track,
        time,
        trun_flags,
        trun,
    })
}

/// The tracks (video, audio) an init segment as [`super::init_segment`] writes it declares, by
/// their track ids. An error for bytes that are not such an init segment.
pub fn init_tracks(init: &[u8]) -> Result<[bool; 2]> {
    use crate::mp4::{child, full_box, next_box};
    let mut r = crate::read::Reader::new(init, 0, "cmaf init");
    let mut tracks = [false, false];
    while let Some(top) = next_box(&mut r, false)? {
        if &top.kind != b"moov" {
            continue;
        }
        let mut moov = top.body;
        while let Some(trak) = next_box(&mut moov, false)? {
            if &trak.kind != b"trak" {
                continue;
            }
            let Some(mut tkhd) = child(&trak.body, b"tkhd")? else {
                continue;
            };
            // Creation and modification times, 32 or 64 bits each, then the track id.
            let times = if full_box(&mut tkhd)?.0 == 1 { 16 } else { 8 };
            tkhd.skip(times)?;
            match tkhd.u32()? {
                VIDEO_TRACK => tracks[0] = true,
                AUDIO_TRACK => tracks[1] = true,
                _ => {}
            }
        }
        return Ok(tracks);
    }
    Err(Error::malformed("cmaf init", "no moov"))
}
