//! The LL-HLS client (`--output llhls`), on one keep-alive connection, as a low-latency player
//! at the live edge: the playlist once, then per part the hinted part (zerocast sends it while it
//! is written; each fragment's `prft` is read as a latency mark, ingest to read, as for
//! `--output mp4`), then a blocking reload for that part (`_HLS_msn`, `_HLS_part`), which answers
//! once it is complete and names the next hint.

use crate::http::{connect, Dechunk};
use crate::mp4::BoxCheck;
use crate::report::{Shared, ViewerStats};
use anyhow::{bail, Context, Result};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// An LL-HLS client.
pub async fn viewer(
    addr: SocketAddr,
    bind: Option<IpAddr>,
    stream: &str,
    read_size: usize,
    st: &ViewerStats,
    sh: &Shared,
) -> Result<()> {
    let mut conn = Conn {
        s: connect(addr, bind).await?,
        buf: vec![0u8; read_size.max(16 << 10)],
    };
    let mut check = BoxCheck::after_init(Instant::now());
    let mut query = String::new();
    let mut last: Option<Part> = None;
    while !sh.stop.load(Relaxed) {
        let mut playlist = Vec::new();
        conn.get(&format!("/live/{stream}/ll.m3u8{query}"), |d| {
            playlist.extend_from_slice(d)
        })
        .await?;
        let listed = parts(&playlist);
        // The part after the one just read, as a player goes; the hint when starting, or when
        // that part slid out of the playlist (counted as a gap).
        let next = last.as_ref().and_then(|l| {
            let i = listed.iter().position(|p| p == l)?;
            listed.get(i + 1).cloned()
        });
        if last.is_some() && next.is_none() {
            st.gaps.fetch_add(1, Relaxed);
        }
        let (dir, msn, part) = next
            .or_else(|| listed.last().cloned())
            .context("no EXT-X-PRELOAD-HINT")?;
        check.asked_at_us = Some(crate::stamp::now_us());
        conn.get(&format!("/live/{stream}/{dir}{msn}.{part}.m4s"), |d| {
            st.bytes.fetch_add(d.len() as u64, Relaxed);
            check.feed(d, st, sh);
        })
        .await?;
        last = Some((dir, msn, part));
        query = format!("?_HLS_msn={msn}&_HLS_part={part}");
    }
    Ok(())
}

/// A part as a playlist names it: the directory of its URI (the stream instance's, with its
/// `/`), its segment and its number in that segment.
type Part = (String, u64, u64);

/// The parts a playlist names, in order (`EXT-X-PART`, then the `EXT-X-PRELOAD-HINT` last).
fn parts(playlist: &[u8]) -> Vec<Part> {
    let text = std::str::from_utf8(playlist).unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("#EXT-X-PART:") || l.starts_with("#EXT-X-PRELOAD-HINT:"))
        .filter_map(|l| {
            let uri = l.split("URI=\"").nth(1)?;
            let uri = uri.split(['"', '?']).next()?.strip_suffix(".m4s")?;
            let (dir, file) = match uri.rsplit_once('/') {
                Some((dir, file)) => (format!("{dir}/"), file),
                None => (String::new(), uri),
            };
            let (msn, part) = file.split_once('.')?;
            Some((dir, msn.parse().ok()?, part.parse().ok()?))
        })
        .collect()
}

/// A keep-alive connection, one request at a time.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// GETs `path` and hands its body (by `Content-Length` or chunked) to `body` as it comes.
    async fn get(&mut self, path: &str, mut body: impl FnMut(&[u8])) -> Result<()> {
        self.s
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await?;
        let mut have = 0;
        let (at, length) = loop {
            let n = self.s.read(&mut self.buf[have..]).await?;
            if n == 0 {
                bail!("closed before a response to {path}");
            }
            have += n;
            let mut h = [httparse::EMPTY_HEADER; 16];
            let mut r = httparse::Response::new(&mut h);
            if let httparse::Status::Complete(at) = r.parse(&self.buf[..have])? {
                if r.code != Some(200) {
                    bail!("{path}: status {:?}", r.code);
                }
                let length = r
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| {
                        std::str::from_utf8(h.value)
                            .ok()?
                            .trim()
                            .parse::<u64>()
                            .ok()
                    });
                break (at, length);
            }
            if have == self.buf.len() {
                bail!("response head too long");
            }
        };
        let (mut from, mut to) = (at, have);
        match length {
            Some(mut left) => loop {
                let k = (left.min((to - from) as u64)) as usize;
                body(&self.buf[from..from + k]);
                left -= k as u64;
                if left == 0 {
                    return Ok(());
                }
                let n = self.s.read(&mut self.buf).await?;
                if n == 0 {
                    bail!("{path}: body cut short");
                }
                (from, to) = (0, n);
            },
            None => {
                let mut chunks = Dechunk::default();
                loop {
                    if chunks.feed(&self.buf[from..to], &mut body)? {
                        return Ok(());
                    }
                    let n = self.s.read(&mut self.buf).await?;
                    if n == 0 {
                        bail!("{path}: body cut short");
                    }
                    (from, to) = (0, n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_are_read_in_order_with_the_hint_last() {
        let p = b"#EXTM3U\n#EXT-X-PART:DURATION=0.320,URI=\"1a/4.1.m4s\",INDEPENDENT=YES\n\
                  #EXTINF:2.000,\n1a/4.m4s\n\
                  #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"1a/5.0.m4s?sig=x\"\n";
        let dir = || "1a/".to_string();
        assert_eq!(parts(p), vec![(dir(), 4, 1), (dir(), 5, 0)]);
        assert!(parts(b"#EXTM3U\n#EXT-X-ENDLIST\n").is_empty());
    }
}
