//! Transports: they turn bytes into commands for a session and drain the
//! session's outbox into frames. They do not interpret the protocol.
//!
//! - [`ws`]: WebSocket at `/connection/websocket` (JSON, or Protobuf with the
//!   `centrifuge-protobuf` subprotocol).
//! - [`http`]: SSE, HTTP-stream and the `/emulation` endpoint that carries the
//!   later commands of their sessions; [`stream`] is their response side.

pub mod http;
pub mod stream;
pub mod uni_sse;
pub mod ws;

pub use crate::session::Inflight;

/// The address of the client behind an HTTP request: the socket's peer, or
/// the trusted proxy's `client_ip_header` when configured (`crate::quota`).
fn client_ip(ctx: &crate::session::SessionContext, req: &actix_web::HttpRequest) -> Option<std::net::IpAddr> {
    crate::quota::client_ip(req.headers(), req.peer_addr(), ctx.config.client_ip_header.as_deref())
}
