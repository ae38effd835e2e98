//! The seek index of an MPEG-TS recording that is still being written: the keyframes found in
//! the packets as they are appended (the same splitter that cuts the live ring), never a rescan
//! of the file. What the codecs are comes from the first whole GOP, indexed once.

use media::time::{Ts90k, Unwrapper};
use media::ts::{Cut, Splitter};
use media::{AudioInfo, Container, Keyframe, MediaInfo, MediaTime, VideoInfo};

/// The growing index of a recording file, by format.
#[derive(Debug)]
pub enum FileIndex {
    Ts(Growing),
    Mp4(media::mp4::growing::Growing),
}

impl FileIndex {
    /// Notes a unit written at `at` in the file: its parts, in order.
    pub fn feed(&mut self, parts: &[bytes::Bytes], at: u64) -> Result<(), media::Error> {
        match self {
            FileIndex::Ts(g) => parts.iter().try_for_each(|p| g.feed(p)),
            FileIndex::Mp4(g) => {
                let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
                match parts.first() {
                    Some(head) => g.feed(head, at, at + len),
                    None => Ok(()),
                }
            }
        }
    }

    /// What the file holds so far (`written`: its bytes so far).
    pub fn info(&mut self, written: &[u8]) -> Result<MediaInfo, String> {
        match self {
            FileIndex::Ts(g) => g.info(written),
            FileIndex::Mp4(g) => Ok(g.info()),
        }
    }
}

/// How many GOPs at the start of a file are looked at for its codecs and picture size.
const DESCRIBE_GOPS: usize = 8;

/// The growing index of one file.
#[derive(Debug, Default)]
pub struct Growing {
    splitter: Splitter,
    unwrap: Unwrapper,
    /// The first keyframe's PTS, unwrapped: time zero of the file.
    first: Option<i64>,
    keyframes: Vec<Keyframe>,
    /// Codecs, from the file's first GOP once it is whole.
    described: Option<(Option<VideoInfo>, Option<AudioInfo>)>,
    /// Bytes fed so far: where the next `feed` lands in the file.
    fed: u64,
    cuts: Vec<Cut>,
    /// Where a PES began (in the file) that a later feed may find a keyframe
    /// ([`Cut::Undecided`]), and its PTS.
    undecided: Option<(u64, Option<Ts90k>)>,
}

impl Growing {
    /// Appends `data`, whole 188-byte packets written to the file right after what was fed
    /// before, and notes the keyframes that start in it.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), media::Error> {
        self.cuts.clear();
        self.splitter.feed(data, &mut self.cuts)?;
        for c in &self.cuts {
            let (offset, pts) = match *c {
                Cut::Keyframe { at, pts: Some(pts) } => (self.fed + at as u64, pts),
                Cut::Undecided {
                    at,
                    pts,
                    earlier: false,
                } => {
                    self.undecided = Some((self.fed + at as u64, pts));
                    continue;
                }
                Cut::EarlierKeyframe { .. } => match self.undecided.take() {
                    Some((offset, Some(pts))) => (offset, pts),
                    _ => continue,
                },
                _ => continue,
            };
            let t = self.unwrap.unwrap(pts);
            let first = *self.first.get_or_insert(t);
            self.keyframes.push(Keyframe {
                time: MediaTime::new(t.saturating_sub(first).max(0), Ts90k::HZ),
                offset,
            });
        }
        self.fed += data.len() as u64;
        Ok(())
    }

    /// Keyframes found so far.
    pub fn keyframes(&self) -> usize {
        self.keyframes.len()
    }

    /// What the file holds so far: its keyframes, a duration that ends at the newest keyframe
    /// (what can be sought to), and its codecs once its first GOP is whole. `written`: the
    /// file's bytes so far (only its first GOP is read, once).
    pub fn info(&mut self, written: &[u8]) -> Result<MediaInfo, String> {
        if self.keyframes.len() < 2 {
            return Err("recording: no whole GOP written yet".into());
        }
        // The picture size comes from a keyframe whose first packet carries the SPS: the first
        // GOPs are looked at again until one does, up to DESCRIBE_GOPS of them.
        let sized = |d: &Option<(Option<VideoInfo>, Option<AudioInfo>)>| {
            d.as_ref()
                .is_some_and(|(v, _)| v.as_ref().is_none_or(|v| v.width.is_some()))
        };
        if !sized(&self.described) && self.keyframes.len() <= DESCRIBE_GOPS + 1 {
            let last = self.keyframes.last().map_or(0, |k| k.offset);
            let end = usize::try_from(last)
                .unwrap_or(usize::MAX)
                .min(written.len());
            let first = media::ts::index(&written[..end]).map_err(|e| e.to_string())?;
            self.described = Some((first.video, first.audio));
        }
        let (video, audio) = self.described.clone().unwrap_or_default();
        let duration = self.keyframes.last().map_or(MediaTime::ZERO, |k| k.time);
        Ok(MediaInfo {
            container: Container::MpegTs,
            duration,
            video,
            audio,
            keyframes: self.keyframes.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo library's MPEG-TS title (made by ffmpeg, see demo/README.md).
    const CLIP: &[u8] = include_bytes!("../../../../demo/clip.ts");

    /// Also from a muxer that marks no random access (a keyframe's IDR may then come in the
    /// piece after its PES began).
    #[test]
    fn fed_in_pieces_it_finds_the_keyframes_an_index_of_the_whole_file_finds() {
        let mut unmarked = CLIP.to_vec();
        for p in unmarked.chunks_exact_mut(188) {
            if p[3] & 0x20 != 0 && p[4] > 0 {
                p[5] &= !0x40;
            }
        }
        for data in [CLIP, &unmarked[..]] {
            let whole = media::ts::index(data).unwrap();
            assert!(whole.keyframes.len() >= 3, "{:?}", whole.keyframes);
            for piece in [188, 188 * 7, 188 * 100] {
                let mut g = Growing::default();
                let packets = &data[..data.len() / 188 * 188];
                for chunk in packets.chunks(piece) {
                    g.feed(chunk).unwrap();
                }
                let info = g.info(packets).unwrap();
                assert_eq!(info.keyframes, whole.keyframes, "pieces of {piece}");
                assert_eq!(info.video, whole.video);
                assert_eq!(info.audio, whole.audio);
                assert_eq!(info.duration, whole.keyframes.last().unwrap().time);
            }
        }
    }

    #[test]
    fn before_a_whole_gop_it_has_no_index_and_after_one_it_can_seek() {
        let whole = media::ts::index(CLIP).unwrap();
        let second = whole.keyframes[1].offset as usize;
        let mut g = Growing::default();
        g.feed(&CLIP[..second]).unwrap();
        assert_eq!(g.keyframes(), 1);
        assert!(g.info(&CLIP[..second]).is_err());
        g.feed(&CLIP[second..second + 188]).unwrap();
        let info = g.info(&CLIP[..second + 188]).unwrap();
        assert_eq!(info.seek(info.duration).unwrap().index, 1);
    }

    #[test]
    fn bytes_that_are_not_packets_are_refused() {
        let mut g = Growing::default();
        assert!(g.feed(&[0u8; 188]).is_err());
        assert!(g.feed(&CLIP[..100]).is_err());
    }
}
