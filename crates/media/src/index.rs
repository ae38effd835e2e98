//! Container detection and the dispatch to each container's seek index.

use crate::error::{Error, Result};
use crate::info::{Container, MediaInfo};
use crate::{mp4, ts, webm};

/// Recognises the container from the first bytes of a title.
pub fn detect(data: &[u8]) -> Container {
    if data.len() >= 8 {
        let fourcc = &data[4..8];
        if matches!(
            fourcc,
            b"ftyp" | b"moov" | b"styp" | b"free" | b"mdat" | b"wide" | b"skip" | b"sidx" | b"moof"
        ) {
            return Container::Mp4;
        }
    }
    if data.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        return if webm::is_webm(data) {
            Container::WebM
        } else {
            Container::Matroska
        };
    }
    if ts::find_sync(data).is_some() {
        return Container::MpegTs;
    }
    Container::Unknown
}

/// Indexes a whole title held in memory.
pub fn index(data: &[u8]) -> Result<MediaInfo> {
    match detect(data) {
        Container::Mp4 => mp4::index(data),
        Container::MpegTs => ts::index(data),
        c @ (Container::WebM | Container::Matroska) => webm::index(data, c),
        Container::Unknown => Err(Error::UnknownContainer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_bytes() {
        assert_eq!(detect(b"\0\0\0\x18ftypisom"), Container::Mp4);
        assert_eq!(detect(&[0x1a, 0x45, 0xdf, 0xa3, 0x80]), Container::Matroska);
        let mut ts = vec![0u8; 188 * 3];
        for p in 0..3 {
            ts[p * 188] = 0x47;
        }
        assert_eq!(detect(&ts), Container::MpegTs);
        assert_eq!(detect(b"hello world, not a video"), Container::Unknown);
        assert_eq!(detect(b""), Container::Unknown);
    }
}
