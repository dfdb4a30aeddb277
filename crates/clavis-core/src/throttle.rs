//! Brute-force protection for client authentication, safe for machine clients.
//!
//! Failures are counted per (client id, source address): after `free_failures` failures in a row,
//! that pair waits `base * 2^n` (capped at `max_backoff`) before its next attempt is even
//! evaluated. The pair includes the address so that an attacker at one address can never lock a
//! legitimate client out at another. A success clears the pair; a pair idle for `forget_after`
//! starts afresh. The state is per node and in memory: a lockout bounds guessing speed, it is not
//! a record (the sign-in log is).

use std::collections::HashMap;
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

/// How failed authentications are throttled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures in a row allowed before the first wait (0 turns throttling off).
    pub free_failures: u32,
    /// The first wait.
    pub base: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
    /// A pair without failures for this long starts afresh.
    pub forget_after: Duration,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self { free_failures: 10, base: Duration::seconds(1), max_backoff: Duration::minutes(5), forget_after: Duration::minutes(15) }
    }
}

/// Bound on tracked pairs; beyond it, pairs that no longer wait are dropped first.
const MAX_PAIRS: usize = 100_000;

#[derive(Debug)]
struct Pair {
    failures: u32,
    last_failure: OffsetDateTime,
    blocked_until: Option<OffsetDateTime>,
}

/// The failure counters of one node.
#[derive(Debug, Default)]
pub struct FailureThrottle {
    settings: ThrottleSettings,
    pairs: Mutex<HashMap<(String, String), Pair>>,
}

impl FailureThrottle {
    /// A throttle with these settings.
    pub fn new(settings: ThrottleSettings) -> Self {
        Self { settings, pairs: Mutex::default() }
    }

    fn key(client_id: &str, address: &str) -> (String, String) {
        (client_id.to_ascii_lowercase(), address.to_string())
    }

    /// How long the pair must still wait, if it must.
    pub fn wait(&self, client_id: &str, address: &str, now: OffsetDateTime) -> Option<Duration> {
        if self.settings.free_failures == 0 {
            return None;
        }
        let pairs = self.pairs.lock().unwrap_or_else(|e| e.into_inner());
        // The common case on the token path: no failures anywhere, no key built.
        if pairs.is_empty() {
            return None;
        }
        let until = pairs.get(&Self::key(client_id, address))?.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failed authentication; returns the wait it starts, if any.
    pub fn failed(&self, client_id: &str, address: &str, now: OffsetDateTime) -> Option<Duration> {
        let settings = self.settings;
        if settings.free_failures == 0 {
            return None;
        }
        let mut pairs = self.pairs.lock().unwrap_or_else(|e| e.into_inner());
        if pairs.len() >= MAX_PAIRS {
            pairs.retain(|_, pair| pair.blocked_until.is_some_and(|until| until > now));
            if pairs.len() >= MAX_PAIRS {
                pairs.clear();
            }
        }
        let pair = pairs.entry(Self::key(client_id, address)).or_insert(Pair { failures: 0, last_failure: now, blocked_until: None });
        if now - pair.last_failure > settings.forget_after {
            *pair = Pair { failures: 0, last_failure: now, blocked_until: None };
        }
        pair.failures = pair.failures.saturating_add(1);
        pair.last_failure = now;
        let over = pair.failures.checked_sub(settings.free_failures)?;
        let wait = settings.base.checked_mul(1_i32 << over.min(20)).map_or(settings.max_backoff, |w| w.min(settings.max_backoff));
        pair.blocked_until = Some(now + wait);
        Some(wait)
    }

    /// Clears the pair after a successful authentication.
    pub fn succeeded(&self, client_id: &str, address: &str) {
        if self.settings.free_failures == 0 {
            return;
        }
        let mut pairs = self.pairs.lock().unwrap_or_else(|e| e.into_inner());
        if !pairs.is_empty() {
            pairs.remove(&Self::key(client_id, address));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_after_the_free_failures_per_address_and_reset() {
        let throttle = FailureThrottle::new(ThrottleSettings { free_failures: 3, ..ThrottleSettings::default() });
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        assert_eq!(throttle.failed("app", "10.0.0.1", now), None);
        assert_eq!(throttle.failed("app", "10.0.0.1", now), None);
        assert_eq!(throttle.failed("app", "10.0.0.1", now), Some(Duration::seconds(1)));
        assert_eq!(throttle.wait("APP", "10.0.0.1", now), Some(Duration::seconds(1)));
        assert_eq!(throttle.wait("app", "10.0.0.2", now), None, "another address is never locked out");
        assert_eq!(throttle.failed("app", "10.0.0.1", now + Duration::seconds(1)), Some(Duration::seconds(2)));
        assert_eq!(throttle.failed("app", "10.0.0.1", now + Duration::seconds(3)), Some(Duration::seconds(4)));
        for _ in 0..30 {
            throttle.failed("app", "10.0.0.1", now + Duration::seconds(3));
        }
        assert_eq!(throttle.wait("app", "10.0.0.1", now + Duration::seconds(3)), Some(Duration::minutes(5)), "capped");
        // Idle for longer than forget_after: afresh.
        assert_eq!(throttle.failed("app", "10.0.0.1", now + Duration::minutes(30)), None);
        // A success clears the pair.
        throttle.failed("app", "10.0.0.1", now + Duration::minutes(30));
        throttle.failed("app", "10.0.0.1", now + Duration::minutes(30));
        throttle.succeeded("app", "10.0.0.1");
        assert_eq!(throttle.wait("app", "10.0.0.1", now + Duration::minutes(30)), None);
        assert_eq!(throttle.failed("app", "10.0.0.1", now + Duration::minutes(30)), None);
    }

    #[test]
    fn zero_free_failures_turns_it_off() {
        let throttle = FailureThrottle::new(ThrottleSettings { free_failures: 0, ..ThrottleSettings::default() });
        let now = OffsetDateTime::UNIX_EPOCH;
        for _ in 0..100 {
            assert_eq!(throttle.failed("app", "a", now), None);
        }
        assert_eq!(throttle.wait("app", "a", now), None);
    }
}
