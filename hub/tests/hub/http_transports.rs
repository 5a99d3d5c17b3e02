//! The HTTP transports and every accepted socket, seen from a raw TCP client:
//! a closed SSE or HTTP-stream client ends its session at once (not at the
//! next missed pong), and every accepted socket has `TCP_NODELAY`.

use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{spawn_hub, test_config, TestHub, WAIT};

/// How soon a session must end after its stream closed. The default ping
/// interval is 25 s, so a session found dead by the heartbeat fails this.
const PROMPTLY: Duration = Duration::from_secs(3);

/// The connect command the SDK sends, as JSON.
const CONNECT: &str = r#"{"id":1,"connect":{}}"#;

/// The ways a streaming session is opened.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StreamTransport {
    SseGet,
    SsePost,
    HttpStream,
}

fn open_request(addr: SocketAddr, kind: StreamTransport) -> String {
    match kind {
        StreamTransport::SseGet => {
            let query: String = url::form_urlencoded::byte_serialize(CONNECT.as_bytes()).collect();
            format!("GET /connection/sse?cf_connect={query} HTTP/1.1\r\nHost: {addr}\r\n\r\n")
        }
        StreamTransport::SsePost | StreamTransport::HttpStream => {
            let path =
                if matches!(kind, StreamTransport::SsePost) { "/connection/sse" } else { "/connection/http_stream" };
            format!(
                "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{CONNECT}",
                CONNECT.len()
            )
        }
    }
}

/// Opens a streaming session and reads until its connect reply; returns the
/// socket and the emulation session id the reply carries.
pub(crate) async fn open_stream(addr: SocketAddr, kind: StreamTransport) -> (TcpStream, String) {
    tokio::time::timeout(WAIT, async {
        let mut stream = TcpStream::connect(addr).await.expect("connect to the hub");
        stream.write_all(open_request(addr, kind).as_bytes()).await.expect("send the request");
        let mut seen = Vec::new();
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("read the stream");
            assert!(n > 0, "the stream ended before the connect reply: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&seen);
            if let Some(at) = text.find("\"session\":\"") {
                let rest = &text[at + 11..];
                if let Some(end) = rest.find('"') {
                    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
                    return (stream, rest[..end].to_string());
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("a connect reply on {kind:?} within {WAIT:?}"))
}

/// `POST /emulation` for `session` (a ping command); the status.
async fn emulation_status(hub: &TestHub, session: &str) -> u16 {
    let body =
        serde_json::json!({"node": hub.node.name(), "session": session, "data": "{\"id\":2,\"ping\":{}}"}).to_string();
    let request = format!(
        "POST /emulation HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        hub.addr,
        body.len()
    );
    crate::helpers::raw_request(hub.addr, &request).await.0
}

async fn wait_no_sessions_within(hub: &TestHub, limit: Duration, what: &str) {
    let started = Instant::now();
    while hub.node.live_session_count() != 0 || hub.node.client_count() != 0 {
        assert!(started.elapsed() < limit, "{what}: the session still lives {limit:?} after its stream closed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A client that goes away (FIN, or a reset) ends its SSE or HTTP-stream
/// session within moments, as Centrifugo does when the request context is
/// cancelled; `/emulation` for it then answers 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stream_ends_its_session_at_once() {
    let hub = spawn_hub(test_config()).await;
    for kind in [StreamTransport::SseGet, StreamTransport::SsePost, StreamTransport::HttpStream] {
        for reset in [false, true] {
            let what = format!("{kind:?}, {}", if reset { "reset" } else { "closed" });
            let (stream, session) = open_stream(hub.addr, kind).await;
            assert_eq!(hub.node.client_count(), 1, "{what}: connected");
            assert_eq!(emulation_status(&hub, &session).await, 204, "{what}: the live session takes commands");
            if reset {
                // SO_LINGER 0: close() sends a RST instead of a FIN.
                socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).expect("set SO_LINGER");
            }
            drop(stream);
            wait_no_sessions_within(&hub, PROMPTLY, &what).await;
            assert_eq!(emulation_status(&hub, &session).await, 404, "{what}: the session is gone");
        }
    }
    // The one-way SSE stream of a plain EventSource, likewise.
    for reset in [false, true] {
        let mut stream = TcpStream::connect(hub.addr).await.expect("connect to the hub");
        let request = format!("GET /connection/uni_sse?channel=news HTTP/1.1\r\nHost: {}\r\n\r\n", hub.addr);
        stream.write_all(request.as_bytes()).await.expect("send the request");
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("\"subscribe\"") {
            let mut chunk = [0u8; 4096];
            let n =
                tokio::time::timeout(WAIT, stream.read(&mut chunk)).await.expect("the stream's events").expect("read");
            assert!(n > 0, "the uni_sse stream ended: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(hub.node.client_count(), 1, "uni_sse connected");
        if reset {
            socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).expect("set SO_LINGER");
        }
        drop(stream);
        wait_no_sessions_within(&hub, PROMPTLY, &format!("uni_sse, reset: {reset}")).await;
    }
    hub.shutdown().await;
}

/// `TCP_NODELAY` of the hub's side of the connection whose client end is
/// `client`, read from the accepted socket itself (this process holds it).
fn accepted_nodelay(server: SocketAddr, client: SocketAddr) -> bool {
    let entries = std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd lists this process's descriptors");
    for entry in entries.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else { continue };
        let is_socket =
            std::fs::read_link(entry.path()).is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: `fd` was open when listed; the borrow lives only for these
        // read-only getsockopt/getsockname calls, which answer EBADF (an
        // error skipped below) should it have been closed meanwhile.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&fd);
        let (Ok(local), Ok(peer)) = (socket.local_addr(), socket.peer_addr()) else { continue };
        if local.as_socket() == Some(server) && peer.as_socket() == Some(client) {
            return socket.tcp_nodelay().expect("TCP_NODELAY of the accepted socket");
        }
    }
    panic!("no accepted socket of the hub for the client {client}");
}

/// Every accepted socket has `TCP_NODELAY`: plain HTTP (kept alive), SSE,
/// HTTP-stream and WebSocket (the socket the hub owns after the handshake).
/// Without it a reply followed by a push waits ~40 ms for the client's
/// delayed ACK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_socket_has_tcp_nodelay() {
    let hub = spawn_hub(test_config()).await;
    let addr = hub.addr;

    let mut http = TcpStream::connect(addr).await.expect("connect");
    http.write_all(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).await.expect("send");
    let mut answer = [0u8; 512];
    let n = tokio::time::timeout(WAIT, http.read(&mut answer)).await.expect("an answer").expect("read");
    assert!(answer[..n].starts_with(b"HTTP/1.1 200 "), "{}", String::from_utf8_lossy(&answer[..n]));
    assert!(accepted_nodelay(addr, http.local_addr().expect("local address")), "plain HTTP");

    for kind in [StreamTransport::SseGet, StreamTransport::HttpStream] {
        let (stream, _) = open_stream(addr, kind).await;
        assert!(accepted_nodelay(addr, stream.local_addr().expect("local address")), "{kind:?}");
    }

    let mut ws = TcpStream::connect(addr).await.expect("connect");
    let handshake = format!(
        "GET /connection/websocket HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    ws.write_all(handshake.as_bytes()).await.expect("send the handshake");
    let n = tokio::time::timeout(WAIT, ws.read(&mut answer)).await.expect("an answer").expect("read");
    assert!(answer[..n].starts_with(b"HTTP/1.1 101 "), "{}", String::from_utf8_lossy(&answer[..n]));
    assert!(accepted_nodelay(addr, ws.local_addr().expect("local address")), "WebSocket");
    hub.shutdown().await;
}

/// The events of a `uni_sse` stream read so far: (`id:` if any, the JSON of `data:`).
type Events = Vec<(Option<String>, serde_json::Value)>;

/// Sends a raw `uni_sse` request (`head` holds the request line and headers,
/// as bytes) and reads events until `done` holds; returns the status line and
/// the events.
async fn uni_sse(addr: SocketAddr, head: &[u8], done: impl Fn(&Events) -> bool) -> (String, Events) {
    tokio::time::timeout(WAIT, async {
        let mut stream = TcpStream::connect(addr).await.expect("connect to the hub");
        stream.write_all(head).await.expect("send the request");
        let mut seen = Vec::new();
        loop {
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await.expect("read the stream");
            seen.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8(seen.clone()).expect("the hub writes UTF-8");
            let status = text.lines().next().unwrap_or_default().to_string();
            let mut events = Vec::new();
            let mut id = None;
            for line in text.lines() {
                if let Some(value) = line.strip_prefix("id: ") {
                    id = Some(value.to_string());
                } else if let Some(data) = line.strip_prefix("data: ") {
                    events.push((id.take(), serde_json::from_str(data).expect("a JSON event")));
                }
            }
            if n == 0 || done(&events) {
                return (status, events);
            }
        }
    })
    .await
    .expect("the uni_sse exchange within WAIT")
}

fn uni_sse_head(addr: SocketAddr, query: &str, last_event_id: Option<&[u8]>) -> Vec<u8> {
    let mut head = format!("GET /connection/uni_sse?{query} HTTP/1.1\r\nHost: {addr}\r\n").into_bytes();
    if let Some(id) = last_event_id {
        head.extend_from_slice(b"Last-Event-ID: ");
        head.extend_from_slice(id);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

fn subscribed<'a>(events: &'a Events, channel: &str) -> Option<&'a serde_json::Value> {
    events.iter().find(|(_, e)| e["channel"] == channel && e.get("subscribe").is_some()).map(|(_, e)| &e["subscribe"])
}

fn offsets(events: &Events, channel: &str) -> Vec<u64> {
    events.iter().filter(|(_, e)| e["channel"] == channel).filter_map(|(_, e)| e["pub"]["offset"].as_u64()).collect()
}

/// `uni_sse` resumes channels whose names are not ASCII from a Last-Event-ID
/// sent as UTF-8 bytes (as browsers send it), issues ids in ASCII only, and
/// starts a channel whose position cannot be used fresh with
/// `recovered: false` instead of dropping the header or refusing the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uni_sse_resumes_any_channel_name_and_says_when_it_cannot() {
    let hub = spawn_hub(test_config()).await;
    let addr = hub.addr;
    let cafe = hub.publish("café", crate::helpers::data(1)).await;
    hub.publish("café", crate::helpers::data(2)).await;
    let news = hub.publish("news", crate::helpers::data(1)).await;
    hub.publish("news", crate::helpers::data(2)).await;
    let query = "channel=caf%C3%A9&channel=news";

    // Both positions at offset 1: each channel gets exactly publication 2.
    let id = format!(r#"[["café","{}",1],["news","{}",1]]"#, cafe.epoch, news.epoch);
    let both_replayed = |events: &Events| offsets(events, "café") == [2] && offsets(events, "news") == [2];
    let (status, events) = uni_sse(addr, &uni_sse_head(addr, query, Some(id.as_bytes())), both_replayed).await;
    assert!(status.starts_with("HTTP/1.1 200 "), "{status}");
    for channel in ["café", "news"] {
        let subscribe =
            subscribed(&events, channel).unwrap_or_else(|| panic!("a subscribe event for {channel}: {events:?}"));
        assert_eq!(subscribe["was_recovering"], true, "{channel}: {subscribe}");
        assert_eq!(subscribe["recovered"], true, "{channel}: {subscribe}");
    }
    let (last_id, _) = events.iter().rev().find(|(id, _)| id.is_some()).expect("events with ids");
    let last_id = last_id.as_deref().unwrap_or_default();
    assert!(last_id.is_ascii(), "ids are ASCII: {last_id}");
    let positions: Vec<(String, String, u64)> = serde_json::from_str(last_id).expect("an id is a JSON array");
    assert!(positions.contains(&("café".to_string(), cafe.epoch.clone(), 2)), "{positions:?}");
    assert!(positions.contains(&("news".to_string(), news.epoch.clone(), 2)), "{positions:?}");

    // The ASCII id the hub issued resumes as well: nothing after offset 2 yet.
    let caught_up = |events: &Events| subscribed(events, "café").is_some() && subscribed(events, "news").is_some();
    let (_, events) = uni_sse(addr, &uni_sse_head(addr, query, Some(last_id.as_bytes())), caught_up).await;
    for channel in ["café", "news"] {
        assert_eq!(subscribed(&events, channel).expect("subscribed")["recovered"], true, "{channel}: {events:?}");
    }

    // Ids the hub never issued: not JSON, not UTF-8, an entry of another shape.
    // Every channel without a usable position says recovered: false.
    let not_utf8 = [b"[[\"caf".as_slice(), &[0xE9], b"\",\"x\",1]]"].concat();
    let partly = format!(r#"[["news","{}",1],"garbage"]"#, news.epoch);
    for (what, id) in [("not JSON", b"hello".to_vec()), ("not UTF-8", not_utf8), ("an odd entry", partly.into_bytes())]
    {
        let (status, events) = uni_sse(addr, &uni_sse_head(addr, query, Some(&id)), caught_up).await;
        assert!(status.starts_with("HTTP/1.1 200 "), "{what}: {status}");
        // (The JSON mapping leaves out fields at their default: no `recovered` is false.)
        let flag = |subscribe: &serde_json::Value, name: &str| subscribe[name].as_bool().unwrap_or(false);
        let cafe = subscribed(&events, "café").expect("subscribed");
        assert_eq!((flag(cafe, "was_recovering"), flag(cafe, "recovered")), (true, false), "{what}: {cafe}");
        let news = subscribed(&events, "news").expect("subscribed");
        let news_recovered = what == "an odd entry";
        assert_eq!(
            (flag(news, "was_recovering"), flag(news, "recovered")),
            (true, news_recovered),
            "{what}: news {news}"
        );
    }
    hub.shutdown().await;
}

/// `uni_sse` counts its channels against `max_channels_per_client` like any
/// client: over it, 400 with error 106 before any stream starts (so the
/// browser's EventSource stops); at it, the stream runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uni_sse_enforces_max_channels_per_client() {
    let hub = spawn_hub(hub::config::Config { max_channels_per_client: 3, ..test_config() }).await;
    let addr = hub.addr;
    let query = |n: usize| (0..n).map(|i| format!("channel=news{i}")).collect::<Vec<_>>().join("&");
    let request = String::from_utf8(uni_sse_head(addr, &query(4), None)).expect("ASCII");
    let request = request.replacen("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1);
    let (status, body) = crate::helpers::raw_request(addr, &request).await;
    assert_eq!(status, 400, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
    assert_eq!(body["error"]["code"], 106, "{body}");
    assert_eq!(
        body["error"]["message"],
        "limit exceeded: 4 channels requested, at most 3 per client (max_channels_per_client)"
    );
    assert_eq!(hub.node.live_session_count(), 0, "no session was started");

    let all = |events: &Events| (0..3).all(|i| subscribed(events, &format!("news{i}")).is_some());
    let (status, events) = uni_sse(addr, &uni_sse_head(addr, &query(3), None), all).await;
    assert!(status.starts_with("HTTP/1.1 200 "), "{status}: {events:?}");
    hub.shutdown().await;
}

/// A connection token whose `channels` claim passes `max_channels_per_client`
/// is refused with disconnect 3505 "channel limit" (Centrifugo's code), on
/// WebSocket as on the other transports; at the limit it connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_with_more_channels_than_the_limit_is_refused_with_3505() {
    use crate::helpers::{connect_token_with, token_config, SECRET};
    let hub = spawn_hub(hub::config::Config { max_channels_per_client: 2, ..token_config() }).await;
    let hour = Some(hub::auth::expires_in(Duration::from_secs(3600)));
    for encoding in [protocol::Encoding::Json, protocol::Encoding::Protobuf] {
        let over = connect_token_with(SECRET, "alice", None, &["news", "chat:a", "chat:b"], hour);
        let mut client = hub.open(encoding).await;
        client
            .send(&[protocol::proto::Command {
                id: 1,
                connect: Some(protocol::proto::ConnectRequest { token: over, ..Default::default() }),
                ..Default::default()
            }])
            .await;
        assert_eq!(client.expect_close().await, (3505, "channel limit".to_string()), "{encoding:?}");

        let at = connect_token_with(SECRET, "alice", None, &["news", "chat:a"], hour);
        let (mut client, connected) = hub.connect_with_token(encoding, &at).await;
        assert_eq!(connected.subs.keys().collect::<Vec<_>>(), ["chat:a", "news"], "{connected:?}");
        let join = client.recv_push().await;
        assert_eq!((join.channel.as_str(), join.join.is_some()), ("chat:a", true), "its own join in chat:a: {join:?}");
        client.close().await;
    }
    hub.shutdown().await;
}

/// One request on a kept-alive connection: (status, lower-cased head, body);
/// `None` when the hub closed the connection instead of answering.
async fn keep_alive_call(stream: &mut TcpStream, request: &str) -> Option<(u16, String, String)> {
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut seen = Vec::new();
    loop {
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0);
            if seen.len() >= end + 4 + length {
                let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
                let body = String::from_utf8_lossy(&seen[end + 4..end + 4 + length]).to_string();
                return Some((status, head, body));
            }
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => seen.extend_from_slice(&chunk[..n]),
        }
    }
}

/// During a graceful shutdown the server API (and every other endpoint)
/// answers 503 with error 108 and `Connection: close`, so a keep-alive API
/// client neither gets HTTP 200 with error 100 for the whole
/// `shutdown_timeout` nor keeps the process alive that long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_keep_alive_api_connections_with_503() {
    let config =
        hub::config::Config { api_key: Some("key".into()), shutdown_timeout: Duration::from_secs(30), ..test_config() };
    let hub = spawn_hub(config).await;
    let addr = hub.addr;
    let request = format!("POST /api/info HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: key\r\nContent-Length: 2\r\n\r\n{{}}");
    let mut api = TcpStream::connect(addr).await.expect("connect");
    let (status, _, body) = keep_alive_call(&mut api, &request).await.expect("an answer");
    assert_eq!(status, 200, "{body}");
    // Another kept-alive connection, left idle from here on.
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    let (status, _, _) = keep_alive_call(&mut idle, &request).await.expect("an answer");
    assert_eq!(status, 200);

    // The node starts stopping: the same keep-alive connection is refused and closed.
    hub.node.shutdown(Duration::from_secs(30)).await;
    let (status, head, body) = keep_alive_call(&mut api, &request).await.expect("an answer while shutting down");
    assert_eq!(status, 503, "{head}\n{body}");
    assert!(head.contains("\r\nconnection: close"), "{head}");
    assert!(head.contains("\r\ncontent-type: application/json"), "{head}");
    assert_eq!(body, r#"{"error":{"code":108,"message":"shutting down"}}"#);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(WAIT, api.read_to_end(&mut rest)).await.expect("the hub closes the connection");
    assert!(closed.is_ok_and(|n| n == 0), "nothing after the 503");

    // The idle kept-alive connection does not hold the process for shutdown_timeout.
    let started = Instant::now();
    tokio::time::timeout(WAIT, hub.shutdown()).await.expect("the hub stops well within shutdown_timeout (30 s)");
    // (An idle connection left to actix-http's keep-alive would take 5 s.)
    assert!(started.elapsed() < Duration::from_secs(3), "stopped after {:?}", started.elapsed());
    drop(idle);
}

/// Every HTTP refusal has one shape, `{"error":{"code","message"}}` with
/// `Content-Type: application/json`, and the code the README documents for
/// its status: the hub's own refusals and those actix-web makes by itself
/// (no route, a body over the limit, a bad query).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_http_refusal_has_one_json_shape() {
    let config = hub::config::Config {
        api_key: Some("key".into()),
        allowed_origins: vec!["https://app.example".into()],
        ..test_config()
    };
    let hub = spawn_hub(config).await;
    let addr = hub.addr;
    let big = "x".repeat(200 * 1024);
    let post = |path: &str, headers: &str, body: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let get = |path: &str, headers: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n")
    };
    let upgrade = |path: &str, headers: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{headers}\r\n"
        )
    };
    let cases: Vec<(&str, String, u16, u32)> = vec![
        ("SSE body over the limit", post("/connection/sse", "", &big), 413, 106),
        ("HTTP-stream body over the limit", post("/connection/http_stream", "", &big), 413, 106),
        ("emulation body over the limit", post("/emulation", "", &big), 413, 106),
        ("API body over the limit", post("/api/publish", "X-API-Key: key\r\n", &"x".repeat(1024 * 1024 + 1)), 413, 106),
        ("no such path", get("/nope", ""), 404, 104),
        ("a method the path does not take", post("/health", "", ""), 404, 104),
        ("SSE without cf_connect", get("/connection/sse", ""), 400, 107),
        ("WebSocket path without Upgrade", get("/connection/websocket", ""), 400, 107),
        ("WebSocket version 8", upgrade("/connection/websocket", "Sec-WebSocket-Version: 8\r\n"), 426, 107),
        ("WebSocket upgrade elsewhere", upgrade("/api/info", "Sec-WebSocket-Version: 13\r\n"), 404, 104),
        (
            "WebSocket from another origin",
            upgrade("/connection/websocket", "Sec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n"),
            403,
            103,
        ),
        ("CORS refusal", get("/health", "Origin: https://evil.example\r\n"), 403, 103),
        ("API without key", post("/api/info", "", "{}"), 401, 101),
        ("API unknown method", post("/api/nope", "X-API-Key: key\r\n", "{}"), 404, 104),
        ("metrics off", get("/metrics", ""), 404, 108),
        ("emulation for no session", post("/emulation", "", r#"{"session":"nope","data":"{}"}"#), 404, 102),
        // Refused by actix-http's parser itself, before any route: the URL is
        // over the 64 KiB the `http` crate takes.
        ("a URL over 64 KiB", get(&format!("/health?x={}", "a".repeat(70 * 1024)), ""), 400, 107),
    ];
    for (what, request, status, code) in cases {
        let response = crate::helpers::raw_response(addr, &request).await;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{what}: {response:?}"));
        let head = head.to_lowercase();
        assert!(head.starts_with(&format!("http/1.1 {status} ")), "{what}: {head}");
        assert!(head.contains("\r\ncontent-type: application/json"), "{what}: {head}");
        let value: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: {body:?}: {e}"));
        let error = value.as_object().and_then(|o| o.get("error")).and_then(|e| e.as_object());
        let error = error.unwrap_or_else(|| panic!("{what}: {body}"));
        assert_eq!(error.keys().collect::<Vec<_>>(), ["code", "message"], "{what}: {body}");
        assert_eq!(error["code"], code, "{what}: {body}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
        if status == 413 && !what.starts_with("API") {
            assert_eq!(error["message"], "limit exceeded: request body larger than 65536 bytes", "{what}");
        }
    }
    hub.shutdown().await;
}
