//! The order index: (user, user order id) → arena slot, for every resting order.
//!
//! Hand-written open addressing with linear probing and backward-shift deletion, instead of
//! `HashMap`, because on the hot path the index is touched once or twice per message at a
//! random place in a table of hundreds of thousands of entries, i.e. it is a cache miss, and
//! the layout decides how many: here an entry (key and slot, 16 bytes) is read in one access,
//! where a SwissTable reads its control bytes and then the entry (two misses when cold, which
//! profiling showed as the largest single cost of cancels). Knowing the bucket address also
//! lets the engine prefetch the entry of a message before it is processed
//! (`Engine::prefetch`). No tombstones: deletion shifts the following entries back, so probe
//! sequences stay short however many orders come and go, and a steady population never
//! allocates. Key 0 (user 0, order 0) marks an empty bucket: that id is always rejected
//! (code 10), so it never rests.

/// An empty bucket's key.
const EMPTY: u64 = 0;

/// Smallest table.
const MIN_CAPACITY: usize = 16;

#[derive(Clone, Copy)]
struct Entry {
    key: u64,
    slot: u32,
}

const VACANT: Entry = Entry {
    key: EMPTY,
    slot: 0,
};

/// Map from a non-zero u64 order key to a u32 slot.
pub(crate) struct OrderIndex {
    entries: Vec<Entry>,
    /// `entries.len() - 1` (the length is a power of two).
    mask: usize,
    /// 64 - log2(entries.len()): the hash takes the top bits of a multiplicative hash.
    shift: u32,
    len: usize,
}

impl Default for OrderIndex {
    fn default() -> OrderIndex {
        OrderIndex::with_buckets(MIN_CAPACITY)
    }
}

impl OrderIndex {
    fn with_buckets(buckets: usize) -> OrderIndex {
        debug_assert!(buckets.is_power_of_two());
        OrderIndex {
            entries: vec![VACANT; buckets],
            mask: buckets - 1,
            shift: 64 - buckets.trailing_zeros(),
            len: 0,
        }
    }

    /// Home bucket of a key (Fibonacci hashing: multiply, keep the top bits).
    #[inline]
    fn home(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Buckets needed to hold `n` entries at the maximum load (3/4).
    fn buckets_for(n: usize) -> usize {
        (n.saturating_mul(4) / 3 + 1)
            .max(MIN_CAPACITY)
            .next_power_of_two()
    }

    /// Makes room for `additional` more entries without growing.
    pub fn reserve(&mut self, additional: usize) {
        let buckets = Self::buckets_for(self.len.saturating_add(additional));
        if buckets > self.entries.len() {
            self.rehash(buckets);
        }
    }

    fn rehash(&mut self, buckets: usize) {
        let old = std::mem::replace(self, OrderIndex::with_buckets(buckets));
        for e in old.entries {
            if e.key != EMPTY {
                self.insert(e.key, e.slot);
            }
        }
    }

    /// Bucket holding `key`, if present.
    #[inline]
    fn find(&self, key: u64) -> Option<usize> {
        if key == EMPTY {
            return None;
        }
        let mut i = self.home(key);
        loop {
            let k = self.entries[i].key;
            if k == key {
                return Some(i);
            }
            if k == EMPTY {
                return None;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The slot of `key`.
    #[inline]
    pub fn get(&self, key: u64) -> Option<u32> {
        self.find(key).map(|i| self.entries[i].slot)
    }

    /// True when `key` is present.
    #[inline]
    pub fn contains_key(&self, key: u64) -> bool {
        self.find(key).is_some()
    }

    /// Inserts or replaces `key`.
    #[inline]
    pub fn insert(&mut self, key: u64, slot: u32) {
        debug_assert_ne!(key, EMPTY, "key 0 marks empty buckets");
        if (self.len + 1) * 4 > self.entries.len() * 3 {
            self.rehash(self.entries.len() * 2);
        }
        let mut i = self.home(key);
        loop {
            let e = &mut self.entries[i];
            if e.key == key {
                e.slot = slot;
                return;
            }
            if e.key == EMPTY {
                *e = Entry { key, slot };
                self.len += 1;
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Removes `key`, returning its slot.
    #[inline]
    pub fn remove(&mut self, key: u64) -> Option<u32> {
        let mut hole = self.find(key)?;
        let slot = self.entries[hole].slot;
        self.len -= 1;
        // Backward shift: move back every following entry of the cluster that may live in the
        // hole (its home is not cyclically between the hole and its bucket).
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let e = self.entries[j];
            if e.key == EMPTY {
                break;
            }
            let home = self.home(e.key);
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                self.entries[hole] = e;
                hole = j;
            }
        }
        self.entries[hole] = VACANT;
        Some(slot)
    }

    /// Hints the CPU to fetch the bucket where `key` would be found (no effect on results).
    #[inline]
    pub fn prefetch(&self, key: u64) {
        prefetch_ptr(self.entries.as_ptr().wrapping_add(self.home(key)));
    }
}

/// Hints the CPU to fetch the cache line at `p` (no effect on results; never faults).
#[inline]
pub(crate) fn prefetch_ptr<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults, whatever the address, and has no
    // observable effect.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        #[test]
        fn behaves_like_a_hash_map(ops in proptest::collection::vec((0u8..3, 1u64..64, any::<u32>()), 0..400)) {
            let mut ix = OrderIndex::default();
            let mut model = HashMap::new();
            for (op, key, slot) in ops {
                match op {
                    0 => { ix.insert(key, slot); model.insert(key, slot); }
                    1 => prop_assert_eq!(ix.remove(key), model.remove(&key)),
                    _ => prop_assert_eq!(ix.get(key), model.get(&key).copied()),
                }
                prop_assert_eq!(ix.len(), model.len());
            }
            for (k, v) in &model {
                prop_assert_eq!(ix.get(*k), Some(*v));
            }
        }
    }

    #[test]
    fn grows_and_keeps_everything() {
        let mut ix = OrderIndex::default();
        for k in 1..10_000u64 {
            ix.insert(k << 32 | (k * 7), k as u32);
        }
        for k in (1..10_000u64).step_by(2) {
            assert_eq!(ix.remove(k << 32 | (k * 7)), Some(k as u32));
        }
        for k in 1..10_000u64 {
            let want = (k % 2 == 0).then_some(k as u32);
            assert_eq!(ix.get(k << 32 | (k * 7)), want);
        }
        assert_eq!(ix.get(0), None, "key 0 is never present");
        ix.reserve(100_000);
        assert_eq!(ix.len(), 4_999);
        ix.prefetch(12345);
    }
}
