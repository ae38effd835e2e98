//! Frames split over PES packets, as muxers that bound their PES write them.

use super::tests::{clip, convert};
use super::*;

/// The video PID of a TS's first PMT.
fn video_pid(ts: &[u8]) -> u16 {
    let section = |pid: u16| {
        ts.chunks_exact(PACKET)
            .find_map(|p| header(p).filter(|h| h.pid == pid && h.pusi).map(|h| (p, h)))
            .and_then(|(p, h)| crate::ts::first_section(&p[h.payload_start..]).map(<[u8]>::to_vec))
    };
    let pmt = section(0).and_then(|s| pat_pmt_pid(&s)).expect("a PAT");
    let streams = section(pmt).and_then(|s| pmt_streams(&s)).expect("a PMT");
    streams
        .iter()
        .find(|s| s.stream_type == 0x1b)
        .expect("H.264")
        .pid
}

/// `ts` with every video PES of three packets or more split in two at its second continuation
/// packet, as muxers that bound their PES do: the second PES has no time (and, when `bounded`,
/// the length of its bytes: a frame that ends in it is out as soon as it is whole).
fn with_split_video_pes(ts: &[u8], bounded: bool) -> Vec<u8> {
    let video = video_pid(ts);
    let mut out: Vec<u8> = Vec::new();
    // Packets of the PES being copied, and where the starts made are in `out`.
    let mut packets: Option<usize> = None;
    let mut made = Vec::new();
    for p in ts.chunks_exact(PACKET) {
        let Some(h) = header(p).filter(|h| h.pid == video && h.has_payload) else {
            out.extend_from_slice(p);
            continue;
        };
        let payload = &p[h.payload_start..];
        if h.pusi {
            packets = Some(1);
            out.extend_from_slice(p);
            continue;
        }
        let Some(n) = packets.as_mut() else {
            out.extend_from_slice(p);
            continue;
        };
        *n += 1;
        if *n != 3 || h.payload_start != 4 {
            out.extend_from_slice(p);
            continue;
        }
        // This packet becomes a PES start without a time and 175 of its bytes, then a packet
        // of its last 9 bytes behind stuffing.
        let mut a = p[..4].to_vec();
        a[1] |= 0x40;
        a.extend_from_slice(&[0, 0, 1, 0xe0, 0, 0, 0x80, 0, 0]);
        a.extend_from_slice(&payload[..175]);
        let mut b = p[..4].to_vec();
        b[3] = 0x30 | ((p[3] + 1) & 0x0f);
        b.extend_from_slice(&[174, 0]);
        b.resize(PACKET - 9, 0xff);
        b.extend_from_slice(&payload[175..]);
        made.push(out.len());
        out.extend_from_slice(&a);
        out.extend_from_slice(&b);
        packets = None;
    }
    if bounded {
        // Each start made declares its length: the 3 bytes of its header after the length
        // field, and every payload byte of its pid up to the next start.
        for at in made {
            let mut len = 3 + 175;
            for p in out[at + PACKET..].chunks_exact(PACKET) {
                let Some(h) = header(p).filter(|h| h.pid == video && h.has_payload) else {
                    continue;
                };
                if h.pusi {
                    break;
                }
                len += PACKET - h.payload_start;
            }
            let len = u16::try_from(len).expect("a short PES");
            out[at + 8..at + 10].copy_from_slice(&len.to_be_bytes());
        }
    }
    out
}

#[test]
fn a_frame_split_over_pes_packets_without_a_time_converts_whole() {
    let data = clip();
    let data = &data[..data.len() / PACKET * PACKET];
    let (tags, skipped) = convert(data);
    for bounded in [false, true] {
        let split = with_split_video_pes(data, bounded);
        assert!(split.len() > data.len() + 100 * PACKET, "frames split");
        let (again, skipped_again) = convert(&split);
        assert_eq!(skipped_again, skipped, "bounded: {bounded}");
        if !bounded {
            assert_eq!(again.len(), tags.len());
            assert!(again == tags, "the same tags");
            continue;
        }
        // Each frame out as soon as it is whole (before the audio that follows it, and the
        // stream's last one too, which a PES without a length never completes): the same
        // frames, in the same order per track.
        let track = |t: &[Tag], video: bool| -> Vec<Tag> {
            t.iter().filter(|t| t.video == video).cloned().collect()
        };
        assert!(
            track(&again, false) == track(&tags, false),
            "the same audio"
        );
        let (v, w) = (track(&again, true), track(&tags, true));
        assert_eq!(v.len(), w.len() + 1, "and the last video frame");
        assert!(v[..w.len()] == w[..], "the same video frames");
    }
}
