//! The interval policy's clock: one thread sweeps every registered partition when its period
//! is due and asks it to queue an fsync, instead of one sleeping thread per partition.

use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::SyncJob;
use crate::lock;

struct Member {
    job: Weak<dyn SyncJob>,
    period: Duration,
    due: Instant,
}

#[derive(Default)]
struct State {
    members: Vec<Member>,
    shutdown: bool,
}

/// The registered interval partitions and the condition variable the timer thread sleeps on.
#[derive(Default)]
pub(crate) struct Timer {
    state: Mutex<State>,
    cv: Condvar,
}

impl Timer {
    /// Adds a partition; its first tick is one period from now.
    pub(crate) fn register(&self, job: Weak<dyn SyncJob>, period: Duration) {
        let mut s = lock(&self.state);
        s.members.push(Member {
            job,
            period,
            due: Instant::now() + period,
        });
        drop(s);
        // The new member may be due before the timer's current deadline.
        self.cv.notify_one();
    }

    pub(crate) fn shutdown(&self) {
        lock(&self.state).shutdown = true;
        self.cv.notify_all();
    }

    /// The timer thread's loop: sleep until the earliest due member, tick every due one (outside
    /// the lock), repeat; members whose partition is gone are dropped.
    pub(crate) fn run(&self) {
        let mut s = lock(&self.state);
        loop {
            if s.shutdown {
                return;
            }
            let now = Instant::now();
            let mut due: Vec<Arc<dyn SyncJob>> = Vec::new();
            let mut next: Option<Instant> = None;
            s.members.retain_mut(|m| {
                if m.job.strong_count() == 0 {
                    return false;
                }
                if m.due <= now {
                    if let Some(j) = m.job.upgrade() {
                        due.push(j);
                    }
                    // Missed ticks are not made up: one fsync covers them all.
                    m.due = now + m.period;
                }
                next = Some(next.map_or(m.due, |n| n.min(m.due)));
                true
            });
            if !due.is_empty() {
                drop(s);
                for j in due {
                    j.interval_tick();
                }
                s = lock(&self.state);
                continue;
            }
            s = match next {
                Some(t) => {
                    self.cv
                        .wait_timeout(s, t.saturating_duration_since(now))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self.cv.wait(s).unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    struct Probe {
        id: usize,
        tx: Mutex<mpsc::Sender<usize>>,
    }

    impl SyncJob for Probe {
        fn sync_step(&self) -> bool {
            false
        }
        fn interval_tick(self: Arc<Self>) {
            let _ = lock(&self.tx).send(self.id);
        }
    }

    #[test]
    fn one_thread_ticks_every_member_and_forgets_dropped_ones() {
        let timer = Arc::new(Timer::default());
        let t = {
            let timer = timer.clone();
            std::thread::spawn(move || timer.run())
        };
        let (tx, rx) = mpsc::channel();
        let probes: Vec<Arc<Probe>> = (0..3)
            .map(|id| {
                Arc::new(Probe {
                    id,
                    tx: Mutex::new(tx.clone()),
                })
            })
            .collect();
        for p in &probes {
            let weak: Weak<dyn SyncJob> = Arc::downgrade(p) as Weak<dyn SyncJob>;
            timer.register(weak, Duration::from_millis(2));
        }
        let mut seen = [0u32; 4];
        while seen[..3].iter().any(|&n| n < 3) {
            let id = rx.recv_timeout(Duration::from_secs(30)).expect("a tick");
            seen[id] += 1;
        }
        drop(probes);
        // A newcomer's second tick means a sweep ran after the others were dropped.
        let late = Arc::new(Probe {
            id: 3,
            tx: Mutex::new(tx),
        });
        let weak: Weak<dyn SyncJob> = Arc::downgrade(&late) as Weak<dyn SyncJob>;
        timer.register(weak, Duration::from_millis(2));
        let mut late_ticks = 0;
        while late_ticks < 2 {
            if rx.recv_timeout(Duration::from_secs(30)).expect("a tick") == 3 {
                late_ticks += 1;
            }
        }
        assert_eq!(lock(&timer.state).members.len(), 1);
        timer.shutdown();
        t.join().unwrap();
    }
}
