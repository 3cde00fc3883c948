//! "No heap allocation per order in steady state": once the arena, the order index and the
//! level vectors have reached their high-water marks, processing adds, cancels, trades and
//! output encoding into a reused buffer allocates nothing. Checked with a counting global
//! allocator (this test binary only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use engine_core::{
    binary, CancelOrder, Engine, EngineConfig, InputMsg, NewOrder, OutputMsg, Route, Side, Sink,
    Symbol,
};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Encode(Vec<u8>);

impl Sink for Encode {
    fn emit(&mut self, msg: &OutputMsg, _route: Route) {
        binary::encode_output(msg, &mut self.0);
    }
}

/// A deterministic flow over 4 symbols and a 20-tick band: adds, cancels of ids that may or
/// may not rest, and crossing orders; order ids cycle so the resting population stays bounded.
fn flow(n: usize) -> Vec<InputMsg> {
    let symbols = [b"AAA".as_slice(), b"BBB", b"CCC", b"DDD"].map(|s| Symbol::new(s).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let r = next();
            let user = (r % 7) as u32 + 1;
            let oid = ((r >> 8) % 500) as u32;
            let symbol = symbols[((r >> 20) % 4) as usize];
            let side = if (r >> 24) & 1 == 0 {
                Side::Buy
            } else {
                Side::Sell
            };
            match (r >> 32) % 10 {
                0..=5 => InputMsg::New(NewOrder {
                    user,
                    symbol,
                    symbol_too_long: false,
                    price: 100 + ((r >> 40) % 20) as u32,
                    qty: 1 + ((r >> 48) % 50) as u32,
                    side,
                    user_order_id: oid,
                }),
                6..=8 => InputMsg::Cancel(CancelOrder {
                    user,
                    user_order_id: oid,
                    symbol: None,
                }),
                _ => InputMsg::New(NewOrder {
                    user,
                    symbol,
                    symbol_too_long: false,
                    price: 0,
                    qty: 1 + ((r >> 48) % 80) as u32,
                    side,
                    user_order_id: oid,
                }),
            }
        })
        .collect()
}

#[test]
fn steady_state_processing_does_not_allocate() {
    let msgs = flow(200_000);
    let mut engine = Engine::new(EngineConfig::default());
    engine.reserve(8_192);
    let mut sink = Encode(Vec::with_capacity(1 << 16));
    // Warm up: books, level vectors and the index reach their high-water marks.
    for _ in 0..2 {
        for m in &msgs {
            engine.process(1, m, &mut sink);
            sink.0.clear();
        }
    }
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    for m in &msgs {
        engine.process(1, m, &mut sink);
        sink.0.clear();
    }
    COUNTING.store(false, Ordering::Relaxed);
    assert!(
        engine.resting_orders() > 100,
        "flow too thin to mean anything"
    );
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0);
}
