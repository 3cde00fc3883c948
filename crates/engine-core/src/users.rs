//! What each user holds, for the per-user caps (`EngineConfig::max_orders_per_user`,
//! `EngineConfig::max_symbols_per_user`): how many orders it has resting, and in how many books.
//!
//! Counted in two small open-addressing tables (the order index's table, `index.rs`, with two
//! counters as the value): user → (resting orders, books holding some), and (user, book) → resting orders
//! in that book, whose 0 ↔ 1 transitions move the user's book count. An entry exists only while
//! its counts are non-zero, so memory follows what rests, not every user ever seen.
//!
//! Counting is lazy, because it would otherwise cost table operations on every order that
//! rests, fills or is cancelled (a hash map did, and cost the server 13–20 % of its pipelined
//! throughput): a cap can only bind when the engine holds at least that many resting orders
//! (or books) in all, so while it holds fewer the engine answers the check from that bound and
//! nothing is counted. The first check the bound cannot answer starts the count with one pass
//! over the resting orders (`Engine::start_counting`); it stops again once the engine is well
//! below the cap and at least as many changes as that pass visited have been counted, so the
//! passes cost O(1) per change however the load swings.

use crate::index::{Table, MIN_CAPACITY};

/// Changes that counting must see after it starts before it may stop, on top of one per order
/// its starting pass visited (so that a load swinging around a cap cannot make the engine
/// recount on every order).
const START_MARGIN: usize = 64;

/// Map from a non-zero u64 key to two u32 counters (for a user: orders and books; for a
/// (user, book) pair: orders and 0); an entry is removed when both are 0. The order index's
/// table (`index.rs`) with a pair of counters as the value.
struct Counters(Table<(u32, u32)>);

impl Counters {
    fn new() -> Counters {
        Counters(Table::with_buckets(MIN_CAPACITY))
    }

    /// The counters of `key`, (0, 0) when absent.
    #[inline]
    fn get(&self, key: u64) -> (u32, u32) {
        self.0.get(key).unwrap_or((0, 0))
    }

    /// Adds `da` and `db` to the counters of `key` (inserting it at (0, 0)); returns the new
    /// values.
    #[inline]
    fn add(&mut self, key: u64, da: u32, db: u32) -> (u32, u32) {
        let v = self.0.get_or_insert(key, (0, 0));
        v.0 += da;
        v.1 += db;
        *v
    }

    /// Subtracts `da` and `db` from the counters of `key` (saturating; absent keys stay absent),
    /// removing the entry when both reach 0; returns the new values.
    #[inline]
    fn sub(&mut self, key: u64, da: u32, db: u32) -> (u32, u32) {
        let Some(i) = self.0.find(key) else {
            return (0, 0);
        };
        let v = self.0.value_mut(i);
        v.0 = v.0.saturating_sub(da);
        v.1 = v.1.saturating_sub(db);
        let now = *v;
        if now == (0, 0) {
            self.0.remove_at(i);
        }
        now
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// Key of a user in the user table (+1 so that user 0, a valid user, is not the empty key).
#[inline]
fn user_key(user: u32) -> u64 {
    u64::from(user) + 1
}

/// Key of a (user, book) pair (book + 1 keeps the key non-zero; books are below 2³¹).
#[inline]
fn user_book_key(user: u32, book: usize) -> u64 {
    (u64::from(user) << 32) | (book as u64 + 1)
}

/// What is being counted: orders per user, books per user (with the (user, book) table).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Count {
    /// Resting orders per user.
    Orders,
    /// Books holding each user's resting orders.
    Books,
}

/// Resting orders and books held, per user, each counted only while switched on.
pub(crate) struct UserHoldings {
    /// user → (resting orders, books holding at least one of them).
    users: Counters,
    /// (user, book) → resting orders of the user in that book.
    books: Counters,
    /// Whether orders (`[0]`) and books (`[1]`) are being counted.
    on: [bool; 2],
    /// Changes to count before counting may stop, per kind: the size of the pass that started
    /// it, so that passes are paid for by the changes between them.
    credit: [usize; 2],
}

impl Default for UserHoldings {
    fn default() -> UserHoldings {
        UserHoldings {
            users: Counters::new(),
            books: Counters::new(),
            on: [false; 2],
            credit: [0; 2],
        }
    }
}

impl UserHoldings {
    /// True while `what` is counted.
    #[inline]
    pub fn counting(&self, what: Count) -> bool {
        self.on[what as usize]
    }

    /// Starts counting `what` from nothing; the caller then reports every resting order with
    /// [`UserHoldings::count_resting`], which also sets how many changes counting must see
    /// before it may stop (as many as the pass visited, plus [`START_MARGIN`]).
    pub fn start(&mut self, what: Count) {
        self.stop(what);
        self.on[what as usize] = true;
        self.credit[what as usize] = START_MARGIN;
    }

    /// Stops counting `what` when it has paid for its starting pass and `needed` says the
    /// engine's totals answer the checks again.
    #[inline]
    pub fn stop_if_idle(&mut self, what: Count, needed: bool) {
        let i = what as usize;
        if self.on[i] && self.credit[i] == 0 && !needed {
            self.stop(what);
        }
    }

    fn stop(&mut self, what: Count) {
        self.on[what as usize] = false;
        match what {
            Count::Orders => {
                if !self.on[Count::Books as usize] {
                    self.users.clear();
                }
                // Keep the book counts; orders will be recounted from scratch on restart.
                self.zero(Count::Orders);
            }
            Count::Books => {
                self.books.clear();
                if self.on[Count::Orders as usize] {
                    self.zero(Count::Books);
                } else {
                    self.users.clear();
                }
            }
        }
    }

    /// Sets every user's count of `what` to 0 (the other count kept), dropping entries left
    /// at (0, 0).
    fn zero(&mut self, what: Count) {
        let kept: Vec<(u64, (u32, u32))> = self
            .users
            .0
            .iter()
            .map(|(key, (orders, books))| match what {
                Count::Orders => (key, (0, books)),
                Count::Books => (key, (orders, 0)),
            })
            .filter(|&(_, counts)| counts != (0, 0))
            .collect();
        self.users.clear();
        for (key, (orders, books)) in kept {
            self.users.add(key, orders, books);
        }
    }

    /// Resting orders of `user` (0 unless orders are counted).
    #[inline]
    pub fn orders(&self, user: u32) -> usize {
        self.users.get(user_key(user)).0 as usize
    }

    /// Books in which `user` has resting orders (0 unless books are counted).
    #[inline]
    pub fn books(&self, user: u32) -> usize {
        self.users.get(user_key(user)).1 as usize
    }

    /// True when `user` has a resting order in `book` (false unless books are counted).
    #[inline]
    pub fn holds(&self, user: u32, book: usize) -> bool {
        self.books.get(user_book_key(user, book)).0 > 0
    }

    /// An order of `user` now rests in `book`.
    #[inline]
    pub fn rested(&mut self, user: u32, book: usize) {
        if self.on != [false; 2] {
            self.change(user, book, true, self.on);
            self.spend();
        }
    }

    /// An order of `user` in `book` stopped resting (filled or cancelled).
    #[inline]
    pub fn gone(&mut self, user: u32, book: usize) {
        if self.on != [false; 2] {
            self.change(user, book, false, self.on);
            self.spend();
        }
    }

    /// One change counted: pays one unit of each running count's starting pass.
    #[inline]
    fn spend(&mut self) {
        for (c, on) in self.credit.iter_mut().zip(self.on) {
            if on {
                *c = c.saturating_sub(1);
            }
        }
    }

    /// Counts an order of `user` resting in `book` into `what` alone: the pass after
    /// [`UserHoldings::start`].
    pub fn count_resting(&mut self, what: Count, user: u32, book: usize) {
        let mut kinds = [false; 2];
        kinds[what as usize] = true;
        self.change(user, book, true, kinds);
        self.credit[what as usize] += 1;
    }

    /// One order of `user` in `book` rested (`add`) or left, counted into the `kinds` on.
    #[inline(never)]
    fn change(&mut self, user: u32, book: usize, add: bool, kinds: [bool; 2]) {
        let mut book_changed = 0;
        if kinds[Count::Books as usize] {
            let key = user_book_key(user, book);
            book_changed = if add {
                u32::from(self.books.add(key, 1, 0).0 == 1)
            } else {
                u32::from(self.books.sub(key, 1, 0).0 == 0)
            };
        }
        let orders = u32::from(kinds[Count::Orders as usize]);
        if add {
            self.users.add(user_key(user), orders, book_changed);
        } else {
            self.users.sub(user_key(user), orders, book_changed);
        }
    }

    /// Nothing rests any more (flush): every count is 0, counting goes on.
    pub fn clear(&mut self) {
        self.users.clear();
        self.books.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        // Against a naive model: a list of (user, book) per resting order.
        #[test]
        fn counts_like_a_list_of_resting_orders(ops in proptest::collection::vec((any::<bool>(), 0u32..5, 0usize..5), 0..400)) {
            let mut h = UserHoldings::default();
            h.start(Count::Orders);
            h.start(Count::Books);
            let mut resting: Vec<(u32, usize)> = Vec::new();
            for (add, user, book) in ops {
                if add {
                    h.rested(user, book);
                    resting.push((user, book));
                } else if let Some(i) = resting.iter().position(|&r| r == (user, book)) {
                    h.gone(user, book);
                    resting.swap_remove(i);
                }
                for u in 0..5 {
                    let mine: Vec<usize> = resting.iter().filter(|r| r.0 == u).map(|r| r.1).collect();
                    let mut distinct = mine.clone();
                    distinct.sort();
                    distinct.dedup();
                    prop_assert_eq!(h.orders(u), mine.len());
                    prop_assert_eq!(h.books(u), distinct.len());
                    for b in 0..5 {
                        prop_assert_eq!(h.holds(u, b), mine.contains(&b));
                    }
                }
            }
        }
    }

    #[test]
    fn grows_shrinks_and_keeps_no_entry_at_zero() {
        let mut c = Counters::new();
        let mut model = HashMap::new();
        for k in 1..5_000u64 {
            c.add(k * 7919, 1, 0);
            model.insert(k * 7919, 1u32);
        }
        for k in (1..5_000u64).step_by(3) {
            assert_eq!(c.sub(k * 7919, 1, 0), (0, 0));
            model.remove(&(k * 7919));
        }
        assert_eq!(c.0.len(), model.len());
        for k in 1..5_000u64 {
            assert_eq!(
                c.get(k * 7919).0,
                model.get(&(k * 7919)).copied().unwrap_or(0)
            );
        }
        // Subtracting from an absent key changes nothing.
        assert_eq!(c.sub(3, 1, 1), (0, 0));
        assert_eq!(c.0.len(), model.len());
        c.clear();
        assert_eq!((c.0.len(), c.get(7919)), (0, (0, 0)));
    }
}
