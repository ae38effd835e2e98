//! The HTTP pieces the viewers and the orchestration share: connecting from a chosen source
//! address ([`connect`], also the RTMP player's), a GET whose response head is read with
//! httparse ([`get`], for the TS viewer, and [`follow_body`], the FLV and MP4 viewers' read loop), the chunked-body decoder ([`Dechunk`], on the
//! server's own framing parser, one copy for both), and `GET /api/streams` ([`api_all`]).

use anyhow::{bail, Context, Result};
use live::{RequestBody, Want};
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// GET /api/streams as JSON.
pub async fn api_all(addr: SocketAddr) -> Result<Vec<serde_json::Value>> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET /api/streams HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no response head")?;
    Ok(serde_json::from_slice(&raw[at + 4..])?)
}

/// A TCP connection to `addr`, from `bind` (any port) when given.
pub async fn connect(addr: SocketAddr, bind: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    if let Some(ip) = bind {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    sock.connect(addr).await
}

/// Sends a GET and reads the response head; returns the socket, the buffer and where the body
/// starts and ends in it.
pub async fn get(
    addr: SocketAddr,
    bind: Option<IpAddr>,
    path: &str,
    read_size: usize,
) -> Result<(TcpStream, Vec<u8>, usize, usize)> {
    let mut s = connect(addr, bind).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await?;
    let mut buf = vec![0u8; read_size];
    let mut have = 0;
    loop {
        let n = s.read(&mut buf[have..]).await?;
        if n == 0 {
            bail!("closed before a response");
        }
        have += n;
        let mut h = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Response::new(&mut h);
        if let httparse::Status::Complete(at) = r.parse(&buf[..have])? {
            if r.code != Some(200) {
                bail!("status {:?}", r.code);
            }
            return Ok((s, buf, at, have));
        }
        if have == buf.len() {
            bail!("response head too long");
        }
    }
}

/// A chunked response body decoded with the server's own framing parser: data spans are handed
/// to the caller as they are, framing bytes (a few per chunk) are gathered aside.
#[derive(Default)]
pub struct Dechunk {
    body: Option<RequestBody>,
    framing: Vec<u8>,
}

impl Dechunk {
    /// Feeds one read; calls `data` for each span of body bytes. True once the last chunk came.
    pub fn feed(&mut self, mut input: &[u8], mut data: impl FnMut(&[u8])) -> Result<bool> {
        let body = self.body.get_or_insert_with(RequestBody::chunked);
        while !input.is_empty() {
            match body.want() {
                Want::Data(m) => {
                    let k = usize::try_from(m).unwrap_or(usize::MAX).min(input.len());
                    data(&input[..k]);
                    body.data(k);
                    input = &input[k..];
                }
                Want::Framing => {
                    self.framing.push(input[0]);
                    input = &input[1..];
                    let used = body.framing(&self.framing)?;
                    self.framing.drain(..used);
                }
                Want::Done => return Ok(true),
            }
        }
        Ok(body.want() == Want::Done)
    }
}

/// A viewer of a chunked live body: `GET path`, then every span of body bytes counted and handed
/// to `feed`, until the body ends (noted in `st`), the socket closes, or the run stops.
pub async fn follow_body(
    addr: SocketAddr,
    bind: Option<IpAddr>,
    path: &str,
    read_size: usize,
    st: &crate::report::ViewerStats,
    sh: &crate::report::Shared,
    mut feed: impl FnMut(&[u8]),
) -> Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let (mut s, mut buf, mut from, mut to) = get(addr, bind, path, read_size).await?;
    let mut body = Dechunk::default();
    loop {
        let done = body.feed(&buf[from..to], |d| {
            st.bytes.fetch_add(d.len() as u64, Relaxed);
            feed(d);
        })?;
        if done {
            st.ended.store(true, Relaxed);
            return Ok(());
        }
        if sh.stop.load(Relaxed) {
            return Ok(());
        }
        let n = s.read(&mut buf).await?;
        if n == 0 {
            st.ended.store(true, Relaxed);
            return Ok(());
        }
        (from, to) = (0, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";

    /// Feeds `input` in reads of `step` bytes; the body bytes and whether the end was seen
    /// (and after how many bytes).
    fn decode(input: &[u8], step: usize) -> (Vec<u8>, Option<usize>) {
        let mut d = Dechunk::default();
        let mut out = Vec::new();
        for (i, read) in input.chunks(step).enumerate() {
            if d.feed(read, |s| out.extend_from_slice(s)).unwrap() {
                return (out, Some((i + 1) * step));
            }
        }
        (out, None)
    }

    #[test]
    fn byte_by_byte_and_in_one_piece_give_the_same_bytes() {
        let want = b"helloabcdefghijklmnopqrstuvwxyz".to_vec();
        let (whole, end) = decode(BODY, BODY.len());
        assert_eq!(whole, want);
        assert_eq!(end, Some(BODY.len()));
        let (bytes, end) = decode(BODY, 1);
        assert_eq!(bytes, want);
        assert_eq!(end, Some(BODY.len()));
        for step in 2..BODY.len() {
            assert_eq!(decode(BODY, step).0, want, "reads of {step}");
        }
    }

    #[test]
    fn a_body_cut_short_is_not_done() {
        let (bytes, end) = decode(&BODY[..12], 1);
        assert_eq!(bytes, b"hello");
        assert_eq!(end, None);
    }

    #[test]
    fn bad_framing_is_an_error() {
        let mut d = Dechunk::default();
        assert!(d.feed(b"zz\r\nhello\r\n", |_| {}).is_err());
    }
}
