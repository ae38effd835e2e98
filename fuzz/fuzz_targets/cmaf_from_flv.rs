//! FLV/RTMP audio and video message bodies → CMAF init segments and fragments (the fMP4 outputs
//! of a live stream). Input: records of [kind, ms (4 bytes), len (2 bytes), body], as for
//! `flv_to_ts`. Checks that every fragment's head declares exactly the bytes that follow it and
//! reads back ([`fragment_runs`]) with as many samples; the input itself, read as a fragment unit
//! (`read_prft`, `fragment_runs`, `init_tracks`, and as a stream to `ToFlv`), never panics; every
//! init segment reads back; the init segments and fragments read back to FLV (`ToFlv`, what an
//! `.flv` DVR viewer of an fMP4 recording gets) as one tag per sample, nothing skipped, and to
//! MPEG-TS (`live::rewind::TsRewind`, a `.ts` DVR viewer's) as whole packets; and each fragment
//! splits (`media::cmaf::split`, a DASH DVR segment read from a recording) into exactly the
//! per-track fragments the fragmenter made, the input itself into whatever it holds or an error.
//! Whatever the timestamps do, each track's fragments begin later than its last ones did.
#![no_main]
use libfuzzer_sys::fuzz_target;
use media::cmaf::{fragment_runs, init_tracks, read_prft, Event, Fragmenter, ToFlv};

fuzz_target!(|data: &[u8]| {
    if let Some((_, at)) = read_prft(data) {
        let _ = fragment_runs(&data[at..]);
    }
    let _ = fragment_runs(data);
    let _ = init_tracks(data);
    for track in 0..2 {
        if let Ok(split) = media::cmaf::split::split(data, track) {
            assert!(split.iter().all(|f| f.samples.end <= data.len()));
        }
    }
    let mut tags = Vec::new();
    ToFlv::default().feed(data, &mut tags);
    let clock = media::flv::Clock { first: 0, last: 0 };
    let mut ts = Vec::new();
    live::rewind::TsRewind::of_fmp4(clock).feed(data, &mut ts);
    let mut to_ts = live::rewind::TsRewind::of_fmp4(clock);
    let mut back = ToFlv::default();
    let mut f = Fragmenter::<Vec<u8>>::default();
    let mut out = Vec::new();
    let mut last = [None::<u64>; 2];
    let mut rest = data;
    while let Some((head, tail)) = rest.split_at_checked(7) {
        let video = head[0] & 1 == 1;
        let ms = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        let len = usize::from(u16::from_be_bytes([head[5], head[6]]));
        let (body, after) = tail.split_at(len.min(tail.len()));
        // The handle on a sample is its bytes: the mdat must add up to them.
        let sample = |start: usize| {
            assert!(start <= body.len());
            body[start..].to_vec()
        };
        let _ = f.tag(video, ms, body, sample, &mut out);
        for e in out.drain(..) {
            if let Event::Init(init) = &e {
                init_tracks(init).expect("an init segment reads back");
                back.feed(init, &mut tags);
                to_ts.feed(init, &mut ts);
            }
            if let Event::Fragment {
                head, data, tracks, ..
            } = e
            {
                // The mdat header is the last 8 bytes of the head: its size covers the samples.
                let n = head.len();
                let mdat = u32::from_be_bytes([head[n - 8], head[n - 7], head[n - 6], head[n - 5]]);
                assert_eq!(mdat as usize, 8 + data.iter().map(Vec::len).sum::<usize>());
                let runs = fragment_runs(&head).expect("a fragment head reads back");
                let samples: u32 = runs.iter().flatten().map(|r| r.1).sum();
                assert_eq!(samples as usize, data.len());
                for (t, run) in runs.iter().enumerate() {
                    if let Some((time, _)) = run {
                        assert!(last[t].is_none_or(|l| l < *time), "track {t} went back");
                        last[t] = Some(*time);
                    }
                }
                tags.clear();
                back.feed(&head, &mut tags);
                data.iter().for_each(|d| back.feed(d, &mut tags));
                to_ts.feed(&head, &mut ts);
                data.iter().for_each(|d| to_ts.feed(d, &mut ts));
                assert!(ts.iter().all(|b| b.len() % 188 == 0), "whole packets");
                assert_eq!(back.skipped, 0);
                let frames = tags.iter().filter(|t| !t.sequence).count();
                assert_eq!(frames, data.len(), "a tag per sample");
                // Split back into each track's own fragment, as the fragmenter made them.
                let muxed: Vec<u8> = head.iter().chain(data.iter().flatten()).copied().collect();
                let video = usize::from(tracks[0].is_some());
                for (t, own) in tracks.iter().enumerate() {
                    let split = media::cmaf::split::split(&muxed, t).expect("a fragment splits");
                    let Some(own) = own else {
                        assert!(split.is_empty());
                        continue;
                    };
                    assert_eq!(split.len(), 1);
                    assert_eq!(&split[0].head, own);
                    let samples = if t == 0 {
                        &data[..video]
                    } else {
                        &data[video..]
                    };
                    let want: Vec<u8> = samples.iter().flatten().copied().collect();
                    assert_eq!(muxed[split[0].samples.clone()], want[..]);
                }
            }
        }
        rest = after;
    }
    let _ = f.init();
});
