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
