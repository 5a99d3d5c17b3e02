//! hub: a real-time messaging hub speaking the Centrifugo client protocol v2.
//!
//! The parts (see docs/ARCHITECTURE.md for the vocabulary, the direction of
//! dependencies and who waits on whom). Public, for the binary and the
//! integration tests: [`config`], [`auth`], [`metrics`], [`topic`] (the
//! publication and history types), [`node`], [`server`] and [`telemetry`]
//! (OpenTelemetry: trace context, the OTLP exporter). Private to the
//! crate:
//! - `channel`: channel names and their namespace options.
//! - `outbox`: the bounded per-session queue of encoded messages that every
//!   transport drains; a full outbox disconnects its session with 3008 "slow".
//! - `limits`: the size rules that keep every accepted publication and every
//!   reply deliverable to a client.
//! - `quota`: the admission limits: connections per node, user and client
//!   address, the command rate of one client (token bucket), their codes.
//! - `session`: one actor per client connection: the protocol state machine
//!   (connect, subscribe, publish, ...), heartbeats, expiry; the session
//!   registry and what sessions share.
//! - `engine`: the channel operations the server API and sessions share.
//! - `broker`: memory (one process) or AMQP (a cluster): where channels are
//!   sequenced, and what arrives from other nodes.
//! - `transport`: WebSocket, SSE, HTTP-stream, uni_sse: frames in, frames out.
//! - `api`: the server HTTP API (`POST /api/<method>`).
//! - `conn`: the accepted socket, giving the HTTP layer's own refusals the JSON shape.
//! - `cors`, `http_error`: origin policy, one JSON shape for every refusal.
//! - `request_id`: one id (`X-Request-ID`) and one `tracing` span per HTTP request.
//! - `assets`: the web files compiled into the binary: the demo at `/`, the API
//!   docs page at `/api/docs`.

mod api;
mod assets;
pub mod auth;
mod broker;
mod channel;
pub mod config;
mod conn;
mod cors;
mod engine;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod http_error;
mod limits;
pub mod metrics;
pub mod node;
mod outbox;
mod proxy;
mod quota;
mod request_id;
pub mod server;
mod session;
pub mod telemetry;
pub mod topic;
mod transport;

/// The names of the methods `POST /api/<name>` serves, `batch` included.
pub use api::method_names as api_method_names;

/// Version reported to clients in the connect reply and by `/api/info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
