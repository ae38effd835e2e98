//! The chunk stream reader: chunks in, whole messages out.
//!
//! ```text
//! basic header: fmt(2) csid(6)            csid 2..=63
//!               fmt(2) 0 | csid-64(8)     csid 64..=319
//!               fmt(2) 1 | csid-64(16 LE) csid 64..=65599
//! message header by fmt: 0: timestamp(24) length(24) type(8) stream(32 LE)   (11 bytes)
//!                        1: delta(24) length(24) type(8)                      (7)
//!                        2: delta(24)                                         (3)
//!                        3: nothing: the previous header's fields again       (0)
//! extended timestamp (32) after the header when the timestamp field is 0xFFFFFF, and after a
//! type 3 header of a chunk stream whose last header had it (on continuation chunks too)
//! payload: up to the chunk size of the message's remaining bytes
//! ```
//! Each chunk stream keeps its own header state and partial message, so chunk streams may
//! interleave in the middle of messages. Every header is read only once all its bytes are
//! present (nothing is consumed before), with checked indexing throughout; a payload is taken as
//! far as the bytes present go.
//!
//! Zero-copy: a message that fits in one chunk and is wholly in the input comes out as a
//! [`Bytes`] slice of the input buffer; any other message is reassembled into one buffer of its
//! declared length (one copy). Memory is bounded: at most [`Limits::chunk_streams`] chunk streams,
//! [`Limits::partial`] partial messages and [`Limits::pending`] bytes of partial messages.
//!
//! Set Chunk Size (type 1; 1..=0x7fffffff, used up to [`MAX_CHUNK_SIZE`]) and Abort (type 2) are
//! applied here, as soon as they are read; they are returned like any other message too.

use crate::Error;
use bytes::{Buf, Bytes, BytesMut};

/// The chunk size every peer starts with.
pub const DEFAULT_CHUNK_SIZE: usize = 128;
/// A peer's larger Set Chunk Size is used as this (no message is longer anyway).
pub const MAX_CHUNK_SIZE: usize = 1 << 24;

pub const SET_CHUNK_SIZE: u8 = 1;
pub const ABORT: u8 = 2;

/// One message as it came out of the chunk stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub csid: u32,
    pub type_id: u8,
    pub stream_id: u32,
    /// Absolute, in ms: the sum of the chunk stream's deltas, wrapping at 2^32 (about 49.7
    /// days; RTMP timestamps wrap there by definition).
    pub timestamp: u32,
    pub payload: Bytes,
}

/// What one connection may make the reader hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Chunk streams with header state.
    pub chunk_streams: usize,
    /// Chunk streams with a partial message at once.
    pub partial: usize,
    /// Bytes reserved for partial messages (their declared lengths), all chunk streams together.
    pub pending: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            chunk_streams: 64,
            partial: 8,
            pending: MAX_CHUNK_SIZE,
        }
    }
}

#[derive(Debug)]
struct ChunkStream {
    csid: u32,
    /// The absolute timestamp of the latest message started.
    timestamp: u32,
    /// The latest header's timestamp field: a delta, or the absolute time after a type 0.
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// The latest header's timestamp field was 0xFFFFFF (type 3 chunks carry the extension).
    extended: bool,
    partial: Option<BytesMut>,
}

/// The chunk stream state of one connection's input.
#[derive(Debug)]
pub struct ChunkReader {
    chunk_size: usize,
    limits: Limits,
    streams: Vec<ChunkStream>,
    /// The chunk whose payload is being read: index into `streams`, payload bytes left in it.
    current: Option<(usize, usize)>,
    pending: usize,
    /// Bytes consumed, wrapping (the sequence number of acknowledgements).
    received: u32,
}

/// A parsed header whose bytes are all present.
struct Header {
    fmt: u8,
    csid: u32,
    /// Bytes of the basic header, message header and extended timestamp.
    len: usize,
    /// The message header's fields (type 0: all, 1: no stream id, 2: timestamp only).
    ts_field: u32,
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

fn be24(b: &[u8]) -> u32 {
    b.iter().take(3).fold(0, |n, &x| n << 8 | u32::from(x))
}

fn be32(b: &[u8]) -> u32 {
    b.iter().take(4).fold(0, |n, &x| n << 8 | u32::from(x))
}

impl ChunkReader {
    pub fn new(limits: Limits) -> Self {
        ChunkReader {
            chunk_size: DEFAULT_CHUNK_SIZE,
            limits,
            streams: Vec::new(),
            current: None,
            pending: 0,
            received: 0,
        }
    }

    /// The peer's chunk size now.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Bytes reserved for partial messages.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Bytes consumed so far, wrapping at 2^32.
    pub fn received(&self) -> u32 {
        self.received
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    fn consume(&mut self, buf: &mut BytesMut, n: usize) {
        buf.advance(n);
        self.received = self.received.wrapping_add(n as u32);
    }

    /// Reads chunks from the front of `buf` until a message is complete (returned) or the bytes
    /// run out (`Ok(None)`; what was read stays in the reader's state, a header not wholly
    /// present stays in `buf`).
    pub fn read(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, Error> {
        loop {
            if let Some((i, left)) = self.current {
                let n = left.min(buf.len());
                if n == 0 {
                    return Ok(None);
                }
                let s = self.streams.get_mut(i).ok_or(Error::Internal)?;
                let partial = s.partial.as_mut().ok_or(Error::Internal)?;
                partial.extend_from_slice(buf.get(..n).ok_or(Error::Internal)?);
                let done = partial.len() >= s.length as usize;
                self.consume(buf, n);
                self.current = (left > n).then_some((i, left - n));
                if done {
                    return self.complete(i).map(Some);
                }
                continue;
            }
            let Some(h) = self.header(buf)? else {
                return Ok(None);
            };
            if let Some(m) = self.start_chunk(h, buf)? {
                return self.control(m).map(Some);
            }
        }
    }

    /// Parses the header at the front of `buf` without consuming it; `None` until all of it is
    /// there.
    fn header(&self, buf: &[u8]) -> Result<Option<Header>, Error> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        let fmt = b0 >> 6;
        let (csid, mut pos) = match b0 & 0x3f {
            0 => match buf.get(1) {
                Some(&b1) => (64 + u32::from(b1), 2),
                None => return Ok(None),
            },
            1 => match buf.get(1..3) {
                Some(b) => (64 + u32::from(b[0]) + 256 * u32::from(b[1]), 3),
                None => return Ok(None),
            },
            c => (u32::from(c), 1),
        };
        let hlen = [11, 7, 3, 0][usize::from(fmt & 3)];
        let Some(mh) = buf.get(pos..pos + hlen) else {
            return Ok(None);
        };
        pos += hlen;
        let prev = self.streams.iter().find(|s| s.csid == csid);
        if fmt != 0 && prev.is_none() {
            return Err(Error::NoPreviousHeader { csid, fmt });
        }
        let field = if fmt == 3 { None } else { Some(be24(mh)) };
        let extended = match field {
            Some(f) => f == 0xff_ffff,
            None => prev.is_some_and(|p| p.extended),
        };
        let mut ts_field = field.unwrap_or_else(|| prev.map_or(0, |p| p.delta));
        if extended {
            let Some(ext) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            ts_field = be32(ext);
            pos += 4;
        }
        let (length, type_id, stream_id) = match (fmt, prev) {
            (0, _) => (
                be24(mh.get(3..).unwrap_or_default()),
                mh.get(6).copied().unwrap_or(0),
                u32::from_le_bytes(
                    mh.get(7..11)
                        .and_then(|b| b.try_into().ok())
                        .unwrap_or([0; 4]),
                ),
            ),
            (1, Some(p)) => (
                be24(mh.get(3..).unwrap_or_default()),
                mh.get(6).copied().unwrap_or(0),
                p.stream_id,
            ),
            (_, Some(p)) => (p.length, p.type_id, p.stream_id),
            (_, None) => return Err(Error::NoPreviousHeader { csid, fmt }),
        };
        Ok(Some(Header {
            fmt,
            csid,
            len: pos,
            ts_field,
            extended,
            length,
            type_id,
            stream_id,
        }))
    }

    /// Applies a header whose bytes are all in `buf` and consumes them; returns the message when
    /// it is complete at once (in one chunk, wholly present: a slice of `buf`).
    fn start_chunk(&mut self, h: Header, buf: &mut BytesMut) -> Result<Option<Message>, Error> {
        let i = match self.streams.iter().position(|s| s.csid == h.csid) {
            Some(i) => i,
            None => {
                if self.streams.len() >= self.limits.chunk_streams {
                    return Err(Error::TooManyChunkStreams(self.limits.chunk_streams));
                }
                self.streams.push(ChunkStream {
                    csid: h.csid,
                    timestamp: 0,
                    delta: 0,
                    length: 0,
                    type_id: 0,
                    stream_id: 0,
                    extended: false,
                    partial: None,
                });
                self.streams.len() - 1
            }
        };
        let chunk_size = self.chunk_size;
        let s = self.streams.get_mut(i).ok_or(Error::Internal)?;
        if let Some(partial) = &s.partial {
            if h.fmt == 3 {
                // The next chunk of the message in progress.
                let left = (s.length as usize).saturating_sub(partial.len());
                self.consume(buf, h.len);
                self.current = Some((i, left.min(chunk_size)));
                return Ok(None);
            }
            // A new message header in the middle of one: the old one is dropped.
            self.pending = self.pending.saturating_sub(s.length as usize);
            s.partial = None;
        }
        match h.fmt {
            0 => s.timestamp = h.ts_field,
            _ => s.timestamp = s.timestamp.wrapping_add(h.ts_field),
        }
        s.delta = h.ts_field;
        s.extended = h.extended;
        s.length = h.length;
        s.type_id = h.type_id;
        s.stream_id = h.stream_id;
        let length = h.length as usize;
        let whole = h
            .len
            .checked_add(length)
            .is_some_and(|end| end <= buf.len());
        if length <= chunk_size && whole {
            let (csid, type_id, stream_id, timestamp) =
                (s.csid, s.type_id, s.stream_id, s.timestamp);
            self.consume(buf, h.len);
            let payload = buf.split_to(length).freeze();
            self.received = self.received.wrapping_add(length as u32);
            return Ok(Some(Message {
                csid,
                type_id,
                stream_id,
                timestamp,
                payload,
            }));
        }
        let partials = self.streams.iter().filter(|s| s.partial.is_some()).count();
        if partials >= self.limits.partial {
            return Err(Error::TooManyPartialMessages(self.limits.partial));
        }
        let pending = self.pending.saturating_add(length);
        if pending > self.limits.pending {
            return Err(Error::PendingLimit {
                length,
                limit: self.limits.pending,
            });
        }
        self.pending = pending;
        let s = self.streams.get_mut(i).ok_or(Error::Internal)?;
        s.partial = Some(BytesMut::with_capacity(length));
        self.consume(buf, h.len);
        self.current = Some((i, length.min(chunk_size)));
        Ok(None)
    }

    /// The finished partial message of stream `i`.
    fn complete(&mut self, i: usize) -> Result<Message, Error> {
        let s = self.streams.get_mut(i).ok_or(Error::Internal)?;
        let payload = s.partial.take().ok_or(Error::Internal)?.freeze();
        self.pending = self.pending.saturating_sub(s.length as usize);
        let m = Message {
            csid: s.csid,
            type_id: s.type_id,
            stream_id: s.stream_id,
            timestamp: s.timestamp,
            payload,
        };
        self.control(m)
    }

    /// Applies Set Chunk Size and Abort.
    fn control(&mut self, m: Message) -> Result<Message, Error> {
        let value = m.payload.get(..4).map(be32);
        match (m.type_id, value) {
            (SET_CHUNK_SIZE, Some(v)) => {
                let v = v & 0x7fff_ffff;
                if v == 0 {
                    return Err(Error::BadChunkSize(v));
                }
                self.chunk_size = (v as usize).min(MAX_CHUNK_SIZE);
            }
            (ABORT, Some(csid)) => {
                if let Some(s) = self.streams.iter_mut().find(|s| s.csid == csid) {
                    if s.partial.take().is_some() {
                        self.pending = self.pending.saturating_sub(s.length as usize);
                    }
                }
            }
            (SET_CHUNK_SIZE | ABORT, None) => return Err(Error::ShortControl(m.type_id)),
            _ => {}
        }
        Ok(m)
    }
}
