//! The WebSocket endpoint itself (the hub owns the socket after the
//! handshake): handshake refusals answer JSON with the right status, client
//! messages split into continuation frames are joined, WebSocket pings get
//! their pong, a client's close is answered with a close frame, and a
//! message over `max_frame_bytes` closes with 3501.

use std::net::SocketAddr;

use hub::config::Config;
use protocol::codec::encode_frame;
use protocol::proto::{Command, ConnectRequest};
use protocol::Encoding;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{raw_request, raw_response, spawn_hub, test_config, WAIT};

fn upgrade_request(addr: SocketAddr, path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

fn json_error(body: &str) -> serde_json::Value {
    let value: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("a JSON body, got {body:?}: {e}"));
    value["error"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_refusals_answer_json() {
    let hub = spawn_hub(test_config()).await;
    let addr = hub.addr;

    // A plain GET (no Upgrade) reaches the HTTP routes.
    let (status, body) =
        raw_request(addr, &format!("GET /connection/websocket HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"))
            .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(json_error(&body)["message"], "a WebSocket handshake (Upgrade: websocket) is expected here");
    assert_eq!(json_error(&body)["code"], 107);

    // An upgrade elsewhere.
    let (status, body) =
        raw_request(addr, &upgrade_request(addr, "/api/publish", "Sec-WebSocket-Version: 13\r\n")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(json_error(&body)["message"], "WebSocket connections are served at /connection/websocket only");

    // A version the hub does not speak: 426 naming the one it does (RFC 6455 4.4).
    let request = upgrade_request(addr, "/connection/websocket", "Sec-WebSocket-Version: 8\r\n");
    let (status, body) = raw_request(addr, &request).await;
    assert_eq!(status, 426, "{body}");
    assert_eq!(json_error(&body)["message"], "unsupported WebSocket version");
    let head = raw_response(addr, &request).await;
    assert!(head.contains("sec-websocket-version: 13\r\n"), "{head}");

    // A cross-origin page with no allowed_origins.
    let origin = "Sec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n";
    let (status, body) = raw_request(addr, &upgrade_request(addr, "/connection/websocket", origin)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(json_error(&body)["message"], "origin not allowed");

    // The same request from the hub's own origin is switched.
    let same = format!("Sec-WebSocket-Version: 13\r\nOrigin: http://{addr}\r\n");
    let response = tokio::time::timeout(WAIT, async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(upgrade_request(addr, "/connection/websocket", &same).as_bytes()).await.expect("send");
        let mut head = vec![0u8; 1024];
        let n = stream.read(&mut head).await.expect("read the answer");
        String::from_utf8_lossy(&head[..n]).to_string()
    })
    .await
    .expect("an answer within WAIT");
    assert!(response.starts_with("HTTP/1.1 101 "), "{response}");
    // RFC 6455's example key and its accept value.
    assert!(response.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{response}");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_pings_and_client_close() {
    let hub = spawn_hub(test_config()).await;
    let mut client = hub.open(Encoding::Json).await;

    // A connect command split over three frames.
    let command = Command { id: 1, connect: Some(ConnectRequest::default()), ..Default::default() };
    let frame = encode_frame(Encoding::Json, &[command]).to_vec();
    let (a, rest) = frame.split_at(5);
    let (b, c) = rest.split_at(rest.len() / 2);
    client.send_raw(Message::Frame(Frame::message(a.to_vec(), OpCode::Data(Data::Text), false))).await;
    client.send_raw(Message::Frame(Frame::message(b.to_vec(), OpCode::Data(Data::Continue), false))).await;
    client.send_raw(Message::Frame(Frame::message(c.to_vec(), OpCode::Data(Data::Continue), true))).await;
    let reply = client.recv_reply(1).await;
    assert!(reply.connect.is_some_and(|c| !c.client.is_empty()), "the joined connect command was answered");

    // A WebSocket ping gets a pong with its payload.
    client.send_raw(Message::Ping(b"are you there".to_vec().into())).await;
    assert_eq!(&client.expect_pong().await[..], b"are you there");

    // The client closes: the hub answers with a close frame (no code) and the session ends.
    client.send_raw(Message::Close(None)).await;
    assert_eq!(client.expect_close().await, (1005, String::new()));
    hub.assert_no_sessions().await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_max_frame_bytes_closes_with_3501() {
    let hub = spawn_hub(Config { max_frame_bytes: 1024, ..test_config() }).await;
    for fragmented in [false, true] {
        let (mut client, _) = hub.connect(Encoding::Json).await;
        let big = format!("{{\"id\":2,\"publish\":{{\"channel\":\"news\",\"data\":\"{}\"}}}}", "x".repeat(2000));
        if fragmented {
            let (a, b) = big.as_bytes().split_at(900);
            client.send_raw(Message::Frame(Frame::message(a.to_vec(), OpCode::Data(Data::Text), false))).await;
            client.send_raw(Message::Frame(Frame::message(b.to_vec(), OpCode::Data(Data::Continue), true))).await;
        } else {
            client.send_raw(Message::Text(big.into())).await;
        }
        assert_eq!(client.expect_close().await, (3501, "bad request".to_string()), "fragmented: {fragmented}");
    }
    hub.assert_no_sessions().await;
    hub.shutdown().await;
}

/// Reads one unmasked server frame: (opcode, payload).
async fn read_server_frame(stream: &mut tokio::net::TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await.expect("a frame header");
    let len = match head[1] & 0x7F {
        126 => {
            let mut ext = [0u8; 2];
            stream.read_exact(&mut ext).await.expect("a 16-bit length");
            u16::from_be_bytes(ext) as usize
        }
        127 => {
            let mut ext = [0u8; 8];
            stream.read_exact(&mut ext).await.expect("a 64-bit length");
            u64::from_be_bytes(ext) as usize
        }
        short => short as usize,
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.expect("the payload");
    (head[0] & 0x0F, payload)
}

/// A frame whose header claims 2^40 bytes is refused from its header: the
/// hub closes with 3501 after a few bytes of payload, before any connect
/// command, instead of buffering what the header announces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_header_over_max_frame_bytes_is_refused_from_the_header() {
    let hub = spawn_hub(Config { max_frame_bytes: 4096, ..test_config() }).await;
    let addr = hub.addr;
    for (length_bytes, announced) in [(&[127u8][..], 1u64 << 40), (&[126u8][..], 5000)] {
        let close = tokio::time::timeout(WAIT, async {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream
                .write_all(upgrade_request(addr, "/connection/websocket", "Sec-WebSocket-Version: 13\r\n").as_bytes())
                .await
                .expect("send the handshake");
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                stream.read_exact(&mut byte).await.expect("the 101 answer");
                head.push(byte[0]);
            }
            assert!(head.starts_with(b"HTTP/1.1 101 "), "{}", String::from_utf8_lossy(&head));
            // FIN + binary, masked, the extended length, a mask, then a little payload.
            let mut frame = vec![0x82u8, 0x80 | length_bytes[0]];
            if announced > u16::MAX as u64 {
                frame.extend_from_slice(&announced.to_be_bytes());
            } else {
                frame.extend_from_slice(&(announced as u16).to_be_bytes());
            }
            frame.extend_from_slice(&[1, 2, 3, 4]);
            frame.extend_from_slice(&[0u8; 1000]);
            stream.write_all(&frame).await.expect("send the frame's start");
            read_server_frame(&mut stream).await
        })
        .await
        .unwrap_or_else(|_| panic!("a close frame for a header announcing {announced} bytes"));
        assert_eq!(close.0, 0x8, "a close frame");
        assert_eq!(&close.1[..2], &3501u16.to_be_bytes(), "code 3501");
        assert_eq!(&close.1[2..], b"bad request");
    }
    hub.assert_no_sessions().await;
    hub.shutdown().await;
}
