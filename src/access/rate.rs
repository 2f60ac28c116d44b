//! The limit on anonymous writes: a token bucket per client address over the requests that
//! store something without an authenticated party (flow starts, refused sign-in attempts).
//! Memory is bounded: the least recently seen addresses are forgotten first.

use std::net::IpAddr;
use std::sync::Mutex;

use cached::{Cached as _, LruCache};

/// How many addresses are remembered at most (a few MB).
const CAPACITY: usize = 100_000;

/// One address's bucket: tokens left, and when they were counted (Unix seconds).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: i64,
}

/// The buckets of every recently seen address.
pub struct RateLimiter {
    buckets: Mutex<LruCache<IpAddr, Bucket>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").finish_non_exhaustive()
    }
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter::new(CAPACITY)
    }
}

impl RateLimiter {
    /// A limiter remembering at most `capacity` addresses.
    pub fn new(capacity: usize) -> Self {
        RateLimiter {
            buckets: Mutex::new(LruCache::new(capacity.max(1))),
        }
    }

    /// Takes one token of `ip`'s bucket, which holds `per_minute` tokens and refills at that
    /// rate (0: no limit). `Err` says in how many whole seconds a token will be there.
    pub fn take(&self, ip: IpAddr, now: i64, per_minute: u32) -> Result<(), u64> {
        if per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(per_minute);
        let per_second = capacity / 60.0;
        let mut buckets = match self.buckets.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let bucket = buckets.cache_get_or_set_with_mut(ip, || Bucket {
            tokens: capacity,
            at: now,
        });
        // Whole seconds since the last count (a clock moved back refills nothing).
        let elapsed = now.saturating_sub(bucket.at).max(0);
        #[expect(
            clippy::cast_precision_loss,
            reason = "seconds between two requests are far below 2^52"
        )]
        let refill = elapsed as f64 * per_second;
        bucket.tokens = (bucket.tokens + refill).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - bucket.tokens) / per_second).ceil();
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a positive number of seconds below a minute per token"
        )]
        Err((wait as u64).max(1))
    }

    /// How many addresses are remembered.
    pub fn len(&self) -> usize {
        match self.buckets.lock() {
            Ok(guard) => guard.cache_size(),
            Err(poisoned) => poisoned.into_inner().cache_size(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn a_bucket_holds_a_minute_of_requests_and_refills_at_that_rate() {
        let limiter = RateLimiter::default();
        for _ in 0..60 {
            assert_eq!(limiter.take(ip(1), 1_000, 60), Ok(()));
        }
        assert_eq!(limiter.take(ip(1), 1_000, 60), Err(1));
        // Another address has a bucket of its own.
        assert_eq!(limiter.take(ip(2), 1_000, 60), Ok(()));
        // One token a second comes back.
        assert_eq!(limiter.take(ip(1), 1_001, 60), Ok(()));
        assert_eq!(limiter.take(ip(1), 1_001, 60), Err(1));
        // At 6 a minute, a token takes 10 s.
        for _ in 0..6 {
            assert_eq!(limiter.take(ip(3), 1_000, 6), Ok(()));
        }
        assert_eq!(limiter.take(ip(3), 1_000, 6), Err(10));
        assert_eq!(limiter.take(ip(3), 1_004, 6), Err(6));
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limiter = RateLimiter::default();
        for _ in 0..1_000 {
            assert_eq!(limiter.take(ip(1), 1_000, 0), Ok(()));
        }
        assert!(limiter.is_empty());
    }

    #[test]
    fn memory_is_bounded_by_forgetting_the_least_recently_seen() {
        let limiter = RateLimiter::new(3);
        for last in 0..10 {
            let _ = limiter.take(ip(last), 1_000, 1);
        }
        assert_eq!(limiter.len(), 3);
        // A forgotten address starts with a full bucket again.
        assert_eq!(limiter.take(ip(0), 1_000, 1), Ok(()));
    }
}
