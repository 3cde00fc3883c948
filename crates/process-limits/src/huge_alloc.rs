//! A global allocator for programs that decode Kafka messages: the system allocator, except
//! that one allocation of [`HUGE`] or more is an anonymous mapping made with `MAP_NORESERVE`.
//!
//! Why: the generated Kafka decoders of the `kafka-protocol` crate (0.18) reserve an array's
//! claimed element count (`Vec::with_capacity(n)`, `n` up to `u32::MAX`) before reading a
//! single element. An 8-byte message can claim a 400 GB array; the system allocator refuses
//! it, and Rust aborts the process on a refused allocation: one client would kill the broker
//! (stream-server decodes requests), one forged answer the bridge (its Kafka publisher
//! decodes a broker's answers).
//! A `MAP_NORESERVE` mapping only reserves address space (Linux does not count it against
//! memory under the default overcommit heuristic), its pages cost memory only once touched,
//! and the decoder touches no more of them than the request has bytes before it fails. Every
//! request's bytes are bounded by the memory budget, so no real allocation of the server is
//! this large: the branch is taken only by such claims (the bridge's answers are bounded by
//! its own size limit likewise).

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// Allocations from this size on are mapped lazily.
pub const HUGE: usize = 1 << 30;
/// Alignment a fresh mapping always has.
const PAGE: usize = 4096;

/// The allocator: declare it with `#[global_allocator]` in every binary that decodes Kafka
/// messages (stream-server, coinbase-bridge, and tests that decode arbitrary bytes).
pub struct LazyHugeAlloc;

fn is_huge(layout: Layout) -> bool {
    layout.size() >= HUGE && layout.align() <= PAGE
}

/// # Safety
/// `size` is at least [`HUGE`].
unsafe fn map(size: usize) -> *mut u8 {
    let p = libc::mmap(
        ptr::null_mut(),
        size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        -1,
        0,
    );
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}

// SAFETY: every block is released by the allocator that made it: `is_huge` of a block's
// layout decides both, and Rust passes the layout a block was made with to `dealloc` and
// `realloc`.
unsafe impl GlobalAlloc for LazyHugeAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout) {
            map(layout.size())
        } else {
            System.alloc(layout)
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout) {
            // A fresh anonymous mapping reads as zeros.
            map(layout.size())
        } else {
            System.alloc_zeroed(layout)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(layout) {
            libc::munmap(ptr.cast(), layout.size());
        } else {
            System.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        if !is_huge(layout) && !is_huge(new_layout) {
            return System.realloc(ptr, layout, new_size);
        }
        let new = self.alloc(new_layout);
        if !new.is_null() {
            ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}
