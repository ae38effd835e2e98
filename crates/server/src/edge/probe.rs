//! Whether an origin is reachable, for `/readyz`: every [`PERIOD`], `GET /healthz` on each origin
//! in turn until one answers 200 within [`TIMEOUT`].

use super::upstream::{connect, TlsClient};
use super::{Edge, Origin};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PERIOD: Duration = Duration::from_secs(2);
const TIMEOUT: Duration = Duration::from_secs(2);

/// Probes until the server stops.
pub(super) async fn keep_probing(edge: Arc<Edge>) {
    let mut stop = edge.stop.subscribe();
    loop {
        let mut up = false;
        for o in &edge.config.origins {
            if tokio::time::timeout(TIMEOUT, healthy(o, &edge.tls)).await == Ok(true) {
                up = true;
                break;
            }
        }
        if edge.reachable.swap(up, Relaxed) != up {
            match up {
                true => tracing::info!("an origin is reachable; /readyz answers 200"),
                false => {
                    tracing::warn!(origins = ?edge.config.origins.iter().map(|o| &o.url).collect::<Vec<_>>(), "no origin answers /healthz; /readyz answers 503")
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(PERIOD) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Whether the origin answers `/healthz` with 200.
async fn healthy(origin: &Origin, tls: &TlsClient) -> bool {
    let Ok((mut sock, _)) = connect(origin, tls).await else {
        return false;
    };
    let req = format!(
        "GET {}/healthz HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
        origin.prefix, origin.authority
    );
    if sock.write_all(req.as_bytes()).await.is_err() || sock.flush().await.is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    let mut got = 0;
    while got < head.len() {
        match sock.read(&mut head[got..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    head[..got].starts_with(b"HTTP/1.1 200") || head[..got].starts_with(b"HTTP/1.0 200")
}
