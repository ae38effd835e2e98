//! The block cache's bookkeeping, pure: which blocks are held, in what order they were last used,
//! and which go when the bytes held pass the limit. Unit-tested without I/O.

use bytes::Bytes;
use std::collections::BTreeMap;

/// A block of an object: the object's id within this process and the block's number.
pub(crate) type Key = (u64, u64);

/// Blocks by key, least recently used first out, bounded by their total length. Ordered by
/// key, so an object's blocks are found without going through every other's.
#[derive(Debug, Default)]
pub(crate) struct Lru {
    blocks: BTreeMap<Key, (Bytes, u64)>,
    order: BTreeMap<u64, Key>,
    tick: u64,
    held: u64,
    limit: u64,
}

impl Lru {
    pub(crate) fn new(limit: u64) -> Self {
        Lru {
            limit,
            ..Lru::default()
        }
    }

    /// The block, marked as used now.
    pub(crate) fn get(&mut self, key: Key) -> Option<Bytes> {
        let tick = self.next_tick();
        let (b, used) = self.blocks.get_mut(&key)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, key);
        Some(b.clone())
    }

    /// Whether the block is held (not counted as a use).
    pub(crate) fn contains(&self, key: Key) -> bool {
        self.blocks.contains_key(&key)
    }

    /// Keeps a block (replacing one under the same key), then lets the least recently used go
    /// until the rest fit the limit; returns how many went. The block just put is kept even
    /// when it alone passes the limit: a response holds it anyway while it is written.
    pub(crate) fn put(&mut self, key: Key, block: Bytes) -> usize {
        let tick = self.next_tick();
        self.held += block.len() as u64;
        if let Some((old, used)) = self.blocks.insert(key, (block, tick)) {
            self.held -= old.len() as u64;
            self.order.remove(&used);
        }
        self.order.insert(tick, key);
        let mut evicted = 0;
        while self.held > self.limit && self.order.len() > 1 {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((b, _)) = self.blocks.remove(&oldest) {
                self.held -= b.len() as u64;
                evicted += 1;
            }
        }
        evicted
    }

    /// Drops every block of an object (it changed, or left the library).
    pub(crate) fn forget(&mut self, object: u64) {
        let keys: Vec<Key> = self
            .blocks
            .range((object, 0)..=(object, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            if let Some((b, used)) = self.blocks.remove(&k) {
                self.held -= b.len() as u64;
                self.order.remove(&used);
            }
        }
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// The bytes held.
    pub(crate) fn held(&self) -> u64 {
        self.held
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.blocks.len()
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: usize) -> Bytes {
        Bytes::from(vec![0u8; n])
    }

    #[test]
    fn the_least_recently_used_block_goes_first_when_the_limit_is_passed() {
        let mut c = Lru::new(300);
        c.put((1, 0), block(100));
        c.put((1, 1), block(100));
        c.put((1, 2), block(100));
        assert!(c.get((1, 0)).is_some()); // 0 is now the most recently used
        assert_eq!(c.put((1, 3), block(100)), 1);
        assert!(c.contains((1, 0)) && !c.contains((1, 1)));
        assert!(c.contains((1, 2)) && c.contains((1, 3)));
        assert_eq!(c.held(), 300);
    }

    #[test]
    fn a_block_larger_than_the_limit_is_kept_alone() {
        let mut c = Lru::new(50);
        c.put((1, 0), block(40));
        assert_eq!(c.put((1, 1), block(100)), 1);
        assert_eq!(c.len(), 1);
        assert!(c.get((1, 1)).is_some());
    }

    #[test]
    fn putting_a_block_again_replaces_it_and_counts_it_once() {
        let mut c = Lru::new(1000);
        c.put((1, 0), block(100));
        c.put((1, 0), block(60));
        assert_eq!(c.held(), 60);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn forgetting_an_object_drops_only_its_blocks() {
        let mut c = Lru::new(1000);
        c.put((1, 0), block(10));
        c.put((2, 0), block(20));
        c.put((1, 5), block(30));
        c.forget(1);
        assert_eq!(c.held(), 20);
        assert!(c.contains((2, 0)) && !c.contains((1, 5)));
    }

    /// The model: random puts, gets and forgets never let the count drift from the blocks held,
    /// nor the bytes stay over the limit with more than one block held.
    #[test]
    fn held_bytes_match_the_blocks_and_stay_bounded_under_random_use() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut c = Lru::new(1_000);
        for _ in 0..20_000 {
            let key = (rng.u64(0..4), rng.u64(0..20));
            match rng.u8(0..10) {
                0 => c.forget(key.0),
                1..=4 => {
                    c.get(key);
                }
                _ => {
                    c.put(key, block(rng.usize(1..300)));
                }
            }
            let sum: u64 = c.blocks.values().map(|(b, _)| b.len() as u64).sum();
            assert_eq!(sum, c.held());
            assert_eq!(c.order.len(), c.blocks.len());
            assert!(c.held() <= 1_000 || c.len() == 1);
        }
    }
}
