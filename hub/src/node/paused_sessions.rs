//! Sessions of a node without any transport, on paused time: its timers (connect
//! deadline, pings, pong deadline) are checked to the millisecond without a
//! test sleeping in real time. The session is started through the same
//! `SessionContext` the transports use; the test reads its outbox.

use std::sync::Arc;
use std::time::Duration;

use protocol::codes;
use protocol::proto::{Command, ConnectRequest, Reply};
use protocol::Encoding;
use tokio::time::Instant;

use super::Node;
use crate::config::Config;
use crate::outbox::{Next, Outbox};
use crate::session::{unix_now, SessionMsg, TransportKind};

const PING: Duration = Duration::from_secs(25);
const PONG: Duration = Duration::from_secs(8);

async fn node() -> Arc<Node> {
    let config = Config { allow_anonymous: true, ping_interval: PING, pong_timeout: PONG, ..Config::default() };
    Node::start(config).await.expect("the node starts")
}

/// Starts a session and returns its outbox and actor.
async fn session(node: &Arc<Node>) -> (Arc<Outbox>, ractor::ActorRef<SessionMsg>) {
    let outbox = Arc::new(Outbox::for_client(Encoding::Json, 1 << 20));
    let actor = node
        .sessions
        .spawn(outbox.clone(), TransportKind::WebSocket, None, tracing::Span::none(), None, Default::default())
        .await
        .expect("a session starts");
    (outbox, actor)
}

fn connect(actor: &ractor::ActorRef<SessionMsg>) {
    let command = Command { id: 1, connect: Some(ConnectRequest::default()), ..Default::default() };
    actor.cast(SessionMsg::Commands(vec![command], None)).expect("the session takes commands");
}

/// The next thing the session writes: its replies, or its close.
async fn next(outbox: &Outbox) -> Result<Vec<Reply>, protocol::codes::DisconnectCode> {
    let mut builder = outbox.frame_builder();
    match outbox.next(&mut builder).await {
        Next::Frame(frame) => Ok(protocol::codec::decode_frame::<Reply>(Encoding::Json, &frame, usize::MAX)
            .expect("the session writes decodable replies")),
        Next::Close(code) => Err(code),
    }
}

#[tokio::test(start_paused = true)]
async fn no_connect_within_connect_timeout_is_stale() {
    let node = node().await;
    let started = Instant::now();
    let (outbox, _actor) = session(&node).await;
    assert_eq!(next(&outbox).await, Err(codes::STALE));
    assert_eq!(started.elapsed(), node.config.connect_timeout, "closed at the connect deadline, not before");
}

#[tokio::test(start_paused = true)]
async fn pings_every_interval_and_closes_without_pong_after_the_pong_timeout() {
    let node = node().await;
    let (outbox, actor) = session(&node).await;
    connect(&actor);
    let replies = next(&outbox).await.expect("the connect reply");
    let connected = replies[0].connect.as_ref().expect("a connect reply");
    assert_eq!((connected.ping, connected.pong), (25, true));

    // The first ping is jittered within the second half of the interval.
    let connected_at = Instant::now();
    assert_eq!(next(&outbox).await, Ok(vec![Reply::default()]), "a ping is an empty reply");
    let first = connected_at.elapsed();
    assert!(first >= PING / 2 && first <= PING, "first ping after {first:?}");

    // Answered: pings go on every interval, for as long as pongs come back.
    for _ in 0..5 {
        actor.cast(SessionMsg::Commands(vec![Command::default()], None)).expect("a pong");
        let before = Instant::now();
        assert_eq!(next(&outbox).await, Ok(vec![Reply::default()]));
        assert_eq!(before.elapsed(), PING, "the next ping one interval later");
    }

    // Unanswered: closed with 3012 exactly the pong timeout after the ping.
    let pinged = Instant::now();
    assert_eq!(next(&outbox).await, Err(codes::NO_PONG));
    assert_eq!(pinged.elapsed(), PONG);
    node.shutdown(Duration::from_secs(1)).await;
}

/// Stands in for a transport: drains `outbox` until its close, then tells the
/// session the transport is gone (as the WebSocket writer does after its
/// close frame); returns the close code.
fn transport(
    outbox: Arc<Outbox>,
    actor: ractor::ActorRef<SessionMsg>,
) -> tokio::task::JoinHandle<codes::DisconnectCode> {
    tokio::spawn(async move {
        loop {
            if let Err(code) = next(&outbox).await {
                let _ = actor.cast(SessionMsg::TransportClosed);
                return code;
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn shutdown_closes_every_session_with_3001_and_waits_for_them() {
    let node = node().await;
    let (outbox, actor) = session(&node).await;
    connect(&actor);
    let connected = transport(outbox, actor);
    let (idle_outbox, idle_actor) = session(&node).await;
    let idle = transport(idle_outbox, idle_actor);
    assert_eq!(node.live_session_count(), 2);
    let started = Instant::now();
    let left = node.shutdown(Duration::from_secs(5)).await;
    assert_eq!(left, 0, "both sessions ended before the deadline");
    assert!(started.elapsed() < Duration::from_secs(5), "no wait for the deadline once they ended");
    assert_eq!(connected.await.ok(), Some(codes::SHUTDOWN));
    assert_eq!(idle.await.ok(), Some(codes::SHUTDOWN));
    let late = Arc::new(Outbox::for_client(Encoding::Json, 1024));
    assert!(
        node.sessions
            .spawn(late, TransportKind::Sse, None, tracing::Span::none(), None, Default::default())
            .await
            .is_err(),
        "no new session while stopping"
    );
}

fn token_node_config() -> Config {
    Config {
        allow_anonymous: false,
        // No ping within these tests: only the token's expiry closes.
        ping_interval: Duration::from_secs(3600),
        pong_timeout: PONG,
        client_expired_close_delay: Duration::from_secs(25),
        token: crate::auth::TokenConfig { hmac_secret: Some("paused-secret".into()), ..Default::default() },
        ..Config::default()
    }
}

fn token(exp: u64) -> String {
    let claims =
        crate::auth::ConnectClaims { user: "alice".into(), expires_at: Some(exp), info: None, channels: vec![] };
    crate::auth::sign_connect_token("paused-secret", &claims).expect("the test token signs")
}

fn command(id: u32, command: Command) -> Command {
    Command { id, ..command }
}

/// A node requiring tokens and a session connecting with a token whose `exp`
/// is 10 s away; the session's outbox (its connect reply queued) and actor.
async fn connect_with_token_expiring_in_10s() -> (Arc<Node>, Arc<Outbox>, ractor::ActorRef<SessionMsg>) {
    let node = Node::start(token_node_config()).await.expect("the node starts");
    let (outbox, actor) = session(&node).await;
    let exp = unix_now() + 10;
    let connect =
        Command { connect: Some(ConnectRequest { token: token(exp), ..Default::default() }), ..Default::default() };
    actor.cast(SessionMsg::Commands(vec![command(1, connect)], None)).expect("the session takes commands");
    (node, outbox, actor)
}

#[tokio::test(start_paused = true)]
async fn an_expired_connection_is_honoured_for_the_grace_then_closed_with_3005() {
    let (_node, outbox, _actor) = connect_with_token_expiring_in_10s().await;
    let replies = next(&outbox).await.expect("the connect reply");
    let result = replies[0].connect.as_ref().expect("connected");
    assert!(result.expires && result.ttl <= 10 && result.ttl >= 9, "ttl counts to exp: {result:?}");
    let connected = Instant::now();
    assert_eq!(next(&outbox).await, Err(codes::EXPIRED_CONNECTION));
    let after = connected.elapsed();
    // exp is in whole seconds of the wall clock: the deadline is 34 to 35 s away.
    assert!(after > Duration::from_secs(34) && after <= Duration::from_secs(35), "closed after {after:?}");
}

#[tokio::test(start_paused = true)]
async fn a_refresh_within_the_grace_keeps_the_connection() {
    let (_node, outbox, actor) = connect_with_token_expiring_in_10s().await;
    next(&outbox).await.expect("the connect reply");
    // 20 s later: 10 s past exp, within the 25 s grace (the wall clock stands
    // still on paused time, so the new token's exp is 100 s from "now").
    tokio::time::sleep(Duration::from_secs(20)).await;
    let refresh = protocol::proto::RefreshRequest { token: token(unix_now() + 100) };
    let refresh = Command { refresh: Some(refresh), ..Default::default() };
    actor.cast(SessionMsg::Commands(vec![command(2, refresh)], None)).expect("the session takes commands");
    let replies = next(&outbox).await.expect("the refresh reply");
    assert!(replies[0].refresh.as_ref().is_some_and(|r| r.expires), "refreshed: {replies:?}");
    // The first token's deadline (35 s) passes without a close; the new one's (125 s) closes.
    let refreshed = Instant::now();
    assert_eq!(next(&outbox).await, Err(codes::EXPIRED_CONNECTION));
    let after = refreshed.elapsed();
    assert!(after > Duration::from_secs(124) && after <= Duration::from_secs(125), "closed after {after:?}");
}
