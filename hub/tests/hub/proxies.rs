//! The connect, subscribe and publish proxies (`[proxy.connect]`,
//! `[proxy.subscribe]`, `[proxy.publish]`) against a real HTTP backend run by
//! the test: what the backend receives (Centrifugo's proxy JSON, the forwarded
//! headers of the WebSocket handshake, the connection's `meta`), and each kind
//! of answer as the client sees it: allowed, refused with the backend's error,
//! a disconnect, changed data, and error 100 (temporary) for a backend that is
//! slow, answers garbage or is down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hub::config::{ChannelOptions, Config, ProxyConfig, ProxyEndpoint};
use parking_lot::Mutex;
use protocol::proto::{self, Command};
use protocol::Encoding;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{open_options, spawn_hub, test_config};
use crate::ws_client::WsClient;

/// One request the backend got: its path, its lower-cased header lines, its JSON body.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The application's backend: answers each proxy by its path and the body's
/// `data.as` (connect), `channel` (subscribe) or `data.text` (publish).
/// `None` from the answer means: sleep past every timeout.
fn answer(path: &str, body: &Value) -> Option<String> {
    let text = match path {
        "/connect" => match body["data"]["as"].as_str().unwrap_or_default() {
            "alice" => json!({"result": {
                "user": "alice",
                "info": {"role": "admin"},
                "data": {"welcome": true},
                "channels": ["news"],
                "meta": {"tenant": 7}
            }})
            .to_string(),
            "anonymous" => r#"{"result":{}}"#.into(),
            // Expires in a second: the refresh proxy takes over.
            "bob" => {
                json!({"result": {"user": "bob", "expire_at": unix_now() + 1, "meta": {"plan": "trial"}}}).to_string()
            }
            "refuse" => r#"{"error":{"code":1002,"message":"who are you"}}"#.into(),
            "kick" => r#"{"disconnect":{"code":4503,"reason":"banned"}}"#.into(),
            "slow" => return None,
            _ => "<html>garbage</html>".into(),
        },
        "/subscribe" => match body["channel"].as_str().unwrap_or_default() {
            "proxied:open" => r#"{"result":{"info":{"seat":1},"data":{"hello":1}}}"#.into(),
            "proxied:closed" => r#"{"error":{"code":1003,"message":"no seat","temporary":true}}"#.into(),
            "proxied:kick" => r#"{"disconnect":{"code":4504,"reason":"not here"}}"#.into(),
            "proxied:slow" => return None,
            _ => "not json".into(),
        },
        // The first refresh extends by a second with new info; the next one says expired.
        "/refresh" => match REFRESHES.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => json!({"result": {"expire_at": unix_now() + 1, "info": {"refreshed": 1}}}).to_string(),
            _ => r#"{"result":{"expired":true}}"#.into(),
        },
        "/publish" => match body["data"]["text"].as_str().unwrap_or_default() {
            "darn it" => r#"{"result":{"data":{"text":"**** it","moderated":true}}}"#.into(),
            "fine" => r#"{"result":{}}"#.into(),
            "spam" => r#"{"error":{"code":1004,"message":"spam is not welcome"}}"#.into(),
            _ => r#"{"result":{"b64data":"not base64 %%%"}}"#.into(),
        },
        _ => return Some(String::new()),
    };
    Some(text)
}

static REFRESHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

async fn backend() -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
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
                let head = String::from_utf8_lossy(&buffer[..head_end - 4]).to_string();
                let mut lines = head.lines();
                let path = lines.next().unwrap_or_default().split(' ').nth(1).unwrap_or_default().to_string();
                let headers = lines
                    .filter_map(|line| line.split_once(':'))
                    .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_string()))
                    .collect();
                let body: Value = serde_json::from_slice(&buffer[head_end..head_end + length]).unwrap_or_default();
                kept.lock().push(Seen { path: path.clone(), headers, body: body.clone() });
                let Some(body) = answer(&path, &body) else {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    return;
                };
                let status = if body.is_empty() { "404 Not Found" } else { "200 OK" };
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

fn config_for(backend: SocketAddr) -> Config {
    let endpoint = |path: &str, headers: &[&str]| {
        Some(ProxyEndpoint {
            endpoint: format!("http://{backend}/{path}"),
            timeout: Duration::from_millis(400),
            http_headers: headers.iter().map(|h| h.to_string()).collect(),
        })
    };
    let mut config = test_config();
    // Without the connect proxy, a connect without a token would be refused.
    config.allow_anonymous = false;
    config.proxy = ProxyConfig {
        connect: endpoint("connect", &["Cookie", "Authorization"]),
        refresh: endpoint("refresh", &["Cookie"]),
        subscribe: endpoint("subscribe", &["Cookie"]),
        publish: endpoint("publish", &[]),
        rpc: None,
    };
    let proxied = ChannelOptions { subscribe_proxy: true, allow_subscribe: false, join_leave: false, ..open_options() };
    config.namespaces.insert("proxied".into(), proxied);
    let moderated = ChannelOptions { publish_proxy: true, allow_publish: false, join_leave: false, ..open_options() };
    config.namespaces.insert("moderated".into(), moderated);
    config
}

fn connect_command(id: u32, as_user: &str) -> Command {
    let data = Bytes::from(json!({ "as": as_user }).to_string());
    let request = proto::ConnectRequest { data, name: "proxy-tests".into(), ..Default::default() };
    Command { id, connect: Some(request), ..Default::default() }
}

/// Connects through the connect proxy as `as_user`; the reply.
async fn connect_as(client: &mut WsClient, as_user: &str) -> proto::Reply {
    let id = client.next_id();
    client.send(&[connect_command(id, as_user)]).await;
    client.recv_reply(id).await
}

fn last(seen: &Arc<Mutex<Vec<Seen>>>, path: &str) -> Seen {
    seen.lock().iter().rev().find(|s| s.path == path).cloned().unwrap_or_else(|| panic!("no request to {path}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connect_proxy_authenticates_with_the_browsers_cookies() {
    let (backend, seen) = backend().await;
    let hub = spawn_hub(config_for(backend)).await;
    for encoding in [Encoding::Json, Encoding::Protobuf] {
        let headers = [("Cookie", "session=abc"), ("Authorization", "Bearer t0k"), ("X-Not-Forwarded", "no")];
        let mut client = WsClient::open_with_headers(hub.addr, encoding, &headers).await;
        let reply = connect_as(&mut client, "alice").await;
        let connected = reply.connect.clone().unwrap_or_else(|| panic!("connected: {reply:?}"));
        // The backend's data reaches the client; its channels are server-side
        // subscriptions in the same reply.
        let data: Value = serde_json::from_slice(&connected.data).expect("JSON data");
        assert_eq!(data, json!({"welcome": true}));
        assert_eq!(connected.subs.keys().collect::<Vec<_>>(), ["news"]);

        let request = last(&seen, "/connect");
        assert_eq!(request.body["client"], connected.client.as_str());
        assert_eq!(request.body["transport"], "websocket");
        let (protocol, wire) = if encoding == Encoding::Json { ("json", "json") } else { ("protobuf", "binary") };
        assert_eq!(
            (request.body["protocol"].as_str(), request.body["encoding"].as_str()),
            (Some(protocol), Some(wire))
        );
        assert_eq!(request.body["name"], "proxy-tests");
        assert_eq!(request.body["data"], json!({"as": "alice"}));
        assert_eq!(request.header("cookie"), Some("session=abc"));
        assert_eq!(request.header("authorization"), Some("Bearer t0k"));
        assert_eq!(request.header("x-not-forwarded"), None, "only the configured headers go");

        // The user and info the backend gave are the connection's.
        client.subscribe("chat:room").await;
        let presence = client.presence("chat:room").await.expect("presence");
        let me = presence.presence.values().next().expect("the client itself");
        assert_eq!(me.user, "alice");
        let info: Value = serde_json::from_slice(&me.conn_info).expect("JSON info");
        assert_eq!(info, json!({"role": "admin"}));
        client.close().await;
    }
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connect_proxy_refuses_closes_and_fails_clearly() {
    let (backend, _seen) = backend().await;
    let hub = spawn_hub(config_for(backend)).await;

    // The backend's error is the connect reply; the client may try again.
    let mut client = hub.open(Encoding::Json).await;
    let reply = connect_as(&mut client, "refuse").await;
    assert_eq!(reply.error, Some(proto::Error { code: 1002, message: "who are you".into(), temporary: false }));

    // The backend's disconnect closes the connection with its code and reason.
    let mut client = hub.open(Encoding::Json).await;
    client.send(&[connect_command(1, "kick")]).await;
    assert_eq!(client.expect_close().await, (4503, "banned".to_string()));

    // A backend that is slow or answers garbage: 100, temporary.
    for as_user in ["slow", "garbage"] {
        let mut client = hub.open(Encoding::Json).await;
        let started = std::time::Instant::now();
        let reply = connect_as(&mut client, as_user).await;
        let error = reply.error.clone().unwrap_or_else(|| panic!("{as_user}: an error, got {reply:?}"));
        assert_eq!((error.code, error.temporary), (100, true), "{as_user}");
        assert!(started.elapsed() < Duration::from_secs(3), "{as_user}: answered within the timeout");
    }

    // An empty user is an anonymous connection the backend allowed.
    let mut client = hub.open(Encoding::Json).await;
    let reply = connect_as(&mut client, "anonymous").await;
    assert!(reply.connect.is_some(), "{reply:?}");

    // A connect with a token is a JWT connect: the proxy is not asked, and
    // this hub has no token keys.
    let mut client = hub.open(Encoding::Json).await;
    let request = proto::ConnectRequest { token: "a.b.c".into(), ..Default::default() };
    client.send(&[Command { id: 1, connect: Some(request), ..Default::default() }]).await;
    assert_eq!(client.expect_close().await.0, 3500, "invalid token");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscribe_proxy_decides_for_its_namespace() {
    let (backend, seen) = backend().await;
    let hub = spawn_hub(config_for(backend)).await;
    let headers = [("Cookie", "session=abc")];
    let mut client = WsClient::open_with_headers(hub.addr, Encoding::Json, &headers).await;
    let connected = connect_as(&mut client, "alice").await.connect.expect("connected");

    let subscribe = |channel: &str| proto::SubscribeRequest {
        channel: channel.into(),
        data: Bytes::from_static(br#"{"want":"seat"}"#),
        ..Default::default()
    };
    let result = client.subscribe_with(subscribe("proxied:open")).await.expect("allowed by the backend");
    let data: Value = serde_json::from_slice(&result.data).expect("JSON data");
    assert_eq!(data, json!({"hello": 1}));
    let request = last(&seen, "/subscribe");
    assert_eq!(request.body["client"], connected.client.as_str());
    assert_eq!(
        (request.body["user"].as_str(), request.body["channel"].as_str()),
        (Some("alice"), Some("proxied:open"))
    );
    assert_eq!(request.body["meta"], json!({"tenant": 7}), "the connect proxy's meta");
    assert_eq!(request.body["data"], json!({"want": "seat"}));
    assert_eq!(request.header("cookie"), Some("session=abc"));
    // The backend's info is the subscriber's chan_info.
    let presence = client.presence("proxied:open").await.expect("presence");
    let info: Value =
        serde_json::from_slice(&presence.presence.values().next().expect("alice").chan_info).expect("JSON chan_info");
    assert_eq!(info, json!({"seat": 1}));
    // Publications reach the subscriber.
    hub.publish("proxied:open", Bytes::from_static(b"{\"n\":1}")).await;
    assert_eq!(client.recv_pub("proxied:open").await.data.as_ref(), b"{\"n\":1}");

    let error = client.subscribe_with(subscribe("proxied:closed")).await.expect_err("refused by the backend");
    assert_eq!(error, proto::Error { code: 1003, message: "no seat".into(), temporary: true });
    for channel in ["proxied:slow", "proxied:garbage"] {
        let error = client.subscribe_with(subscribe(channel)).await.expect_err("no usable answer");
        assert_eq!((error.code, error.temporary), (100, true), "{channel}");
    }
    client.ping().await.expect("the connection stays after refusals");
    // Namespaces without the option do not ask.
    let asked = seen.lock().len();
    client.subscribe("chat:room").await;
    assert_eq!(seen.lock().len(), asked, "chat:* does not ask the backend");

    client.send(&[Command { id: 99, subscribe: Some(subscribe("proxied:kick")), ..Default::default() }]).await;
    assert_eq!(client.expect_close().await, (4504, "not here".to_string()));
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publish_proxy_moderates_what_is_published() {
    let (backend, seen) = backend().await;
    let hub = spawn_hub(config_for(backend)).await;
    let mut reader = hub.open(Encoding::Protobuf).await;
    connect_as(&mut reader, "anonymous").await.connect.expect("connected");
    reader.subscribe("moderated:chat").await;
    let mut writer = hub.open(Encoding::Json).await;
    connect_as(&mut writer, "alice").await.connect.expect("connected");

    let publish = |text: &str| json!({ "text": text }).to_string();
    // Changed by the backend: subscribers get the backend's data.
    writer.publish("moderated:chat", publish("darn it")).await.expect("allowed");
    let request = last(&seen, "/publish");
    assert_eq!(
        (request.body["user"].as_str(), request.body["channel"].as_str()),
        (Some("alice"), Some("moderated:chat"))
    );
    assert_eq!(request.body["meta"], json!({"tenant": 7}));
    let publication = reader.recv_pub("moderated:chat").await;
    let data: Value = serde_json::from_slice(&publication.data).expect("JSON data");
    assert_eq!(data, json!({"text": "**** it", "moderated": true}));
    assert_eq!(publication.info.as_ref().map(|i| i.user.as_str()), Some("alice"));
    // Kept: published as the client sent it.
    writer.publish("moderated:chat", publish("fine")).await.expect("allowed");
    assert_eq!(reader.recv_pub("moderated:chat").await.data, Bytes::from(publish("fine")));
    // Refused: the backend's error, nothing published.
    let error = writer.publish("moderated:chat", publish("spam")).await.expect_err("refused");
    assert_eq!(error, proto::Error { code: 1004, message: "spam is not welcome".into(), temporary: false });
    // Garbage from the backend: 100, nothing published.
    let error = writer.publish("moderated:chat", publish("other")).await.expect_err("garbage");
    assert_eq!((error.code, error.temporary), (100, true));
    reader.expect_silence(Duration::from_millis(200)).await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_is_down_is_a_temporary_error() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let hub = spawn_hub(config_for(closed)).await;
    let mut client = hub.open(Encoding::Json).await;
    let reply = connect_as(&mut client, "alice").await;
    let error = reply.error.clone().unwrap_or_else(|| panic!("an error, got {reply:?}"));
    assert_eq!((error.code, error.temporary), (100, true));
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_proxy_extends_a_connection_until_it_says_expired() {
    let (backend, seen) = backend().await;
    let hub = spawn_hub(config_for(backend)).await;
    let headers = [("Cookie", "session=bob")];
    let mut client = WsClient::open_with_headers(hub.addr, Encoding::Json, &headers).await;
    let reply = connect_as(&mut client, "bob").await;
    let connected = reply.connect.clone().unwrap_or_else(|| panic!("connected: {reply:?}"));
    // The hub refreshes through the backend: the client is told of no expiry.
    assert_eq!((connected.expires, connected.ttl), (false, 0));
    client.subscribe("chat:room").await;

    // About a second later the backend extends the connection, with new info.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !seen.lock().iter().any(|s| s.path == "/refresh") {
        assert!(std::time::Instant::now() < deadline, "no refresh request");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let request = last(&seen, "/refresh");
    assert_eq!(request.body["client"], connected.client.as_str());
    assert_eq!(request.body["user"], "bob");
    assert_eq!(request.body["meta"], json!({"plan": "trial"}));
    assert_eq!(request.header("cookie"), Some("session=bob"));
    // Subscriptions made from now on carry the new info (the session handles
    // this subscribe after the refresh).
    client.subscribe("chat:later").await;
    let presence = client.presence("chat:later").await.expect("still connected");
    let info: Value =
        serde_json::from_slice(&presence.presence.values().next().expect("bob").conn_info).expect("JSON info");
    assert_eq!(info, json!({"refreshed": 1}));

    // The next refresh says expired: 3005.
    assert_eq!(client.expect_close().await, (3005, "connection expired".to_string()));
    hub.shutdown().await;
}
