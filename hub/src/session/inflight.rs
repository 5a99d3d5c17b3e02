//! Frames a transport handed to its session and the session has not finished
//! yet: a reader pauses (or `/emulation` waits) instead of queueing without
//! bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Counts frames a transport handed to its session and the session has not
/// finished yet, so a reader can pause instead of queueing without bound.
#[derive(Debug, Default)]
pub struct Inflight {
    count: AtomicUsize,
    drained: Notify,
}

impl Inflight {
    /// Notes one more frame in flight; the guard ends it when dropped.
    pub fn start(self: &Arc<Self>) -> InflightGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        InflightGuard(self.clone())
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until a frame in flight finishes.
    pub async fn drained(&self) {
        self.drained.notified().await
    }
}

/// Held by the session while it handles one frame.
#[derive(Debug)]
pub struct InflightGuard(Arc<Inflight>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.drained.notify_one();
    }
}
