//! The seek index of a fragmented MP4 that is still being written (a live recording): the init
//! segment is read once, then each fragment's `moof` as it is appended, into the same sample
//! table [`super::index`] builds from a whole file, so both give the same keyframes. The file
//! is never read again.

use super::stbl::{self, SampleTable};
use super::{next_box, parse_moov, Trex};
use crate::error::{Error, Result};
use crate::info::{AudioInfo, Container, Keyframe, MediaInfo, VideoInfo};
use crate::read::Reader;
use crate::time::{FrameRate, MediaTime};

/// The video track, as the init segment describes it.
#[derive(Debug, Clone)]
struct Video {
    id: u32,
    trex: Trex,
    timescale: u32,
    media_time: i64,
    info: VideoInfo,
}

/// The growing index of one fragmented MP4.
#[derive(Debug, Clone)]
pub struct Growing {
    video: Option<Video>,
    audio: Option<AudioInfo>,
    table: SampleTable,
}

impl Growing {
    /// From the file's init segment (`ftyp` and `moov`, with `mvex`).
    pub fn new(init: &[u8]) -> Result<Self> {
        let mut top = Reader::new(init, 0, "mp4");
        let mut moov = None;
        while let Some(b) = next_box(&mut top, false)? {
            if &b.kind == b"moov" {
                moov = Some(b.body);
            }
        }
        let moov = moov.ok_or_else(|| Error::malformed("mp4", "no moov in the init segment"))?;
        let (_, _, tracks) = parse_moov(&moov)?;
        let audio = super::audio_info(&tracks);
        let video = tracks
            .iter()
            .find(|t| &t.handler == b"vide")
            .map(|t| Video {
                id: t.id,
                trex: t.trex,
                timescale: t.timescale,
                media_time: t.media_time,
                info: VideoInfo {
                    codec: t.codec.clone(),
                    width: t.width,
                    height: t.height,
                    frame_rate: None,
                },
            });
        Ok(Growing {
            video,
            audio,
            table: SampleTable::default(),
        })
    }

    /// Reads the top-level boxes in `head`, which starts at `at` in the file: a fragment's
    /// `moof` (after a `prft`, say) and its `mdat` header; the fragment ends at `end` (its
    /// samples follow `head` there). Boxes cut off by the end of `head` (the `mdat`) are left.
    pub fn feed(&mut self, head: &[u8], at: u64, end: u64) -> Result<()> {
        let Some(v) = &self.video else {
            return Ok(());
        };
        let mut top = Reader::new(head, at, "mp4");
        loop {
            match next_box(&mut top, false) {
                Ok(Some(b)) if &b.kind == b"moof" => {
                    stbl::append_fragment(&mut self.table, b.start, &b.body, v.id, v.trex, end)?;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(Error::Truncated { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Video samples indexed so far.
    pub fn samples(&self) -> usize {
        self.table.len()
    }

    /// What the fragments fed so far hold.
    pub fn info(&self) -> MediaInfo {
        let Some(v) = &self.video else {
            return MediaInfo {
                container: Container::Mp4,
                duration: MediaTime::ZERO,
                video: None,
                audio: self.audio.clone(),
                keyframes: Vec::new(),
            };
        };
        let (keyframes, duration, delta) = self.table.keyframes(v.media_time, false);
        let mut info = v.info.clone();
        info.frame_rate =
            delta.and_then(|d| FrameRate::from_frame_duration(u64::from(v.timescale), d));
        MediaInfo {
            container: Container::Mp4,
            duration: MediaTime::new(duration, v.timescale),
            video: Some(info),
            audio: self.audio.clone(),
            keyframes: keyframes
                .into_iter()
                .map(|(t, offset)| Keyframe {
                    time: MediaTime::new(t, v.timescale),
                    offset,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo library's fragmented MP4 (made by ffmpeg, see demo/README.md).
    const FRAGMENTED: &[u8] = include_bytes!("../../../../demo/fragmented.mp4");

    /// (start, end) of each top-level box.
    fn boxes(data: &[u8]) -> Vec<([u8; 4], u64, u64)> {
        let mut top = Reader::new(data, 0, "mp4");
        let mut v = Vec::new();
        while let Ok(Some(b)) = next_box(&mut top, false) {
            let end = b.start + 8 + b.body.remaining() as u64;
            v.push((b.kind, b.start, end));
        }
        v
    }

    #[test]
    fn fed_fragment_by_fragment_it_finds_what_an_index_of_the_whole_file_finds() {
        let whole = super::super::index(FRAGMENTED).unwrap();
        assert!(whole.keyframes.len() >= 2, "{whole:?}");
        let list = boxes(FRAGMENTED);
        let moov_end = list.iter().find(|b| &b.0 == b"moov").unwrap().2;
        let mut g = Growing::new(&FRAGMENTED[..moov_end as usize]).unwrap();
        for w in list.windows(2) {
            let (moof, mdat) = (w[0], w[1]);
            if &moof.0 == b"moof" && &mdat.0 == b"mdat" {
                // What the writer has when it feeds: the moof and the mdat's header.
                let head = &FRAGMENTED[moof.1 as usize..mdat.1 as usize + 8];
                g.feed(head, moof.1, mdat.2).unwrap();
            }
        }
        assert_eq!(g.info(), whole);
    }

    #[test]
    fn an_init_without_a_movie_is_refused_and_a_bad_fragment_is_an_error() {
        assert!(Growing::new(b"\0\0\0\x08ftyp").is_err());
        let list = boxes(FRAGMENTED);
        let moov_end = list.iter().find(|b| &b.0 == b"moov").unwrap().2;
        let mut g = Growing::new(&FRAGMENTED[..moov_end as usize]).unwrap();
        // A moof whose size is smaller than its header.
        assert!(g.feed(b"\0\0\0\x04moof", 0, 100).is_err());
        assert_eq!(g.samples(), 0);
    }
}
