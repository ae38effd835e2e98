//! The seek index of an MPEG-TS, from one pass over its packets: held whole in memory
//! ([`index`]) or fed in pieces as they arrive ([`Indexer`]: a title in object storage read
//! block by block, holding only a few packets between pieces). Both are the same scan, so they
//! give the same index.

use super::psi::Sections;
use super::{
    audio_codec, find_sync, header, pat_pmt_pid, pes_header, pmt_streams, video_codec, Stream,
    AUDIO_CUT, PACKET, SCAN_LIMIT,
};
use crate::error::{Error, Result};
use crate::info::{most_common, AudioInfo, Container, Keyframe, MediaInfo, VideoInfo};
use crate::nal::{self, Codec};
use crate::time::{FrameRate, MediaTime, Ts90k, Unwrapper};

/// Bytes past a packet that lost sync which the search for the next start looks at (as
/// [`find_sync`] does on a whole file): a piece ending sooner waits for the next one.
const RESYNC_AHEAD: usize = 1 + 4 * PACKET;

/// A video PES being collected.
struct Pending {
    offset: u64,
    pts: Option<i64>,
    flagged: bool,
    head: Vec<u8>,
}

/// Where the scan stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Sync {
    /// The first packet start is not found yet.
    #[default]
    Searching,
    Locked,
    /// No packet start where one was looked for: the scan ends there (`found`: whether one
    /// was ever found).
    Lost {
        found: bool,
    },
}

/// An MPEG-TS indexed one piece at a time: [`Indexer::feed`] the file's bytes in order (pieces
/// of any size), then [`Indexer::finish`]. Holds the keyframes and the video frames' times, and
/// at most a few packets of the input between pieces.
#[derive(Default)]
pub struct Indexer {
    /// Input not scanned yet (a packet cut by the end of a piece, or bytes to look through for
    /// a packet start), and where it sits in the file.
    carry: Vec<u8>,
    carry_at: u64,
    sync: Sync,
    /// The PAT's and PMT's sections, gathered over packets.
    pat: Sections,
    pmt: Sections,
    pmt_pid: Option<u16>,
    video: Option<(Stream, &'static str, Option<Codec>)>,
    /// The first audio stream: its codec and PID.
    audio: Option<(&'static str, u16)>,
    /// While no video stream is known: the audio PES starts (PTS, packet offset), the cut
    /// points of a title without video.
    audio_starts: Vec<(i64, u64)>,
    /// The latest audio PES time, and the step to it from the one before (the duration ends
    /// one such step after the latest).
    audio_last: Option<(i64, u64)>,
    audio_unwrap: Unwrapper,
    unwrap: Unwrapper,
    pending: Option<Pending>,
    frames: Vec<i64>,
    keys: Vec<(i64, u64)>,
    dims: Option<(u32, u32)>,
}

impl std::fmt::Debug for Indexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexer")
            .field("at", &(self.carry_at + self.carry.len() as u64))
            .field("sync", &self.sync)
            .field("keyframes", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// Indexes an MPEG-TS held in memory.
pub fn index(data: &[u8]) -> Result<MediaInfo> {
    let mut ix = Indexer::default();
    ix.scan(data, 0, true);
    ix.info()
}

impl Indexer {
    /// Scans the next piece of the file (the bytes right after those fed before).
    pub fn feed(&mut self, piece: &[u8]) {
        if self.carry.is_empty() {
            let at = self.carry_at;
            let used = self.scan(piece, at, false);
            self.carry.extend_from_slice(&piece[used..]);
            self.carry_at = at + used as u64;
        } else {
            let mut carry = std::mem::take(&mut self.carry);
            carry.extend_from_slice(piece);
            let used = self.scan(&carry, self.carry_at, false);
            carry.drain(..used);
            self.carry = carry;
            self.carry_at += used as u64;
        }
    }

    /// The index of everything fed.
    pub fn finish(mut self) -> Result<MediaInfo> {
        let carry = std::mem::take(&mut self.carry);
        self.scan(&carry, self.carry_at, true);
        self.info()
    }

    /// Scans the packets of `data` (at `base` in the file); returns how many bytes it used up.
    /// Unless `last`, it stops where the rest could read differently once more bytes follow.
    fn scan(&mut self, data: &[u8], base: u64, last: bool) -> usize {
        let mut pos = 0;
        if self.sync == Sync::Searching {
            if !last && data.len() < 4 * PACKET {
                return 0;
            }
            match find_sync(data) {
                Some(start) => {
                    self.sync = Sync::Locked;
                    pos = start;
                }
                None => {
                    self.sync = Sync::Lost { found: false };
                    return data.len();
                }
            }
        }
        if self.sync != Sync::Locked {
            return data.len();
        }
        while pos + PACKET <= data.len() {
            let p = &data[pos..pos + PACKET];
            let Some(h) = header(p) else {
                if !last && data.len() - pos < RESYNC_AHEAD {
                    return pos;
                }
                // Lost sync: find the next packet start.
                match find_sync(&data[pos + 1..]) {
                    Some(skip) => {
                        pos += 1 + skip;
                        continue;
                    }
                    None => {
                        self.sync = Sync::Lost { found: true };
                        return data.len();
                    }
                }
            };
            self.packet(p, h, base + pos as u64);
            pos += PACKET;
        }
        pos
    }

    fn packet(&mut self, p: &[u8], h: super::Header, at: u64) {
        if !h.has_payload {
            return;
        }
        let payload = &p[h.payload_start..];
        if h.pid == 0 {
            let mut found = None;
            self.pat
                .push(h.pusi, payload, |s| found = pat_pmt_pid(s).or(found));
            self.pmt_pid = found.or(self.pmt_pid);
            return;
        }
        if Some(h.pid) == self.pmt_pid && self.video.is_none() {
            let mut streams = None;
            self.pmt.push(h.pusi, payload, |s| {
                streams = pmt_streams(s).or(streams.take())
            });
            for s in streams.unwrap_or_default() {
                if let Some((name, codec)) = video_codec(&s) {
                    self.video.get_or_insert((s, name, codec));
                } else if let Some(a) = audio_codec(&s) {
                    self.audio.get_or_insert((a, s.pid));
                }
            }
            return;
        }
        let Some((vs, _, codec)) = self.video else {
            if h.pusi && self.audio.is_some_and(|a| a.1 == h.pid) {
                if let Some((Some(t), _, _)) = pes_header(payload) {
                    let t = self.audio_unwrap.unwrap(t);
                    let step = self.audio_last.map_or(0, |(last, _)| t.abs_diff(last));
                    self.audio_last = Some((t, step));
                    // At most one cut point in AUDIO_CUT: a day of one frame per PES would
                    // otherwise be millions of them.
                    let near = self
                        .audio_starts
                        .last()
                        .is_some_and(|&(last, _)| t.abs_diff(last) < AUDIO_CUT);
                    if !near {
                        self.audio_starts.push((t, at));
                    }
                }
            }
            return;
        };
        if h.pid != vs.pid {
            return;
        }
        if h.pusi {
            let mut head = Vec::new();
            if let Some(prev) = self.pending.take() {
                head = self.finish_frame(prev, codec);
            }
            let (pts, _dts, body) = pes_header(payload).unwrap_or((None, None, payload.len()));
            let pts = pts.map(|t| self.unwrap.unwrap(t));
            if let Some(t) = pts {
                self.frames.push(t);
            }
            head.clear();
            head.extend_from_slice(&payload[body..]);
            self.pending = Some(Pending {
                offset: at,
                pts,
                flagged: h.random_access,
                head,
            });
        } else if let Some(p) = self.pending.as_mut() {
            if !p.flagged && p.head.len() < SCAN_LIMIT {
                // Copies at most SCAN_LIMIT bytes per frame, at index time only.
                p.head.extend_from_slice(payload);
            }
        }
    }

    /// Notes a whole frame; gives back its buffer for the next one.
    fn finish_frame(&mut self, p: Pending, codec: Option<Codec>) -> Vec<u8> {
        let key = p.flagged || codec.is_some_and(|c| nal::scan(c, &p.head).random_access);
        if key && self.dims.is_none() && codec == Some(Codec::H264) {
            self.dims = nal::find_h264_sps(&p.head).and_then(|s| nal::h264_sps_dimensions(s).ok());
        }
        if let (true, Some(pts)) = (key, p.pts) {
            self.keys.push((pts, p.offset));
        }
        p.head
    }

    fn info(mut self) -> Result<MediaInfo> {
        if self.sync != Sync::Locked && self.sync != (Sync::Lost { found: true }) {
            return Err(Error::malformed("mpegts", "no sync byte pattern"));
        }
        if let Some(prev) = self.pending.take() {
            let codec = self.video.and_then(|v| v.2);
            self.finish_frame(prev, codec);
        }
        let audio = self.audio.map(|a| AudioInfo {
            codec: a.0.into(),
            sample_rate: None,
            channels: None,
        });
        let Some((_, vname, _)) = self.video else {
            // Without video, audio PES starts (one each half second at most) are the cut points.
            let mut starts = self.audio_starts;
            starts.sort_by_key(|k| k.0);
            let first = starts.first().map_or(0, |k| k.0);
            let (last, step) = self.audio_last.unwrap_or((first, 0));
            let duration = last
                .saturating_sub(first)
                .saturating_add(i64::try_from(step).unwrap_or(0));
            return Ok(MediaInfo {
                container: Container::MpegTs,
                duration: MediaTime::new(duration, Ts90k::HZ),
                video: None,
                audio,
                keyframes: starts
                    .into_iter()
                    .map(|(t, offset)| Keyframe {
                        time: MediaTime::new(t.saturating_sub(first), Ts90k::HZ),
                        offset,
                    })
                    .collect(),
            });
        };
        let (mut frames, mut keys, dims) = (self.frames, self.keys, self.dims);
        frames.sort_unstable();
        let first = frames.first().copied().unwrap_or(0);
        let delta = most_common(frames.windows(2).map(|w| (w[1] - w[0]) as u64));
        let last = frames.last().copied().unwrap_or(0);
        let duration = last - first + delta.unwrap_or(0) as i64;
        keys.sort_by_key(|k| k.0);
        Ok(MediaInfo {
            container: Container::MpegTs,
            duration: MediaTime::new(duration, Ts90k::HZ),
            video: Some(VideoInfo {
                codec: vname.into(),
                width: dims.map(|d| d.0),
                height: dims.map(|d| d.1),
                frame_rate: delta
                    .and_then(|d| FrameRate::from_frame_duration(u64::from(Ts90k::HZ), d)),
            }),
            audio,
            keyframes: keys
                .into_iter()
                .map(|(t, offset)| Keyframe {
                    time: MediaTime::new(t - first, Ts90k::HZ),
                    offset,
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo library's MPEG-TS title (made by ffmpeg, see demo/README.md).
    const CLIP: &[u8] = include_bytes!("../../../../demo/clip.ts");

    fn in_pieces(data: &[u8], sizes: &[usize]) -> Result<MediaInfo> {
        let mut ix = Indexer::default();
        let (mut at, mut i) = (0, 0);
        while at < data.len() {
            let n = sizes[i % sizes.len()].min(data.len() - at);
            ix.feed(&data[at..at + n]);
            at += n;
            i += 1;
        }
        ix.finish()
    }

    #[test]
    fn a_pmt_over_several_packets_indexes_as_the_same_streams() {
        let data =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/clip.ts")).unwrap();
        let data = &data[..data.len() / PACKET * PACKET];
        let long = crate::ts::psi::with_long_pmt(data, 30);
        let (a, b) = (index(data).unwrap(), index(&long).unwrap());
        let times = |i: &MediaInfo| i.keyframes.iter().map(|k| k.time).collect::<Vec<_>>();
        assert_eq!(times(&a), times(&b));
        assert_eq!(b.video.map(|v| v.codec), a.video.map(|v| v.codec));
        assert_eq!(b.audio.map(|v| v.codec), a.audio.map(|v| v.codec));
    }

    #[test]
    fn fed_in_pieces_of_any_size_it_indexes_as_the_whole_file() {
        let whole = index(CLIP).unwrap();
        assert!(whole.keyframes.len() >= 3, "{:?}", whole.keyframes);
        for sizes in [&[1usize][..], &[187], &[188], &[1000, 7, 4096], &[65536]] {
            assert_eq!(
                in_pieces(CLIP, sizes).unwrap(),
                whole,
                "pieces of {sizes:?}"
            );
        }
    }

    #[test]
    fn lost_sync_and_garbage_read_the_same_fed_in_pieces() {
        let mut rng = fastrand::Rng::with_seed(21);
        for round in 0..300 {
            let mut d = CLIP[..CLIP.len().min(188 * 60)].to_vec();
            for _ in 0..rng.usize(1..20) {
                let i = rng.usize(..d.len());
                d[i] = rng.u8(..);
            }
            if round % 3 == 0 {
                let cut = rng.usize(..d.len());
                d.drain(cut..(cut + rng.usize(1..400)).min(d.len()));
            }
            let whole = index(&d).map_err(|e| e.to_string());
            for sizes in [&[1usize][..], &[100, 377], &[188 * 3 + 5]] {
                let pieces = in_pieces(&d, sizes).map_err(|e| e.to_string());
                assert_eq!(pieces, whole, "round {round}, pieces of {sizes:?}");
            }
        }
    }
}
