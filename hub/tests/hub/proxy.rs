//! The RPC proxy (`[proxy.rpc]`) against a real HTTP backend run by the test:
//! what the backend receives (Centrifugo's RPC proxy JSON), and each kind of
//! answer as the client sees it: data, an application error, a disconnect,
//! and the temporary error 100 for a backend that is slow, down or answers
//! garbage. Every call is timed in `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use protocol::proto::{self, Command};
use protocol::Encoding;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{raw_request, spawn_hub, test_config};

/// A backend that answers each RPC by its `method`, and keeps every request body.
async fn backend() -> (SocketAddr, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the backend");
    let addr = listener.local_addr().expect("the backend's address");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, length) = loop {
                    let Ok(n) = socket.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (end + 4, length);
                    }
                };
                while buffer.len() < head_end + length {
                    let Ok(n) = socket.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                }
                let request: serde_json::Value =
                    serde_json::from_slice(&buffer[head_end..head_end + length]).unwrap_or_default();
                kept.lock().push(request.clone());
                let (status, body) = match request["method"].as_str().unwrap_or_default() {
                    "sum" => {
                        let sum =
                            request["data"]["a"].as_i64().unwrap_or(0) + request["data"]["b"].as_i64().unwrap_or(0);
                        ("200 OK", format!(r#"{{"result":{{"data":{{"sum":{sum}}}}}}}"#))
                    }
                    "binary" => ("200 OK", r#"{"result":{"b64data":"AAEC"}}"#.to_string()),
                    "refuse" => {
                        ("200 OK", r#"{"error":{"code":1001,"message":"not for you","temporary":true}}"#.to_string())
                    }
                    "kick" => ("200 OK", r#"{"disconnect":{"code":4501,"reason":"kicked by the app"}}"#.to_string()),
                    "slow" => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        ("200 OK", r#"{"result":{}}"#.to_string())
                    }
                    "garbage" => ("200 OK", "<html>surprise</html>".to_string()),
                    _ => ("500 Internal Server Error", "{}".to_string()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (addr, seen)
}

fn rpc(method: &str, data: &[u8]) -> Command {
    Command {
        rpc: Some(proto::RpcRequest { method: method.into(), data: bytes::Bytes::copy_from_slice(data) }),
        ..Default::default()
    }
}

fn config_for(endpoint: String) -> hub::config::Config {
    hub::config::Config {
        prometheus: true,
        proxy: hub::config::ProxyConfig {
            rpc: Some(hub::config::ProxyEndpoint {
                endpoint,
                timeout: Duration::from_millis(500),
                http_headers: Vec::new(),
            }),
            ..Default::default()
        },
        ..test_config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_goes_to_the_backend_and_its_answers_reach_the_client() {
    let (backend, seen) = backend().await;
    let hub = spawn_hub(config_for(format!("http://{backend}/centrifugo/rpc"))).await;

    // JSON data goes as `data`, and the result's data comes back as is.
    let (mut client, connected) = hub.connect(Encoding::Json).await;
    let reply = client.call(rpc("sum", br#"{"a":2,"b":3}"#)).await;
    assert_eq!(reply.error, None);
    assert_eq!(reply.rpc.expect("an rpc result").data.as_ref(), br#"{"sum":5}"#);
    let request = seen.lock().last().cloned().expect("the backend got the request");
    assert_eq!(request["client"], connected.client.as_str());
    assert_eq!(request["user"], "");
    assert_eq!(request["method"], "sum");
    assert_eq!(request["transport"], "websocket");
    assert_eq!(request["protocol"], "json");
    assert_eq!(request["encoding"], "json");
    assert_eq!(request["data"], serde_json::json!({"a": 2, "b": 3}));

    // An application error reaches the client as the backend said it.
    let reply = client.call(rpc("refuse", b"{}")).await;
    assert_eq!(reply.error, Some(proto::Error { code: 1001, message: "not for you".into(), temporary: true }));

    // A backend that fails in any way: error 100, temporary, in about the timeout at most.
    for method in ["slow", "garbage", "status500"] {
        let started = Instant::now();
        let reply = client.call(rpc(method, b"{}")).await;
        assert_eq!(
            reply.error,
            Some(proto::Error { code: 100, message: "internal server error".into(), temporary: true }),
            "{method}"
        );
        assert!(started.elapsed() < Duration::from_secs(3), "{method} took {:?}", started.elapsed());
    }

    // Binary data over Protobuf goes as `b64data`, and `b64data` comes back as bytes.
    let (mut binary, _) = hub.connect(Encoding::Protobuf).await;
    let reply = binary.call(rpc("binary", &[0xff, 0x00])).await;
    assert_eq!(reply.rpc.expect("an rpc result").data.as_ref(), &[0u8, 1, 2]);
    let request = seen.lock().last().cloned().expect("the backend got the request");
    assert_eq!(request["protocol"], "protobuf");
    assert_eq!(request["b64data"], "/wA=");
    assert!(request.get("data").is_none(), "{request}");

    // A disconnect answer closes the client with the backend's code and reason.
    let id = client.next_id();
    client.send(&[Command { id, ..rpc("kick", b"{}") }]).await;
    assert_eq!(client.expect_close().await, (4501, "kicked by the app".to_string()));

    // Every call is timed; the three failures are counted.
    let (_, metrics) =
        raw_request(hub.addr, &format!("GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", hub.addr))
            .await;
    let value = |name: &str| metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<u64>().ok());
    assert_eq!(value("hub_proxy_call_duration_seconds_count{proxy=\"rpc\"}"), Some(7), "{metrics}");
    assert_eq!(value("hub_proxy_errors_total{proxy=\"rpc\"}"), Some(3), "{metrics}");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_is_down_is_a_temporary_error() {
    // A port nothing listens on (bound, then released).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
    let hub = spawn_hub(config_for(format!("http://{closed}/rpc"))).await;
    let (mut client, _) = hub.connect(Encoding::Json).await;
    let reply = client.call(rpc("sum", b"{}")).await;
    assert_eq!(reply.error, Some(proto::Error { code: 100, message: "internal server error".into(), temporary: true }));
    // The connection stays usable.
    assert!(client.ping().await.is_ok());
    hub.shutdown().await;
}
