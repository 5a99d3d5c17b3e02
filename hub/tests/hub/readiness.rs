//! `/ready` (readiness) beside `/health` (liveness): ready while the node
//! serves, 503 with error 108 and `Connection: close` once it shuts down.

use std::net::SocketAddr;
use std::time::Duration;

use crate::helpers::{raw_request, raw_response, spawn_hub, test_config};

/// A plain HTTP/1.1 GET; returns the whole response as text.
async fn get(addr: SocketAddr, path: &str) -> String {
    raw_response(addr, &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_while_serving_503_while_shutting_down() {
    let config = hub::config::Config { shutdown_timeout: Duration::from_secs(30), ..test_config() };
    let hub = spawn_hub(config).await;
    let addr = hub.addr;

    let request = format!("GET /ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    assert_eq!(raw_request(addr, &request).await, (200, r#"{"status":"ready"}"#.to_string()));
    let health = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    assert_eq!(raw_request(addr, &health).await, (200, r#"{"status":"ok"}"#.to_string()));

    // The node starts stopping (the HTTP server still answers): not ready.
    hub.node.shutdown(Duration::from_secs(30)).await;
    let response = get(addr, "/ready").await;
    let (head, body) = response.split_once("\r\n\r\n").expect("a complete response");
    let head = head.to_lowercase();
    assert!(head.starts_with("http/1.1 503 "), "{response}");
    assert!(head.contains("\r\ncontent-type: application/json"), "{head}");
    assert!(head.contains("\r\nconnection: close"), "{head}");
    assert_eq!(body, r#"{"error":{"code":108,"message":"shutting down"}}"#);

    hub.shutdown().await;
}
