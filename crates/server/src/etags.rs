//! Content-derived entity tags for library titles: the same bytes get the same `ETag` on every
//! origin and across restarts (caches in front of several origins see one validator), whatever
//! the file's modification time or inode.
//!
//! The tag is the title's length and the first 96 bits of the SHA-256 of its bytes. Hashing a
//! title reads all of it, so tags are kept in a small file per library (one line per title:
//! length, modification time, change time, inode, tag, path), and a file whose length,
//! modification and change times and inode are unchanged is not read again at the next start
//! (the change time, which no one can set back, sees a file rewritten in place with its length
//! and modification time kept, as `rsync --inplace -a` does). The file lives in the cache
//! directory (`$ZEROCAST_CACHE_DIR`, else `$XDG_CACHE_HOME/zerocast`, else
//! `$HOME/.cache/zerocast`); when it cannot be written, tags are computed at every start.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What identifies a version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    pub len: u64,
    pub modified_ns: u128,
    /// The inode's change time (`st_ctime`), in nanoseconds.
    pub changed_ns: i128,
    pub inode: u64,
}

/// The tag of `data`, quoted.
pub fn of(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut tag = format!("\"{:x}-", data.len());
    for b in &digest[..12] {
        let _ = write!(tag, "{b:02x}");
    }
    tag.push('"');
    tag
}

/// The tags known for one library, and where they are kept.
#[derive(Debug, Default)]
pub struct Etags {
    file: Option<PathBuf>,
    known: HashMap<PathBuf, (Version, String)>,
    used: HashMap<PathBuf, (Version, String)>,
    computed: usize,
}

/// The cache directory (see the module documentation).
pub(crate) fn cache_dir() -> Option<PathBuf> {
    let var = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("ZEROCAST_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("zerocast")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/zerocast")))
}

impl Etags {
    /// The tags kept for the library at `root` (a canonical path), in the cache directory.
    pub fn open(root: &Path) -> Etags {
        Etags::open_in(cache_dir(), root)
    }

    /// The same, kept in `dir` (`None`: not kept).
    pub fn open_in(dir: Option<PathBuf>, root: &Path) -> Etags {
        let name = {
            let digest = Sha256::digest(root.as_os_str().as_encoded_bytes());
            let mut n = String::from("etags-");
            for b in &digest[..8] {
                let _ = write!(n, "{b:02x}");
            }
            n + ".tsv"
        };
        let file = dir.map(|d| d.join(name));
        let mut known = HashMap::new();
        if let Some(text) = file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()) {
            for line in text.lines() {
                // (A line of the earlier form, without the change time, does not parse: its
                // file is hashed again once.)
                let mut f = line.splitn(6, '\t');
                let (Some(len), Some(m), Some(c), Some(ino), Some(tag), Some(path)) =
                    (f.next(), f.next(), f.next(), f.next(), f.next(), f.next())
                else {
                    continue;
                };
                let (Ok(len), Ok(modified_ns), Ok(changed_ns), Ok(inode)) =
                    (len.parse(), m.parse(), c.parse(), ino.parse())
                else {
                    continue;
                };
                let v = Version {
                    len,
                    modified_ns,
                    changed_ns,
                    inode,
                };
                known.insert(PathBuf::from(path), (v, tag.to_string()));
            }
        }
        Etags {
            file,
            known,
            used: HashMap::new(),
            computed: 0,
        }
    }

    /// The tag of the file at `path` whose bytes are `data`: the kept one when the file's version
    /// is unchanged, else computed from the bytes.
    pub fn tag(&mut self, path: &Path, version: Version, data: &[u8]) -> String {
        let tag = match self.known.get(path) {
            Some((v, tag)) if *v == version && v.len == data.len() as u64 => tag.clone(),
            _ => {
                self.computed += 1;
                of(data)
            }
        };
        self.used.insert(path.to_path_buf(), (version, tag.clone()));
        tag
    }

    /// Notes the tag of a file that was not read again (a title kept from the previous scan).
    pub fn keep(&mut self, path: &Path, version: Version, tag: &str) {
        self.used
            .insert(path.to_path_buf(), (version, tag.to_string()));
    }

    /// How many tags were computed (not found kept).
    pub fn computed(&self) -> usize {
        self.computed
    }

    /// Keeps the tags of the files seen in this scan (only those) for the next start; an error
    /// (a read-only cache directory) is returned for the caller to log once.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if self.computed == 0 && self.used.len() == self.known.len() {
            return Ok(());
        }
        let mut text = String::new();
        for (path, (v, tag)) in &self.used {
            let Some(p) = path.to_str().filter(|p| !p.contains(['\n', '\t'])) else {
                continue;
            };
            let _ = writeln!(
                text,
                "{}\t{}\t{}\t{}\t{tag}\t{p}",
                v.len, v.modified_ns, v.changed_ns, v.inode
            );
        }
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_depends_on_the_bytes_only() {
        assert_eq!(of(b"abc"), of(b"abc"));
        assert_ne!(of(b"abc"), of(b"abd"));
        // SHA-256("abc") = ba7816bf8f01cfea414140de...
        assert_eq!(of(b"abc"), "\"3-ba7816bf8f01cfea414140de\"");
    }

    #[test]
    fn a_kept_tag_is_used_only_for_the_same_version_of_the_file() {
        let dir = tempfile_dir();
        let root = dir.join("lib");
        let v = Version {
            len: 3,
            modified_ns: 1,
            changed_ns: 1,
            inode: 7,
        };
        let mut e = Etags::open_in(Some(dir.clone()), &root);
        assert_eq!(e.tag(Path::new("/lib/a"), v, b"abc"), of(b"abc"));
        assert_eq!(e.computed(), 1);
        e.save().unwrap();
        let mut again = Etags::open_in(Some(dir.clone()), &root);
        // Same version: the kept tag, not the bytes' (which would differ here).
        assert_eq!(again.tag(Path::new("/lib/a"), v, b"xyz"), of(b"abc"));
        assert_eq!(again.computed(), 0);
        // Another modification time: computed from the bytes.
        let touched = Version {
            modified_ns: 2,
            ..v
        };
        assert_eq!(again.tag(Path::new("/lib/a"), touched, b"abc"), of(b"abc"));
        assert_eq!(again.computed(), 1);
        // Rewritten in place with the modification time put back: the change time differs.
        let rewritten = Version { changed_ns: 2, ..v };
        assert_eq!(
            again.tag(Path::new("/lib/a"), rewritten, b"xyz"),
            of(b"xyz")
        );
        assert_eq!(again.computed(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "zc-etags-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
