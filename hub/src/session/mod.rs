//! Sessions: one actor per client connection.
//!
//! A session is the protocol state machine of one client: connect and
//! authentication, its subscriptions, heartbeats (server ping, pong deadline),
//! token expiry, and server-side subscribe/unsubscribe/disconnect. Transports
//! hand it decoded commands ([`SessionMsg::Commands`]) and drain its
//! [`Outbox`]; it writes replies into the outbox, while topics write pushes
//! there directly.
//!
//! Waiting: a session awaits topics (subscribe, publish, queries); a topic
//! never awaits a session. Commands of one connection are handled strictly in
//! order. A session ends by closing its outbox with a disconnect code and
//! stopping; dropping its state (on a normal stop or a failure alike)
//! unregisters it and removes it from every channel, so a failing session
//! never leaves a channel with a dead subscriber.

mod commands;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use protocol::codec;
use protocol::codes::{self, DisconnectCode};
use protocol::proto::{Command, Reply};
use rand::Rng;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::channel::Channel;
use crate::metrics::Metrics;
use crate::node::Node;
use crate::outbox::Outbox;
use crate::topic::TopicMsg;
use crate::transport::InflightGuard;

/// Messages to a session actor.
pub enum SessionMsg {
    /// Commands decoded from one transport frame, in order; the guard tells the
    /// transport when the frame is done.
    Commands(Vec<Command>, Option<InflightGuard>),
    /// The transport is gone (client closed, network error, writer done).
    TransportClosed,
    /// Close the connection with this code (server API, shutdown).
    Disconnect(DisconnectCode),
    /// Subscribe server-side (server API `subscribe`).
    ServerSubscribe(Channel),
    /// Unsubscribe server-side (server API `unsubscribe`): code 2000.
    ServerUnsubscribe(Channel),
    /// The channel's topic failed and lost this subscriber: code 2500.
    TopicLost(Channel),
    /// Heartbeat: time to send a ping.
    Ping,
    /// Heartbeat: the pong for ping number `n` is due.
    PongDue(u64),
    /// No connect command arrived in time.
    ConnectDue,
    /// The connection token may have expired.
    ExpiryDue,
    /// A subscription token may have expired.
    SubExpiryDue(Channel),
}

/// Which transport carries the session (reported in logs and connect replies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    WebSocket,
    Sse,
    HttpStream,
    /// One-way SSE for plain `EventSource` clients: no commands after
    /// connect, so pings expect no pong.
    UniSse,
}

pub struct SessionArgs {
    pub node: Arc<Node>,
    pub outbox: Arc<Outbox>,
    pub transport: TransportKind,
    /// The secret session id of an HTTP-transport session (for `/emulation`).
    pub emulation_id: Option<Arc<str>>,
}

/// One subscription of the session.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub server_side: bool,
    pub expires_at: Option<u64>,
    pub chan_info: Bytes,
}

pub struct Session {
    node: Arc<Node>,
    outbox: Arc<Outbox>,
    myself: ActorRef<SessionMsg>,
    transport: TransportKind,
    emulation_id: Option<Arc<str>>,
    /// Set once connected.
    client: Option<Arc<str>>,
    user: Arc<str>,
    conn_info: Bytes,
    expires_at: Option<u64>,
    subs: HashMap<Channel, Subscription>,
    ping_count: u64,
    pong_pending: bool,
    closed: bool,
}

pub struct SessionActor;

impl Actor for SessionActor {
    type Msg = SessionMsg;
    type State = Session;
    type Arguments = SessionArgs;

    async fn pre_start(&self, myself: ActorRef<SessionMsg>, args: SessionArgs) -> Result<Session, ActorProcessingErr> {
        myself.send_after(args.node.config.connect_timeout, || SessionMsg::ConnectDue);
        Ok(Session {
            node: args.node,
            outbox: args.outbox,
            myself,
            transport: args.transport,
            emulation_id: args.emulation_id,
            client: None,
            user: Arc::from(""),
            conn_info: Bytes::new(),
            expires_at: None,
            subs: HashMap::new(),
            ping_count: 0,
            pong_pending: false,
            closed: false,
        })
    }

    async fn handle(&self, _: ActorRef<SessionMsg>, message: SessionMsg, session: &mut Session) -> Result<(), ActorProcessingErr> {
        if session.closed {
            return Ok(());
        }
        match message {
            SessionMsg::Commands(commands, _done) => {
                session.pong_pending = false;
                for command in commands {
                    // Boxed: the handlers' futures are large, and an unboxed one
                    // would be inlined into every idle session's task.
                    Box::pin(session.handle_command(command)).await;
                    if session.closed {
                        break;
                    }
                }
            }
            SessionMsg::TransportClosed => session.stop(),
            SessionMsg::Disconnect(code) => session.disconnect(code),
            SessionMsg::ServerSubscribe(channel) => Box::pin(session.server_subscribe(channel, None)).await,
            SessionMsg::ServerUnsubscribe(channel) => {
                Box::pin(session.server_unsubscribe(channel, codes::UNSUBSCRIBE_SERVER)).await
            }
            SessionMsg::TopicLost(channel) => session.topic_lost(channel),
            SessionMsg::Ping => session.ping(),
            SessionMsg::PongDue(n) => {
                if session.pong_pending && n == session.ping_count {
                    session.disconnect(codes::NO_PONG);
                }
            }
            SessionMsg::ConnectDue => {
                if session.client.is_none() {
                    session.disconnect(codes::STALE);
                }
            }
            SessionMsg::ExpiryDue => {
                if session.expires_at.is_some_and(|at| at <= unix_now()) {
                    session.disconnect(codes::EXPIRED_CONNECTION);
                }
            }
            SessionMsg::SubExpiryDue(channel) => {
                let expired = session.subs.get(&channel).and_then(|s| s.expires_at).is_some_and(|at| at <= unix_now());
                if expired {
                    Box::pin(session.server_unsubscribe(channel, codes::UNSUBSCRIBE_EXPIRED)).await;
                }
            }
        }
        Ok(())
    }
}

impl Session {
    fn client_id(&self) -> Arc<str> {
        self.client.clone().unwrap_or_else(|| Arc::from(""))
    }

    /// Queues a reply; a refused push means the outbox closed (slow or going
    /// away), and the session ends.
    /// Queues a reply or push. A reply to a command that is larger than the
    /// outbox's largest message is answered with error 106 instead
    /// (`crate::limits::REPLY_TOO_LARGE`): one large answer never closes a
    /// client that reads.
    fn send(&mut self, reply: &Reply) {
        let mut bytes = codec::encode(self.outbox.encoding(), reply);
        if bytes.len() > self.outbox.max_message() && reply.id != 0 {
            let error =
                Reply { id: reply.id, error: Some(crate::limits::REPLY_TOO_LARGE.to_proto()), ..Default::default() };
            bytes = codec::encode(self.outbox.encoding(), &error);
        }
        if let Err(error) = self.outbox.push(bytes) {
            if error == crate::outbox::PushError::Slow {
                Metrics::inc(&self.node.metrics.slow_disconnects);
            }
            self.stop();
        }
    }

    /// Closes the connection with `code` after what is queued, and ends the session.
    fn disconnect(&mut self, code: DisconnectCode) {
        tracing::debug!(client = %self.client_id(), code = code.code, reason = code.reason, "disconnect");
        self.outbox.close(code);
        self.stop();
    }

    fn stop(&mut self) {
        if !self.closed {
            self.closed = true;
            self.myself.stop(None);
        }
    }

    fn schedule_ping(&self, first: bool) {
        let interval = self.node.config.ping_interval;
        let delay = if first {
            // Jitter the first ping so that clients connecting together do not
            // ping together forever.
            let millis = interval.as_millis().max(2) as u64;
            Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
        } else {
            interval
        };
        self.myself.send_after(delay, || SessionMsg::Ping);
    }

    fn ping(&mut self) {
        if self.client.is_none() {
            return;
        }
        self.ping_count += 1;
        if self.transport != TransportKind::UniSse {
            self.pong_pending = true;
            let n = self.ping_count;
            self.myself.send_after(self.node.config.pong_timeout, move || SessionMsg::PongDue(n));
        }
        self.send(&Reply::default());
        self.schedule_ping(false);
    }

    fn topic_lost(&mut self, channel: Channel) {
        let Some(sub) = self.subs.remove(&channel) else { return };
        Metrics::sub(&self.node.metrics.subscriptions, 1);
        if sub.server_side {
            // A server-side subscription cannot be renewed by the client alone:
            // reconnecting makes the client recover it.
            self.disconnect(codes::INSUFFICIENT_STATE);
        } else {
            self.send_unsubscribe_push(channel.as_str(), codes::UNSUBSCRIBE_INSUFFICIENT_STATE);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let node = &self.node;
        node.session_stopped(self.myself.get_id());
        if let Some(id) = &self.emulation_id {
            node.emulation_stopped(id);
        }
        // Whatever ended the session, the connection ends too (no-op when the
        // outbox is already closed with a better code).
        self.outbox.close(codes::SERVER_ERROR);
        if let Some(client) = self.client.take() {
            node.unregister(&client, &self.user);
            Metrics::sub(&node.metrics.subscriptions, self.subs.len() as u64);
            for channel in self.subs.keys() {
                node.topics.cast_existing(channel.as_str(), TopicMsg::Unsubscribe(client.clone(), None));
            }
        }
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
