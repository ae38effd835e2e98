//! Sans-I/O media core of zerocast.
//!
//! Everything here takes bytes (`&[u8]`) and returns values: no sockets, no clocks, no filesystem,
//! no async runtime. The same code indexes a file on disk, a cached title or (later) a live ring, and
//! it can be fuzzed and property-tested without any setup.
//!
//! | module      | what it does                                                            |
//! |-------------|-------------------------------------------------------------------------|
//! | [`read`]    | bounds-checked big-endian reader; every parser reads through it         |
//! | [`time`]    | exact media times (ticks over a timescale), frame rates, 90 kHz stamps  |
//! | [`timecode`]| `HH:MM:SS:FF`, drop-frame `HH:MM:SS;FF`, `HH:MM:SS.mmm`, seconds, `1h2m3s` |
//! | [`mp4`]     | ISO BMFF: box walk, `stbl` expansion, fragments (`moof`/`trun`)          |
//! | [`ts`]      | MPEG-TS: PAT/PMT, PES starts, random access points, PTS unwrap         |
//! | [`webm`]    | Matroska/WebM: EBML walk, Cues, cluster scan                            |
//! | [`nal`]     | H.264/H.265 NAL unit scanning (IDR/IRAP detection, SPS dimensions)      |
//! | [`info`]    | the common [`MediaInfo`] seek index every container's parser fills in   |
//! | [`index`]   | container detection, and the dispatch to the right parser              |
//! | [`flv`]     | FLV/RTMP: tag bodies ↔ TS, and the wire forms (FLV tags, RTMP messages) |
//! | [`cmaf`]    | CMAF / fragmented MP4 writing: init segments, fragment heads, from FLV  |
//!
//! Invariant: parsers are total. Any input yields a value or an [`Error`], never a panic, a hang or an
//! allocation larger than the input justifies. Declared lengths and counts are checked against the
//! bytes actually present, with checked arithmetic.

#![forbid(unsafe_code)]

pub mod clip;
pub mod cmaf;
pub mod error;
pub mod flv;
pub mod index;
pub mod info;
pub mod mp4;
pub mod nal;
pub mod package;
pub mod read;
pub mod time;
pub mod timecode;
pub mod ts;
pub mod webm;

pub use error::Error;
pub use index::{detect, index};
pub use info::{AudioInfo, Container, Keyframe, MediaInfo, SeekPoint, VideoInfo};
pub use time::{FrameRate, MediaTime};

/// Test support: feeds `check` with `rounds` random mutations of `base` (a few bytes changed, then
/// truncated at a random point), the shape of input a fuzzer starts from.
#[cfg(test)]
pub(crate) fn mutations(base: &[u8], seed: u64, rounds: usize, mut check: impl FnMut(&[u8])) {
    let mut rng = fastrand::Rng::with_seed(seed);
    for _ in 0..rounds {
        let mut d = base.to_vec();
        for _ in 0..rng.usize(1..4) {
            let i = rng.usize(..d.len());
            d[i] = rng.u8(..);
        }
        d.truncate(rng.usize(..=d.len()));
        check(&d);
    }
}
