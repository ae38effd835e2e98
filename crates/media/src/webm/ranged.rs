//! The seek index of a WebM/Matroska file that is read by range (a title in object storage),
//! from only the parts that hold it: the head (EBML header, Segment, SeekHead, Info, Tracks),
//! the Cues wherever the SeekHead says they are (muxers write them after the clusters), and
//! the opening bytes of the first cluster (the first lead block's time, which Cue times are
//! counted from). Sans-I/O: the caller reads what each step names.
//!
//! Where a file does not allow it (Info or Tracks past the head, no Cues of the lead track: the
//! video track, else the first audio track; no duration stated), the steps answer `None` and
//! the caller indexes the whole file.

use super::{body, children, element, segment, uint, El, Parts, CLUSTER, CUES, INFO, TRACKS};
use crate::error::{Error, Result};
use crate::info::{Container, MediaInfo};

const SEEK_HEAD: u32 = 0x114D_9B74;
const SEEK: u32 = 0x4DBB;
const SEEK_ID: u32 = 0x53AB;
const SEEK_POSITION: u32 = 0x53AC;

/// Bytes of the first cluster read first for its first video blocks.
pub const CLUSTER_PREFIX: u64 = 64 << 10;

/// What a file's head says: its Info and Tracks, and where its Cues are.
#[derive(Debug)]
pub struct Head {
    parts: Parts,
    /// Where the Segment's data starts (positions in the SeekHead and Cues count from it).
    seg_data: u64,
    /// Where the Cues element starts, when the head does not hold it.
    cues_at: Option<u64>,
    /// Where the first cluster starts, when the head reaches it.
    cluster_at: Option<u64>,
}

/// The ID and whole length (header and body) of the element that starts `data`; `None` for
/// an element of unknown size.
pub fn element_len(data: &[u8]) -> Result<(u32, Option<u64>)> {
    let el = element(data, 0, data.len())?;
    Ok((el.id, el.end.map(|e| e as u64)))
}

/// Reads the head of a file (its first bytes, `data`). `None` when Info and Tracks are not
/// whole in it, or its Cues are neither in it nor named by a SeekHead in it.
pub fn head(data: &[u8]) -> Result<Option<Head>> {
    let (_, seg) = segment(data)?;
    let seg_end = seg.end.unwrap_or(usize::MAX);
    let mut parts = Parts::default();
    let (mut info, mut tracks, mut cues) = (false, false, false);
    let mut cues_pos = None;
    let mut cluster_at = None;
    let mut pos = seg.data;
    while pos < seg_end && pos < data.len() {
        let Ok(el) = element(data, pos, data.len()) else {
            break;
        };
        if el.id == CLUSTER {
            cluster_at = Some(el.start as u64);
            break;
        }
        let Some(end) = el.end.filter(|&e| e <= data.len() && e <= seg_end) else {
            break;
        };
        match el.id {
            SEEK_HEAD => cues_pos = cues_pos.or(seek_cues(data, el, end)?),
            INFO => info = true,
            TRACKS => tracks = true,
            CUES => cues = true,
            _ => {}
        }
        parts.element(data, el, end)?;
        pos = end;
    }
    let seg_data = seg.data as u64;
    let cues_at =
        match (cues, cues_pos) {
            (true, _) => None,
            (false, Some(p)) => Some(seg_data.checked_add(p).ok_or_else(|| {
                Error::malformed("webm", "SeekHead position of the Cues overflows")
            })?),
            (false, None) => return Ok(None),
        };
    Ok((info && tracks).then_some(Head {
        parts,
        seg_data,
        cues_at,
        cluster_at,
    }))
}

/// The position (within the segment) that a SeekHead gives the Cues.
fn seek_cues(data: &[u8], head: El, end: usize) -> Result<Option<u64>> {
    let mut out = None;
    children(data, head.data, end, |s| {
        if s.id != SEEK {
            return Ok(());
        }
        let (mut id, mut at) = (None, None);
        children(data, s.data, s.end.unwrap_or(s.data), |c| {
            match c.id {
                SEEK_ID => id = Some(uint(body(data, c))),
                SEEK_POSITION => at = Some(uint(body(data, c))),
                _ => {}
            }
            Ok(())
        })?;
        if id == Some(u64::from(CUES)) {
            out = out.or(at);
        }
        Ok(())
    })?;
    Ok(out)
}

impl Head {
    /// Where the Cues element starts, when it is still to be read ([`Head::cues`]).
    pub fn cues_at(&self) -> Option<u64> {
        self.cues_at
    }

    /// Takes the Cues element, whole in `data` (read at `cues_at`).
    pub fn cues(&mut self, data: &[u8]) -> Result<()> {
        let el = element(data, 0, data.len())?;
        if el.id != CUES {
            return Err(Error::malformed(
                "webm",
                "the SeekHead names a Cues position that holds another element",
            ));
        }
        let end = el.end.unwrap_or(data.len());
        if end > data.len() {
            return Err(Error::Truncated {
                what: "webm cues",
                offset: 0,
                needed: end as u64,
                available: data.len() as u64,
            });
        }
        self.parts.element(data, el, end)?;
        self.cues_at = None;
        Ok(())
    }

    /// Where the first cluster starts: the first in the file when the head reaches it (its
    /// blocks may come before the first that a Cue names), else the first the lead track's
    /// Cues name (`None`: they name none, and the file is indexed whole).
    pub fn first_cluster(&self) -> Option<u64> {
        let first = self.parts.lead_cues().into_iter().map(|c| c.1).min()?;
        let cued = self.seg_data.checked_add(first)?;
        Some(self.cluster_at.map_or(cued, |c| c.min(cued)))
    }

    /// The index, given the opening bytes of the first cluster (`cluster`, [`CLUSTER_PREFIX`]
    /// of them or the whole cluster) and the file's length: [`Step::More`] when the prefix
    /// holds too few video blocks to tell the frame rate (the track states no default
    /// duration) and `more` allows a longer one.
    pub fn index(&self, cluster: &[u8], len: u64, container: Container, more: bool) -> Step {
        if self.cues_at.is_some() || self.parts.duration().is_none() {
            return Step::Whole;
        }
        let Ok(el) = element(cluster, 0, cluster.len()) else {
            return Step::Whole;
        };
        if el.id != CLUSTER {
            return Step::Whole;
        }
        let mut parts = self.parts.clone();
        let whole = prefix_blocks(cluster, el, parts.lead_number(), &mut parts.blocks);
        let stated = parts.video().is_none_or(|v| v.default_duration.is_some());
        let n = parts.blocks.len();
        if n > 0 && (stated || n >= FRAME_RATE_BLOCKS) {
            Step::Index(parts.info(container, self.seg_data, len))
        } else if more && !whole {
            Step::More
        } else if n >= 2 {
            // The whole first cluster (or CLUSTER_MAX of it), with few blocks: the frame rate
            // from those (a whole read could give another, or none past `index_max`).
            Step::Index(parts.info(container, self.seg_data, len))
        } else {
            Step::Whole
        }
    }
}

/// Video blocks looked at for the frame rate when a track states none.
const FRAME_RATE_BLOCKS: usize = 16;

/// What [`Head::index`] makes of a cluster prefix.
#[derive(Debug)]
pub enum Step {
    Index(MediaInfo),
    /// Read a longer prefix of the first cluster ([`CLUSTER_MAX`] at most).
    More,
    /// Index the whole file.
    Whole,
}

/// The longest prefix of the first cluster read.
pub const CLUSTER_MAX: u64 = 4 << 20;

/// Notes the lead track's blocks whose headers are in a cluster's opening bytes (a block cut by the
/// end of them still counts: its header is whole). True when the whole cluster was there.
fn prefix_blocks(data: &[u8], c: El, video: u64, out: &mut Vec<super::Block>) -> bool {
    let end = c.end.unwrap_or(usize::MAX);
    let mut tc: i64 = 0;
    let mut pos = c.data;
    while pos < end {
        let Ok(el) = element(data, pos, data.len()) else {
            return false;
        };
        if c.end.is_none() && super::SEGMENT_LEVEL.contains(&el.id) {
            return true;
        }
        let el_end = el.end.unwrap_or(end);
        match el.id {
            super::TIMECODE if el_end <= data.len() => {
                tc = uint(body(data, el)).min(i64::MAX as u64) as i64;
            }
            super::SIMPLE_BLOCK => {
                let to = el_end.min(data.len());
                if super::block(data, el.data, to, tc, c.start, None, video, out).is_err() {
                    return false;
                }
            }
            super::BLOCK_GROUP => {
                // Its Block (a frame with a duration of its own, or one that references others).
                let to = el_end.min(data.len());
                let mut at = el.data;
                while at < to {
                    let Ok(g) = element(data, at, data.len()) else {
                        return false;
                    };
                    if g.id == super::BLOCK {
                        let end = g.end.unwrap_or(to).min(to);
                        if super::block(data, g.data, end, tc, c.start, None, video, out).is_err() {
                            return false;
                        }
                        break;
                    }
                    match g.end {
                        Some(e) if e > at => at = e,
                        _ => break,
                    }
                }
            }
            _ => {}
        }
        if el_end > data.len() {
            return false;
        }
        pos = el_end;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Indexes `data` as the server does a title in object storage: the head, the Cues, the
    /// first cluster's prefix, each read alone.
    fn by_range(data: &[u8], head_len: usize) -> Option<MediaInfo> {
        let mut h = head(&data[..head_len.min(data.len())]).unwrap()?;
        if let Some(at) = h.cues_at() {
            let at = at as usize;
            let (_, len) = element_len(&data[at..(at + 12).min(data.len())]).unwrap();
            h.cues(&data[at..at + len.unwrap() as usize]).unwrap();
        }
        let c = h.first_cluster()? as usize;
        let mut want = CLUSTER_PREFIX as usize;
        loop {
            let end = (c + want).min(data.len());
            let more = want < CLUSTER_MAX as usize;
            match h.index(&data[c..end], data.len() as u64, crate::detect(data), more) {
                Step::Index(info) => return Some(info),
                Step::More => want *= 4,
                Step::Whole => return None,
            }
        }
    }

    #[test]
    fn head_cues_and_first_cluster_index_as_the_whole_file() {
        for (name, data) in [(
            "demo vp9-opus.webm",
            &include_bytes!("../../../../demo/vp9-opus.webm")[..],
        )] {
            let whole = crate::index(data).unwrap();
            assert!(whole.keyframes.len() >= 2, "{name}: {:?}", whole.keyframes);
            let h = head(&data[..4096]).unwrap().unwrap();
            assert!(h.cues_at().is_some(), "{name}: ffmpeg writes the Cues last");
            for head_len in [4096, 64 << 10] {
                let ranged = by_range(data, head_len).unwrap_or_else(|| panic!("{name}: by range"));
                assert_eq!(ranged, whole, "{name}, head of {head_len}");
            }
        }
    }

    /// The demo title with its video track's DefaultDuration made a Void element of the same
    /// length (as a muxer that states no frame duration writes it).
    fn without_default_duration() -> Vec<u8> {
        let mut d = include_bytes!("../../../../demo/vp9-opus.webm").to_vec();
        let at = d.windows(3).position(|w| w == [0x23, 0xE3, 0x83]).unwrap();
        let len = 3 + 1 + usize::from(d[at + 3] & 0x7f);
        d[at..at + 3].copy_from_slice(&[0xEC, 0x40, (len - 3) as u8]);
        d
    }

    #[test]
    fn without_a_stated_frame_duration_the_frame_rate_comes_from_the_first_clusters_blocks() {
        let data = without_default_duration();
        let whole = crate::index(&data).unwrap();
        assert!(whole.frame_rate().is_some(), "{whole:?}");
        assert_eq!(by_range(&data, 4096).unwrap(), whole);
    }

    #[test]
    fn a_first_block_cut_by_the_end_of_the_prefix_still_gives_the_first_time() {
        let data = include_bytes!("../../../../demo/vp9-opus.webm");
        let whole = crate::index(data).unwrap();
        let mut h = head(&data[..4096]).unwrap().unwrap();
        let at = h.cues_at().unwrap() as usize;
        h.cues(&data[at..]).unwrap();
        let c = h.first_cluster().unwrap() as usize;
        // The cluster opens with an audio block (226 bytes), then the video keyframe (6,872).
        let len = data.len() as u64;
        let step = h.index(&data[c..c + 64], len, Container::WebM, false);
        assert!(matches!(step, Step::Whole), "no video block yet: {step:?}");
        let step = h.index(&data[c..c + 64], len, Container::WebM, true);
        assert!(matches!(step, Step::More), "no video block yet: {step:?}");
        // The first video block's header, not its frame.
        let step = h.index(&data[c..c + 300], len, Container::WebM, false);
        let Step::Index(info) = step else {
            panic!("{step:?}")
        };
        assert_eq!(info, whole);
    }

    #[test]
    fn blocks_in_a_block_group_count_as_simple_blocks_do() {
        #[rustfmt::skip]
        let cluster = [
            0x1F, 0x43, 0xB6, 0x75, 0x94, // Cluster, 20 bytes
            0xE7, 0x81, 0x05, // Timecode 5
            0xA0, 0x88, 0xA1, 0x86, 0x81, 0x00, 0x02, 0x80, 0xAA, 0xBB, // BlockGroup(Block: track 1, +2)
            0xA3, 0x85, 0x81, 0x00, 0x04, 0x80, 0xCC, // SimpleBlock: track 1, +4
        ];
        let el = element(&cluster, 0, cluster.len()).unwrap();
        let mut out = Vec::new();
        assert!(
            prefix_blocks(&cluster, el, 1, &mut out),
            "the whole cluster"
        );
        let times: Vec<i64> = out.iter().map(|b| b.0).collect();
        assert_eq!(times, [7, 9]);
        // Cut inside the BlockGroup's frame: its header still counts.
        let mut out = Vec::new();
        assert!(!prefix_blocks(&cluster[..17], el, 1, &mut out));
        assert_eq!(out.iter().map(|b| b.0).collect::<Vec<_>>(), [7]);
    }

    #[test]
    fn a_head_too_short_for_info_and_tracks_asks_for_the_whole_file() {
        let data = include_bytes!("../../../../demo/vp9-opus.webm");
        assert!(head(&data[..64]).unwrap().is_none());
    }

    #[test]
    fn garbage_never_panics() {
        let data = include_bytes!("../../../../demo/vp9-opus.webm");
        crate::mutations(&data[..data.len().min(8192)], 11, 5_000, |d| {
            if let Ok(Some(mut h)) = head(d) {
                let _ = h.cues(d);
                let _ = h.first_cluster();
                let _ = h.index(d, d.len() as u64, Container::WebM, true);
            }
            let _ = element_len(d);
        });
    }
}
