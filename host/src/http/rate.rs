//! Keyed rate limits (a token bucket per visitor, address or login client), per process: behind N
//! replicas a client gets N times the budget, which still bounds a flood.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets untouched this long are full again and can be forgotten.
const IDLE: Duration = Duration::from_secs(120);
/// Past this many keys, idle ones are swept (at most once per `SWEEP_EVERY`).
const SWEEP_AT: usize = 50_000;
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// The most keys kept: past it a new key waits (a flood of fresh addresses cannot grow memory).
const MAX_KEYS: usize = 200_000;

pub struct RateLimit {
    /// Tokens per second.
    rate: f64,
    burst: f64,
    state: Mutex<Buckets>,
}

#[derive(Default)]
struct Buckets {
    by_key: HashMap<String, Bucket>,
    swept: Option<Instant>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    /// `per_minute` requests a minute on average, up to `burst` at once.
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        Self { rate: f64::from(per_minute.max(1)) / 60.0, burst: f64::from(burst.max(1)), state: Mutex::default() }
    }

    /// Whether `key` has a token left, taking none: `Err(retry_after)` when it has none.
    pub fn peek(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(bucket) = state.by_key.get(key) else { return Ok(()) };
        let tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * self.rate).min(self.burst);
        if tokens >= 1.0 { Ok(()) } else { Err(Duration::from_secs_f64((1.0 - tokens) / self.rate)) }
    }

    /// Takes one token for `key`; `Err(retry_after)` when none is left.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.by_key.contains_key(key) && state.by_key.len() >= SWEEP_AT {
            if state.swept.is_none_or(|at| now.duration_since(at) >= SWEEP_EVERY) {
                state.by_key.retain(|_, b| now.duration_since(b.at) < IDLE);
                state.swept = Some(now);
            }
            if state.by_key.len() >= MAX_KEYS {
                return Err(SWEEP_EVERY);
            }
        }
        let bucket = state.by_key.entry(key.to_owned()).or_insert(Bucket { tokens: self.burst, at: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_key_waits_while_others_do_not() {
        let limit = RateLimit::per_minute(60, 3);
        for _ in 0..3 {
            assert!(limit.check("a").is_ok());
        }
        let wait = limit.check("a").expect_err("the fourth waits");
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO, "{wait:?}");
        assert!(limit.check("b").is_ok());
        assert!(limit.peek("a").is_err(), "peeking sees the empty bucket");
        assert!(limit.peek("c").is_ok() && limit.peek("c").is_ok(), "peeking takes nothing");
    }
}
