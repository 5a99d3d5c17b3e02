//! Sessions: one actor per client connection.
//!
//! A session is the protocol state machine of one client: connect and
//! authentication, its subscriptions, heartbeats (server ping, pong deadline),
//! token expiry (honoured for a grace after `exp`, see [`crate::config::Config`]'s
//! `client_expired_close_delay`), and server-side subscribe/unsubscribe/disconnect. Transports
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
//!
//! Logging: each connection has one span ([`connection_span`]), made by its
//! transport before the session starts and shared with it. The session handles
//! every message inside that span and records `client` and `user` on it once
//! connected, so every line logged for a connection, by the transport or by
//! the session, carries them.

mod commands;
mod inflight;
pub mod registry;

pub use inflight::{Inflight, InflightGuard};
pub use registry::{EmulationError, Selector, SessionContext, SessionRegistry};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use protocol::codec;
use protocol::codes::{self, DisconnectCode};
use protocol::proto::{self, Command, Push, Reply};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rand::Rng;
use tracing::Instrument;

use crate::channel::Channel;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::topic::{ChannelLost, TopicMsg};

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
    /// The connection's expiry from the backend (server API `refresh`): Unix
    /// seconds (past: closed with 3005 at once), or `None` for no expiry. The
    /// client gets a `refresh` push with the new `expires`/`ttl`.
    Refresh(Option<u64>),
    /// The channel's topic failed and lost this subscriber: code 2500.
    TopicLost(Channel),
    /// Heartbeat: time to send a ping.
    Ping,
    /// Heartbeat: the pong for ping number `n` is due.
    PongDue(u64),
    /// No connect command arrived in time.
    ConnectDue,
    /// The connection token whose `exp` (Unix seconds) this is may be past its
    /// grace; stale when the connection was refreshed since.
    ExpiryDue(u64, Expiry),
    /// The subscription token whose `exp` this is may be past its grace; stale
    /// when the subscription was refreshed or ended since.
    SubExpiryDue(Channel, u64, Expiry),
    /// A connection the connect proxy gave this expiry (Unix seconds) reached
    /// it: ask the refresh proxy. Stale when the expiry changed since.
    ProxyRefreshDue(u64),
}

/// What an expiry timer found when it fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The timer ran until `exp` + grace: the token is no longer honoured.
    Reached,
    /// The deadline lies beyond one timer ([`MAX_TIMER`]): arm the next one.
    NotYet,
}

/// Which transport carries the session (reported in logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    WebSocket,
    Sse,
    HttpStream,
    /// One-way SSE for plain `EventSource` clients: no commands after
    /// connect, so pings expect no pong.
    UniSse,
}

impl TransportKind {
    /// Every kind, in the order of [`TransportKind::index`].
    pub const ALL: [TransportKind; 4] =
        [TransportKind::WebSocket, TransportKind::Sse, TransportKind::HttpStream, TransportKind::UniSse];

    /// A dense index (0..4), for per-transport counters.
    pub fn index(self) -> usize {
        match self {
            TransportKind::WebSocket => 0,
            TransportKind::Sse => 1,
            TransportKind::HttpStream => 2,
            TransportKind::UniSse => 3,
        }
    }

    /// The label of the transport in logs and metrics.
    pub fn label(self) -> &'static str {
        Metrics::TRANSPORT_LABELS[self.index()]
    }
}

/// A topic tells a session that it lost a channel by a message to its actor.
impl ChannelLost for ActorRef<SessionMsg> {
    fn channel_lost(&self, channel: Channel) {
        let _ = self.cast(SessionMsg::TopicLost(channel));
    }
}

/// The span of one connection: `transport` (as in metrics: `websocket`, `sse`,
/// `http_stream`, `uni_sse`) from the start; `client` and `user` are recorded
/// by the session once connected. A child of the current span: an HTTP
/// transport's connection is made inside its request's span, so its lines
/// carry the request id too.
pub fn connection_span(transport: TransportKind) -> tracing::Span {
    tracing::info_span!(
        "connection",
        transport = transport.label(),
        client = tracing::field::Empty,
        user = tracing::field::Empty,
    )
}

pub struct SessionArgs {
    pub ctx: Arc<SessionContext>,
    pub outbox: Arc<Outbox>,
    pub transport: TransportKind,
    /// The secret session id of an HTTP-transport session (for `/emulation`).
    pub emulation_id: Option<Arc<str>>,
    /// The shutdown drop-sentinel: held for the session's life.
    pub alive: tokio::sync::mpsc::Sender<()>,
    /// The connection's span ([`connection_span`]).
    pub span: tracing::Span,
    /// The client's address (`crate::quota::client_ip`), for the per-address limit.
    pub ip: Option<std::net::IpAddr>,
    /// The headers of the client's HTTP request that the proxies forward
    /// (`crate::proxy::Proxies::forwarded`).
    pub headers: Arc<[(String, String)]>,
}

/// One subscription of the session.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub server_side: bool,
    pub expires_at: Option<u64>,
    pub chan_info: Bytes,
}

pub struct Session {
    ctx: Arc<SessionContext>,
    outbox: Arc<Outbox>,
    myself: ActorRef<SessionMsg>,
    transport: TransportKind,
    emulation_id: Option<Arc<str>>,
    /// The connection's span: every message is handled inside it.
    span: tracing::Span,
    /// Set once connected.
    client: Option<Arc<str>>,
    user: Arc<str>,
    conn_info: Bytes,
    expires_at: Option<u64>,
    subs: HashMap<Channel, Subscription>,
    ping_count: u64,
    pong_pending: bool,
    closed: bool,
    /// The client's address, for `client_ip_connection_limit`.
    ip: Option<std::net::IpAddr>,
    /// Forwarded to the backend with every proxy call.
    headers: Arc<[(String, String)]>,
    /// The connection's `meta` from the connect proxy, sent with its later proxy calls.
    meta: Option<Box<serde_json::value::RawValue>>,
    /// `client_command_rate`: `None` when off.
    command_bucket: Option<crate::quota::TokenBucket>,
    /// Commands refused by the bucket since the last one it let through.
    refused_in_row: u32,
    /// Dropped with the session: shutdown waits until every one is gone.
    _alive: tokio::sync::mpsc::Sender<()>,
}

pub struct SessionActor;

impl Actor for SessionActor {
    type Msg = SessionMsg;
    type State = Session;
    type Arguments = SessionArgs;

    async fn pre_start(&self, myself: ActorRef<SessionMsg>, args: SessionArgs) -> Result<Session, ActorProcessingErr> {
        myself.send_after(args.ctx.config.connect_timeout, || SessionMsg::ConnectDue);
        let config = &args.ctx.config;
        let command_bucket = crate::quota::TokenBucket::new(
            config.client_command_rate,
            config.client_command_burst,
            tokio::time::Instant::now(),
        );
        Ok(Session {
            ctx: args.ctx,
            outbox: args.outbox,
            myself,
            transport: args.transport,
            emulation_id: args.emulation_id,
            span: args.span,
            client: None,
            user: Arc::from(""),
            conn_info: Bytes::new(),
            expires_at: None,
            subs: HashMap::new(),
            ping_count: 0,
            pong_pending: false,
            closed: false,
            ip: args.ip,
            headers: args.headers,
            meta: None,
            command_bucket,
            refused_in_row: 0,
            _alive: args.alive,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SessionMsg>,
        message: SessionMsg,
        session: &mut Session,
    ) -> Result<(), ActorProcessingErr> {
        let span = session.span.clone();
        self.handle_in_span(myself, message, session).instrument(span).await
    }
}

impl SessionActor {
    /// [`Actor::handle`], inside the connection's span.
    async fn handle_in_span(
        &self,
        _: ActorRef<SessionMsg>,
        message: SessionMsg,
        session: &mut Session,
    ) -> Result<(), ActorProcessingErr> {
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
            SessionMsg::ServerSubscribe(channel) => {
                Box::pin(session.server_subscribe(channel, None, crate::topic::ReplyTarget::Push)).await;
            }
            SessionMsg::ServerUnsubscribe(channel) => {
                Box::pin(session.server_unsubscribe(channel, codes::UNSUBSCRIBE_SERVER)).await
            }
            SessionMsg::Refresh(expires_at) => session.server_refresh(expires_at),
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
            SessionMsg::ExpiryDue(exp, expiry) => {
                // Stale when a refresh has since armed a timer for a newer `exp`.
                if session.expires_at == Some(exp) {
                    match expiry {
                        Expiry::Reached => session.disconnect(codes::EXPIRED_CONNECTION),
                        Expiry::NotYet => session.schedule_expiry(exp),
                    }
                }
            }
            SessionMsg::ProxyRefreshDue(exp) => {
                if session.expires_at == Some(exp) {
                    Box::pin(session.proxy_refresh(exp)).await;
                }
            }
            SessionMsg::SubExpiryDue(channel, exp, expiry) => {
                if session.subs.get(&channel).and_then(|s| s.expires_at) == Some(exp) {
                    match expiry {
                        Expiry::Reached => {
                            Box::pin(session.server_unsubscribe(channel, codes::UNSUBSCRIBE_EXPIRED)).await
                        }
                        Expiry::NotYet => session.schedule_sub_expiry(channel, exp),
                    }
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
                self.ctx.metrics.slow_disconnects.inc();
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
        let interval = self.ctx.config.ping_interval;
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
            self.myself.send_after(self.ctx.config.pong_timeout, move || SessionMsg::PongDue(n));
        }
        self.send(&Reply::default());
        self.schedule_ping(false);
    }

    /// Arms the timer that closes the connection (3005) once its token's `exp`
    /// (Unix seconds) and `client_expired_close_delay` have passed without a refresh.
    fn schedule_expiry(&self, exp: u64) {
        let (delay, expiry) = expiry_timer(exp, self.ctx.config.client_expired_close_delay);
        self.myself.send_after(delay, move || SessionMsg::ExpiryDue(exp, expiry));
    }

    /// The refresh proxy's turn (`[proxy.refresh]`, for connections the
    /// connect proxy gave an expiry): at `exp`, or at once when past it.
    fn schedule_proxy_refresh(&self, exp: u64, after: Option<Duration>) {
        let delay = after.unwrap_or_else(|| time_left(exp, Duration::ZERO));
        self.myself.send_after(delay.min(MAX_TIMER), move || SessionMsg::ProxyRefreshDue(exp));
    }

    /// Asks the refresh proxy: closed with 3005 when it says `expired`,
    /// otherwise the new expiry (and `conn_info`, when given). A backend with no
    /// usable answer is asked again in [`PROXY_REFRESH_RETRY`] until the grace
    /// (`client_expired_close_delay`) after `exp` is over, then 3005.
    async fn proxy_refresh(&mut self, exp: u64) {
        use crate::proxy::Outcome;
        let client = self.client_id();
        let proxies = self.ctx.proxies.clone();
        let Some(outcome) = proxies.refresh(self.caller(&client)).await else {
            return self.disconnect(codes::EXPIRED_CONNECTION);
        };
        match outcome {
            Ok(Outcome::Result(reply)) => {
                if reply.expired || reply.expires_at.is_some_and(|at| at <= unix_now()) {
                    return self.disconnect(codes::EXPIRED_CONNECTION);
                }
                if let Some(info) = reply.info {
                    self.conn_info = info;
                }
                self.expires_at = reply.expires_at;
                if let Some(next) = reply.expires_at {
                    self.schedule_proxy_refresh(next, None);
                }
            }
            Ok(Outcome::Disconnect(code, reason)) => self.backend_disconnect(code, &reason),
            Ok(Outcome::Error(..)) | Err(_) => {
                if time_left(exp, self.ctx.config.client_expired_close_delay).is_zero() {
                    self.disconnect(codes::EXPIRED_CONNECTION);
                } else {
                    self.schedule_proxy_refresh(exp, Some(PROXY_REFRESH_RETRY));
                }
            }
        }
    }

    /// Arms the timer that ends a subscription (unsubscribe 2501) once its token's
    /// `exp` and `client_expired_sub_close_delay` have passed without a sub_refresh.
    fn schedule_sub_expiry(&self, channel: Channel, exp: u64) {
        let (delay, expiry) = expiry_timer(exp, self.ctx.config.client_expired_sub_close_delay);
        self.myself.send_after(delay, move || SessionMsg::SubExpiryDue(channel, exp, expiry));
    }

    /// Server API `refresh`: the connection's new expiry, announced to the
    /// client in a `refresh` push (as Centrifugo does).
    fn server_refresh(&mut self, expires_at: Option<u64>) {
        if self.client.is_none() {
            return;
        }
        if expires_at.is_some_and(|exp| exp <= unix_now()) {
            return self.disconnect(codes::EXPIRED_CONNECTION);
        }
        self.expires_at = expires_at;
        if let Some(exp) = expires_at {
            self.schedule_expiry(exp);
        }
        let ttl = expires_at.map(ttl_until);
        let refresh = proto::Refresh { expires: ttl.is_some(), ttl: ttl.unwrap_or(0) };
        self.send(&Reply { push: Some(Push { refresh: Some(refresh), ..Default::default() }), ..Default::default() });
    }

    fn topic_lost(&mut self, channel: Channel) {
        let Some(sub) = self.subs.remove(&channel) else { return };
        self.ctx.metrics.subscriptions.dec();
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
        let ctx = &self.ctx;
        ctx.registry.stopped(self.myself.get_id(), self.emulation_id.as_deref());
        // Whatever ended the session, the connection ends too (no-op when the
        // outbox is already closed with a better code).
        self.outbox.close(codes::SERVER_ERROR);
        if let Some(client) = self.client.take() {
            ctx.registry.unregister(&client, &self.user);
            ctx.metrics.subscriptions.dec_by(self.subs.len() as i64);
            for channel in self.subs.keys() {
                ctx.topics.cast_existing(channel.as_str(), TopicMsg::Unsubscribe(client.clone(), None));
            }
        }
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The longest single timer a session arms; a later deadline is re-armed when
/// the timer fires (a token may carry any `exp`, however far away).
const MAX_TIMER: Duration = Duration::from_secs(365 * 24 * 3600);

/// Time left until a token with `exp` (Unix seconds) stops being honoured:
/// `exp + grace` (Centrifugo's `client_expired_close_delay`), zero when past,
/// at most [`MAX_TIMER`]. Never overflows, whatever `exp` is.
fn time_left(exp: u64, grace: Duration) -> Duration {
    let deadline = Duration::from_secs(exp).saturating_add(grace);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    deadline.saturating_sub(now).min(MAX_TIMER)
}

/// The timer for a token with `exp` and `grace`: how long to wait (the wall
/// clock's time left, read once, now), and whether the deadline is reached when
/// it fires. The wait itself is on the monotonic clock (tokio's), so a test on
/// paused time sees a token expire exactly at `exp + grace`.
/// How soon the refresh proxy is asked again after it gave no usable answer.
const PROXY_REFRESH_RETRY: Duration = Duration::from_secs(5);

fn expiry_timer(exp: u64, grace: Duration) -> (Duration, Expiry) {
    let left = time_left(exp, grace);
    let expiry = if left < MAX_TIMER { Expiry::Reached } else { Expiry::NotYet };
    (left, expiry)
}

/// The `ttl` of a connect, subscribe or refresh result: whole seconds from now
/// until `exp` (the grace is not announced: the SDK refreshes at `ttl`).
pub(crate) fn ttl_until(exp: u64) -> u32 {
    exp.saturating_sub(unix_now()).min(u64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_counts_the_grace_and_never_overflows() {
        let now = unix_now();
        assert!(time_left(now.saturating_sub(30), Duration::from_secs(25)).is_zero(), "past exp + grace");
        let left = time_left(now.saturating_sub(1), Duration::from_secs(25));
        assert!(left > Duration::from_secs(22) && left <= Duration::from_secs(24), "{left:?}");
        assert!(time_left(now, Duration::ZERO) <= Duration::from_secs(1));
        assert_eq!(time_left(u64::MAX, Duration::MAX), MAX_TIMER);
        assert_eq!(ttl_until(u64::MAX), u32::MAX);
        assert_eq!(ttl_until(0), 0);
    }
}
