//! zerocast's server: a video library held in memory, served over HTTP/1.1 with RFC 9110 ranges,
//! and resolved by time through the media crate's seek indexes.
//!
//! The shell is thin: [`entity::decide`] and the [`range`]/[`precondition`] modules are pure
//! functions, and so are the live and media crates underneath; this module only binds the
//! listeners, accepts connections and hands each to a worker (see workers.rs).

mod accept;
pub mod api;
pub mod auth;
pub mod body;
mod clip;
mod config;
mod conns;
pub mod cors;
mod date;
pub mod entity;
pub mod error;
mod h1;
pub mod http;
pub mod library;
pub mod live;
pub mod precondition;
pub mod range;
mod response;
mod state;
mod vectored;
mod vod_metrics;
mod workers;

/// Entry points for the fuzz targets in `fuzz/`; not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    /// The HTTP/1.1 fast path's head parser and classifier over arbitrary bytes.
    pub fn http_head(buf: &[u8]) {
        crate::h1::fuzz_head(buf);
    }
}

pub use config::Config;
pub use entity::{Entity, Policy};
pub use error::{ConnError, Error, Result, StartError};
pub use library::{default_cache_budget, Library, LoadEvent, Title};

use state::State;

use hyper_util::rt::TokioTimer;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    rtmp: Option<TcpListener>,
    state: Arc<State>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .finish()
    }
}

/// The server's listening sockets (HTTP, and RTMP when on), bound before the library loads so
/// that a port in use is reported at once, not after minutes of loading.
pub struct Listeners {
    http: TcpListener,
    rtmp: Option<TcpListener>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("http", &self.http)
            .field("rtmp", &self.rtmp)
            .finish()
    }
}

impl Listeners {
    /// Binds `config.listen` and, when on, `config.rtmp_listen`.
    pub fn bind(config: &Config) -> Result<Listeners, StartError> {
        let http =
            listen(config.listen, config.listen_backlog).map_err(|error| StartError::Bind {
                addr: config.listen,
                error,
            })?;
        let rtmp = match config.rtmp_listen {
            Some(addr) => Some(
                listen(addr, config.listen_backlog)
                    .map_err(|error| StartError::RtmpBind { addr, error })?,
            ),
            None => None,
        };
        Ok(Listeners { http, rtmp })
    }
}

impl Server {
    /// Binds the listeners and makes the server: [`Listeners::bind`] then [`Server::new`].
    pub async fn bind(config: Config, library: Library) -> Result<Server, StartError> {
        let listeners = Listeners::bind(&config)?;
        Ok(Server::new(config, listeners, library))
    }

    /// The server on listeners already bound (with the same `config`).
    pub fn new(config: Config, listeners: Listeners, library: Library) -> Server {
        let Listeners {
            http: listener,
            rtmp,
        } = listeners;
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout)
            .keep_alive(true)
            // Queue body `Bytes` and hand them to writev: no flattening copy (see body.rs).
            .writev(true);
        Server {
            listener,
            rtmp,
            state: Arc::new(State {
                live: Arc::new(live::Live::new(config.live.clone())),
                conns: Arc::new(conns::Conns::new(config.max_connections)),
                vod: Arc::new(vod_metrics::VodMetrics::default()),
                library,
                config,
                http,
            }),
        }
    }

    /// The RTMP listener's address, when RTMP is on.
    pub fn rtmp_addr(&self) -> Option<SocketAddr> {
        self.rtmp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The live streams (for inspection: tests, metrics).
    pub fn live(&self) -> Arc<live::Live> {
        self.state.live.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.listen)
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight responses finish
    /// within the grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // Every connection task holds a clone; the count tells when all have finished.
        let active = Arc::new(());
        let count = match self.state.config.workers {
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let workers = match workers::Workers::start(count) {
            Ok(w) => Arc::new(w),
            Err(e) => {
                tracing::error!(error = %e, "could not start worker threads; serving on the main runtime");
                Arc::new(workers::Workers::none())
            }
        };
        if let Some(rtmp) = self.rtmp {
            let (live, stopped, active) =
                (self.state.live.clone(), stopped.clone(), active.clone());
            let (workers, conns) = (workers.clone(), self.state.conns.clone());
            tokio::spawn(async move {
                let mut stop = stopped.clone();
                let until = async move {
                    let _ = stop.changed().await;
                };
                accept::run(
                    &rtmp,
                    accept::Proto::Rtmp,
                    conns,
                    until,
                    |sock, peer, admitted| {
                        let _ = sock.set_nodelay(true);
                        let (live, stopped, guard) =
                            (live.clone(), stopped.clone(), active.clone());
                        workers.spawn(sock, move |sock| async move {
                            if let Err(e) = live::rtmp::connection(sock, peer, live, stopped).await
                            {
                                tracing::info!(%peer, error = %e, "RTMP connection ended");
                            }
                            drop((guard, admitted));
                        });
                    },
                )
                .await;
            });
        }
        let conns = self.state.conns.clone();
        accept::run(
            &self.listener,
            accept::Proto::Http,
            conns,
            shutdown,
            |stream, peer, admitted| {
                let _ = stream.set_nodelay(true);
                let state = self.state.clone();
                let stopped = stopped.clone();
                let guard = active.clone();
                workers.spawn(stream, move |stream| async move {
                    if let Err(e) = h1::connection(stream, peer, state, stopped).await {
                        // Clients close connections whenever they like (a browser abandons a range
                        // request at every seek); that is not a server error.
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                    drop((guard, admitted));
                });
            },
        )
        .await;
        drop(self.listener);
        tracing::info!("shutting down: no new connections, waiting for in-flight responses");
        let _ = stop.send(true);
        let grace = self.state.config.shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace;
        while Arc::strong_count(&active) > 1 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    ?grace,
                    open = Arc::strong_count(&active) - 1,
                    "grace period over; closing the remaining connections"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // What is still open after the grace period ends with its worker's runtime.
        workers.stop();
    }
}

/// A listening socket with SO_REUSEADDR (as `TcpListener::bind` sets it) and our accept-queue
/// length: tokio's `bind` asks for 1,024, which overflows when thousands connect at once.
fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(backlog)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle keep-alive connection is mostly its task's future (the read buffer is released
    /// between requests), so that future must stay small: the long-lived live paths and hyper's
    /// hand-over are boxed, and the header array lives outside it. 10,000 idle connections are
    /// measured in docs/benchmarks.md (≤ 4 KiB each, all included).
    #[tokio::test]
    async fn an_idle_connection_future_stays_small() {
        let config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            rtmp_listen: None,
            ..Config::default()
        };
        let server = Server::bind(
            config,
            Library::from_static(&[], std::time::SystemTime::now()),
        )
        .await
        .unwrap();
        let _client = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        let (sock, peer) = server.listener.accept().await.unwrap();
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        let fut = h1::connection(sock, peer, server.state.clone(), stopped);
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 2048, "h1::connection's future is {size} bytes");
    }
}
