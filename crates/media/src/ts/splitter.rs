//! Where a live MPEG-TS stream can be cut.

use super::psi::Sections;
use super::{
    audio_codec, header, pat_pmt_pid, pes_header, pmt_streams, video_codec, Stream, AUDIO_CUT,
    PACKET, SCAN_LIMIT,
};
use crate::error::{Error, Result};
use crate::nal::{self, Codec};
use crate::time::Ts90k;

/// One thing the splitter found, at the offset of its packet within the input given to `feed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// A PAT packet (PID 0) that completed a PAT section.
    Pat(usize),
    /// A PMT packet of the program the PAT names where a section begins.
    Pmt(usize),
    /// A further packet of the PMT section begun before (one longer than a packet); when the
    /// packet also begins the next section, this comes first, then `Pmt`.
    PmtMore(usize),
    /// The PMT packet just reported completed a whole PMT (its CRC checked): the packets from
    /// its `Pmt` to this one are the program's table now.
    PmtWhole(usize),
    /// The first packet of a video keyframe's PES, with its PTS when the header carries one.
    Keyframe { at: usize, pts: Option<Ts90k> },
    /// A video PES began at `at` whose packets so far (in this run, and in the runs before it
    /// when `earlier`) show neither an IDR nor a slice: whether it is a keyframe is known in a
    /// later run. A caller that cuts units keeps the bytes from `at` back until then. It comes
    /// where the PES began among the cuts (last, but for the PAT/PMT cuts after it).
    Undecided {
        at: usize,
        pts: Option<Ts90k>,
        earlier: bool,
    },
    /// First in a run: the PES reported [`Cut::Undecided`] in the runs before is a keyframe
    /// (its IDR is in this run). A PES that turns out not to be one is not reported.
    EarlierKeyframe { pts: Option<Ts90k> },
}

/// Follows PAT and PMT of a live MPEG-TS and reports, for each run of whole packets it is given,
/// where PAT, PMT and video keyframes (random_access_indicator, or an IDR/IRAP NAL unit before
/// the first slice, within [`SCAN_LIMIT`] bytes of the PES) start, in stream order. It never
/// copies the stream: the caller slices its own `Bytes` at the offsets (the first bytes of a
/// PES whose first packet is not conclusive are gathered for the scan). A PES whose IDR may lie
/// past the end of the run given is [`Cut::Undecided`]; the next runs decide it
/// ([`Cut::EarlierKeyframe`]). A program without video (a radio stream) is cut at its first audio
/// stream's PES starts, one each [`AUDIO_CUT`] at most: viewers start there, and HLS
/// segments begin there.
#[derive(Debug, Default, Clone)]
pub struct Splitter {
    pat: Sections,
    pmt: Sections,
    pmt_pid: Option<u16>,
    video: Option<(u16, Option<Codec>)>,
    /// Without video: the first audio stream's PID, and the PTS of the last cut made at it.
    audio_cuts: Option<(u16, Option<Ts90k>)>,
    video_name: Option<&'static str>,
    audio_names: Vec<&'static str>,
    /// A video PES begun in this run whose first packet showed neither a slice nor an IDR.
    scan: Option<Pending>,
}

/// A keyframe not decided yet: where its PES began and the cut would go.
#[derive(Debug, Clone)]
struct Pending {
    /// The packet's offset in the run, and the index in `out` its cut would take (0 for one
    /// that began in a run before: `earlier`).
    at: usize,
    index: usize,
    earlier: bool,
    pts: Option<Ts90k>,
    codec: Codec,
    bytes: Vec<u8>,
}

impl Splitter {
    /// Looks at `data`, which must be whole 188-byte packets (the caller keeps any partial packet
    /// for the next call), and appends what it finds to `out`. A packet without the sync byte is an
    /// error: live input is not resynced silently.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Cut>) -> Result<()> {
        if !data.len().is_multiple_of(PACKET) {
            return Err(Error::malformed(
                "mpegts",
                "input is not whole 188-byte packets",
            ));
        }
        // A scan begun in a run before goes on in this one; its decision comes first.
        if let Some(p) = &mut self.scan {
            (p.at, p.index, p.earlier) = (0, 0, true);
        }
        for (i, p) in data.chunks_exact(PACKET).enumerate() {
            let at = i * PACKET;
            let h = header(p).ok_or_else(|| {
                Error::malformed("mpegts", format!("no sync byte at offset {at}"))
            })?;
            if !h.has_payload {
                continue;
            }
            let payload = &p[h.payload_start..];
            if h.pid == 0 {
                let mut found = None;
                self.pat
                    .push(h.pusi, payload, |s| found = pat_pmt_pid(s).or(found));
                if let Some(pid) = found {
                    if self.pmt_pid != Some(pid) {
                        self.video = None;
                        self.pmt = Sections::default();
                    }
                    self.pmt_pid = Some(pid);
                    out.push(Cut::Pat(at));
                }
            } else if Some(h.pid) == self.pmt_pid {
                // A packet may end the section begun before (all of it, or the bytes its
                // pointer field gives) and begin the next: that order, in the cuts too.
                let ends = self.pmt.gathering() && (!h.pusi || payload.first() != Some(&0));
                let mut whole: [Option<Vec<Stream>>; 2] = [None, None];
                self.pmt.push_marked(h.pusi, payload, |s, here| {
                    if let Some(streams) = pmt_streams(s) {
                        whole[usize::from(here)] = Some(streams);
                    }
                });
                if ends || !h.pusi {
                    out.push(Cut::PmtMore(at));
                }
                if let Some(streams) = whole[0].take() {
                    self.declared(&streams);
                    out.push(Cut::PmtWhole(at));
                }
                if h.pusi {
                    out.push(Cut::Pmt(at));
                }
                if let Some(streams) = whole[1].take() {
                    self.declared(&streams);
                    out.push(Cut::PmtWhole(at));
                }
            } else if let Some((pid, codec)) = self.video {
                if h.pid == pid && h.pusi {
                    self.scan = None;
                    let (pts, body) = match pes_header(payload) {
                        Some((pts, _, body)) => (pts, body),
                        None => (None, payload.len()),
                    };
                    let start = payload.get(body..).unwrap_or(&[]);
                    let found = codec.map(|c| (c, nal::scan(c, start)));
                    if h.random_access || found.is_some_and(|(_, s)| s.random_access) {
                        out.push(Cut::Keyframe { at, pts });
                    } else if let Some((codec, _)) = found.filter(|(_, s)| !s.saw_slice) {
                        self.scan = Some(Pending {
                            at,
                            index: out.len(),
                            earlier: false,
                            pts,
                            codec,
                            bytes: start.to_vec(),
                        });
                    }
                } else if h.pid == pid {
                    self.scan_more(payload, out);
                }
            } else if let Some((pid, last)) = self.audio_cuts {
                if h.pid == pid && h.pusi {
                    let pts = pes_header(payload).and_then(|(pts, _, _)| pts);
                    let due = match (pts, last) {
                        (Some(t), Some(l)) => {
                            let step = t.0.wrapping_sub(l.0) & (Ts90k::WRAP - 1);
                            step >= AUDIO_CUT
                        }
                        (_, None) => true,
                        (None, Some(_)) => false,
                    };
                    if due {
                        out.push(Cut::Keyframe { at, pts });
                        self.audio_cuts = Some((pid, pts.or(last)));
                    }
                }
            }
        }
        if let Some(p) = &self.scan {
            let cut = Cut::Undecided {
                at: p.at,
                pts: p.pts,
                earlier: p.earlier,
            };
            out.insert(p.index.min(out.len()), cut);
        }
        Ok(())
    }

    /// Forgets a PES not decided yet (a caller that will not keep its bytes back any longer):
    /// it is not a keyframe.
    pub fn forget_undecided(&mut self) {
        self.scan = None;
    }

    /// The next packet of a video PES whose start did not decide: an IDR before the first slice
    /// makes it a keyframe, its cut put where the PES began (the cuts after it are later).
    fn scan_more(&mut self, payload: &[u8], out: &mut Vec<Cut>) {
        let Some(p) = &mut self.scan else { return };
        let room = SCAN_LIMIT.saturating_sub(p.bytes.len());
        p.bytes
            .extend_from_slice(payload.get(..room.min(payload.len())).unwrap_or(&[]));
        let s = nal::scan(p.codec, &p.bytes);
        if s.random_access {
            let cut = match p.earlier {
                false => Cut::Keyframe {
                    at: p.at,
                    pts: p.pts,
                },
                true => Cut::EarlierKeyframe { pts: p.pts },
            };
            out.insert(p.index.min(out.len()), cut);
        }
        if s.random_access || s.saw_slice || p.bytes.len() >= SCAN_LIMIT {
            self.scan = None;
        }
    }

    /// A whole PMT's streams: the first video one is followed for keyframes.
    fn declared(&mut self, streams: &[Stream]) {
        self.video = None;
        self.video_name = None;
        self.audio_names.clear();
        let mut audio = None;
        for s in streams {
            if let Some((name, codec)) = video_codec(s) {
                if self.video.is_none() {
                    self.video = Some((s.pid, codec));
                    self.video_name = Some(name);
                }
            } else if let Some(name) = audio_codec(s) {
                self.audio_names.push(name);
                audio = audio.or(Some(s.pid));
            }
        }
        // The same audio stream keeps its last cut (a PMT repeats often).
        let kept = self.audio_cuts.filter(|&(pid, _)| Some(pid) == audio);
        self.audio_cuts = match (self.video, audio) {
            (None, Some(pid)) => Some(kept.unwrap_or((pid, None))),
            _ => None,
        };
    }

    /// The video codec the PMT declares (`h264`, `hevc`, ...), once a PMT was seen.
    pub fn video_codec(&self) -> Option<&'static str> {
        self.video_name
    }

    /// The audio codecs the PMT declares.
    pub fn audio_codecs(&self) -> &[&'static str] {
        &self.audio_names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::index;

    /// The demo's MPEG-TS clip (ffmpeg's, a one-packet PMT).
    fn demo() -> Vec<u8> {
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/clip.ts")).unwrap()
    }

    #[test]
    fn finds_keyframes_and_psi_in_whole_packets_in_order() {
        let data = demo();
        let whole = index(&data).unwrap();
        let mut s = Splitter::default();
        // Feed in uneven runs of whole packets, as a socket would deliver them.
        let mut found = Vec::new();
        let mut pts = Vec::new();
        let (mut pat, mut pmt) = (0, 0);
        let mut off = 0;
        let mut cuts = Vec::new();
        let mut last = None;
        for n in [1usize, 7, 100, 3, 500].iter().cycle() {
            if off >= data.len() {
                break;
            }
            let end = (off + n * PACKET).min(data.len());
            cuts.clear();
            s.feed(&data[off..end], &mut cuts).unwrap();
            for c in &cuts {
                let at = match *c {
                    Cut::Pat(at) => {
                        assert_eq!(data[off + at + 5], 0, "PAT table id");
                        pat += 1;
                        at
                    }
                    Cut::Pmt(at) => {
                        assert_eq!(data[off + at + 5], 2, "PMT table id");
                        pmt += 1;
                        at
                    }
                    Cut::PmtMore(at) => panic!("ffmpeg's PMT is one packet, not {at}"),
                    Cut::PmtWhole(at) => {
                        assert_eq!(last, Some(off + at), "right after its packet's Pmt");
                        continue;
                    }
                    Cut::Keyframe { at, pts: p } => {
                        found.push((off + at) as u64);
                        pts.push(p.expect("ffmpeg writes a PTS on every video PES"));
                        at
                    }
                    // A PES whose first packet, alone in its run, shows no slice yet.
                    Cut::Undecided { .. } => continue,
                    Cut::EarlierKeyframe { .. } => panic!("a marked keyframe is known at once"),
                };
                assert!(
                    last.is_none_or(|l| off + at > l),
                    "cuts come in stream order"
                );
                last = Some(off + at);
            }
            off = end;
        }
        let expect: Vec<u64> = whole.keyframes.iter().map(|k| k.offset).collect();
        assert_eq!(found, expect);
        assert!(pts.windows(2).all(|w| w[1].0 > w[0].0), "keyframe PTS rise");
        assert!(pat >= 1 && pmt >= 1, "PAT and PMT seen");
        assert_eq!(s.video_codec(), Some("h264"));
        assert_eq!(s.audio_codecs(), ["aac"]);
        assert!(
            s.feed(&data[..100], &mut cuts).is_err(),
            "partial packets are refused"
        );
        let mut bad = data[..PACKET * 2].to_vec();
        bad[PACKET] = 0;
        assert!(
            Splitter::default().feed(&bad, &mut cuts).is_err(),
            "lost sync is an error"
        );
    }

    /// A muxer that marks no random access: a keyframe is known by its IDR, which may begin
    /// packets after its PES does (x264's first IDR follows a long SEI). Found as the index
    /// finds them, at the PES start, in stream order.
    #[test]
    fn keyframes_whose_idr_begins_after_the_first_packet_are_found_without_random_access_marks() {
        let mut data = demo();
        for p in data.chunks_exact_mut(PACKET) {
            if p[3] & 0x20 != 0 && p[4] > 0 {
                p[5] &= !0x40;
            }
        }
        let whole = index(&data).unwrap();
        let mut cuts = Vec::new();
        Splitter::default().feed(&data, &mut cuts).unwrap();
        let found: Vec<u64> = cuts
            .iter()
            .filter_map(|c| match *c {
                Cut::Keyframe { at, .. } => Some(at as u64),
                _ => None,
            })
            .collect();
        let expect: Vec<u64> = whole.keyframes.iter().map(|k| k.offset).collect();
        assert_eq!(found, expect);
        let at = |c: &Cut| match *c {
            Cut::Pat(a) | Cut::Pmt(a) | Cut::PmtMore(a) | Cut::PmtWhole(a) => a,
            Cut::Keyframe { at, .. } | Cut::Undecided { at, .. } => at,
            Cut::EarlierKeyframe { .. } => 0,
        };
        assert!(cuts.windows(2).all(|w| at(&w[0]) <= at(&w[1])), "in order");
    }

    /// A radio stream (AAC alone, a PES per frame): cut at its PES starts, half a second apart
    /// at least, so viewers and HLS segments can start there.
    #[test]
    fn a_program_without_video_is_cut_at_its_audio_every_half_second() {
        let data = crate::clip::fixtures::audio_ts(5);
        let mut cuts = Vec::new();
        let mut s = Splitter::default();
        for run in data.chunks(PACKET * 7) {
            let mut some = Vec::new();
            s.feed(run, &mut some).unwrap();
            cuts.extend(some.into_iter().filter_map(|c| match c {
                Cut::Keyframe { pts, .. } => pts,
                _ => None,
            }));
        }
        assert_eq!(s.video_codec(), None);
        assert_eq!(s.audio_codecs(), ["aac"]);
        assert!((9..=11).contains(&cuts.len()), "{cuts:?}");
        assert_eq!(cuts[0].0, 90_000, "the first PES");
        assert!(cuts.windows(2).all(|w| w[1].0 - w[0].0 >= AUDIO_CUT));
        assert!(cuts
            .windows(2)
            .all(|w| w[1].0 - w[0].0 < AUDIO_CUT + 1920 + 1));
    }

    #[test]
    fn a_pmt_over_several_packets_declares_the_streams_of_its_last() {
        let data = demo();
        let long = crate::ts::psi::with_long_pmt(&data[..data.len() / PACKET * PACKET], 30);
        let mut s = Splitter::default();
        let mut cuts = Vec::new();
        s.feed(&long, &mut cuts).unwrap();
        assert_eq!(s.video_codec(), Some("h264"));
        assert_eq!(s.audio_codecs(), ["aac"]);
        let keyframes = cuts
            .iter()
            .filter(|c| matches!(c, Cut::Keyframe { .. }))
            .count();
        assert_eq!(keyframes, index(&data).unwrap().keyframes.len());
        // Each PMT: its first packet, then the ones it runs on in.
        let psi: Vec<&Cut> = cuts
            .iter()
            .filter(|c| matches!(c, Cut::Pmt(_) | Cut::PmtMore(_)))
            .take(3)
            .collect();
        let whole = cuts
            .iter()
            .filter(|c| matches!(c, Cut::PmtWhole(_)))
            .count();
        let begun = cuts.iter().filter(|c| matches!(c, Cut::Pmt(_))).count();
        assert_eq!(whole, begun, "each PMT is whole at its last packet");
        assert!(
            matches!(psi[..], [Cut::Pmt(a), Cut::PmtMore(b), Cut::PmtMore(c)] if *b == a + PACKET && *c == b + PACKET),
            "{psi:?}"
        );
    }

    #[test]
    fn a_keyframe_between_the_packets_of_a_pmt_comes_before_the_pmt_is_whole() {
        let data = demo();
        let long = crate::ts::psi::with_long_pmt(&data[..data.len() / PACKET * PACKET], 30);
        let packets: Vec<&[u8]> = long.chunks_exact(PACKET).collect();
        // The second PMT's first packet, a keyframe's first packet, then the rest of the PMT.
        let pmt = |p: &[u8]| header(p).is_some_and(|h| h.pid == 0x1000);
        let starts: Vec<usize> = (0..packets.len())
            .filter(|&i| pmt(packets[i]) && header(packets[i]).unwrap().pusi)
            .collect();
        let first = starts[1];
        let rest = (first + 1..).take_while(|&i| pmt(packets[i])).count();
        let mut cuts = Vec::new();
        Splitter::default().feed(&long, &mut cuts).unwrap();
        let key = cuts
            .iter()
            .find_map(|c| match c {
                Cut::Keyframe { at, .. } if *at > first * PACKET => Some(at / PACKET),
                _ => None,
            })
            .unwrap();
        let mut s = Splitter::default();
        cuts.clear();
        s.feed(&packets[..first].concat(), &mut cuts).unwrap();
        let mut moved: Vec<&[u8]> = vec![packets[first], packets[key]];
        moved.extend(&packets[first + 1..first + 1 + rest]);
        cuts.clear();
        s.feed(&moved.concat(), &mut cuts).unwrap();
        assert!(
            matches!(cuts[..2], [Cut::Pmt(0), Cut::Keyframe { at: 188, .. }]),
            "{cuts:?}"
        );
        assert_eq!(cuts.last(), Some(&Cut::PmtWhole(PACKET * (rest + 1))));
    }

    #[test]
    fn a_pmt_with_a_wrong_crc_leaves_the_streams_declared_before() {
        let data = demo();
        let data = &data[..data.len() / PACKET * PACKET];
        let mut s = Splitter::default();
        let mut cuts = Vec::new();
        s.feed(data, &mut cuts).unwrap();
        // The same stream again with the first stream's PID in every PMT spoiled (its CRC not
        // fixed): a PMT that does not check out is not taken.
        let mut spoiled = data.to_vec();
        for p in spoiled.chunks_exact_mut(PACKET) {
            if header(p).is_some_and(|h| h.pid == 0x1000 && h.pusi) {
                p[5 + 13] ^= 0x40;
            }
        }
        cuts.clear();
        s.feed(&spoiled, &mut cuts).unwrap();
        assert_eq!(s.video_codec(), Some("h264"));
        assert!(cuts.iter().any(|c| matches!(c, Cut::Keyframe { .. })));
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = fastrand::Rng::with_seed(10);
        let mut cuts = Vec::new();
        for _ in 0..2000 {
            let n = rng.usize(0..6) * PACKET;
            let mut d: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
            for i in (0..d.len()).step_by(PACKET) {
                d[i] = super::super::SYNC;
            }
            let mut s = Splitter::default();
            let _ = s.feed(&d, &mut cuts);
        }
    }
}
