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

/// The headers of a client's HTTP request that the proxies forward
/// (`[proxy.*] http_headers`); empty, without allocating, when none is configured.
fn forwarded_headers(
    ctx: &crate::session::SessionContext,
    headers: &actix_web::http::header::HeaderMap,
) -> std::sync::Arc<[(String, String)]> {
    ctx.proxies.forwarded(|name| {
        let values: Vec<&str> = headers.get_all(name).filter_map(|value| value.to_str().ok()).collect();
        // Repeated headers joined as HTTP allows (RFC 9110 §5.3); cookies with "; " (RFC 6265 §5.4).
        let separator = if name == "cookie" { "; " } else { ", " };
        (!values.is_empty()).then(|| values.join(separator))
    })
}
