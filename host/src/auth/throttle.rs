//! Failed-login throttling, per account and per client.
//!
//! Per account (by e-mail, known or not): after a few consecutive failures the account is locked
//! for a window that doubles with each further failure. Per client address: a budget of failures
//! ([`CLIENT_BURST`] at once, refilled at [`CLIENT_FAILURES_PER_MINUTE`]), so one client cannot
//! spray a password over many accounts, nor lock many accounts (or one victim's) without being
//! slowed itself. A limited client is refused before its password is even checked.
//! The state is per process: behind N replicas an attacker gets N times the attempts, which
//! still bounds a guessing attack to a handful per minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::http::rate::RateLimit;

const FREE_ATTEMPTS: u32 = 5;
const BASE_LOCK: Duration = Duration::from_secs(30);
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// Failures older than this are forgotten.
const MEMORY: Duration = Duration::from_secs(60 * 60);

/// Failed logins one client address may make at once...
pub const CLIENT_BURST: u32 = 20;
/// ...and how many more it earns a minute.
pub const CLIENT_FAILURES_PER_MINUTE: u32 = 5;

pub struct LoginThrottle {
    accounts: Mutex<HashMap<String, Failures>>,
    clients: RateLimit,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self { accounts: Mutex::default(), clients: RateLimit::per_minute(CLIENT_FAILURES_PER_MINUTE, CLIENT_BURST) }
    }
}

/// Why a login is refused before its password is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    Account(Duration),
    Client(Duration),
}

struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

impl LoginThrottle {
    /// Refused while the client has no failures left or the account is locked.
    pub fn check(&self, account: &str, client: &str) -> Result<(), Throttled> {
        self.clients.peek(client).map_err(Throttled::Client)?;
        let now = Instant::now();
        let accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        match accounts.get(account).and_then(|f| f.locked_until) {
            Some(until) if until > now => Err(Throttled::Account(until - now)),
            _ => Ok(()),
        }
    }

    /// Records a failure of `client` on `account`; returns the lock it caused, if any.
    pub fn failed(&self, account: &str, client: &str) -> Option<Duration> {
        // The client's budget was checked before; a concurrent failure may empty it meanwhile,
        // which the next attempt sees.
        let _ = self.clients.check(client);
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
            assert_eq!(throttle.failed("a@x.io", "1.2.3.4"), None);
            assert!(throttle.check("a@x.io", "1.2.3.4").is_ok());
        }
        assert_eq!(throttle.failed("a@x.io", "1.2.3.4"), Some(BASE_LOCK));
        assert!(matches!(throttle.check("a@x.io", "5.6.7.8"), Err(Throttled::Account(_))), "locked from anywhere");
        assert!(throttle.check("b@x.io", "1.2.3.4").is_ok(), "other accounts are untouched");
        assert_eq!(throttle.failed("a@x.io", "1.2.3.4"), Some(BASE_LOCK * 2));
        throttle.succeeded("a@x.io");
        assert!(throttle.check("a@x.io", "1.2.3.4").is_ok());
    }

    #[test]
    fn a_client_spraying_many_accounts_runs_out_of_failures() {
        let throttle = LoginThrottle::default();
        for i in 0..CLIENT_BURST {
            assert!(throttle.check(&format!("u{i}@x.io"), "1.2.3.4").is_ok(), "attempt {i}");
            assert_eq!(throttle.failed(&format!("u{i}@x.io"), "1.2.3.4"), None, "one failure locks no account");
        }
        assert!(matches!(throttle.check("fresh@x.io", "1.2.3.4"), Err(Throttled::Client(_))));
        assert!(throttle.check("fresh@x.io", "5.6.7.8").is_ok(), "other clients are untouched");
    }
}
