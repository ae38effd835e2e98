//! The server side of an RTMP connection after the handshake, sans-I/O: chunk bytes in, events
//! and answer bytes out.
//!
//! ```text
//! connect(app)        -> Event::Connect   accept: WindowAckSize, SetPeerBandwidth, SetChunkSize,
//!                                                 _result NetConnection.Connect.Success
//!                                         refuse: _error {level error, code, description}
//! createStream        -> _result (stream id 1, 2, ...)
//! publish(name)       -> Event::Publish   accept: onStatus NetStream.Publish.Start
//! play(name)          -> Event::Play      accept: StreamBegin, onStatus NetStream.Play.Reset and
//!                                                 NetStream.Play.Start
//!                                         refuse (publish, play): onStatus {level error, code}
//! deleteStream, closeStream, FCUnpublish  -> Event::PublishFinished (of the publishing stream)
//! audio (8), video (9) on the published stream -> Event::Media (payload, absolute timestamp)
//! releaseStream, FCPublish, getStreamLength, FCSubscribe, other commands: ignored
//! data messages (@setDataFrame, onMetaData), AMF3 data: ignored
//! ```
//! Commands may be pipelined: [`Session::poll`] returns one event at a time, in order, and reads
//! no further until called again, so the answer to a request (given with [`Session::accept`] or
//! [`Session::refuse`]) precedes anything the later messages cause. AMF3 commands (type 17) are
//! read as AMF0 after their leading format byte. A command that is not AMF0, or lacks what it
//! needs (`connect` without its command object, `publish`/`play` without a name), is an error:
//! the connection is to be closed. Acknowledgements are sent per the peer's window size; a ping
//! request is answered.
//!
//! Until a publish is accepted the chunk reader's limits are [`Config::setup_limits`] (commands
//! are small), afterwards [`Config::limits`].

use crate::amf0::{self, Value};
use crate::chunk::{ChunkReader, Limits, Message, DEFAULT_CHUNK_SIZE};
use crate::write::{self, CSID_COMMAND, CSID_CONTROL};
use crate::Error;
use bytes::{Bytes, BytesMut};

/// Message type ids (acknowledgements (3) and Set Peer Bandwidth (6) from a peer are ignored).
const ACK: u8 = 3;
const USER_CONTROL: u8 = 4;
const WINDOW_ACK_SIZE: u8 = 5;
const SET_PEER_BANDWIDTH: u8 = 6;
const AUDIO: u8 = write::AUDIO;
const VIDEO: u8 = write::VIDEO;
const COMMAND_AMF3: u8 = 17;
const COMMAND_AMF0: u8 = 20;

/// User control events.
const STREAM_BEGIN: u16 = 0;
const PING_REQUEST: u16 = 6;
const PING_RESPONSE: u16 = 7;

/// Most `createStream`s a connection may make.
const MAX_STREAMS: u32 = 16;
/// The smallest acknowledgement window honoured: a peer that asks for an acknowledgement every
/// byte would get 16 bytes back per byte sent.
const MIN_PEER_WINDOW: u32 = 4096;
/// A ping request is answered at most once per this many bytes received (a peer that sends
/// nothing but pings must not get more back than it sends).
const PING_EVERY: u32 = 4096;
/// Command messages larger than this are refused before they are decoded (a command is a name,
/// a transaction id and a few small values; decoding expands each byte into a value).
const MAX_COMMAND: usize = 64 << 10;
/// Values decoded of a command: the most any command we answer takes (`play` has seven).
const COMMAND_VALUES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Our chunk size, announced after `connect` and used for everything sent after it.
    pub chunk_size: usize,
    /// The window acknowledgement size we ask of the peer.
    pub window_ack_size: u32,
    /// The peer bandwidth we announce (limit type dynamic).
    pub peer_bandwidth: u32,
    /// Chunk reader limits once a publish is accepted.
    pub limits: Limits,
    /// Chunk reader limits before that.
    pub setup_limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
            limits: Limits::default(),
            setup_limits: Limits {
                chunk_streams: 16,
                partial: 4,
                pending: 64 << 10,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connect,
    Publish,
    Play,
}

/// A request awaiting the caller's [`Session::accept`] or [`Session::refuse`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request {
    kind: Kind,
    transaction: f64,
    stream_id: u32,
}

impl Request {
    /// The message stream the request was made on (publish, play).
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }
}

/// What the connection did that the caller decides or acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Connect {
        request: Request,
        app: String,
    },
    Publish {
        request: Request,
        name: String,
    },
    Play {
        request: Request,
        name: String,
    },
    /// The publisher deleted or closed its stream.
    PublishFinished {
        stream_id: u32,
    },
    /// An audio or video message of the published stream: an FLV tag body.
    Media {
        video: bool,
        timestamp: u32,
        payload: Bytes,
    },
}

/// One connection's session state.
#[derive(Debug)]
pub struct Session {
    config: Config,
    reader: ChunkReader,
    out: Vec<u8>,
    /// The chunk size of what we write (128 until we announce ours).
    out_chunk_size: usize,
    connected: bool,
    streams: u32,
    publishing: Option<u32>,
    /// The peer's window acknowledgement size (0: none announced) and what we acknowledged.
    peer_window: u32,
    acked: u32,
    /// Bytes received when a ping was last answered.
    ponged: Option<u32>,
}

fn obj(props: &[(&str, Value)]) -> Value {
    Value::Object(
        props
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

fn text(s: &str) -> Value {
    Value::String(s.into())
}

fn status(level: &str, code: &str, description: &str) -> Value {
    obj(&[
        ("level", text(level)),
        ("code", text(code)),
        ("description", text(description)),
    ])
}

impl Session {
    pub fn new(config: Config) -> Self {
        Session {
            config,
            reader: ChunkReader::new(config.setup_limits),
            out: Vec::new(),
            out_chunk_size: DEFAULT_CHUNK_SIZE,
            connected: false,
            streams: 0,
            publishing: None,
            peer_window: 0,
            acked: 0,
            ponged: None,
        }
    }

    /// The bytes to send, taken.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// The bytes to send (the caller may send and clear them).
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Bytes the chunk reader holds for partial messages.
    pub fn pending(&self) -> usize {
        self.reader.pending()
    }

    /// Reads messages from the front of `input` until one raises an event (returned) or the
    /// bytes run out (`Ok(None)`). Answers that need no decision are appended to the output.
    pub fn poll(&mut self, input: &mut BytesMut) -> Result<Option<Event>, Error> {
        while let Some(m) = self.reader.read(input)? {
            self.acknowledge();
            if let Some(e) = self.message(m)? {
                return Ok(Some(e));
            }
        }
        self.acknowledge();
        Ok(None)
    }

    fn acknowledge(&mut self) {
        let received = self.reader.received();
        if self.peer_window > 0 && received.wrapping_sub(self.acked) >= self.peer_window {
            self.acked = received;
            self.control(ACK, &received.to_be_bytes());
        }
    }

    fn control(&mut self, type_id: u8, body: &[u8]) {
        let size = self.out_chunk_size;
        write::message(&mut self.out, CSID_CONTROL, type_id, 0, 0, body, size);
    }

    fn user_control(&mut self, event: u16, value: [u8; 4]) {
        let mut body = event.to_be_bytes().to_vec();
        body.extend_from_slice(&value);
        self.control(USER_CONTROL, &body);
    }

    fn command(&mut self, stream_id: u32, values: &[Value]) {
        let body = amf0::encode_all(values);
        let size = self.out_chunk_size;
        write::message(
            &mut self.out,
            CSID_COMMAND,
            COMMAND_AMF0,
            stream_id,
            0,
            &body,
            size,
        );
    }

    fn on_status(&mut self, stream_id: u32, info: Value) {
        self.command(
            stream_id,
            &[text("onStatus"), Value::Number(0.0), Value::Null, info],
        );
    }

    fn message(&mut self, m: Message) -> Result<Option<Event>, Error> {
        let be32 = |b: &[u8]| {
            b.get(..4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes)
        };
        match m.type_id {
            AUDIO | VIDEO if self.publishing == Some(m.stream_id) => Ok(Some(Event::Media {
                video: m.type_id == VIDEO,
                timestamp: m.timestamp,
                payload: m.payload,
            })),
            WINDOW_ACK_SIZE => {
                if let Some(w) = be32(&m.payload) {
                    self.peer_window = w.max(MIN_PEER_WINDOW);
                }
                Ok(None)
            }
            USER_CONTROL => {
                let event = m.payload.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
                let value = m.payload.get(2..6).and_then(|b| b.try_into().ok());
                let received = self.reader.received();
                let due = match self.ponged {
                    None => true,
                    Some(at) => received.wrapping_sub(at) >= PING_EVERY,
                };
                if let (Some(PING_REQUEST), Some(v), true) = (event, value, due) {
                    self.ponged = Some(received);
                    self.user_control(PING_RESPONSE, v);
                }
                Ok(None)
            }
            COMMAND_AMF0 => self.invoke(&m.payload, m.stream_id),
            COMMAND_AMF3 => self.invoke(m.payload.get(1..).unwrap_or_default(), m.stream_id),
            // Set Chunk Size and Abort (applied by the reader), acknowledgements, peer
            // bandwidth, data messages, media of no published stream, anything else.
            _ => Ok(None),
        }
    }

    fn invoke(&mut self, payload: &[u8], stream_id: u32) -> Result<Option<Event>, Error> {
        if payload.len() > MAX_COMMAND {
            return Err(Error::Command {
                name: String::new(),
                why: "a command message over 64 KiB",
            });
        }
        let values = amf0::decode_first(payload, COMMAND_VALUES)?;
        let Some(name) = values.first().and_then(Value::as_str) else {
            return Err(Error::Command {
                name: String::new(),
                why: "no command name",
            });
        };
        // The name is the peer's: only its start goes into the error (and the log).
        let bad = |why| Error::Command {
            name: name.chars().take(64).collect(),
            why,
        };
        let transaction = values.get(1).and_then(Value::as_number).unwrap_or(0.0);
        let request = |kind| Request {
            kind,
            transaction,
            stream_id,
        };
        // A command's arguments follow its transaction id and command object.
        let arg = |i: usize| values.get(3 + i);
        if name != "connect" && !self.connected {
            return Err(bad("before an accepted connect"));
        }
        match name {
            "connect" => {
                if self.connected {
                    return Err(bad("a second connect"));
                }
                let object = values.get(2).ok_or(bad("no command object"))?;
                let app = object.get("app").and_then(Value::as_str).unwrap_or("");
                Ok(Some(Event::Connect {
                    request: request(Kind::Connect),
                    app: app.to_string(),
                }))
            }
            "createStream" => {
                if self.streams >= MAX_STREAMS {
                    return Err(bad("too many streams"));
                }
                self.streams += 1;
                let id = f64::from(self.streams);
                self.command(
                    0,
                    &[
                        text("_result"),
                        Value::Number(transaction),
                        Value::Null,
                        Value::Number(id),
                    ],
                );
                Ok(None)
            }
            "publish" | "play" => {
                let stream = arg(0)
                    .and_then(Value::as_str)
                    .ok_or(bad("no stream name"))?;
                let name = stream.to_string();
                if stream_id == 0 || stream_id > self.streams {
                    return Err(bad("on a message stream that createStream did not make"));
                }
                if self.publishing.is_some() {
                    return Err(bad("while publishing"));
                }
                Ok(Some(
                    if values.first().and_then(Value::as_str) == Some("play") {
                        Event::Play {
                            request: request(Kind::Play),
                            name,
                        }
                    } else {
                        Event::Publish {
                            request: request(Kind::Publish),
                            name,
                        }
                    },
                ))
            }
            "deleteStream" | "closeStream" | "FCUnpublish" => {
                let id = match name {
                    "deleteStream" => arg(0).and_then(Value::as_number).map(|n| n as u32),
                    // Sent on the connection's stream 0 with the name (a client may close the
                    // connection right after it): the one stream this connection publishes.
                    "FCUnpublish" => self.publishing,
                    _ => Some(stream_id),
                };
                match self.publishing {
                    Some(p) if id == Some(p) => {
                        self.publishing = None;
                        Ok(Some(Event::PublishFinished { stream_id: p }))
                    }
                    _ => Ok(None),
                }
            }
            _ => Ok(None),
        }
    }

    /// Accepts a request from [`Event::Connect`], [`Event::Publish`] or [`Event::Play`].
    pub fn accept(&mut self, request: Request) {
        let txn = Value::Number(request.transaction);
        let id = request.stream_id;
        match request.kind {
            Kind::Connect => {
                self.connected = true;
                self.control(WINDOW_ACK_SIZE, &self.config.window_ack_size.to_be_bytes());
                let mut bw = self.config.peer_bandwidth.to_be_bytes().to_vec();
                bw.push(2);
                self.control(SET_PEER_BANDWIDTH, &bw);
                let size = self.config.chunk_size.clamp(1, 0x7fff_ffff);
                self.control(crate::chunk::SET_CHUNK_SIZE, &(size as u32).to_be_bytes());
                self.out_chunk_size = size;
                let props = obj(&[
                    ("fmsVer", text("FMS/3,0,1,123")),
                    ("capabilities", Value::Number(31.0)),
                ]);
                let mut info = status(
                    "status",
                    "NetConnection.Connect.Success",
                    "Connection succeeded.",
                );
                if let Value::Object(p) = &mut info {
                    p.push(("objectEncoding".into(), Value::Number(0.0)));
                }
                self.command(0, &[text("_result"), txn, props, info]);
            }
            Kind::Publish => {
                self.publishing = Some(id);
                self.reader.set_limits(self.config.limits);
                let info = status("status", "NetStream.Publish.Start", "Publishing.");
                self.on_status(id, info);
            }
            Kind::Play => {
                self.user_control(STREAM_BEGIN, id.to_be_bytes());
                let reset = status("status", "NetStream.Play.Reset", "Playing and resetting.");
                self.on_status(id, reset);
                let start = status("status", "NetStream.Play.Start", "Started playing.");
                self.on_status(id, start);
            }
        }
    }

    /// Refuses a request with an RTMP status `code` and a `description` (clients show it).
    pub fn refuse(&mut self, request: Request, code: &str, description: &str) {
        let info = status("error", code, description);
        match request.kind {
            Kind::Connect => {
                let txn = Value::Number(request.transaction);
                self.command(0, &[text("_error"), txn, Value::Null, info]);
            }
            Kind::Publish | Kind::Play => self.on_status(request.stream_id, info),
        }
    }
}
