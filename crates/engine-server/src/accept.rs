//! The TCP accept loop and its two guards: the connection limit (`--max-connections`, a
//! [`ConnSlot`] per open connection) and the back-off after failed accepts (running out of file
//! descriptors must neither spin the I/O thread nor flood the log). Kept apart from the server
//! so that admitting connections and serving them can change independently.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

/// First pause after a failed accept (EMFILE, ENFILE, ENOBUFS...): the failed connection
/// stays in the listen queue, so retrying at once would spin.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest pause between retries while accepts keep failing.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How often a repeated warning (accept failures, refused connections) is logged at most.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// Rate limit for a repeated warning: the first occurrence, then at most one line per
/// [`WARN_EVERY`] with the count of those not logged.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    unlogged: u64,
}

impl Throttle {
    /// `Some(occurrences not logged since the last line)` when this one should be logged.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.duration_since(t) < WARN_EVERY => {
                self.unlogged += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.unlogged))
            }
        }
    }

    /// Starts over: the next occurrence is logged as a first one.
    fn reset(&mut self) {
        self.last = None;
        self.unlogged = 0;
    }
}

/// One open TCP connection, counted against `--max-connections` until its reader and writer
/// are both done (the socket is closed when both halves are dropped).
pub struct ConnSlot(Rc<Cell<u64>>);

impl ConnSlot {
    fn new(open: &Rc<Cell<u64>>) -> ConnSlot {
        open.set(open.get() + 1);
        ConnSlot(open.clone())
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Accepts TCP connections until the runtime stops, handing each one that fits under
/// `max_connections` to `start` with its [`ConnSlot`]; one over the limit is accepted and
/// closed at once (the client reads EOF rather than hanging in the listen queue). A failed
/// accept (out of descriptors, buffers) backs off from 10 ms doubling up to a second, and is
/// warned about at most once a second.
pub async fn accept_loop(
    listener: TcpListener,
    max_connections: u64,
    mut start: impl FnMut(TcpStream, SocketAddr, ConnSlot),
) {
    let open = Rc::new(Cell::new(0u64));
    let mut backoff = ACCEPT_BACKOFF_MIN;
    // Failures in the current run of failures, and the rate limit of their warnings.
    let mut failures = 0u64;
    let mut failure_log = Throttle::default();
    let mut refusal_log = Throttle::default();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if failures > 0 {
                    failure_log.reset();
                    tracing::info!("TCP accept works again after {failures} failed attempts");
                    failures = 0;
                }
                backoff = ACCEPT_BACKOFF_MIN;
                if open.get() >= max_connections {
                    // Accepted only to be closed at once: the client sees EOF instead of
                    // hanging in the listen queue, and the descriptor is free again.
                    drop(stream);
                    if let Some(unlogged) = refusal_log.admit(Instant::now()) {
                        let more = if unlogged > 0 {
                            format!(" ({unlogged} more refused since the last such line)")
                        } else {
                            String::new()
                        };
                        tracing::warn!(
                            "TCP connection from {peer} refused: {max_connections} connections \
                             open, the limit (--max-connections / ENGINE_MAX_CONNECTIONS){more}"
                        );
                    }
                    continue;
                }
                start(stream, peer, ConnSlot::new(&open));
            }
            Err(e) => {
                // EMFILE and friends: the pending connection stays queued and the listener
                // stays readable, so wait before retrying (doubling, up to a second) and log
                // the first failure, then a count at most once a second.
                failures += 1;
                if let Some(unlogged) = failure_log.admit(Instant::now()) {
                    if failures == 1 {
                        tracing::warn!(
                            "TCP accept failed: {e}; retrying in {} ms, backing off up to {} ms \
                             (further failures are counted once a second)",
                            backoff.as_millis(),
                            ACCEPT_BACKOFF_MAX.as_millis()
                        );
                    } else {
                        tracing::warn!(
                            "TCP accept still failing: {} more failures since the last report \
                             ({failures} in a row), last: {e}; retrying in {} ms",
                            unlogged + 1,
                            backoff.as_millis()
                        );
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_counts_until_dropped() {
        let open = Rc::new(Cell::new(0));
        let a = ConnSlot::new(&open);
        let b = ConnSlot::new(&open);
        assert_eq!(open.get(), 2);
        drop(a);
        assert_eq!(open.get(), 1);
        drop(b);
        assert_eq!(open.get(), 0);
    }

    #[test]
    fn repeated_warnings_are_logged_once_per_interval_with_a_count() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        assert_eq!(t.admit(t0), Some(0));
        assert_eq!(t.admit(t0 + WARN_EVERY / 2), None);
        assert_eq!(t.admit(t0 + WARN_EVERY / 2), None);
        assert_eq!(t.admit(t0 + WARN_EVERY), Some(2));
        t.reset();
        assert_eq!(t.admit(t0 + WARN_EVERY), Some(0));
    }
}
