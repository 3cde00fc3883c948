//! The slab of order nodes shared by every book of an engine.
//!
//! Hand-written rather than taken from a crate (`slab`, `generational-arena`) because the hot
//! path needs exactly this and nothing more: nodes addressed by a `u32` index (half the size of
//! a pointer or `usize`, so a node is 32 bytes and two fit in a cache line), the intrusive
//! `prev`/`next` links of the per-level FIFO stored inside the node, and a free list threaded
//! through the free nodes' `next` field so that freeing and reusing a slot never allocates.
//! Once the arena has reached its high-water mark, adding and removing orders allocates nothing.

use crate::message::{ClientId, OrderId, Price, Qty, Side, UserId};

/// "No node": the end of a FIFO or of the free list.
pub(crate) const NIL: u32 = u32::MAX;

/// Largest number of slots an arena hands out (indices must stay below [`NIL`]).
pub(crate) const MAX_SLOTS: usize = (NIL - 1) as usize;

/// One resting order, linked into the FIFO of its price level.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    /// Owner.
    pub user: UserId,
    /// The owner's order id.
    pub oid: OrderId,
    /// Remaining quantity.
    pub qty: Qty,
    /// Connection that placed the order (for routing trades and cancel acks).
    pub client: ClientId,
    /// Limit price (never 0: market orders do not rest).
    pub price: Price,
    /// Previous node in the level's FIFO (towards the head), or [`NIL`].
    pub prev: u32,
    /// Next node in the level's FIFO (towards the tail), or the next free slot, or [`NIL`].
    pub next: u32,
    /// Book index shifted left by one, side in bit 0 (0 buy, 1 sell): keeps the node at
    /// 32 bytes.
    pub book_side: u32,
}

impl Node {
    /// Index of the book the order rests in.
    #[inline]
    pub fn book(&self) -> usize {
        (self.book_side >> 1) as usize
    }

    /// Side the order rests on.
    #[inline]
    pub fn side(&self) -> Side {
        if self.book_side & 1 == 0 {
            Side::Buy
        } else {
            Side::Sell
        }
    }

    /// Packs a book index and a side into `book_side`.
    #[inline]
    pub fn pack(book: usize, side: Side) -> u32 {
        ((book as u32) << 1) | (side == Side::Sell) as u32
    }
}

/// Slab of [`Node`]s with an intrusive free list.
#[derive(Debug)]
pub(crate) struct Arena {
    nodes: Vec<Node>,
    free: u32,
    live: usize,
}

impl Default for Arena {
    fn default() -> Arena {
        Arena {
            nodes: Vec::new(),
            free: NIL,
            live: 0,
        }
    }
}

impl Arena {
    /// Makes room for `additional` more nodes than are live now without growing later.
    pub fn reserve(&mut self, additional: usize) {
        let wanted = (self.live + additional).min(MAX_SLOTS);
        if wanted > self.nodes.len() {
            self.nodes.reserve(wanted - self.nodes.len());
        }
    }

    /// True when no further node can be allocated (the index space is used up).
    #[inline]
    pub fn is_full(&self) -> bool {
        self.free == NIL && self.nodes.len() >= MAX_SLOTS
    }

    /// Stores `node` in a free slot (reusing freed slots first) and returns its index.
    /// The caller checks [`Arena::is_full`] first.
    #[inline]
    pub fn alloc(&mut self, node: Node) -> u32 {
        self.live += 1;
        if self.free != NIL {
            let slot = self.free;
            let cell = &mut self.nodes[slot as usize];
            self.free = cell.next;
            *cell = node;
            slot
        } else {
            let slot = self.nodes.len() as u32;
            self.nodes.push(node);
            slot
        }
    }

    /// Returns a slot to the free list.
    #[inline]
    pub fn free(&mut self, slot: u32) {
        self.live -= 1;
        let cell = &mut self.nodes[slot as usize];
        cell.next = self.free;
        cell.qty = 0;
        self.free = slot;
    }

    /// The node in `slot`.
    #[inline]
    pub fn get(&self, slot: u32) -> &Node {
        &self.nodes[slot as usize]
    }

    /// Hints the CPU to fetch the node in `slot` (no effect on results).
    #[inline]
    pub fn prefetch(&self, slot: u32) {
        crate::index::prefetch_ptr(self.nodes.as_ptr().wrapping_add(slot as usize));
    }

    /// The node in `slot`, mutably.
    #[inline]
    pub fn get_mut(&mut self, slot: u32) -> &mut Node {
        &mut self.nodes[slot as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(user: u32) -> Node {
        Node {
            user,
            oid: 1,
            qty: 5,
            client: 0,
            price: 10,
            prev: NIL,
            next: NIL,
            book_side: Node::pack(3, Side::Sell),
        }
    }

    #[test]
    fn freed_slots_are_reused_last_in_first_out() {
        let mut a = Arena::default();
        a.reserve(4);
        let s0 = a.alloc(node(1));
        let s1 = a.alloc(node(2));
        assert_eq!((s0, s1, a.live), (0, 1, 2));
        a.free(s0);
        a.free(s1);
        assert_eq!(a.live, 0);
        assert_eq!(a.alloc(node(3)), s1);
        assert_eq!(a.alloc(node(4)), s0);
        assert_eq!(a.alloc(node(5)), 2);
        assert_eq!(a.get(s0).user, 4);
        assert!(!a.is_full());
    }

    #[test]
    fn book_and_side_round_trip_through_the_packed_field() {
        let n = node(1);
        assert_eq!((n.book(), n.side()), (3, Side::Sell));
        let b = Node::pack(7, Side::Buy);
        assert_eq!(b >> 1, 7);
        assert_eq!(b & 1, 0);
    }
}
