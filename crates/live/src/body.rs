//! The framing of an ingest request body, sans-I/O: `Content-Length`, chunked
//! (`Transfer-Encoding: chunked`, what ffmpeg sends by default), or, for publishers that send
//! neither (ffmpeg with `-chunked_post 0`), everything until the connection closes.
//!
//! The shell asks [`RequestBody::want`] what comes next. Data is read straight into the ingest
//! slab, at most the bytes the current chunk has left, so chunk framing never lands in the slab
//! and the data never has to be moved. Framing (a chunk-size line, the CRLF after a chunk, the
//! trailer) is read into a small side buffer and parsed here; body bytes that arrived in that same
//! small read are the only ones copied.
//!
//! Framing is paid for: [`RequestBody::wire`] (body and framing bytes) is what the shell holds to
//! the ingest rate limit, and once more than [`FRAMING_GRACE`] wire bytes have arrived, framing
//! that outweighs the body it carries (1-byte chunks: 5 framing bytes per body byte) ends the
//! body with [`BodyError::Overhead`] (the publisher gets a 400).

/// Why a body is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("malformed chunked encoding: {0}")]
    Chunked(&'static str),
    #[error("the body ended early: {0}")]
    Truncated(&'static str),
    #[error("chunk framing ({framing} bytes) outweighs the body it carries ({body} bytes)")]
    Overhead { framing: u64, body: u64 },
}

/// Wire bytes after which framing must not outweigh the body (a short body with a long trailer,
/// or a few small chunks at the start, are fine).
pub const FRAMING_GRACE: u64 = 64 * 1024;

/// What the shell should read next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Up to this many body bytes (read them into the slab).
    Data(u64),
    /// Framing bytes: read into the side buffer and pass them to [`RequestBody::framing`].
    Framing,
    /// The body is complete.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer fields after the last chunk, up to an empty line.
    Trailer,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone)]
pub struct RequestBody {
    mode: Mode,
    /// Body bytes received so far.
    body: u64,
    /// Framing bytes parsed so far (chunk-size lines, CRLFs, trailer).
    framing: u64,
}

impl RequestBody {
    pub fn length(n: u64) -> Self {
        RequestBody {
            mode: Mode::Length(n),
            body: 0,
            framing: 0,
        }
    }

    pub fn chunked() -> Self {
        RequestBody {
            mode: Mode::Chunked(Chunked::Size),
            body: 0,
            framing: 0,
        }
    }

    pub fn until_close() -> Self {
        RequestBody {
            mode: Mode::UntilClose,
            body: 0,
            framing: 0,
        }
    }

    pub fn want(&self) -> Want {
        match self.mode {
            Mode::Length(0) | Mode::Chunked(Chunked::Done) => Want::Done,
            Mode::Length(n) | Mode::Chunked(Chunked::Data(n)) => Want::Data(n),
            Mode::UntilClose => Want::Data(u64::MAX),
            Mode::Chunked(_) => Want::Framing,
        }
    }

    /// Bytes of the body on the wire so far: body and framing (what the rate limit counts).
    pub fn wire(&self) -> u64 {
        self.body + self.framing
    }

    /// `n` body bytes were received (no more than [`Want::Data`] allowed).
    pub fn data(&mut self, n: usize) {
        let n = n as u64;
        self.body += n;
        match &mut self.mode {
            Mode::Length(left) | Mode::Chunked(Chunked::Data(left)) => {
                *left = left.saturating_sub(n);
                if *left == 0 {
                    if let Mode::Chunked(c) = &mut self.mode {
                        *c = Chunked::DataEnd;
                    }
                }
            }
            Mode::UntilClose | Mode::Chunked(_) => {}
        }
    }

    /// Parses framing at the front of `input` and returns how many bytes it used; 0 means it needs
    /// more bytes. Stops where data begins (then `want()` is `Data`) or where the body ends.
    /// Framing that outweighs the body past [`FRAMING_GRACE`] is [`BodyError::Overhead`].
    pub fn framing(&mut self, input: &[u8]) -> Result<usize, BodyError> {
        let used = self.parse_framing(input)?;
        self.framing += used as u64;
        if self.wire() > FRAMING_GRACE && self.framing > self.body {
            return Err(BodyError::Overhead {
                framing: self.framing,
                body: self.body,
            });
        }
        Ok(used)
    }

    fn parse_framing(&mut self, input: &[u8]) -> Result<usize, BodyError> {
        let Mode::Chunked(state) = &mut self.mode else {
            return Ok(0);
        };
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match *state {
                Chunked::Size => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((n, size))) => {
                        used += n;
                        *state = if size == 0 {
                            Chunked::Trailer
                        } else {
                            Chunked::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if rest.len() < MAX_LINE => return Ok(used),
                    _ => return Err(BodyError::Chunked("bad chunk size line")),
                },
                Chunked::DataEnd => {
                    if rest.len() < 2 {
                        return Ok(used);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(BodyError::Chunked("no CRLF after chunk data"));
                    }
                    used += 2;
                    *state = Chunked::Size;
                }
                Chunked::Trailer => {
                    let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
                        if rest.len() >= MAX_LINE {
                            return Err(BodyError::Chunked("trailer line too long"));
                        }
                        return Ok(used);
                    };
                    used += eol + 2;
                    if eol == 0 {
                        *state = Chunked::Done;
                    }
                }
                Chunked::Data(_) | Chunked::Done => return Ok(used),
            }
        }
    }

    /// The connection closed: was the body complete?
    pub fn eof(&self) -> Result<(), BodyError> {
        match self.mode {
            Mode::UntilClose | Mode::Length(0) | Mode::Chunked(Chunked::Done) => Ok(()),
            Mode::Length(_) => Err(BodyError::Truncated("fewer bytes than Content-Length")),
            Mode::Chunked(_) => Err(BodyError::Truncated("no last chunk")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a body the way the shell does, with reads of the given sizes; returns the data.
    fn drive(mut body: RequestBody, wire: &[u8], read: usize) -> Result<Vec<u8>, BodyError> {
        drive_mut(&mut body, wire, read)
    }

    fn drive_mut(body: &mut RequestBody, wire: &[u8], read: usize) -> Result<Vec<u8>, BodyError> {
        let mut data = Vec::new();
        let mut side: Vec<u8> = Vec::new();
        let mut at = 0;
        loop {
            match body.want() {
                Want::Done => return Ok(data),
                Want::Data(n) => {
                    // Body bytes already in the side buffer first (the small copy), then reads.
                    let take = if side.is_empty() {
                        let n = (n.min(read as u64) as usize).min(wire.len() - at);
                        if n == 0 {
                            body.eof()?;
                            return Ok(data);
                        }
                        data.extend_from_slice(&wire[at..at + n]);
                        at += n;
                        n
                    } else {
                        let n = (n as usize).min(side.len());
                        data.extend(side.drain(..n));
                        n
                    };
                    body.data(take);
                }
                Want::Framing => {
                    let used = body.framing(&side)?;
                    side.drain(..used);
                    if used == 0 || side.is_empty() {
                        let n = 7.min(wire.len() - at);
                        if n == 0 {
                            body.eof()?;
                            return Ok(data);
                        }
                        side.extend_from_slice(&wire[at..at + n]);
                        at += n;
                    }
                }
            }
        }
    }

    fn chunk(parts: &[&[u8]]) -> Vec<u8> {
        let mut w = Vec::new();
        for p in parts {
            w.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
            w.extend_from_slice(p);
            w.extend_from_slice(b"\r\n");
        }
        w.extend_from_slice(b"0\r\n\r\n");
        w
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_sizes() {
        let parts: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 1 + i as usize * 37]).collect();
        let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
        let wire = chunk(&refs);
        let want: Vec<u8> = parts.concat();
        for read in [1, 3, 64, 1000, 100_000] {
            assert_eq!(drive(RequestBody::chunked(), &wire, read).unwrap(), want);
        }
        // Extensions and trailers are allowed.
        let wire = b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: y\r\n\r\n";
        assert_eq!(drive(RequestBody::chunked(), wire, 2).unwrap(), b"hello");
    }

    #[test]
    fn bad_and_truncated_bodies_are_errors() {
        let e = drive(RequestBody::chunked(), b"zz\r\nhello\r\n", 4).unwrap_err();
        assert!(matches!(e, BodyError::Chunked(_)));
        let e = drive(RequestBody::chunked(), b"5\r\nhelloXX0\r\n\r\n", 4).unwrap_err();
        assert!(matches!(e, BodyError::Chunked(_)));
        let e = drive(RequestBody::chunked(), b"5\r\nhello\r\n", 4).unwrap_err();
        assert!(matches!(e, BodyError::Truncated(_)));
        let e = drive(RequestBody::length(10), b"hello", 4).unwrap_err();
        assert!(matches!(e, BodyError::Truncated(_)));
        assert_eq!(
            drive(RequestBody::length(5), b"hello", 2).unwrap(),
            b"hello"
        );
        assert_eq!(
            drive(RequestBody::until_close(), b"hello", 2).unwrap(),
            b"hello"
        );
        // An endless size line is refused, not buffered.
        let long = vec![b'1'; MAX_LINE + 10];
        assert!(drive(RequestBody::chunked(), &long, 1000).is_err());
    }

    #[test]
    fn framing_counts_as_wire_bytes() {
        let parts = [[7u8; 100]; 10];
        let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
        let wire = chunk(&refs);
        let mut body = RequestBody::chunked();
        assert_eq!(drive_mut(&mut body, &wire, 64).unwrap().len(), 1000);
        // "64\r\n" and "\r\n" per chunk, "0\r\n\r\n" at the end: every byte that came in.
        assert_eq!(body.wire(), wire.len() as u64);
        assert_eq!(body.wire(), 1000 + 10 * 6 + 5);
        let mut plain = RequestBody::length(1000);
        drive_mut(&mut plain, &[0; 1000], 64).unwrap();
        assert_eq!(plain.wire(), 1000);
    }

    #[test]
    fn framing_that_outweighs_the_body_ends_it_after_the_grace() {
        // 1-byte chunks: 6 wire bytes per body byte. Fine for a while, refused past the grace.
        let one_byte: Vec<u8> = b"1\r\nG\r\n".repeat(20_000);
        let mut body = RequestBody::chunked();
        let e = drive_mut(&mut body, &one_byte, 64).unwrap_err();
        assert!(
            matches!(e, BodyError::Overhead { framing, body } if framing > body),
            "{e}"
        );
        let wire = body.wire();
        assert!(
            (FRAMING_GRACE..FRAMING_GRACE + 16).contains(&wire),
            "{wire}"
        );
        let mut short = b"1\r\nG\r\n".repeat(1000);
        short.extend_from_slice(b"0\r\n\r\n");
        let under = drive(RequestBody::chunked(), &short, 64).unwrap();
        assert_eq!(under.len(), 1000, "under the grace");
        // Ordinary chunks (one TS packet each: 3 % framing) go on for ever.
        let parts = vec![[0x47u8; 188]; 2000];
        let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
        assert_eq!(
            drive(RequestBody::chunked(), &chunk(&refs), 1000)
                .unwrap()
                .len(),
            2000 * 188
        );
    }

    #[test]
    fn wire_bytes_reach_the_rate_limit_before_body_bytes_do() {
        use crate::RateLimit;
        use std::time::Duration;
        // 1,000 bytes/s and no burst; 100-byte chunks carry 6 bytes of framing each.
        let limit = RateLimit::new(8_000, Duration::ZERO, Duration::ZERO);
        let parts = [[1u8; 100]; 10];
        let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
        let mut body = RequestBody::chunked();
        drive_mut(&mut body, &chunk(&refs), 512).unwrap();
        let at = Duration::from_secs(1);
        assert_eq!(
            limit.wait(1000, at),
            None,
            "the body alone is within the rate"
        );
        assert_eq!(
            limit.wait(body.wire(), at),
            Some(Duration::from_millis(65)),
            "its 65 framing bytes are not"
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = fastrand::Rng::with_seed(12);
        for _ in 0..2000 {
            let n = rng.usize(0..64);
            let wire: Vec<u8> = (0..n)
                .map(|_| *rng.choice(b"0123456789abcdef\r\n;x \t").unwrap())
                .collect();
            let _ = drive(RequestBody::chunked(), &wire, rng.usize(1..9));
        }
    }
}
