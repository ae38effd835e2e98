//! FLV/RTMP audio and video message bodies → CMAF init segments and fragments (the fMP4 outputs
//! of a live stream). Input: records of [kind, ms (4 bytes), len (2 bytes), body], as for
//! `flv_to_ts`. Checks that every fragment's head declares exactly the bytes that follow it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use media::cmaf::flv::{read, Tag};
use media::cmaf::{Event, Fragmenter};

fuzz_target!(|data: &[u8]| {
    let mut f = Fragmenter::<usize>::default();
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((head, tail)) = rest.split_at_checked(7) {
        let video = head[0] & 1 == 1;
        let ms = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        let len = usize::from(u16::from_be_bytes([head[5], head[6]]));
        let (body, after) = tail.split_at(len.min(tail.len()));
        match read(video, body) {
            Ok(Tag::Video(v)) => f.video_config(v),
            Ok(Tag::Audio(a)) => f.audio_config(a),
            Ok(Tag::Frame {
                video,
                keyframe,
                cto,
                data,
            }) => {
                assert!(data <= body.len());
                let size = body.len() - data;
                let _ = f.frame(video, keyframe, cto, ms, size, size, &mut out);
            }
            Ok(Tag::Skip) | Err(_) => {}
        }
        for e in out.drain(..) {
            if let Event::Fragment { head, data, .. } = e {
                // The mdat header is the last 8 bytes of the head: its size covers the samples.
                let n = head.len();
                let mdat = u32::from_be_bytes([head[n - 8], head[n - 7], head[n - 6], head[n - 5]]);
                assert_eq!(mdat as usize, 8 + data.iter().sum::<usize>());
            }
        }
        rest = after;
    }
    let _ = f.init();
});
