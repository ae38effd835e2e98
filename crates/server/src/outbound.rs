//! Requests zerocast makes itself (callbacks, JWKS): one HTTP/1.1 request on a fresh connection
//! with hyper's client, over plain TCP or TLS (rustls, trusting the system's CA bundle or a given
//! CA file). The answer's body is read up to a limit; the caller bounds the time.

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::path::Path;
use std::sync::Arc;

/// Most bytes of an answer's body read.
pub(crate) const MAX_BODY: usize = 1 << 20;

/// Where the CA bundle is on common systems (`SSL_CERT_FILE` first, as OpenSSL does).
const CA_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// A TLS client configuration trusting the CAs in `ca` (a PEM file), or the system's bundle.
pub(crate) fn tls_client(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    let path = match ca {
        Some(p) => p.to_path_buf(),
        None => env
            .into_iter()
            .chain(CA_BUNDLES.iter().map(std::path::PathBuf::from))
            .find(|p| p.exists())
            .ok_or("no CA bundle found (set SSL_CERT_FILE, or give a CA file)")?,
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs =
        CertificateDer::pem_file_iter(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    for c in certs.flatten() {
        let _ = roots.add(c);
    }
    if roots.is_empty() {
        return Err(format!("{}: no CA certificate in it", path.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// One request; the answer's status and body (at most [`MAX_BODY`]). `tls` is needed for
/// `https://` URLs.
pub(crate) async fn request(
    method: Method,
    url: &Uri,
    content_type: Option<&'static str>,
    body: Bytes,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<(StatusCode, Bytes), String> {
    let host = url.host().ok_or("no host")?.trim_matches(['[', ']']);
    let https = url.scheme_str() == Some("https");
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| e.to_string())?;
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let mut req = Request::builder().method(method).uri(path).header(
        http::header::HOST,
        url.authority().map_or(host, |a| a.as_str()),
    );
    if let Some(t) = content_type {
        req = req.header(http::header::CONTENT_TYPE, t);
    }
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    if https {
        let tls = tls.ok_or("https needs a TLS client configuration")?;
        let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        send(stream, req).await
    } else {
        send(tcp, req).await
    }
}

async fn send<S>(io: S, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = hyper_util::rt::TokioIo::new(io);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let answer = async {
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("the answer's body: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
    .await;
    conn.abort();
    answer
}
