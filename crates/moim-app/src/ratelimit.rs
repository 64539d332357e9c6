//! A token bucket per key (a client address, a user), for login and
//! refresh. Pure: the caller passes the time. Bounded: past `max_keys`
//! the fullest buckets (those that would allow a request anyway) are
//! dropped first, so a flood of new addresses cannot grow it without end.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests allowed in a burst.
    pub burst: f64,
    /// Requests regained per second.
    pub per_second: f64,
}

#[derive(Debug)]
pub struct RateLimiter {
    rate: Rate,
    max_keys: usize,
    buckets: HashMap<String, (f64, f64)>, // key -> (tokens, at)
}

impl RateLimiter {
    pub fn new(rate: Rate, max_keys: usize) -> Self {
        Self {
            rate,
            max_keys: max_keys.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Whether one more request from `key` is allowed at `now` (seconds).
    pub fn allow(&mut self, key: &str, now: f64) -> bool {
        let rate = self.rate;
        let refill = |(tokens, at): (f64, f64)| {
            (tokens + (now - at).max(0.0) * rate.per_second).min(rate.burst)
        };
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.max_keys {
            self.buckets.retain(|_, b| refill(*b) < rate.burst);
            if self.buckets.len() >= self.max_keys {
                // Every bucket is in use: keep the emptiest half.
                let mut levels: Vec<f64> = self.buckets.values().map(|b| refill(*b)).collect();
                levels.sort_by(f64::total_cmp);
                let cut = levels[levels.len() / 2];
                self.buckets.retain(|_, b| refill(*b) < cut);
            }
        }
        let tokens = self.buckets.get(key).map_or(rate.burst, |b| refill(*b));
        let allowed = tokens >= 1.0;
        let left = if allowed { tokens - 1.0 } else { tokens };
        self.buckets.insert(key.to_string(), (left, now));
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        burst: 3.0,
        per_second: 0.5,
    };

    #[test]
    fn a_burst_passes_then_requests_wait_for_the_refill() {
        let mut l = RateLimiter::new(RATE, 100);
        assert!((0..3).all(|_| l.allow("a", 0.0)));
        assert!(!l.allow("a", 0.0));
        assert!(l.allow("b", 0.0), "another key has its own bucket");
        assert!(!l.allow("a", 1.0), "half a request regained");
        assert!(l.allow("a", 2.0));
        assert!(!l.allow("a", 2.0));
    }

    #[test]
    fn a_flood_of_keys_stays_bounded_and_keeps_the_limited_ones() {
        let mut l = RateLimiter::new(RATE, 10);
        for _ in 0..3 {
            l.allow("attacker", 0.0);
        }
        for i in 0..1000 {
            l.allow(&format!("k{i}"), 0.0);
            assert!(l.buckets.len() <= 10);
        }
        assert!(!l.allow("attacker", 0.0), "the emptied bucket was kept");
    }
}
