//! Process-wide counters, and their Prometheus text exposition at `/metrics`
//! (when `prometheus = true`). `/api/info` also reports `subscriptions`
//! (`num_subs`).
//!
//! Plain relaxed atomics: each counter is independent and only ever summed or
//! displayed, so no ordering between them is promised.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of one node, for `/api/info` and the cluster's heartbeats.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct NodeInfo {
    pub uid: String,
    pub name: String,
    pub version: String,
    pub num_clients: u64,
    pub num_users: u64,
    pub num_channels: u64,
    pub num_subs: u64,
    pub uptime: u64,
}

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
    /// Sessions started, per transport (indexed by the transport's index,
    /// labelled by [`Metrics::TRANSPORT_LABELS`]).
    pub sessions_started: [AtomicU64; 4],
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

    /// Labels of `sessions_started`, in index order (`session::TransportKind::index`).
    pub const TRANSPORT_LABELS: [&'static str; 4] = ["websocket", "sse", "http_stream", "uni_sse"];

    /// Counts a session started on the transport with index `transport`.
    pub fn session_started(&self, transport: usize) {
        if let Some(counter) = self.sessions_started.get(transport) {
            Metrics::inc(counter);
        }
    }
}

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// This node's metrics in the Prometheus text exposition format (0.0.4):
/// `metrics`, the node's counts `info`, and the live nodes of its cluster
/// (`None` alone).
pub fn exposition(metrics: &Metrics, info: &NodeInfo, cluster_nodes: Option<usize>) -> String {
    let mut out = String::with_capacity(2048);
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        // Writing into a String cannot fail.
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let build = format!("{{version=\"{}\",node=\"{}\"}}", escape(&info.version), escape(&info.name));
    family("hub_build_info", "gauge", "The hub's version and node name (always 1).", &[(build.as_str(), 1)]);
    family("hub_uptime_seconds", "gauge", "Seconds since the node started.", &[("", info.uptime)]);
    family("hub_clients", "gauge", "Connected clients (sessions past connect).", &[("", info.num_clients)]);
    family("hub_users", "gauge", "Distinct users among the connected clients.", &[("", info.num_users)]);
    family("hub_channels", "gauge", "Channels with a topic on this node.", &[("", info.num_channels)]);
    family("hub_subscriptions", "gauge", "Subscriptions held by this node's clients.", &[("", info.num_subs)]);
    let labels: Vec<String> =
        Metrics::TRANSPORT_LABELS.iter().map(|name| format!("{{transport=\"{name}\"}}")).collect();
    let started: Vec<(&str, u64)> = labels
        .iter()
        .zip(&metrics.sessions_started)
        .map(|(label, count)| (label.as_str(), Metrics::get(count)))
        .collect();
    family("hub_sessions_started_total", "counter", "Sessions started, per transport.", &started);
    family(
        "hub_publications_total",
        "counter",
        "Publications accepted into channels sequenced here.",
        &[("", Metrics::get(&metrics.publications))],
    );
    family(
        "hub_slow_disconnects_total",
        "counter",
        "Clients closed with 3008 because their outbox was full.",
        &[("", Metrics::get(&metrics.slow_disconnects))],
    );
    family(
        "hub_topic_restarts_total",
        "counter",
        "Topic actors that failed and were restarted.",
        &[("", Metrics::get(&metrics.topic_restarts))],
    );
    family(
        "hub_session_failures_total",
        "counter",
        "Session actors that failed.",
        &[("", Metrics::get(&metrics.session_failures))],
    );
    if let Some(nodes) = cluster_nodes {
        family("hub_cluster_nodes", "gauge", "Live nodes of the cluster, this one included.", &[("", nodes as u64)]);
    }
    if let Some(rss) = resident_bytes() {
        family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", &[("", rss)]);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        family("process_open_fds", "gauge", "Open file descriptors.", &[("", fds.count() as u64)]);
    }
    out
}

/// Resident set size from the `VmRSS` line of /proc/self/status (Linux; None elsewhere).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn every_transport_has_its_own_slot() {
        use crate::session::TransportKind;
        // Each kind's counter is its own, and its label is the one at its index.
        for (i, kind) in TransportKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
        assert_eq!(TransportKind::ALL.len(), Metrics::TRANSPORT_LABELS.len());
    }
}
