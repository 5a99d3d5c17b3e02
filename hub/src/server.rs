//! Assembles the HTTP application, runs it, and shuts it down gracefully.
//!
//! Shutdown order: stop taking new connections, tell every client 3001
//! "shutdown" (queued messages are flushed first), wait for the sessions to
//! end (bounded by `shutdown_timeout`), then stop the HTTP server and return.

use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use actix_http::HttpService;
use actix_service::{fn_service, map_config, IntoServiceFactory, ServiceFactoryExt};
use actix_web::dev::AppConfig;
use actix_web::{web, App, HttpResponse};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::node::Node;
use crate::{api, assets, transport};

/// A running hub (for `main` and the tests).
pub struct ServerHandle {
    pub addr: SocketAddr,
    pub node: Arc<Node>,
    server: actix_server::ServerHandle,
    /// Cancelled when shutdown starts: idle kept-alive HTTP connections close
    /// at once, busy ones after their current response.
    draining: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ServerHandle {
    /// Graceful shutdown: clients get 3001, sessions drain, the server stops.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let timeout = self.node.config.shutdown_timeout;
        self.draining.cancel();
        let left = self.node.shutdown(timeout).await;
        if left > 0 {
            tracing::warn!(sessions = left, "shutdown timeout: sessions still open");
        }
        self.server.stop(true).await;
        self.task.await??;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The routes of the hub.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route(transport::ws::PATH, web::get().to(transport::ws::not_a_handshake))
        .route("/connection/sse", web::get().to(transport::http::sse_get))
        .route("/connection/sse", web::post().to(transport::http::sse_post))
        .route("/connection/http_stream", web::post().to(transport::http::http_stream))
        .route("/emulation", web::post().to(transport::http::emulation))
        .route("/connection/uni_sse", web::get().to(transport::uni_sse::handler))
        // Before the API's routes: /api/docs is a page, not a method.
        .configure(assets::docs_routes)
        .configure(api::routes)
        .route("/health", web::get().to(|| async { HttpResponse::Ok().json(serde_json::json!({"status": "ok"})) }))
        .route("/ready", web::get().to(ready))
        .route("/metrics", web::get().to(metrics));
}

/// Readiness, where `/health` is liveness: 200 `{"status":"ready"}` while the
/// node takes traffic, 503 with error 108 and the reason while it does not
/// (shutting down, or a cluster node's broker connection down).
async fn ready(node: web::Data<Arc<Node>>) -> HttpResponse {
    match node.readiness() {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Err(reason) => crate::http_error::response(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            protocol::codes::NOT_AVAILABLE.code,
            reason,
        ),
    }
}

/// Prometheus metrics of this node, when `prometheus = true`.
async fn metrics(node: web::Data<Arc<Node>>) -> HttpResponse {
    if !node.config.prometheus {
        return crate::http_error::response(
            actix_web::http::StatusCode::NOT_FOUND,
            protocol::codes::NOT_AVAILABLE.code,
            "metrics are off: set prometheus = true (HUB_PROMETHEUS=true)",
        );
    }
    HttpResponse::Ok().content_type(crate::metrics::CONTENT_TYPE).body(crate::metrics::exposition(
        &node.metrics,
        &node.local_info(),
        node.cluster_size(),
    ))
}

/// Binds and starts serving; returns once the socket listens.
pub async fn start(config: Config) -> anyhow::Result<ServerHandle> {
    let listen = config.listen;
    let shutdown_secs = config.shutdown_timeout.as_secs().max(1);
    // Bounds every POST body read as `Bytes` (the HTTP transports and /emulation).
    let payload_limit = config.transport_body_limit();
    let node = Node::start(config).await?;
    let data = web::Data::new(node.clone());
    let sessions = web::Data::new(node.sessions.clone());
    let origins = web::Data::new(crate::cors::AllowedOrigins(node.config.allowed_origins.clone()));
    let refusals = web::Data::new(crate::http_error::RefusalPolicy {
        stopping: node.stopping(),
        transport_body_limit: node.config.transport_body_limit(),
    });
    let site = Site::of(&node.config);
    if !assets::api_docs_built() {
        tracing::warn!("built without the API docs page: /api/docs answers 404 (scripts/build-assets.sh)");
    }
    // actix-web's HttpServer, assembled from its parts so that the HTTP/1
    // service gets an upgrade hook: WebSocket handshakes go to transport::ws,
    // which keeps the socket (see there). Everything else is the App as usual.
    let listener = listener(listen).map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let upgrade_sessions = node.sessions.clone();
    let draining = CancellationToken::new();
    let draining_signal = draining.clone();
    let server = actix_server::Server::build()
        .disable_signals()
        .shutdown_timeout(shutdown_secs)
        .listen("hub", listener, move || {
            let app = App::new()
                .app_data(data.clone())
                .app_data(sessions.clone())
                .app_data(origins.clone())
                .app_data(refusals.clone())
                .app_data(web::PayloadConfig::new(payload_limit))
                // The CORS protocol (actix-cors) inside the origin policy (ours).
                .wrap(crate::cors::protocol())
                .wrap(actix_web::middleware::from_fn(crate::cors::guard))
                // The JSON shape of every refusal, 503 while stopping.
                .wrap(actix_web::middleware::from_fn(crate::http_error::middleware))
                // Outermost: every request in its span, every answer with its id.
                .wrap(actix_web::middleware::from_fn(crate::request_id::middleware))
                .configure(routes);
            let app = match &site {
                Site::Dir(dir) => app.service(actix_files::Files::new("/", dir).index_file("index.html")),
                Site::Demo => app.configure(assets::demo_routes),
                Site::Nothing => app,
            };
            let http = HttpService::build()
                // A client that closes its side is gone: end the request at once,
                // so an SSE or HTTP-stream body is dropped and its session ends
                // within moments of the close instead of at the next missed pong
                // (Go's net/http, which Centrifugo uses, cancels the request
                // context the same way).
                .h1_allow_half_closed(false)
                // What actix-web's HttpServer wires to its graceful stop: a
                // kept-alive connection closes once shutdown starts, so an idle
                // API client does not hold the process until keep-alive ends.
                .graceful_shutdown_signal({
                    let draining = draining_signal.clone();
                    move || {
                        let draining = draining.clone();
                        async move { draining.cancelled().await }
                    }
                })
                .client_disconnect_timeout(Duration::from_secs(1))
                .local_addr(addr)
                .upgrade(transport::ws::upgrade_factory(upgrade_sessions.clone()))
                .finish(map_config(app.into_factory(), move |_| AppConfig::default()));
            // What HttpService::tcp does, with the socket wrapped so that the
            // dispatcher's own refusals get the JSON shape (see `conn`).
            fn_service(|io: actix_web::rt::net::TcpStream| async move {
                // The hub batches its own writes: Nagle would hold a reply
                // followed by a push until the client's delayed ACK (~40 ms).
                if let Err(error) = io.set_nodelay(true) {
                    tracing::debug!(%error, "cannot set TCP_NODELAY");
                }
                let peer = io.peer_addr().ok();
                Ok((crate::conn::Conn::new(io), actix_http::Protocol::Http1, peer))
            })
            .and_then(http)
        })
        .map_err(|e| anyhow::anyhow!("cannot serve on {listen}: {e}"))?;
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    tracing::info!(node = %node.name(), "listening on http://{addr}");
    Ok(ServerHandle { addr, node, server: handle, draining, task })
}

/// What the hub serves at `/` (on paths no other route takes).
#[derive(Clone)]
enum Site {
    /// `static_dir`, when set and it has an `index.html`.
    Dir(std::path::PathBuf),
    /// The demo compiled into the binary: `demo = true` and no `static_dir`.
    Demo,
    /// Nothing: such paths answer 404.
    Nothing,
}

impl Site {
    fn of(config: &Config) -> Site {
        match (&config.static_dir, config.demo) {
            (Some(dir), _) if dir.join("index.html").is_file() => {
                tracing::info!(dir = %dir.display(), "serving static_dir at /");
                Site::Dir(dir.clone())
            }
            (Some(dir), _) => {
                tracing::warn!(dir = %dir.display(), "static_dir has no index.html; nothing served at /");
                Site::Nothing
            }
            (None, true) => {
                tracing::info!("serving the demo compiled into the binary at /");
                Site::Demo
            }
            (None, false) => Site::Nothing,
        }
    }
}

/// A listening socket as actix-web makes it: address reuse, backlog 1024.
fn listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)?.into_std()
}

/// Serves until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let handle = start(config).await?;
    wait_for_signal().await;
    tracing::info!("shutting down");
    handle.shutdown().await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
