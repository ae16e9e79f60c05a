//! A set of 128-bit key hashes that costs about 16 bytes a hash, however many it holds.
//!
//! The chain remembers every key its created entries were given ([`super::claims`]): with a
//! whole-tree duplicate, a million of them. A hash set of a million 16-byte hashes takes 34 MB at
//! its load factor, and 51 MB while it grows, more than the rest of a no-change sync (41 MiB at a
//! million files). Here the newest hashes go to a small set, which is merged into one sorted
//! vector once it holds 65,536 (or a sixteenth of the vector, so the merges stay linear in all).
//! The merge runs in place from the back, and the vector's room is reserved large from the
//! start: the allocator gives an allocation that large (over glibc's 32 MiB mmap threshold) its
//! own mapping, whose pages become resident only as they are written, and grows it by remapping,
//! so neither a merge nor a growth holds two copies. A lookup is a probe of the small set and a
//! search of the vector that starts where a uniform hash should be and gallops from there: a few
//! neighbouring cache lines rather than a binary search's twenty scattered probes.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes the small set holds before it is merged, at least.
const RECENT: usize = 65_536;
/// Hashes the vector has room for from its first merge on: 64 MiB of address space, resident
/// only as it fills.
const ROOM: usize = 1 << 22;

#[derive(Default)]
pub(super) struct KeyHashes {
    recent: HashSet<u128, BuildHasherDefault<Spread>>,
    sorted: Vec<u128>,
}

impl KeyHashes {
    pub fn contains(&self, hash: u128) -> bool {
        self.recent.contains(&hash) || holds(&self.sorted, hash)
    }

    /// Adds `hash`; false when it was there already.
    pub fn insert(&mut self, hash: u128) -> bool {
        if holds(&self.sorted, hash) || !self.recent.insert(hash) {
            return false;
        }
        if self.recent.len() >= RECENT.max(self.sorted.len() / 16) {
            self.merge();
        }
        true
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.recent.len() + self.sorted.len()
    }

    /// Moves the small set into the vector, keeping it sorted.
    fn merge(&mut self) {
        let mut recent: Vec<u128> = self.recent.drain().collect();
        recent.sort_unstable();
        let old = self.sorted.len();
        if self.sorted.capacity() == 0 {
            self.sorted = Vec::with_capacity(ROOM);
        }
        self.sorted.resize(old + recent.len(), 0);
        let (mut from, mut to) = (old, old + recent.len());
        while let Some(&next) = recent.last() {
            to -= 1;
            if from > 0 && self.sorted[from - 1] > next {
                from -= 1;
                self.sorted[to] = self.sorted[from];
            } else {
                self.sorted[to] = next;
                recent.pop();
            }
        }
    }
}

/// Whether `sorted` holds `hash`, looked for from where a uniform hash would be.
fn holds(sorted: &[u128], hash: u128) -> bool {
    let len = sorted.len();
    if len == 0 {
        return false;
    }
    let guess = (((hash >> 64) * len as u128) >> 64) as usize;
    // `hash`, if there, is in `sorted[low..high]`: each step moves past entries known to be on
    // the wrong side of it.
    let (mut low, mut high, mut step) = (guess, guess + 1, 1);
    while low > 0 && sorted[low] > hash {
        high = low;
        low = low.saturating_sub(step);
        step *= 2;
    }
    while high < len && sorted[high - 1] < hash {
        low = high;
        high = (high + step).min(len);
        step *= 2;
    }
    sorted[low..high].binary_search(&hash).is_ok()
}

/// The hasher of a set whose keys are already uniform hashes: it keeps their low bits.
#[derive(Default)]
pub(super) struct Spread(u64);

impl Hasher for Spread {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, RandomState};

    #[test]
    fn holds_what_a_hash_set_holds_across_merges() {
        let seed = RandomState::new();
        let hash = |i: u64| (u128::from(seed.hash_one(i)) << 64) | u128::from(seed.hash_one(!i));
        let mut set = KeyHashes::default();
        let n = 3 * RECENT as u64 + 17;
        for i in 0..n {
            assert!(set.insert(hash(i)), "{i} is new");
            assert!(!set.insert(hash(i / 2)), "{} was added before", i / 2);
        }
        assert_eq!(set.len() as u64, n);
        assert!(set.sorted.len() >= 3 * RECENT && set.sorted.is_sorted(), "merged, in order");
        assert!((0..n).all(|i| set.contains(hash(i))));
        assert!((n..n + 10_000).all(|i| !set.contains(hash(i))));
    }

    #[test]
    fn the_search_from_a_guess_finds_what_a_binary_search_finds_whatever_the_spread() {
        let seed = RandomState::new();
        let spreads: [&dyn Fn(u64) -> u128; 3] =
            [&|i| (u128::from(seed.hash_one(i)) << 64) | u128::from(i), &|i| u128::from(i) * 3, &|i| {
                u128::MAX - u128::from(i) * 5
            }];
        for spread in spreads {
            let mut sorted: Vec<u128> = (0..5_000).map(spread).collect();
            sorted.sort_unstable();
            for probe in
                (0..5_000).map(spread).chain((0..5_000).map(|i| spread(i).wrapping_add(1))).chain([0, 1, u128::MAX])
            {
                assert_eq!(holds(&sorted, probe), sorted.binary_search(&probe).is_ok(), "{probe}");
            }
        }
    }

    #[test]
    fn a_merge_interleaves_both_sides() {
        let mut set = KeyHashes { sorted: vec![2, 4, 6], ..Default::default() };
        set.recent.extend([7, 1, 5, 3]);
        set.merge();
        assert_eq!(set.sorted, [1, 2, 3, 4, 5, 6, 7]);
        assert!(set.recent.is_empty() && set.contains(5) && !set.contains(8));
    }
}
