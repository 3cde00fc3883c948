//! The order log: what `docker logs` shows of the orders a client sent and what it got back.
//!
//! The first [`MessageLog::per_client`] messages to and from each client are logged in full (in
//! CSV, whatever protocol the client speaks), at most [`MAX_LINES_PER_SECOND`] lines a second
//! over all clients; everything else is only counted and summed up in one line a second. So a
//! person trying the engine with `nc` sees each order and its results, while a load of millions
//! of orders a second costs a counter increment per message and one log line a second.
//! `--quiet` turns all of it off.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use engine_core::{ClientId, InputMsg, OutputMsg};

/// Message lines logged per second over all clients, at most: a flood of new UDP source ports
/// (each one a client) cannot turn the log into the bottleneck.
pub const MAX_LINES_PER_SECOND: u32 = 200;

/// Length of the window that [`MAX_LINES_PER_SECOND`] and the summary line count over.
const WINDOW: Duration = Duration::from_secs(1);

/// Direction of a logged message, as seen from the engine.
#[derive(Clone, Copy)]
enum Dir {
    In,
    Out,
}

/// Per-client budgets, the global rate limit and the counts behind the summary line.
pub struct MessageLog {
    per_client: u32,
    window_start: Instant,
    lines_in_window: u32,
    unlogged_in: u64,
    unlogged_out: u64,
    scratch: Vec<u8>,
}

impl MessageLog {
    /// A log that shows each client's first `per_client` messages (0: none, the `--quiet` case).
    pub fn new(per_client: u32) -> MessageLog {
        MessageLog {
            per_client,
            window_start: Instant::now(),
            lines_in_window: 0,
            unlogged_in: 0,
            unlogged_out: 0,
            scratch: Vec::with_capacity(128),
        }
    }

    /// Whether a client that has had `logged` messages shown gets more shown.
    #[inline]
    pub fn shows(&self, logged: u32) -> bool {
        logged < self.per_client
    }

    /// Counts a message from a client whose budget is spent.
    #[inline]
    pub fn count_input(&mut self) {
        self.unlogged_in += 1;
    }

    /// A message from a client; `logged` is that client's count of logged messages so far.
    #[inline]
    pub fn input(&mut self, id: ClientId, peer: SocketAddr, logged: &mut u32, msg: &InputMsg) {
        if !self.shows(*logged) {
            self.unlogged_in += 1;
            return;
        }
        self.show(id, peer, logged, Dir::In, |buf| {
            engine_core::csv::encode_input(msg, buf)
        });
    }

    /// A message to a client; `logged` as for [`MessageLog::input`]. Inline and a counter
    /// increment for a client past its budget: this runs for every output message.
    #[inline]
    pub fn output(&mut self, id: ClientId, peer: SocketAddr, logged: &mut u32, msg: &OutputMsg) {
        if !self.shows(*logged) {
            self.unlogged_out += 1;
            return;
        }
        self.show(id, peer, logged, Dir::Out, |buf| {
            engine_core::csv::encode_output(msg, buf)
        });
    }

    /// Logs one message (CSV written by `encode`) within the budgets, or counts it.
    #[cold]
    #[inline(never)]
    fn show(
        &mut self,
        id: ClientId,
        peer: SocketAddr,
        logged: &mut u32,
        dir: Dir,
        encode: impl FnOnce(&mut Vec<u8>),
    ) {
        if !self.shows(*logged) || !self.take_line() {
            match dir {
                Dir::In => self.unlogged_in += 1,
                Dir::Out => self.unlogged_out += 1,
            }
            return;
        }
        *logged += 1;
        self.scratch.clear();
        encode(&mut self.scratch);
        self.line(id, peer, dir);
    }

    fn line(&self, id: ClientId, peer: SocketAddr, dir: Dir) {
        let text = String::from_utf8_lossy(&self.scratch);
        let text = text.trim_end();
        match dir {
            Dir::In => tracing::info!("client {id} ({peer}) -> {text}"),
            Dir::Out => tracing::info!("client {id} ({peer}) <- {text}"),
        }
    }

    /// Whether the global rate limit lets one more line through now.
    fn take_line(&mut self) -> bool {
        if self.lines_in_window >= MAX_LINES_PER_SECOND {
            if self.window_start.elapsed() < WINDOW {
                return false;
            }
            self.window_start = Instant::now();
            self.lines_in_window = 0;
        }
        self.lines_in_window += 1;
        true
    }

    /// Called once a second: logs how many messages were not logged one by one since the last
    /// call, when there were any.
    pub fn summary(&mut self) {
        if self.unlogged_in == 0 && self.unlogged_out == 0 {
            return;
        }
        if self.per_client > 0 {
            tracing::info!(
                "{} messages in, {} out in the last second (not logged one by one: each \
                 client's first {} are, --quiet logs none)",
                self.unlogged_in,
                self.unlogged_out,
                self.per_client
            );
        }
        self.unlogged_in = 0;
        self.unlogged_out = 0;
    }

    /// Unlogged messages since the last summary: (in, out).
    pub fn unlogged(&self) -> (u64, u64) {
        (self.unlogged_in, self.unlogged_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine_core::csv::decode_input;

    fn order() -> InputMsg {
        decode_input(b"N, 1, IBM, 10000, 100, B, 1")
            .unwrap()
            .unwrap()
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    #[test]
    fn each_client_gets_its_budget_then_is_counted() {
        let mut log = MessageLog::new(3);
        let (mut a, mut b) = (0, 0);
        for _ in 0..5 {
            log.input(1, peer(), &mut a, &order());
        }
        log.input(2, peer(), &mut b, &order());
        assert_eq!((a, b), (3, 1));
        assert_eq!(log.unlogged(), (2, 0));
        log.summary();
        assert_eq!(log.unlogged(), (0, 0));
    }

    #[test]
    fn quiet_logs_nothing_and_counts_everything() {
        let mut log = MessageLog::new(0);
        let mut a = 0;
        log.input(1, peer(), &mut a, &order());
        assert_eq!(a, 0);
        assert_eq!(log.unlogged(), (1, 0));
    }

    #[test]
    fn the_global_rate_limit_holds_over_many_clients() {
        let mut log = MessageLog::new(10);
        let mut counts = vec![0u32; 1000];
        let start = Instant::now();
        for (id, c) in counts.iter_mut().enumerate() {
            log.input(id as ClientId, peer(), c, &order());
        }
        let logged: u32 = counts.iter().sum();
        // Only a loop that outlasted the window may have been allowed a second window's lines.
        if start.elapsed() < WINDOW {
            assert_eq!(logged, MAX_LINES_PER_SECOND);
        }
        assert_eq!(log.unlogged().0, 1000 - u64::from(logged));
    }
}
