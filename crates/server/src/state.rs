//! What every connection of a running server shares.

use crate::config::Config;
use crate::library::Library;
use crate::live::Live;
use std::sync::Arc;

/// The library, the live registry and the settings, shared by every connection.
pub(crate) struct State {
    pub library: Library,
    pub live: Arc<Live>,
    pub config: Config,
    /// Open connections, their cap and counters.
    pub conns: Arc<crate::conns::Conns>,
    /// `/videos/*` answers and their body bytes (`/metrics`).
    pub vod: Arc<crate::vod_metrics::VodMetrics>,
    /// HTTPS/RTMPS: certificate, acceptors, counters (`None`: no TLS).
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// hyper's HTTP/1.1 settings, for the requests the fast path hands over (see h1/handover.rs).
    pub http: hyper::server::conn::http1::Builder,
}
