//! `/metrics`: the Prometheus text exposition follows what happened on the
//! node, and is off (404 with a JSON body) unless `prometheus = true`.

use std::net::SocketAddr;

use hub::config::Config;
use protocol::Encoding;

use crate::helpers::{data, eventually, raw_request, spawn_hub, test_config};

const API_KEY: &str = "metrics-key";

/// A plain HTTP/1.1 GET; returns the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    raw_request(addr, &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")).await
}

/// The value of the sample line `name` (with its labels) in an exposition.
fn sample(exposition: &str, name: &str) -> Option<u64> {
    exposition.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_clients_subscriptions_and_publications() {
    let hub = spawn_hub(Config { prometheus: true, api_key: Some(API_KEY.into()), ..test_config() }).await;
    let (mut alice, _) = hub.connect(Encoding::Json).await;
    let (mut bob, _) = hub.connect(Encoding::Protobuf).await;
    alice.subscribe("news").await;
    bob.subscribe("news").await;
    bob.subscribe("chat:room").await;
    for n in 0..3 {
        hub.publish("news", data(n)).await;
    }
    assert_eq!(alice.recv_pub("news").await.data, data(0));

    let (status, body) = get(hub.addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("# TYPE hub_publications_total counter\n"), "{body}");
    assert_eq!(sample(&body, "hub_clients"), Some(2), "{body}");
    assert_eq!(sample(&body, "hub_subscriptions"), Some(3), "{body}");
    assert_eq!(sample(&body, "hub_channels"), Some(2), "{body}");
    assert_eq!(sample(&body, "hub_publications_total"), Some(3), "{body}");
    assert_eq!(sample(&body, "hub_sessions_started_total{transport=\"websocket\"}"), Some(2), "{body}");
    assert_eq!(sample(&body, "hub_sessions_started_total{transport=\"sse\"}"), Some(0), "{body}");
    assert_eq!(sample(&body, "hub_slow_disconnects_total"), Some(0), "{body}");
    assert!(sample(&body, "process_resident_memory_bytes").is_some_and(|rss| rss > 1024 * 1024), "{body}");
    let version = format!("hub_build_info{{version=\"{}\",node=\"{}\"}} 1\n", hub::VERSION, hub.node.name());
    assert!(body.contains(&version), "want {version:?} in {body}");
    // Every sample line belongs to a family declared with # TYPE before it:
    // its own name, or for a histogram its _bucket, _sum and _count series.
    let mut declared: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split(' ');
            let name = words.next().unwrap_or_default().to_string();
            declared.push((name, words.next().unwrap_or_default().to_string()));
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let (family, kind) = declared.last().unwrap_or_else(|| panic!("sample before any # TYPE: {line}"));
            let series = match kind.as_str() {
                "histogram" => ["_bucket", "_sum", "_count"].iter().any(|s| name.strip_suffix(s) == Some(family)),
                _ => name == family,
            };
            assert!(series, "sample without its # TYPE: {line} (last declared: {family} {kind})");
        }
    }

    // The latency histograms: each publication handed off to its
    // subscribers once, and the server API call counted by its method.
    assert!(body.contains("# TYPE hub_publish_fanout_duration_seconds histogram\n"), "{body}");
    assert_eq!(sample(&body, "hub_publish_fanout_duration_seconds_count"), Some(3), "{body}");
    assert_eq!(sample(&body, "hub_publish_fanout_duration_seconds_bucket{le=\"+Inf\"}"), Some(3), "{body}");
    let (status, _) = raw_request(
        hub.addr,
        &format!(
            "POST /api/info HTTP/1.1\r\nHost: {}\r\nX-API-Key: {}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
            hub.addr, API_KEY
        ),
    )
    .await;
    assert_eq!(status, 200);
    let (_, body) = get(hub.addr, "/metrics").await;
    assert_eq!(sample(&body, "hub_api_request_duration_seconds_count{method=\"info\"}"), Some(1), "{body}");
    assert_eq!(sample(&body, "hub_api_request_duration_seconds_count{method=\"publish\"}"), None, "{body}");

    // A client leaving is counted out.
    bob.close().await;
    let addr = hub.addr;
    eventually("hub_clients 1 and hub_subscriptions 1 after bob left", (Some(1), Some(1)), || async move {
        let (_, body) = get(addr, "/metrics").await;
        (sample(&body, "hub_clients"), sample(&body, "hub_subscriptions"))
    })
    .await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_by_default() {
    let hub = spawn_hub(test_config()).await;
    let (status, body) = get(hub.addr, "/metrics").await;
    assert_eq!(status, 404);
    let body: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("a JSON body, got {body:?}: {e}"));
    assert_eq!(body["error"]["message"], "metrics are off: set prometheus = true (HUB_PROMETHEUS=true)");
    assert_eq!(body["error"]["code"], 108);
    hub.shutdown().await;
}
