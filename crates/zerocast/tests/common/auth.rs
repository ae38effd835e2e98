//! What the auth tests share: an HS256 secret and tokens signed with it, `secret-*` rules, a
//! server with rules and callbacks, a one-shot publish, and key pairs made by openssl.

use super::fixtures::live_ts;
use super::live::send_raw;
use super::{require, TestServer};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use server::auth::hooks::Hooks;
use server::auth::{Credential, Keys, Rule, Rules};
use std::process::Command;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub const SECRET: &[u8] = b"a test secret of at least 32 bytes!!";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 token for `action` on `stream`, valid for `secs` from now (negative: expired).
pub fn token(action: &str, stream: &str, secs: i64) -> String {
    let exp = (now() as i64 + secs) as u64;
    let claims = serde_json::json!({"action": action, "stream": stream, "exp": exp});
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

/// Streams `secret-*` need a JWT to publish and to watch; `pems`: public keys besides the
/// HS256 secret.
pub fn rules(pems: &[Vec<u8>]) -> Rules {
    Rules {
        rules: vec![Rule {
            streams: "secret-*".into(),
            publish: vec![Credential::Jwt],
            read: vec![Credential::Jwt],
        }],
        jwt: Some(Arc::new(Keys::new(Some(SECRET), pems, 5).unwrap())),
        jwks: None,
    }
}

pub fn server(auth: Rules, hooks: Option<Hooks>) -> TestServer {
    let config = server::Config {
        auth,
        hooks,
        ..server::Config::default()
    };
    TestServer::start_with(config, server::Library::from_static(&[], SystemTime::now()))
}

/// A one-shot HTTP publish of the first packets of the live fixture; the server's answer.
pub fn publish_status(s: &TestServer, path: &str) -> u16 {
    let body = &std::fs::read(live_ts()).unwrap()[..188 * 100];
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    send_raw(s.addr, &head, body).status
}

pub fn openssl_pair(args: &[&str]) -> (Vec<u8>, Vec<u8>) {
    require("openssl");
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = (dir.path().join("k.pem"), dir.path().join("p.pem"));
    let ok = Command::new("openssl")
        .args(["genpkey"])
        .args(args)
        .arg("-out")
        .arg(&private)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
        && Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public)
            .status()
            .unwrap()
            .success();
    assert!(ok, "openssl made the keys");
    (
        std::fs::read(private).unwrap(),
        std::fs::read(public).unwrap(),
    )
}
