//! What one request may cost the object store (moto, `common::s3`): a multi-range request
//! whose ranges would fetch many blocks is refused before any fetch, and a store's refusal of
//! a short block (an object overwritten since it was listed) is taken as that answer, not
//! tried again as if the store had not answered.

mod common;
use common::s3::{metric, serve, Moto, BUCKET};
use common::*;

/// A store holding `name`: `len` random bytes.
fn store_with(name: &str, len: usize) -> (Moto, Vec<u8>) {
    let store = Moto::start();
    store.create_bucket(BUCKET);
    let mut bytes = vec![0u8; len];
    fastrand::Rng::with_seed(3).fill(&mut bytes);
    store.put(BUCKET, name, &bytes);
    (store, bytes)
}

#[test]
fn many_small_ranges_over_a_title_in_object_storage_are_refused_before_any_fetch() {
    let (store, bytes) = store_with("big.bin", 2 << 20);
    let config = "[s3]\nblock_size = \"64KiB\"\nread_ahead = 0\n";
    let (_d, s) = serve(&store, &["--library", "s3://media"], config);
    let before = metric(&s, "s3_requests_total");
    // One byte in each of 20 blocks: 20 blocks fetched for 20 bytes.
    let many: Vec<String> = (0..20)
        .map(|k| format!("{0}-{0}", k * 65_536 + 7))
        .collect();
    let r = request(
        s.addr,
        "GET",
        "/videos/big.bin",
        &[("Range", &format!("bytes={}", many.join(",")))],
    );
    assert_eq!(r.status, 416, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(metric(&s, "s3_requests_total"), before, "nothing fetched");
    // A few ranges are served, each from its own block.
    let r = request(
        s.addr,
        "GET",
        "/videos/big.bin",
        &[("Range", "bytes=100000-100009,200000-200009,900000-900009")],
    );
    assert_eq!(r.status, 206);
    for (a, b) in [(100_000, 100_010), (200_000, 200_010), (900_000, 900_010)] {
        let want = &bytes[a..b];
        assert!(
            r.body.windows(want.len()).any(|w| w == want),
            "bytes {a}-{b} in the multipart body"
        );
    }
    assert_eq!(metric(&s, "s3_requests_total") - before, 3);
    // Many ranges in one block are one block to fetch.
    let before = metric(&s, "s3_requests_total");
    let one_block: Vec<String> = (0..20)
        .map(|k| format!("{0}-{0}", 5 * 65_536 + 7 + k * 100))
        .collect();
    let r = request(
        s.addr,
        "GET",
        "/videos/big.bin",
        &[("Range", &format!("bytes={}", one_block.join(",")))],
    );
    assert_eq!(r.status, 206);
    assert_eq!(metric(&s, "s3_requests_total") - before, 1);
    // One long range is one range, however many blocks it reads.
    let r = request(
        s.addr,
        "GET",
        "/videos/big.bin",
        &[("Range", "bytes=5-2000000")],
    );
    assert_eq!(r.status, 206);
    assert!(r.body[..] == bytes[5..=2_000_000]);
}

#[test]
fn a_short_last_block_of_an_object_overwritten_since_its_listing_is_asked_for_once() {
    // The last block is 10 bytes: shorter than the store's XML answer to a failed If-Match.
    let (store, _) = store_with("tail.bin", 65_536 + 10);
    let config = "[s3]\nblock_size = \"64KiB\"\nread_ahead = 0\nretries = 2\n";
    let (_d, s) = serve(&store, &["--library", "s3://media"], config);
    store.overwrite(BUCKET, "tail.bin", &[7u8; 65_546]);
    let before = metric(&s, "s3_requests_total");
    let r = request(
        s.addr,
        "GET",
        "/videos/tail.bin",
        &[("Range", "bytes=65536-65545")],
    );
    assert!(
        r.status != 206 || r.body.len() < 10,
        "no bytes of another version: {} {:?}",
        r.status,
        r.body
    );
    assert_eq!(
        metric(&s, "s3_requests_total") - before,
        1,
        "the store's 412 is its answer, not tried again"
    );
}
