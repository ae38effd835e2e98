//! What a WebM/Matroska index is made of (the segment's Info, Tracks and Cues, the lead
//! track's blocks of the clusters scanned) and the one step that makes a `MediaInfo` of it,
//! for the whole-file walk and the ranged index alike.

use super::{
    body, children, codec_name, float, parse_track, uint, Block, El, Track, CUES,
    CUE_CLUSTER_POSITION, CUE_POINT, CUE_TIME, CUE_TRACK, CUE_TRACK_POSITIONS, DURATION, INFO,
    TIMECODE_SCALE, TRACKS, TRACK_ENTRY,
};
use crate::error::Result;
use crate::info::{most_common, AudioInfo, Container, Keyframe, MediaInfo, VideoInfo};
use crate::time::{FrameRate, MediaTime};

/// What the index is made of: the segment's Info, Tracks and Cues, and the lead track's
/// blocks of the clusters scanned (all of them for a file in memory, the first for one read
/// by range).
#[derive(Debug, Clone)]
pub(crate) struct Parts {
    pub scale: u64,
    pub duration: Option<f64>,
    pub(super) tracks: Vec<Track>,
    /// (time, track, cluster position within the segment)
    pub cues: Vec<(u64, u64, u64)>,
    pub blocks: Vec<Block>,
}

impl Default for Parts {
    fn default() -> Self {
        Self {
            scale: 1_000_000,
            duration: None,
            tracks: Vec::new(),
            cues: Vec::new(),
            blocks: Vec::new(),
        }
    }
}

impl Parts {
    /// The lead track's number (none: a number no block has).
    pub(crate) fn lead_number(&self) -> u64 {
        self.lead().map_or(u64::MAX, |t| t.number)
    }

    pub(super) fn video(&self) -> Option<&Track> {
        self.tracks.iter().find(|t| t.kind == 1)
    }

    pub(crate) fn has_video(&self) -> bool {
        self.video().is_some()
    }

    /// The track whose blocks are the cut points: the video track, else (a title without
    /// video) the first audio track, every Cluster of which is a cut point.
    pub(super) fn lead(&self) -> Option<&Track> {
        self.video()
            .or_else(|| self.tracks.iter().find(|t| t.kind == 2))
    }

    /// Takes what a segment-level element (ending at `end`) says: Info, Tracks, Cues.
    pub(crate) fn element(&mut self, data: &[u8], el: El, end: usize) -> Result<()> {
        match el.id {
            INFO => children(data, el.data, end, |c| {
                match c.id {
                    TIMECODE_SCALE => self.scale = uint(body(data, c)).max(1),
                    DURATION => self.duration = float(body(data, c)),
                    _ => {}
                }
                Ok(())
            }),
            TRACKS => children(data, el.data, end, |c| {
                if c.id == TRACK_ENTRY {
                    self.tracks.push(parse_track(data, c)?);
                }
                Ok(())
            }),
            CUES => children(data, el.data, end, |p| {
                if p.id == CUE_POINT {
                    cue_point(data, p, &mut self.cues)?;
                }
                Ok(())
            }),
            _ => Ok(()),
        }
    }

    /// The index: keyframes from the Cues of the lead track (else from the blocks scanned),
    /// times from the first lead block; `seg_data`: where the segment's data starts; `len`:
    /// the file's length. Without video, the first audio block of each Cluster is a cut point.
    pub(crate) fn info(&self, container: Container, seg_data: u64, len: u64) -> MediaInfo {
        let (scale, blocks) = (self.scale, &self.blocks);
        let video = self.video();
        let audio = self.tracks.iter().find(|t| t.kind == 2).map(|t| AudioInfo {
            codec: codec_name(&t.codec),
            sample_rate: t.sample_rate,
            channels: t.channels,
        });
        let ns = |units: i64| {
            MediaTime::new(
                units.saturating_mul(scale.min(i64::MAX as u64) as i64),
                1_000_000_000,
            )
        };
        let first = blocks.iter().map(|b| b.0).min().unwrap_or(0);
        let frame_units = most_common({
            let mut times: Vec<i64> = blocks.iter().map(|b| b.0).collect();
            times.sort_unstable();
            times
                .windows(2)
                .map(|w| w[1].abs_diff(w[0]))
                .collect::<Vec<_>>()
                .into_iter()
        });
        let frame_rate = video.and_then(|v| match v.default_duration {
            Some(d) => FrameRate::from_frame_duration(1_000_000_000, d),
            None => frame_units.and_then(|u| {
                FrameRate::from_frame_duration(1_000_000_000, u.saturating_mul(scale))
            }),
        });

        let lead_cues = self.lead_cues();
        let mut keyframes: Vec<Keyframe> = if !lead_cues.is_empty() {
            lead_cues
                .into_iter()
                .filter_map(|(time, cluster)| {
                    let offset = seg_data.checked_add(cluster)?;
                    (offset < len).then(|| Keyframe {
                        time: ns((time.min(i64::MAX as u64) as i64).saturating_sub(first)),
                        offset,
                    })
                })
                .collect()
        } else {
            // Audio blocks are all cut points; one a Cluster is enough (its first).
            let audio = video.is_none();
            let mut keys: Vec<Keyframe> = blocks
                .iter()
                .filter(|b| b.2 || audio)
                .map(|b| Keyframe {
                    time: ns(b.0.saturating_sub(first)),
                    offset: b.1,
                })
                .collect();
            if audio {
                keys.dedup_by_key(|k| k.offset);
            }
            keys
        };
        keyframes.sort_by_key(|k| k.time);
        keyframes.dedup_by_key(|k| k.time);

        let last_block = blocks.iter().map(|b| b.0).max().unwrap_or(0);
        let frame = i64::try_from(frame_units.unwrap_or(0)).unwrap_or(i64::MAX);
        let scanned = ns(last_block.saturating_sub(first).saturating_add(frame));
        MediaInfo {
            container,
            duration: self.duration().unwrap_or(scanned),
            video: video.map(|v| VideoInfo {
                codec: codec_name(&v.codec),
                width: v.width,
                height: v.height,
                frame_rate,
            }),
            audio,
            keyframes,
        }
    }

    /// The Cues of the lead track: (time, cluster position within the segment).
    pub(crate) fn lead_cues(&self) -> Vec<(u64, u64)> {
        self.lead()
            .map(|v| {
                self.cues
                    .iter()
                    .filter(|c| c.1 == v.number)
                    .map(|c| (c.0, c.2))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The duration the Info element states, when it states a usable one.
    pub(crate) fn duration(&self) -> Option<MediaTime> {
        match self.duration {
            Some(d) if d.is_finite() && d > 0.0 => Some(MediaTime::new(
                (d * self.scale as f64).min(i64::MAX as f64) as i64,
                1_000_000_000,
            )),
            _ => None,
        }
    }
}

/// Adds one CuePoint's (time, track, cluster position) entries.
fn cue_point(data: &[u8], p: El, cues: &mut Vec<(u64, u64, u64)>) -> Result<()> {
    let mut time = None;
    let mut positions = Vec::new();
    children(data, p.data, p.end.unwrap_or(p.data), |c| {
        match c.id {
            CUE_TIME => time = Some(uint(body(data, c))),
            CUE_TRACK_POSITIONS => {
                let (mut track, mut cluster) = (None, None);
                children(data, c.data, c.end.unwrap_or(c.data), |t| {
                    match t.id {
                        CUE_TRACK => track = Some(uint(body(data, t))),
                        CUE_CLUSTER_POSITION => cluster = Some(uint(body(data, t))),
                        _ => {}
                    }
                    Ok(())
                })?;
                if let (Some(t), Some(c)) = (track, cluster) {
                    positions.push((t, c));
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    if let Some(time) = time {
        cues.extend(positions.into_iter().map(|(t, c)| (time, t, c)));
    }
    Ok(())
}
