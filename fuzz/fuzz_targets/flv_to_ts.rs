//! FLV/RTMP audio and video message bodies → MPEG-TS (the `.ts` and HLS outputs of an
//! RTMP-published stream). Input: records of [kind, ms (4 bytes), len (2 bytes), body].
#![no_main]
use libfuzzer_sys::fuzz_target;
use media::flv::ToTs;

fuzz_target!(|data: &[u8]| {
    let mut to = ToTs::default();
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((head, tail)) = rest.split_at_checked(7) {
        let video = head[0] & 1 == 1;
        let ms = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        let len = usize::from(u16::from_be_bytes([head[5], head[6]]));
        let (body, after) = tail.split_at(len.min(tail.len()));
        let _ = media::flv::wire::classify(video, body);
        let r = if video {
            to.video(body, ms, &mut out)
        } else {
            to.audio(body, ms, &mut out)
        };
        if r.is_ok() {
            assert_eq!(out.len() % 188, 0, "whole TS packets only");
        }
        out.clear();
        rest = after;
    }
    let _ = to.codecs();
});
