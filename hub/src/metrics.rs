//! Process-wide metrics, and their Prometheus text exposition (format 0.0.4)
//! at `/metrics` (when `prometheus = true`), written by prometheus-client.
//! `/api/info` also reports `subscriptions` (`num_subs`).
//!
//! Counters and histograms live in [`Metrics`] (one per node, shared by
//! `Arc`) and are registered once; the node's counts that are read rather
//! than counted (clients, users, channels, uptime, cluster size, memory,
//! file descriptors) are gauges filled in at each scrape.
//!
//! Histograms (seconds; Prometheus `_bucket`, `_sum` and `_count` series):
//! - `hub_publish_fanout_duration_seconds`: from the moment the node that
//!   sequences a publication accepts it (the engine, for the API, clients
//!   and AMQP ingest on a single node; the owner's receipt in a cluster) to
//!   the moment its channel actor has handed it to every local subscriber's
//!   outbox. The wait in the actor's mailbox is included: it is where load
//!   shows.
//! - `hub_api_request_duration_seconds{method}`: a server API call, from its
//!   authorised arrival to its encoded answer, per method (`batch` for
//!   `/api/batch`, `legacy` for `POST /api`); errors included.
//! - `hub_broker_round_trip_duration_seconds{operation}`: a cluster request
//!   to another node over RabbitMQ until its answer (`publish`, `sync`,
//!   `history`, ...), timeouts and errors included.
//! - `hub_proxy_call_duration_seconds{proxy}`: a call to the application's
//!   backend (`rpc`), until its answer or the timeout; with
//!   `hub_proxy_errors_total{proxy}` counting those with no usable answer.
//!
//! Counters by label: `hub_sessions_started_total{transport}` and
//! `hub_limit_refusals_total{limit}`, every limit of `crate::quota::Refusal`
//! (connections per node, user and address, the command rate and the
//! disconnect it leads to, channels per client), each listed from the start
//! at 0.
//!
//! Every value is an atomic, independent of the others and only ever summed
//! or displayed, so no ordering between them is promised.

use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use crate::quota::Refusal;

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

/// A set of one label (`[("method", "publish")]`).
type Label = [(&'static str, &'static str); 1];
/// Histograms by one label, all with [`DURATION_BUCKETS`].
type Histograms = Family<Label, Histogram, fn() -> Histogram>;

/// Upper bounds of the duration histograms' buckets, in seconds: 50 µs to
/// 5 s, about 2.5× apart. Fan-out to a large channel on a busy node takes
/// milliseconds; a broker round trip about one on loopback, and its timeout
/// is seconds.
const DURATION_BUCKETS: [f64; 14] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The metrics of one node.
#[derive(Debug)]
pub struct Metrics {
    /// Sessions closed because their outbox overflowed (3008 "slow").
    pub slow_disconnects: Counter,
    /// Topic actors that failed and were restarted.
    pub topic_restarts: Counter,
    /// Session actors that failed.
    pub session_failures: Counter,
    /// Publications accepted (all sources).
    pub publications: Counter,
    /// Subscriptions currently held by sessions of this node.
    pub subscriptions: Gauge,
    /// Sessions started, by [`Metrics::TRANSPORT_LABELS`].
    sessions_started: Family<Label, Counter>,
    /// Refusals by a limit, by [`Refusal::label`].
    limit_refusals: Family<Label, Counter>,
    publish_fanout: Histogram,
    api_requests: Histograms,
    broker_round_trips: Histograms,
    proxy_calls: Histograms,
    proxy_errors: Family<Label, Counter>,
    /// Everything above, registered once.
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let metrics = Metrics {
            slow_disconnects: Counter::default(),
            topic_restarts: Counter::default(),
            session_failures: Counter::default(),
            publications: Counter::default(),
            subscriptions: Gauge::default(),
            sessions_started: Family::default(),
            limit_refusals: Family::default(),
            publish_fanout: duration_histogram(),
            api_requests: Family::new_with_constructor(duration_histogram),
            broker_round_trips: Family::new_with_constructor(duration_histogram),
            proxy_calls: Family::new_with_constructor(duration_histogram),
            proxy_errors: Family::default(),
            registry: Registry::default(),
        };
        // Known label values are listed from the start, at 0.
        let _ = metrics.proxy_errors.get_or_create(&[("proxy", "rpc")]);
        // Every transport too.
        for transport in Metrics::TRANSPORT_LABELS {
            let _ = metrics.sessions_started.get_or_create(&[("transport", transport)]);
        }
        for refusal in Refusal::ALL {
            let _ = metrics.limit_refusals.get_or_create(&[("limit", refusal.label())]);
        }
        let mut registry = Registry::default();
        registry.register(
            "hub_subscriptions",
            "Subscriptions held by this node's clients",
            metrics.subscriptions.clone(),
        );
        registry.register("hub_sessions_started", "Sessions started, per transport", metrics.sessions_started.clone());
        registry.register(
            "hub_publications",
            "Publications accepted into channels sequenced here",
            metrics.publications.clone(),
        );
        registry.register(
            "hub_slow_disconnects",
            "Clients closed with 3008 because their outbox was full",
            metrics.slow_disconnects.clone(),
        );
        registry.register(
            "hub_topic_restarts",
            "Topic actors that failed and were restarted",
            metrics.topic_restarts.clone(),
        );
        registry.register(
            "hub_limit_refusals",
            "Connections, commands and subscriptions refused by a configured limit, per limit",
            metrics.limit_refusals.clone(),
        );
        registry.register("hub_session_failures", "Session actors that failed", metrics.session_failures.clone());
        registry.register(
            "hub_publish_fanout_duration_seconds",
            "From a publication's acceptance by the node that sequences it to its hand-off to every local subscriber",
            metrics.publish_fanout.clone(),
        );
        registry.register(
            "hub_api_request_duration_seconds",
            "Server API calls, from their authorised arrival to their encoded answer, per method",
            metrics.api_requests.clone(),
        );
        registry.register(
            "hub_broker_round_trip_duration_seconds",
            "Cluster requests to another node over RabbitMQ until their answer, per operation",
            metrics.broker_round_trips.clone(),
        );
        registry.register(
            "hub_proxy_call_duration_seconds",
            "Calls to the application's backend (proxy), until its answer or the timeout, per proxy",
            metrics.proxy_calls.clone(),
        );
        registry.register(
            "hub_proxy_errors",
            "Backend calls with no usable answer (timeout, unreachable, non-2xx, garbage), per proxy",
            metrics.proxy_errors.clone(),
        );
        Metrics { registry, ..metrics }
    }
}

impl Metrics {
    /// Labels of the transports, in `session::TransportKind::index` order.
    pub const TRANSPORT_LABELS: [&'static str; 4] = ["websocket", "sse", "http_stream", "uni_sse"];

    /// Counts a session started on the transport with index `transport`.
    pub fn session_started(&self, transport: usize) {
        if let Some(label) = Metrics::TRANSPORT_LABELS.get(transport) {
            self.sessions_started.get_or_create(&[("transport", label)]).inc();
        }
    }

    /// Counts one refusal by a limit.
    pub fn limit_refused(&self, refusal: Refusal) {
        self.limit_refusals.get_or_create(&[("limit", refusal.label())]).inc();
    }

    /// Refusals by one limit so far.
    pub fn limit_refusals(&self, refusal: Refusal) -> u64 {
        self.limit_refusals.get_or_create(&[("limit", refusal.label())]).get()
    }

    /// Records a publication's acceptance-to-fan-out time.
    pub fn observe_fanout(&self, elapsed: Duration) {
        self.publish_fanout.observe(elapsed.as_secs_f64());
    }

    /// Records a server API call of `method` (a method name, `batch` or `legacy`).
    pub fn observe_api_request(&self, method: &'static str, elapsed: Duration) {
        self.api_requests.get_or_create(&[("method", method)]).observe(elapsed.as_secs_f64());
    }

    /// Records a cluster request's round trip (`operation`: the request's kind).
    pub fn observe_broker_round_trip(&self, operation: &'static str, elapsed: Duration) {
        self.broker_round_trips.get_or_create(&[("operation", operation)]).observe(elapsed.as_secs_f64());
    }

    /// Records a backend call of `proxy` (`rpc`, ...) and whether it gave a usable answer.
    pub fn observe_proxy_call(&self, proxy: &'static str, elapsed: Duration, ok: bool) {
        self.proxy_calls.get_or_create(&[("proxy", proxy)]).observe(elapsed.as_secs_f64());
        if !ok {
            self.proxy_errors.get_or_create(&[("proxy", proxy)]).inc();
        }
    }

    /// Subscriptions held now (the gauge never goes below 0 when read).
    pub fn subscription_count(&self) -> u64 {
        Metrics::get(&self.subscriptions)
    }

    /// The value of a counter or gauge of [`Metrics`] (a gauge below 0 reads 0).
    pub fn get(metric: &impl Reading) -> u64 {
        metric.reading()
    }
}

/// A counter or gauge read as a count, for [`Metrics::get`].
pub trait Reading {
    fn reading(&self) -> u64;
}

impl Reading for Counter {
    fn reading(&self) -> u64 {
        self.get()
    }
}

impl Reading for Gauge {
    fn reading(&self) -> u64 {
        u64::try_from(self.get()).unwrap_or(0)
    }
}

/// The content type of the Prometheus text format (0.0.4).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// This node's metrics in the Prometheus text exposition format (0.0.4):
/// `metrics`, the node's counts `info`, and the live nodes of its cluster
/// (`None` alone).
pub fn exposition(metrics: &Metrics, info: &NodeInfo, cluster_nodes: Option<usize>) -> String {
    let mut scrape = Registry::default();
    let gauge = |value: u64| {
        let gauge = Gauge::<i64>::default();
        gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        gauge
    };
    let build = Family::<[(&str, String); 2], Gauge>::default();
    build.get_or_create(&[("version", info.version.clone()), ("node", info.name.clone())]).set(1);
    scrape.register("hub_build_info", "The hub's version and node name (always 1)", build);
    scrape.register("hub_uptime_seconds", "Seconds since the node started", gauge(info.uptime));
    scrape.register("hub_clients", "Connected clients (sessions past connect)", gauge(info.num_clients));
    scrape.register("hub_users", "Distinct users among the connected clients", gauge(info.num_users));
    scrape.register("hub_channels", "Channels with a topic on this node", gauge(info.num_channels));
    if let Some(nodes) = cluster_nodes {
        scrape.register("hub_cluster_nodes", "Live nodes of the cluster, this one included", gauge(nodes as u64));
    }
    if let Some(rss) = resident_bytes() {
        scrape.register("process_resident_memory_bytes", "Resident memory size in bytes", gauge(rss));
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        scrape.register("process_open_fds", "Open file descriptors", gauge(fds.count() as u64));
    }
    let mut out = String::with_capacity(8192);
    // Writing into a String cannot fail.
    let _ = prometheus_text::encode(&mut out, &scrape);
    let _ = prometheus_text::encode(&mut out, &metrics.registry);
    out
}

/// Resident set size from the `VmRSS` line of /proc/self/status (Linux; None elsewhere).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

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
