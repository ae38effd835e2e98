//! RTMP ingest: the tokio shell around `rml_rtmp`'s sans-I/O handshake and server session, and
//! `media::flv::ToTs`, which turns the FLV tags into MPEG-TS for the same ring, viewers and HLS as
//! HTTP ingest.
//!
//! Why `rml_rtmp`: it is the proven Rust implementation of the handshake (plain and the digest
//! form), the chunk stream (all header types, extended timestamps, set chunk size, window
//! acknowledgements, abort) and the AMF0 command flow (`connect`, `releaseStream`, `FCPublish`,
//! `createStream`, `publish`, `deleteStream`, `FCUnpublish`, `@setDataFrame`); it takes bytes and
//! returns bytes and events, so it fits our sans-I/O shape. Its chunk reassembly copies each
//! payload once; the FLV → TS remux copies once more (one serialisation per stream, independent of
//! the number of viewers).
//!
//! Stream names and keys: `rtmp://host/live/NAME?key=SECRET` (what OBS users type as the stream
//! key `NAME?key=SECRET`); the same keys, one-publisher rule and reconnect grace as HTTP ingest.
//! Playback over RTMP and HTTP-FLV output are not implemented yet (a `play` is refused).

use crate::live::{End, Live, Publish};
use bytes::BytesMut;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// A connection must finish the handshake and ask to publish within this time.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one RTMP connection until it ends.
pub(crate) async fn connection(
    mut sock: TcpStream,
    peer: SocketAddr,
    live: Arc<Live>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut buf = vec![0u8; 64 << 10];
    // Handshake.
    let mut hs = Handshake::new(PeerType::Server);
    let rest = tokio::time::timeout(SETUP_TIMEOUT, async {
        loop {
            let n = sock.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed during the handshake".to_string());
            }
            match hs
                .process_bytes(&buf[..n])
                .map_err(|e| format!("handshake: {e:?}"))?
            {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    sock.write_all(&response_bytes)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    sock.write_all(&response_bytes)
                        .await
                        .map_err(|e| e.to_string())?;
                    return Ok(remaining_bytes);
                }
            }
        }
    })
    .await
    .map_err(|_| "no complete handshake within 10 s".to_string())??;

    let mut config = ServerSessionConfig::new();
    config.chunk_size = 4096;
    let (mut session, initial) = ServerSession::new(config).map_err(|e| format!("{e:?}"))?;
    let mut state = Session {
        peer,
        live,
        publish: None,
        ts: media::flv::ToTs::default(),
        out: Vec::new(),
        app: None,
        refused: None,
    };
    state.send(&mut sock, initial).await?;
    let mut input = rest;
    let setup_deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
    loop {
        if !input.is_empty() {
            let results = session
                .handle_input(&input)
                .map_err(|e| format!("rtmp: {e:?}"))?;
            if let Some(p) = &state.publish {
                p.stream
                    .stats
                    .bytes_in
                    .fetch_add(input.len() as u64, Relaxed);
            }
            let mut responses = Vec::new();
            for r in results {
                match r {
                    ServerSessionResult::OutboundResponse(p) => responses.push(p.bytes),
                    ServerSessionResult::RaisedEvent(e) => {
                        let more = state.event(&mut session, e)?;
                        responses.extend(more);
                    }
                    ServerSessionResult::UnhandleableMessageReceived(_) => {}
                }
            }
            for r in responses {
                sock.write_all(&r).await.map_err(|e| e.to_string())?;
            }
            if let Some(why) = state.refused.take() {
                return Err(why);
            }
        }
        let limit = match &state.publish {
            Some(_) => live_timeout(&state.live),
            None => setup_deadline.saturating_duration_since(tokio::time::Instant::now()),
        };
        let read = tokio::select! {
            r = tokio::time::timeout(limit, sock.read(&mut buf)) => r,
            _ = shutdown.changed() => {
                if let Some(p) = state.publish.take() {
                    p.finish(End::Clean);
                }
                return Ok(());
            }
        };
        match read {
            Err(_) if state.publish.is_none() => return Err("did not publish within 10 s".into()),
            Err(_) => {
                drop_publisher(&mut state, "no data");
                return Err("publisher sent nothing".into());
            }
            Ok(Ok(0)) | Ok(Err(_)) => {
                drop_publisher(&mut state, "connection closed");
                return Ok(());
            }
            Ok(Ok(n)) => input = buf[..n].to_vec(),
        }
    }
}

fn live_timeout(live: &Live) -> Duration {
    live.config.publisher_timeout
}

fn drop_publisher(state: &mut Session, why: &str) {
    if let Some(p) = state.publish.take() {
        p.finish(End::Dropped(why.into()));
    }
}

struct Session {
    peer: SocketAddr,
    live: Arc<Live>,
    publish: Option<Publish>,
    ts: media::flv::ToTs,
    out: Vec<u8>,
    app: Option<String>,
    /// Why the connection is to be closed once the pending responses are sent.
    refused: Option<String>,
}

impl Session {
    async fn send(
        &mut self,
        sock: &mut TcpStream,
        results: Vec<ServerSessionResult>,
    ) -> Result<(), String> {
        for r in results {
            if let ServerSessionResult::OutboundResponse(p) = r {
                sock.write_all(&p.bytes).await.map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    /// Handles one session event; returns bytes to send.
    fn event(
        &mut self,
        session: &mut ServerSession,
        e: ServerSessionEvent,
    ) -> Result<Vec<Vec<u8>>, String> {
        let packets = |r: Vec<ServerSessionResult>| -> Vec<Vec<u8>> {
            r.into_iter()
                .filter_map(|x| match x {
                    ServerSessionResult::OutboundResponse(p) => Some(p.bytes),
                    _ => None,
                })
                .collect()
        };
        match e {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                if app_name.trim_matches('/') != "live" {
                    let r = session
                        .reject_request(
                            request_id,
                            "NetConnection.Connect.Rejected",
                            "the application is 'live': rtmp://host/live/NAME",
                        )
                        .map_err(|e| format!("{e:?}"))?;
                    self.refused = Some(format!("unknown application '{app_name}'"));
                    return Ok(packets(r));
                }
                self.app = Some(app_name);
                Ok(packets(
                    session
                        .accept_request(request_id)
                        .map_err(|e| format!("{e:?}"))?,
                ))
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                stream_key,
                ..
            } => {
                let (name, key) = split_key(&stream_key);
                let admitted = self
                    .live
                    .authorize(name, key.as_deref(), self.peer.ip())
                    .and_then(|()| self.live.begin_publish(name, self.peer));
                match admitted {
                    Ok(p) => {
                        self.publish = Some(p);
                        Ok(packets(
                            session
                                .accept_request(request_id)
                                .map_err(|e| format!("{e:?}"))?,
                        ))
                    }
                    Err(e) => {
                        tracing::info!(stream = name, peer = %self.peer, error = %e, "RTMP publish refused");
                        let code = match e.status().as_u16() {
                            409 => "NetStream.Publish.BadName",
                            _ => "NetStream.Publish.Unauthorized",
                        };
                        let r = session
                            .reject_request(request_id, code, &e.to_string())
                            .map_err(|e| format!("{e:?}"))?;
                        self.refused = Some(e.to_string());
                        Ok(packets(r))
                    }
                }
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                self.media(true, &data, timestamp.value)?;
                Ok(Vec::new())
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                self.media(false, &data, timestamp.value)?;
                Ok(Vec::new())
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                if let Some(p) = self.publish.take() {
                    p.finish(End::Clean);
                }
                Ok(Vec::new())
            }
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                let r = session
                    .reject_request(request_id, "NetStream.Play.Failed", "RTMP playback is not supported yet; watch /live/NAME.ts or /live/NAME/index.m3u8 over HTTP")
                    .map_err(|e| format!("{e:?}"))?;
                self.refused = Some("play is not supported".into());
                Ok(packets(r))
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Remuxes one FLV tag to TS and publishes the packets.
    fn media(&mut self, video: bool, data: &[u8], ms: u32) -> Result<(), String> {
        let Some(publish) = self.publish.as_mut() else {
            return Ok(());
        };
        self.out.clear();
        let r = if video {
            self.ts.video(data, ms, &mut self.out)
        } else {
            self.ts.audio(data, ms, &mut self.out)
        };
        if let Err(e) = r {
            let why = format!("bad {} tag: {e}", if video { "video" } else { "audio" });
            if let Some(p) = self.publish.take() {
                p.finish(End::Refused(why.clone()));
            }
            return Err(why);
        }
        if !self.out.is_empty() {
            let packets = BytesMut::from(bytes::Bytes::from(std::mem::take(&mut self.out)));
            if let Err(why) = publish.publish_packets(packets, &self.live) {
                if let Some(p) = self.publish.take() {
                    p.finish(End::Refused(why.clone()));
                }
                return Err(why);
            }
        }
        Ok(())
    }
}

/// `NAME?key=SECRET` → (`NAME`, `SECRET`).
fn split_key(stream_key: &str) -> (&str, Option<String>) {
    match stream_key.split_once('?') {
        None => (stream_key, None),
        Some((name, query)) => {
            let key = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("key="))
                .map(|v| {
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned()
                });
            (name, key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_split_like_obs_users_type_them() {
        assert_eq!(split_key("show"), ("show", None));
        assert_eq!(split_key("show?key=a%20b"), ("show", Some("a b".into())));
        assert_eq!(split_key("show?x=1&key=k"), ("show", Some("k".into())));
    }
}
