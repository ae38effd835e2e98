//! The RTMP player (`--output rtmp`): rml_rtmp's client handshake and session, `connect` then
//! `play` of `live/{stream}` on the `--rtmp` server, counting the audio and video it gets and
//! noting the first video keyframe. Structure is rml_rtmp's to check; there are no continuity
//! counters.

use crate::http::connect;
use crate::report::{Shared, ViewerStats};
use anyhow::{bail, Result};
use media::flv::wire::classify;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// An RTMP player (rml_rtmp's client session): connect, play, count the media it gets.
pub async fn viewer(
    addr: SocketAddr,
    bind: Option<IpAddr>,
    stream: &str,
    read_size: usize,
    st: &ViewerStats,
    sh: &Shared,
) -> Result<()> {
    use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
    use rml_rtmp::sessions::{
        ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
    };
    let start = Instant::now();
    let mut s = connect(addr, bind).await?;
    let mut buf = vec![0u8; read_size];
    let mut hs = Handshake::new(PeerType::Client);
    s.write_all(
        &hs.generate_outbound_p0_and_p1()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
    )
    .await?;
    let rest = loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            bail!("closed during the handshake");
        }
        match hs
            .process_bytes(&buf[..n])
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                s.write_all(&response_bytes).await?
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                s.write_all(&response_bytes).await?;
                break remaining_bytes;
            }
        }
    };
    let mut config = ClientSessionConfig::new();
    config.tc_url = Some(format!("rtmp://{addr}/live"));
    let (mut session, initial) =
        ClientSession::new(config).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut out: Vec<u8> = Vec::new();
    let push = |r: ClientSessionResult, out: &mut Vec<u8>| {
        if let ClientSessionResult::OutboundResponse(p) = r {
            out.extend_from_slice(&p.bytes);
        }
    };
    for r in initial {
        push(r, &mut out);
    }
    push(
        session
            .request_connection("live".into())
            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
        &mut out,
    );
    s.write_all(&out).await?;
    let mut input = rest;
    loop {
        out.clear();
        if !input.is_empty() {
            for r in session
                .handle_input(&input)
                .map_err(|e| anyhow::anyhow!("{e:?}"))?
            {
                match r {
                    ClientSessionResult::RaisedEvent(
                        ClientSessionEvent::ConnectionRequestAccepted,
                    ) => {
                        let r = session
                            .request_playback(stream.to_string())
                            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                        push(r, &mut out);
                    }
                    ClientSessionResult::RaisedEvent(ClientSessionEvent::VideoDataReceived {
                        data,
                        ..
                    }) => {
                        st.bytes.fetch_add(data.len() as u64, Relaxed);
                        if classify(true, &data).keyframe && st.first_keyframe_us.load(Relaxed) == 0
                        {
                            st.first_keyframe_us
                                .store(start.elapsed().as_micros().max(1) as u64, Relaxed);
                        }
                    }
                    ClientSessionResult::RaisedEvent(ClientSessionEvent::AudioDataReceived {
                        data,
                        ..
                    }) => {
                        st.bytes.fetch_add(data.len() as u64, Relaxed);
                    }
                    ClientSessionResult::RaisedEvent(
                        ClientSessionEvent::ConnectionRequestRejected { description },
                    ) => {
                        bail!("connect rejected: {description}");
                    }
                    other => push(other, &mut out),
                }
            }
            if !out.is_empty() {
                s.write_all(&out).await?;
            }
        }
        if sh.stop.load(Relaxed) {
            return Ok(());
        }
        let n = s.read(&mut buf).await?;
        if n == 0 {
            st.ended.store(true, Relaxed);
            return Ok(());
        }
        input = buf[..n].to_vec();
    }
}
