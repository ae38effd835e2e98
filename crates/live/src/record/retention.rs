//! Which finished recording files retention removes: those older than the age limit, then the
//! oldest until the rest fit the byte limit. The file being written is never one of them (the
//! shell does not list it).

use std::time::Duration;

/// How much of a rule's recordings is kept (`None`: no limit of that kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Keep {
    pub max_age: Option<Duration>,
    pub max_bytes: Option<u64>,
}

/// A finished recording file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// When it began, in Unix milliseconds.
    pub started_ms: u64,
    pub bytes: u64,
}

/// The positions in `files` of those to remove at `now_ms` (Unix milliseconds), oldest first.
/// A file's age is counted from its start.
pub fn expired(files: &[Finished], now_ms: u64, keep: Keep) -> Vec<usize> {
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|&i| files[i].started_ms);
    let mut gone = Vec::new();
    let mut total: u64 = files.iter().map(|f| f.bytes).fold(0, u64::saturating_add);
    for i in order {
        let f = &files[i];
        let old = keep.max_age.is_some_and(|age| {
            now_ms.saturating_sub(f.started_ms) > u64::try_from(age.as_millis()).unwrap_or(u64::MAX)
        });
        let over = keep.max_bytes.is_some_and(|max| total > max);
        if !(old || over) {
            break;
        }
        total -= f.bytes;
        gone.push(i);
    }
    gone
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(started_ms: u64, bytes: u64) -> Finished {
        Finished { started_ms, bytes }
    }

    #[test]
    fn nothing_goes_without_a_limit() {
        let files = [f(0, 100), f(1, 100)];
        assert!(expired(&files, 1_000_000, Keep::default()).is_empty());
    }

    #[test]
    fn files_older_than_the_age_limit_go_oldest_first() {
        let files = [f(5_000, 1), f(1_000, 1), f(9_000, 1)];
        let keep = Keep {
            max_age: Some(Duration::from_secs(4)),
            max_bytes: None,
        };
        assert_eq!(expired(&files, 10_000, keep), [1, 0]);
        assert!(expired(&files, 5_000, keep).is_empty());
    }

    #[test]
    fn the_oldest_go_until_the_rest_fit_the_byte_limit() {
        let files = [f(3, 40), f(1, 50), f(2, 30), f(4, 10)];
        let keep = Keep {
            max_age: None,
            max_bytes: Some(60),
        };
        // 130 bytes: drop 50 (80 left), drop 30 (50 left) and stop.
        assert_eq!(expired(&files, 0, keep), [1, 2]);
        let all_fit = Keep {
            max_bytes: Some(130),
            ..keep
        };
        assert!(expired(&files, 0, all_fit).is_empty());
    }
}
