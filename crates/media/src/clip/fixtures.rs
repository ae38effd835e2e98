//! Titles built here for the clip tests (WebM with Clusters of several GOPs, titles without
//! video), and what a player reads back from a clip.

use super::Clip;
use crate::webm::{
    element, put, put_uint, scan_cluster, segment, Block, CLUSTER, CUES, CUE_CLUSTER_POSITION,
    CUE_POINT, CUE_TIME, CUE_TRACK, CUE_TRACK_POSITIONS, DURATION, EBML, INFO, SEGMENT,
    SIMPLE_BLOCK, TIMECODE, TIMECODE_SCALE, TRACKS, TRACK_ENTRY, TRACK_NUMBER, TRACK_TYPE,
};

/// The clip as one file: its head, then its ranges of the title.
pub(crate) fn file(data: &[u8], c: &Clip) -> Vec<u8> {
    let mut f = c.head.clone();
    for r in &c.body {
        f.extend_from_slice(&data[r.start as usize..r.end as usize]);
    }
    f
}

pub(crate) const WEBM_VIDEO: u64 = 1;
pub(crate) const WEBM_AUDIO: u64 = 2;

/// A WebM of `secs` seconds in Clusters of `cluster_ms` (millisecond timecodes): video frames
/// every 250 ms with a keyframe every `gop_ms` (`None`: no video track), audio blocks every
/// 500 ms (each Cluster opens with one). With `cues`, Cues after the Clusters: a CuePoint per
/// video keyframe (as mkvmerge writes them), or per Cluster for the audio of a title without
/// video (as ffmpeg does).
pub(crate) fn webm(secs: u64, cluster_ms: u64, gop_ms: Option<u64>, cues: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut header = Vec::new();
    put(&mut header, 0x4282, b"webm"); // DocType
    put(&mut out, EBML, &header);

    let mut seg = Vec::new();
    let mut info = Vec::new();
    put_uint(&mut info, TIMECODE_SCALE, 1_000_000);
    put(&mut info, DURATION, &((secs * 1000) as f64).to_be_bytes());
    put(&mut seg, INFO, &info);
    let mut tracks = Vec::new();
    let entry = |number: u64, kind: u64, codec: &[u8]| {
        let mut e = Vec::new();
        put_uint(&mut e, TRACK_NUMBER, number);
        put_uint(&mut e, TRACK_TYPE, kind);
        put(&mut e, 0x86, codec); // CodecID
        let mut t = Vec::new();
        put(&mut t, TRACK_ENTRY, &e);
        t
    };
    if gop_ms.is_some() {
        tracks.extend(entry(WEBM_VIDEO, 1, b"V_VP9"));
    }
    tracks.extend(entry(WEBM_AUDIO, 2, b"A_OPUS"));
    put(&mut seg, TRACKS, &tracks);

    // (time, track, cluster position within the segment's data)
    let mut points: Vec<(u64, u64, u64)> = Vec::new();
    let mut tc = 0;
    while tc < secs * 1000 {
        let at = seg.len() as u64;
        let mut cluster = Vec::new();
        put_uint(&mut cluster, TIMECODE, tc);
        let mut t = tc;
        while t < (tc + cluster_ms).min(secs * 1000) {
            let rel = (t - tc) as i16;
            if t % 500 == 0 {
                if gop_ms.is_none() && t == tc {
                    points.push((t, WEBM_AUDIO, at));
                }
                simple_block(&mut cluster, WEBM_AUDIO, rel, true);
            }
            if let Some(gop) = gop_ms {
                let key = t % gop == 0;
                if key {
                    points.push((t, WEBM_VIDEO, at));
                }
                simple_block(&mut cluster, WEBM_VIDEO, rel, key);
            }
            t += 250;
        }
        put(&mut seg, CLUSTER, &cluster);
        tc += cluster_ms;
    }
    if cues {
        let mut all = Vec::new();
        for (time, track, at) in points {
            let mut positions = Vec::new();
            put_uint(&mut positions, CUE_TRACK, track);
            put_uint(&mut positions, CUE_CLUSTER_POSITION, at);
            let mut point = Vec::new();
            put_uint(&mut point, CUE_TIME, time);
            put(&mut point, CUE_TRACK_POSITIONS, &positions);
            put(&mut all, CUE_POINT, &point);
        }
        put(&mut seg, CUES, &all);
    }
    put(&mut out, SEGMENT, &seg);
    out
}

fn simple_block(out: &mut Vec<u8>, track: u64, rel: i16, key: bool) {
    let mut b = vec![0x80 | track as u8];
    b.extend_from_slice(&rel.to_be_bytes());
    b.push(if key { 0x80 } else { 0 });
    b.extend_from_slice(&[0xAB; 16]);
    put(out, SIMPLE_BLOCK, &b);
}

/// Blocks of a track in a Cluster: (time, key).
pub(crate) type Blocks = Vec<(i64, bool)>;

/// What a player reads of a WebM: each Cluster (where it starts, its timecode) and the blocks
/// of `track` in it (time, key), and the Cues as (time, where the Cluster they name starts).
pub(crate) struct WebmRead {
    pub clusters: Vec<(u64, u64, Blocks)>,
    pub cues: Vec<(u64, u64)>,
}

pub(crate) fn read_webm(data: &[u8], track: u64) -> WebmRead {
    let (_, seg) = segment(data).unwrap();
    let end = seg.end.unwrap_or(data.len()).min(data.len());
    let mut out = WebmRead {
        clusters: Vec::new(),
        cues: Vec::new(),
    };
    let mut pos = seg.data;
    while pos < end {
        let el = element(data, pos, end).unwrap();
        if el.id == CLUSTER {
            let mut blocks: Vec<Block> = Vec::new();
            let next = scan_cluster(data, el, end, track, &mut blocks).unwrap();
            let tc = element(data, el.data, next).unwrap();
            assert_eq!(tc.id, TIMECODE, "a Cluster opens with its Timecode");
            let tc = crate::webm::uint(crate::webm::body(data, tc));
            let blocks = blocks.iter().map(|b| (b.0, b.2)).collect();
            out.clusters.push((pos as u64, tc, blocks));
            pos = next;
            continue;
        }
        if el.id == CUES {
            let mut parts = crate::webm::Parts::default();
            parts.element(data, el, el.end.unwrap()).unwrap();
            for (time, t, at) in parts.cues {
                if t == track {
                    out.cues.push((time, seg.data as u64 + at));
                }
            }
        }
        pos = el.end.unwrap();
    }
    out
}

/// An MPEG-TS of AAC alone: `secs` seconds of 1024-sample frames at 48 kHz, a PES each, the
/// first at PTS 1 s.
pub(crate) fn audio_ts(secs: u64) -> Vec<u8> {
    use crate::ts::mux::{AccessUnit, Audio, Muxer};
    let mut mux = Muxer::new(None, Some(Audio::Aac));
    let mut out = Vec::new();
    let frame = [0xFF, 0xF1, 0x50, 0x80, 0x02, 0x1F, 0xFC, 0x21, 0x10, 0x04];
    let n = secs * 48_000 / 1024;
    for i in 0..n {
        let pts = 90_000 + i * 1920;
        let au = AccessUnit {
            pts,
            dts: pts,
            keyframe: false,
            data: &frame,
        };
        mux.audio(&au, &mut out);
    }
    out
}

/// A fragmented MP4 of AAC alone: `fragments` fragments of 47 frames of 1024 samples at 48 kHz
/// (about a second each), each frame 8 bytes.
pub(crate) fn audio_fmp4(fragments: u32) -> Vec<u8> {
    use crate::cmaf::{fragment_head, init_segment, AudioCodec, AudioTrack, Run, Sample};
    let track = AudioTrack {
        codec: AudioCodec::Aac {
            asc: vec![0x11, 0x90],
        },
        channels: 2,
        sample_rate: 48_000,
        timescale: 48_000,
    };
    let mut out = init_segment(None, Some(&track));
    let samples = [Sample {
        duration: 1024,
        size: 8,
        keyframe: true,
        cto: 0,
    }; 47];
    for f in 0..fragments {
        let run = Run {
            track_id: crate::cmaf::AUDIO_TRACK,
            base_time: u64::from(f) * 47 * 1024,
            samples: &samples,
        };
        out.extend(fragment_head(f + 1, &[run]).unwrap());
        out.extend(vec![f as u8; 47 * 8]);
    }
    out
}
