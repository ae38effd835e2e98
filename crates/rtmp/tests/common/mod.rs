//! Test helpers: chunk and command builders, and a server session driven like the shell does,
//! whose answers are read back with our own chunk reader.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use rtmp::amf0::{self, Value};
use rtmp::{ChunkReader, Config, Event, Limits, Message, Session};

/// A chunk with a type 0 header (csid < 64) and the given payload (what of the message this
/// chunk carries).
pub fn chunk0(
    csid: u8,
    ts: u32,
    type_id: u8,
    stream_id: u32,
    length: usize,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = vec![csid];
    let field = ts.min(0xff_ffff);
    b.extend_from_slice(&field.to_be_bytes()[1..]);
    b.extend_from_slice(&(length as u32).to_be_bytes()[1..]);
    b.push(type_id);
    b.extend_from_slice(&stream_id.to_le_bytes());
    if field == 0xff_ffff {
        b.extend_from_slice(&ts.to_be_bytes());
    }
    b.extend_from_slice(payload);
    b
}

pub fn s(x: &str) -> Value {
    Value::String(x.into())
}

pub fn n(x: f64) -> Value {
    Value::Number(x)
}

/// An AMF0 command message (type 20) on chunk stream 3, in chunks of 128 bytes.
pub fn command(stream_id: u32, values: &[Value]) -> Vec<u8> {
    let body = amf0::encode_all(values);
    let mut out = Vec::new();
    rtmp::write::message(&mut out, 3, 20, stream_id, 0, &body, 128);
    out
}

pub fn connect(app: &str) -> Vec<u8> {
    command(
        0,
        &[
            s("connect"),
            n(1.0),
            Value::Object(vec![("app".into(), s(app))]),
        ],
    )
}

/// What ffmpeg sends to publish `name` on stream 1, all at once (pipelined).
pub fn publish_commands(name: &str) -> Vec<u8> {
    let mut b = connect("live");
    b.extend(command(
        0,
        &[s("releaseStream"), n(2.0), Value::Null, s(name)],
    ));
    b.extend(command(0, &[s("FCPublish"), n(3.0), Value::Null, s(name)]));
    b.extend(command(0, &[s("createStream"), n(4.0), Value::Null]));
    b.extend(command(
        1,
        &[s("publish"), n(5.0), Value::Null, s(name), s("live")],
    ));
    b
}

/// A server session, fed like the shell feeds it; accepts everything unless told otherwise.
pub struct Server {
    pub session: Session,
    pub input: BytesMut,
    pub events: Vec<Event>,
    /// What the server sent, as messages (read back with a chunk reader).
    pub sent: Vec<Message>,
    client_reader: ChunkReader,
    sent_bytes: BytesMut,
    /// Bytes the server sent in all.
    sent_total: usize,
    pub refuse_publish: Option<&'static str>,
}

impl Server {
    pub fn new() -> Self {
        Server {
            session: Session::new(Config::default()),
            input: BytesMut::new(),
            events: Vec::new(),
            sent: Vec::new(),
            client_reader: ChunkReader::new(Limits::default()),
            sent_bytes: BytesMut::new(),
            sent_total: 0,
            refuse_publish: None,
        }
    }

    /// Feeds one read (chunk stream bytes, after the handshake).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), rtmp::Error> {
        self.input.extend_from_slice(bytes);
        while let Some(e) = self.session.poll(&mut self.input)? {
            match &e {
                Event::Connect { request, .. } | Event::Play { request, .. } => {
                    self.session.accept(*request)
                }
                Event::Publish { request, .. } => match self.refuse_publish {
                    Some(code) => self.session.refuse(*request, code, "no"),
                    None => self.session.accept(*request),
                },
                _ => {}
            }
            self.events.push(e);
        }
        let out = self.session.take_output();
        self.sent_total += out.len();
        self.sent_bytes.extend_from_slice(&out);
        while let Some(m) = self.client_reader.read(&mut self.sent_bytes).unwrap() {
            self.sent.push(m);
        }
        Ok(())
    }

    /// Bytes the server sent in all.
    pub fn sent_len(&self) -> usize {
        self.sent_total
    }

    /// The commands the server sent: (message stream, AMF0 values).
    pub fn commands(&self) -> Vec<(u32, Vec<Value>)> {
        self.sent
            .iter()
            .filter(|m| m.type_id == 20)
            .map(|m| (m.stream_id, amf0::decode_all(&m.payload).unwrap()))
            .collect()
    }

    /// The `code` of each onStatus / _result / _error info object the server sent.
    pub fn codes(&self) -> Vec<String> {
        self.commands()
            .iter()
            .filter_map(|(_, v)| v.get(3)?.get("code")?.as_str().map(String::from))
            .collect()
    }

    /// (video, timestamp, payload) of the media events.
    pub fn media(&self) -> Vec<(bool, u32, Bytes)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Media {
                    video,
                    timestamp,
                    payload,
                } => Some((*video, *timestamp, payload.clone())),
                _ => None,
            })
            .collect()
    }
}
