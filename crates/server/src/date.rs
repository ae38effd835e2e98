//! The `Date` header value, formatted once a second per thread (as nginx keeps
//! `ngx_cached_http_time`).

use std::cell::RefCell;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    static CACHE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

/// Calls `f` with the current HTTP date (IMF-fixdate, 29 bytes).
pub fn now<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    let t = SystemTime::now();
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            text.clear();
            let _ = write!(text, "{}", httpdate::HttpDate::from(t));
            *at = secs;
        }
        f(text)
    })
}

#[cfg(test)]
mod tests {
    use super::now;
    use std::time::{Duration, SystemTime};

    #[test]
    fn cached_date_is_an_http_date_of_now_and_stays_put_within_the_second() {
        let text = now(|d| String::from_utf8(d.to_vec()).unwrap());
        assert_eq!(text.len(), 29, "{text}");
        let parsed = httpdate::parse_http_date(&text).unwrap();
        let off = SystemTime::now()
            .duration_since(parsed)
            .unwrap_or_else(|e| e.duration());
        assert!(off <= Duration::from_secs(1), "{text} vs now");
        // Asked again at once, it is either the same text or the next second's.
        let again = now(|d| httpdate::parse_http_date(std::str::from_utf8(d).unwrap()).unwrap());
        assert!(again >= parsed && again <= parsed + Duration::from_secs(1));
    }
}
