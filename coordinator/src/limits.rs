//! Per-client call limits: a token bucket per connection (its remote address), so one
//! broken or hostile client that floods the coordinator is refused on its own while the
//! others are served. A pure function of the time it is given.
//!
//! Memory stays bounded: a full bucket says nothing a fresh one would not, so full
//! buckets are forgotten whenever the table has grown past its mark.

use std::collections::HashMap;
use std::hash::Hash;

/// How many calls a client may make.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallLimits {
    /// Calls per second a client may keep up.
    pub per_s: u32,
    /// Calls a client may make at once after a quiet time.
    pub burst: u32,
}

impl CallLimits {
    /// Defaults: far above what a node (a heartbeat every few seconds, a join per
    /// round, a checkpoint report per save), an agent or an operator polling status
    /// needs, far below what a tight loop sends.
    pub const DEFAULT: CallLimits = CallLimits {
        per_s: 20,
        burst: 100,
    };

    /// A full bucket, in thousandths of a call (whole numbers: no rounding drift).
    fn capacity(&self) -> u64 {
        u64::from(self.burst.max(1)) * 1000
    }

    /// Thousandths of a call refilled in `ms` milliseconds.
    fn refill(&self, ms: u64) -> u64 {
        ms.saturating_mul(u64::from(self.per_s))
    }
}

/// What the limiter decided for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Serve it; `after_refused` calls of this client were refused since its last
    /// served call (worth one log line when above zero).
    Admitted {
        /// Calls refused just before this one.
        after_refused: u64,
    },
    /// Refuse it (RESOURCE_EXHAUSTED); `first` is true for the first refusal of a run
    /// of refusals (the one to log).
    Refused {
        /// The first refusal since the client was last served.
        first: bool,
    },
}

#[derive(Debug, Clone)]
struct Bucket {
    /// Thousandths of a call left.
    tokens: u64,
    at_ms: u64,
    refused: u64,
}

/// Token buckets per client key.
#[derive(Debug)]
pub struct RateLimiter<K> {
    limits: CallLimits,
    buckets: HashMap<K, Bucket>,
    prune_above: usize,
}

/// Buckets kept before full ones are pruned (grows with the live clients).
const MIN_PRUNE_MARK: usize = 1024;

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter allowing `limits` per client.
    pub fn new(limits: CallLimits) -> Self {
        Self {
            limits,
            buckets: HashMap::new(),
            prune_above: MIN_PRUNE_MARK,
        }
    }

    /// Decides one call of `client` at `now_ms`.
    pub fn admit(&mut self, client: &K, now_ms: u64) -> Admission {
        let limits = self.limits;
        if !self.buckets.contains_key(client) {
            self.prune(now_ms);
            self.buckets.insert(
                client.clone(),
                Bucket {
                    tokens: limits.capacity(),
                    at_ms: now_ms,
                    refused: 0,
                },
            );
        }
        let bucket = self.buckets.get_mut(client).expect("inserted above");
        let refilled = limits.refill(now_ms.saturating_sub(bucket.at_ms));
        bucket.tokens = bucket
            .tokens
            .saturating_add(refilled)
            .min(limits.capacity());
        bucket.at_ms = bucket.at_ms.max(now_ms);
        if bucket.tokens >= 1000 {
            bucket.tokens -= 1000;
            let after_refused = std::mem::take(&mut bucket.refused);
            Admission::Admitted { after_refused }
        } else {
            bucket.refused += 1;
            Admission::Refused {
                first: bucket.refused == 1,
            }
        }
    }

    /// Clients tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Forgets the buckets that have refilled by `now_ms`, once the table has grown
    /// past its mark; the mark then follows the clients that remain.
    fn prune(&mut self, now_ms: u64) {
        if self.buckets.len() < self.prune_above {
            return;
        }
        let limits = self.limits;
        self.buckets.retain(|_, b| {
            let refilled = b
                .tokens
                .saturating_add(limits.refill(now_ms.saturating_sub(b.at_ms)));
            refilled < limits.capacity() || b.refused > 0
        });
        self.prune_above = (self.buckets.len() * 2).max(MIN_PRUNE_MARK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: CallLimits = CallLimits {
        per_s: 10,
        burst: 5,
    };

    fn admitted(a: Admission) -> bool {
        matches!(a, Admission::Admitted { .. })
    }

    #[test]
    fn a_flooding_client_gets_its_burst_then_its_rate_and_the_others_are_untouched() {
        let mut limiter = RateLimiter::new(LIMITS);
        // 1000 calls in the same millisecond: the burst, then nothing.
        let served = (0..1000)
            .filter(|_| admitted(limiter.admit(&"flood", 0)))
            .count();
        assert_eq!(served, 5);
        // Over the next 10 s at 1000 calls/s: the rate (10/s), no more.
        let served = (1..=10_000)
            .filter(|ms| admitted(limiter.admit(&"flood", *ms)))
            .count();
        assert_eq!(served, 100);
        // A client calling every 200 ms all along is always served.
        let mut quiet = RateLimiter::new(LIMITS);
        for ms in (0..=10_000).step_by(1) {
            let _ = quiet.admit(&"flood", ms);
            if ms % 200 == 0 {
                assert!(admitted(quiet.admit(&"node", ms)), "at {ms} ms");
            }
        }
    }

    #[test]
    fn a_run_of_refusals_is_reported_once_and_counted_when_served_again() {
        let mut limiter = RateLimiter::new(LIMITS);
        for _ in 0..5 {
            assert_eq!(
                limiter.admit(&1, 0),
                Admission::Admitted { after_refused: 0 }
            );
        }
        assert_eq!(limiter.admit(&1, 0), Admission::Refused { first: true });
        assert_eq!(limiter.admit(&1, 0), Admission::Refused { first: false });
        assert_eq!(limiter.admit(&1, 0), Admission::Refused { first: false });
        assert_eq!(
            limiter.admit(&1, 100),
            Admission::Admitted { after_refused: 3 }
        );
        // A clock that steps back refills nothing and breaks nothing.
        assert_eq!(limiter.admit(&1, 50), Admission::Refused { first: true });
    }

    #[test]
    fn idle_clients_are_forgotten_so_memory_follows_the_live_ones() {
        let mut limiter = RateLimiter::new(LIMITS);
        for client in 0..10 * MIN_PRUNE_MARK {
            let _ = limiter.admit(&client, client as u64 * 1_000);
        }
        // Every client made one call 1 s or more before the next one came: refilled.
        assert!(limiter.tracked() <= MIN_PRUNE_MARK, "{}", limiter.tracked());
        // Clients still draining (or refused) are kept.
        let mut busy = RateLimiter::new(LIMITS);
        for client in 0..2 * MIN_PRUNE_MARK {
            let _ = busy.admit(&client, 0);
        }
        assert_eq!(busy.tracked(), 2 * MIN_PRUNE_MARK);
    }
}
