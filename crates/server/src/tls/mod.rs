//! HTTPS and RTMPS with rustls: the listeners' settings ([`TlsConfig`]), the two acceptors (HTTPS
//! offers ALPN `h2` and `http/1.1`; RTMPS offers none, as RTMP clients send none), the handshake
//! with its deadline, certificate reloads (reload.rs) and the `/metrics` counters.
//!
//! TLS 1.2 and 1.3 only, ring's cipher suites (AES-GCM and ChaCha20-Poly1305), session
//! resumption by tickets (TLS 1.3) and a session cache (TLS 1.2).
//!
//! Encryption is in user space (see transport.rs): this kernel family is probed once for the
//! `tls` ULP (kTLS), and the answer is logged and exported, but the key hand-over to the kernel is
//! not built yet, so every connection uses rustls.

mod certs;
pub(crate) mod ktls;
mod reload;

pub use certs::{CertError, Certs};
pub use reload::Reloader;

use crate::error::ConnError;
use crate::response::{metric, metric_family, metric_sample};
use crate::transport::Transport;
use rustls::crypto::CryptoProvider;
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// HTTPS and RTMPS settings.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// HTTPS listeners (one or more).
    pub listen: Vec<SocketAddr>,
    /// An RTMPS listener (`None`: off).
    pub rtmps_listen: Option<SocketAddr>,
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Plain HTTP answers `308` to the same URL on HTTPS (except `/healthz`).
    pub redirect_http: bool,
    /// `Strict-Transport-Security: max-age=…` on HTTPS answers (`None`: not sent).
    pub hsts: Option<Duration>,
    /// A handshake not finished by then is dropped.
    pub handshake_timeout: Duration,
    /// How often the certificate files are checked for changes (`None`: only on SIGHUP).
    pub watch_interval: Option<Duration>,
    /// Hand the session keys to the kernel after the handshake (kTLS), where it offers the `tls`
    /// ULP: `sendfile` and `writev` then go out encrypted by the kernel (ktls.rs).
    pub ktls: bool,
    /// The cipher suites offered, by IANA name (`TLS13_AES_128_GCM_SHA256`, ...); empty: all of
    /// ring's (AES-GCM and ChaCha20-Poly1305 for TLS 1.3 and 1.2, ECDHE only).
    pub cipher_suites: Vec<String>,
}

impl TlsConfig {
    /// HTTPS on `listen` with this certificate and key, and the defaults for the rest.
    pub fn new(listen: Vec<SocketAddr>, cert: PathBuf, key: PathBuf) -> TlsConfig {
        TlsConfig {
            listen,
            rtmps_listen: None,
            cert,
            key,
            redirect_http: false,
            hsts: None,
            handshake_timeout: Duration::from_secs(10),
            watch_interval: Some(Duration::from_secs(2)),
            cipher_suites: Vec::new(),
            ktls: false,
        }
    }
}

/// The running TLS side: certificate, acceptors, counters.
pub(crate) struct Tls {
    pub config: TlsConfig,
    /// kTLS is asked for and the kernel offers it.
    pub ktls: bool,
    pub certs: Arc<Certs>,
    /// The stamps of the certificate files last read (reload.rs).
    pub loaded: std::sync::Mutex<(reload::Stamp, reload::Stamp)>,
    /// The first HTTPS listener's port (plain HTTP's redirects go there).
    pub https_port: Option<u16>,
    https: TlsAcceptor,
    rtmps: TlsAcceptor,
    pub stats: Stats,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("config", &self.config).finish()
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub handshakes: AtomicU64,
    pub resumed: AtomicU64,
    pub failed: AtomicU64,
    pub timed_out: AtomicU64,
    pub h2: AtomicU64,
    /// Connections whose keys went to the kernel, and hand-overs the kernel refused.
    pub ktls: AtomicU64,
    pub ktls_failed: AtomicU64,
    /// Connections encrypted by rustls.
    pub userspace: AtomicU64,
    pub reloads: AtomicU64,
    pub reloads_refused: AtomicU64,
}

/// Adds `Strict-Transport-Security` to an HTTPS answer when configured.
pub(crate) fn hsts(config: Option<&TlsConfig>, headers: &mut http::HeaderMap) {
    if let Some(age) = config.and_then(|c| c.hsts) {
        let v = format!("max-age={}", age.as_secs());
        if let Ok(v) = http::HeaderValue::from_str(&v) {
            headers.insert(http::header::STRICT_TRANSPORT_SECURITY, v);
        }
    }
}

/// The crypto provider: ring (builds without cmake or nasm, unlike aws-lc).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The provider with only the named cipher suites (all when `names` is empty).
fn restricted(
    provider: Arc<CryptoProvider>,
    names: &[String],
) -> Result<Arc<CryptoProvider>, CertError> {
    if names.is_empty() {
        return Ok(provider);
    }
    let name = |s: &rustls::SupportedCipherSuite| format!("{:?}", s.suite());
    if let Some(unknown) = names
        .iter()
        .find(|n| !provider.cipher_suites.iter().any(|s| name(s) == **n))
    {
        let known: Vec<String> = provider.cipher_suites.iter().map(name).collect();
        return Err(CertError::Setup(format!(
            "unknown cipher suite {unknown}; known: {}",
            known.join(", ")
        )));
    }
    let mut p = (*provider).clone();
    p.cipher_suites.retain(|s| names.contains(&name(s)));
    Ok(Arc::new(p))
}

/// Whether the kernel offers the `tls` ULP (kTLS).
pub fn kernel_tls_available() -> bool {
    kernel_lists_tls() || std::env::var_os(ASSUME_ULP).is_some()
}

/// Set in the environment, the ULP check passes whatever the kernel says: for testing the kTLS
/// hand-over up to the kernel's answer on a kernel without the module (it then refuses
/// `TCP_ULP`, and the connection is closed and counted as `ktls_failed`).
pub const ASSUME_ULP: &str = "ZEROCAST_KTLS_ASSUME_ULP";

/// Whether `/proc/sys/net/ipv4/tcp_available_ulp` lists `tls`.
pub fn kernel_lists_tls() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp")
        .map(|s| s.split_whitespace().any(|u| u == "tls"))
        .unwrap_or(false)
}

impl Tls {
    /// Reads the certificate and makes the acceptors.
    pub(crate) fn new(config: TlsConfig, https_port: Option<u16>) -> Result<Tls, CertError> {
        let provider = restricted(provider(), &config.cipher_suites)?;
        let ktls = config.ktls && kernel_tls_available();
        if config.ktls && !ktls {
            tracing::warn!(
                "ktls = true, but this kernel offers no tls ULP: TLS stays in user space"
            );
        }
        let loaded = std::sync::Mutex::new(reload::stamps(&config));
        let first = certs::load(&config.cert, &config.key, &provider)?;
        let certs = Arc::new(Certs::new(first));
        let make = |alpn: &[&[u8]]| -> Result<Arc<ServerConfig>, CertError> {
            // The safe defaults: TLS 1.3 and 1.2.
            let mut c = ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| CertError::Setup(e.to_string()))?
                .with_no_client_auth()
                .with_cert_resolver(certs.clone());
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            c.enable_secret_extraction = ktls;
            c.session_storage = rustls::server::ServerSessionMemoryCache::new(16 * 1024);
            if let Ok(t) = rustls::crypto::ring::Ticketer::new() {
                c.ticketer = t;
            }
            Ok(Arc::new(c))
        };
        let https = TlsAcceptor::from(make(&[b"h2", b"http/1.1"])?);
        let rtmps = TlsAcceptor::from(make(&[])?);
        Ok(Tls {
            ktls,
            config,
            certs,
            https_port,
            loaded,
            https,
            rtmps,
            stats: Stats::default(),
        })
    }

    /// The TLS handshake of an HTTPS (`rtmp` false) or RTMPS connection, within the handshake
    /// timeout.
    pub(crate) async fn accept(&self, tcp: TcpStream, rtmp: bool) -> Result<Transport, ConnError> {
        let acceptor = if rtmp { &self.rtmps } else { &self.https };
        let corked = crate::transport::Corked::new(tcp, self.ktls);
        match tokio::time::timeout(self.config.handshake_timeout, acceptor.accept(corked)).await {
            Ok(Ok(mut tls)) => {
                self.stats.handshakes.fetch_add(1, Relaxed);
                let conn = tls.get_ref().1;
                if conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                    self.stats.resumed.fetch_add(1, Relaxed);
                }
                // HTTP/2 stays with rustls: the kernel's gain is `sendfile`, which is HTTP/1.1's.
                let h2 = conn.alpn_protocol() == Some(b"h2");
                if self.ktls && !h2 {
                    return self.to_kernel(tls).await;
                }
                tls.get_mut().0.uncork();
                self.stats.userspace.fetch_add(1, Relaxed);
                Ok(Transport::Tls(Box::new(tls)))
            }
            Ok(Err(e)) => {
                self.stats.failed.fetch_add(1, Relaxed);
                Err(ConnError::Tls(e.to_string()))
            }
            Err(_) => {
                self.stats.timed_out.fetch_add(1, Relaxed);
                Err(ConnError::Timeout("TLS handshake not finished in time"))
            }
        }
    }

    /// Hands a finished handshake to the kernel (ktls.rs). A connection that already holds
    /// decrypted bytes stays in user space; one the kernel refuses is closed (its rustls state is
    /// spent by then).
    async fn to_kernel(
        &self,
        mut tls: tokio_rustls::server::TlsStream<crate::transport::Corked>,
    ) -> Result<Transport, ConnError> {
        use tokio::io::AsyncWriteExt;
        // The session tickets and anything else rustls still holds for the client go out first.
        let flushed = tokio::time::timeout(self.config.handshake_timeout, tls.flush()).await;
        if !matches!(flushed, Ok(Ok(()))) {
            self.stats.ktls_failed.fetch_add(1, Relaxed);
            return Err(ConnError::Tls(
                "kTLS: the handshake's last records did not go out".into(),
            ));
        }
        // What rustls already decrypted (the client's first request, which came with its
        // Finished) is taken out, and read first from the kTLS socket.
        let (_, conn) = tls.get_mut();
        let early = match conn.process_new_packets() {
            Ok(st) if st.tls_bytes_to_write() == 0 => {
                let mut early = vec![0u8; st.plaintext_bytes_to_read()];
                std::io::Read::read_exact(&mut conn.reader(), &mut early)
                    .ok()
                    .map(|()| early)
            }
            _ => None,
        };
        let Some(early) = early else {
            tracing::debug!(
                "kTLS: rustls still has records to send; this connection stays in user space"
            );
            tls.get_mut().0.uncork();
            self.stats.userspace.fetch_add(1, Relaxed);
            return Ok(Transport::Tls(Box::new(tls)));
        };
        let (io, conn) = tls.into_inner();
        match ktls::hand_over(&io.inner, conn) {
            Ok(()) => {
                self.stats.ktls.fetch_add(1, Relaxed);
                let early = bytes::Bytes::from(early);
                Ok(Transport::Ktls(Box::new(crate::transport::Ktls {
                    sock: io.inner,
                    early,
                })))
            }
            Err(why) => {
                self.stats.ktls_failed.fetch_add(1, Relaxed);
                tracing::warn!(%why, "kTLS hand-over refused by the kernel; connection closed");
                Err(ConnError::Tls(format!("kTLS: {why}")))
            }
        }
    }

    /// The TLS families of `/metrics`.
    pub(crate) fn metrics(&self, out: &mut String) {
        let s = &self.stats;
        let name = "tls_handshakes_total";
        metric_family(
            out,
            name,
            "counter",
            "TLS handshakes by outcome (resumed ones also count as ok).",
        );
        for (result, n) in [
            ("ok", &s.handshakes),
            ("resumed", &s.resumed),
            ("failed", &s.failed),
            ("timed_out", &s.timed_out),
        ] {
            metric_sample(out, name, &format!("result=\"{result}\""), n.load(Relaxed));
        }
        let name = "tls_encryption_path";
        metric_family(
            out,
            name,
            "gauge",
            "Where new TLS connections are encrypted: 1 for the path in use (kTLS when asked for and offered).",
        );
        metric_sample(out, name, "path=\"userspace\"", u64::from(!self.ktls));
        metric_sample(out, name, "path=\"ktls\"", u64::from(self.ktls));
        let name = "tls_connections_total";
        metric_family(
            out,
            name,
            "counter",
            "TLS connections by where they were encrypted; ktls_failed: hand-overs the kernel refused.",
        );
        metric_sample(out, name, "path=\"userspace\"", s.userspace.load(Relaxed));
        metric_sample(out, name, "path=\"ktls\"", s.ktls.load(Relaxed));
        metric_sample(
            out,
            name,
            "path=\"ktls_failed\"",
            s.ktls_failed.load(Relaxed),
        );
        let ulp = u64::from(kernel_lists_tls());
        metric(
            out,
            "tls_kernel_ulp_available",
            "gauge",
            "Whether the kernel offers the tls ULP (kTLS).",
            ulp,
        );
        let h2 = s.h2.load(Relaxed);
        metric(
            out,
            "tls_http2_connections_total",
            "counter",
            "HTTPS connections that chose HTTP/2 by ALPN.",
            h2,
        );
        let name = "tls_certificate_reloads_total";
        metric_family(
            out,
            name,
            "counter",
            "Certificate reloads: taken, or refused (the one in use kept).",
        );
        metric_sample(out, name, "result=\"ok\"", s.reloads.load(Relaxed));
        metric_sample(
            out,
            name,
            "result=\"refused\"",
            s.reloads_refused.load(Relaxed),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_suites_are_restricted_by_name_and_unknown_names_refused() {
        let one = vec!["TLS13_AES_128_GCM_SHA256".to_string()];
        let p = restricted(provider(), &one).unwrap();
        assert_eq!(p.cipher_suites.len(), 1);
        assert_eq!(restricted(provider(), &[]).unwrap().cipher_suites.len(), 9);
        let e = restricted(provider(), &["RC4".to_string()]).unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown cipher suite RC4; known: TLS13_"),
            "{e}"
        );
    }
}
