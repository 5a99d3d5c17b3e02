//! The WebSocket transport (`GET /connection/websocket`).
//!
//! Each connection gets an outbox, a session actor and one task on the actix
//! worker (`actix_ws::MessageStream` is not `Send`) that reads and writes:
//! - read: each text/binary frame is decoded (size-limited) into commands and
//!   handed to the session as one message; an undecodable frame closes the
//!   connection with 3501 "bad request". Reading pauses while the session has
//!   too many frames unprocessed, so a flooding client meets TCP backpressure
//!   instead of growing a mailbox.
//! - write: everything queued in the outbox goes out as one frame per wake-up;
//!   when the outbox closes, a close frame carries the disconnect code and
//!   reason, after what was queued before it.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use bytes::Bytes;
use protocol::codec::decode_frame;
use protocol::codes::{self, DisconnectCode};
use protocol::{Command, Encoding};
use ractor::ActorRef;

use crate::node::Node;
use crate::outbox::{Next, Outbox};
use crate::session::{SessionMsg, TransportKind};
use crate::transport::Inflight;

/// The subprotocol that selects Protobuf framing.
pub const PROTOBUF_SUBPROTOCOL: &str = "centrifuge-protobuf";

/// Frames handed to the session but not yet processed, before reading pauses.
const MAX_PENDING_FRAMES: usize = 64;

pub async fn handler(req: HttpRequest, body: web::Payload, node: web::Data<Arc<Node>>) -> actix_web::Result<HttpResponse> {
    let node = node.get_ref().clone();
    if node.is_shutting_down() {
        return Ok(HttpResponse::ServiceUnavailable().json(serde_json::json!({"error": {"code": 108, "message": "shutting down"}})));
    }
    let (response, ws, stream) = actix_ws::handle_with_protocols(&req, body, &[PROTOBUF_SUBPROTOCOL])?;
    let encoding = match response.headers().get(header::SEC_WEBSOCKET_PROTOCOL) {
        Some(value) if value == PROTOBUF_SUBPROTOCOL => Encoding::Protobuf,
        _ => Encoding::Json,
    };
    let outbox = Arc::new(Outbox::new(encoding, node.config.client_outbox_bytes));
    let session = node
        .spawn_session(outbox.clone(), TransportKind::WebSocket, None)
        .await
        .map_err(actix_web::error::ErrorServiceUnavailable)?;
    let max_frame = node.config.max_frame_bytes;
    let stream = stream.max_frame_size(max_frame).aggregate_continuations().max_continuation_size(max_frame);
    actix_web::rt::spawn(connection(node, outbox, session, ws, stream, encoding));
    Ok(response)
}

async fn connection(
    node: Arc<Node>,
    outbox: Arc<Outbox>,
    session: ActorRef<SessionMsg>,
    mut ws: actix_ws::Session,
    mut stream: actix_ws::AggregatedMessageStream,
    encoding: Encoding,
) {
    let mut builder = outbox.frame_builder();
    let inflight = Arc::new(Inflight::default());
    let limit = node.config.max_frame_bytes;
    let write_delay = node.config.write_delay;
    let close: Option<DisconnectCode> = loop {
        let room = inflight.count() < MAX_PENDING_FRAMES;
        tokio::select! {
            biased;
            next = outbox.next_after(&mut builder, write_delay) => match next {
                Next::Frame(frame) => {
                    if write(&mut ws, frame, encoding).await.is_err() {
                        break None;
                    }
                }
                Next::Close(code) => break Some(code),
            },
            message = stream.recv(), if room => match message {
                Some(Ok(AggregatedMessage::Text(text))) => forward(&outbox, &session, &inflight, text.as_bytes(), encoding, limit),
                Some(Ok(AggregatedMessage::Binary(bytes))) => forward(&outbox, &session, &inflight, &bytes, encoding, limit),
                Some(Ok(AggregatedMessage::Ping(payload))) => {
                    if ws.pong(&payload).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(AggregatedMessage::Pong(_))) => {}
                Some(Ok(AggregatedMessage::Close(_))) | None => break None,
                Some(Err(error)) => {
                    tracing::debug!(%error, "websocket protocol error");
                    outbox.close(codes::BAD_REQUEST_DISCONNECT);
                }
            },
            _ = inflight.drained(), if !room => {}
        }
    };
    let _ = session.cast(SessionMsg::TransportClosed);
    match close {
        Some(code) => {
            let reason = CloseReason { code: CloseCode::Other(code.code), description: Some(code.reason.to_string()) };
            let _ = ws.close(Some(reason)).await;
        }
        None => {
            let _ = ws.close(None).await;
        }
    }
}

/// Decodes a frame and hands its commands to the session. An undecodable
/// frame closes the outbox with 3501; a session already gone has closed it
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

async fn write(ws: &mut actix_ws::Session, frame: Bytes, encoding: Encoding) -> Result<(), actix_ws::Closed> {
    match encoding {
        // Our JSON encoder only writes UTF-8; should that ever fail, the frame
        // still goes out (as binary) rather than being lost.
        Encoding::Json => match bytestring::ByteString::try_from(frame.clone()) {
            Ok(text) => ws.text(text).await,
            Err(_) => ws.binary(frame).await,
        },
        Encoding::Protobuf => ws.binary(frame).await,
    }
}
