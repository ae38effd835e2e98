//! Indexing a title whose bytes are in object storage, from Range reads of what its parser
//! needs: an unfragmented MP4's top-level box headers (16 bytes each, the next one found from
//! each size) and its `moov` (`media::mp4::index_moov`), wherever it sits; other containers
//! (fragmented MP4, MPEG-TS, WebM) read whole once, up to `index_max` bytes, through the block
//! cache, and indexed as a local file is.

use super::Object;
use media::{Container, MediaInfo};
use std::sync::Arc;

/// Most top-level boxes walked in an MP4 (a file of more is indexed whole, within `index_max`).
const MAX_TOP_BOXES: usize = 4096;

/// The container (from the first bytes) and the index of `obj`, or why it has none. A store
/// that cannot be read is the second's error too: the title is then listed and served as bytes.
pub async fn index(obj: &Arc<Object>, index_max: u64) -> (Container, Result<MediaInfo, String>) {
    if obj.len == 0 {
        return (Container::Unknown, Err("empty object".into()));
    }
    let head = match obj.read(0..obj.len.min(64 << 10)).await {
        Ok(h) => h,
        Err(e) => return (Container::Unknown, Err(e.to_string())),
    };
    let container = media::detect(&head);
    if container == Container::Unknown {
        return (container, Err(media::Error::UnknownContainer.to_string()));
    }
    if container == Container::Mp4 {
        match moov(obj, index_max).await {
            Ok(Some(info)) => return (container, Ok(info)),
            Ok(None) => {} // fragmented: read whole below
            Err(e) => return (container, Err(e)),
        }
    }
    if obj.len > index_max {
        let e = format!(
            "not indexed: a {container:?} title is read whole to be indexed, and this one is {} bytes \
             (index_max is {index_max})",
            obj.len
        );
        return (container, Err(e));
    }
    match obj.read(0..obj.len).await {
        Ok(all) => (container, media::index(&all).map_err(|e| e.to_string())),
        Err(e) => (container, Err(e.to_string())),
    }
}

/// An unfragmented MP4's index from its box headers and `moov`; `None` when it holds `moof`s.
async fn moov(obj: &Arc<Object>, index_max: u64) -> Result<Option<MediaInfo>, String> {
    let mut at = 0u64;
    let mut found = None;
    for _ in 0..MAX_TOP_BOXES {
        if at >= obj.len {
            break;
        }
        let head = obj
            .read(at..at.saturating_add(16).min(obj.len))
            .await
            .map_err(|e| e.to_string())?;
        let b = media::mp4::top_box(&head, at, obj.len).map_err(|e| e.to_string())?;
        match &b.kind {
            b"moof" => return Ok(None),
            b"moov" if found.is_none() => {
                if b.size > index_max {
                    return Err(format!(
                        "moov box of {} bytes is more than index_max ({index_max})",
                        b.size
                    ));
                }
                found = Some(b);
            }
            _ => {}
        }
        at = b.start + b.size;
    }
    if at < obj.len {
        return Ok(None);
    }
    let b = found.ok_or("no moov box (the index is missing; the file may be truncated)")?;
    let moov = obj
        .read(b.start..b.start + b.size)
        .await
        .map_err(|e| e.to_string())?;
    media::mp4::index_moov(&moov, b.start, obj.len)
        .map(Some)
        .map_err(|e| e.to_string())
}
