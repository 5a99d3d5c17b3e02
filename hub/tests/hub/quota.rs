//! Admission limits at their boundary: connections per node, per user and per
//! client address (N connect, N+1 is closed with 3504 "connection limit", on
//! WebSocket and on the HTTP transports), the command rate of one client
//! (error 111, then 3013), subscriptions per client; each refusal counted in
//! `hub_limit_refusals_total{limit}`.

use std::net::SocketAddr;

use hub::config::Config;
use hub::metrics::Refusal;
use protocol::proto::{self, Command};
use protocol::Encoding;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{connect_token, test_config, token_config, wait_until, TestHub, WAIT};
use crate::ws_client::WsClient;

/// The disconnect of a connection limit (Centrifugo's code and reason).
const CONNECTION_LIMIT: (u16, &str) = (3504, "connection limit");

/// What an HTTP stream said before it ended or connected.
#[derive(Debug)]
enum Streamed {
    /// The connect reply came; the socket keeps the session alive.
    Connected(#[allow(dead_code)] TcpStream),
    /// The stream carried a disconnect push with this code.
    Disconnected(u32),
}

/// Opens an HTTP-stream (`http_stream = true`) or SSE session with `token`
/// and `headers`, and reads until its connect reply or a disconnect push.
async fn open_http(addr: SocketAddr, http_stream: bool, token: &str, headers: &str) -> Streamed {
    let connect = serde_json::json!({"id": 1, "connect": {"token": token}}).to_string();
    let path = if http_stream { "/connection/http_stream" } else { "/connection/sse" };
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{connect}",
        connect.len()
    );
    tokio::time::timeout(WAIT, async {
        let mut stream = TcpStream::connect(addr).await.expect("connect to the hub");
        stream.write_all(request.as_bytes()).await.expect("send the request");
        let mut seen = Vec::new();
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("read the stream");
            seen.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&seen).to_string();
            for line in text.lines() {
                let json = line.strip_prefix("data: ").unwrap_or(line);
                let Ok(reply) = serde_json::from_str::<serde_json::Value>(json) else { continue };
                if let Some(code) = reply["push"]["disconnect"]["code"].as_u64() {
                    return Streamed::Disconnected(code as u32);
                }
                if reply["connect"]["client"].is_string() {
                    return Streamed::Connected(stream);
                }
            }
            assert!(n > 0, "the stream ended without a connect reply or a disconnect: {text}");
        }
    })
    .await
    .expect("an HTTP stream's answer within WAIT")
}

/// A WebSocket that sends a connect with `token` and expects to be closed
/// with 3504.
async fn refused_ws(mut client: WsClient, token: &str) {
    let request = proto::ConnectRequest { token: token.to_string(), ..Default::default() };
    client.send(&[Command { id: 1, connect: Some(request), ..Default::default() }]).await;
    let (code, reason) = client.expect_close().await;
    assert_eq!((code, reason.as_str()), CONNECTION_LIMIT);
    assert!(client.take_inbox().iter().all(|r| r.connect.is_none()), "no connect reply before the close");
}

async fn connected_ws(addr: SocketAddr, token: &str, headers: &[(&'static str, &str)]) -> WsClient {
    let mut client = WsClient::open_with_headers(addr, Encoding::Json, headers).await;
    client.connect(token).await.unwrap_or_else(|e| panic!("connect refused: {e:?}"));
    client
}

fn refusals(hub: &TestHub, refusal: Refusal) -> u64 {
    hub.node.metrics.limit_refusals(refusal)
}

/// `client_connection_limit = 2`: two clients connect (any transport), the
/// third is closed with 3504 on WebSocket and on HTTP-stream; one leaving
/// makes room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_connection_limit_refuses_one_past_it_with_3504() {
    let hub = crate::helpers::spawn_hub(Config { client_connection_limit: 2, ..test_config() }).await;
    let first = connected_ws(hub.addr, "", &[]).await;
    let Streamed::Connected(second) = open_http(hub.addr, true, "", "").await else {
        panic!("the second client connects over http_stream")
    };
    refused_ws(WsClient::open(hub.addr, Encoding::Json).await, "").await;
    assert!(matches!(open_http(hub.addr, true, "", "").await, Streamed::Disconnected(3504)));
    assert!(matches!(open_http(hub.addr, false, "", "").await, Streamed::Disconnected(3504)));
    assert_eq!(refusals(&hub, Refusal::NodeConnections), 3);
    assert_eq!(hub.node.client_count(), 2);

    // uni_sse: the stream carries the same disconnect.
    let head = format!("GET /connection/uni_sse?channel=news HTTP/1.1\r\nHost: {}\r\n\r\n", hub.addr);
    let mut uni = TcpStream::connect(hub.addr).await.expect("connect to the hub");
    uni.write_all(head.as_bytes()).await.expect("send");
    let mut seen = String::new();
    read_until(&mut uni, &mut seen, |text| text.contains(r#""disconnect":{"code":3504"#).then_some(())).await;
    assert_eq!(refusals(&hub, Refusal::NodeConnections), 4);

    first.close().await;
    wait_until("the first client to be gone", || hub.node.client_count() == 1).await;
    let third = connected_ws(hub.addr, "", &[]).await;
    drop((second, third));
    hub.shutdown().await;
}

/// Twenty clients connecting at once against `client_connection_limit = 7`:
/// exactly seven get in, the others are refused with 3504.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connects_never_pass_the_limit() {
    let hub = crate::helpers::spawn_hub(Config { client_connection_limit: 7, ..test_config() }).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(WsClient::open(hub.addr, Encoding::Json).await);
    }
    for client in &mut clients {
        client.send(&[Command { id: 1, connect: Some(proto::ConnectRequest::default()), ..Default::default() }]).await;
    }
    let outcomes = futures_util::future::join_all(clients.iter_mut().map(|c| c.reply_or_close(1))).await;
    let connected = outcomes.iter().filter(|o| o.as_ref().is_ok_and(|r| r.connect.is_some())).count();
    let refused = outcomes.iter().filter(|o| matches!(o, Err((3504, _)))).count();
    assert_eq!((connected, refused), (7, 13), "{outcomes:?}");
    assert_eq!(hub.node.client_count(), 7);
    assert_eq!(refusals(&hub, Refusal::NodeConnections), 13);
    hub.shutdown().await;
}

/// `client_user_connection_limit = 2`: a user's third client is refused
/// with 3504 (WebSocket and SSE); other users and anonymous clients are not
/// counted against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_connection_limit_counts_per_user_and_not_anonymous_clients() {
    let config = Config { client_user_connection_limit: 2, allow_anonymous: true, ..token_config() };
    let hub = crate::helpers::spawn_hub(config).await;
    let alice = connect_token("alice", None);
    let _a1 = connected_ws(hub.addr, &alice, &[]).await;
    let _a2 = connected_ws(hub.addr, &alice, &[]).await;
    refused_ws(WsClient::open(hub.addr, Encoding::Protobuf).await, &alice).await;
    assert!(matches!(open_http(hub.addr, false, &alice, "").await, Streamed::Disconnected(3504)));
    let bob = connect_token("bob", None);
    let _b1 = connected_ws(hub.addr, &bob, &[]).await;
    let _b2 = connected_ws(hub.addr, &bob, &[]).await;
    let _anonymous: Vec<WsClient> =
        futures_util::future::join_all((0..3).map(|_| connected_ws(hub.addr, "", &[]))).await;
    assert_eq!(refusals(&hub, Refusal::UserConnections), 2);
    assert_eq!(hub.node.client_count(), 7);
    hub.shutdown().await;
}

/// `client_ip_connection_limit = 2` behind a trusted proxy's
/// `X-Forwarded-For`: the last address of the header counts, the one the
/// client wrote before it does not; clients without the header count as the
/// socket's peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_limit_reads_the_trusted_header_only_when_configured() {
    let config =
        Config { client_ip_connection_limit: 2, client_ip_header: Some("X-Forwarded-For".into()), ..test_config() };
    let hub = crate::helpers::spawn_hub(config).await;
    let from = |ip: &'static str| [("X-Forwarded-For", ip)];
    let _c1 = connected_ws(hub.addr, "", &from("9.9.9.9, 1.1.1.1")).await;
    let _c2 = connected_ws(hub.addr, "", &from("8.8.8.8, 1.1.1.1")).await;
    refused_ws(WsClient::open_with_headers(hub.addr, Encoding::Json, &from("1.1.1.1")).await, "").await;
    let refused = open_http(hub.addr, true, "", "X-Forwarded-For: 1.1.1.1\r\n").await;
    assert!(matches!(refused, Streamed::Disconnected(3504)), "{refused:?}");
    let _other = connected_ws(hub.addr, "", &from("2.2.2.2")).await;
    let _peer1 = connected_ws(hub.addr, "", &[]).await;
    let peer2 = open_http(hub.addr, false, "", "").await;
    assert!(matches!(peer2, Streamed::Connected(_)));
    refused_ws(WsClient::open(hub.addr, Encoding::Json).await, "").await;
    assert_eq!(refusals(&hub, Refusal::IpConnections), 3);
    hub.shutdown().await;

    // Without `client_ip_header`, the header is the client's own word: the
    // socket's address (127.0.0.1) counts whatever it says.
    let hub = crate::helpers::spawn_hub(Config { client_ip_connection_limit: 1, ..test_config() }).await;
    let _c1 = connected_ws(hub.addr, "", &from("1.1.1.1")).await;
    refused_ws(WsClient::open_with_headers(hub.addr, Encoding::Json, &from("2.2.2.2")).await, "").await;
    let refused = open_http(hub.addr, true, "", "X-Forwarded-For: 3.3.3.3\r\n").await;
    assert!(matches!(refused, Streamed::Disconnected(3504)), "{refused:?}");
    hub.shutdown().await;
}

/// `client_command_rate = 1`, burst 3, disconnect after 2: three commands
/// pass, the next two get error 111 (temporary), the one after closes the
/// client with 3013 "too many requests".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_rate_answers_111_then_closes_with_3013() {
    let config = Config {
        client_command_rate: 1,
        client_command_burst: 3,
        client_command_rate_disconnect_after: 2,
        ..test_config()
    };
    let hub = crate::helpers::spawn_hub(config).await;
    for encoding in [Encoding::Json, Encoding::Protobuf] {
        let (mut client, _) = hub.connect(encoding).await;
        for n in 0..3 {
            client.ping().await.unwrap_or_else(|e| panic!("command {n} within the burst: {e:?}"));
        }
        for n in 0..2 {
            let error = client.ping().await.expect_err("over the rate");
            assert_eq!((error.code, error.message.as_str(), error.temporary), (111, "too many requests", true), "{n}");
        }
        client.send(&[Command { id: 99, ping: Some(proto::PingRequest {}), ..Default::default() }]).await;
        assert_eq!(client.expect_close().await, (3013, "too many requests".to_string()), "{encoding:?}");
    }
    assert_eq!(refusals(&hub, Refusal::CommandRate), 4);
    assert_eq!(refusals(&hub, Refusal::CommandRateDisconnect), 2);
    hub.shutdown().await;
}

/// The same bucket holds for commands that reach a session over `/emulation`
/// (SSE and HTTP-stream clients).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_rate_holds_for_emulated_sessions() {
    let config = Config { client_command_rate: 1, client_command_burst: 1, ..test_config() };
    let hub = crate::helpers::spawn_hub(config).await;
    let mut stream = TcpStream::connect(hub.addr).await.expect("connect to the hub");
    let connect = r#"{"id":1,"connect":{}}"#;
    let request = format!(
        "POST /connection/http_stream HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{connect}",
        connect.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut seen = String::new();
    let session = read_until(&mut stream, &mut seen, |text| {
        let at = text.find("\"session\":\"")?;
        let rest = &text[at + 11..];
        Some(rest[..rest.find('"')?].to_string())
    })
    .await;
    let body = serde_json::json!({"node": hub.node.name(), "session": session,
        "data": "{\"id\":2,\"ping\":{}}\n{\"id\":3,\"ping\":{}}"})
    .to_string();
    let emulation = format!(
        "POST /emulation HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(crate::helpers::raw_request(hub.addr, &emulation).await.0, 204);
    let error = read_until(&mut stream, &mut seen, |text| {
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
            .find_map(|reply| (reply["id"] == 3).then(|| reply["error"]["code"].as_u64()).flatten())
    })
    .await;
    assert_eq!(error, 111);
    let first: serde_json::Value = seen
        .lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .find(|reply: &serde_json::Value| reply["id"] == 2)
        .expect("a reply to the first ping");
    assert!(first.get("error").is_none(), "the first ping passed: {first}");
    assert_eq!(refusals(&hub, Refusal::CommandRate), 1);
    hub.shutdown().await;
}

/// Reads `stream` into `seen` until `found` finds something in it.
async fn read_until<T>(stream: &mut TcpStream, seen: &mut String, found: impl Fn(&str) -> Option<T>) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(value) = found(seen) {
                return value;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("read the stream");
            assert!(n > 0, "the stream ended: {seen}");
            seen.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    })
    .await
    .expect("found within WAIT")
}

/// `max_channels_per_client` (the limit that existed before the others): one
/// subscription past it is error 106, counted as `channels`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_past_max_channels_per_client_is_106_and_counted() {
    let hub = crate::helpers::spawn_hub(Config { max_channels_per_client: 2, ..test_config() }).await;
    let (mut client, _) = hub.connect(Encoding::Json).await;
    client.subscribe("news").await;
    client.subscribe("chat:a").await;
    let request = proto::SubscribeRequest { channel: "chat:b".into(), ..Default::default() };
    let error = client.subscribe_with(request).await.expect_err("past the limit");
    assert_eq!((error.code, error.message.as_str()), (106, "limit exceeded"));
    assert_eq!(refusals(&hub, Refusal::Channels), 1);
    hub.shutdown().await;
}

/// Every limit is listed in `/metrics` from the start, at 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_is_exposed_at_zero() {
    let hub = crate::helpers::spawn_hub(Config { prometheus: true, ..test_config() }).await;
    let request = "GET /metrics HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n";
    let (status, body) = crate::helpers::raw_request(hub.addr, request).await;
    assert_eq!(status, 200);
    for limit in [
        "node_connections",
        "user_connections",
        "ip_connections",
        "command_rate",
        "command_rate_disconnect",
        "channels",
    ] {
        let line = format!("hub_limit_refusals_total{{limit=\"{limit}\"}} 0");
        assert!(body.contains(&line), "{line} in {body}");
    }
    hub.shutdown().await;
}
