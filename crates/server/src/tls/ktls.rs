//! Kernel TLS: after rustls's handshake, the session keys go to the kernel (`TCP_ULP` "tls",
//! then `TLS_TX` and `TLS_RX`), and the socket carries plaintext for us from then on: the
//! HTTP/1.1 fast path writes to it with `writev` and `sendfile` from the title's memfd as on plain
//! TCP, and the kernel encrypts (no user-space copy of the bytes).
//!
//! What makes the hand-over safe:
//! - During the handshake rustls reads through `transport::Corked`, which never reads past the end of a
//!   TLS record: whatever the client sent after its `Finished` (its first request) stays in the
//!   socket for the kernel to decrypt.
//! - Before the keys are taken, rustls's pending records (the session tickets) are flushed, and a
//!   connection that still holds decrypted bytes is left in user space.
//! - Only what the kernel takes is handed over (AES-GCM 128/256, ChaCha20-Poly1305; TLS 1.2/1.3);
//!   a kernel that refuses a step leaves the connection closed (rustls's state is spent by then),
//!   and that is logged and counted.
//!
//! On by configuration (`ktls = true`) and only where `/proc/sys/net/ipv4/tcp_available_ulp`
//! lists `tls`. Limits of the kernel path: a TLS 1.3 KeyUpdate from the client, or an alert,
//! makes the next read fail and ends the connection; our close is a TCP FIN without a
//! close_notify alert.

use std::io;
use std::os::fd::AsRawFd;
use tokio::net::TcpStream;

const SOL_TLS: libc::c_int = 282;
const TCP_ULP: libc::c_int = 31;
const TLS_TX: libc::c_int = 1;
const TLS_RX: libc::c_int = 2;
const TLS_1_2_VERSION: u16 = 0x0303;
const TLS_1_3_VERSION: u16 = 0x0304;
const TLS_CIPHER_AES_GCM_128: u16 = 51;
const TLS_CIPHER_AES_GCM_256: u16 = 52;
const TLS_CIPHER_CHACHA20_POLY1305: u16 = 54;

/// One direction's crypto state, as `struct tls12_crypto_info_*` of `linux/tls.h` (the same
/// layout serves TLS 1.2 and 1.3): version and cipher, then iv, key, salt and record sequence.
fn crypto_info(
    version: u16,
    seq: u64,
    secrets: &rustls::ConnectionTrafficSecrets,
) -> Option<Vec<u8>> {
    use rustls::ConnectionTrafficSecrets as S;
    let (cipher, key, iv): (u16, &[u8], &[u8]) = match secrets {
        S::Aes128Gcm { key, iv } => (TLS_CIPHER_AES_GCM_128, key.as_ref(), iv.as_ref()),
        S::Aes256Gcm { key, iv } => (TLS_CIPHER_AES_GCM_256, key.as_ref(), iv.as_ref()),
        S::Chacha20Poly1305 { key, iv } => {
            (TLS_CIPHER_CHACHA20_POLY1305, key.as_ref(), iv.as_ref())
        }
        _ => return None,
    };
    let mut out = Vec::with_capacity(4 + 12 + 32 + 4 + 8);
    out.extend_from_slice(&version.to_ne_bytes());
    out.extend_from_slice(&cipher.to_ne_bytes());
    if cipher == TLS_CIPHER_CHACHA20_POLY1305 {
        // iv[12], key[32], no salt.
        out.extend_from_slice(iv.get(..12)?);
        out.extend_from_slice(key);
    } else {
        // The 12-byte nonce base is salt (4) + iv (8).
        out.extend_from_slice(iv.get(4..12)?);
        out.extend_from_slice(key);
        out.extend_from_slice(iv.get(..4)?);
    }
    out.extend_from_slice(&seq.to_be_bytes());
    Some(out)
}

/// `setsockopt` with a byte buffer as the value.
fn set(sock: &TcpStream, level: libc::c_int, name: libc::c_int, value: &[u8]) -> io::Result<()> {
    let len = libc::socklen_t::try_from(value.len()).map_err(io::Error::other)?;
    // SAFETY: `value` is a live buffer of `len` bytes for the duration of the call, and the fd is
    // the open socket `sock` owns; the kernel only reads from the buffer.
    let r = unsafe { libc::setsockopt(sock.as_raw_fd(), level, name, value.as_ptr().cast(), len) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Hands a finished handshake's keys to the kernel; the socket is plaintext for us afterwards.
pub(crate) fn hand_over(sock: &TcpStream, conn: rustls::ServerConnection) -> Result<(), String> {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => TLS_1_3_VERSION,
        Some(rustls::ProtocolVersion::TLSv1_2) => TLS_1_2_VERSION,
        v => return Err(format!("protocol {v:?}")),
    };
    let secrets = conn
        .dangerous_extract_secrets()
        .map_err(|e| format!("extracting the keys: {e}"))?;
    let tx =
        crypto_info(version, secrets.tx.0, &secrets.tx.1).ok_or("a cipher the kernel lacks")?;
    let rx =
        crypto_info(version, secrets.rx.0, &secrets.rx.1).ok_or("a cipher the kernel lacks")?;
    set(sock, libc::SOL_TCP, TCP_ULP, b"tls").map_err(|e| format!("TCP_ULP tls: {e}"))?;
    set(sock, SOL_TLS, TLS_TX, &tx).map_err(|e| format!("TLS_TX: {e}"))?;
    set(sock, SOL_TLS, TLS_RX, &rx).map_err(|e| format!("TLS_RX: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crypto_info_has_the_kernels_layout() {
        let key = rustls::crypto::cipher::AeadKey::from([7u8; 32]);
        let iv = rustls::crypto::cipher::Iv::new([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let s = rustls::ConnectionTrafficSecrets::Aes256Gcm { key, iv };
        let info = crypto_info(TLS_1_3_VERSION, 0x0102, &s).unwrap();
        // tls12_crypto_info_aes_gcm_256: 4 + iv 8 + key 32 + salt 4 + rec_seq 8.
        assert_eq!(info.len(), 56);
        assert_eq!(&info[..2], &TLS_1_3_VERSION.to_ne_bytes());
        assert_eq!(&info[2..4], &TLS_CIPHER_AES_GCM_256.to_ne_bytes());
        assert_eq!(&info[4..12], &[5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(&info[12..44], &[7u8; 32]);
        assert_eq!(&info[44..48], &[1, 2, 3, 4]);
        assert_eq!(&info[48..], &[0, 0, 0, 0, 0, 0, 1, 2]);
    }
}
