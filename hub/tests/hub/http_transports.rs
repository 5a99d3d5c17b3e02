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
enum Stream {
    SseGet,
    SsePost,
    HttpStream,
}

fn open_request(addr: SocketAddr, kind: Stream) -> String {
    match kind {
        Stream::SseGet => {
            let query: String = url::form_urlencoded::byte_serialize(CONNECT.as_bytes()).collect();
            format!("GET /connection/sse?cf_connect={query} HTTP/1.1\r\nHost: {addr}\r\n\r\n")
        }
        Stream::SsePost | Stream::HttpStream => {
            let path = if matches!(kind, Stream::SsePost) { "/connection/sse" } else { "/connection/http_stream" };
            format!(
                "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{CONNECT}",
                CONNECT.len()
            )
        }
    }
}

/// Opens a streaming session and reads until its connect reply; returns the
/// socket and the emulation session id the reply carries.
async fn open_stream(addr: SocketAddr, kind: Stream) -> (TcpStream, String) {
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
    let body = serde_json::json!({"node": hub.node.name(), "session": session, "data": "{\"id\":2,\"ping\":{}}"}).to_string();
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
    for kind in [Stream::SseGet, Stream::SsePost, Stream::HttpStream] {
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
    hub.shutdown().await;
}

/// `TCP_NODELAY` of the hub's side of the connection whose client end is
/// `client`, read from the accepted socket itself (this process holds it).
fn accepted_nodelay(server: SocketAddr, client: SocketAddr) -> bool {
    let entries = std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd lists this process's descriptors");
    for entry in entries.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else { continue };
        let is_socket = std::fs::read_link(entry.path()).is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
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

    for kind in [Stream::SseGet, Stream::HttpStream] {
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
