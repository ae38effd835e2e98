use super::*;

pub(super) fn clip() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/clip.ts")).unwrap()
}

#[test]
fn a_ts_becomes_flv_tags_and_back_with_the_same_keyframes() {
    let data = clip();
    let info = crate::ts::index(&data).unwrap();
    let mut conv = FromTs::default();
    let mut tags = Vec::new();
    for chunk in data.chunks(PACKET * 7) {
        conv.feed(chunk, &mut tags);
    }
    assert_eq!(
        tags.iter().filter(|t| t.sequence).count(),
        2,
        "AVC and AAC headers"
    );
    let keys = tags.iter().filter(|t| t.keyframe).count();
    assert_eq!(keys, info.keyframes.len());
    let video: Vec<u32> = tags
        .iter()
        .filter(|t| t.video && !t.sequence)
        .map(|t| t.ms)
        .collect();
    assert!(video.windows(2).all(|w| w[1] >= w[0]));
    // Back to TS through the RTMP path's converter: the same keyframes and codecs.
    let mut back = crate::flv::ToTs::default();
    let mut ts = Vec::new();
    for t in &tags {
        if t.video {
            back.video(&t.body, t.ms, &mut ts).unwrap();
        } else {
            back.audio(&t.body, t.ms, &mut ts).unwrap();
        }
    }
    let again = crate::ts::index(&ts).unwrap();
    assert_eq!(again.keyframes.len(), info.keyframes.len());
    assert_eq!(back.codecs(), (Some("h264"), Some("aac")));
}

/// `ts` through a conversion in reads of five packets: its tags, and the frames it skipped.
pub(super) fn convert(ts: &[u8]) -> (Vec<Tag>, u64) {
    let mut conv = FromTs::default();
    let mut tags = Vec::new();
    for chunk in ts.chunks(PACKET * 5) {
        conv.feed(chunk, &mut tags);
    }
    (tags, conv.skipped)
}

#[test]
fn a_pmt_over_several_packets_converts_to_the_same_tags() {
    let data = clip();
    let data = &data[..data.len() / PACKET * PACKET];
    let (tags, _) = convert(data);
    assert!(tags.len() > 100);
    assert!(convert(&crate::ts::psi::with_long_pmt(data, 30)).0 == tags);
}

#[test]
fn a_conversion_begun_mid_gop_holds_audio_frames_until_the_video_configuration() {
    let data = clip();
    let info = crate::ts::index(&data).unwrap();
    // From the packet after the first keyframe's start: the video configuration comes with
    // the second keyframe, and audio goes on in between.
    let from = (info.keyframes[0].offset as usize / PACKET + 1) * PACKET;
    let mut conv = FromTs::default();
    // The PAT and PMT first, as a live stream repeats them.
    let mut input = data[..2 * PACKET].to_vec();
    input.extend_from_slice(&data[from..]);
    let mut tags = Vec::new();
    conv.feed(&input, &mut tags);
    let first_frame = tags.iter().position(|t| !t.sequence).unwrap();
    let avc = tags.iter().position(|t| t.video && t.sequence).unwrap();
    assert!(avc < first_frame, "no frame before the video configuration");
    assert!(tags[first_frame].video && tags[first_frame].keyframe);
    assert!(
        tags.iter().any(|t| !t.video && t.sequence),
        "the audio configuration came"
    );
    assert!(
        tags.iter().any(|t| !t.video && !t.sequence),
        "audio follows"
    );
}

#[test]
fn audio_that_began_before_the_first_keyframe_is_dropped_instead_of_stacked_at_zero() {
    // What an edge receives from its origin's `.ts`: a keyframe first, then audio whose
    // time is before it (a muxer writes an audio PES after the video it began before).
    let mut tags = Vec::new();
    FromTs::default().feed(&clip(), &mut tags);
    let find = |f: &dyn Fn(&Tag) -> bool| tags.iter().find(|t| f(t)).unwrap().clone();
    let avc = find(&|t| t.video && t.sequence);
    let key = find(&|t| t.keyframe);
    let asc = find(&|t| !t.video && t.sequence);
    let aac = find(&|t| !t.video && !t.sequence);
    let mut mux = crate::flv::ToTs::default();
    let mut ts = Vec::new();
    mux.audio(&asc.body, 100, &mut ts).unwrap();
    mux.video(&avc.body, 300, &mut ts).unwrap();
    mux.video(&key.body, 300, &mut ts).unwrap();
    for n in 0..16 {
        mux.audio(&aac.body, 100 + n * 21, &mut ts).unwrap();
    }
    mux.video(&key.body, 400, &mut ts).unwrap();
    let mut out = Vec::new();
    FromTs::default().feed(&ts, &mut out);
    let audio: Vec<u32> = out
        .iter()
        .filter(|t| !t.video && !t.sequence)
        .map(|t| t.ms)
        .collect();
    let all: Vec<(bool, bool, u32)> = out.iter().map(|t| (t.video, t.sequence, t.ms)).collect();
    assert!(
        !audio.is_empty(),
        "the audio from the keyframe on is kept: {all:?}"
    );
    assert!(audio.windows(2).all(|w| w[1] > w[0]), "{audio:?}");
    assert_eq!(
        audio[0],
        100 + 10 * 21 - 300,
        "the first frame at or after the keyframe"
    );
}

#[test]
fn h265_and_opus_become_enhanced_tags_the_fmp4_writer_reads() {
    // fuzz/seeds/ts_to_flv/hevc-opus.ts: 0.6 s of 64x48 H.265 (a keyframe every 3 frames) and
    // Opus, made by fuzz/make-seeds.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/seeds/ts_to_flv/hevc-opus.ts"
    );
    let data = std::fs::read(path).unwrap();
    let mut tags = Vec::new();
    FromTs::default().feed(&data, &mut tags);
    let seq: Vec<&Tag> = tags.iter().filter(|t| t.sequence).collect();
    assert_eq!(seq.len(), 2, "hvcC and OpusHead");
    assert_eq!(&seq[0].body[..5], b"\x90hvc1");
    assert_eq!(&seq[1].body[..13], b"\x90OpusOpusHead");
    let pre_skip = u16::from_le_bytes([seq[1].body[15], seq[1].body[16]]);
    assert_eq!(
        pre_skip, 312,
        "libopus's pre-skip, from the first packet's start trim"
    );
    assert!(tags.iter().any(|t| t.video && t.keyframe));
    let audio: Vec<u32> = tags
        .iter()
        .filter(|t| !t.video && !t.sequence)
        .map(|t| t.ms)
        .collect();
    assert!(audio.len() >= 20, "20 ms packets: {audio:?}");
    assert!(audio.windows(2).all(|w| w[1] > w[0]), "{audio:?}");
    // Through the fMP4 writer: an H.265 + Opus fragmented MP4 the indexer reads back. (The
    // configurations first: in so short a clip the first audio comes after the last
    // keyframe, and the writer starts at a keyframe once it knows both tracks.)
    let mut f = crate::cmaf::Fragmenter::<Vec<u8>>::default();
    let mut events = Vec::new();
    let (configs, frames): (Vec<&Tag>, Vec<&Tag>) = tags.iter().partition(|t| t.sequence);
    for t in configs.into_iter().chain(frames) {
        f.tag(
            t.video,
            t.ms,
            &t.body,
            |at| t.body[at..].to_vec(),
            &mut events,
        )
        .unwrap();
    }
    let mut file = Vec::new();
    for e in events {
        match e {
            crate::cmaf::Event::Init(i) => file.extend_from_slice(&i),
            crate::cmaf::Event::Fragment { head, data, .. } => {
                file.extend_from_slice(&head);
                data.iter().for_each(|d| file.extend_from_slice(d));
            }
        }
    }
    let info = crate::index(&file).unwrap();
    assert_eq!(info.video.map(|v| v.codec).as_deref(), Some("hevc"));
    assert_eq!(info.audio.map(|a| a.codec).as_deref(), Some("opus"));
}

#[test]
fn garbage_never_panics() {
    let mut rng = fastrand::Rng::with_seed(21);
    let mut conv = FromTs::default();
    let mut tags = Vec::new();
    let clip = clip();
    for _ in 0..300 {
        let mut d = clip[..PACKET * 40].to_vec();
        for _ in 0..20 {
            let i = rng.usize(..d.len());
            d[i] = rng.u8(..);
        }
        conv.feed(&d, &mut tags);
    }
}

#[test]
fn a_conversion_on_anothers_clock_gives_each_frame_the_time_and_body_it_gave() {
    let data = clip();
    let data = &data[..data.len() / PACKET * PACKET];
    let mut whole = FromTs::default();
    let mut all = Vec::new();
    whole.feed(data, &mut all);
    let clock = whole.clock().expect("begun");
    // From the second keyframe's PES on (its PAT and PMT first), as a recording is read.
    let mut cuts = Vec::new();
    crate::ts::Splitter::default()
        .feed(data, &mut cuts)
        .unwrap();
    let keys: Vec<usize> = cuts
        .iter()
        .filter_map(|c| match c {
            crate::ts::Cut::Keyframe { at, .. } => Some(*at),
            _ => None,
        })
        .collect();
    let mut later = data[..PACKET * 2].to_vec();
    later.extend_from_slice(&data[keys[1]..]);
    let mut again = FromTs::on_clock(clock);
    let mut tags = Vec::new();
    again.feed(&later, &mut tags);
    let media = |t: &[Tag]| -> Vec<(bool, u32, Vec<u8>)> {
        t.iter()
            .filter(|t| !t.sequence)
            .map(|t| (t.video, t.ms, t.body.clone()))
            .collect()
    };
    let (all, tags) = (media(&all), media(&tags));
    let first_video = tags.iter().position(|t| t.0).unwrap();
    let at = all.iter().position(|t| *t == tags[first_video]).unwrap();
    assert!(at > 0, "a later keyframe");
    assert_eq!(tags[first_video..], all[at..at + tags.len() - first_video]);
}

#[test]
fn an_rtmp_sources_clock_gives_back_the_timestamps_it_came_with() {
    let c = super::super::ToTs::clock(5_000, 0);
    let mut conv = FromTs::on_clock(c);
    assert_eq!(conv.clock(), Some(c));
    // 5 s in, as ToTs muxes it: DTS = ms · 90 + 1 s.
    let t = conv.clock.unwrap(Ts90k(5_000 * 90 + 90_000));
    assert_eq!(ms_of(t - c.first), 5_000);
}

#[test]
fn an_rtmp_sources_restamped_ts_converts_back_to_the_timestamps_it_came_with() {
    // Tag bodies as an RTMP publisher sends them (the demo's frames), published twice: the
    // second session's RTMP clock continues the first's, its TS is restamped to continue too.
    let data = clip();
    let mut bodies = Vec::new();
    FromTs::default().feed(&data[..data.len() / PACKET * PACKET], &mut bodies);
    let span = bodies.iter().map(|t| t.ms).max().unwrap();
    let mut restamp = crate::ts::Restamp::default();
    let mut second = Vec::new();
    for session in 0..2u32 {
        if session == 1 {
            restamp.new_session();
        }
        let mut to_ts = super::super::ToTs::default();
        let mut ts = Vec::new();
        let mut sent = Vec::new();
        for t in &bodies {
            // The second session's publisher starts its clock at 0 again; the server continues it.
            let ms = t.ms + session * (span + 40);
            let start = ts.len();
            if t.video {
                to_ts.video(&t.body, ms, &mut ts).unwrap();
            } else {
                to_ts.audio(&t.body, ms, &mut ts).unwrap();
            }
            restamp.apply(&mut ts[start..]);
            if !t.sequence {
                sent.push((t.video, ms));
            }
        }
        if session == 1 {
            let clock = super::super::ToTs::clock(span * 2 + 40, restamp.offset());
            let mut back = Vec::new();
            FromTs::on_clock(clock).feed(&ts, &mut back);
            second = back
                .iter()
                .filter(|t| !t.sequence)
                .map(|t| (t.video, t.ms))
                .collect();
            let videos =
                |v: &[(bool, u32)]| v.iter().filter(|t| t.0).map(|t| t.1).collect::<Vec<_>>();
            assert!(restamp.offset() > 0, "the second session was shifted");
            let (got, want) = (videos(&second), videos(&sent));
            // Every video frame comes back at its time (the last waits for a next one).
            assert_eq!(got[..], want[..got.len()]);
            assert!(got.len() + 1 >= want.len());
        }
    }
    assert!(!second.is_empty());
}

/// `ts` with every elementary stream moved 0x100 PIDs up (its packets and its PMT), as another
/// encoder would declare the same streams.
fn on_other_pids(ts: &[u8]) -> Vec<u8> {
    let mut out = ts.to_vec();
    let pmt = ts
        .chunks_exact(PACKET)
        .find_map(|p| header(p).filter(|h| h.pid == 0 && h.pusi).map(|h| (p, h)))
        .and_then(|(p, h)| {
            crate::ts::first_section(&p[h.payload_start..]).and_then(crate::ts::pat_pmt_pid)
        })
        .expect("a PAT");
    let streams: Vec<u16> = ts
        .chunks_exact(PACKET)
        .find_map(|p| header(p).filter(|h| h.pid == pmt && h.pusi).map(|h| (p, h)))
        .map(|(p, h)| {
            crate::ts::first_section(&p[h.payload_start..])
                .and_then(pmt_streams)
                .unwrap_or_default()
                .iter()
                .map(|s| s.pid)
                .collect()
        })
        .expect("a PMT");
    for p in out.chunks_exact_mut(PACKET) {
        let Some(h) = header(p) else { continue };
        if streams.contains(&h.pid) {
            let pid = h.pid + 0x100;
            p[1] = (p[1] & 0xe0) | (pid >> 8) as u8;
            p[2] = pid as u8;
        } else if h.pid == pmt && h.pusi {
            // The section after the pointer field: PCR PID at 8, then the stream loop.
            let at = h.payload_start + 1 + usize::from(p[h.payload_start]);
            let len = usize::from(u16::from_be_bytes([p[at + 1] & 0x0f, p[at + 2]]));
            let s = &mut p[at..at + 3 + len];
            let bump = |hi: &mut u8, lo: &mut u8| {
                let pid = (u16::from_be_bytes([*hi & 0x1f, *lo]) + 0x100).to_be_bytes();
                *hi = (*hi & 0xe0) | pid[0];
                *lo = pid[1];
            };
            let pcr = u16::from_be_bytes([s[8] & 0x1f, s[9]]);
            if streams.contains(&pcr) {
                let (a, b) = s.split_at_mut(9);
                bump(&mut a[8], &mut b[0]);
            }
            let info = usize::from(u16::from_be_bytes([s[10] & 0x0f, s[11]]));
            let mut i = 12 + info;
            while i + 5 <= s.len() - 4 {
                let (a, b) = s.split_at_mut(i + 2);
                bump(&mut a[i + 1], &mut b[0]);
                i += 5 + usize::from(u16::from_be_bytes([s[i + 3] & 0x0f, s[i + 4]]));
            }
            let end = s.len() - 4;
            let crc = crate::ts::mux::crc32_mpeg2(&s[..end]).to_be_bytes();
            s[end..].copy_from_slice(&crc);
        }
    }
    out
}

#[test]
fn a_conversion_follows_a_next_session_that_declares_its_streams_on_other_pids() {
    let data = clip();
    let data = &data[..data.len() / PACKET * PACKET];
    let moved = on_other_pids(data);
    let pmt_pid = |ts: &[u8]| {
        let mut c = FromTs::default();
        c.feed(ts, &mut Vec::new());
        (c.video_pid, c.audio_pid)
    };
    assert_ne!(pmt_pid(data), pmt_pid(&moved), "the PIDs moved");
    // One conversion across both sessions, as a DVR viewer's reads a recording.
    let mut conv = FromTs::default();
    let mut first = Vec::new();
    conv.feed(data, &mut first);
    let mut second = Vec::new();
    conv.feed(&moved, &mut second);
    let frames = |tags: &[Tag], video: bool| {
        tags.iter()
            .filter(|t| t.video == video && !t.sequence)
            .count()
    };
    // Each session's last frame was held (a video PES has no length: it ends when the next
    // begins): the first one's goes out at the change, not lost; the second's at the flush.
    let held = 1;
    let mut all = first.clone();
    all.extend(second.iter().cloned());
    conv.flush(true, &mut all);
    assert_eq!(
        frames(&all, true),
        2 * (frames(&first, true) + held),
        "every video frame of both sessions"
    );
    assert!(
        frames(&second, false) + 2 >= frames(&first, false),
        "audio goes on"
    );
}

/// What the conversion holds of a PES still arriving is said (the memory budget counts it):
/// in the middle of the first keyframe's PES, its bytes so far.
#[test]
fn the_bytes_of_a_pes_being_gathered_are_said() {
    let data = clip();
    let mut conv = FromTs::default();
    let mut tags = Vec::new();
    assert_eq!(conv.holding(), 0);
    // PAT, PMT and the first video packets: a keyframe is larger than a few packets.
    conv.feed(&data[..PACKET * 8], &mut tags);
    assert!(conv.holding() >= PACKET * 4, "{}", conv.holding());
}

/// A stream that began as audio alone (an RTMP publisher's radio start) and whose video joined
/// at 4 s, converted from about 1 s before the join (a DVR viewer's start): every AAC frame from
/// there on becomes a tag, also those between the PMT that names the video and the video's
/// configuration (audio is already flowing: nothing to hold it for).
#[test]
fn a_conversion_begun_just_before_late_video_joined_keeps_every_audio_frame() {
    use crate::flv::tests::{faststart_tags, send};
    let (_, tags) = faststart_tags();
    let audio_first = tags.iter().filter(|t| !t.0 && t.1 < 3000);
    let rest = tags.iter().filter(|t| t.0 && (t.1 >= 3000 || t.2[1] == 0));
    let rest = rest.chain(tags.iter().filter(|t| !t.0 && t.1 >= 3000));
    let mut rest: Vec<_> = rest.collect();
    rest.sort_by_key(|t| (t.1, t.2[1] != 0));
    let mut mux = crate::flv::ToTs::default();
    let mut ts = Vec::new();
    for t in audio_first.chain(rest) {
        send(&mut mux, t, &mut ts);
    }
    // Video PES of no stated length (as most muxers write them): each ends where the next
    // begins, so the first keyframe is converted only when the second frame starts.
    for p in ts.chunks_exact_mut(PACKET) {
        let (pid, pusi) = (
            (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]),
            p[1] & 0x40 != 0,
        );
        if pid == crate::ts::mux::VIDEO_PID && pusi {
            let at = if p[3] & 0x20 != 0 {
                5 + usize::from(p[4])
            } else {
                4
            };
            p[at + 4..at + 6].copy_from_slice(&[0, 0]);
        }
    }
    let join = crate::ts::index(&ts).unwrap().keyframes[0].offset as usize;
    // The radio stream's tables come every 100 ms: ten of them back is about 1 s before.
    let pats: Vec<usize> = (0..join / PACKET)
        .map(|i| i * PACKET)
        .filter(|&at| ts[at + 1] & 0x1f == 0 && ts[at + 2] == 0)
        .collect();
    let from = pats[pats.len() - 11];
    let mut conv = FromTs::default();
    let mut out = Vec::new();
    conv.feed(&ts[from..], &mut out);
    let audio: Vec<u32> = out
        .iter()
        .filter(|t| !t.video && !t.sequence)
        .map(|t| t.ms)
        .collect();
    assert!(
        out.iter().any(|t| t.video && t.keyframe),
        "the video joined"
    );
    let gap = audio.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(gap <= 30, "a gap of {gap} ms in the audio");
    assert_eq!(conv.skipped, 0);
}

/// A video frame whose PTS is before its DTS (invalid, by a millisecond): its composition offset
/// is 0, not the rest of the 33-bit period (2.3 hours).
#[test]
fn a_pts_before_its_dts_is_shown_at_its_decode_time() {
    let mut data = clip();
    data.truncate(data.len() / PACKET * PACKET);
    let read = |b: &[u8]| -> u64 {
        (u64::from(b[0] >> 1) & 7) << 30
            | u64::from(b[1]) << 22
            | u64::from(b[2] >> 1) << 15
            | u64::from(b[3]) << 7
            | u64::from(b[4] >> 1)
    };
    let mut patched = 0;
    for p in data.chunks_mut(PACKET) {
        let Some(h) = crate::ts::header(p) else {
            continue;
        };
        let pes = &mut p[h.payload_start..];
        // A video PES (stream id 0xE0) with both PTS and DTS.
        if !h.pusi || pes.len() < 19 || pes[..4] != [0, 0, 1, 0xe0] || pes[7] >> 6 != 3 {
            continue;
        }
        let pts = read(&pes[14..19]).wrapping_sub(90) & ((1 << 33) - 1);
        pes[9] = 0x31 | ((pts >> 29) & 0x0e) as u8;
        pes[10] = (pts >> 22) as u8;
        pes[11] = (((pts >> 14) & 0xfe) | 1) as u8;
        pes[12] = (pts >> 7) as u8;
        pes[13] = (((pts << 1) & 0xfe) | 1) as u8;
        patched += 1;
    }
    assert!(patched > 10, "frames with a DTS: {patched}");
    let mut tags = Vec::new();
    FromTs::default().feed(&data, &mut tags);
    let offsets: Vec<u32> = tags
        .iter()
        .filter(|t| t.video && !t.sequence)
        .map(|t| u32::from_be_bytes([0, t.body[2], t.body[3], t.body[4]]))
        .collect();
    assert!(!offsets.is_empty());
    assert!(offsets.iter().all(|&c| c < 1000), "{offsets:?}");
}
