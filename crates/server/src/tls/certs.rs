//! The server's certificate: PEM files read and checked into a rustls `CertifiedKey`, and the
//! resolver every handshake asks, whose key can be swapped while connections run (reload.rs).
//!
//! A new certificate is only taken when it parses, its key parses, and the key matches the
//! certificate's public key; otherwise the one in use stays, and the error says which file and
//! why.

pub use crate::error::CertError;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::Path;
use std::sync::{Arc, RwLock};

/// Reads a certificate chain and its private key from PEM files and checks that they belong
/// together.
pub fn load(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, CertError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|error| CertError::Read {
            path: p.to_owned(),
            error,
        })
    };
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    parse(&cert_pem, &key_pem, provider).map_err(|e| e.at(cert, key))
}

/// What went wrong, before the file names are known (`parse` is pure).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Bad {
    NoCertificate,
    Certificate(String),
    Key(String),
    Mismatch(String),
}

impl Bad {
    fn at(self, cert: &Path, key: &Path) -> CertError {
        match self {
            Bad::NoCertificate => CertError::NoCertificate {
                path: cert.to_owned(),
            },
            Bad::Certificate(why) => CertError::BadCertificate {
                path: cert.to_owned(),
                why,
            },
            Bad::Key(why) => CertError::BadKey {
                path: key.to_owned(),
                why,
            },
            Bad::Mismatch(why) => CertError::Mismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
                why,
            },
        }
    }
}

/// Parses a PEM chain (leaf first) and a PEM private key into a checked `CertifiedKey`.
pub(crate) fn parse(
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, Bad> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Bad::Certificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(Bad::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| Bad::Key(e.to_string()))?;
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| Bad::Key(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signer);
    // Also parses the leaf certificate: a chain of garbage inside valid PEM is refused here.
    certified.keys_match().map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => Bad::Mismatch(e.to_string()),
        other => Bad::Certificate(other.to_string()),
    })?;
    Ok(Arc::new(certified))
}

/// The certificate every handshake gets; replaced whole by a reload.
#[derive(Debug)]
pub struct Certs {
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certs {
    pub(crate) fn new(first: Arc<CertifiedKey>) -> Certs {
        Certs {
            current: RwLock::new(first),
        }
    }

    /// Handshakes from now on use `next`; connections already up keep theirs.
    pub(crate) fn replace(&self, next: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
    }

    pub(crate) fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    /// A fresh self-signed P-256 certificate and its key, made by openssl (`scripts/test`
    /// installs it).
    fn pair() -> Option<(Vec<u8>, Vec<u8>)> {
        let dir = std::env::temp_dir().join(format!(
            "zc-certs-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).ok()?;
        let (c, k) = (dir.join("c.pem"), dir.join("k.pem"));
        let ok = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
            .arg(&k)
            .arg("-out")
            .arg(&c)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?
            .success();
        ok.then(|| (std::fs::read(&c).ok(), std::fs::read(&k).ok()))
            .and_then(|(c, k)| Some((c?, k?)))
    }

    #[test]
    fn a_certificate_and_its_key_are_taken() {
        let (c, k) = pair().expect("openssl makes a certificate");
        assert!(parse(&c, &k, &provider()).is_ok());
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (c, _) = pair().expect("openssl makes a certificate");
        let (_, k2) = pair().expect("openssl makes a second one");
        assert!(matches!(parse(&c, &k2, &provider()), Err(Bad::Mismatch(_))));
    }

    #[test]
    fn files_without_pem_or_with_garbage_inside_are_refused() {
        let (c, k) = pair().expect("openssl makes a certificate");
        let p = provider();
        assert_eq!(parse(b"hello", &k, &p).err(), Some(Bad::NoCertificate));
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(parse(garbage, &k, &p), Err(Bad::Certificate(_))));
        assert!(matches!(parse(&c, b"not a key", &p), Err(Bad::Key(_))));
        assert!(matches!(parse(&c, &c, &p), Err(Bad::Key(_))));
    }
}
