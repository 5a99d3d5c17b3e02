//! The HTTP transports for networks that block WebSocket:
//!
//! - `GET /connection/sse?cf_connect=<connect command JSON>` (or `POST` with the
//!   command as body): a `text/event-stream` of replies, one `data:` event per
//!   message. JSON only.
//! - `POST /connection/http_stream` with the connect command as body (JSON, or
//!   Protobuf with `Content-Type: application/octet-stream`): a streamed body of
//!   replies framed as on WebSocket (newline-terminated JSON, or
//!   varint-delimited Protobuf).
//! - `POST /emulation` with `{node, session, data}` (JSON, or a Protobuf
//!   `EmulationRequest`): the later commands of such a session. 204 when the
//!   session took them, 404 for an unknown node or session, 400 for a bad body.
//!
//! The connect reply of these transports carries `session` (a secret id, not
//! the client id that presence shows) and `node`, which the SDK sends back with
//! every emulation request. The session actor is the same as for WebSocket:
//! these handlers only frame and write.

use std::sync::Arc;

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use bytes::Bytes;
use protocol::codec::decode_frame;
use protocol::{Command, Encoding};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::stream::{self, Framing};
use super::{client_ip, Inflight};
use crate::outbox::Outbox;
use crate::session::{connection_span, EmulationError, SessionContext, SessionMsg, TransportKind};

/// Errors of the HTTP transports, each an HTTP status with a JSON body.
#[derive(Debug, thiserror::Error)]
pub enum HttpTransportError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unknown node")]
    UnknownNode,
    #[error("session not found")]
    UnknownSession,
    #[error("session busy, retry")]
    Busy,
    #[error("shutting down")]
    Unavailable,
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The token's keys could not be had now (JWKS unreachable): retry later.
    #[error("{0}")]
    KeysUnavailable(String),
    /// A per-client limit (e.g. `max_channels_per_client`) the request would pass.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
}

impl ResponseError for HttpTransportError {
    fn status_code(&self) -> StatusCode {
        match self {
            HttpTransportError::BadRequest(_) | HttpTransportError::LimitExceeded(_) => StatusCode::BAD_REQUEST,
            HttpTransportError::UnknownNode | HttpTransportError::UnknownSession => StatusCode::NOT_FOUND,
            HttpTransportError::Busy | HttpTransportError::Unavailable | HttpTransportError::KeysUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            HttpTransportError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let code = match self {
            HttpTransportError::BadRequest(_) => 107,
            HttpTransportError::UnknownNode | HttpTransportError::UnknownSession => 102,
            HttpTransportError::Busy => 111,
            HttpTransportError::Unavailable => 108,
            HttpTransportError::Unauthorized(_) => 101,
            HttpTransportError::KeysUnavailable(_) => 100,
            HttpTransportError::LimitExceeded(_) => 106,
        };
        crate::http_error::response(self.status_code(), code, self)
    }
}

#[derive(Deserialize)]
pub struct SseQuery {
    cf_connect: Option<String>,
}

/// `GET /connection/sse`.
pub async fn sse_get(
    req: HttpRequest,
    query: web::Query<SseQuery>,
    ctx: web::Data<Arc<SessionContext>>,
) -> Result<HttpResponse, HttpTransportError> {
    let connect =
        query.cf_connect.as_deref().ok_or_else(|| HttpTransportError::BadRequest("cf_connect is required".into()))?;
    let peer = (client_ip(&ctx, &req), super::forwarded_headers(&ctx, req.headers()));
    start(ctx.get_ref().clone(), connect.as_bytes(), Framing::EventStream, TransportKind::Sse, peer).await
}

/// `POST /connection/sse` (the connect command as body).
pub async fn sse_post(
    req: HttpRequest,
    body: Bytes,
    ctx: web::Data<Arc<SessionContext>>,
) -> Result<HttpResponse, HttpTransportError> {
    let peer = (client_ip(&ctx, &req), super::forwarded_headers(&ctx, req.headers()));
    start(ctx.get_ref().clone(), &body, Framing::EventStream, TransportKind::Sse, peer).await
}

/// `POST /connection/http_stream`.
pub async fn http_stream(
    req: HttpRequest,
    body: Bytes,
    ctx: web::Data<Arc<SessionContext>>,
) -> Result<HttpResponse, HttpTransportError> {
    let framing = if is_protobuf(&req) { Framing::Protobuf } else { Framing::JsonLines };
    let peer = (client_ip(&ctx, &req), super::forwarded_headers(&ctx, req.headers()));
    start(ctx.get_ref().clone(), &body, framing, TransportKind::HttpStream, peer).await
}

fn is_protobuf(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/octet-stream") || v.starts_with("application/x-protobuf"))
}

async fn start(
    ctx: Arc<SessionContext>,
    connect: &[u8],
    framing: Framing,
    kind: TransportKind,
    (ip, headers): (Option<std::net::IpAddr>, std::sync::Arc<[(String, String)]>),
) -> Result<HttpResponse, HttpTransportError> {
    if ctx.is_shutting_down() {
        return Err(HttpTransportError::Unavailable);
    }
    let encoding = framing.encoding();
    let commands = decode_frame::<Command>(encoding, connect, ctx.config.max_frame_bytes)
        .map_err(|e| HttpTransportError::BadRequest(e.to_string()))?;
    if commands.first().is_none_or(|c| c.connect.is_none() || c.id == 0) {
        return Err(HttpTransportError::BadRequest("the first command must be connect, with an id".into()));
    }
    let outbox = Arc::new(Outbox::for_client(encoding, ctx.config.client_outbox_bytes));
    let inflight = Arc::new(Inflight::default());
    let session_id: Arc<str> = Arc::from(uuid::Uuid::new_v4().simple().to_string());
    let session = ctx
        .spawn(outbox.clone(), kind, Some((session_id, inflight.clone())), connection_span(kind), ip, headers)
        .await
        .map_err(|_| HttpTransportError::Unavailable)?;
    let _ = session.cast(SessionMsg::Commands(commands, Some(inflight.start())));
    let body = stream::body(ctx.config.write_delay, outbox, session, framing);
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CACHE_CONTROL, "no-cache")).insert_header(("X-Accel-Buffering", "no"));
    match framing {
        Framing::EventStream => response.insert_header((header::CONTENT_TYPE, "text/event-stream")),
        Framing::JsonLines => response.insert_header(ContentType::json()),
        Framing::Protobuf => response.insert_header(ContentType::octet_stream()),
    };
    Ok(response.streaming(body))
}

#[derive(Deserialize)]
struct JsonEmulationRequest {
    #[serde(default)]
    node: String,
    session: String,
    data: Box<RawValue>,
}

/// `POST /emulation`.
pub async fn emulation(
    req: HttpRequest,
    body: Bytes,
    ctx: web::Data<Arc<SessionContext>>,
) -> Result<HttpResponse, HttpTransportError> {
    let (target_node, session_id, data, encoding) = if is_protobuf(&req) {
        let request = <protocol::proto::EmulationRequest as protocol::prost::Message>::decode(body.as_ref())
            .map_err(|e| HttpTransportError::BadRequest(e.to_string()))?;
        (request.node, request.session, request.data, Encoding::Protobuf)
    } else {
        let request: JsonEmulationRequest =
            serde_json::from_slice(&body).map_err(|e| HttpTransportError::BadRequest(e.to_string()))?;
        // The SDK sends the encoded commands as a JSON string; a raw JSON value
        // (an object) is accepted too.
        let raw = request.data.get();
        let data = if raw.starts_with('"') {
            let text: String = serde_json::from_str(raw).map_err(|e| HttpTransportError::BadRequest(e.to_string()))?;
            Bytes::from(text)
        } else {
            Bytes::copy_from_slice(raw.as_bytes())
        };
        (request.node, request.session, data, Encoding::Json)
    };
    if !target_node.is_empty() && target_node != ctx.name() {
        // The session lives on another node: hand the commands over there,
        // once they decode here (a local session's are decoded by `emulate`).
        decode_frame::<Command>(encoding, &data, ctx.config.max_frame_bytes)
            .map_err(|e| HttpTransportError::BadRequest(e.to_string()))?;
        if !ctx.engine.broker.is_cluster() {
            return Err(HttpTransportError::UnknownNode);
        }
        let found = ctx
            .engine
            .broker
            .forward_emulation(&target_node, &session_id, data.to_vec(), encoding == Encoding::Protobuf)
            .await
            .map_err(|_| HttpTransportError::Busy)?;
        return if found { Ok(HttpResponse::NoContent().finish()) } else { Err(HttpTransportError::UnknownSession) };
    }
    match ctx.registry.emulate(&session_id, encoding, &data, ctx.config.max_frame_bytes).await {
        Ok(()) => Ok(HttpResponse::NoContent().finish()),
        Err(EmulationError::UnknownSession) => Err(HttpTransportError::UnknownSession),
        Err(EmulationError::Busy) => Err(HttpTransportError::Busy),
        Err(error @ (EmulationError::WrongEncoding | EmulationError::BadFrame(_))) => {
            Err(HttpTransportError::BadRequest(error.to_string()))
        }
    }
}
