//! Frames split over PES packets, as muxers that bound their PES write them.

use super::tests::clip;
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
/// packet, as muxers that bound their PES do: the second PES has no time (and the first, when
/// `bounded`, the length of its bytes).
fn with_split_video_pes(ts: &[u8], bounded: bool) -> Vec<u8> {
    let video = video_pid(ts);
    let mut out: Vec<u8> = Vec::new();
    // The PES being copied: where its first payload is in `out`, the bytes after its length
    // field so far, and its packets.
    let mut pes: Option<(usize, usize, usize)> = None;
    for p in ts.chunks_exact(PACKET) {
        let Some(h) = header(p).filter(|h| h.pid == video && h.has_payload) else {
            out.extend_from_slice(p);
            continue;
        };
        let payload = &p[h.payload_start..];
        if h.pusi {
            pes = Some((out.len() + h.payload_start, payload.len() - 6, 1));
            out.extend_from_slice(p);
            continue;
        }
        let Some((at, bytes, packets)) = pes.as_mut() else {
            out.extend_from_slice(p);
            continue;
        };
        *packets += 1;
        if *packets != 3 || h.payload_start != 4 {
            *bytes += payload.len();
            out.extend_from_slice(p);
            continue;
        }
        // This packet becomes a PES start without a time and 175 of its bytes, then a packet
        // of its last 9 bytes behind stuffing.
        let first_len = *bytes;
        if bounded {
            let len = u16::try_from(first_len).expect("a short PES");
            out[*at + 4..*at + 6].copy_from_slice(&len.to_be_bytes());
        }
        let mut a = p[..4].to_vec();
        a[1] |= 0x40;
        a.extend_from_slice(&[0, 0, 1, 0xe0, 0, 0, 0x80, 0, 0]);
        a.extend_from_slice(&payload[..175]);
        let mut b = p[..4].to_vec();
        b[3] = 0x30 | ((p[3] + 1) & 0x0f);
        b.extend_from_slice(&[174, 0]);
        b.resize(PACKET - 9, 0xff);
        b.extend_from_slice(&payload[175..]);
        out.extend_from_slice(&a);
        out.extend_from_slice(&b);
        pes = None;
    }
    out
}

#[test]
fn a_frame_split_over_pes_packets_without_a_time_converts_whole() {
    let data = clip();
    let data = &data[..data.len() / PACKET * PACKET];
    let convert = |ts: &[u8]| {
        let mut conv = FromTs::default();
        let mut tags = Vec::new();
        for chunk in ts.chunks(PACKET * 5) {
            conv.feed(chunk, &mut tags);
        }
        (tags, conv.skipped)
    };
    let (tags, skipped) = convert(data);
    for bounded in [false, true] {
        let split = with_split_video_pes(data, bounded);
        assert!(split.len() > data.len() + 100 * PACKET, "frames split");
        let (again, skipped_again) = convert(&split);
        assert_eq!(skipped_again, skipped, "bounded: {bounded}");
        assert_eq!(again.len(), tags.len(), "bounded: {bounded}");
        assert!(again == tags, "the same tags (bounded: {bounded})");
    }
}
