//! The WebSocket transport (`GET /connection/websocket`).
//!
//! The handshake arrives through actix-http's upgrade hook (see
//! `server::start`): every request with `Upgrade: websocket` is handed to
//! [`upgrade`] with its socket instead of going through the App. After the
//! 101 answer the hub owns the TCP socket itself, so a connection keeps no
//! HTTP dispatcher and no HTTP read/write buffers for its lifetime: an idle
//! connection holds no buffer at all (a read buffer exists only while bytes
//! are being read, and frames are written straight from the shared
//! publication bytes with one vectored write).
//!
//! Each connection gets an outbox, a session actor and one task on the actix
//! worker that reads and writes, the task and the actor inside one span
//! (`session::connection_span`):
//! - read: each text/binary message (continuations joined, size-limited) is
//!   decoded into commands and handed to the session as one message; an
//!   undecodable message or a WebSocket protocol error closes the connection
//!   with 3501 "bad request". Reading pauses while the session has too many
//!   frames unprocessed, so a flooding client meets TCP backpressure instead
//!   of growing a mailbox.
//! - write: everything queued in the outbox goes out as one frame per wake-up;
//!   when the outbox closes, a close frame carries the disconnect code and
//!   reason, after what was queued before it. A write that makes no progress
//!   for `ping_interval + pong_timeout` ends the connection (a client that
//!   cannot take a ping in that time is gone).
//! - end: after the close frame the socket is shut down for writing and read
//!   until the peer closes (at most [`LINGER`]), so the close frame is not
//!   lost to a reset.

use std::convert::Infallible;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::Duration;

use actix_codec::{Decoder, Framed};
use actix_http::header::{self, HeaderMap};
use actix_http::ws::{self as actix_ws_proto, Frame, Item};
use actix_http::{h1, Request, Response, StatusCode};
use actix_service::{fn_factory, fn_service, ServiceFactory};
use actix_web::rt::net::TcpStream;
use actix_web::{HttpMessage, HttpResponse};
use bytes::{BufMut, Bytes, BytesMut};
use protocol::codec::decode_frame;
use protocol::codes::{self, DisconnectCode};
use protocol::{Command, Encoding};
use ractor::ActorRef;
use tokio::io::AsyncWriteExt;
use tracing::Instrument;

use crate::conn::Conn;
use crate::outbox::{Next, Outbox};
use crate::session::{connection_span, SessionContext, SessionMsg, TransportKind};
use crate::transport::Inflight;

/// The path of the WebSocket endpoint.
pub const PATH: &str = "/connection/websocket";

/// The subprotocol that selects Protobuf framing.
pub const PROTOBUF_SUBPROTOCOL: &str = "centrifuge-protobuf";

/// Frames handed to the session but not yet processed, before reading pauses.
const MAX_PENDING_FRAMES: usize = 64;

/// How much is read from the socket at a time (the buffer grows beyond it
/// only while one large frame arrives, up to `max_frame_bytes`).
const READ_CHUNK: usize = 4096;

/// After our close frame, how long we wait for the peer to close.
const LINGER: Duration = Duration::from_secs(2);

/// WebSocket opcodes the hub writes.
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PONG: u8 = 0xA;

/// `GET /connection/websocket` without `Upgrade: websocket` (those with it
/// never reach the App): 400 with a JSON body.
pub async fn not_a_handshake() -> HttpResponse {
    crate::http_error::response(
        StatusCode::BAD_REQUEST,
        codes::BAD_REQUEST.code,
        "a WebSocket handshake (Upgrade: websocket) is expected here",
    )
}

/// The upgrade service of the HTTP/1 server: answers the handshake and
/// starts the connection.
pub fn upgrade_factory(
    ctx: Arc<SessionContext>,
) -> impl ServiceFactory<(Request, Framed<Conn, h1::Codec>), Config = (), Response = (), Error = Infallible, InitError = ()>
{
    fn_factory(move || {
        let ctx = ctx.clone();
        async move {
            Ok::<_, ()>(fn_service(move |(request, framed): (Request, Framed<Conn, h1::Codec>)| {
                upgrade(ctx.clone(), request, framed)
            }))
        }
    })
}

async fn upgrade(
    ctx: Arc<SessionContext>,
    request: Request,
    framed: Framed<Conn, h1::Codec>,
) -> Result<(), Infallible> {
    let parts = framed.into_parts();
    let mut io = parts.io.into_inner();
    // The dispatcher's read buffer goes on only for the bytes that arrived
    // after the handshake, if any: `connection` releases it once empty.
    let leftover = parts.read_buf;
    drop(parts.write_buf);
    let (encoding, response) = match handshake(&ctx, &request) {
        Ok(accepted) => accepted,
        Err((status, message)) => {
            refuse(&mut io, status, &message).await;
            return Ok(());
        }
    };
    let outbox = Arc::new(Outbox::for_client(encoding, ctx.config.client_outbox_bytes));
    let span = connection_span(TransportKind::WebSocket);
    let ip = crate::quota::client_ip(request.headers(), request.peer_addr(), ctx.config.client_ip_header.as_deref());
    let headers = super::forwarded_headers(&ctx, request.headers());
    let session = match ctx.spawn(outbox.clone(), TransportKind::WebSocket, None, span.clone(), ip, headers).await {
        Ok(session) => session,
        Err(error) => {
            span.in_scope(|| tracing::debug!(%error, "no session for a WebSocket"));
            refuse(&mut io, StatusCode::SERVICE_UNAVAILABLE, "no session could be started").await;
            return Ok(());
        }
    };
    if io.write_all(response.as_bytes()).await.is_err() {
        let _ = session.cast(SessionMsg::TransportClosed);
        return Ok(());
    }
    // The dispatcher that called us ends here; the connection goes on in its own task.
    actix_web::rt::spawn(connection(ctx, io, leftover, outbox, session, encoding).instrument(span));
    Ok(())
}

/// Answers a refused handshake with `status` and a JSON error body, then
/// closes the socket (bounded by [`LINGER`]).
async fn refuse(io: &mut TcpStream, status: StatusCode, message: &str) {
    // RFC 6455 4.4: a refused version is answered with the one we speak.
    let version = if status == StatusCode::UPGRADE_REQUIRED { "sec-websocket-version: 13\r\n" } else { "" };
    let response = crate::http_error::head(status, message, version);
    let _ = tokio::time::timeout(LINGER, async {
        io.write_all(response.as_bytes()).await?;
        io.shutdown().await
    })
    .await;
}

/// Checks the handshake; the 101 answer and the encoding, or why not.
fn handshake(ctx: &SessionContext, request: &Request) -> Result<(Encoding, String), (StatusCode, String)> {
    if request.path() != PATH {
        return Err((StatusCode::NOT_FOUND, format!("WebSocket connections are served at {PATH} only")));
    }
    let headers = request.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if !origin.to_str().is_ok_and(|o| crate::cors::origin_allowed(&ctx.config.allowed_origins, o, host)) {
            return Err((StatusCode::FORBIDDEN, "origin not allowed".to_string()));
        }
    }
    if ctx.is_shutting_down() {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_string()));
    }
    if let Err(error) = actix_ws_proto::verify_handshake(request.head()) {
        let status = Response::from(&error).status();
        return Err((status, error.to_string()));
    }
    // verify_handshake checked that the key is present and well-formed.
    let key = headers.get(header::SEC_WEBSOCKET_KEY).map(|k| k.as_bytes()).unwrap_or_default();
    let accept = actix_ws_proto::hash_key(key);
    let accept = std::str::from_utf8(&accept).unwrap_or_default();
    let protobuf = wants_protobuf(headers);
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: {accept}\r\n"
    );
    if protobuf {
        response.push_str("sec-websocket-protocol: ");
        response.push_str(PROTOBUF_SUBPROTOCOL);
        response.push_str("\r\n");
    }
    response.push_str("\r\n");
    Ok((if protobuf { Encoding::Protobuf } else { Encoding::Json }, response))
}

/// Whether the client offers the Protobuf subprotocol (in any of its
/// `Sec-WebSocket-Protocol` headers, comma-separated).
fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|protocol| protocol.trim() == PROTOBUF_SUBPROTOCOL)
}

async fn connection(
    ctx: Arc<SessionContext>,
    mut io: TcpStream,
    mut read_buf: BytesMut,
    outbox: Arc<Outbox>,
    session: ActorRef<SessionMsg>,
    encoding: Encoding,
) {
    let mut builder = outbox.frame_builder();
    let inflight = Arc::new(Inflight::default());
    let limit = ctx.config.max_frame_bytes;
    let write_delay = ctx.config.write_delay;
    let write_timeout = ctx.config.ping_interval + ctx.config.pong_timeout;
    let mut reader = Reader { codec: actix_ws_proto::Codec::new().max_size(limit), partial: None, limit };
    let opcode = match encoding {
        Encoding::Json => OP_TEXT,
        Encoding::Protobuf => OP_BINARY,
    };
    // Bytes that came with the handshake are handled before the first read.
    let mut pending_input = !read_buf.is_empty();
    let mut reading = true;
    let close: Option<DisconnectCode> = 'connection: loop {
        if pending_input {
            pending_input = false;
            match reader.decode(&mut read_buf) {
                Ok(inputs) => {
                    for input in inputs {
                        match input {
                            Input::Message(bytes) => forward(&outbox, &session, &inflight, &bytes, encoding, limit),
                            Input::Ping(payload) => {
                                if write_frame(&io, OP_PONG, &payload, write_timeout).await.is_err() {
                                    break 'connection None;
                                }
                            }
                            // The client closed: answer with a plain close frame.
                            Input::Close => break 'connection None,
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "websocket protocol error");
                    reading = false;
                    outbox.close(codes::BAD_REQUEST_DISCONNECT);
                }
            }
        }
        if read_buf.is_empty() && read_buf.capacity() > 0 {
            // Idle connections keep no read buffer (after decoding everything,
            // or after a readiness that had nothing behind it).
            read_buf = BytesMut::new();
        }
        let room = inflight.count() < MAX_PENDING_FRAMES;
        tokio::select! {
            biased;
            next = outbox.next_after(&mut builder, write_delay) => match next {
                Next::Frame(frame) => {
                    if write_frame(&io, opcode, &frame, write_timeout).await.is_err() {
                        break None;
                    }
                }
                Next::Close(code) => break Some(code),
            },
            ready = io.readable(), if reading && room => {
                if ready.is_err() {
                    break None;
                }
                if read_buf.capacity() - read_buf.len() < READ_CHUNK / 4 {
                    read_buf.reserve(READ_CHUNK);
                }
                match io.try_read_buf(&mut read_buf) {
                    Ok(0) => break None,
                    Ok(_) => pending_input = true,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => break None,
                }
            },
            _ = inflight.drained(), if !room => {}
        }
    };
    let mut payload = Vec::new();
    if let Some(code) = close {
        payload.extend_from_slice(&code.code.to_be_bytes());
        // A close frame's payload is at most 125 bytes.
        let reason = code.reason.as_bytes();
        payload.extend_from_slice(&reason[..reason.len().min(123)]);
    }
    let _ = write_frame(&io, OP_CLOSE, &payload, LINGER).await;
    // The session ends once its close frame is with the kernel (graceful
    // shutdown waits for sessions, then stops the workers this task runs on).
    let _ = session.cast(SessionMsg::TransportClosed);
    // Let the peer read our close frame before the socket goes away.
    let _ = tokio::time::timeout(LINGER, async {
        io.shutdown().await?;
        let mut sink = [0u8; 512];
        loop {
            io.readable().await?;
            match io.try_read(&mut sink) {
                Ok(0) => return Ok::<_, io::Error>(()),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
        }
    })
    .await;
}

/// What a read produced.
enum Input {
    /// A whole text or binary message (continuations joined).
    Message(Bytes),
    Ping(Bytes),
    Close,
}

/// Frame decoding state of one connection.
struct Reader {
    codec: actix_ws_proto::Codec,
    /// A fragmented message being joined, bounded by `limit`.
    partial: Option<BytesMut>,
    limit: usize,
}

impl Reader {
    /// Decodes every complete frame in `buf` (stops after a close frame).
    ///
    /// A frame whose header announces more payload than `limit` allows (with
    /// what a fragmented message already holds) is refused as soon as its
    /// header is in: its payload is never buffered. actix-http's codec checks
    /// its size only once the whole frame has arrived.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Vec<Input>, String> {
        let mut out = Vec::new();
        loop {
            if let Some(announced) = announced_payload_len(buf) {
                let joined = self.partial.as_ref().map_or(0, |message| message.len() as u64);
                if announced.saturating_add(joined) > self.limit as u64 {
                    return Err(format!("a frame of {announced} bytes is over max_frame_bytes ({})", self.limit));
                }
            }
            let Some(frame) = self.codec.decode(buf).map_err(|e| e.to_string())? else { break };
            match frame {
                Frame::Text(bytes) | Frame::Binary(bytes) => {
                    if self.partial.is_some() {
                        return Err("a new message inside a fragmented one".into());
                    }
                    out.push(Input::Message(bytes));
                }
                Frame::Continuation(Item::FirstText(bytes) | Item::FirstBinary(bytes)) => {
                    if self.partial.is_some() {
                        return Err("a new fragmented message inside another".into());
                    }
                    self.partial = Some(BytesMut::from(&bytes[..]));
                }
                Frame::Continuation(Item::Continue(bytes)) => self.append(&bytes)?,
                Frame::Continuation(Item::Last(bytes)) => {
                    self.append(&bytes)?;
                    if let Some(message) = self.partial.take() {
                        out.push(Input::Message(message.freeze()));
                    }
                }
                Frame::Ping(payload) => out.push(Input::Ping(payload)),
                Frame::Pong(_) => {}
                Frame::Close(_) => {
                    out.push(Input::Close);
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Appends a continuation to the message being joined.
    fn append(&mut self, bytes: &[u8]) -> Result<(), String> {
        let Some(message) = self.partial.as_mut() else {
            return Err("a continuation without a first fragment".into());
        };
        if message.len() + bytes.len() > self.limit {
            return Err(format!("a fragmented message over {} bytes", self.limit));
        }
        message.put_slice(bytes);
        Ok(())
    }
}

/// The payload length a frame header at the start of `buf` announces (RFC
/// 6455 5.2: 7 bits, or 126 + 16 bits, or 127 + 64 bits), once enough of the
/// header has arrived to tell.
fn announced_payload_len(buf: &[u8]) -> Option<u64> {
    let short = u64::from(*buf.get(1)? & 0x7F);
    match short {
        126 => Some(u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]))),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            Some(u64::from_be_bytes(bytes))
        }
        _ => Some(short),
    }
}

/// Writes one unmasked frame: its header and `payload` in one vectored write
/// when the socket takes it (no copy of the payload).
async fn write_frame(io: &TcpStream, opcode: u8, payload: &[u8], timeout: Duration) -> io::Result<()> {
    let mut header = [0u8; 10];
    let header_len = frame_header(opcode, payload.len(), &mut header);
    match tokio::time::timeout(timeout, write_all(io, &header[..header_len], payload)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "the client takes nothing")),
    }
}

/// A final frame's header (FIN set, no mask) for `len` payload bytes; returns its length.
fn frame_header(opcode: u8, len: usize, header: &mut [u8; 10]) -> usize {
    header[0] = 0x80 | opcode;
    if len < 126 {
        header[1] = len as u8;
        2
    } else if len <= u16::MAX as usize {
        header[1] = 126;
        header[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        header[1] = 127;
        header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

async fn write_all(io: &TcpStream, mut head: &[u8], mut body: &[u8]) -> io::Result<()> {
    while !head.is_empty() || !body.is_empty() {
        let written = if head.is_empty() {
            io.try_write(body)
        } else {
            io.try_write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
        };
        match written {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(mut n) => {
                let from_head = n.min(head.len());
                head = &head[from_head..];
                n -= from_head;
                body = &body[n..];
            }
            // Wait for room only once the socket said it has none.
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => io.writable().await?,
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Decodes a message and hands its commands to the session. An undecodable
/// message closes the outbox with 3501; a session already gone has closed it
/// itself: either way the loop then ends on the outbox's close.
fn forward(
    outbox: &Outbox,
    session: &ActorRef<SessionMsg>,
    inflight: &Arc<Inflight>,
    frame: &[u8],
    encoding: Encoding,
    limit: usize,
) {
    match decode_frame::<Command>(encoding, frame, limit) {
        Ok(commands) => {
            let _ = session.cast(SessionMsg::Commands(commands, Some(inflight.start())));
        }
        Err(error) => {
            tracing::debug!(%error, "undecodable frame");
            outbox.close(codes::BAD_REQUEST_DISCONNECT);
        }
    }
}
