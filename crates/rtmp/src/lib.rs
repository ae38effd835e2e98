//! zerocast's RTMP core, sans-I/O: bytes in, bytes and events out; no sockets, no clocks, no
//! runtime. The server's shell (`server::rtmp_conn`) reads into a `BytesMut` and hands it here.
//!
//! - [`handshake`] — the server side of the plain handshake (C0 C1 → S0 S1 S2, C2).
//! - [`chunk`] — the chunk stream reader: all header types, extended timestamps, interleaved
//!   chunk streams, Set Chunk Size, Abort; bounded memory; single-chunk messages zero-copy.
//! - [`amf0`] — AMF0 values: a total decoder (depth- and length-bounded) and an encoder.
//! - [`session`] — the command flow (`connect`, `createStream`, `publish`, `play`, ...) as a
//!   state machine: [`Session::poll`] returns one [`Event`] at a time; the caller answers
//!   requests with [`Session::accept`] / [`Session::refuse`] and sends [`Session::take_output`].
//! - [`write`] — the one message serialiser (control, command, and the shared media messages).
//!
//! Every parser bounds what a peer declares by the bytes present, with checked arithmetic and
//! no indexing that can panic: any input gives events or an [`Error`], never a panic.
//!
//! **Fuzzing entry point:** [`drive`] runs a handshake and a session over arbitrary bytes,
//! accepting and refusing requests, the way the server's shell does; a fuzz target calls
//! `rtmp::drive(data)`.
#![forbid(unsafe_code)]

pub mod amf0;
pub mod chunk;
pub mod handshake;
pub mod session;
pub mod write;

pub use chunk::{ChunkReader, Limits, Message};
pub use handshake::Handshake;
pub use session::{Config, Event, Request, Session};

use bytes::BytesMut;

/// Why an RTMP connection cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("handshake version {0}; only 3 (plain RTMP) is served")]
    HandshakeVersion(u8),
    #[error("chunk header type {fmt} on chunk stream {csid}, which has no previous header")]
    NoPreviousHeader { csid: u32, fmt: u8 },
    #[error("more than {0} chunk streams")]
    TooManyChunkStreams(usize),
    #[error("partial messages on more than {0} chunk streams at once")]
    TooManyPartialMessages(usize),
    #[error("a {length}-byte message takes the partial messages over {limit} bytes")]
    PendingLimit { length: usize, limit: usize },
    #[error("set chunk size {0}")]
    BadChunkSize(u32),
    #[error("protocol control message {0} is shorter than 4 bytes")]
    ShortControl(u8),
    #[error("AMF0: a value is cut short")]
    Amf0Truncated,
    #[error("AMF0: nested deeper than {}", amf0::MAX_DEPTH)]
    Amf0TooDeep,
    #[error("AMF0: unsupported type marker {0:#04x}")]
    Amf0Unsupported(u8),
    #[error("command '{name}': {why}")]
    Command { name: String, why: &'static str },
    #[error("internal chunk reader state")]
    Internal,
}

/// Runs a server handshake and session over `data` the way the server's shell does, for fuzzing
/// and tests; returns the number of events raised. Never panics (that is what it checks).
///
/// `data[0]`: bit 0 clear: a valid client handshake is made up and all of `data[1..]` is the
/// chunk stream; set: `data[1..]` starts with the client's handshake itself. The other bits pick
/// the size of the pieces `data[1..]` is fed in. `connect` and `play` are accepted, `publish`
/// is accepted on even stream names lengths and refused on odd ones.
pub fn drive(data: &[u8]) -> usize {
    let Some((&first, rest)) = data.split_first() else {
        return 0;
    };
    let mut input = BytesMut::new();
    let mut out = Vec::new();
    let mut hs = Handshake::new(0);
    if first & 1 == 0 {
        input.extend_from_slice(&[3]);
        input.extend_from_slice(&[0x5a; 2 * handshake::SIZE]);
    }
    let mut session = Session::new(Config::default());
    let step = usize::from(first >> 1).max(1) * 3;
    let mut events = 0;
    let (mut sent, mut fed) = (0, 0);
    let mut pieces = rest.chunks(step).peekable();
    loop {
        match hs.input(&mut input, &mut out) {
            Ok(true) => break,
            Ok(false) => match pieces.next() {
                Some(p) => {
                    fed += p.len();
                    input.extend_from_slice(p)
                }
                None => return events,
            },
            Err(_) => return events,
        }
    }
    loop {
        loop {
            let e = match session.poll(&mut input) {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(_) => return events,
            };
            events += 1;
            match e {
                Event::Connect { request, .. } | Event::Play { request, .. } => {
                    session.accept(request)
                }
                Event::Publish { request, name } if name.len() % 2 == 0 => session.accept(request),
                Event::Publish { request, .. } => {
                    session.refuse(request, "NetStream.Publish.BadName", "refused")
                }
                Event::PublishFinished { .. } | Event::Media { .. } => {}
            }
        }
        assert!(session.pending() <= Limits::default().pending);
        // What is answered stays small next to what was received: a peer cannot make the
        // server send more than it sends (beyond the fixed answers to one session's commands).
        sent += session.output().len();
        assert!(
            sent <= 16 * 1024 + fed / 8,
            "{sent} bytes answered to {fed} received"
        );
        session.output().clear();
        match pieces.next() {
            Some(p) => {
                fed += p.len();
                input.extend_from_slice(p)
            }
            None => return events,
        }
    }
}
