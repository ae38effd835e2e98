//! Conditional requests (RFC 9110 §13) evaluated in the order of §13.2.2. Sans-I/O.

use http::header::{IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE};
use http::HeaderMap;
use std::time::SystemTime;

/// The validators of a representation.
#[derive(Debug, Clone, Copy)]
pub struct Validators<'a> {
    /// The entity tag, with its quotes: `"1f2e-1a"` (strong), or `W/"…"` (weak: a growing
    /// recording's, which no strong comparison passes).
    pub etag: &'a str,
    /// Truncated to whole seconds; `None` for a representation without one (a live segment):
    /// date conditions are then ignored (RFC 9110 §13.1.3, §13.1.4) and a date in `If-Range`
    /// never matches.
    pub last_modified: Option<SystemTime>,
}

/// What the preconditions decide before any range is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Carry on; `ranges_allowed` is false when `If-Range` did not match (send the whole entity).
    Proceed {
        ranges_allowed: bool,
    },
    NotModified,
    Failed,
}

fn header(h: &HeaderMap, name: http::header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s.trim()).ok()
}

/// Whether an `If-Match`/`If-None-Match` list contains our tag (which is weak itself when it
/// begins with `W/`: a growing recording's). `weak` selects weak comparison (`W/"x"` matches
/// `"x"` and `W/"x"`), used by If-None-Match; If-Match uses the strong comparison, which no weak
/// tag passes.
fn list_matches(list: &str, etag: &str, weak: bool) -> bool {
    let (ours_weak, ours) = match etag.strip_prefix("W/") {
        Some(e) => (true, e),
        None => (false, etag),
    };
    list.split(',').map(str::trim).any(|t| {
        if t == "*" {
            return true;
        }
        let (theirs_weak, theirs) = match t.strip_prefix("W/") {
            Some(e) => (true, e),
            None => (false, t),
        };
        theirs == ours && (weak || !(ours_weak || theirs_weak))
    })
}

/// RFC 9110 §13.2.2, steps 1-5, for GET and HEAD.
pub fn evaluate(h: &HeaderMap, v: Validators<'_>, has_range: bool) -> Precondition {
    // 1. If-Match (strong), else 2. If-Unmodified-Since.
    if let Some(m) = header(h, IF_MATCH) {
        if !list_matches(m, v.etag, false) {
            return Precondition::Failed;
        }
    } else if let Some(d) = header(h, IF_UNMODIFIED_SINCE).and_then(date) {
        if v.last_modified.is_some_and(|lm| lm > d) {
            return Precondition::Failed;
        }
    }
    // 3. If-None-Match (weak), else 4. If-Modified-Since.
    if let Some(m) = header(h, IF_NONE_MATCH) {
        if list_matches(m, v.etag, true) {
            return Precondition::NotModified;
        }
    } else if let Some(d) = header(h, IF_MODIFIED_SINCE).and_then(date) {
        if v.last_modified.is_some_and(|lm| lm <= d) {
            return Precondition::NotModified;
        }
    }
    // 5. If-Range: an entity tag must match strongly (a weak tag never does); a date must equal
    // Last-Modified exactly. Anything else means "send the whole representation".
    let ranges_allowed = match header(h, IF_RANGE).map(str::trim) {
        None => true,
        Some(_) if !has_range => true,
        Some(t) if t.starts_with('"') => t == v.etag,
        Some(t) if t.starts_with("W/") => false,
        Some(t) => v.last_modified.is_some_and(|lm| date(t) == Some(lm)),
    };
    Precondition::Proceed { ranges_allowed }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn v() -> Validators<'static> {
        Validators {
            etag: "\"abc\"",
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        }
    }

    fn eval(pairs: &[(&'static str, &str)], range: bool) -> Precondition {
        let mut h = HeaderMap::new();
        for (k, val) in pairs {
            h.insert(*k, val.parse().unwrap());
        }
        evaluate(&h, v(), range)
    }

    const LM: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
    const EARLIER: &str = "Tue, 14 Nov 2023 22:13:19 GMT";
    const OK: Precondition = Precondition::Proceed {
        ranges_allowed: true,
    };
    const WHOLE: Precondition = Precondition::Proceed {
        ranges_allowed: false,
    };

    #[test]
    fn order_of_section_13_2_2() {
        assert_eq!(eval(&[], true), OK);
        assert_eq!(
            eval(&[("if-match", "\"zzz\"")], false),
            Precondition::Failed
        );
        assert_eq!(
            eval(&[("if-match", "W/\"abc\"")], false),
            Precondition::Failed
        );
        assert_eq!(eval(&[("if-match", "\"x\", \"abc\"")], false), OK);
        assert_eq!(
            eval(&[("if-unmodified-since", EARLIER)], false),
            Precondition::Failed
        );
        assert_eq!(
            eval(&[("if-none-match", "W/\"abc\"")], false),
            Precondition::NotModified
        );
        assert_eq!(
            eval(&[("if-none-match", "*")], false),
            Precondition::NotModified
        );
        assert_eq!(eval(&[("if-none-match", "\"other\"")], false), OK);
        assert_eq!(
            eval(&[("if-modified-since", LM)], false),
            Precondition::NotModified
        );
        assert_eq!(eval(&[("if-modified-since", EARLIER)], false), OK);
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(
            eval(
                &[("if-none-match", "\"other\""), ("if-modified-since", LM)],
                false
            ),
            OK
        );
    }

    #[test]
    fn without_a_last_modified_date_conditions_are_ignored_and_if_range_dates_never_match() {
        let mut h = HeaderMap::new();
        h.insert(IF_MODIFIED_SINCE, LM.parse().unwrap());
        h.insert(IF_UNMODIFIED_SINCE, EARLIER.parse().unwrap());
        let none = Validators {
            etag: "\"abc\"",
            last_modified: None,
        };
        assert_eq!(evaluate(&h, none, false), OK);
        let mut r = HeaderMap::new();
        r.insert(IF_RANGE, LM.parse().unwrap());
        assert_eq!(evaluate(&r, none, true), WHOLE);
        r.insert(IF_RANGE, "\"abc\"".parse().unwrap());
        assert_eq!(evaluate(&r, none, true), OK);
    }

    /// A weak tag of ours (a growing recording's, `W/"..."`): If-None-Match compares weakly, so
    /// the tag the client was given matches and a 304 saves the body; If-Match and If-Range
    /// compare strongly, which a weak tag never passes.
    #[test]
    fn a_weak_tag_of_ours_matches_if_none_match_and_never_if_match_or_if_range() {
        let weak = Validators {
            etag: "W/\"abc\"",
            last_modified: None,
        };
        let with = |k: &'static str, val: &str, range: bool| {
            let mut h = HeaderMap::new();
            h.insert(k, val.parse().unwrap());
            evaluate(&h, weak, range)
        };
        assert_eq!(
            with("if-none-match", "W/\"abc\"", false),
            Precondition::NotModified
        );
        assert_eq!(
            with("if-none-match", "\"abc\"", false),
            Precondition::NotModified
        );
        assert_eq!(with("if-none-match", "W/\"abd\"", false), OK);
        assert_eq!(with("if-match", "W/\"abc\"", false), Precondition::Failed);
        assert_eq!(with("if-match", "\"abc\"", false), Precondition::Failed);
        assert_eq!(with("if-range", "W/\"abc\"", true), WHOLE);
    }

    #[test]
    fn if_range_is_strong_only() {
        assert_eq!(eval(&[("if-range", "\"abc\"")], true), OK);
        assert_eq!(eval(&[("if-range", "W/\"abc\"")], true), WHOLE);
        assert_eq!(eval(&[("if-range", "\"old\"")], true), WHOLE);
        assert_eq!(eval(&[("if-range", LM)], true), OK);
        assert_eq!(eval(&[("if-range", EARLIER)], true), WHOLE);
        assert_eq!(eval(&[("if-range", "garbage")], true), WHOLE);
    }
}
