//! Instance numbers: what each publish of a stream names its segment, part and init URIs by
//! (`Stream::dir`). Unique within the process (a counter) and across restarts (a random key),
//! and not guessable from one seen: a viewer of a public stream who reads its instance in a
//! playlist learns nothing of another stream's, whose segments a deployment may guard only at
//! the playlist (`on_play`, which segments are not asked about).

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug)]
pub(super) struct Instances {
    next: AtomicU64,
    key: RandomState,
}

impl Instances {
    pub(super) fn new() -> Self {
        Instances {
            next: AtomicU64::new(0),
            key: RandomState::new(),
        }
    }

    /// The next publish's instance number.
    pub(super) fn next(&self) -> u64 {
        scramble(&self.key, self.next.fetch_add(1, Relaxed))
    }
}

/// A keyed permutation of the 64-bit numbers (a Feistel network of four rounds on the two
/// halves, keyed SipHash as its round function): distinct counters give distinct instances.
fn scramble(key: &RandomState, n: u64) -> u64 {
    let (mut left, mut right) = ((n >> 32) as u32, n as u32);
    for round in 0..4u8 {
        let f = key.hash_one((round, right)) as u32;
        (left, right) = (right, left ^ f);
    }
    (u64::from(left) << 32) | u64::from(right)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_distinct_and_do_not_follow_each_other() {
        let a = Instances::new();
        let seen: Vec<u64> = (0..10_000).map(|_| a.next()).collect();
        let distinct: std::collections::HashSet<u64> = seen.iter().copied().collect();
        assert_eq!(distinct.len(), seen.len());
        // No step between neighbours repeats (a counter's would be 1 each time).
        let steps: std::collections::HashSet<u64> =
            seen.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
        assert!(steps.len() > 9_990, "{} distinct steps", steps.len());
        // Another process (another key): other numbers.
        let b = Instances::new();
        assert_ne!(b.next(), seen[0]);
    }
}
