//! The live core of zerocast, sans-I/O: a per-stream ring of units and the cursors of its viewers.
//!
//! **Status: a building block, not yet wired to ingest or HTTP** (see ARCHITECTURE.md). The server
//! will cut ingested MPEG-TS into units at keyframes (`media::ts::Splitter`), push them here, and
//! let each viewer task `step` its cursor when the stream's `Notify` fires.
//!
//! ```text
//!            first_seq                         latest keyframe          end_seq
//!  evicted ... | u | u | K | u | u | u | u | u | K | u | u |  <- push (publisher)
//!              ^ slow viewer's cursor fell out: skip to K, re-send PAT/PMT
//!                                                ^ a new viewer starts here, PAT/PMT first
//! ```
//! Invariants: the ring is bounded by bytes and age but always keeps the current GOP (from the
//! latest keyframe on); every unit is a `Bytes` shared by all viewers (no per-viewer copies); a
//! viewer only ever resumes at a keyframe after the PAT/PMT, never mid-GOP.

pub mod ring;

pub use ring::{Limits, Ring, Step, Unit, Viewer, ViewerPolicy};
