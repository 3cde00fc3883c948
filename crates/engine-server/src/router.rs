//! Threaded mode: N processor threads, each owning the books of a fixed subset of symbols (by a
//! hash of the symbol), fed by the network I/O thread through bounded lock-free SPSC queues
//! (`rtrb`), and answering through one SPSC queue each.
//!
//! Ordering: the router numbers every job implicitly by keeping a FIFO of the jobs it sent, in
//! send order, with the processor(s) each went to. The I/O thread delivers output strictly in
//! that order: it reads the processor at the head of the FIFO until that job's end marker. So a
//! client sees exactly the output single-threaded mode would give, whatever the processors'
//! relative speed. Jobs that go to every processor (flush, cancel-on-disconnect, a cancel
//! without a symbol) are collected from all of them and merged back into the single-threaded
//! order: per-book groups in symbol order (each processor emits its books in symbol order).
//!
//! A cancel that names no symbol goes to every processor; only the one whose engine
//! `owns_order` processes it. When none does, the router emits the `R ... 4` itself, as the
//! engine would.
//!
//! Duplicate order ids: one engine rejects a new order whose id rests in any of its books, but
//! a processor only sees its own. The router therefore keeps an index of resting orders learnt
//! from the output it delivers (acks, trade quantities, cancel acks) and of new orders in
//! flight; an id reused on another processor makes it wait until everything sent is delivered
//! (the index is then exact) and reject with code 5 itself when the order still rests.
//!
//! Resting orders per user (`EngineConfig::max_orders_per_user`) and the books holding them
//! (`EngineConfig::max_symbols_per_user`) are capped across all processors, exactly as one
//! engine would: the same index counts each user's resting orders and symbols per processor,
//! plus its new orders in flight (each may add one order and one symbol). While those upper
//! bounds are below the caps, the order cannot be over them and goes as usual; otherwise the
//! router waits until everything sent is delivered and tells the processor what the user holds
//! on the others (`Engine::process_with_elsewhere`), so the engine judges the order (rest or
//! fill, reject 6) on the exact global counts.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use anyhow::Context;
use engine_core::{
    ClientId, Elsewhere, Engine, EngineConfig, InputMsg, OutputMsg, RejectReason, Route, Sink,
    Symbol,
};
use rtrb::{Consumer, Producer, PushError, RingBuffer};
use rustc_hash::FxHashMap;
use tokio::sync::Notify;

use crate::hub::Hub;
use crate::server::PREFETCH_AHEAD;

/// Work for a processor.
enum Job {
    /// Process a message (new order, cancel with symbol, flush).
    Msg { origin: ClientId, msg: InputMsg },
    /// A new order of a user near one of its caps: `elsewhere` is what the user holds on the
    /// other processors.
    NewCounted {
        origin: ClientId,
        msg: InputMsg,
        elsewhere: Elsewhere,
    },
    /// A cancel without a symbol: process only if this processor owns the order.
    CancelIfOwned { origin: ClientId, msg: InputMsg },
    /// Cancel-on-disconnect for a client.
    Disconnect(ClientId),
}

impl Job {
    /// The input message the job matches, if any (for prefetching).
    fn msg(&self) -> Option<&InputMsg> {
        match self {
            Job::Msg { msg, .. } | Job::NewCounted { msg, .. } | Job::CancelIfOwned { msg, .. } => {
                Some(msg)
            }
            Job::Disconnect(_) => None,
        }
    }
}

/// What a processor sends back.
enum Out {
    /// One output message and where it goes.
    Msg(OutputMsg, Route),
    /// The job is complete.
    End,
}

/// Which processors a job went to.
#[derive(Clone, Copy)]
enum Target {
    One(usize),
    All,
}

/// A job sent and not yet fully delivered.
struct Pending {
    origin: ClientId,
    target: Target,
    /// For a cancel without a symbol: (user, order id), to reject when no processor owns it.
    unowned_cancel: Option<(u32, u32)>,
    /// For a new order that passed the checks before the duplicate check: its tracking state.
    new: Option<NewTrack>,
}

/// Follows a new order through its output to learn whether (and how much of) it rests.
struct NewTrack {
    key: Key,
    symbol: Symbol,
    qty: u32,
    market: bool,
    acked: bool,
    filled: u32,
}

/// An order's identity: (user, user order id).
type Key = (u32, u32);

struct Proc {
    tx: Producer<Job>,
    rx: Consumer<Out>,
    thread: Thread,
    join: Option<JoinHandle<()>>,
}

/// The I/O thread's side of threaded mode.
pub struct Router {
    procs: Vec<Proc>,
    fifo: VecDeque<Pending>,
    /// Per-processor output of the head job when it went to every processor.
    gather: Vec<Vec<(OutputMsg, Route)>>,
    gathered: Vec<bool>,
    stop: Arc<AtomicBool>,
    /// Orders resting on some processor as of the output delivered so far. Lets the router
    /// reject a new order that reuses the id of an order resting on *another* processor
    /// (duplicate id, code 5), and count a user's resting orders across processors, as a
    /// single engine would.
    live: Live,
    /// New orders sent and not yet fully delivered: key -> (processor, how many).
    inflight: FxHashMap<Key, (usize, u32)>,
    /// New orders sent and not yet fully delivered, per user.
    inflight_users: FxHashMap<u32, u32>,
    /// The engines' cap on resting orders per user.
    max_orders_per_user: usize,
    /// The engines' cap on books holding one user's resting orders.
    max_symbols_per_user: usize,
}

/// A resting order as the router knows it: its processor, remaining quantity and symbol.
#[derive(Clone, Copy)]
struct LiveOrder {
    p: usize,
    qty: u32,
    symbol: Symbol,
}

/// The router's index of resting orders, and what each user holds per processor.
#[derive(Default)]
struct Live {
    orders: FxHashMap<Key, LiveOrder>,
    /// (user, processor) -> (resting orders, symbols holding some).
    per_user: FxHashMap<(u32, usize), (u32, u32)>,
    /// (user, symbol) -> resting orders (a symbol lives on one processor).
    per_symbol: FxHashMap<(u32, Symbol), u32>,
}

impl Live {
    fn get(&self, key: &Key) -> Option<&LiveOrder> {
        self.orders.get(key)
    }

    fn insert(&mut self, key: Key, order: LiveOrder) {
        if let Some(old) = self.orders.insert(key, order) {
            self.user_gone(key.0, old);
        }
        let n = self.per_symbol.entry((key.0, order.symbol)).or_insert(0);
        *n += 1;
        let new_symbol = *n == 1;
        let u = self.per_user.entry((key.0, order.p)).or_insert((0, 0));
        u.0 += 1;
        u.1 += u32::from(new_symbol);
    }

    fn remove(&mut self, key: &Key) {
        if let Some(old) = self.orders.remove(key) {
            self.user_gone(key.0, old);
        }
    }

    /// A trade of `qty` against a resting order.
    fn fill(&mut self, key: &Key, qty: u32) {
        if let Some(l) = self.orders.get_mut(key) {
            l.qty = l.qty.saturating_sub(qty);
            if l.qty == 0 {
                self.remove(key);
            }
        }
    }

    fn user_gone(&mut self, user: u32, old: LiveOrder) {
        let mut symbol_gone = false;
        if let Some(n) = self.per_symbol.get_mut(&(user, old.symbol)) {
            *n -= 1;
            if *n == 0 {
                self.per_symbol.remove(&(user, old.symbol));
                symbol_gone = true;
            }
        }
        if let Some(u) = self.per_user.get_mut(&(user, old.p)) {
            u.0 -= 1;
            u.1 -= u32::from(symbol_gone);
            if u.0 == 0 {
                self.per_user.remove(&(user, old.p));
            }
        }
    }

    /// What `user` holds on processor `p`: resting orders, and symbols holding them.
    fn holdings(&self, user: u32, p: usize) -> (usize, usize) {
        self.per_user
            .get(&(user, p))
            .map_or((0, 0), |&(o, s)| (o as usize, s as usize))
    }
}

/// Notify the I/O thread at least every this many jobs even while more input is queued, so
/// output keeps flowing under sustained load.
const NOTIFY_EVERY: u32 = 64;

impl Router {
    /// Starts `n` processor threads; `wake_io` is signalled when output is ready.
    ///
    /// `spin` is how long an idle processor polls its queue before parking: a short spin keeps
    /// the latency of a busy stream low; a long one burns a core the I/O thread may need.
    ///
    /// Every processor's engine gets `config`; its `max_orders_per_user` is enforced across all
    /// processors (see the module documentation).
    pub fn start(
        n: usize,
        queue_capacity: usize,
        spin: Duration,
        wake_io: Arc<Notify>,
        config: EngineConfig,
    ) -> anyhow::Result<Router> {
        let max_orders_per_user = config.max_orders_per_user;
        let max_symbols_per_user = config.max_symbols_per_user;
        let stop = Arc::new(AtomicBool::new(false));
        let mut procs = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, job_rx) = RingBuffer::new(queue_capacity);
            // Output queue: several messages per job (ack, trades, top of book).
            let (out_tx, rx) = RingBuffer::new(queue_capacity * 4);
            let stop = stop.clone();
            let wake = wake_io.clone();
            let config = config.clone();
            let join = thread::Builder::new()
                .name(format!("processor-{i}"))
                .spawn(move || processor(config, job_rx, out_tx, wake, stop, spin))
                .with_context(|| format!("spawn processor thread {i}"))?;
            procs.push(Proc {
                tx,
                rx,
                thread: join.thread().clone(),
                join: Some(join),
            });
        }
        Ok(Router {
            gather: (0..n).map(|_| Vec::new()).collect(),
            gathered: vec![false; n],
            procs,
            fifo: VecDeque::new(),
            stop,
            live: Live::default(),
            inflight: FxHashMap::default(),
            inflight_users: FxHashMap::default(),
            max_orders_per_user,
            max_symbols_per_user,
        })
    }

    /// True when every job sent has been delivered.
    pub fn idle(&self) -> bool {
        self.fifo.is_empty()
    }

    /// Number of processors.
    pub fn processors(&self) -> usize {
        self.procs.len()
    }

    /// The processor that owns a symbol's book.
    fn owner(&self, symbol: &Symbol) -> usize {
        let mut h = rustc_hash::FxHasher::default();
        symbol.padded().hash(&mut h);
        (h.finish() % self.procs.len() as u64) as usize
    }

    /// Sends one input message from `origin` to the processor(s) that must see it.
    pub fn submit(&mut self, origin: ClientId, msg: InputMsg, hub: &mut Hub) {
        match msg {
            InputMsg::New(ref o) => {
                let p = self.owner(&o.symbol);
                let key = (o.user, o.user_order_id);
                // The engine's checks that come before the duplicate check (docs/engine.md);
                // an order failing one of them never rests and needs no tracking.
                let invalid_id = o.user == 0 && o.user_order_id == 0;
                let checked =
                    !(o.symbol_too_long || o.symbol.is_empty() || invalid_id || o.qty == 0);
                // With one processor its engine sees every id: nothing to track.
                let track_id = checked && self.procs.len() > 1;
                if track_id && self.resting_elsewhere(key, p, hub) {
                    let reject = OutputMsg::Reject {
                        symbol: o.symbol,
                        user: o.user,
                        user_order_id: o.user_order_id,
                        reason: RejectReason::DuplicateOrderId,
                    };
                    // Nothing is in flight after the check, so this keeps the output order.
                    hub.deliver(origin, &reject, Route::Origin);
                    return;
                }
                let job = match track_id.then(|| self.user_orders_elsewhere(o.user, p, hub)) {
                    Some(Some(elsewhere)) => Job::NewCounted {
                        origin,
                        msg,
                        elsewhere,
                    },
                    _ => Job::Msg { origin, msg },
                };
                self.send(p, job, hub);
                let new = track_id.then(|| {
                    self.inflight
                        .entry(key)
                        .and_modify(|e| e.1 += 1)
                        .or_insert((p, 1));
                    *self.inflight_users.entry(key.0).or_insert(0) += 1;
                    NewTrack {
                        key,
                        symbol: o.symbol,
                        qty: o.qty,
                        market: o.price == 0,
                        acked: false,
                        filled: 0,
                    }
                });
                self.fifo.push_back(Pending {
                    origin,
                    target: Target::One(p),
                    unowned_cancel: None,
                    new,
                });
            }
            InputMsg::Cancel(ref c) => {
                // An empty symbol counts as none (the binary form cannot tell them apart), and
                // the invalid id (0, 0) is rejected by any engine: send it to one.
                let symbol = c.symbol.filter(|s| !s.is_empty());
                let target = match symbol {
                    Some(ref s) => Some(self.owner(s)),
                    None if c.user == 0 && c.user_order_id == 0 => Some(0),
                    None => None,
                };
                match target {
                    Some(p) => {
                        self.send(p, Job::Msg { origin, msg }, hub);
                        self.fifo.push_back(Pending {
                            origin,
                            target: Target::One(p),
                            unowned_cancel: None,
                            new: None,
                        });
                    }
                    None => {
                        for p in 0..self.procs.len() {
                            self.send(p, Job::CancelIfOwned { origin, msg }, hub);
                        }
                        self.fifo.push_back(Pending {
                            origin,
                            target: Target::All,
                            unowned_cancel: Some((c.user, c.user_order_id)),
                            new: None,
                        });
                    }
                }
            }
            InputMsg::Flush => {
                for p in 0..self.procs.len() {
                    self.send(p, Job::Msg { origin, msg }, hub);
                }
                self.fifo.push_back(Pending {
                    origin,
                    target: Target::All,
                    unowned_cancel: None,
                    new: None,
                });
            }
        }
    }

    /// True when `key` rests on a processor other than `p`. Exact: when the answer depends on
    /// output not delivered yet (the key is live or in flight elsewhere), it first waits until
    /// every job sent so far is delivered. That only happens for an order id reused across
    /// processors, so the stall is rare.
    fn resting_elsewhere(&mut self, key: Key, p: usize, hub: &mut Hub) -> bool {
        let maybe = self.live.get(&key).is_some_and(|l| l.p != p)
            || self.inflight.get(&key).is_some_and(|f| f.0 != p);
        if !maybe {
            return false;
        }
        while !self.fifo.is_empty() {
            self.drain(hub);
            if !self.fifo.is_empty() {
                thread::yield_now();
            }
        }
        self.live.get(&key).is_some_and(|l| l.p != p)
    }

    /// For a new order of `user` bound for processor `p`: `None` when the user certainly holds
    /// fewer resting orders and symbols than the caps (those delivered as resting plus one of
    /// each per new order in flight, upper bounds); otherwise, after waiting until every job
    /// sent is delivered, exactly what the user holds on the other processors. The wait only
    /// happens for a user near a cap.
    fn user_orders_elsewhere(&mut self, user: u32, p: usize, hub: &mut Hub) -> Option<Elsewhere> {
        let n = self.procs.len();
        let (orders, symbols) = (0..n)
            .map(|q| self.live.holdings(user, q))
            .fold((0, 0), |(o, s), (qo, qs)| (o + qo, s + qs));
        let inflight = self.inflight_users.get(&user).map_or(0, |&k| k as usize);
        if orders + inflight < self.max_orders_per_user
            && symbols + inflight < self.max_symbols_per_user
        {
            return None;
        }
        while !self.fifo.is_empty() {
            self.drain(hub);
            if !self.fifo.is_empty() {
                thread::yield_now();
            }
        }
        let (orders, symbols) = (0..n)
            .filter(|&q| q != p)
            .map(|q| self.live.holdings(user, q))
            .fold((0, 0), |(o, s), (qo, qs)| (o + qo, s + qs));
        Some(Elsewhere { orders, symbols })
    }

    /// Cancels every resting order of `client` on every processor.
    pub fn disconnect(&mut self, client: ClientId, hub: &mut Hub) {
        for p in 0..self.procs.len() {
            self.send(p, Job::Disconnect(client), hub);
        }
        self.fifo.push_back(Pending {
            origin: client,
            target: Target::All,
            unowned_cancel: None,
            new: None,
        });
    }

    /// Pushes a job, draining output while the queue is full (a processor blocked on its full
    /// output queue must be able to make progress, or both sides would wait forever).
    fn send(&mut self, p: usize, mut job: Job, hub: &mut Hub) {
        loop {
            match self.procs[p].tx.push(job) {
                Ok(()) => break,
                Err(PushError::Full(j)) => {
                    job = j;
                    self.procs[p].thread.unpark();
                    self.drain(hub);
                    thread::yield_now();
                }
            }
        }
        self.procs[p].thread.unpark();
    }

    /// Delivers all output that is ready, in submission order.
    pub fn drain(&mut self, hub: &mut Hub) {
        while let Some(head) = self.fifo.front_mut() {
            let origin = head.origin;
            match head.target {
                Target::One(p) => loop {
                    match self.procs[p].rx.pop() {
                        Ok(Out::Msg(m, r)) => {
                            track(&mut self.live, head.new.as_mut(), &m);
                            hub.deliver(origin, &m, r);
                        }
                        Ok(Out::End) => {
                            if let Some(n) = &head.new {
                                finish_new(
                                    &mut self.inflight,
                                    &mut self.inflight_users,
                                    &mut self.live,
                                    p,
                                    n,
                                );
                            }
                            self.fifo.pop_front();
                            break;
                        }
                        Err(_) => return,
                    }
                },
                Target::All => {
                    for p in 0..self.procs.len() {
                        while !self.gathered[p] {
                            match self.procs[p].rx.pop() {
                                Ok(Out::Msg(m, r)) => self.gather[p].push((m, r)),
                                Ok(Out::End) => self.gathered[p] = true,
                                Err(_) => return,
                            }
                        }
                    }
                    let unowned = head.unowned_cancel;
                    self.fifo.pop_front();
                    self.deliver_gathered(origin, unowned, hub);
                }
            }
        }
    }

    /// Merges the per-processor output of a job that went to every processor into the order a
    /// single engine would have produced: each book's lines stay together, books in symbol order.
    fn deliver_gathered(&mut self, origin: ClientId, unowned: Option<(u32, u32)>, hub: &mut Hub) {
        let mut groups: Vec<(Symbol, usize, usize, usize)> = Vec::new();
        for (p, out) in self.gather.iter().enumerate() {
            let mut start = 0;
            for i in 1..=out.len() {
                if i == out.len() || symbol_of(&out[i].0) != symbol_of(&out[start].0) {
                    groups.push((symbol_of(&out[start].0), p, start, i));
                    start = i;
                }
            }
        }
        groups.sort_by_key(|g| g.0);
        if groups.is_empty() {
            if let Some((user, user_order_id)) = unowned {
                let reject = OutputMsg::Reject {
                    symbol: Symbol::EMPTY,
                    user,
                    user_order_id,
                    reason: RejectReason::OrderNotFound,
                };
                hub.deliver(origin, &reject, Route::Origin);
            }
        }
        for (_, p, a, b) in groups {
            for (m, r) in &self.gather[p][a..b] {
                track(&mut self.live, None, m);
                hub.deliver(origin, m, *r);
            }
        }
        for (g, done) in self.gather.iter_mut().zip(self.gathered.iter_mut()) {
            g.clear();
            *done = false;
        }
    }

    /// Stops and joins the processor threads.
    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        for p in &mut self.procs {
            p.thread.unpark();
            if let Some(j) = p.join.take() {
                if j.join().is_err() {
                    tracing::error!("a processor thread panicked");
                }
            }
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A new order's output is complete: record it as resting when it is.
fn finish_new(
    inflight: &mut FxHashMap<Key, (usize, u32)>,
    inflight_users: &mut FxHashMap<u32, u32>,
    live: &mut Live,
    p: usize,
    n: &NewTrack,
) {
    if let Some(f) = inflight.get_mut(&n.key) {
        f.1 -= 1;
        if f.1 == 0 {
            inflight.remove(&n.key);
        }
    }
    if let Some(u) = inflight_users.get_mut(&n.key.0) {
        *u -= 1;
        if *u == 0 {
            inflight_users.remove(&n.key.0);
        }
    }
    if n.acked && !n.market && n.filled < n.qty {
        live.insert(
            n.key,
            LiveOrder {
                p,
                qty: n.qty - n.filled,
                symbol: n.symbol,
            },
        );
    }
}

/// Updates the resting-order index from one delivered output message. `new` is the order being
/// processed, whose own fills are counted on it until its output is complete.
fn track(live: &mut Live, mut new: Option<&mut NewTrack>, m: &OutputMsg) {
    match *m {
        OutputMsg::Ack {
            user,
            user_order_id,
            ..
        } => {
            if let Some(n) = new {
                if n.key == (user, user_order_id) {
                    n.acked = true;
                }
            }
        }
        OutputMsg::Trade {
            buy_user,
            buy_order_id,
            sell_user,
            sell_order_id,
            qty,
            ..
        } => {
            for key in [(buy_user, buy_order_id), (sell_user, sell_order_id)] {
                if let Some(n) = new.as_deref_mut() {
                    if n.acked && n.key == key {
                        n.filled = n.filled.saturating_add(qty);
                        continue;
                    }
                }
                live.fill(&key, qty);
            }
        }
        OutputMsg::CancelAck {
            user,
            user_order_id,
            ..
        } => {
            live.remove(&(user, user_order_id));
        }
        OutputMsg::TopOfBook { .. } | OutputMsg::Reject { .. } => {}
    }
}

fn symbol_of(m: &OutputMsg) -> Symbol {
    match *m {
        OutputMsg::Ack { symbol, .. }
        | OutputMsg::CancelAck { symbol, .. }
        | OutputMsg::Trade { symbol, .. }
        | OutputMsg::TopOfBook { symbol, .. }
        | OutputMsg::Reject { symbol, .. } => symbol,
    }
}

/// Pushes a processor's output, waiting (and waking the I/O thread) while the queue is full.
struct ProcSink<'a> {
    tx: &'a mut Producer<Out>,
    wake: &'a Notify,
    stop: &'a AtomicBool,
}

impl ProcSink<'_> {
    fn push(&mut self, mut item: Out) {
        loop {
            match self.tx.push(item) {
                Ok(()) => return,
                Err(PushError::Full(i)) => {
                    if self.stop.load(Ordering::Acquire) {
                        return;
                    }
                    item = i;
                    self.wake.notify_one();
                    thread::yield_now();
                }
            }
        }
    }
}

impl Sink for ProcSink<'_> {
    fn emit(&mut self, msg: &OutputMsg, route: Route) {
        self.push(Out::Msg(*msg, route));
    }
}

fn processor(
    config: EngineConfig,
    mut rx: Consumer<Job>,
    mut tx: Producer<Out>,
    wake: Arc<Notify>,
    stop: Arc<AtomicBool>,
    spin: Duration,
) {
    let mut engine = Engine::new(config);
    let mut since_notify = 0u32;
    let mut idle_since: Option<Instant> = None;
    // Jobs taken off the queue ahead of the one being matched, so that the engine can prefetch
    // their memory meanwhile (the index bucket as a job enters, the orders it names two jobs
    // ahead): with large books that hides most cache misses (docs/performance.md).
    let mut ahead: VecDeque<Job> = VecDeque::with_capacity(PREFETCH_AHEAD + 1);
    loop {
        while ahead.len() <= PREFETCH_AHEAD {
            let Ok(job) = rx.pop() else { break };
            if let Some(m) = job.msg() {
                engine.prefetch(m);
            }
            ahead.push_back(job);
        }
        match ahead.pop_front() {
            Some(job) => {
                if let Some(m) = ahead.get(PREFETCH_AHEAD / 2 - 1).and_then(Job::msg) {
                    engine.prefetch_orders(m);
                }
                idle_since = None;
                let mut sink = ProcSink {
                    tx: &mut tx,
                    wake: &wake,
                    stop: &stop,
                };
                match job {
                    Job::Msg { origin, msg } => engine.process(origin, &msg, &mut sink),
                    Job::NewCounted {
                        origin,
                        msg,
                        elsewhere,
                    } => engine.process_with_elsewhere(origin, &msg, elsewhere, &mut sink),
                    Job::CancelIfOwned { origin, msg } => {
                        if let InputMsg::Cancel(c) = msg {
                            if engine.owns_order(c.user, c.user_order_id) {
                                engine.process(origin, &msg, &mut sink);
                            }
                        }
                    }
                    Job::Disconnect(client) => engine.cancel_client_orders(client, &mut sink),
                }
                sink.push(Out::End);
                since_notify += 1;
                if since_notify >= NOTIFY_EVERY || (ahead.is_empty() && rx.is_empty()) {
                    wake.notify_one();
                    since_notify = 0;
                }
            }
            None => {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() < spin {
                    std::hint::spin_loop();
                } else {
                    // The I/O thread unparks after every push; the timeout only bounds how long
                    // a lost wake-up could delay shutdown.
                    thread::park_timeout(Duration::from_millis(100));
                }
            }
        }
    }
}
