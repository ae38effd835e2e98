//! An LL-HLS part still being written, over HTTP/1.1: the head at once, then each fragment as a
//! chunk as it arrives (the `Bytes` the MP4 ring holds, in one `writev`), then the last chunk
//! when the part is complete. A part cut short (its segment dropped, no fragment for three
//! target durations) closes the connection without the last chunk, so the client knows.

use crate::date;
use crate::live::llhls::PartFollow;
use crate::live::Live;
use crate::transport::Transport;
use crate::vectored;
use bytes::Bytes;
use std::io::{self, IoSlice};
use tokio::io::AsyncWriteExt;

/// Writes the part's response; `headers`: its caching, HSTS and CORS headers
/// ([`crate::http::streamed_headers`]).
pub(super) async fn write(
    sock: &mut Transport,
    mut follow: PartFollow,
    first: Vec<Bytes>,
    headers: http::HeaderMap,
    close: bool,
    live: &Live,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {}\r\ntransfer-encoding: chunked\r\n{}",
        follow.content_type(),
        if close { "connection: close\r\n" } else { "" }
    )
    .into_bytes();
    for (name, value) in &headers {
        // Values the server made, or an Origin that matched the CORS list (valid header values).
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"date: ");
    date::now(|d| head.extend_from_slice(d));
    head.extend_from_slice(b"\r\n\r\n");
    let stall = live.config.stall_timeout;
    // Sent whole within the limit, as a complete part would be (`SendBy`).
    let by = tokio::time::Instant::now() + live.config.segment_send_limit;
    let mut head = Some(head);
    let mut first = Some(first);
    loop {
        let data = match first.take() {
            Some(f) => Some(f),
            None => follow.next().await?,
        };
        let n: usize = data.iter().flatten().map(|b| b.len()).sum();
        let size = match &data {
            Some(_) => format!("{n:x}\r\n"),
            None => "0\r\n\r\n".to_string(),
        };
        let mut slices: Vec<IoSlice<'_>> =
            Vec::with_capacity(4 + data.as_ref().map_or(0, Vec::len));
        if let Some(h) = &head {
            slices.push(IoSlice::new(h));
        }
        slices.push(IoSlice::new(size.as_bytes()));
        if let Some(d) = &data {
            slices.extend(d.iter().map(|b| IoSlice::new(b)));
            slices.push(IoSlice::new(b"\r\n"));
        }
        // Each write must take some bytes within the stall timeout, as a live viewer's.
        let progress = |_| Some((tokio::time::Instant::now() + stall).min(by));
        vectored::write_all(sock, &mut slices, progress).await?;
        follow.delivered(live);
        head = None;
        if data.is_none() {
            return sock.flush().await;
        }
    }
}
