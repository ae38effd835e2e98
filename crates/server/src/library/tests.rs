use super::*;

#[test]
fn growing_recordings_list_in_id_order_with_the_scanned_titles_and_give_way_to_them() {
    let mut lib = Library::from_static(&[("a", b"x"), ("c", b"y")], SystemTime::now());
    let file = Arc::new(File::open("/dev/null").unwrap());
    let growing = |id: &str| {
        Title::growing(
            id.into(),
            Container::MpegTs,
            Bytes::from_static(b"zz"),
            file.clone(),
            Err("not yet".into()),
            1,
        )
    };
    lib.put_growing(growing("b"));
    lib.put_growing(growing("d"));
    let ids: Vec<&str> = lib.titles().map(|t| t.id.as_str()).collect();
    assert_eq!((ids, lib.len()), (vec!["a", "b", "c", "d"], 4));
    assert!(lib.get("b").unwrap().is_growing());
    // A scan that finds the finished file: the scanned title wins.
    lib.put_growing(growing("c"));
    assert!(!lib.get("c").unwrap().is_growing());
    assert_eq!(lib.len(), 4);
    // A rescan keeps only the growing titles still being written.
    let writing: std::collections::HashSet<String> = ["b".to_string()].into();
    let next = lib.with_growing_of(
        Library::from_static(&[("a", b"x")], SystemTime::now()),
        &writing,
    );
    let ids: Vec<&str> = next.titles().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
}

#[test]
fn a_rescan_counts_kept_titles_against_the_budget_before_new_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    std::fs::write(dir.join("b.bin"), vec![1u8; 1000]).unwrap();
    let lib = Library::load(&dir, 1500, |_| {}).unwrap();
    assert!(lib.get("b.bin").unwrap().cached);
    // A new title that sorts first: the kept one already holds 1000 of the 1500 bytes.
    std::fs::write(dir.join("a.bin"), vec![2u8; 1000]).unwrap();
    let (next, changes) = lib.rescan(&dir, 1500, |_| {}).unwrap();
    assert_eq!(changes.added, ["a.bin"]);
    assert!(
        Arc::ptr_eq(next.get("b.bin").unwrap(), lib.get("b.bin").unwrap()),
        "kept"
    );
    assert!(
        !next.get("a.bin").unwrap().cached,
        "mapped: the budget was spent"
    );
}

/// Every file changed (re-encoded, restored): the library in use still holds the old bytes
/// while the rescan reads the new ones, so the new ones are held in memory only within what the
/// budget leaves: never two copies of the library.
#[test]
fn a_rescan_of_changed_titles_counts_the_old_ones_until_they_are_let_go() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    for name in ["a.bin", "b.bin"] {
        std::fs::write(dir.join(name), vec![1u8; 1000]).unwrap();
    }
    let lib = Library::load(&dir, 2500, |_| {}).unwrap();
    assert!(lib.titles().all(|t| t.cached));
    // Both rewritten (new files renamed over the old: new inodes).
    for name in ["a.bin", "b.bin"] {
        let tmp = dir.join(format!("{name}.new"));
        std::fs::write(&tmp, vec![2u8; 1000]).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
    let (next, changes) = lib.rescan(&dir, 2500, |_| {}).unwrap();
    assert_eq!(changes.changed, ["a.bin", "b.bin"]);
    let held: u64 = next
        .titles()
        .filter(|t| t.cached)
        .map(|t| t.data.len() as u64)
        .sum();
    assert!(held + 2000 <= 2500, "{held} bytes held beside the old 2000");
    // Once the old library is let go, the next rescan reads what it left on disk into memory
    // again (the same bytes: not a change).
    drop(lib);
    let (again, changes) = next.rescan(&dir, 2500, |_| {}).unwrap();
    assert!(changes.is_empty(), "{changes:?}");
    assert!(again.titles().all(|t| t.cached));
}

#[test]
fn a_title_held_in_memory_is_packaged_as_it_loads_and_a_mapped_one_on_first_use() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let movie = include_bytes!("../../../../demo/faststart.mp4");
    std::fs::write(dir.join("a.mp4"), movie).unwrap();
    std::fs::write(dir.join("b.mp4"), movie).unwrap();
    // The budget holds the first title only.
    let lib = Library::load(&dir, movie.len() as u64, |_| {}).unwrap();
    let (held, mapped) = (lib.get("a.mp4").unwrap(), lib.get("b.mp4").unwrap());
    assert!(held.cached && !mapped.cached);
    assert!(held.package_memory() > 0, "its movie is parsed at load");
    assert_eq!(mapped.package_memory(), 0, "not before it is asked for");
    assert!(mapped.package().is_ok());
    assert!(mapped.package_memory() > 0);
}

/// A title named as downloads often are (`Q&amp;A.mp4`, `AC\DC live.mp4`): its URL path escapes
/// what a browser would read otherwise (a character reference in an attribute, `\` as `/`), and
/// the server decodes it back to the same id.
#[test]
fn ids_with_ampersands_and_backslashes_go_into_urls_escaped() {
    assert_eq!(super::encode_id("Q&amp;A.mp4"), "Q%26amp;A.mp4");
    assert_eq!(super::encode_id("AC\\DC live.mp4"), "AC%5CDC%20live.mp4");
    assert_eq!(super::encode_id("a/b.mp4"), "a/b.mp4", "folders stay");
    for id in [
        "Q&amp;A.mp4",
        "AC\\DC live.mp4",
        "clip\\..\\..\\api\\streams",
    ] {
        let url = super::encode_id(id);
        let back = percent_encoding::percent_decode_str(&url)
            .decode_utf8()
            .unwrap();
        assert_eq!(back, id);
        assert!(!url.contains('\\') && !url.contains('&'), "{url}");
    }
}

/// `rsync --inplace -a`: the same file rewritten with other bytes of the same length, its
/// modification time put back. Only the change time (which no one can set back) tells.
#[test]
fn a_rescan_sees_a_title_rewritten_in_place_with_its_length_and_modification_time_kept() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let path = dir.join("a.bin");
    std::fs::write(&path, vec![1u8; 1000]).unwrap();
    let before = std::fs::metadata(&path).unwrap();
    let lib = Library::load(&dir, 1 << 20, |_| {}).unwrap();
    // The kernel's file clock is coarse (a few milliseconds): wait for it to move, so that the
    // rewrite's change time differs from the write's.
    let probe = dir.join("probe");
    let waited = std::time::Instant::now();
    loop {
        std::fs::write(&probe, b"").unwrap();
        let m = std::fs::metadata(&probe).unwrap();
        if (m.ctime(), m.ctime_nsec()) != (before.ctime(), before.ctime_nsec()) {
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "the clock stood still"
        );
        std::thread::yield_now();
    }
    std::fs::remove_file(&probe).unwrap();
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::io::Write::write_all(&mut f, &[2u8; 1000]).unwrap();
    f.set_modified(before.modified().unwrap()).unwrap();
    drop(f);
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (after.len(), after.modified().unwrap(), after.ino()),
        (before.len(), before.modified().unwrap(), before.ino())
    );
    let (next, changes) = lib.rescan(&dir, 1 << 20, |_| {}).unwrap();
    assert_eq!(changes.changed, ["a.bin"]);
    let t = next.get("a.bin").unwrap();
    assert_eq!(&t.data[..], &[2u8; 1000][..]);
    assert_ne!(t.etag, lib.get("a.bin").unwrap().etag);
}
