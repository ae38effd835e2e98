//! The `[edge]` table and `--origin`: this server pulls the live streams it does not have from
//! its origins (`server::edge`).

use anyhow::{bail, Result};
use serde::Deserialize;
use server::edge::{EdgeConfig, Origin};
use std::time::Duration;

/// The `[edge]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeFile {
    /// `["http://origin-a:8080", "http://origin-b:8080"]`, tried in order.
    #[serde(default)]
    origins: Vec<String>,
    /// A pulled stream is released this long after its last viewer left (default 10).
    idle_secs: Option<u64>,
    /// Sent to the origins as `Authorization: Bearer` (a `read` JWT, when their rules ask).
    token: Option<String>,
    /// The CAs `https://` origins are checked against (PEM; default: the system's bundle).
    pub(super) ca: Option<std::path::PathBuf>,
}

/// The edge settings: `--origin` flags replace the file's origins; `None` without any origin.
pub(super) fn edge(flags: &[String], file: Option<&EdgeFile>) -> Result<Option<EdgeConfig>> {
    let origins = match (flags, file) {
        ([], Some(f)) => f.origins.as_slice(),
        (flags, _) => flags,
    };
    if origins.is_empty() {
        if file.is_some_and(|f| f.idle_secs.is_some() || f.token.is_some() || f.ca.is_some()) {
            bail!("[edge] needs origins (or --origin URL)");
        }
        return Ok(None);
    }
    let origins = origins
        .iter()
        .map(|o| Origin::parse(o).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    super::at_most_ten_years("edge.idle_secs", file.and_then(|f| f.idle_secs))?;
    let idle = file.and_then(|f| f.idle_secs).unwrap_or(10).max(1);
    Ok(Some(EdgeConfig {
        origins,
        idle: Duration::from_secs(idle),
        token: file.and_then(|f| f.token.clone()),
        ca: file.and_then(|f| f.ca.clone()),
    }))
}
