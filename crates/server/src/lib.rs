//! zerocast's server: a video library held in memory, served over HTTP/1.1 with RFC 9110 ranges,
//! and resolved by time through the media crate's seek indexes.
//!
//! The shell is thin: [`entity::decide`] and the [`range`]/[`precondition`] modules are pure
//! functions, and so are the live and media crates underneath; this module only binds the
//! listeners, accepts connections and hands each to a worker (see workers.rs).

mod accept;
mod admit;
mod answer;
pub mod api;
pub mod auth;
pub mod body;
mod clip;
mod config;
mod conns;
pub mod cors;
mod date;
pub mod edge;
pub mod entity;
pub mod error;
pub mod etags;
mod h1;
mod h2;
mod heads;
pub mod http;
mod hyper_paths;
mod jwks;
pub mod library;
pub mod live;
mod outbound;
pub mod package;
mod pagein;
pub mod precondition;
pub mod range;
pub mod recent;
pub mod record;
mod record_metrics;
pub mod reload;
mod rendered;
mod response;
mod rtmp_conn;
pub mod shmem;
mod shutdown;
mod state;
pub mod store;
pub mod tls;
mod transport;
pub mod truncated;
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

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A bound server, ready to run.
pub struct Server {
    /// Plain HTTP (`None` when off).
    listener: Option<TcpListener>,
    rtmp: Option<TcpListener>,
    https: Vec<TcpListener>,
    rtmps: Option<TcpListener>,
    state: Arc<State>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .finish()
    }
}

/// The server's listening sockets (HTTP, HTTPS, RTMP, RTMPS: those that are on) and the TLS
/// certificate, bound and read before the library loads so that a port in use or a bad
/// certificate is reported at once, not after minutes of loading.
pub struct Listeners {
    http: Option<TcpListener>,
    rtmp: Option<TcpListener>,
    https: Vec<TcpListener>,
    rtmps: Option<TcpListener>,
    tls: Option<Arc<tls::Tls>>,
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
    /// Binds `config.listen` (when plain HTTP is on), `config.rtmp_listen` (when on) and the TLS
    /// listeners, and reads the certificate.
    pub fn bind(config: &Config) -> Result<Listeners, StartError> {
        let bind = |addr| {
            listen(addr, config.listen_backlog).map_err(|error| StartError::Bind { addr, error })
        };
        let http = match config.plain_http {
            true => Some(bind(config.listen)?),
            false => None,
        };
        let https = match &config.tls {
            Some(t) => t
                .listen
                .iter()
                .map(|a| bind(*a))
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        // The first HTTPS listener's port is where plain HTTP redirects to.
        let port = https
            .first()
            .and_then(|l: &TcpListener| l.local_addr().ok())
            .map(|a| a.port());
        let tls = match &config.tls {
            Some(t) => Some(Arc::new(
                tls::Tls::new(t.clone(), port).map_err(StartError::Tls)?,
            )),
            None => None,
        };
        let rtmps = match config.tls.as_ref().and_then(|t| t.rtmps_listen) {
            Some(addr) => Some(
                listen(addr, config.listen_backlog)
                    .map_err(|error| StartError::RtmpBind { addr, error })?,
            ),
            None => None,
        };
        let rtmp = match config.rtmp_listen {
            Some(addr) => Some(
                listen(addr, config.listen_backlog)
                    .map_err(|error| StartError::RtmpBind { addr, error })?,
            ),
            None => None,
        };
        Ok(Listeners {
            http,
            rtmp,
            https,
            rtmps,
            tls,
        })
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
            https,
            rtmps,
            tls,
        } = listeners;
        let mut state = State::new(
            library,
            Arc::new(live::Live::new(config.live.clone())),
            Arc::new(conns::Conns::new(
                config.max_connections,
                config.worker_count(),
            )),
            Arc::new(vod_metrics::VodMetrics::default()),
            tls,
            config,
        );
        state.edge = state
            .config()
            .edge
            .clone()
            .map(|c| Arc::new(edge::Edge::new(c, state.live.clone())));
        state.rtmp_port = rtmp
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port());
        let state = Arc::new(state);
        // New streams are offered to the recorders (a weak reference: the state owns the hook).
        let weak = Arc::downgrade(&state);
        let _ = state
            .live
            .on_new_stream
            .set(live::NewStream(Box::new(move |s| {
                if let Some(state) = weak.upgrade() {
                    record::start(&state, s);
                }
            })));
        Server {
            listener,
            rtmp,
            https,
            rtmps,
            state,
        }
    }

    /// The RTMP listener's address, when RTMP is on.
    pub fn rtmp_addr(&self) -> Option<SocketAddr> {
        self.rtmp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The HTTPS listeners' addresses.
    pub fn https_addrs(&self) -> Vec<SocketAddr> {
        self.https
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The RTMPS listener's address, when on.
    pub fn rtmps_addr(&self) -> Option<SocketAddr> {
        self.rtmps.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves titles from object storage: lists every source now (indexing what it finds), and
    /// again on the sources' interval while the server runs, and on SIGHUP (`Reload::relist`).
    /// Waits at most `wait` for the first listing: a store with many titles to index, or one
    /// that stalls, must not keep the server from serving everything else; the listing goes on,
    /// its titles are served once it ends, and that is logged (`None` is returned then, and
    /// when stores were set already). Call once, before `run`.
    pub async fn set_stores(
        &self,
        stores: store::Stores,
        wait: std::time::Duration,
    ) -> Option<library::Listing> {
        if self.state.stores.set(Arc::new(stores)).is_err() {
            return None;
        }
        let reload = self.reloader();
        let mut listing = tokio::spawn(async move { reload.relist().await });
        match tokio::time::timeout(wait, &mut listing).await {
            Ok(listed) => listed.ok().flatten(),
            Err(_) => {
                tracing::warn!(
                    waited = wait.as_secs_f64(),
                    "object storage is still being listed; serving the rest meanwhile"
                );
                tokio::spawn(async move {
                    if let Ok(Some(r)) = listing.await {
                        tracing::info!(
                            titles = r.titles,
                            seconds = r.took.as_secs_f64(),
                            "object storage listed"
                        );
                    }
                });
                None
            }
        }
    }

    /// Applies new settings and library rescans to the running server (SIGHUP, library watch).
    pub fn reloader(&self) -> reload::Reload {
        reload::Reload::new(self.state.clone())
    }

    /// Reloads the TLS certificate (SIGHUP); `None` without TLS.
    pub fn tls_reloader(&self) -> Option<tls::Reloader> {
        self.state.tls.clone().map(tls::Reloader::new)
    }

    /// The live streams (for inspection: tests, metrics).
    pub fn live(&self) -> Arc<live::Live> {
        self.state.live.clone()
    }

    /// The plain HTTP listener's address (the first HTTPS one when plain HTTP is off).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .iter()
            .chain(&self.https)
            .find_map(|l| l.local_addr().ok())
            .unwrap_or(self.state.config().listen)
    }

    /// Serves until `shutdown` completes or the control API asks for a drain; then drains:
    /// `/readyz` answers 503 for `drain_delay` while everything is still served, then accepting
    /// stops, live viewers' responses end cleanly, and in-flight responses get the grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let drained = {
            let state = self.state.clone();
            async move {
                tokio::select! {
                    () = shutdown => {}
                    () = state.drain.notified() => {}
                }
                state
                    .draining
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                let delay = state.config().drain_delay;
                tracing::info!(
                    ?delay,
                    "draining: /readyz answers 503; accepting stops after the delay"
                );
                tokio::time::sleep(delay).await;
            }
        };
        let shutdown = drained;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // Every connection task holds a clone; the count tells when all have finished.
        let active = Arc::new(());
        let workers = match workers::Workers::start(self.state.config().worker_count()) {
            Ok(w) => Arc::new(w),
            Err(e) => {
                tracing::error!(error = %e, "could not start worker threads; serving on the main runtime");
                Arc::new(workers::Workers::none())
            }
        };
        let mut loops = Vec::new();
        let ended = |stop: &tokio::sync::watch::Receiver<bool>| {
            let mut stop = stop.clone();
            async move {
                let _ = stop.changed().await;
            }
        };
        let rtmp = self.rtmp.into_iter().map(|l| (l, false));
        for (listener, secure) in rtmp.chain(self.rtmps.into_iter().map(|l| (l, true))) {
            let tls = if secure { self.state.tls.clone() } else { None };
            let (server, stopped, active) = (self.state.clone(), stopped.clone(), active.clone());
            let (workers, conns) = (workers.clone(), self.state.conns.clone());
            let until = ended(&stopped);
            loops.push(tokio::spawn(async move {
                accept::run(
                    &listener,
                    accept::Proto::Rtmp,
                    conns,
                    until,
                    |sock, peer, admitted| {
                        let _ = sock.set_nodelay(true);
                        let (server, stopped, guard) =
                            (server.clone(), stopped.clone(), active.clone());
                        let tls = tls.clone();
                        workers.spawn(sock, move |sock| async move {
                            let served = async {
                                let sock = match &tls {
                                    Some(tls) => tls.accept(sock, true).await?,
                                    None => transport::Transport::Plain(sock),
                                };
                                rtmp_conn::connection(sock, peer, server, stopped).await
                            };
                            if let Err(e) = served.await {
                                tracing::info!(%peer, error = %e, "RTMP connection ended");
                            }
                            drop((guard, admitted));
                        });
                    },
                )
                .await;
            }));
        }
        if let Some(tls) = &self.state.tls {
            loops.push(tokio::spawn(tls::Reloader::new(tls.clone()).watch()));
        }
        loops.push(tokio::spawn(jwks::keep_fresh(self.state.clone())));
        loops.extend(truncated::watching(self.state.library_changed.clone()));
        if self
            .state
            .config()
            .record
            .iter()
            .any(|r| r.upload.is_some())
        {
            // Finished recordings their bucket lacks: at start, then on the relist interval.
            let every = self
                .state
                .config()
                .store
                .relist
                .unwrap_or(Duration::from_secs(300));
            loops.push(tokio::spawn(record::reconcile_uploads(
                self.state.clone(),
                every,
            )));
        }
        if let Some(every) = self.state.stores.get().and_then(|s| s.relist) {
            let reload = reload::Reload::new(self.state.clone());
            loops.push(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    if let Some(r) = reload.relist().await {
                        tracing::debug!(
                            titles = r.titles,
                            indexed = r.indexed,
                            "object storage relisted"
                        );
                    }
                }
            }));
        }
        if let Some(edge) = &self.state.edge {
            loops.push(edge.run());
        }
        let plain = self.listener.into_iter().map(|l| (l, false));
        let mut http: Vec<_> = plain
            .chain(self.https.into_iter().map(|l| (l, true)))
            .collect();
        // The first HTTP listener's loop runs here, until `shutdown`; the others are tasks.
        let first = if http.is_empty() {
            None
        } else {
            Some(http.remove(0))
        };
        for (listener, secure) in http {
            let serve = serve_http(&self.state, &workers, &stopped, &active, secure);
            let conns = self.state.conns.clone();
            let until = ended(&stopped);
            loops.push(tokio::spawn(async move {
                let proto = if secure {
                    accept::Proto::Tls
                } else {
                    accept::Proto::Http
                };
                accept::run(&listener, proto, conns, until, serve).await;
            }));
        }
        match first {
            Some((listener, secure)) => {
                let serve = serve_http(&self.state, &workers, &stopped, &active, secure);
                let conns = self.state.conns.clone();
                let proto = if secure {
                    accept::Proto::Tls
                } else {
                    accept::Proto::Http
                };
                accept::run(&listener, proto, conns, shutdown, serve).await;
            }
            None => shutdown.await,
        }
        tracing::info!("shutting down: no new connections, waiting for in-flight responses");
        let _ = stop.send(true);
        if let Some(edge) = &self.state.edge {
            // Pulled streams end cleanly, as their viewers' responses do.
            edge.stop();
        }
        for l in loops {
            // Accept loops end on the stop signal (their listeners closed); the watcher is ended.
            l.abort();
            let _ = l.await;
        }
        shutdown::drain(&self.state, &active).await;
        // What is still open after the grace period ends with its worker's runtime.
        workers.stop();
    }
}

/// What an HTTP or HTTPS accept loop does with a connection: hand it to a worker, which runs the
/// TLS handshake (HTTPS) and then HTTP/2 (when ALPN chose it) or the HTTP/1.1 loop.
fn serve_http(
    state: &Arc<State>,
    workers: &Arc<workers::Workers>,
    stopped: &tokio::sync::watch::Receiver<bool>,
    active: &Arc<()>,
    secure: bool,
) -> impl FnMut(tokio::net::TcpStream, SocketAddr, conns::Admitted) {
    let (state, workers, stopped, active) = (
        state.clone(),
        workers.clone(),
        stopped.clone(),
        active.clone(),
    );
    move |stream, peer, admitted| {
        let _ = stream.set_nodelay(true);
        let (state, stopped, guard) = (state.clone(), stopped.clone(), active.clone());
        workers.spawn(stream, move |stream| async move {
            if let Err(e) = connection(stream, peer, state, stopped, secure).await {
                // Clients close connections whenever they like (a browser abandons a range
                // request at every seek); that is not a server error.
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            drop((guard, admitted));
        });
    }
}

/// One accepted HTTP connection, plain or TLS, to its end. Its future is what every idle
/// connection costs: the TLS handshake (3 KiB of future) is boxed, so that a plain connection
/// does not carry room for it (docs/benchmarks.md §10).
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
    stopped: tokio::sync::watch::Receiver<bool>,
    secure: bool,
) -> Result<(), ConnError> {
    let tls = match &state.tls {
        Some(tls) if secure => tls.clone(),
        _ => {
            let plain = transport::Transport::Plain(stream);
            return h1::connection(plain, peer, state, stopped)
                .await
                .map_err(ConnError::from);
        }
    };
    let stream = Box::pin(tls.accept(stream, false)).await?;
    if h2::chosen(&stream) {
        tls.stats
            .h2
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Box::pin(h2::connection(stream, peer, state, stopped)).await;
    }
    Box::pin(h1::connection(stream, peer, state, stopped))
        .await
        .map_err(ConnError::from)
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
        let _second = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        let listener = server.listener.as_ref().unwrap();
        let (sock, peer) = listener.accept().await.unwrap();
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        let plain = transport::Transport::Plain(sock);
        let fut = h1::connection(plain, peer, server.state.clone(), stopped.clone());
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 2048, "h1::connection's future is {size} bytes");
        drop(fut);
        // The whole task of an accepted connection (TLS or not): no room for a TLS handshake.
        let (sock, peer) = listener.accept().await.unwrap();
        let fut = connection(sock, peer, server.state.clone(), stopped, false);
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 2304, "a connection's task future is {size} bytes");
    }
}
