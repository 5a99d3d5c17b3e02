//! Counters and HDR histograms shared by a worker's connections, and the
//! portable form (value, count pairs) in which workers send histograms to the
//! controller.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// Histograms are sharded so connections on different threads rarely meet on a lock.
const SHARDS: usize = 32;

/// Highest latency recorded, in microseconds (larger values are clamped).
const MAX_US: u64 = 600_000_000;

pub fn histogram() -> Histogram<u64> {
    // 2 significant digits: 1% resolution, a few KiB per histogram.
    Histogram::new_with_bounds(1, MAX_US, 2).expect("valid histogram bounds")
}

/// A histogram split in shards; `record_all` takes one lock per call.
pub struct Sharded {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Default for Sharded {
    fn default() -> Self {
        Sharded { shards: (0..SHARDS).map(|_| Mutex::new(histogram())).collect() }
    }
}

impl Sharded {
    pub fn record_all(&self, slot: usize, values: &[u64]) {
        let mut shard = self.shards[slot % SHARDS].lock().unwrap_or_else(|e| e.into_inner());
        for &value in values {
            shard.saturating_record(value.clamp(1, MAX_US));
        }
    }

    pub fn record(&self, slot: usize, value: u64) {
        self.record_all(slot, &[value]);
    }

    /// Merges the shards and resets them.
    pub fn take(&self) -> Histogram<u64> {
        let mut total = histogram();
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            let _ = total.add(&*shard);
            shard.reset();
        }
        total
    }
}

/// A histogram as (value, count) pairs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Hist(pub Vec<(u64, u64)>);

impl Hist {
    pub fn from_histogram(h: &Histogram<u64>) -> Hist {
        Hist(h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect())
    }

    pub fn add_to(&self, h: &mut Histogram<u64>) {
        for &(value, count) in &self.0 {
            let _ = h.record_n(value.clamp(1, MAX_US), count);
        }
    }
}

/// Percentiles of a histogram in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}
