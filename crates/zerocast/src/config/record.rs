//! The `[[record]]` rules: which live streams are written into the library, and how.

use crate::size;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Component, Path};
use std::time::Duration;

/// One `[[record]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordFile {
    /// A stream name or a pattern with one `*`.
    streams: String,
    /// "ts" (the default): the stream's MPEG-TS as ingested, no remux; "fmp4": its fragmented
    /// MP4 (CMAF), as the `.mp4` output serves it.
    format: Option<String>,
    /// Where in the library (a relative path; default "recordings"); each stream gets a
    /// directory in it.
    dir: Option<String>,
    /// A new file starts at the first keyframe after this much stream time (default 600).
    segment_secs: Option<u64>,
    /// ... or once a file holds this much (default "4GiB").
    max_file_size: Option<String>,
    /// Retention: finished files older than this are removed (default: kept).
    keep_secs: Option<u64>,
    /// Retention: the oldest finished files go until the rule's files fit (default: no limit).
    keep_size: Option<String>,
    /// Each finished file is also put into this bucket ("s3://bucket/prefix"; the `[s3]` table
    /// and the AWS variables say where and as whom).
    upload: Option<String>,
}

/// The rules, with their directories inside `library` (recording needs a library directory).
pub(super) fn rules(
    files: &[RecordFile],
    library: Option<&Path>,
    s3: Option<&super::store::S3File>,
) -> Result<Vec<server::record::Rule>> {
    let mut rules = Vec::new();
    for (i, r) in files.iter().enumerate() {
        let at = || format!("[[record]] #{} (streams = {:?})", i + 1, r.streams);
        let Some(library) = library else {
            bail!(
                "{}: recording needs a library directory (library = ...)",
                at()
            );
        };
        if r.streams.is_empty() || r.streams.matches('*').count() > 1 {
            bail!("{}: streams is a name or a pattern with one '*'", at());
        }
        let format = match r.format.as_deref().unwrap_or("ts") {
            "ts" => server::record::Format::Ts,
            "fmp4" => server::record::Format::Fmp4,
            f => bail!("{}: unknown format {f:?} (\"ts\" or \"fmp4\")", at()),
        };
        let dir = r.dir.as_deref().unwrap_or("recordings");
        let rel = Path::new(dir);
        let plain = rel
            .components()
            .all(|c| matches!(c, Component::Normal(n) if !n.to_string_lossy().starts_with('.')));
        if dir.is_empty() || !plain {
            bail!("{}: dir {dir:?} must be a relative path inside the library, without '..' or dotfiles", at());
        }
        let id_prefix = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let bytes = |s: &Option<String>, what: &str| -> Result<Option<u64>> {
            s.as_deref()
                .map(size::parse)
                .transpose()
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("{}: {what}", at()))
        };
        let max_bytes = bytes(&r.max_file_size, "max_file_size")?
            .unwrap_or(4 << 30)
            .max(1 << 20);
        super::at_most_ten_years(&format!("{}: segment_secs", at()), r.segment_secs)?;
        super::at_most_ten_years(&format!("{}: keep_secs", at()), r.keep_secs)?;
        let segment_secs = r.segment_secs.unwrap_or(600).max(1);
        let keep_bytes = bytes(&r.keep_size, "keep_size")?;
        // Retention runs as each file is finished: a file older than keep_secs then goes at once
        // (allowed: only the file being written is kept, for DVR), which is said at start.
        if let Some(keep) = r.keep_secs.filter(|&k| k < segment_secs) {
            tracing::warn!(
                "{}: keep_secs ({keep}) is less than segment_secs ({segment_secs}): each file \
                 is removed as soon as it is finished",
                at()
            );
        }
        rules.push(server::record::Rule {
            streams: r.streams.clone(),
            dir: library.join(rel),
            id_prefix,
            format,
            rotation: server::record::Rotation {
                segment: Duration::from_secs(segment_secs),
                max_bytes,
            },
            keep: server::record::Keep {
                max_age: r.keep_secs.map(Duration::from_secs),
                max_bytes: keep_bytes,
            },
            upload: match &r.upload {
                Some(url) => {
                    let s = super::store::source(url, s3).with_env(|n| std::env::var(n).ok());
                    // Checked as it will be used (endpoint, credentials, CA file), at start.
                    let blocks = server::store::Blocks::new(0, 1 << 20, 0);
                    server::store::Source::new(&s, &server::store::StoreConfig::default(), blocks)
                        .map_err(anyhow::Error::msg)
                        .with_context(|| format!("{}: upload", at()))?;
                    // A file is cut at the first keyframe past it: room for a GOP under S3's
                    // 5 GiB for one PUT.
                    if max_bytes > 9 << 29 {
                        bail!(
                            "{}: upload: max_file_size is at most 4.5GiB (a file runs on to the next keyframe, and one upload takes 5GiB)",
                            at()
                        );
                    }
                    Some(s)
                }
                None => None,
            },
        });
    }
    Ok(rules)
}

impl RecordFile {
    /// Whether its files are uploaded to a bucket.
    pub(super) fn uploads(&self) -> bool {
        self.upload.is_some()
    }
}
