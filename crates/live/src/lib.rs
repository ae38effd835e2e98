//! The live core of zerocast, sans-I/O: how an ingest body is framed ([`body`]), the slabs it is
//! received into ([`slab`]), how received packets become units ([`ingest`]), the per-stream ring
//! and the cursors of its viewers ([`ring`]), live HLS cut from the same units ([`hls`]), low-latency HLS cut from the fMP4 fragments
//! ([`llhls`]), the FLV
//! and RTMP outputs serialised once per stream ([`outputs`]), and the publisher's lifecycle with
//! its rate limit, bitrate window, wake batching and viewer stall rule ([`lifecycle`]).
//! Nothing here reads a clock: time is passed in as `now` (a `Duration` on the live clock) and
//! deadlines come back out. The server's async shell (crates/server/src/live/) does the I/O.
//!
//! ```text
//!            first_seq                         latest keyframe          end_seq
//!  evicted ... | u | u | K | u | u | u | u | u | K | u | u |  <- push (publisher)
//!              ^ slow viewer's cursor fell out: skip to K, re-send PAT/PMT
//!                                                ^ a new viewer starts here, PAT/PMT first
//! ```
//! Invariants: the ring is bounded by bytes (hard) and age (the current GOP excepted); every unit
//! is a `Bytes` shared by all viewers and HLS segments (no per-viewer copies); a viewer only ever
//! (re)starts at a keyframe after the PAT/PMT seen just before it, never mid-GOP.

#![forbid(unsafe_code)]

pub mod body;
pub mod budget;
pub mod dash;
pub mod hls;
pub mod ingest;
pub mod lifecycle;
pub mod llhls;
pub mod outputs;
pub mod record;
pub mod relay;
pub mod retention;
pub mod rewind;
pub mod ring;
pub mod slab;

pub use body::{BodyError, RequestBody, Want};
pub use budget::{Budget, OverBudget};
pub use hls::{HlsLimits, Segment, Segmenter};
pub use ingest::Ingest;
pub use lifecycle::{
    Batch, Begin, Bitrate, End, Lifecycle, RateLimit, Stall, State, Timing, Transition,
};
pub use llhls::{LlHls, LlLimits};
pub use outputs::MediaOutputs;
pub use ring::{Limits, Ring, Step, Unit, Viewer, ViewerPolicy};
pub use slab::Slab;
