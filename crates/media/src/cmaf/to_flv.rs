//! Fragmented MP4 as the live wing writes it (a stream's fMP4 output, or its fMP4 recording: an
//! init segment, then `[prft] moof mdat` fragments) read back into FLV tag bodies, sans-I/O: what
//! an `.flv` DVR viewer of a stream recorded as fMP4 is sent. The reverse of [`super::flv`]: a
//! sample's bytes are what the FLV tag carried after its header (length-prefixed NAL units, a raw
//! AAC or Opus frame), so a tag is that header and the sample; the decoder configurations of the
//! init segment become sequence headers. Times are the samples' decode times in milliseconds
//! (the writer's tracks have a timescale of 1000, so they are the FLV times the fragments were
//! made from, wrapping at 2^32 as those do: a run's samples are timed by the gaps between the
//! frames, and only the last one's duration, which times nothing after it, is estimated; where
//! the publisher's timestamps stepped back, the fragments' timeline went on instead, and so do
//! these times). The tag headers are the ones this
//! server writes (legacy AVC, enhanced HEVC and Opus), whatever a publisher's were.
//!
//! Bytes come cut anywhere; a top-level box is gathered whole (at most [`MAX_BOX`]), and a
//! `moof` waits for the `mdat` after it. After a box that cannot be read, everything is dropped
//! (counted in `skipped`) until [`ToFlv::realign`]: MP4 has no sync marker to find the next box
//! by.

use crate::error::{Error, Result};
use crate::flv::Tag;
use crate::mp4::{child, next_box, parse_moov, remux, stbl};
use crate::read::Reader;

/// The largest top-level box gathered (an init segment, a fragment's `moof` or `mdat`: one video
/// frame and the audio with it).
pub const MAX_BOX: usize = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Video {
    Avc,
    Hevc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audio {
    Aac,
    Opus,
}

/// A track of the init segment: its id and timescale, the codec, and its sequence header.
#[derive(Debug, Clone)]
struct Track<C> {
    id: u32,
    timescale: u32,
    codec: C,
    /// The FLV body of its decoder configuration.
    config: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct ToFlv {
    /// Bytes not yet read: the start of a top-level box, or a whole `moof` and the start of the
    /// `mdat` after it.
    buf: Vec<u8>,
    /// Where the `moof` waiting for its `mdat` ends in `buf`.
    moof_end: Option<usize>,
    video: Option<Track<Video>>,
    audio: Option<Track<Audio>>,
    /// The configurations last sent (video, audio): a new init segment with the same one sends
    /// none again.
    sent: [Option<Vec<u8>>; 2],
    /// A box could not be read: nothing is read until [`ToFlv::realign`].
    lost: bool,
    /// Boxes that could not be read, and samples outside their fragment.
    pub skipped: u64,
}

impl ToFlv {
    /// The next bytes fed start a top-level box (a new stretch of a recording, a ring unit): what
    /// was gathered is dropped.
    pub fn realign(&mut self) {
        self.buf.clear();
        self.moof_end = None;
        self.lost = false;
    }

    /// Reads `data` (cut anywhere), appending the tags of every fragment completed to `out`: per
    /// fragment its audio frames, then its video frame (the order they reached the ingest: the
    /// writer holds audio until the next video frame), each track's sequence header before its
    /// first frame after a new configuration.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Tag>) {
        if self.lost {
            return;
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.extend_from_slice(data);
        // The first byte not read; while a `moof` waits for its `mdat`, it is at `at`.
        let mut at = 0;
        loop {
            let scan = self.moof_end.unwrap_or(at);
            let (kind, size) = match box_header(&buf[scan..]) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(_) => {
                    self.skipped += 1;
                    self.moof_end = None;
                    self.lost = true;
                    buf.clear();
                    at = 0;
                    break;
                }
            };
            let Some(end) = scan.checked_add(size).filter(|&e| e <= buf.len()) else {
                break;
            };
            match (&kind, self.moof_end.take()) {
                (b"mdat", Some(_)) => {
                    let mut tags = Vec::new();
                    match self.fragment(&buf[at..end], &mut tags) {
                        Ok(()) => out.append(&mut tags),
                        Err(_) => self.skipped += 1,
                    }
                }
                (b"moof", _) => {
                    // A `moof` before another one had its `mdat`: the first is dropped.
                    at = scan;
                    self.moof_end = Some(end);
                    continue;
                }
                (b"moov", _) => {
                    let read = self.init(&buf[scan..end]);
                    self.skipped += u64::from(read.is_err());
                }
                // Anything else (`ftyp`, `prft`, `styp`): skipped; one between a `moof` and
                // its `mdat` ends that fragment.
                _ => {}
            }
            at = end;
        }
        buf.drain(..at);
        if let Some(e) = self.moof_end.as_mut() {
            *e -= at;
        }
        self.buf = buf;
    }

    /// A new init segment: its tracks replace the old ones (none are left when it cannot be
    /// read: its fragments are not timed or coded as the old ones were).
    fn init(&mut self, moov_box: &[u8]) -> Result<()> {
        self.video = None;
        self.audio = None;
        let mut r = Reader::new(moov_box, 0, "cmaf init");
        let Some(moov) = next_box(&mut r, false)? else {
            return Err(Error::malformed("cmaf init", "no moov"));
        };
        let (_, _, tracks) = parse_moov(&moov.body)?;
        let (mut video, mut audio) = (None, None);
        for t in &tracks {
            let Some((kind, entry)) = &t.entry else {
                continue;
            };
            match (&t.handler, kind) {
                (b"vide", b"avc1" | b"avc3" | b"hvc1" | b"hev1") if video.is_none() => {
                    let hevc = matches!(kind, b"hvc1" | b"hev1");
                    let Some(mut record) = remux::visual_config(*kind, entry.clone())? else {
                        continue;
                    };
                    let (codec, mut config) = if hevc {
                        (Video::Hevc, vec![0x90, b'h', b'v', b'c', b'1'])
                    } else {
                        (Video::Avc, vec![0x17, 0, 0, 0, 0])
                    };
                    config.extend_from_slice(record.rest());
                    video = Some(Track {
                        id: t.id,
                        timescale: t.timescale,
                        codec,
                        config,
                    });
                }
                (b"soun", b"mp4a") if audio.is_none() => {
                    let Some(mut esds) = remux::mp4a_esds(entry.clone())? else {
                        continue;
                    };
                    let Some(asc) = remux::esds_asc(&mut esds)? else {
                        continue;
                    };
                    let mut config = vec![0xaf, 0];
                    config.extend_from_slice(asc);
                    audio = Some(Track {
                        id: t.id,
                        timescale: t.timescale,
                        codec: Audio::Aac,
                        config,
                    });
                }
                (b"soun", b"Opus") if audio.is_none() => {
                    let mut e = entry.clone();
                    e.skip(28)?; // the audio sample entry's fixed fields
                    let Some(mut dops) = child(&e, b"dOps")? else {
                        continue;
                    };
                    // dOps (big-endian) to OpusHead (little-endian, RFC 7845 §5.1).
                    dops.skip(1)?; // version
                    let channels = dops.u8()?;
                    let pre_skip = dops.u16()?;
                    let rate = dops.u32()?;
                    let gain = dops.u16()?;
                    let family = dops.u8()?;
                    if family != 0 {
                        // A channel mapping table follows, which the writer never writes.
                        continue;
                    }
                    let mut config = vec![0x90, b'O', b'p', b'u', b's'];
                    config.extend_from_slice(b"OpusHead");
                    config.extend_from_slice(&[1, channels]);
                    config.extend_from_slice(&pre_skip.to_le_bytes());
                    config.extend_from_slice(&rate.to_le_bytes());
                    config.extend_from_slice(&gain.to_le_bytes());
                    config.push(family);
                    audio = Some(Track {
                        id: t.id,
                        timescale: t.timescale,
                        codec: Audio::Opus,
                        config,
                    });
                }
                _ => {}
            }
        }
        self.video = video;
        self.audio = audio;
        Ok(())
    }

    /// One fragment (`moof` then `mdat`, the `moof` first in `frag`): its frames as tags, after
    /// the sequence headers of the init segment's tracks not sent yet (all before any frame, as
    /// FLV players expect them).
    fn fragment(&mut self, frag: &[u8], out: &mut Vec<Tag>) -> Result<()> {
        let mut r = Reader::new(frag, 0, "cmaf fragment");
        let Some(moof) = next_box(&mut r, false)? else {
            return Err(Error::malformed("cmaf fragment", "no moof"));
        };
        let len = frag.len() as u64;
        let samples = |id: u32| -> Result<stbl::SampleTable> {
            let mut table = stbl::SampleTable::default();
            stbl::append_fragment(&mut table, 0, &moof.body, id, Default::default(), len)?;
            Ok(table)
        };
        let video = match &self.video {
            Some(v) => Some((v, samples(v.id)?)),
            None => None,
        };
        let audio = match &self.audio {
            Some(a) => Some((a, samples(a.id)?)),
            None => None,
        };
        let first_ms =
            |table: &stbl::SampleTable, timescale| Some(ms_of(*table.dts.first()?, timescale));
        // Both tracks' headers at the first fragment with a frame, whichever tracks it holds, at
        // its earliest frame's time.
        let v_ms = video.as_ref().and_then(|(v, t)| first_ms(t, v.timescale));
        let a_ms = audio.as_ref().and_then(|(a, t)| first_ms(t, a.timescale));
        let ms = match (v_ms, a_ms) {
            (Some(v), Some(a)) => Some(v.min(a)),
            (v, a) => v.or(a),
        };
        if let Some(ms) = ms {
            if let Some((v, _)) = &video {
                send_config(&mut self.sent[0], true, &v.config, ms, out);
            }
            if let Some((a, _)) = &audio {
                send_config(&mut self.sent[1], false, &a.config, ms, out);
            }
        }
        let mut skipped = 0;
        if let Some((a, table)) = &audio {
            for i in 0..table.len() {
                let Some(sample) = sample_bytes(frag, table.offset[i], table.size[i]) else {
                    skipped += 1;
                    continue;
                };
                let head: &[u8] = match a.codec {
                    Audio::Aac => &[0xaf, 1],
                    Audio::Opus => &[0x91, b'O', b'p', b'u', b's'],
                };
                out.push(Tag {
                    video: false,
                    sequence: false,
                    keyframe: false,
                    ms: ms_of(table.dts[i], a.timescale),
                    body: [head, sample].concat(),
                });
            }
        }
        if let Some((v, table)) = &video {
            for i in 0..table.len() {
                let Some(sample) = sample_bytes(frag, table.offset[i], table.size[i]) else {
                    skipped += 1;
                    continue;
                };
                let cto = i64::from(table.cto[i]) * 1000 / i64::from(v.timescale.max(1));
                let cts = i32::try_from(cto)
                    .unwrap_or(0)
                    .clamp(-(1 << 23), (1 << 23) - 1)
                    .to_be_bytes();
                let key = table.keyframe[i];
                let head: &[u8] = match (v.codec, key) {
                    (Video::Avc, true) => &[0x17, 1],
                    (Video::Avc, false) => &[0x27, 1],
                    (Video::Hevc, true) => &[0x91, b'h', b'v', b'c', b'1'],
                    (Video::Hevc, false) => &[0xa1, b'h', b'v', b'c', b'1'],
                };
                out.push(Tag {
                    video: true,
                    sequence: false,
                    keyframe: key,
                    ms: ms_of(table.dts[i], v.timescale),
                    body: [head, &cts[1..], sample].concat(),
                });
            }
        }
        self.skipped += skipped;
        Ok(())
    }
}

/// A track's sequence header before its next frame, unless it was the last one sent (`sent`).
fn send_config(
    sent: &mut Option<Vec<u8>>,
    video: bool,
    config: &[u8],
    ms: u32,
    out: &mut Vec<Tag>,
) {
    if sent.as_deref() == Some(config) {
        return;
    }
    *sent = Some(config.to_vec());
    out.push(Tag {
        video,
        sequence: true,
        keyframe: false,
        ms,
        body: config.to_vec(),
    });
}

/// A top-level box header at the start of `b`: its type and whole size; `None` until the header
/// is all there; an error for a size that cannot be (smaller than its header, to the end of the
/// file, or over [`MAX_BOX`]).
fn box_header(b: &[u8]) -> Result<Option<([u8; 4], usize)>> {
    let (Some(size), Some(kind)) = (b.get(..4), b.get(4..8)) else {
        return Ok(None);
    };
    let kind: [u8; 4] = kind.try_into().unwrap_or_default();
    let size = u32::from_be_bytes(size.try_into().unwrap_or_default());
    let (size, header) = match size {
        1 => match b.get(8..16) {
            Some(large) => (u64::from_be_bytes(large.try_into().unwrap_or_default()), 16),
            None => return Ok(None),
        },
        s => (u64::from(s), 8),
    };
    match usize::try_from(size) {
        Ok(s) if s >= header && s <= MAX_BOX => Ok(Some((kind, s))),
        _ => Err(Error::malformed(
            "cmaf stream",
            format!("a top-level box of {size} bytes"),
        )),
    }
}

/// A sample's bytes, if they lie within the fragment.
fn sample_bytes(frag: &[u8], offset: u64, size: u32) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    frag.get(start..end)
}

/// Ticks of `timescale` as FLV milliseconds (wrapping, as FLV times do).
fn ms_of(ticks: i64, timescale: u32) -> u32 {
    let ms = i128::from(ticks) * 1000 / i128::from(timescale.max(1));
    ms as u32
}

#[cfg(test)]
mod tests;
