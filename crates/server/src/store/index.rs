//! Indexing a title whose bytes are in object storage, from Range reads of what its parser
//! needs:
//! - an unfragmented MP4: its top-level box headers (16 bytes each, the next one found from
//!   each size) and its `moov` (`media::mp4::index_moov`), wherever it sits;
//! - a WebM/Matroska file: its head, its Cues where the SeekHead puts them, and the opening
//!   bytes of its first cluster (`media::webm::ranged`);
//! - an MPEG-TS (which has no index of its own): one scan, block by block past the block
//!   cache, through `media::ts::Indexer`, which holds a few packets between blocks and its
//!   frames' times (up to `index_max` bytes, one title at a time);
//! - anything else (a fragmented MP4, a WebM without Cues or a stated duration): read whole
//!   once, up to `index_max` bytes, one title at a time and past the block cache (its blocks
//!   are for viewers), and indexed as a local file is.

use super::{Object, StoreError};
use bytes::Bytes;
use media::{Container, MediaInfo};
use std::sync::Arc;

/// Most top-level boxes walked in an MP4 (a file of more is indexed whole, within `index_max`).
const MAX_TOP_BOXES: usize = 4096;

/// The largest `ftyp` box kept with a skeleton.
const MAX_FTYP: u64 = 4096;

/// One whole-object read for indexing at a time (each holds up to `index_max` bytes).
static WHOLE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Why a title has no index.
enum Failure {
    /// The store did not give the bytes (the title is indexed again at the next listing).
    Store(StoreError),
    Index(String),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

/// The container (from the first bytes) and the index of `obj`, or why it has none (then it
/// is listed and served as bytes; a failure of the store marks it to be indexed again).
pub async fn index(obj: &Arc<Object>, index_max: u64) -> (Container, Result<MediaInfo, String>) {
    let (container, r) = container_and_index(obj, index_max).await;
    let r = r.map_err(|f| match f {
        Failure::Store(e) => {
            obj.mark_index_failed_by_store();
            e.to_string()
        }
        Failure::Index(e) => e,
    });
    (container, r)
}

async fn container_and_index(
    obj: &Arc<Object>,
    index_max: u64,
) -> (Container, Result<MediaInfo, Failure>) {
    if obj.len == 0 {
        return (
            Container::Unknown,
            Err(Failure::Index("empty object".into())),
        );
    }
    let head = match obj.read(0..obj.len.min(64 << 10)).await {
        Ok(h) => h,
        Err(e) => return (Container::Unknown, Err(e.into())),
    };
    let container = media::detect(&head);
    if container == Container::Unknown {
        let e = media::Error::UnknownContainer.to_string();
        return (container, Err(Failure::Index(e)));
    }
    if container == Container::Mp4 {
        match moov(obj, index_max).await {
            Ok(Some(info)) => {
                obj.mark_indexed_from_moov();
                return (container, Ok(info));
            }
            Ok(None) => {} // fragmented: read whole below
            Err(e) => return (container, Err(e)),
        }
    }
    if matches!(container, Container::WebM | Container::Matroska) {
        match webm(obj, &head, container, index_max).await {
            Ok(Some(info)) => return (container, Ok(info)),
            Ok(None) => {} // read whole below
            Err(e) => return (container, Err(e)),
        }
    }
    if obj.len > index_max {
        let e = format!(
            "not indexed: a {container:?} title is read whole to be indexed, and this one is {} bytes \
             (index_max is {index_max})",
            obj.len
        );
        return (container, Err(Failure::Index(e)));
    }
    if container == Container::MpegTs {
        let info = match scan_ts(obj).await {
            Ok(ix) => ix.finish().map_err(|e| Failure::Index(e.to_string())),
            Err(e) => Err(e.into()),
        };
        return (container, info);
    }
    let whole = match whole(obj).await {
        Ok(w) => w,
        Err(e) => return (container, Err(e.into())),
    };
    let info = media::index(&whole).map_err(|e| Failure::Index(e.to_string()));
    (container, info)
}

/// The whole object, read block by block past the cache (one title at a time).
async fn whole(obj: &Arc<Object>) -> Result<Bytes, StoreError> {
    let mut out = Vec::with_capacity(usize::try_from(obj.len).unwrap_or(0));
    each_block(obj, |b| out.extend_from_slice(b)).await?;
    Ok(out.into())
}

/// Hands `f` the whole object, block by block in order, read past the cache (one title at a
/// time: each such read is of a whole object).
async fn each_block(obj: &Arc<Object>, mut f: impl FnMut(&[u8])) -> Result<(), StoreError> {
    let _one = WHOLE.acquire().await;
    let bs = obj.source.blocks.block_size;
    let mut at = 0;
    while at < obj.len {
        let end = at.saturating_add(bs).min(obj.len);
        f(&obj.source.get(obj, at..end).await?);
        at = end;
    }
    Ok(())
}

/// A WebM's index from its head, Cues and first cluster; `None` when it must be read whole
/// (its parts are not where the ranged index looks, or they do not parse: the whole file is
/// then indexed as a local one is, errors and all).
async fn webm(
    obj: &Arc<Object>,
    head: &[u8],
    container: Container,
    index_max: u64,
) -> Result<Option<MediaInfo>, Failure> {
    use media::webm::ranged;
    let Ok(Some(mut h)) = ranged::head(head) else {
        return Ok(None);
    };
    if let Some(at) = h.cues_at() {
        let hdr = obj.read(at..at.saturating_add(12).min(obj.len)).await?;
        let Ok((_, Some(len))) = ranged::element_len(&hdr) else {
            return Ok(None);
        };
        if len > index_max || at.saturating_add(len) > obj.len {
            return Ok(None);
        }
        let cues = obj.read(at..at + len).await?;
        if h.cues(&cues).is_err() {
            return Ok(None);
        }
    }
    let Some(at) = h.first_cluster().filter(|&at| at < obj.len) else {
        return Ok(None);
    };
    let mut want = ranged::CLUSTER_PREFIX;
    loop {
        let cluster = obj.read(at..at.saturating_add(want).min(obj.len)).await?;
        let more = want < ranged::CLUSTER_MAX && at + want < obj.len;
        match h.index(&cluster, obj.len, container, more) {
            ranged::Step::Index(info) => return Ok(Some(info)),
            ranged::Step::More => want = want.saturating_mul(4),
            ranged::Step::Whole => return Ok(None),
        }
    }
}

/// An MPEG-TS scanned block by block (one title at a time).
async fn scan_ts(obj: &Arc<Object>) -> Result<media::ts::Indexer, StoreError> {
    let mut ix = media::ts::Indexer::default();
    each_block(obj, |b| ix.feed(b)).await?;
    Ok(ix)
}

/// Where an MP4's `ftyp` and first `moov` are, from its top-level box headers; `None` when it
/// holds `moof`s (or more boxes than are walked: it is then read whole).
struct Layout {
    ftyp: Option<media::mp4::TopBox>,
    moov: Option<media::mp4::TopBox>,
}

async fn layout(obj: &Arc<Object>) -> Result<Option<Layout>, Failure> {
    let mut at = 0u64;
    let mut l = Layout {
        ftyp: None,
        moov: None,
    };
    for _ in 0..MAX_TOP_BOXES {
        if at >= obj.len {
            break;
        }
        let head = obj.read(at..at.saturating_add(16).min(obj.len)).await?;
        let b =
            media::mp4::top_box(&head, at, obj.len).map_err(|e| Failure::Index(e.to_string()))?;
        at = b.start.saturating_add(b.size);
        match &b.kind {
            b"moof" => return Ok(None),
            b"moov" if l.moov.is_none() => l.moov = Some(b),
            b"ftyp" if l.ftyp.is_none() => l.ftyp = Some(b),
            _ => {}
        }
    }
    Ok((at >= obj.len).then_some(l))
}

/// An unfragmented MP4's index from its box headers and `moov`; `None` when it holds `moof`s.
async fn moov(obj: &Arc<Object>, index_max: u64) -> Result<Option<MediaInfo>, Failure> {
    let Some(l) = layout(obj).await? else {
        return Ok(None);
    };
    let b = l.moov.ok_or_else(|| {
        Failure::Index("no moov box (the index is missing; the file may be truncated)".into())
    })?;
    if b.size > index_max {
        return Err(Failure::Index(format!(
            "moov box of {} bytes is more than index_max ({index_max})",
            b.size
        )));
    }
    let moov = obj.read(b.start..b.start.saturating_add(b.size)).await?;
    media::mp4::index_moov(&moov, b.start, obj.len)
        .map(Some)
        .map_err(|e| Failure::Index(e.to_string()))
}

/// What the packaging of an unfragmented MP4 in object storage is built from: its `ftyp` and
/// `moov` boxes, one after the other (the sample tables give file offsets, so where the boxes
/// sat does not matter); the reason when the object is not one (or its `moov` is past
/// `index_max`).
pub async fn skeleton(
    obj: &Arc<Object>,
    index_max: u64,
) -> Result<Result<Bytes, String>, StoreError> {
    let l = match layout(obj).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            return Ok(Err(
                "HLS, DASH and clips of a title in object storage are made from \
                 an unfragmented MP4; this one holds fragments (or more top-level boxes \
                 than are walked)"
                    .into(),
            ))
        }
        Err(Failure::Store(e)) => return Err(e),
        Err(Failure::Index(e)) => return Ok(Err(e)),
    };
    let Some(moov) = l.moov.filter(|b| b.size <= index_max) else {
        return Ok(Err("no moov box within index_max".into()));
    };
    // An `ftyp` is a few dozen bytes; one of more is left out (the movie does without it).
    let ftyp = l.ftyp.filter(|b| b.size <= MAX_FTYP);
    let mut out = Vec::new();
    for b in ftyp.iter().chain([&moov]) {
        out.extend_from_slice(&obj.read(b.start..b.start.saturating_add(b.size)).await?);
    }
    Ok(Ok(out.into()))
}
