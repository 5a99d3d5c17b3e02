//! hub: a real-time messaging hub speaking the Centrifugo client protocol v2.
//!
//! The parts (see docs/ARCHITECTURE.md for the vocabulary and who waits on whom):
//! - [`config`], [`auth`]: configuration layering and JWT verification.
//! - [`channel`]: channel names and their namespace options.
//! - [`outbox`]: the bounded per-session queue of encoded messages that every
//!   transport drains; a full outbox disconnects its session with 3008 "slow".
//! - [`limits`]: the size rules that keep every accepted publication and every
//!   reply deliverable to a client.
//! - [`session`]: one actor per client connection: the protocol state machine
//!   (connect, subscribe, publish, ...), heartbeats, expiry.
//! - [`topic`]: one actor per channel: subscribers, fan-out, history, presence,
//!   recovery; and the supervisor that restarts a failed channel.
//! - [`engine`]: the channel operations the server API and sessions share.
//! - [`node`]: the process-wide state the others share: registries of sessions,
//!   users and topics, metrics, and the operations of the server API.
//! - [`transport`]: WebSocket (and later SSE/HTTP-stream): frames in, frames out.
//! - [`api`]: the server HTTP API (`POST /api/<method>`).
//! - [`http_error`]: one JSON shape for every HTTP refusal.
//! - [`request_id`]: one id (`X-Request-ID`) and one `tracing` span per HTTP request.
//! - [`server`]: assembles the HTTP app, runs it, shuts it down gracefully.

pub mod api;
pub mod auth;
pub mod broker;
pub mod channel;
pub mod config;
pub mod cors;
pub mod engine;
pub mod http_error;
pub mod limits;
pub mod metrics;
pub mod node;
pub mod outbox;
pub mod request_id;
pub mod server;
pub mod session;
pub mod topic;
pub mod transport;

/// Version reported to clients in the connect reply and by `/api/info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
