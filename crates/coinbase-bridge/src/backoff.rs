//! Exponential backoff with jitter, for reconnecting to Coinbase and to the stream server.

use rand::Rng;
use std::time::Duration;

/// Delays `min · 2^attempt`, capped at `max`, with "equal jitter": half the delay fixed,
/// half random, so that many clients dropped together (Coinbase's Saturday logout) do not
/// reconnect in lockstep, while a single client still backs off steadily.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    min: Duration,
    max: Duration,
}

impl Backoff {
    /// A backoff between `min` and `max` (`max` is raised to `min` if smaller).
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
        }
    }

    /// The upper bound of the delay before retry number `attempt` (0-based), before jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// The delay before retry number `attempt`: in `[ceiling/2, ceiling]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let c = self.ceiling(attempt);
        let half = c / 2;
        let jitter_ns = rand::thread_rng().gen_range(0..=(c - half).as_nanos() as u64);
        half + Duration::from_nanos(jitter_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_to_the_cap_with_bounded_jitter() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(10), Duration::from_secs(5));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(5));
        for attempt in 0..40 {
            let d = b.delay(attempt);
            let c = b.ceiling(attempt);
            assert!(d >= c / 2 && d <= c, "{attempt}: {d:?} vs {c:?}");
        }
    }
}
