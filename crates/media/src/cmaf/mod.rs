//! CMAF / fragmented MP4 writing (ISO/IEC 23000-19, ISO/IEC 14496-12), sans-I/O: the init
//! segment of a stream ([`init_segment`]) and the head of each fragment ([`fragment_head`]:
//! `moof` and the `mdat` header), so that a fragment on the wire is that head followed by the
//! samples' own bytes, which the caller sends from where they already are (no copy here).
//!
//! ```text
//! init:      ftyp | moov (mvhd, trak per track (tkhd, mdia (mdhd, hdlr, minf (stbl (stsd ...)))),
//!                         mvex (trex per track))
//! fragment:  [prft] | moof (mfhd, traf per track (tfhd, tfdt, trun)) | mdat header | samples
//! ```
//! [`flv`] reads the FLV tag bodies both live sources produce (RTMP natively, MPEG-TS through
//! [`crate::flv::FromTs`]) into track configurations and samples: their video is already
//! length-prefixed NAL units and their audio raw AAC frames, as MP4 stores them.

pub(crate) mod boxes;
pub(crate) mod codecs;
pub mod flv;
mod fragment;
mod fragmenter;
mod init;
pub mod split;
pub mod to_flv;

pub use crate::flv::timeline::Anchor;
pub use fragment::{
    fragment_head, fragment_runs, init_tracks, prft, read_prft, read_prft_ntp, Run, Sample,
};
pub use fragmenter::{Event, Fragmenter};
pub use init::{init_segment, AudioCodec, AudioTrack, VideoCodec, VideoTrack};
pub use to_flv::ToFlv;

/// The track id of video in every init segment and fragment written here.
pub const VIDEO_TRACK: u32 = 1;
/// The track id of audio.
pub const AUDIO_TRACK: u32 = 2;

#[cfg(test)]
pub(crate) mod tests;
