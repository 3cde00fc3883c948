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
//! a processor only sees its own. The router therefore keeps an index of resting orders, fed by
//! the engines' own `Sink::rested` / `Sink::left` events (which each processor forwards in its
//! output queue, in order with the job's messages), and of new orders in flight; an id reused
//! on another processor makes it wait until everything sent is delivered (the index is then
//! exact) and reject with code 5 itself when the order still rests. Whether an order gets as
//! far as the duplicate check at all is `engine_core::checks::validate_new`, the engine's own
//! first checks.
//!
//! Output: the router never reaches into the client table. Everything a client sees (the
//! processors' output, and the two rejects the router makes itself) is handed in job order to
//! a [`Deliver`] (the server's hub; a `Vec` in tests), and only by [`Router::drain`]; the input
//! side ([`Router::submit`], [`Router::disconnect`]) drains only when it has to wait (a full
//! job queue, or an index that must be exact).
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
    checks, ClientId, Elsewhere, Engine, EngineConfig, InputMsg, OrderId, OutputMsg, Price,
    RejectReason, Route, Sink, Symbol, UserId,
};
use rtrb::{Consumer, Producer, PushError, RingBuffer};
use rustc_hash::FxHashMap;
use tokio::sync::Notify;

use crate::server::PREFETCH_AHEAD;

/// Where the router hands the output it delivers, in the order a single engine would produce
/// it: `origin` is the client whose message (or disconnect) produced `msg`, `route` where the
/// engine sends it. Implemented by the server's `Hub`, and by a `Vec` for tests and tools.
pub trait Deliver {
    /// Called once per output message, in order.
    fn deliver(&mut self, origin: ClientId, msg: &OutputMsg, route: Route);
}

impl Deliver for Vec<(ClientId, OutputMsg, Route)> {
    fn deliver(&mut self, origin: ClientId, msg: &OutputMsg, route: Route) {
        self.push((origin, *msg, route));
    }
}

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
    /// The engine's `Sink::rested`: an order now rests (on this processor) in a symbol's book.
    Rested(Key, Symbol),
    /// The engine's `Sink::left`: an order resting on this processor is gone.
    Left(Key),
    /// The job is complete.
    End,
}

/// Which processors a job went to.
#[derive(Clone, Copy)]
enum Target {
    One(usize),
    All,
    /// None: the router answers the job itself with this message (routed to the origin), in
    /// its place in the job order.
    Router(OutputMsg),
}

/// A job sent and not yet fully delivered.
struct Pending {
    origin: ClientId,
    target: Target,
    /// For a cancel without a symbol: (user, order id), to reject when no processor owns it.
    unowned_cancel: Option<Key>,
    /// For a new order that passed the checks before the duplicate check: its id, counted in
    /// flight until its output is complete.
    new: Option<Key>,
}

/// An order's identity: (user, user order id).
type Key = (UserId, OrderId);

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
    /// Orders resting on some processor as of the output delivered so far (the engines'
    /// rested / left events). Lets the router reject a new order that reuses the id of an
    /// order resting on *another* processor (duplicate id, code 5), and count a user's resting
    /// orders across processors, as a single engine would.
    live: Live,
    /// New orders sent and not yet fully delivered: key -> (processor, how many).
    inflight: FxHashMap<Key, (usize, u32)>,
    /// New orders sent and not yet fully delivered, per user.
    inflight_users: FxHashMap<u32, u32>,
    /// The engines' cap on resting orders per user.
    max_orders_per_user: usize,
    /// The engines' cap on books holding one user's resting orders.
    max_symbols_per_user: usize,
    /// The engines' highest accepted price (for `checks::validate_new`).
    max_price: Price,
}

/// A resting order as the router knows it: its processor and symbol.
#[derive(Clone, Copy)]
struct LiveOrder {
    p: usize,
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

    /// Order `key` left processor `p`. (An id rests on one processor at a time; the check of
    /// `p` only keeps a stale event from removing a newer order elsewhere.)
    fn remove(&mut self, key: &Key, p: usize) {
        if self.orders.get(key).is_some_and(|l| l.p == p) {
            if let Some(old) = self.orders.remove(key) {
                self.user_gone(key.0, old);
            }
        }
    }

    /// Applies one of processor `p`'s rested / left events; false for any other output.
    fn apply(&mut self, p: usize, out: &Out) -> bool {
        match *out {
            Out::Rested(key, symbol) => self.insert(key, LiveOrder { p, symbol }),
            Out::Left(key) => self.remove(&key, p),
            Out::Msg(..) | Out::End => return false,
        }
        true
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
        let max_price = config.max_price;
        // With one processor its engine sees every id and every order: nothing to track.
        let track = n > 1;
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
                .spawn(move || processor(config, job_rx, out_tx, wake, stop, spin, track))
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
            max_price,
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

    /// Sends one input message from `origin` to the processor(s) that must see it. Delivers
    /// output to `out` only while it has to wait (see the module documentation).
    pub fn submit<D: Deliver>(&mut self, origin: ClientId, msg: InputMsg, out: &mut D) {
        match msg {
            InputMsg::New(ref o) => {
                let p = self.owner(&o.symbol);
                let key = (o.user, o.user_order_id);
                // An order failing one of the engine's checks that come before the duplicate
                // check (docs/engine.md) is rejected by its engine, never rests, and needs no
                // tracking. With one processor its engine sees every id: nothing to track.
                let track_id =
                    self.procs.len() > 1 && checks::validate_new(o, self.max_price).is_ok();
                if track_id && self.resting_elsewhere(key, p, out) {
                    let reject = OutputMsg::Reject {
                        symbol: o.symbol,
                        user: o.user,
                        user_order_id: o.user_order_id,
                        reason: RejectReason::DuplicateOrderId,
                    };
                    self.fifo.push_back(Pending {
                        origin,
                        target: Target::Router(reject),
                        unowned_cancel: None,
                        new: None,
                    });
                    return;
                }
                let job = match track_id.then(|| self.user_orders_elsewhere(o.user, p, out)) {
                    Some(Some(elsewhere)) => Job::NewCounted {
                        origin,
                        msg,
                        elsewhere,
                    },
                    _ => Job::Msg { origin, msg },
                };
                self.send(p, job, out);
                let new = track_id.then(|| {
                    self.inflight
                        .entry(key)
                        .and_modify(|e| e.1 += 1)
                        .or_insert((p, 1));
                    *self.inflight_users.entry(key.0).or_insert(0) += 1;
                    key
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
                    None if !checks::valid_id(c.user, c.user_order_id) => Some(0),
                    None => None,
                };
                match target {
                    Some(p) => {
                        self.send(p, Job::Msg { origin, msg }, out);
                        self.fifo.push_back(Pending {
                            origin,
                            target: Target::One(p),
                            unowned_cancel: None,
                            new: None,
                        });
                    }
                    None => {
                        for p in 0..self.procs.len() {
                            self.send(p, Job::CancelIfOwned { origin, msg }, out);
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
                    self.send(p, Job::Msg { origin, msg }, out);
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
    fn resting_elsewhere<D: Deliver>(&mut self, key: Key, p: usize, out: &mut D) -> bool {
        let maybe = self.live.get(&key).is_some_and(|l| l.p != p)
            || self.inflight.get(&key).is_some_and(|f| f.0 != p);
        if !maybe {
            return false;
        }
        self.drain_all(out);
        self.live.get(&key).is_some_and(|l| l.p != p)
    }

    /// Waits until every job sent so far is delivered.
    fn drain_all<D: Deliver>(&mut self, out: &mut D) {
        while !self.fifo.is_empty() {
            self.drain(out);
            if !self.fifo.is_empty() {
                thread::yield_now();
            }
        }
    }

    /// For a new order of `user` bound for processor `p`: `None` when the user certainly holds
    /// fewer resting orders and symbols than the caps (those delivered as resting plus one of
    /// each per new order in flight, upper bounds); otherwise, after waiting until every job
    /// sent is delivered, exactly what the user holds on the other processors. The wait only
    /// happens for a user near a cap.
    fn user_orders_elsewhere<D: Deliver>(
        &mut self,
        user: UserId,
        p: usize,
        out: &mut D,
    ) -> Option<Elsewhere> {
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
        self.drain_all(out);
        let (orders, symbols) = (0..n)
            .filter(|&q| q != p)
            .map(|q| self.live.holdings(user, q))
            .fold((0, 0), |(o, s), (qo, qs)| (o + qo, s + qs));
        Some(Elsewhere { orders, symbols })
    }

    /// Cancels every resting order of `client` on every processor. Delivers output to `out`
    /// only while a job queue is full.
    pub fn disconnect<D: Deliver>(&mut self, client: ClientId, out: &mut D) {
        for p in 0..self.procs.len() {
            self.send(p, Job::Disconnect(client), out);
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
    fn send<D: Deliver>(&mut self, p: usize, mut job: Job, out: &mut D) {
        loop {
            match self.procs[p].tx.push(job) {
                Ok(()) => break,
                Err(PushError::Full(j)) => {
                    job = j;
                    self.procs[p].thread.unpark();
                    self.drain(out);
                    thread::yield_now();
                }
            }
        }
        self.procs[p].thread.unpark();
    }

    /// Delivers all output that is ready to `out`, in submission order.
    pub fn drain<D: Deliver>(&mut self, out: &mut D) {
        while let Some(head) = self.fifo.front() {
            let origin = head.origin;
            match head.target {
                Target::One(p) => loop {
                    let Ok(item) = self.procs[p].rx.pop() else {
                        return;
                    };
                    match item {
                        Out::Msg(m, r) => out.deliver(origin, &m, r),
                        Out::End => {
                            if let Some(key) = head.new {
                                self.finish_new(key);
                            }
                            self.fifo.pop_front();
                            break;
                        }
                        event => {
                            self.live.apply(p, &event);
                        }
                    }
                },
                Target::All => {
                    for p in 0..self.procs.len() {
                        while !self.gathered[p] {
                            let Ok(item) = self.procs[p].rx.pop() else {
                                return;
                            };
                            match item {
                                Out::Msg(m, r) => self.gather[p].push((m, r)),
                                Out::End => self.gathered[p] = true,
                                // Applied as it arrives: the engine has already done what it
                                // reports, and these jobs only remove orders.
                                event => {
                                    self.live.apply(p, &event);
                                }
                            }
                        }
                    }
                    let unowned = head.unowned_cancel;
                    self.fifo.pop_front();
                    self.deliver_gathered(origin, unowned, out);
                }
                Target::Router(msg) => {
                    self.fifo.pop_front();
                    out.deliver(origin, &msg, Route::Origin);
                }
            }
        }
    }

    /// A new order's output is complete: it is no longer in flight (whether it rests, its
    /// engine has said with a rested event).
    fn finish_new(&mut self, key: Key) {
        if let Some(f) = self.inflight.get_mut(&key) {
            f.1 -= 1;
            if f.1 == 0 {
                self.inflight.remove(&key);
            }
        }
        if let Some(u) = self.inflight_users.get_mut(&key.0) {
            *u -= 1;
            if *u == 0 {
                self.inflight_users.remove(&key.0);
            }
        }
    }

    /// Merges the per-processor output of a job that went to every processor into the order a
    /// single engine would have produced: each book's lines stay together, books in symbol order.
    fn deliver_gathered<D: Deliver>(
        &mut self,
        origin: ClientId,
        unowned: Option<Key>,
        out: &mut D,
    ) {
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
                out.deliver(origin, &reject, Route::Origin);
            }
        }
        for (_, p, a, b) in groups {
            for (m, r) in &self.gather[p][a..b] {
                out.deliver(origin, m, *r);
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
    /// Forward the engine's rested / left events (only the router of several processors
    /// needs them).
    track: bool,
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

    fn rested(&mut self, user: UserId, user_order_id: OrderId, symbol: Symbol) {
        if self.track {
            self.push(Out::Rested((user, user_order_id), symbol));
        }
    }

    fn left(&mut self, user: UserId, user_order_id: OrderId, _symbol: Symbol) {
        if self.track {
            self.push(Out::Left((user, user_order_id)));
        }
    }
}

fn processor(
    config: EngineConfig,
    mut rx: Consumer<Job>,
    mut tx: Producer<Out>,
    wake: Arc<Notify>,
    stop: Arc<AtomicBool>,
    spin: Duration,
    track: bool,
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
                    track,
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
