//! The test WebSocket client: tokio-tungstenite for the socket, the `protocol`
//! crate for the wire.
//!
//! JSON connections use text frames, Protobuf ones (subprotocol
//! `centrifuge-protobuf`) binary frames; either way one frame may hold several
//! messages, which the client splits into `Reply` values and keeps in an inbox
//! in arrival order. Waits pick what they want out of the inbox (a reply by id,
//! the next push, the close frame) and read more frames while it is not there,
//! each bounded by [`WAIT`] with a message that names what was awaited.
//!
//! An empty reply is a server ping: it is counted (and answered with an empty
//! command when `auto_pong` is set), never put into the inbox.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use protocol::codec::{decode_frame, encode_frame};
use protocol::proto::{self, Command, Push, Reply};
use protocol::Encoding;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::helpers::WAIT;

const PROTOBUF_SUBPROTOCOL: &str = "centrifuge-protobuf";

/// A failed command: the wire error of its reply.
pub type WireError = proto::Error;

pub struct WsClient {
    pub encoding: Encoding,
    ws: WebSocketStream<TcpStream>,
    /// Replies received and not yet taken, in arrival order (pings excluded).
    inbox: VecDeque<Reply>,
    next_id: u32,
    /// Number of messages in each data frame received, in order.
    pub frame_sizes: Vec<usize>,
    /// Server pings (empty replies) received.
    pub pings: usize,
    /// Answer every server ping with an empty command.
    pub auto_pong: bool,
    /// Payloads of WebSocket-level pong frames received (answers to our pings).
    pub pongs: Vec<Bytes>,
    /// The close frame's (code, reason) once the server closed; 1006 when the
    /// connection ended without a close frame.
    closed: Option<(u16, String)>,
}

impl WsClient {
    /// Opens a WebSocket to `/connection/websocket`.
    pub async fn open(addr: SocketAddr, encoding: Encoding) -> WsClient {
        let stream = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("cannot reach the hub at {addr}: {e}"));
        Self::handshake(addr, stream, encoding, &[]).await
    }

    /// Like [`WsClient::open`] with extra handshake headers (e.g. `X-Forwarded-For`).
    pub async fn open_with_headers(addr: SocketAddr, encoding: Encoding, headers: &[(&'static str, &str)]) -> WsClient {
        let stream = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("cannot reach the hub at {addr}: {e}"));
        Self::handshake(addr, stream, encoding, headers).await
    }

    /// Like [`WsClient::open`] with a small socket receive buffer, so a client
    /// that stops reading pushes back on the server sooner.
    pub async fn open_small_buffer(addr: SocketAddr, encoding: Encoding, bytes: u32) -> WsClient {
        let socket = TcpSocket::new_v4().expect("a TCP socket");
        socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF can be set");
        let stream = socket.connect(addr).await.unwrap_or_else(|e| panic!("cannot reach the hub at {addr}: {e}"));
        Self::handshake(addr, stream, encoding, &[]).await
    }

    async fn handshake(
        addr: SocketAddr,
        stream: TcpStream,
        encoding: Encoding,
        headers: &[(&'static str, &str)],
    ) -> WsClient {
        let mut request = format!("ws://{addr}/connection/websocket").into_client_request().expect("a valid URL");
        for (name, value) in headers {
            request.headers_mut().append(*name, HeaderValue::from_str(value).expect("a header value"));
        }
        if encoding == Encoding::Protobuf {
            request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(PROTOBUF_SUBPROTOCOL));
        }
        let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, stream))
            .await
            .expect("timed out waiting for the WebSocket handshake")
            .expect("the WebSocket handshake succeeds");
        let protocol = response.headers().get("Sec-WebSocket-Protocol").map(|v| v.to_str().unwrap_or("").to_string());
        match encoding {
            Encoding::Protobuf => {
                assert_eq!(protocol.as_deref(), Some(PROTOBUF_SUBPROTOCOL), "the hub selects Protobuf")
            }
            Encoding::Json => assert_eq!(protocol, None, "no subprotocol asked, none selected"),
        }
        WsClient {
            encoding,
            ws,
            inbox: VecDeque::new(),
            next_id: 1,
            frame_sizes: Vec::new(),
            pings: 0,
            auto_pong: false,
            pongs: Vec::new(),
            closed: None,
        }
    }

    // ---- sending ---------------------------------------------------------------------

    /// The next command id.
    pub fn next_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends `commands` as one frame (text for JSON, binary for Protobuf).
    pub async fn send(&mut self, commands: &[Command]) {
        let frame = encode_frame(self.encoding, commands);
        let message = match self.encoding {
            Encoding::Json => Message::Text(String::from_utf8(frame.to_vec()).expect("JSON frames are UTF-8").into()),
            Encoding::Protobuf => Message::Binary(frame),
        };
        self.send_raw(message).await;
    }

    /// Sends one WebSocket message as it is.
    pub async fn send_raw(&mut self, message: Message) {
        tokio::time::timeout(WAIT, self.ws.send(message))
            .await
            .expect("timed out sending a frame")
            .expect("the frame is sent");
    }

    /// Sends `command` with a fresh id and waits for its reply.
    pub async fn call(&mut self, mut command: Command) -> Reply {
        command.id = self.next_id();
        let id = command.id;
        self.send(&[command]).await;
        self.recv_reply(id).await
    }

    /// Closes the WebSocket from the client side: a close frame, then waits
    /// for the server's close frame (or the end of the stream) and drops the socket.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(WAIT, self.ws.close(None)).await;
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) => break,
                Ok(Some(Ok(_))) => continue,
                Err(_) => panic!("timed out waiting for the server to answer a close"),
            }
        }
    }

    // ---- receiving -------------------------------------------------------------------

    /// Reads one WebSocket message (bounded by the time left until `deadline`)
    /// and files what it holds. Fails the test on timeout, naming `what`.
    async fn read(&mut self, what: &str, deadline: Instant) {
        if let Some((code, reason)) = &self.closed {
            panic!("connection closed ({code} {reason:?}) while waiting for {what}");
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let message = match tokio::time::timeout(left, self.ws.next()).await {
            Ok(message) => message,
            Err(_) => panic!("timed out waiting for {what}; unclaimed replies: {:?}", self.inbox),
        };
        self.file_message(message).await;
    }

    async fn file_frame(&mut self, frame: Bytes) {
        let replies: Vec<Reply> = decode_frame(self.encoding, &frame, usize::MAX)
            .unwrap_or_else(|e| panic!("the hub sent an undecodable frame ({e}): {frame:?}"));
        self.frame_sizes.push(replies.len());
        for reply in replies {
            if reply == Reply::default() {
                self.pings += 1;
                if self.auto_pong {
                    self.send(&[Command::default()]).await;
                }
            } else {
                self.inbox.push_back(reply);
            }
        }
    }

    /// Waits for the reply to command `id` (pushes and other replies stay in the inbox).
    pub async fn recv_reply(&mut self, id: u32) -> Reply {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(at) = self.inbox.iter().position(|r| r.id == id) {
                return self.inbox.remove(at).expect("the position is in range");
            }
            self.read(&format!("the reply to command {id}"), deadline).await;
        }
    }

    /// Waits for the reply to command `id`, or the close frame that comes
    /// instead: `Err((code, reason))`.
    pub async fn reply_or_close(&mut self, id: u32) -> Result<Reply, (u16, String)> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(at) = self.inbox.iter().position(|r| r.id == id) {
                return Ok(self.inbox.remove(at).expect("the position is in range"));
            }
            if let Some(closed) = &self.closed {
                return Err(closed.clone());
            }
            self.read(&format!("the reply to command {id} or a close"), deadline).await;
        }
    }

    /// Waits for the next reply of any kind (push or command reply), in arrival order.
    pub async fn recv_any(&mut self) -> Reply {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(reply) = self.inbox.pop_front() {
                return reply;
            }
            self.read("any reply", deadline).await;
        }
    }

    /// Waits for the next push (replies to commands stay in the inbox).
    pub async fn recv_push(&mut self) -> Push {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(at) = self.inbox.iter().position(|r| r.id == 0 && r.push.is_some()) {
                let reply = self.inbox.remove(at).expect("the position is in range");
                return reply.push.expect("checked above");
            }
            self.read("a push", deadline).await;
        }
    }

    /// Waits for the next push and checks it is a publication on `channel`.
    pub async fn recv_pub(&mut self, channel: &str) -> proto::Publication {
        let push = self.recv_push().await;
        assert_eq!(push.channel, channel, "a publication push on {channel} expected, got {push:?}");
        push.r#pub.clone().unwrap_or_else(|| panic!("a publication push on {channel} expected, got {push:?}"))
    }

    /// Reads for `duration` and fails if any push or reply arrives (pings are
    /// handled as usual) or if the connection closes.
    pub async fn expect_silence(&mut self, duration: Duration) {
        let end = Instant::now() + duration;
        while Instant::now() < end && self.inbox.is_empty() && self.closed.is_none() {
            let left = end.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => break,
                Ok(message) => self.file_message(message).await,
            }
        }
        assert!(self.closed.is_none(), "the connection closed ({:?}) while it should stay quiet", self.closed);
        assert!(self.inbox.is_empty(), "nothing expected for {duration:?}, got {:?}", self.inbox);
    }

    async fn file_message(&mut self, message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) {
        match message {
            Some(Ok(Message::Text(text))) => {
                assert_eq!(self.encoding, Encoding::Json, "a Protobuf connection got a text frame: {text}");
                self.file_frame(Bytes::copy_from_slice(text.as_bytes())).await;
            }
            Some(Ok(Message::Binary(bytes))) => {
                assert_eq!(self.encoding, Encoding::Protobuf, "a JSON connection got a binary frame: {bytes:?}");
                self.file_frame(bytes).await;
            }
            Some(Ok(Message::Close(frame))) => {
                self.closed =
                    Some(frame.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((1005, String::new())))
            }
            Some(Ok(Message::Pong(payload))) => self.pongs.push(payload),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => self.closed = Some((1006, String::new())),
        }
    }

    /// Reads until a WebSocket pong arrives; returns its payload.
    pub async fn expect_pong(&mut self) -> Bytes {
        let deadline = Instant::now() + WAIT;
        while self.pongs.is_empty() {
            self.read("a pong", deadline).await;
        }
        self.pongs.remove(0)
    }

    /// Waits for the server's close frame, reading (and keeping) whatever comes
    /// before it; returns its (code, reason).
    pub async fn expect_close(&mut self) -> (u16, String) {
        let deadline = Instant::now() + WAIT;
        while self.closed.is_none() {
            self.read("the server to close the connection", deadline).await;
        }
        self.closed.clone().expect("checked by the loop")
    }

    /// Replies kept in the inbox (for assertions on what preceded a close).
    pub fn take_inbox(&mut self) -> Vec<Reply> {
        self.inbox.drain(..).collect()
    }

    // ---- commands --------------------------------------------------------------------

    /// Connects (anonymously when `token` is empty).
    pub async fn connect(&mut self, token: &str) -> Result<proto::ConnectResult, WireError> {
        let request =
            proto::ConnectRequest { token: token.to_string(), name: "hub-tests".into(), ..Default::default() };
        let reply = self.call(Command { connect: Some(request), ..Default::default() }).await;
        result(reply, |r| r.connect)
    }

    /// Subscribes to `channel`; the test fails if the hub refuses.
    pub async fn subscribe(&mut self, channel: &str) -> proto::SubscribeResult {
        self.subscribe_with(proto::SubscribeRequest { channel: channel.to_string(), ..Default::default() })
            .await
            .unwrap_or_else(|e| panic!("subscribe to {channel} refused: {e:?}"))
    }

    /// Subscribes to `channel` asking to recover from (`offset`, `epoch`).
    pub async fn subscribe_recover(&mut self, channel: &str, offset: u64, epoch: &str) -> proto::SubscribeResult {
        let request = proto::SubscribeRequest {
            channel: channel.to_string(),
            recover: true,
            recoverable: true,
            offset,
            epoch: epoch.to_string(),
            ..Default::default()
        };
        self.subscribe_with(request).await.unwrap_or_else(|e| panic!("subscribe to {channel} refused: {e:?}"))
    }

    pub async fn subscribe_with(
        &mut self,
        request: proto::SubscribeRequest,
    ) -> Result<proto::SubscribeResult, WireError> {
        let reply = self.call(Command { subscribe: Some(request), ..Default::default() }).await;
        result(reply, |r| r.subscribe)
    }

    pub async fn unsubscribe(&mut self, channel: &str) -> Result<proto::UnsubscribeResult, WireError> {
        let request = proto::UnsubscribeRequest { channel: channel.to_string() };
        let reply = self.call(Command { unsubscribe: Some(request), ..Default::default() }).await;
        result(reply, |r| r.unsubscribe)
    }

    pub async fn publish(&mut self, channel: &str, data: impl Into<Bytes>) -> Result<proto::PublishResult, WireError> {
        let request = proto::PublishRequest { channel: channel.to_string(), data: data.into() };
        let reply = self.call(Command { publish: Some(request), ..Default::default() }).await;
        result(reply, |r| r.publish)
    }

    pub async fn presence(&mut self, channel: &str) -> Result<proto::PresenceResult, WireError> {
        let request = proto::PresenceRequest { channel: channel.to_string() };
        let reply = self.call(Command { presence: Some(request), ..Default::default() }).await;
        result(reply, |r| r.presence)
    }

    pub async fn presence_stats(&mut self, channel: &str) -> Result<proto::PresenceStatsResult, WireError> {
        let request = proto::PresenceStatsRequest { channel: channel.to_string() };
        let reply = self.call(Command { presence_stats: Some(request), ..Default::default() }).await;
        result(reply, |r| r.presence_stats)
    }

    pub async fn history(&mut self, request: proto::HistoryRequest) -> Result<proto::HistoryResult, WireError> {
        let reply = self.call(Command { history: Some(request), ..Default::default() }).await;
        result(reply, |r| r.history)
    }

    /// The `ping` command (not the heartbeat): answered by an empty `ping` result.
    pub async fn ping(&mut self) -> Result<proto::PingResult, WireError> {
        let reply = self.call(Command { ping: Some(proto::PingRequest {}), ..Default::default() }).await;
        result(reply, |r| r.ping)
    }
}

/// The result a reply carries, or its error; fails the test if it has neither.
fn result<T>(reply: Reply, pick: impl FnOnce(Reply) -> Option<T>) -> Result<T, WireError> {
    if let Some(error) = reply.error {
        return Err(error);
    }
    let text = format!("{reply:?}");
    pick(reply).ok_or_else(|| panic!("the reply carries neither the expected result nor an error: {text}"))
}
