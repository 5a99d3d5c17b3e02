//! A session without any transport, on paused time: its timers (connect
//! deadline, pings, pong deadline) are checked to the millisecond without a
//! test sleeping in real time. The session is started through the same
//! `SessionContext` the transports use; the test reads its outbox.

use std::sync::Arc;
use std::time::Duration;

use protocol::codes;
use protocol::proto::{Command, ConnectRequest, Reply};
use protocol::Encoding;
use tokio::time::Instant;

use super::{SessionMsg, TransportKind};
use crate::config::Config;
use crate::node::Node;
use crate::outbox::{Next, Outbox};

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
        .spawn(outbox.clone(), TransportKind::WebSocket, None, tracing::Span::none())
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
        node.sessions.spawn(late, TransportKind::Sse, None, tracing::Span::none()).await.is_err(),
        "no new session while stopping"
    );
}
