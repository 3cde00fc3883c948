//! The open-addressing table behind the order index ((user, user order id) → arena slot, for
//! every resting order) and behind the per-user counts of `users.rs`: one implementation,
//! generic over the value, so both get the same probing and deletion.
//!
//! Hand-written open addressing with linear probing and backward-shift deletion, instead of
//! `HashMap`, because on the hot path the order index is touched once or twice per message at
//! a random place in a table of hundreds of thousands of entries, i.e. it is a cache miss, and
//! the layout decides how many: here an entry (key and value, 16 bytes for a `u32` or a pair of
//! them) is read in one access, where a SwissTable reads its control bytes and then the entry
//! (two misses when cold, which profiling showed as the largest single cost of cancels).
//! Knowing the bucket address also lets the engine prefetch the entry of a message before it is
//! processed (`Engine::prefetch`). No tombstones: deletion shifts the following entries back,
//! so probe sequences stay short however many keys come and go, and a steady population never
//! allocates. Key 0 marks an empty bucket: the order index's key 0 is (user 0, order 0), which
//! is always rejected (code 10) so it never rests, and `users.rs` offsets its keys to avoid 0.

/// An empty bucket's key.
pub(crate) const EMPTY: u64 = 0;

/// Smallest table.
pub(crate) const MIN_CAPACITY: usize = 16;

/// One bucket.
#[derive(Clone, Copy)]
struct Entry<V> {
    key: u64,
    value: V,
}

/// Map from a non-zero u64 key to a small `Copy` value. Linear probing, Fibonacci hashing,
/// backward-shift deletion, at most 3/4 full.
pub(crate) struct Table<V> {
    entries: Vec<Entry<V>>,
    /// `entries.len() - 1` (the length is a power of two).
    mask: usize,
    /// 64 - log2(entries.len()): the hash takes the top bits of a multiplicative hash.
    shift: u32,
    len: usize,
}

/// The order index: order key (user << 32 | user order id) → arena slot.
pub(crate) type OrderIndex = Table<u32>;

impl<V: Copy + Default> Default for Table<V> {
    fn default() -> Table<V> {
        Table::with_buckets(MIN_CAPACITY)
    }
}

impl<V: Copy + Default> Table<V> {
    /// An empty table of `buckets` buckets (a power of two).
    pub fn with_buckets(buckets: usize) -> Table<V> {
        debug_assert!(buckets.is_power_of_two());
        let vacant = Entry {
            key: EMPTY,
            value: V::default(),
        };
        Table {
            entries: vec![vacant; buckets],
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
        let old = std::mem::replace(self, Table::with_buckets(buckets));
        for e in old.entries {
            if e.key != EMPTY {
                *self.get_or_insert(e.key, e.value) = e.value;
            }
        }
    }

    /// Bucket holding `key`, if present.
    #[inline]
    pub fn find(&self, key: u64) -> Option<usize> {
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

    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: u64) -> Option<V> {
        self.find(key).map(|i| self.entries[i].value)
    }

    /// True when `key` is present.
    #[inline]
    pub fn contains_key(&self, key: u64) -> bool {
        self.find(key).is_some()
    }

    /// The value in bucket `i` (from [`Table::find`]).
    #[inline]
    pub fn value_mut(&mut self, i: usize) -> &mut V {
        &mut self.entries[i].value
    }

    /// The value of `key`, inserted as `value` when absent.
    #[inline]
    pub fn get_or_insert(&mut self, key: u64, value: V) -> &mut V {
        debug_assert_ne!(key, EMPTY, "key 0 marks empty buckets");
        if (self.len + 1) * 4 > self.entries.len() * 3 {
            self.rehash(self.entries.len() * 2);
        }
        let mut i = self.home(key);
        loop {
            let k = self.entries[i].key;
            if k == key {
                break;
            }
            if k == EMPTY {
                self.entries[i] = Entry { key, value };
                self.len += 1;
                break;
            }
            i = (i + 1) & self.mask;
        }
        &mut self.entries[i].value
    }

    /// Inserts or replaces `key`.
    #[inline]
    pub fn insert(&mut self, key: u64, value: V) {
        *self.get_or_insert(key, value) = value;
    }

    /// Removes `key`, returning its value.
    #[inline]
    pub fn remove(&mut self, key: u64) -> Option<V> {
        let i = self.find(key)?;
        let value = self.entries[i].value;
        self.remove_at(i);
        Some(value)
    }

    /// Empties bucket `hole` (which holds an entry): backward shift, moving back every
    /// following entry of the cluster that may live in the hole (its home is not cyclically
    /// between the hole and its bucket).
    #[inline]
    pub fn remove_at(&mut self, mut hole: usize) {
        self.len -= 1;
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
        self.entries[hole].key = EMPTY;
    }

    /// Removes every entry, keeping the buckets.
    pub fn clear(&mut self) {
        if self.len > 0 {
            for e in &mut self.entries {
                e.key = EMPTY;
            }
            self.len = 0;
        }
    }

    /// Every (key, value), in bucket order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, V)> + '_ {
        self.entries
            .iter()
            .filter(|e| e.key != EMPTY)
            .map(|e| (e.key, e.value))
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
