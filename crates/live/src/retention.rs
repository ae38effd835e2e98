//! How long a live segment stays fetchable after it left its playlist (RFC 8216 §6.2.2): for
//! its own duration plus that of the longest playlist that listed it, so that a player which
//! loaded that playlist just before it changed still gets every segment it names. Measured on
//! the media timeline (the durations of the segments cut since), sans-I/O.

use std::time::Duration;

/// Whether the oldest kept segment is still owed to players. `durations` are the kept
/// segments' durations, oldest first, all complete; the oldest left the playlist when the
/// `listed`-th one after it was complete (a playlist lists the newest `listed`, and `open`
/// more: what the segment being written adds to a low-latency playlist, at most). A segment
/// that is still listed is owed, whatever its age.
pub fn owed(mut durations: impl Iterator<Item = Duration>, listed: usize, open: Duration) -> bool {
    let Some(oldest) = durations.next() else {
        return false;
    };
    // The segments listed with it in the last playlist that did (`listed - 1` after it), the
    // one whose end made it leave, and all of them up to now.
    let (mut with_it, mut left_after, mut since, mut after) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO, 0usize);
    for d in durations {
        after += 1;
        if after < listed {
            with_it = with_it.saturating_add(d);
        }
        if after <= listed {
            left_after = left_after.saturating_add(d);
        }
        since = since.saturating_add(d);
    }
    if after < listed {
        return true;
    }
    // It left `left_after` after its end, and stays for itself and the playlist that last
    // listed it (itself, those after it in that playlist, and the open segment's share).
    let playlist = oldest.saturating_add(with_it).saturating_add(open);
    let until = left_after.saturating_add(oldest).saturating_add(playlist);
    since < until
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(v: &[u64]) -> impl Iterator<Item = Duration> + '_ {
        v.iter().map(|&s| Duration::from_secs(s))
    }

    #[test]
    fn a_listed_segment_is_owed() {
        assert!(owed(secs(&[2, 2, 2]), 3, Duration::ZERO));
        assert!(!owed(secs(&[]), 3, Duration::ZERO));
    }

    #[test]
    fn a_segment_that_left_stays_for_itself_and_the_playlist_that_last_listed_it() {
        // Two listed: the 2 s segment left when the second after it (4 s later) was complete,
        // and stays 2 s + the 4 s playlist + 1 s for the segment being written: until 11 s
        // after its end.
        let mut d = vec![2, 2, 2];
        while !d.is_empty() && owed(secs(&d), 2, Duration::from_secs(1)) {
            d.push(1);
        }
        let since: u64 = d[1..].iter().sum();
        assert_eq!(since, 11);
        // Longer segments listed with it keep it longer: it left 20 s after its end, and stays
        // for its 2 s and the 12 s playlist it was last in (itself and the first 10 s one).
        let mut d = vec![2, 10, 10];
        while owed(secs(&d), 2, Duration::ZERO) {
            d.push(2);
        }
        assert_eq!(d[1..].iter().sum::<u64>(), 34);
        // A long one pushed out by short ones (a segment cut short at a reconnect): it left 4 s
        // after its end, and stays for its 10 s and the 12 s playlist that held it: 26 s.
        let mut d = vec![10, 2, 2];
        while owed(secs(&d), 2, Duration::ZERO) {
            d.push(2);
        }
        assert_eq!(d[1..].iter().sum::<u64>(), 26);
    }
}
