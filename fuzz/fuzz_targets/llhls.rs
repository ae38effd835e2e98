//! LL-HLS cutting and its requests: a publisher's fragment times, keyframes and configurations
//! (any order, any clock), interleaved with players' playlist queries. Input: records of
//! [op, ...]; op 0: an init segment (len, bytes), 1: a fragment (flags, ms as 4 bytes, size as
//! 2), 2: a query (len, bytes), 3: a reconnect, 4: the end, 5: a shrink (keep). Checks that the
//! target duration never changes, that a segment is found by its own number, and that what is
//! kept stays within the window.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use live::llhls::{Awaited, LlHls, LlLimits, Query};
use std::time::Duration;

const LIMITS: LlLimits = LlLimits {
    part_target: Duration::from_millis(333),
    min_segment: Duration::from_secs(2),
    window: 4,
    spare: 1,
    max_segment_bytes: 4096,
};

fuzz_target!(|data: &[u8]| {
    let mut ll = LlHls::new(LIMITS);
    let target = ll.target_duration();
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 6 {
            0 => {
                let Some((&n, tail)) = rest.split_first() else { break };
                let (init, tail) = tail.split_at(usize::from(n).min(tail.len()));
                ll.init(Bytes::copy_from_slice(init));
                rest = tail;
            }
            1 => {
                let Some((head, tail)) = rest.split_at_checked(7) else { break };
                let ms = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
                let size = usize::from(u16::from_be_bytes([head[5], head[6]]) % 2048);
                ll.fragment(vec![Bytes::from(vec![0; size])], head[0] & 1 == 1, ms, Some(u64::from(ms)));
                rest = tail;
            }
            2 => {
                let Some((&n, tail)) = rest.split_first() else { break };
                let (q, tail) = tail.split_at(usize::from(n).min(tail.len()));
                rest = tail;
                let q = String::from_utf8_lossy(q);
                if let Ok(query) = Query::parse(Some(&q)) {
                    let _ = ll.readiness(&query);
                    let _ = ll.awaited(&Awaited::Playlist(query));
                    let msn = query.msn.unwrap_or(0);
                    let part = query.part.unwrap_or(0) as usize;
                    let _ = ll.awaited(&Awaited::Part { msn, part, begun: query.skip });
                    let p = ll.playlist(query.skip, Some("sig=x"));
                    assert!(p.starts_with("#EXTM3U\n"));
                }
            }
            3 => ll.discontinuity(),
            4 => ll.end(),
            _ => {
                let Some((&keep, tail)) = rest.split_first() else { break };
                ll.shrink(usize::from(keep % 8));
                rest = tail;
            }
        }
        assert_eq!(ll.target_duration(), target, "EXT-X-TARGETDURATION changed");
        // Window + spare + the open one, each within its byte limit (plus a last fragment), and
        // the init segments they need (at most one per segment, plus one waiting).
        let bound = (LIMITS.window + LIMITS.spare + 2) * (LIMITS.max_segment_bytes + 2048)
            + (LIMITS.window + LIMITS.spare + 3) * 256;
        assert!(ll.bytes() <= bound, "{} bytes kept", ll.bytes());
        if let Some(first) = ll.first_msn() {
            for msn in first..=ll.newest_msn() {
                if let Some(s) = ll.segment(msn) {
                    assert_eq!(s.msn, msn);
                }
            }
        }
    }
});
