//! The hub's integration tests: one binary, a real hub on port 0 per test,
//! driven by a WebSocket client built on the `protocol` crate.
//!
//! - [`helpers`]: `spawn_hub()`, the test configurations, tokens, polling.
//! - [`ws_client`]: the test client (JSON or Protobuf, several commands per
//!   frame, replies and pushes split out of frames, every wait bounded).
//! - the test modules, one per concern: wire protocol round trips and errors
//!   (`protocol_tests`), recovery and topic failure (`recovery`), ordering at
//!   the edges of a subscription (`ordering`), slow consumers (`slow`),
//!   heartbeats (`heartbeat`), tokens (`tokens`), server-side operations
//!   (`server_side`), Fossil delta compression (`delta`), user-limited and personal channels (`user_channels`), tags filters (`tags_filter`), shutdown and session leaks (`shutdown`), topic
//!   retirement (`topics`), request ids and log spans (`logging`), readiness
//!   (`readiness`), OpenTelemetry export and trace propagation (`otel`), the web
//!   files compiled into the binary (`assets`), connection and command limits
//!   (`quota`), tokens verified with keys from a JWKS endpoint (`jwks`), a
//!   Centrifugo v6 config file served as is (`centrifugo_config`).
//!
//! Tests run on a multi-thread runtime: topic actors run on the runtime that
//! starts the hub, sessions on the HTTP server's workers.

/// Runs `async fn $name(encoding)` once per encoding: `$name::json` and `$name::protobuf`.
macro_rules! both_encodings {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn json() {
                super::$name(protocol::Encoding::Json).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn protobuf() {
                super::$name(protocol::Encoding::Protobuf).await
            }
        }
    )*};
}

mod helpers;
mod ws_client;

mod api_live;
mod assets;
mod centrifugo_config;
mod cors;
mod delta;
mod heartbeat;
mod http_transports;
mod jwks;
mod limits;
mod logging;
mod metrics;
mod openapi;
mod ordering;
mod otel;
mod protocol_tests;
mod proxies;
mod proxy;
mod quota;
mod readiness;
mod recovery;
mod server_side;
mod shutdown;
mod slow;
mod tags_filter;
mod tokens;
mod topics;
mod user_channels;
mod websocket;
