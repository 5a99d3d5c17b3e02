//! End to end over real sockets: a WebSocket client subscribed to `news`, the
//! API seen through plain HTTP/1.1.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use hub::config::Config;

const KEY: &str = "k";

/// The hub's test configuration (history and presence on `news`) with an API key.
fn config() -> Config {
    Config { api_key: Some(KEY.into()), ..crate::helpers::test_config() }
}

const WAIT: Duration = Duration::from_secs(5);

/// POSTs `body` to `path`; returns the status and the JSON body.
async fn http_post(addr: SocketAddr, path: &str, body: Value) -> (u16, Value) {
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {KEY}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.expect("the hub accepts connections");
    stream.write_all(request.as_bytes()).await.expect("the request is sent");
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .expect("a timely answer")
        .expect("a UTF-8 answer");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let (_, body) = response.split_once("\r\n\r\n").expect("headers end");
    (status, serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")))
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// The next protocol message (frames may hold several, `\n`-separated) matching `wanted`.
async fn next_matching(ws: &mut Ws, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        let message =
            tokio::time::timeout(WAIT, ws.next()).await.expect("a timely message").expect("open").expect("a frame");
        let Message::Text(text) = message else { continue };
        for line in text.as_str().lines() {
            let value: Value = serde_json::from_str(line).expect("a JSON message");
            if wanted(&value) {
                return value;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribed_client_shows_in_presence_channels_and_info_and_can_be_disconnected() {
    let config = Config { listen: "127.0.0.1:0".parse().unwrap(), allow_anonymous: true, ..config() };
    let hub = hub::server::start(config).await.expect("the hub starts");
    let addr = hub.addr;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/connection/websocket")).await.expect("a WebSocket");
    ws.send(Message::Text(r#"{"id":1,"connect":{}}"#.into())).await.unwrap();
    let connect = next_matching(&mut ws, |v| v["id"] == 1).await;
    let client = connect["connect"]["client"].as_str().expect("a client id").to_owned();
    ws.send(Message::Text(r#"{"id":2,"subscribe":{"channel":"news"}}"#.into())).await.unwrap();
    next_matching(&mut ws, |v| v["id"] == 2).await;

    let (status, presence) = http_post(addr, "/api/presence", json!({"channel": "news"})).await;
    assert_eq!(status, 200);
    assert_eq!(presence, json!({"result": {"presence": {client.clone(): {"client": client, "user": ""}}}}));
    let (_, stats) = http_post(addr, "/api/presence_stats", json!({"channel": "news"})).await;
    assert_eq!(stats, json!({"result": {"num_clients": 1, "num_users": 1}}));
    let (_, channels) = http_post(addr, "/api/channels", json!({"pattern": "n*s"})).await;
    assert_eq!(channels, json!({"result": {"channels": {"news": {"num_clients": 1}}}}));
    let (_, channels) = http_post(addr, "/api/channels", json!({"pattern": "chat:*"})).await;
    assert_eq!(channels, json!({"result": {"channels": {}}}));
    let (_, info) = http_post(addr, "/api/info", json!({})).await;
    assert_eq!(info["result"]["nodes"][0]["num_clients"], 1);
    assert_eq!(info["result"]["nodes"][0]["num_subs"], 1);

    let (_, published) = http_post(addr, "/api/publish", json!({"channel": "news", "data": {"hello": "world"}})).await;
    assert_eq!(published["result"]["offset"], 1);
    let push = next_matching(&mut ws, |v| v["push"]["pub"].is_object()).await;
    assert_eq!(push["push"]["pub"]["data"], json!({"hello": "world"}));

    let (_, subscribed) = http_post(addr, "/api/subscribe", json!({"user": "", "channel": "other"})).await;
    assert_eq!(subscribed, json!({"result": {}}));
    let push = next_matching(&mut ws, |v| v["push"]["subscribe"].is_object()).await;
    assert_eq!(push["push"]["channel"], "other");

    let (_, disconnected) = http_post(addr, "/api/disconnect", json!({"user": ""})).await;
    assert_eq!(disconnected, json!({"result": {}}));
    let close = loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("a timely close") {
            Some(Ok(Message::Close(frame))) => break frame.expect("a close frame with a code"),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!((u16::from(close.code), close.reason.as_str()), (3503, "force disconnect"));
    hub.shutdown().await.expect("a clean shutdown");
}

/// `refresh` over HTTP: the client named by `client` gets a `refresh` push
/// with its new ttl; `disconnect` keeps the `whitelist`ed client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_and_a_whitelisted_disconnect_over_http() {
    let handle = hub::server::start(Config { listen: ([127, 0, 0, 1], 0).into(), ..config() }).await.expect("a hub");
    let addr = handle.addr;
    let mut clients = Vec::new();
    for _ in 0..2 {
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/connection/websocket")).await.expect("a WebSocket");
        ws.send(Message::Text(r#"{"id":1,"connect":{}}"#.into())).await.unwrap();
        let connect = next_matching(&mut ws, |v| v["id"] == 1).await;
        let client = connect["connect"]["client"].as_str().expect("a client id").to_owned();
        clients.push((ws, client));
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let kept = clients[1].1.clone();
    let (status, answer) =
        http_post(addr, "/api/refresh", json!({"user": "", "client": kept, "expire_at": now + 600})).await;
    assert_eq!((status, answer), (200, json!({"result": {}})));
    let push = next_matching(&mut clients[1].0, |v| v["push"]["refresh"].is_object()).await;
    assert_eq!(push["push"]["refresh"]["expires"], true);
    let ttl = push["push"]["refresh"]["ttl"].as_u64().expect("a ttl");
    assert!((598..=600).contains(&ttl), "{push}");

    let (_, answer) = http_post(addr, "/api/disconnect", json!({"user": "", "whitelist": [kept]})).await;
    assert_eq!(answer, json!({"result": {}}));
    let close = loop {
        match tokio::time::timeout(WAIT, clients[0].0.next()).await.expect("a timely close") {
            Some(Ok(Message::Close(frame))) => break frame.expect("a close frame with a code"),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!((u16::from(close.code), close.reason.as_str()), (3503, "force disconnect"));
    clients[1].0.send(Message::Text(r#"{"id":2,"ping":{}}"#.into())).await.unwrap();
    assert_eq!(next_matching(&mut clients[1].0, |v| v["id"] == 2).await, json!({"id": 2, "ping": {}}));
    handle.shutdown().await.expect("a clean shutdown");
}
