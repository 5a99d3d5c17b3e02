//! `spawn_hub()` and what the tests share: configurations, tokens, publishing,
//! polling with a deadline.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hub::auth::{self, ConnectClaims, SubscribeClaims};
use hub::config::{ChannelOptions, Config, TokenConfig};
use hub::node::Node;
use hub::server::{self, ServerHandle};
use hub::topic::{Position, PublishArgs};
use protocol::proto::ConnectResult;
use protocol::Encoding;

use crate::ws_client::WsClient;

/// How long any single wait of a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The HMAC secret of [`token_config`].
pub const SECRET: &str = "integration-test-secret";

/// A hub running on 127.0.0.1 with an ephemeral port.
pub struct TestHub {
    pub addr: SocketAddr,
    pub node: Arc<Node>,
    handle: ServerHandle,
}

/// Starts a hub with `config`, listening on 127.0.0.1:0.
pub async fn spawn_hub(config: Config) -> TestHub {
    init_tracing();
    let config = Config { listen: SocketAddr::from(([127, 0, 0, 1], 0)), ..config };
    let handle = server::start(config).await.expect("the hub starts");
    TestHub { addr: handle.addr, node: handle.node.clone(), handle }
}

/// Logs go to the test output when `RUST_LOG` is set (e.g. `RUST_LOG=hub=debug`).
fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

impl TestHub {
    /// Graceful shutdown (clients get 3001 "shutdown"); fails the test if it errs.
    pub async fn shutdown(self) {
        tokio::time::timeout(WAIT * 2, self.handle.shutdown())
            .await
            .expect("timed out waiting for the hub to shut down")
            .expect("the hub shuts down cleanly");
    }

    /// A new WebSocket connection, not yet connected at the protocol level.
    pub async fn open(&self, encoding: Encoding) -> WsClient {
        WsClient::open(self.addr, encoding).await
    }

    /// A new connection that sent an anonymous connect command.
    pub async fn connect(&self, encoding: Encoding) -> (WsClient, ConnectResult) {
        let mut client = self.open(encoding).await;
        let result = client.connect("").await.expect("anonymous connect succeeds");
        (client, result)
    }

    /// A new connection that connected with `token`.
    pub async fn connect_with_token(&self, encoding: Encoding, token: &str) -> (WsClient, ConnectResult) {
        let mut client = self.open(encoding).await;
        let result = client.connect(token).await.unwrap_or_else(|e| panic!("connect with token refused: {e:?}"));
        (client, result)
    }

    /// Publishes `data` into `channel` through the node (as the server API does).
    pub async fn publish(&self, channel: &str, data: impl Into<Bytes>) -> Position {
        let args = PublishArgs { data: data.into(), ..Default::default() };
        self.node.publish(channel, args).await.unwrap_or_else(|e| panic!("publish into {channel} failed: {e:?}"))
    }

    /// Waits until no session actor is alive and no client is registered: every
    /// connection that went away took its actor and registrations with it.
    pub async fn assert_no_sessions(&self) {
        let node = self.node.clone();
        wait_until("every session actor to stop (live_session_count == 0, client_count == 0)", || {
            node.live_session_count() == 0 && node.client_count() == 0
        })
        .await;
    }
}

/// Polls `condition` every 10 ms until it holds; fails the test after [`WAIT`]
/// with a message naming what it waited for.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out after {WAIT:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls the async `probe` every 10 ms until it yields `want`; fails the test
/// after [`WAIT`] with the last value seen. For state that follows an event
/// asynchronously (a departed session leaves its channels by a message).
pub async fn eventually<T, F>(what: &str, want: T, mut probe: impl FnMut() -> F)
where
    T: PartialEq + std::fmt::Debug,
    F: std::future::Future<Output = T>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        let got = probe().await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "timed out after {WAIT:?} waiting for {what}: want {want:?}, last {got:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Channel options with everything on: history 100 for 300 s, presence,
/// join/leave, client publish and subscribe.
pub fn open_options() -> ChannelOptions {
    ChannelOptions {
        history_size: 100,
        history_ttl: Duration::from_secs(300),
        presence: true,
        join_leave: true,
        allow_publish: true,
        allow_subscribe: true,
        force_recovery: false,
        allow_user_limited_channels: false,
        allow_tags_filter: false,
        subscribe_proxy: false,
        publish_proxy: false,
        allowed_delta_types: Vec::new(),
        delta_publish: false,
    }
}

/// Anonymous connect allowed. Channels:
/// - `chat:*`: [`open_options`];
/// - without namespace (`news`): the same without join/leave pushes;
/// - `plain:*`: clients may subscribe, nothing else (no history, presence, publish);
/// - `private:*`: like `chat` but subscribing needs a token.
pub fn test_config() -> Config {
    let mut namespaces = BTreeMap::new();
    namespaces.insert("chat".to_string(), open_options());
    namespaces.insert("plain".to_string(), ChannelOptions { allow_subscribe: true, ..ChannelOptions::default() });
    namespaces.insert("private".to_string(), ChannelOptions { allow_subscribe: false, ..open_options() });
    Config {
        allow_anonymous: true,
        channel: ChannelOptions { join_leave: false, ..open_options() },
        namespaces,
        shutdown_timeout: Duration::from_secs(5),
        ..Config::default()
    }
}

/// [`test_config`] with tokens required: HS256 with [`SECRET`], no anonymous connect.
pub fn token_config() -> Config {
    Config {
        allow_anonymous: false,
        token: TokenConfig { hmac_secret: Some(SECRET.to_string()), ..TokenConfig::default() },
        ..test_config()
    }
}

/// An HS256 connection token signed with `secret`.
pub fn connect_token_with(
    secret: &str,
    user: &str,
    info: Option<&str>,
    channels: &[&str],
    expires_at: Option<u64>,
) -> String {
    let claims = ConnectClaims {
        user: user.to_string(),
        expires_at,
        info: info.map(|i| Bytes::copy_from_slice(i.as_bytes())),
        channels: channels.iter().map(|c| c.to_string()).collect(),
    };
    auth::sign_connect_token(secret, &claims).expect("the test token signs")
}

/// A connection token for `user`, valid for an hour, signed with [`SECRET`].
pub fn connect_token(user: &str, info: Option<&str>) -> String {
    connect_token_with(SECRET, user, info, &[], Some(auth::expires_in(Duration::from_secs(3600))))
}

/// A subscription token for `user` on `channel`, signed with [`SECRET`].
pub fn subscribe_token(user: &str, channel: &str, info: Option<&str>) -> String {
    let claims = SubscribeClaims {
        user: user.to_string(),
        channel: channel.to_string(),
        expires_at: Some(auth::expires_in(Duration::from_secs(3600))),
        info: info.map(|i| Bytes::copy_from_slice(i.as_bytes())),
    };
    auth::sign_subscribe_token(SECRET, &claims).expect("the test token signs")
}

/// JSON publication data `{"n":<n>}`, the payload most tests publish.
pub fn data(n: usize) -> Bytes {
    Bytes::from(format!(r#"{{"n":{n}}}"#))
}

/// Sends `request` (a raw HTTP/1.1 request) on a new connection and reads
/// until the hub closes it; returns the whole response as text.
pub async fn raw_response(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the hub");
        stream.write_all(request.as_bytes()).await.expect("send the request");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.expect("read the response");
        String::from_utf8(response).expect("a UTF-8 response")
    };
    tokio::time::timeout(WAIT, exchange).await.expect("the response within WAIT")
}

/// Like [`raw_response`]; returns the status code and the body.
pub async fn raw_request(addr: SocketAddr, request: &str) -> (u16, String) {
    let response = raw_response(addr, request).await;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {response:?}"));
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    (status, body)
}
