//! One symbol's order book: two sides of price levels, each level a FIFO of arena nodes.
//!
//! Price levels of a side live in a `Vec<Level>` sorted so that the best level is the *last*
//! element. Both sides are kept ascending by a `key` (the price for bids, the bitwise
//! complement of the price for asks), so one code path serves both. Why this shape (see also
//! docs/engine.md):
//! - the best price is `levels.last()`: a cached best that can never go stale;
//! - consuming the best level during a sweep is a `pop()` (no shifting);
//! - most new orders and cancels land within a few levels of the touch, which is the end of
//!   the vector: the level is found by a short scan from the end (binary search beyond), and
//!   inserting a new level only shifts the few better levels after it;
//! - levels are contiguous 24-byte records, so scans are cache friendly, and the vector keeps
//!   its capacity when levels come and go: no allocation in steady state.

use crate::arena::{Arena, Node, NIL};
use crate::message::{Price, Qty, Side, Symbol};

/// How many levels from the touch are scanned linearly before falling back to binary search.
const NEAR_TOUCH: usize = 8;

/// One price level: a FIFO of nodes and the running total of their quantities.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Level {
    /// Sort key: the price for bids, `!price` for asks (best level has the largest key).
    pub key: u32,
    /// Oldest order (matched first).
    pub head: u32,
    /// Newest order.
    pub tail: u32,
    /// Sum of the remaining quantities (u64: many u32 quantities can exceed u32).
    pub total: u64,
}

/// Index of a side in [`Book::sides`].
#[inline]
pub(crate) fn side_index(side: Side) -> usize {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

/// The side at an index of [`Book::sides`].
#[inline]
pub(crate) fn side_at(index: usize) -> Side {
    if index == 0 {
        Side::Buy
    } else {
        Side::Sell
    }
}

/// Sort key of `price` on `side` (see [`Level::key`]).
#[inline]
pub(crate) fn level_key(side: Side, price: Price) -> u32 {
    match side {
        Side::Buy => price,
        Side::Sell => !price,
    }
}

/// Price of a level key on `side` (the key mapping is its own inverse).
#[inline]
pub(crate) fn key_price(side: Side, key: u32) -> Price {
    level_key(side, key)
}

/// Finds the level with `key` in an ascending slice: `Ok(index)` or `Err(insertion point)`.
#[inline]
pub(crate) fn find_level(levels: &[Level], key: u32) -> Result<usize, usize> {
    let n = levels.len();
    let stop = n.saturating_sub(NEAR_TOUCH);
    let mut i = n;
    while i > stop {
        let k = levels[i - 1].key;
        if k == key {
            return Ok(i - 1);
        }
        if k < key {
            return Err(i);
        }
        i -= 1;
    }
    levels[..stop].binary_search_by_key(&key, |l| l.key)
}

/// (best price, total at it) of a side, as compared for top-of-book changes.
pub(crate) type Top = Option<(Price, u64)>;

/// One symbol's book.
#[derive(Debug)]
pub(crate) struct Book {
    /// The book's symbol.
    pub symbol: Symbol,
    /// Bids (`[0]`) and asks (`[1]`), each ascending by key, best last.
    pub sides: [Vec<Level>; 2],
    /// Resting orders on both sides.
    pub orders: usize,
    /// True while the book is on the engine's list of emptied books to reclaim.
    pub listed: bool,
}

impl Book {
    /// An empty book.
    pub fn new(symbol: Symbol) -> Book {
        Book {
            symbol,
            sides: [Vec::new(), Vec::new()],
            orders: 0,
            listed: false,
        }
    }

    /// Best price and total quantity at it on side index `s`.
    #[inline]
    pub fn top(&self, s: usize) -> Top {
        self.sides[s]
            .last()
            .map(|l| (key_price(side_at(s), l.key), l.total))
    }

    /// Both sides' tops, for detecting top-of-book changes.
    #[inline]
    pub fn tops(&self) -> [Top; 2] {
        [self.top(0), self.top(1)]
    }

    /// True when an order of `qty` on `side` limited at `price` (0: market) would be filled
    /// completely by the opposite side as it is now. Walks only as many levels as needed; used
    /// on the rare path where the book is at capacity.
    pub fn would_fill(&self, side: Side, price: Price, qty: Qty) -> bool {
        let opp = 1 - side_index(side);
        let opp_side = side_at(opp);
        let mut left = u64::from(qty);
        for level in self.sides[opp].iter().rev() {
            let p = key_price(opp_side, level.key);
            if price != 0 && !crosses(side, price, p) {
                break;
            }
            if level.total >= left {
                return true;
            }
            left -= level.total;
        }
        false
    }

    /// Appends the order in `slot` (already filled in) at the tail of its price level,
    /// creating the level when needed.
    #[inline]
    pub fn rest(&mut self, arena: &mut Arena, slot: u32, side: Side, price: Price, qty: Qty) {
        let key = level_key(side, price);
        let levels = &mut self.sides[side_index(side)];
        match find_level(levels, key) {
            Ok(i) => {
                let level = &mut levels[i];
                let tail = level.tail;
                arena.get_mut(slot).prev = tail;
                arena.get_mut(tail).next = slot;
                level.tail = slot;
                level.total += u64::from(qty);
            }
            Err(i) => levels.insert(
                i,
                Level {
                    key,
                    head: slot,
                    tail: slot,
                    total: u64::from(qty),
                },
            ),
        }
        self.orders += 1;
    }

    /// Removes the resting order in `slot` from its level (dropping the level when it empties).
    /// The caller frees the slot and removes it from the order index.
    #[inline]
    pub fn unlink(&mut self, arena: &mut Arena, slot: u32) {
        let node = *arena.get(slot);
        let side = node.side();
        let levels = &mut self.sides[side_index(side)];
        let Ok(i) = find_level(levels, level_key(side, node.price)) else {
            debug_assert!(false, "resting order without its level");
            return;
        };
        unlink_in_level(&mut levels[i], arena, slot);
        if levels[i].head == NIL {
            levels.remove(i);
        }
        self.orders -= 1;
    }
}

/// Unlinks `slot` from `level`'s FIFO and takes its quantity off the level's total (the level
/// may be left empty: `head == NIL`).
#[inline]
pub(crate) fn unlink_in_level(level: &mut Level, arena: &mut Arena, slot: u32) {
    let Node {
        prev, next, qty, ..
    } = *arena.get(slot);
    if prev == NIL {
        level.head = next;
    } else {
        arena.get_mut(prev).next = next;
    }
    if next == NIL {
        level.tail = prev;
    } else {
        arena.get_mut(next).prev = prev;
    }
    level.total -= u64::from(qty);
}

/// True when an incoming order on `side` limited at `limit` trades with a resting order at
/// `resting` on the other side.
#[inline]
pub(crate) fn crosses(side: Side, limit: Price, resting: Price) -> bool {
    match side {
        Side::Buy => resting <= limit,
        Side::Sell => resting >= limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels(keys: &[u32]) -> Vec<Level> {
        keys.iter()
            .map(|&key| Level {
                key,
                head: NIL,
                tail: NIL,
                total: 0,
            })
            .collect()
    }

    #[test]
    fn find_level_agrees_with_binary_search_near_and_far_from_the_touch() {
        let keys: Vec<u32> = (0..40).map(|k| k * 2 + 10).collect();
        let lv = levels(&keys);
        for probe in 0..100 {
            assert_eq!(
                find_level(&lv, probe),
                keys.binary_search(&probe),
                "probe {probe}"
            );
        }
        assert_eq!(find_level(&[], 5), Err(0));
    }

    #[test]
    fn ask_keys_put_the_lowest_price_last() {
        assert!(level_key(Side::Sell, 10) > level_key(Side::Sell, 11));
        assert!(level_key(Side::Buy, 11) > level_key(Side::Buy, 10));
        assert_eq!(key_price(Side::Sell, level_key(Side::Sell, 77)), 77);
    }
}
