//! Muxed fragments (both tracks in one `moof`, as [`super::Fragmenter`] writes them) back into
//! one track's own fragments, the ones the fragmenter also makes for DASH: the same sequence
//! number, base time and samples, written by [`fragment_head`] for that track alone, followed by
//! the track's samples, which lie in the muxed `mdat` run after run. What a recording of the
//! muxed fragments holds is thus served as DASH's per-track segments, the samples not copied.
//!
//! Only fragments written here are split: each head is written again from what was read of it
//! and must come out as the same bytes, or the input is refused.

use super::fragment::{fragment_head, read_traf, Run, Sample, Traf, TRUN_FLAGS};
use super::{AUDIO_TRACK, VIDEO_TRACK};
use crate::error::{Error, Result};
use crate::mp4::{child, full_box, next_box};
use crate::read::Reader;
use std::ops::Range;

/// One fragment of the track asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFragment {
    /// Its own `moof` and `mdat` header.
    pub head: Vec<u8>,
    /// Where its samples are in the input.
    pub samples: Range<usize>,
}

fn bad(why: impl Into<String>) -> Error {
    Error::malformed("cmaf fragments", why.into())
}

/// The fragments of `track` (0 video, 1 audio) in `fragments`: whole `[prft] moof mdat` units,
/// one after another. Fragments without a run of that track give nothing.
pub fn split(fragments: &[u8], track: usize) -> Result<Vec<TrackFragment>> {
    let wanted = match track {
        0 => VIDEO_TRACK,
        1 => AUDIO_TRACK,
        _ => return Err(bad(format!("no track {track}"))),
    };
    let mut out = Vec::new();
    let mut r = Reader::new(fragments, 0, "cmaf fragments");
    while let Some(b) = next_box(&mut r, false)? {
        match &b.kind {
            b"prft" => continue,
            b"moof" => {}
            _ => return Err(bad(format!("a box that is not a fragment at {}", b.start))),
        }
        let (sequence, runs) = read_moof(b.body)?;
        let mdat = match next_box(&mut r, false)? {
            Some(m) if &m.kind == b"mdat" => m,
            _ => return Err(bad(format!("a moof at {} without its mdat", b.start))),
        };
        let start = usize::try_from(b.start).map_err(|_| bad("offset"))?;
        let data = usize::try_from(mdat.body.position()).map_err(|_| bad("offset"))?;
        let as_runs: Vec<Run<'_>> = runs.iter().map(OwnedRun::run).collect();
        if fragment_head(sequence, &as_runs)? != fragments[start..data] {
            return Err(bad(format!(
                "the fragment at {start} is not one written here"
            )));
        }
        let mut at = data;
        for run in &as_runs {
            let len = run
                .samples
                .iter()
                .try_fold(0usize, |n, s| n.checked_add(usize::try_from(s.size).ok()?))
                .ok_or_else(|| bad("sample sizes"))?;
            let end = at.checked_add(len).ok_or_else(|| bad("sample sizes"))?;
            if run.track_id == wanted {
                out.push(TrackFragment {
                    head: fragment_head(sequence, std::slice::from_ref(run))?,
                    samples: at..end,
                });
            }
            at = end;
        }
    }
    Ok(out)
}

struct OwnedRun {
    track_id: u32,
    base_time: u64,
    samples: Vec<Sample>,
}

impl OwnedRun {
    fn run(&self) -> Run<'_> {
        Run {
            track_id: self.track_id,
            base_time: self.base_time,
            samples: &self.samples,
        }
    }
}

/// A `moof` as [`fragment_head`] writes it: its sequence number and runs.
fn read_moof(moof: Reader<'_>) -> Result<(u32, Vec<OwnedRun>)> {
    let mut mfhd = child(&moof, b"mfhd")?.ok_or_else(|| bad("a moof without mfhd"))?;
    full_box(&mut mfhd)?;
    let sequence = mfhd.u32()?;
    let mut runs = Vec::with_capacity(2);
    let mut m = moof;
    while let Some(traf) = next_box(&mut m, false)? {
        if &traf.kind != b"traf" {
            continue;
        }
        let Traf {
            track: track_id,
            time: base_time,
            trun_flags,
            mut trun,
        } = read_traf(&traf.body)?;
        if trun_flags != TRUN_FLAGS {
            return Err(bad("a trun not written here"));
        }
        let count = trun.u32()?;
        trun.u32()?; // data offset: checked when the head is written again
        let count = trun.check_count(count.into(), 16)?;
        let mut samples = Vec::with_capacity(count);
        for _ in 0..count {
            let duration = trun.u32()?;
            let size = trun.u32()?;
            let flags = trun.u32()?;
            let cto = trun.u32()? as i32;
            samples.push(Sample {
                duration,
                size,
                keyframe: flags == super::fragment::SYNC,
                cto,
            });
        }
        runs.push(OwnedRun {
            track_id,
            base_time,
            samples,
        });
    }
    Ok((sequence, runs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmaf::{Event, Fragmenter};

    /// demo/clip.ts through the fragmenter: every muxed unit as the live wing holds it (a
    /// `prft`, the head, the samples), and each track's own fragments, as DASH serves them.
    fn fragments() -> (Vec<u8>, [Vec<u8>; 2]) {
        let ts = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/clip.ts")).unwrap();
        let mut tags = Vec::new();
        crate::flv::FromTs::default().feed(&ts, &mut tags);
        let mut f = Fragmenter::<Vec<u8>>::default();
        let mut events = Vec::new();
        for t in &tags {
            let sample = |start: usize| t.body[start..].to_vec();
            f.tag(t.video, t.ms, &t.body, sample, &mut events).unwrap();
        }
        let mut muxed = Vec::new();
        let mut tracks = [Vec::new(), Vec::new()];
        for e in events {
            let Event::Fragment {
                head,
                data,
                tracks: own,
                ms,
                ..
            } = e
            else {
                continue;
            };
            muxed.extend_from_slice(&crate::cmaf::prft(1, 0, ms));
            muxed.extend_from_slice(&head);
            data.iter().for_each(|d| muxed.extend_from_slice(d));
            let video = usize::from(own[0].is_some());
            for (t, head) in own.into_iter().enumerate() {
                let Some(head) = head else { continue };
                tracks[t].extend_from_slice(&head);
                let samples = if t == 0 {
                    &data[..video]
                } else {
                    &data[video..]
                };
                samples.iter().for_each(|d| tracks[t].extend_from_slice(d));
            }
        }
        (muxed, tracks)
    }

    /// A track's fragments laid out as they are served: each head, then its samples.
    fn served(muxed: &[u8], split: &[TrackFragment]) -> Vec<u8> {
        split
            .iter()
            .flat_map(|f| f.head.iter().chain(&muxed[f.samples.clone()]))
            .copied()
            .collect()
    }

    #[test]
    fn muxed_fragments_split_into_the_tracks_the_fragmenter_made() {
        let (muxed, tracks) = fragments();
        for (t, own) in tracks.iter().enumerate() {
            let split = split(&muxed, t).unwrap();
            assert!(split.len() > 10, "track {t}: {} fragments", split.len());
            assert!(served(&muxed, &split) == *own, "track {t}");
        }
    }

    #[test]
    fn fragments_not_written_here_or_cut_short_are_refused() {
        let (muxed, _) = fragments();
        // Cut inside a fragment; a sample's size changed (the head no longer says where the
        // samples are); another track number; an init segment.
        assert!(split(&muxed[..muxed.len() - 1], 0).is_err());
        let mut sized = muxed.clone();
        let trun = sized.windows(4).position(|w| w == b"trun").unwrap();
        sized[trun + 20] ^= 1;
        assert!(split(&sized, 0).is_err());
        assert!(split(&muxed, 2).is_err());
        assert!(split(b"\0\0\0\x08ftyp", 0).is_err());
        assert_eq!(split(&[], 0).unwrap(), []);
    }
}
