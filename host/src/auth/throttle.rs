//! Failed-login throttling per account (by e-mail, known or not): after a few consecutive
//! failures the account is locked for a window that doubles with each further failure.
//! The state is per process: behind N replicas an attacker gets N times the attempts, which
//! still bounds a guessing attack to a handful per minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FREE_ATTEMPTS: u32 = 5;
const BASE_LOCK: Duration = Duration::from_secs(30);
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// Failures older than this are forgotten.
const MEMORY: Duration = Duration::from_secs(60 * 60);

#[derive(Default)]
pub struct LoginThrottle {
    accounts: Mutex<HashMap<String, Failures>>,
}

struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

impl LoginThrottle {
    /// `Err(retry_after)` while the account is locked.
    pub fn check(&self, account: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        match accounts.get(account).and_then(|f| f.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a failure; returns the lock it caused, if any.
    pub fn failed(&self, account: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if accounts.len() > 100_000 {
            accounts.retain(|_, f| now.duration_since(f.last) < MEMORY);
        }
        let entry = accounts.entry(account.to_owned()).or_insert(Failures { count: 0, last: now, locked_until: None });
        if now.duration_since(entry.last) >= MEMORY {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last = now;
        if entry.count < FREE_ATTEMPTS {
            return None;
        }
        let doublings = (entry.count - FREE_ATTEMPTS).min(10);
        let lock = BASE_LOCK.saturating_mul(1 << doublings).min(MAX_LOCK);
        entry.locked_until = Some(now + lock);
        Some(lock)
    }

    pub fn succeeded(&self, account: &str) {
        self.accounts.lock().unwrap_or_else(|e| e.into_inner()).remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifth_failure_locks_the_account_and_further_ones_lock_longer() {
        let throttle = LoginThrottle::default();
        for _ in 0..4 {
            assert_eq!(throttle.failed("a@x.io"), None);
            assert!(throttle.check("a@x.io").is_ok());
        }
        assert_eq!(throttle.failed("a@x.io"), Some(BASE_LOCK));
        assert!(throttle.check("a@x.io").is_err());
        assert!(throttle.check("b@x.io").is_ok(), "other accounts are untouched");
        assert_eq!(throttle.failed("a@x.io"), Some(BASE_LOCK * 2));
        throttle.succeeded("a@x.io");
        assert!(throttle.check("a@x.io").is_ok());
    }
}
