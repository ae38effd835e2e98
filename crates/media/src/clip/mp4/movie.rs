//! An unfragmented MP4's movie, parsed once and kept: its video and audio tracks with their
//! sample tables expanded, and the original boxes the clip and fragment writers copy. Owned, so
//! a server keeps one per title and cuts any number of clips and segments from it without
//! walking the sample tables again.

use super::select::{Column, Facts};
use crate::cmaf::codecs;
use crate::error::{Error, Result};
use crate::mp4::remux;
use crate::mp4::stbl::{self, SampleTable};
use crate::mp4::{child, next_box, parse_trak, FourCC};
use crate::read::Reader;
use crate::time::MediaTime;

/// One video or audio track.
#[derive(Debug, Clone)]
pub struct MovieTrack {
    /// The original `trak` body.
    pub(crate) trak: Vec<u8>,
    pub id: u32,
    pub handler: FourCC,
    pub timescale: u32,
    /// The media time shown at the movie's start (track ticks): the edit list's first shown
    /// media time less the empty edits before it, so that every track's presentation times
    /// are on the movie's timeline (a track that starts late keeps its delay).
    pub(crate) media_time: i64,
    /// Where the title first shows it on that timeline: its empty edits' length (track ticks).
    pub(crate) delay: i64,
    pub(crate) table: SampleTable,
    pub(crate) facts: Facts,
    /// Whether the original lists sync samples (`stss`).
    pub(crate) has_stss: bool,
    /// The first sample entry's type (`avc1`, `mp4a`, ...).
    pub entry: FourCC,
    /// Its RFC 6381 name (`avc1.64000d`, `mp4a.40.2`), as DASH and HLS name codecs.
    pub codecs: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub sample_rate: Option<u32>,
}

impl MovieTrack {
    pub(crate) fn column(&self) -> Column<'_> {
        Column {
            table: &self.table,
            timescale: self.timescale,
            media_time: self.media_time,
            facts: &self.facts,
        }
    }

    /// The bytes of all its samples.
    pub fn bytes(&self) -> u64 {
        self.table.size.iter().map(|&s| u64::from(s)).sum()
    }

    pub fn is_video(&self) -> bool {
        &self.handler == b"vide"
    }

    /// The track's `trak` body as a reader.
    pub(crate) fn trak(&self) -> Reader<'_> {
        Reader::new(&self.trak, 0, "mp4 trak")
    }
}

/// The RFC 6381 name of a sample entry; the entry's type where its configuration cannot be
/// read (a name is only what DASH and HLS list, never a reason to refuse the title).
fn codecs(entry: Option<&(FourCC, Reader<'_>)>) -> String {
    let Some((kind, body)) = entry else {
        return String::new();
    };
    codecs_of(*kind, body.clone()).unwrap_or_else(|_| crate::mp4::show(*kind))
}

/// The RFC 6381 name from a decoder configuration record.
type Namer = fn(&[u8]) -> Option<String>;

fn codecs_of(kind: FourCC, body: Reader<'_>) -> Result<String> {
    Ok(match &kind {
        b"avc1" | b"avc3" | b"hvc1" | b"hev1" | b"av01" | b"vp09" => {
            let mut e = body;
            e.skip(78)?; // the visual sample entry's fixed fields
            let (name, of): (&FourCC, Namer) = match &kind {
                b"avc1" | b"avc3" => (b"avcC", |c| Some(codecs::avc(c))),
                b"hvc1" | b"hev1" => (b"hvcC", codecs::hevc),
                b"av01" => (b"av1C", codecs::av1),
                _ => (b"vpcC", codecs::vp9),
            };
            let config = child(&e, name)?.and_then(|mut c| of(c.rest()));
            match (&kind, config) {
                (_, Some(c)) => c,
                (b"hvc1" | b"hev1", None) => "hvc1".into(),
                _ => crate::mp4::show(kind),
            }
        }
        b"mp4a" => mp4a(body)?,
        b"Opus" => "opus".into(),
        b".mp3" => "mp3".into(),
        other => crate::mp4::show(*other),
    })
}

/// `mp4a.40.{audio object type}` for MPEG-4 AAC, `mp4a.{object type}` for the other MPEG audio
/// (`mp4a.6B`: MPEG-1 audio, MP3 as ffmpeg writes it; `mp4a.69`: MPEG-2 audio), from the
/// `esds` (RFC 6381 §3.3).
fn mp4a(entry: Reader<'_>) -> Result<String> {
    let Some(mut esds) = remux::mp4a_esds(entry)? else {
        return Ok("mp4a".into());
    };
    Ok(match remux::esds_decoder(&mut esds)? {
        Some(d) if d.object_type == 0x40 => codecs::aac(
            d.specific_info
                .and_then(|a| a.first())
                .map_or(2, |b| b >> 3),
        ),
        Some(d) => format!("mp4a.{:02X}", d.object_type),
        None => "mp4a".into(),
    })
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Movie {
    pub(crate) ftyp: Option<Vec<u8>>,
    pub(crate) mvhd: Vec<u8>,
    pub movie_scale: u32,
    pub tracks: Vec<MovieTrack>,
    /// The track clips and segments are cut by: the first video track, else the first audio.
    pub lead: usize,
}

impl Movie {
    /// Parses `data`, an unfragmented MP4 in memory. Errors for a fragmented file and for one with
    /// no video or audio samples.
    pub fn parse(data: &[u8]) -> Result<Movie> {
        Self::parse_boxes(data, data.len() as u64)
    }

    /// Parses the `ftyp` and `moov` boxes of an unfragmented MP4 of `file_len` bytes, given
    /// without the rest of the file (`data`: those boxes one after the other; a title in object
    /// storage). The sample tables' offsets are the file's, and are bounded by `file_len`.
    pub fn parse_boxes(data: &[u8], file_len: u64) -> Result<Movie> {
        let mut top = Reader::new(data, 0, "mp4");
        let (mut ftyp, mut moov) = (None, None);
        loop {
            let mut b = match next_box(&mut top, true) {
                Ok(Some(b)) => b,
                Ok(None) => break,
                // A box cut off after the moov (a truncated file): the movie is what the seek
                // index (`mp4::index`) takes it to be.
                Err(Error::Truncated { .. }) if moov.is_some() => break,
                Err(e) => return Err(e),
            };
            match &b.kind {
                b"ftyp" => ftyp = Some(b.body.rest().to_vec()),
                // The first, as the seek index and players take it.
                b"moov" if moov.is_none() => moov = Some(b.body),
                b"moof" => {
                    return Err(Error::malformed(
                        "mp4 clip",
                        "fragmented MP4 is cut by fragments, not by sample tables",
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
        let data_len = file_len;
        // The video and audio tracks with sample tables, bounded before any is expanded.
        let mut traks = Vec::new();
        let mut r = moov.clone();
        while let Some(b) = next_box(&mut r, false)? {
            if &b.kind != b"trak" {
                continue;
            }
            let t = parse_trak(&b.body)?;
            if let (Some(stbl_box), true) =
                (t.stbl.clone(), matches!(&t.handler, b"vide" | b"soun"))
            {
                traks.push((b.body, t, stbl_box));
            }
        }
        stbl::bound_movie(&traks.iter().map(|(_, _, s)| s).collect::<Vec<_>>())?;
        let mut tracks = Vec::new();
        for (body, t, stbl_box) in traks {
            let (mut table, other) = stbl::expand_described(&stbl_box, data_len)?;
            if let Some(d) = other {
                // The clip and fragment writers describe every sample with the first entry.
                return Err(Error::malformed(
                    "mp4 clip",
                    format!(
                        "track {} has samples of sample description {d}: a track of more than \
                         one sample description is not clipped or packaged",
                        t.id
                    ),
                ));
            }
            table.clip_to(data_len);
            if table.is_empty() {
                continue;
            }
            let delay = MediaTime::new(i64::try_from(t.delay).unwrap_or(i64::MAX), movie_scale)
                .rescale(t.timescale);
            let media_time = t.media_time.saturating_sub(delay);
            tracks.push(MovieTrack {
                trak: body.clone().rest().to_vec(),
                id: t.id,
                handler: t.handler,
                timescale: t.timescale,
                media_time,
                delay,
                has_stss: child(&stbl_box, b"stss")?.is_some(),
                entry: t.entry.as_ref().map_or(*b"????", |e| e.0),
                // RFC 6381 names are letters, digits, dots and hyphens (`ec-3`, `ac-3`);
                // anything else (a crafted sample entry type) is left out, so the name is
                // safe in XML and playlists.
                codecs: codecs(t.entry.as_ref())
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
                    .collect(),
                facts: Facts::of(&table, t.timescale, media_time, delay),
                width: t.width,
                height: t.height,
                sample_rate: t.sample_rate,
                table,
            });
        }
        let lead = tracks
            .iter()
            .position(MovieTrack::is_video)
            .or_else(|| (!tracks.is_empty()).then_some(0))
            .ok_or_else(|| Error::malformed("mp4 clip", "no video or audio samples"))?;
        Ok(Movie {
            ftyp,
            mvhd: mvhd.clone().rest().to_vec(),
            movie_scale,
            tracks,
            lead,
        })
    }

    /// Bytes the movie holds beyond the title's (its sample tables): what keeping it costs.
    pub fn memory(&self) -> usize {
        self.tracks
            .iter()
            .map(|t| t.trak.len() + t.table.len() * 25)
            .sum()
    }
}
