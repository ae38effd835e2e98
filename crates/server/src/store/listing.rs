//! A bucket's listing, page by page (ListObjectsV2): which objects are titles, the version each
//! is listed as, and the bounds that keep a store that pages wrongly from holding the listing
//! forever or filling memory: every key a store returns counts toward [`MAX_KEYS`], a token
//! must lead somewhere new (not one given before), and a key listed twice is one title. (Key
//! order is not relied on: S3 lists in UTF-8 order, some compatible stores by directory.)

use super::{parse_time, Listed, StoreError};
use rusty_s3::actions::list_objects_v2::ListObjectsContent;

/// The largest object listed (S3's limit is 50 TB); a larger size is a store's error, and the
/// block arithmetic stays far from overflowing.
const MAX_OBJECT: u64 = 1 << 50;
/// Most keys a listing of one source may return, titles or not.
pub(super) const MAX_KEYS: usize = 1_000_000;
/// The longest key and ETag taken (S3's keys are at most 1024 bytes): a store that sends longer
/// ones is refused, not held.
const MAX_KEY: usize = 1024;
/// The longest continuation token taken: stores make them of the next key (MinIO: its base64,
/// a third longer than the key), so a 1024-byte key gives a longer one.
const MAX_TOKEN: usize = 4096;
/// Most bytes of keys, ids, ETags and tokens a listing of one source may hold (a million keys
/// of 200 bytes, their ids and ETags): the pages are capped one by one, and this caps them all.
const MAX_HELD: usize = 512 << 20;

/// What the pages read so far gave.
#[derive(Debug, Default)]
pub(crate) struct Pages {
    out: Vec<Listed>,
    /// Keys returned, titles or not.
    keys: usize,
    /// The continuation tokens given so far.
    tokens: std::collections::HashSet<String>,
    /// Bytes of keys, ETags and tokens held.
    held: usize,
}

impl Pages {
    /// Takes one page (its XML); returns the token to ask for the next page with, or `None`
    /// when this was the last.
    pub(crate) fn take(&mut self, prefix: &str, text: &str) -> Result<Option<String>, StoreError> {
        let page = rusty_s3::actions::ListObjectsV2::parse_response(text)
            .map_err(|e| StoreError::Listing(e.to_string()))?;
        let empty = page.contents.is_empty();
        self.keys += page.contents.len();
        if self.keys > MAX_KEYS {
            return Err(StoreError::Listing(format!(
                "more than {MAX_KEYS} keys under the prefix"
            )));
        }
        let long = |what: &str, s: &str, max: usize| {
            StoreError::Listing(format!(
                "the store listed a {what} of {} bytes (at most {max})",
                s.len()
            ))
        };
        for o in page.contents {
            if o.key.len() > MAX_KEY {
                return Err(long("key", &o.key, MAX_KEY));
            }
            if let Some(e) = o.etag.as_deref().filter(|e| e.len() > MAX_KEY) {
                return Err(long("ETag", e, MAX_KEY));
            }
            if let Some(l) = listed(prefix, o) {
                self.held += l.id.len() + l.key.len() + l.etag.len();
                self.out.push(l);
            }
        }
        if let Some(t) = page.next_continuation_token.as_deref() {
            if t.len() > MAX_TOKEN {
                return Err(long("continuation token", t, MAX_TOKEN));
            }
            self.held += t.len();
        }
        if self.held > MAX_HELD {
            return Err(StoreError::Listing(format!(
                "the listing holds more than {} MiB of keys",
                MAX_HELD >> 20
            )));
        }
        match page.next_continuation_token {
            // A store that sends a token again, or pages of nothing, would keep the listing
            // (and its lock) going forever.
            Some(t) if !t.is_empty() && !empty && self.tokens.insert(t.clone()) => Ok(Some(t)),
            Some(t) if !t.is_empty() => Err(StoreError::Listing(format!(
                "the store's continuation token {t:?} leads nowhere"
            ))),
            _ => Ok(None),
        }
    }

    /// The titles listed, by id (a key listed twice, once).
    pub(crate) fn done(mut self) -> Vec<Listed> {
        self.out.sort_by(|a, b| a.id.cmp(&b.id));
        self.out.dedup_by(|a, b| a.id == b.id);
        self.out
    }
}

/// The title an object is, if it is one: under the prefix, not a dotfile or a "folder", no
/// larger than an object can be.
fn listed(prefix: &str, o: ListObjectsContent) -> Option<Listed> {
    let id = o.key.strip_prefix(prefix)?;
    let hidden = id.split('/').any(|p| p.starts_with('.') || p.is_empty());
    if hidden || id.ends_with('/') {
        return None;
    }
    let len = o.size.unwrap_or(0);
    if len > MAX_OBJECT {
        tracing::warn!(key = %o.key, len, "left out: larger than an object can be");
        return None;
    }
    let modified = o.last_modified.as_deref().and_then(parse_time);
    let store_etag = o
        .etag
        .as_ref()
        .is_some_and(|e| !e.trim_matches('"').is_empty());
    let etag = match o.etag {
        Some(e) if store_etag && e.starts_with('"') => e,
        Some(e) if store_etag => format!("\"{e}\""),
        // No version from the store (some S3-compatible servers): its length and time, as a
        // web server makes one for a file.
        _ => {
            let secs = modified
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            format!("\"zc-{len:x}-{secs:x}\"")
        }
    };
    Some(Listed {
        id: id.to_string(),
        key: o.key,
        len,
        etag,
        store_etag,
        modified,
    })
}

/// Whether a ranged answer is of the version an object was listed as: the same `ETag` where the
/// store gave one (a proxy that compresses may weaken it: `W/` is not another version), and
/// the same whole length where `Content-Range` gives it.
pub(super) fn same_version(
    listed: (&str, bool, u64),
    etag: Option<&str>,
    total: Option<u64>,
) -> bool {
    let (listed_etag, store_etag, len) = listed;
    // (Quoted or not, as stores differ: the listing's are quoted when read.)
    let strong = |e: &str| e.trim_start_matches("W/").trim_matches('"').to_string();
    let other_etag = store_etag && etag.is_some_and(|e| strong(e) != strong(listed_etag));
    !other_etag && total.is_none_or(|t| t == len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(entries: &[(&str, Option<&str>)], token: Option<&str>) -> String {
        let mut x = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name>",
        );
        for (key, etag) in entries {
            x.push_str(&format!("<Contents><Key>{key}</Key><Size>10</Size><LastModified>2026-11-26T20:15:00.000Z</LastModified>"));
            if let Some(e) = etag {
                x.push_str(&format!("<ETag>{e}</ETag>"));
            }
            x.push_str("</Contents>");
        }
        x.push_str(&format!("<KeyCount>{}</KeyCount>", entries.len()));
        if let Some(t) = token {
            x.push_str(&format!(
                "<IsTruncated>true</IsTruncated><NextContinuationToken>{t}</NextContinuationToken>"
            ));
        }
        x.push_str("</ListBucketResult>");
        x
    }

    #[test]
    fn objects_without_an_etag_get_one_made_of_their_length_and_time() {
        let mut p = Pages::default();
        let x = page(
            &[
                ("v/a.mp4", Some("\"abc\"")),
                ("v/b.mp4", None),
                ("v/c.mp4", Some("d")),
            ],
            None,
        );
        assert_eq!(p.take("v/", &x).unwrap(), None);
        let l = p.done();
        assert_eq!((l[0].etag.as_str(), l[0].store_etag), ("\"abc\"", true));
        assert_eq!(
            (l[1].etag.as_str(), l[1].store_etag),
            ("\"zc-a-6b089344\"", false)
        );
        assert_eq!((l[2].etag.as_str(), l[2].store_etag), ("\"d\"", true));
    }

    #[test]
    fn a_store_whose_tokens_go_in_a_circle_ends_the_listing_with_an_error() {
        let mut p = Pages::default();
        let a = page(&[("v/a", None)], Some("A"));
        assert_eq!(p.take("v/", &a).unwrap(), Some("A".into()));
        let b = page(&[("v/b", None)], Some("B"));
        assert_eq!(p.take("v/", &b).unwrap(), Some("B".into()));
        assert!(p.take("v/", &a).is_err(), "A again");
    }

    #[test]
    fn keys_in_directory_order_or_listed_twice_are_each_one_title() {
        let mut p = Pages::default();
        let first = page(&[("v/a/b", None), ("v/a-b", None)], Some("A"));
        p.take("v/", &first).unwrap();
        p.take("v/", &page(&[("v/a-b", None)], None)).unwrap();
        let ids: Vec<String> = p.done().into_iter().map(|l| l.id).collect();
        assert_eq!(ids, ["a-b", "a/b"]);
    }

    #[test]
    fn keys_that_are_not_titles_count_toward_the_bound() {
        let mut p = Pages {
            keys: MAX_KEYS - 1,
            ..Pages::default()
        };
        let hidden = page(&[("v/.a", None), ("v/.b", None)], Some("A"));
        assert!(p.take("v/", &hidden).is_err());
    }

    /// A store that sends keys or tokens longer than S3's, or pages that together hold more
    /// than the bound, ends the listing with an error instead of filling memory.
    #[test]
    fn keys_and_tokens_longer_than_s3s_or_too_many_bytes_of_them_end_the_listing() {
        let long = format!("v/{}", "k".repeat(MAX_KEY));
        assert!(Pages::default()
            .take("v/", &page(&[(&long, None)], None))
            .is_err());
        let token = "t".repeat(MAX_TOKEN + 1);
        let p = page(&[("v/a", None)], Some(&token));
        assert!(Pages::default().take("v/", &p).is_err());
        // MinIO's token for a page that ends at a key of S3's longest: taken.
        let token = "t".repeat(1366);
        let p = page(&[("v/a", None)], Some(&token));
        assert!(Pages::default().take("v/", &p).is_ok());
        let mut p = Pages {
            held: MAX_HELD - 10,
            ..Pages::default()
        };
        let ok = page(&[("v/a", None)], None);
        assert!(p.take("v/", &ok).is_err(), "past the bytes held");
        assert!(Pages::default().take("v/", &ok).is_ok());
    }

    #[test]
    fn an_answer_of_another_version_or_length_is_told_apart() {
        let listed = ("\"abc\"", true, 100);
        assert!(same_version(listed, Some("\"abc\""), Some(100)));
        assert!(same_version(listed, Some("W/\"abc\""), None));
        assert!(same_version(listed, Some("abc"), None), "unquoted");
        assert!(same_version(listed, None, None));
        assert!(!same_version(listed, Some("\"xyz\""), Some(100)));
        assert!(!same_version(listed, Some("\"abc\""), Some(101)));
        // A made-up tag is not the store's: the store's own is not compared with it.
        assert!(same_version(
            ("\"zc-64-0\"", false, 100),
            Some("\"xyz\""),
            Some(100)
        ));
    }
}
