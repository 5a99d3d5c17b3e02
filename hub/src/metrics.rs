//! Process-wide counters: `/api/info` reports `subscriptions` (`num_subs`),
//! the tests read the others (there is no metrics endpoint yet).
//!
//! Plain relaxed atomics: each counter is independent and only ever summed or
//! displayed, so no ordering between them is promised.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    /// Sessions closed because their outbox overflowed (3008 "slow").
    pub slow_disconnects: AtomicU64,
    /// Topic actors that failed and were restarted.
    pub topic_restarts: AtomicU64,
    /// Session actors that failed.
    pub session_failures: AtomicU64,
    /// Publications accepted (all sources).
    pub publications: AtomicU64,
    /// Subscriptions currently held by sessions of this node (a gauge).
    pub subscriptions: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
