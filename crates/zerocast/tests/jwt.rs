//! JWTs for publishing and watching (issue 12, part 6): HS256, RS256 and ES256 tokens on every
//! protocol (HTTP ingest, `.ts`/`.flv` viewers, HLS playlists and segments, RTMP publish and
//! play), and keys from a JWKS URL over http and https. Refusals touch nothing.

mod common;

use common::auth::{now, openssl_pair, publish_status, rules, server, token};
use common::fixtures::{live_ts, rtmp_mp4};
use common::live::{ffmpeg_publish, send_raw, stream_doc, wait_for, Proc};
use common::{codecs, require, TestServer};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use server::auth::{Keys, Rules};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn an_http_publisher_needs_a_valid_jwt_for_its_stream() {
    let s = server(rules(&[]), None);
    assert_eq!(publish_status(&s, "/live/secret-a"), 401, "no token");
    let expired = token("publish", "secret-a", -60);
    assert_eq!(
        publish_status(&s, &format!("/live/secret-a?jwt={expired}")),
        403
    );
    let other = token("publish", "secret-b", 60);
    assert_eq!(
        publish_status(&s, &format!("/live/secret-a?jwt={other}")),
        403
    );
    let read = token("read", "secret-a", 60);
    assert_eq!(
        publish_status(&s, &format!("/live/secret-a?jwt={read}")),
        403
    );
    let mut forged = token("publish", "secret-a", 60);
    forged.pop();
    assert_eq!(
        publish_status(&s, &format!("/live/secret-a?jwt={forged}")),
        403
    );
    assert!(
        stream_doc(&s, "secret-a").is_none(),
        "refusals touch nothing"
    );
    let good = token("publish", "secret-*", 60);
    assert_eq!(
        publish_status(&s, &format!("/live/secret-a?jwt={good}")),
        200
    );
    assert!(stream_doc(&s, "secret-a").is_some());
}

#[test]
fn a_bearer_jwt_admits_a_publisher_too() {
    let s = server(rules(&[]), None);
    let body = &std::fs::read(live_ts()).unwrap()[..188 * 100];
    let head = format!(
        "PUT /live/secret-a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        token("publish", "secret-a", 60),
        body.len()
    );
    assert_eq!(send_raw(s.addr, &head, body).status, 200);
}

/// Publishes the live fixture to `secret-live` with a valid token; waits until it is live.
fn live_secret(s: &TestServer) -> Proc {
    let url = s.url(&format!(
        "/live/secret-live?jwt={}",
        token("publish", "secret-live", 60)
    ));
    let p = ffmpeg_publish(&live_ts(), &["-re"], "mpegts", &[], &url);
    wait_for(s, "secret-live", "two segments", |d| {
        d["hls_segments"].as_u64() >= Some(2)
    });
    p
}

#[test]
fn a_ts_viewer_needs_a_read_jwt_and_gets_the_stream_with_one() {
    let s = server(rules(&[]), None);
    let _p = live_secret(&s);
    assert_eq!(s.get("/live/secret-live.ts", &[]).status, 401);
    let head = common::request(s.addr, "HEAD", "/live/secret-live.ts", &[]);
    assert_eq!(
        head.status, 401,
        "HEAD does not tell whether a protected stream is live"
    );
    let publish = token("publish", "secret-live", 60);
    let r = s.get(&format!("/live/secret-live.ts?jwt={publish}"), &[]);
    assert_eq!(r.status, 403, "a publish token does not let a viewer in");
    require("ffprobe");
    let url = s.url(&format!(
        "/live/secret-live.ts?jwt={}",
        token("read", "secret-live", 60)
    ));
    assert_eq!(codecs(&url), ["aac", "h264"]);
}

#[test]
fn an_flv_viewer_presents_its_jwt_as_a_bearer_header() {
    let s = server(rules(&[]), None);
    let _p = live_secret(&s);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v.flv");
    let auth = format!(
        "Authorization: Bearer {}\r\n",
        token("read", "secret-live", 60)
    );
    let (ok, err) = Proc::spawn(
        Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-headers", &auth, "-i"])
            .arg(s.url("/live/secret-live.flv"))
            .args(["-t", "2", "-c", "copy", "-y"])
            .arg(&out),
    )
    .wait(Duration::from_secs(30));
    assert!(ok, "{err}");
    assert_eq!(codecs(out.to_str().unwrap()), ["aac", "h264"]);
}

#[test]
fn an_hls_playlist_fetched_with_a_jwt_carries_it_to_its_segments() {
    let s = server(rules(&[]), None);
    let _p = live_secret(&s);
    assert_eq!(s.get("/live/secret-live/index.m3u8", &[]).status, 401);
    let t = token("read", "secret-live", 60);
    let r = s.get(&format!("/live/secret-live/index.m3u8?jwt={t}"), &[]);
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body).unwrap();
    let segment = text
        .lines()
        .find(|l| l.ends_with(&t))
        .expect("a segment URI with the token");
    let (seg, _) = segment.split_once('?').unwrap();
    let path = format!("/live/secret-live/{seg}");
    assert_eq!(s.get(&path, &[]).status, 401, "a segment without the token");
    assert_eq!(s.get(&format!("{path}?jwt={t}"), &[]).status, 200);
    require("ffprobe");
    let url = s.url(&format!("/live/secret-live/index.m3u8?jwt={t}"));
    assert_eq!(codecs(&url), ["aac", "h264"]);
}

#[test]
fn rtmp_publish_and_play_take_the_jwt_from_the_stream_key() {
    let s = server(rules(&[]), None);
    let base = format!("rtmp://{}/live", s.rtmp);
    // Without a token: refused with NetStream.Publish.BadName, and nothing is created.
    let (ok, err) = ffmpeg_publish(&rtmp_mp4(), &[], "flv", &[], &format!("{base}/secret-r"))
        .wait(Duration::from_secs(20));
    assert!(!ok && stream_doc(&s, "secret-r").is_none(), "{err}");
    let url = format!("{base}/secret-r?jwt={}", token("publish", "secret-r", 60));
    let _p = ffmpeg_publish(&rtmp_mp4(), &["-re"], "flv", &[], &url);
    wait_for(&s, "secret-r", "live", |d| d["state"] == "live");
    let probe = |url: &str| {
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-rw_timeout",
                "5000000",
                "-show_entries",
                "stream=codec_name",
            ])
            .args(["-of", "csv=p=0", url])
            .output()
            .unwrap()
    };
    let refused = probe(&format!("{base}/secret-r"));
    assert!(
        !refused.status.success(),
        "a player without a token is refused"
    );
    let played = probe(&format!(
        "{base}/secret-r?jwt={}",
        token("read", "secret-r", 60)
    ));
    let text = String::from_utf8_lossy(&played.stdout);
    assert!(text.contains("h264") && text.contains("aac"), "{text}");
}

/// An openssl-made key pair: (private PEM, public PEM).
#[test]
fn rs256_and_es256_tokens_verify_with_their_public_keys() {
    let (rsa, rsa_pub) = openssl_pair(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
    let (ec, ec_pub) = openssl_pair(&["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let s = server(rules(&[rsa_pub, ec_pub]), None);
    let claims = serde_json::json!({"action": "publish", "stream": "secret-k", "exp": now() + 60});
    let rs = encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(&rsa).unwrap(),
    )
    .unwrap();
    let es = encode(
        &Header::new(Algorithm::ES256),
        &claims,
        &EncodingKey::from_ec_pem(&ec).unwrap(),
    )
    .unwrap();
    assert_eq!(publish_status(&s, &format!("/live/secret-k?jwt={rs}")), 200);
    assert_eq!(publish_status(&s, &format!("/live/secret-k?jwt={es}")), 200);
    // The same claims signed by a key the server does not know.
    let (other, _) = openssl_pair(&["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let forged = encode(
        &Header::new(Algorithm::ES256),
        &claims,
        &EncodingKey::from_ec_pem(&other).unwrap(),
    )
    .unwrap();
    assert_eq!(
        publish_status(&s, &format!("/live/secret-k?jwt={forged}")),
        403
    );
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// An RSA key, its JWKS document (kid "k1") and a publish token for `secret-j` signed by it.
fn jwks_pair() -> (String, String) {
    let (private, _) = openssl_pair(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
    let dir = tempfile::tempdir().unwrap();
    let k = dir.path().join("k.pem");
    std::fs::write(&k, &private).unwrap();
    let out = Command::new("openssl")
        .args(["rsa", "-noout", "-modulus", "-in"])
        .arg(&k)
        .output()
        .unwrap();
    let hex = String::from_utf8(out.stdout).unwrap();
    let hex = hex.trim().trim_start_matches("Modulus=");
    let n: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let doc = serde_json::json!({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
                                            "n": b64url(&n), "e": "AQAB"}]});
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let claims = serde_json::json!({"action": "publish", "stream": "secret-j", "exp": now() + 600});
    let token = encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(&private).unwrap(),
    )
    .unwrap();
    (doc.to_string(), token)
}

fn jwks_rules(url: &str, ca: Option<std::path::PathBuf>) -> Rules {
    Rules {
        rules: rules(&[]).rules,
        jwt: Some(Arc::new(Keys::new(None, &[], 5).unwrap())),
        jwks: Some(server::auth::JwksSource {
            url: url.parse().unwrap(),
            ca,
            refresh: Duration::from_secs(300),
        }),
    }
}

#[test]
fn a_token_signed_by_a_key_of_the_jwks_url_admits_once_the_keys_are_fetched() {
    let (doc, token) = jwks_pair();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut head = [0u8; 4096];
            let _ = conn.read(&mut head);
            let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{doc}", doc.len());
        }
    });
    let s = server(jwks_rules(&url, None), None);
    common::live::wait_until("the JWKS key admits", Duration::from_secs(20), || {
        publish_status(&s, &format!("/live/secret-j?jwt={token}")) == 200
    });
}

#[test]
fn a_jwks_url_over_https_is_fetched_with_the_given_ca() {
    let (doc, token) = jwks_pair();
    let mut ca = common::tls::TestCa::new();
    let (cert, key) = ca.issue();
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("jwks.json"), &doc).unwrap();
    let port = common::spawned::free_port();
    // openssl's own HTTPS file server (-WWW serves files of its working directory).
    let _https = Proc::spawn(
        Command::new("openssl")
            .args([
                "s_server",
                "-quiet",
                "-WWW",
                "-accept",
                &port.to_string(),
                "-cert",
            ])
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .current_dir(www.path()),
    );
    let url = format!("https://localhost:{port}/jwks.json");
    let s = server(jwks_rules(&url, Some(ca.ca.clone())), None);
    common::live::wait_until("the JWKS key admits", Duration::from_secs(20), || {
        publish_status(&s, &format!("/live/secret-j?jwt={token}")) == 200
    });
}

/// A part still being written, streamed to a player with a token as its frames arrive (the
/// preload hint), is private to shared caches too, as the rest of what it gets.
#[test]
fn a_part_streamed_to_a_request_with_a_token_is_private_to_shared_caches() {
    let s = server(rules(&[]), None);
    let _p = live_secret(&s);
    let t = token("read", "secret-live", 60);
    let r = s.get(&format!("/live/secret-live/ll.m3u8?jwt={t}"), &[]);
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body).unwrap();
    let hint = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .unwrap_or_else(|| panic!("no preload hint in {text}"))
        .trim_end_matches('"')
        .to_string();
    assert!(hint.ends_with(&t), "{hint}");
    let part = s.get(&format!("/live/secret-live/{hint}"), &[]);
    assert_eq!(part.status, 200);
    assert_eq!(
        part.header("transfer-encoding"),
        Some("chunked"),
        "streamed"
    );
    let cc = part.header("cache-control").unwrap_or("");
    assert!(
        cc.starts_with("private") && !cc.contains("public") && cc.contains("immutable"),
        "part: {cc}"
    );
}

/// What a viewer got with its token is private: a shared cache in front must not hand the
/// playlist or a segment to someone without one.
#[test]
fn answers_to_a_request_with_a_token_are_private_to_shared_caches() {
    let s = server(rules(&[]), None);
    let _p = live_secret(&s);
    let t = token("read", "secret-live", 60);
    let r = s.get(&format!("/live/secret-live/index.m3u8?jwt={t}"), &[]);
    assert_eq!(r.status, 200);
    let cc = r.header("cache-control").unwrap_or("");
    assert!(
        cc.contains("private") && !cc.contains("public"),
        "playlist: {cc}"
    );
    let text = String::from_utf8(r.body).unwrap();
    let seg = text.lines().find(|l| l.ends_with(&t)).unwrap().to_string();
    let path = format!("/live/secret-live/{seg}");
    let seg = s.get(&path, &[]);
    let cc = seg.header("cache-control").unwrap_or("");
    assert!(
        cc.starts_with("private") && cc.contains("max-age"),
        "segment: {cc}"
    );
    // Its 304 says the same (RFC 9110 §15.4.5): not `public` for a revalidation.
    let etag = seg.header("etag").unwrap().to_string();
    let again = s.get(&path, &[("If-None-Match", &etag)]);
    assert_eq!(again.status, 304);
    let cc = again.header("cache-control").unwrap_or("");
    assert!(cc.starts_with("private"), "304: {cc}");
}
