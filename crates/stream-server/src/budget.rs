//! The server's memory budget: one pool of bytes that every request in flight and every
//! unsent answer draws from, so that what clients send cannot grow the server's memory beyond
//! `--memory-budget-bytes`, plus a per-connection share so that one client (a slow reader)
//! cannot take the whole pool.
//!
//! A connection charges a request as soon as its header says how large it is, before reading
//! the payload, and keeps the charge until the request's answer is written to the socket.
//! Only a connection's reader ever *waits* for budget: it holds nothing another party needs
//! while it waits (its queued answers drain on their own), so waiting cannot deadlock. Work
//! that runs after the reader handed a request on (long polls) only *tries*, and answers with
//! less when the budget is spent.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Default of `--memory-budget-bytes`.
pub const DEFAULT_MEMORY_BUDGET: usize = 512 << 20;

/// Most bytes of requests and unsent answers one connection holds: a client that pipelines
/// requests without reading the answers is not read from beyond this. A single request that
/// costs more (a large batch) is served alone, holding the whole share.
pub const CONNECTION_BUDGET: usize = 64 << 20;

/// A charge that shrinks by less than this keeps it until the answer is written: giving a
/// few bytes back costs a lock on two semaphores that the connection's writer also takes, for
/// every small request, and holding them a little longer only over-counts.
const SETTLE_SLACK: usize = 4 << 10;

/// The server-wide pool.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    pool: Arc<Semaphore>,
    limit: usize,
}

impl MemoryBudget {
    /// A pool of `limit` bytes (at least 1 MiB, so that every small request fits).
    pub fn new(limit: usize) -> MemoryBudget {
        let limit = limit.clamp(1 << 20, Semaphore::MAX_PERMITS);
        MemoryBudget {
            pool: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// The pool's size.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes charged right now.
    pub fn in_use(&self) -> usize {
        self.limit - self.pool.available_permits()
    }

    /// A new connection's budget: its own share backed by this pool.
    pub fn connection(&self) -> ConnBudget {
        ConnBudget {
            pool: self.clone(),
            share: Arc::new(Semaphore::new(CONNECTION_BUDGET)),
        }
    }
}

/// One connection's view of the budget.
#[derive(Debug, Clone)]
pub struct ConnBudget {
    pool: MemoryBudget,
    share: Arc<Semaphore>,
}

/// Bytes held against the budget; given back when dropped.
#[derive(Debug, Default)]
pub struct Charge {
    pool: Option<OwnedSemaphorePermit>,
    share: Option<OwnedSemaphorePermit>,
}

/// Permits of a semaphore are counted in `u32` per acquisition; no request comes near that.
fn permits(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

impl ConnBudget {
    /// The server-wide pool's size: a request costing more can never be served.
    pub fn pool_limit(&self) -> usize {
        self.pool.limit
    }

    /// The share a charge of `bytes` takes: a request larger than the whole share takes all
    /// of it (and so waits until the connection has nothing else in flight).
    fn share_of(bytes: usize) -> usize {
        bytes.min(CONNECTION_BUDGET)
    }

    /// Waits until `bytes` are free in the connection's share and in the pool. The caller
    /// has checked `bytes <= pool_limit()`.
    pub async fn acquire(&self, bytes: usize) -> Charge {
        let bytes = bytes.min(self.pool.limit);
        // Neither semaphore is ever closed, so acquiring only fails if that changes.
        let share = self
            .share
            .clone()
            .acquire_many_owned(permits(Self::share_of(bytes)))
            .await
            .ok();
        let pool = self
            .pool
            .pool
            .clone()
            .acquire_many_owned(permits(bytes))
            .await
            .ok();
        Charge { pool, share }
    }

    /// `bytes` if they are free now, without waiting.
    pub fn try_acquire(&self, bytes: usize) -> Option<Charge> {
        if bytes > self.pool.limit {
            return None;
        }
        self.try_parts(bytes, Self::share_of(bytes))
    }

    /// `bytes` from the server-wide pool alone if they are free now, for memory that a handler
    /// holds only while it runs, never across an `.await` (a Produce's decompressed records,
    /// between their decoding and their append). The connection's share bounds what a client
    /// keeps waiting on it (requests read, answers unsent); this memory waits on nothing, and
    /// a large request that already holds the whole share must still be able to take it.
    pub fn try_acquire_pool(&self, bytes: usize) -> Option<Charge> {
        let pool = self
            .pool
            .pool
            .clone()
            .try_acquire_many_owned(permits(bytes))
            .ok()?;
        Some(Charge {
            pool: Some(pool),
            share: None,
        })
    }

    fn try_parts(&self, pool: usize, share: usize) -> Option<Charge> {
        let share = self
            .share
            .clone()
            .try_acquire_many_owned(permits(share))
            .ok()?;
        let pool = self
            .pool
            .pool
            .clone()
            .try_acquire_many_owned(permits(pool))
            .ok()?;
        Some(Charge {
            pool: Some(pool),
            share: Some(share),
        })
    }

    /// Makes `charge` hold `bytes`: gives back what it holds beyond them, or takes what it
    /// lacks if that is free now. False when the growth is not free: the caller then gives
    /// the charge back and waits for the whole amount (never waiting while holding part of
    /// it, which could deadlock with another connection doing the same).
    pub fn settle(&self, charge: &mut Charge, bytes: usize) -> bool {
        if bytes > self.pool.limit {
            return false;
        }
        let (pool, share) = (bytes, Self::share_of(bytes));
        let (held_pool, held_share) = (charge.bytes(), charge.share_bytes());
        if pool > held_pool || share > held_share {
            let Some(extra) = self.try_parts(
                pool.saturating_sub(held_pool),
                share.saturating_sub(held_share),
            ) else {
                return false;
            };
            charge.merge(extra);
        }
        if held_pool.saturating_sub(pool) >= SETTLE_SLACK {
            charge.shrink(pool, share);
        }
        true
    }
}

impl Charge {
    /// Nothing held (answers too small to count, such as refusals).
    pub fn none() -> Charge {
        Charge::default()
    }

    /// Bytes held against the pool.
    pub fn bytes(&self) -> usize {
        self.pool.as_ref().map_or(0, |p| p.num_permits())
    }

    fn share_bytes(&self) -> usize {
        self.share.as_ref().map_or(0, |p| p.num_permits())
    }

    fn shrink(&mut self, pool: usize, share: usize) {
        fn keep(p: &mut Option<OwnedSemaphorePermit>, n: usize) {
            if let Some(permit) = p {
                let excess = permit.num_permits().saturating_sub(n);
                if excess > 0 {
                    drop(permit.split(excess));
                }
            }
        }
        keep(&mut self.pool, pool);
        keep(&mut self.share, share);
    }

    /// Adds `other` to this charge, so that both are given back at once. Both must come from
    /// the same connection's budget (permits of different semaphores cannot be joined).
    pub fn merge(&mut self, other: Charge) {
        fn join(a: &mut Option<OwnedSemaphorePermit>, b: Option<OwnedSemaphorePermit>) {
            match (a.as_mut(), b) {
                (Some(x), Some(y)) => x.merge(y),
                (None, y) => *a = y,
                (Some(_), None) => {}
            }
        }
        join(&mut self.pool, other.pool);
        join(&mut self.share, other.share);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_shrink_keeps_the_charge_and_merged_charges_go_back_together() {
        let pool = MemoryBudget::new(4 << 20);
        let conn = pool.connection();
        let mut c = conn.try_acquire(SETTLE_SLACK + 100).expect("free");
        assert!(conn.settle(&mut c, 200));
        assert_eq!(pool.in_use(), SETTLE_SLACK + 100, "under the slack: kept");
        assert!(conn.settle(&mut c, 99));
        assert_eq!(pool.in_use(), 99, "at the slack: given back");
        let mut held = Charge::none();
        held.merge(c);
        held.merge(conn.try_acquire(1000).expect("free"));
        assert_eq!(pool.in_use(), 1099);
        drop(held);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn settle_shrinks_and_grows_within_the_pool() {
        let pool = MemoryBudget::new(4 << 20);
        let conn = pool.connection();
        let mut c = conn.try_acquire(3 << 20).expect("free");
        assert_eq!(pool.in_use(), 3 << 20);
        assert!(conn.try_acquire(2 << 20).is_none(), "pool spent");
        assert!(conn.settle(&mut c, 1000));
        assert_eq!(pool.in_use(), 1000);
        assert!(conn.settle(&mut c, 4 << 20));
        assert!(!conn.settle(&mut c, (4 << 20) + 1), "beyond the pool");
        drop(c);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn a_pool_charge_needs_no_share_and_goes_back_on_drop() {
        let pool = MemoryBudget::new(4 * CONNECTION_BUDGET);
        let conn = pool.connection();
        let whole_share = conn.try_acquire(CONNECTION_BUDGET).expect("free");
        assert!(conn.try_acquire(1).is_none(), "the share is taken");
        let mut c = conn.try_acquire_pool(1000).expect("the pool has room");
        c.merge(conn.try_acquire_pool(24).expect("the pool has room"));
        assert_eq!(pool.in_use(), CONNECTION_BUDGET + 1024);
        assert!(
            conn.try_acquire_pool(3 * CONNECTION_BUDGET).is_none(),
            "beyond the pool"
        );
        drop(c);
        drop(whole_share);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn a_request_larger_than_the_share_takes_all_of_it() {
        let pool = MemoryBudget::new(4 * CONNECTION_BUDGET);
        let conn = pool.connection();
        let big = conn
            .try_acquire(2 * CONNECTION_BUDGET)
            .expect("alone, it fits");
        assert!(conn.try_acquire(1).is_none(), "the share is taken");
        assert!(pool.connection().try_acquire(1).is_some(), "others are not");
        drop(big);
        assert!(conn.try_acquire(CONNECTION_BUDGET).is_some());
    }
}
